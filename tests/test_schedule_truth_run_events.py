"""A schedule whose own time constants fall past the run's end (a milestone, a step decay's first cut, a
restart period, a cycle) is warned about as one that lasts longer than the run is: the warning fires
exactly when an LR change the schedule asks for does not happen within the run, and names it."""

from __future__ import annotations

import re
import warnings

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import lrkit
from lrkit.schedules import ScheduleLongerThanRunWarning

_FAST = settings(max_examples=60, deadline=None)


def _optimizer() -> torch.optim.Optimizer:
    return torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=0.1)


def _warnings(spec: str, total: int) -> list[str]:
    """What lrkit.torch.scheduler warns (ScheduleLongerThanRunWarning) for ``spec`` over ``total`` steps."""
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        lrkit.torch.scheduler(_optimizer(), spec, total_steps=total)
    return [str(w.message) for w in seen if issubclass(w.category, ScheduleLongerThanRunWarning)]


def _lrs(spec: str, total: int) -> np.ndarray:
    """The LR at steps 0 .. total (the one after the last scheduler.step() included)."""
    return np.asarray(lrkit.parse(spec).resolve(total_steps=total)(np.arange(total + 1.0)))


@_FAST
@given(
    warmup=st.integers(0, 300),
    ms=st.lists(st.integers(1, 3000), min_size=1, max_size=4, unique=True).map(sorted),
    total=st.integers(1, 2500),
)
def test_multistep_warns_exactly_when_a_cut_does_not_happen_in_the_run(
    warmup: int, ms: list[int], total: int
) -> None:
    """``warmup(w) >> multistep(milestones=ms)`` over ``total`` steps: the warning fires iff fewer cuts
    than milestones happen in the run (counted on the LRs themselves), and names each one missed, by its
    index and the run's step it falls at."""
    spec = f"warmup({warmup}) >> multistep(lr=0.1, milestones={ms}, gamma=0.5)"
    lr = _lrs(spec, total)
    cuts = int(np.sum(np.diff(lr[warmup:]) < 0))  # the warmup only rises
    said = _warnings(spec, total)
    assert bool(said) == (cuts < len(ms)), (spec, total, cuts, said)
    missed = [i for i, m in enumerate(ms) if warmup + m > total]
    assert len(missed) == len(ms) - cuts
    for i in missed[:5]:
        assert f"milestones[{i}]={ms[i]} at step {warmup + ms[i]:,}" in said[0]


@_FAST
@given(step_size=st.integers(1, 3000), total=st.integers(1, 2500))
def test_step_decay_warns_exactly_when_it_never_steps(step_size: int, total: int) -> None:
    spec = f"step(lr=0.1, step_size={step_size}, gamma=0.5)"
    never = bool(np.all(_lrs(spec, total) == 0.1))
    said = _warnings(spec, total)
    assert bool(said) == never, (spec, total)
    if never:
        assert f"the first decay (step_size={step_size}) at step {step_size:,}" in said[0]


@_FAST
@given(period=st.integers(2, 3000), mult=st.sampled_from([1.0, 2.0]), total=st.integers(1, 2500))
def test_restarts_warn_exactly_when_no_restart_happens_in_the_run(
    period: int, mult: float, total: int
) -> None:
    """``cosine_restarts(period=P)`` over fewer than P steps is the curve of ``cosine(steps=P)``, which
    warns (it lasts longer than the run): so does the restart schedule, and only then."""
    spec = f"cosine_restarts(lr=0.1, period={period}, mult={mult})"
    restarted = bool(np.any(np.diff(_lrs(spec, total)) > 0))
    said = _warnings(spec, total)
    assert bool(said) == (not restarted), (spec, total)
    if said:
        assert f"the first restart (period={period})" in said[0]
        assert bool(_warnings(f"cosine(lr=0.1, steps={period})", total))  # the same curve warns too


@_FAST
@given(up=st.integers(1, 2000), down=st.integers(1, 2000), total=st.integers(1, 3000))
def test_cyclic_warns_exactly_when_its_first_cycle_does_not_end_in_the_run(
    up: int, down: int, total: int
) -> None:
    """A cyclic LR warns iff it does not come back down to its base within the run."""
    spec = f"cyclic(lr=0.01, max_lr=0.1, step_size_up={up}, step_size_down={down})"
    back = bool(np.any(_lrs(spec, total)[1:] == 0.01))
    said = _warnings(spec, total)
    assert bool(said) == (not back), (spec, total)
    if said and up > total:
        assert f"the first peak (step_size_up={up}) at step {up:,}" in said[0]


def test_the_reported_cases() -> None:
    """The tester's repros, through lrkit.torch.scheduler: each now warns, naming what is missed."""
    (said,) = _warnings("cosine_restarts(lr=0.1, period=5000)", 1000)
    assert "the first restart (period=5000) at step 5,000" in said and "total_steps=1,000" in said
    (said,) = _warnings("multistep(lr=0.1, milestones=[1500, 3000])", 1000)
    assert "milestones[0]=1500 at step 1,500; multistep milestones[1]=3000 at step 3,000" in said
    (said,) = _warnings("warmup(10%) >> multistep(lr=0.1, milestones=[50%, 95%])", 1000)
    assert "piece 1 (from step 100): multistep milestones[1]=950 at step 1,050" in said
    assert "milestones[0]" not in said  # 50% of the run from step 100: the cut at 600 happens
    assert _warnings("warmup(10%) >> multistep(lr=0.1, milestones=[50%, 85%])", 1000) == []
    (said,) = _warnings("step(lr=0.1, step_size=2000)", 1000)
    assert "the first decay (step_size=2000)" in said
    # a chain whose middle piece outlasts the run: where the last piece would start
    (said,) = _warnings("warmup(100) >> cosine(lr=0.1, steps=5000) >> constant(lr=0.001)", 1000)
    assert "piece 2 (constant) starts at step 5,100" in said
    # one warning, not two, when the schedule itself outlasts the run
    (said,) = _warnings("multistep(lr=0.1, milestones=[1500], steps=2000)", 1000)
    assert "lasts 2,000 steps" in said


def test_events_count_from_each_piece_and_pass_through_compositions() -> None:
    """The one mechanism: each schedule's events in its local steps, offset by a chain piece's start,
    unchanged through scale, clamp and product, and left out past the piece's own end."""
    from lrkit.schedules.base import beyond_run

    m = lrkit.MultiStep(lr=0.1, milestones=[30, 60])
    assert [t for t, _ in m.events()] == [30.0, 60.0]
    c = lrkit.Warmup(10) >> m * 0.5
    assert [t for t, _ in c.events()] == [40.0, 70.0, 10.0]
    assert [t for t, _ in lrkit.MultiStep(lr=0.1, milestones=[30, 60], steps=50).events()] == [30.0]
    assert [t for t, _ in (m * lrkit.StepDecay(lr=1.0, step_size=25)).events()] == [30.0, 60.0, 25.0]
    r = lrkit.Repeat(lrkit.Cosine(lr=0.1, steps=500))
    assert beyond_run(r, 400) == ((500.0, "repeat: the first repeat (after 500 steps)"),)
    assert beyond_run(lrkit.parse("exponential(lr=0.1, gamma=0.5, every=600, staircase=true)"), 500)
    assert beyond_run(lrkit.parse("exponential(lr=0.1, gamma=0.5, every=600)"), 500) == ()  # smooth
    assert lrkit.parse("multistep(lr=0.1, milestones=[50%])").events() == ()  # unresolved: none yet


def test_a_milestone_at_the_run_end_is_not_past_it() -> None:
    """The same boundary as a length: a milestone at step total_steps takes effect with the last
    scheduler.step(), as a cosine of total_steps reaches its end there; both are silent."""
    assert _warnings("multistep(lr=0.1, milestones=[1000])", 1000) == []
    assert _warnings("cosine(lr=0.1, steps=1000)", 1000) == []
    assert re.search(
        r"milestones\[0\]=1001 at step 1,001", _warnings("multistep(lr=0.1, milestones=[1001])", 1000)[0]
    )


@pytest.mark.parametrize(
    "spec", ["multistep(lr=0.1, milestones=[1500])", "cosine_restarts(lr=0.1, period=5000)"]
)
def test_other_adapters_warn_too(spec: str) -> None:
    """The check lives in warn_run_length, which every adapter given the run's length calls."""
    optax = pytest.importorskip("optax")
    del optax
    with pytest.warns(ScheduleLongerThanRunWarning, match="past the end of total_steps="):
        lrkit.optax.schedule(spec, total_steps=1000)
