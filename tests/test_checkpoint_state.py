"""Checkpoints know their schedule (issue 9): ``lrkit.torch``'s scheduler state names its schedule, a state
saved with another schedule is refused with both specs shown (unless the switch is asked for), and a
corrupt state (NaN, inf, negative, wrong types) is refused before anything changes.

References: the LR after a resume is the closed form ``schedule(k) * base`` of the schedule in force (the
new one after an explicit switch); "nothing changed" is the scheduler's own ``state_dict()`` and the
optimizer's LRs compared before and after the refused load.
"""

from __future__ import annotations

import io
import math
import warnings
from typing import Any

import pytest
import torch
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

import lrkit
from lrkit.adapters.torch import ScheduleMismatchError
from lrkit.control import Plateau

from . import strategies as S

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _opt(lrs: tuple[float, ...] = (0.1,)) -> torch.optim.Optimizer:
    params = [torch.nn.Parameter(torch.zeros(1)) for _ in lrs]
    return torch.optim.SGD([{"params": [p], "lr": lr} for p, lr in zip(params, lrs, strict=True)])


def _sched(spec: Any, total: int | None = 60, **kw: Any) -> Any:
    return lrkit.torch.scheduler(_opt(), spec, total_steps=total, follow_optimizer=False, **kw)


def _through_torch_save(state: dict[str, Any]) -> dict[str, Any]:
    buf = io.BytesIO()
    torch.save(state, buf)
    buf.seek(0)
    out: dict[str, Any] = torch.load(buf, weights_only=True)
    return out


def _advance(sch: Any, n: int) -> None:
    for _ in range(n):
        sch.step()


# the pairs of the issue: (saved with, loaded into, total_steps saved, total_steps loaded)
PAIRS = [
    ("cosine(lr=0.1, steps=100%)", "one_cycle(max_lr=0.1, steps=100%)", 60, 60),
    ("cosine(lr=0.1, steps=100%)", "constant(lr=0.1)", 60, 60),
    ("warmup(10%) >> cosine(lr=0.1)", "warmup(10%) >> cosine(lr=0.1)", 60, 600),
    ("wsd(lr=0.1, warmup=5, decay=20%)", "cyclic(lr=0.01, max_lr=0.1, step_size_up=10)", 60, 60),
]


@pytest.mark.parametrize(("saved", "loaded", "t0", "t1"), PAIRS)
def test_a_state_saved_with_another_schedule_is_refused_showing_both(
    saved: str, loaded: str, t0: int, t1: int
) -> None:
    a = _sched(saved, t0)
    _advance(a, 17)
    state = _through_torch_save(a.state_dict())
    b = _sched(loaded, t1)
    before = (b.state_dict(), [g["lr"] for g in b.optimizer.param_groups])
    with pytest.raises(ScheduleMismatchError) as info:
        b.load_state_dict(state)
    msg = str(info.value)
    assert str(a.schedules[0]) in msg and str(b.schedules[0]) in msg
    assert f"total_steps={float(t0)!r}" in msg and f"total_steps={float(t1)!r}" in msg
    assert "allow_schedule_change=True" in msg
    assert (b.state_dict(), [g["lr"] for g in b.optimizer.param_groups]) == before  # nothing changed


@pytest.mark.parametrize(("saved", "loaded", "t0", "t1"), PAIRS)
def test_switching_schedules_on_purpose_keeps_the_step_and_runs_the_new_curve(
    saved: str, loaded: str, t0: int, t1: int
) -> None:
    a = _sched(saved, t0)
    _advance(a, 17)
    a.scale(0.5)
    state = _through_torch_save(a.state_dict())
    for how in ("argument", "attribute"):
        b = _sched(loaded, t1)
        if how == "argument":
            b.load_state_dict(state, allow_schedule_change=True)
        else:
            b.allow_schedule_change = True
            b.load_state_dict(state)
        new = lrkit.parse(loaded).resolve(total_steps=t1)
        assert b.last_epoch == 17 and b.multiplier == 0.5
        for k in range(17, 25):
            assert b.optimizer.param_groups[0]["lr"] == pytest.approx(0.5 * new(k), rel=1e-12, abs=1e-300)
            b.step()


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(s1=S.lr_schedules, s2=S.lr_schedules, k=st.integers(0, 200))
def test_any_two_different_schedules_are_told_apart(s1: lrkit.Schedule, s2: lrkit.Schedule, k: int) -> None:
    assume(str(s1) != str(s2))
    a = _sched(s1, None)
    a.set_step(k)
    state = _through_torch_save(a.state_dict())
    with pytest.raises(ScheduleMismatchError, match="saved with another schedule"):
        _sched(s2, None).load_state_dict(state)
    # and the same schedule, built again, resumes exactly
    c = _sched(s1, None)
    c.load_state_dict(state)
    assert c.last_epoch == k and c.get_last_lr() == a.get_last_lr()


def test_the_same_curve_spelled_otherwise_is_accepted() -> None:
    """What is compared is the schedule resolved to steps: a fraction of 60 steps and the same number of
    steps are the same schedule, and so is a total that the schedule does not depend on."""
    a = _sched("warmup(10%) >> cosine(lr=0.1)", 60)
    _advance(a, 9)
    b = _sched("warmup(steps=6) >> cosine(lr=0.1, steps=54)", None)
    b.load_state_dict(a.state_dict())
    assert b.get_last_lr() == a.get_last_lr()
    c = _sched("cosine(lr=0.1, steps=50)", 60)
    _advance(c, 9)
    d = _sched("cosine(lr=0.1, steps=50)", 600)
    d.load_state_dict(c.state_dict())
    assert d.get_last_lr() == c.get_last_lr()
    # a spec string a later lrkit prints differently still compares equal once parsed
    state = c.state_dict()
    state["schedule"] = ["cosine(lr=0.10, steps=50.0)"]
    d.load_state_dict(state)


@pytest.mark.parametrize(
    ("change", "what"),
    [
        ({"relative": True}, "relative"),
        ({"hparams": {"momentum": "constant(lr=0.8)"}}, "hparams"),
    ],
)
def test_relative_and_scheduled_hyperparameters_are_part_of_the_schedule(
    change: dict[str, Any], what: str
) -> None:
    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=0.1, momentum=0.9)
    a = lrkit.torch.scheduler(opt, "cosine(lr=1.0, steps=30)")
    opt2 = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=0.1, momentum=0.9)
    b = lrkit.torch.scheduler(opt2, "cosine(lr=1.0, steps=30)", **change)
    with pytest.raises(ScheduleMismatchError, match=what):
        b.load_state_dict(a.state_dict())


def test_epoch_interval_checks_steps_per_epoch() -> None:
    a = lrkit.torch.scheduler(_opt(), "cosine(lr=0.1, steps=100)", interval="epoch", steps_per_epoch=10)
    b = lrkit.torch.scheduler(_opt(), "cosine(lr=0.1, steps=100)", interval="epoch", steps_per_epoch=20)
    with pytest.raises(ScheduleMismatchError, match=r"steps_per_epoch=10\.0"):
        b.load_state_dict(a.state_dict())


def test_graph_scheduler_state_names_its_schedule_too() -> None:
    def make(spec: str) -> Any:
        opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=torch.tensor(0.1))
        return lrkit.torch.scheduler(opt, spec, total_steps=40, in_graph=True)

    a = make("cosine(lr=0.1)")
    for _ in range(5):
        a.step()
    with pytest.raises(ScheduleMismatchError):
        make("linear(lr=0.1)").load_state_dict(a.state_dict())
    b = make("cosine(lr=0.1)")
    b.load_state_dict(a.state_dict())
    assert b.last_epoch == 5


def test_an_old_state_without_a_schedule_loads_with_a_warning() -> None:
    """States written before the schedule was saved (format lrkit.torch/1) resume as before, unchecked:
    refusing them would strand every existing checkpoint; the warning says they cannot be checked."""
    a = _sched("cosine(lr=0.1)")
    _advance(a, 7)
    old = {
        key: v
        for key, v in a.state_dict().items()
        if key not in ("schedule", "relative", "hparams", "steps_per_epoch", "total_steps")
    }
    old["format"] = "lrkit.torch/1"
    b = _sched("one_cycle(max_lr=0.1)")
    with pytest.warns(UserWarning, match="older lrkit.*cannot be checked"):
        b.load_state_dict(old)
    assert b.last_epoch == 7
    with warnings.catch_warnings():  # a new state loads silently
        warnings.simplefilter("error")
        _sched("cosine(lr=0.1)").load_state_dict(a.state_dict())


# -- corrupt states -------------------------------------------------------------------------------
BAD_NUMBERS = [math.nan, math.inf, -math.inf, -1.0, -1e-300, "0.1", None, True, [0.1], {"x": 1}]
BAD_STEPS = [-1, 1.5, math.nan, "3", None, True, 2.0]


def _corruptions() -> st.SearchStrategy[tuple[str, Any]]:
    """(where, bad value): one corrupt entry of a state with two groups and a plateau."""
    return st.one_of(
        st.tuples(st.just("multiplier"), st.sampled_from(BAD_NUMBERS)),
        st.tuples(st.sampled_from(["base_lrs[0]", "base_lrs[1]"]), st.sampled_from(BAD_NUMBERS)),
        st.tuples(
            st.sampled_from(["plateau_cuts[0]", "plateau_cuts[1]"]),
            st.sampled_from([*BAD_NUMBERS, 1.5, 2.0]),
        ),
        st.tuples(st.just("last_epoch"), st.sampled_from(BAD_STEPS)),
        st.tuples(st.just("plateau.best"), st.sampled_from([math.nan, "1.0", True])),  # None: no best yet
        st.tuples(
            st.sampled_from(["plateau.num_bad_epochs", "plateau.cooldown_counter", "plateau.last_epoch"]),
            st.sampled_from(BAD_STEPS),
        ),
        st.tuples(
            st.sampled_from(["base_lrs", "plateau_cuts"]), st.sampled_from([[0.1], [], "0.1", 0.1, None])
        ),
        st.tuples(st.just("plateau"), st.sampled_from(["x", 1.0, [1.0]])),
    )


def _corrupt(state: dict[str, Any], where: str, value: Any) -> dict[str, Any]:
    out = {**state, "base_lrs": list(state["base_lrs"]), "plateau_cuts": list(state["plateau_cuts"])}
    out["plateau"] = dict(state["plateau"])
    if where.startswith("plateau."):
        out["plateau"][where.split(".", 1)[1]] = value
    elif "[" in where:
        key, i = where[:-1].split("[")
        out[key][int(i)] = value
    else:
        out[where] = value
    return out


def _two_groups() -> Any:
    opt = _opt((0.1, 0.01))
    pl = Plateau(patience=0, factor=0.5)
    return lrkit.torch.scheduler(opt, "cosine(lr=1.0)", total_steps=50, relative=True, plateau=pl)


@settings(max_examples=150, deadline=None)
@given(corruption=_corruptions())
def test_a_corrupt_state_is_refused_and_changes_nothing(corruption: tuple[str, Any]) -> None:
    where, value = corruption
    a = _two_groups()
    for m in (1.0, 2.0):
        a.optimizer.step()
        a.step(m)
    state = _corrupt(a.state_dict(), where, value)
    b = _two_groups()
    before = (b.state_dict(), [g["lr"] for g in b.optimizer.param_groups], b.plateau.state_dict())
    with pytest.raises((ValueError, TypeError)) as info:
        b.load_state_dict(state)
    name = where.split(".")[-1].split("[")[0]
    assert name in str(info.value) or "plateau" in str(info.value).lower()
    assert (b.state_dict(), [g["lr"] for g in b.optimizer.param_groups], b.plateau.state_dict()) == before
    lrs = [g["lr"] for g in b.optimizer.param_groups]
    assert all(math.isfinite(lr) and lr >= 0 for lr in lrs)


def test_the_corrupt_values_of_the_issue() -> None:
    a = _two_groups()
    for bad in ({"multiplier": math.nan}, {"base_lrs": [math.nan, 0.01]}):
        b = _two_groups()
        with pytest.raises(ValueError, match=r"must be a finite number >= 0, got nan"):
            b.load_state_dict({**a.state_dict(), **bad})
        assert not any(math.isnan(g["lr"]) for g in b.optimizer.param_groups)


def test_plateau_best_may_be_infinite_but_not_nan() -> None:
    p = Plateau()
    state = p.state_dict()
    assert state["best"] is None  # no metric yet: saved as null (strict JSON), loaded as inf
    q = Plateau()
    q.load_state_dict(state)
    assert q.best == math.inf
    q.load_state_dict({**state, "best": math.inf})  # as an older lrkit saved it
    assert q.best == math.inf
    with pytest.raises(ValueError, match="best must be a number or \\+-inf, not NaN"):
        Plateau().load_state_dict({**state, "best": math.nan})
