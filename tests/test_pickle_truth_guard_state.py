"""DivergenceGuard.load_state_dict on states a real resume meets: one written by a newer lrkit, and a
guard's state loaded without the scheduler's (the guard's cuts live in the scheduler's multiplier)."""

from __future__ import annotations

import warnings

import pytest

torch = pytest.importorskip("torch")

import lrkit  # noqa: E402
from lrkit.control import DivergenceGuard  # noqa: E402


def _build() -> tuple[torch.nn.Module, torch.optim.Optimizer, object, DivergenceGuard]:
    torch.manual_seed(0)
    model = torch.nn.Linear(4, 1)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    sched = lrkit.torch.scheduler(opt, "cosine(lr=0.1)", total_steps=50)
    return model, opt, sched, DivergenceGuard(model, opt, sched, snapshot_every=2)


def _run_with_one_nan() -> tuple[dict[str, object], dict[str, object]]:
    """The guard's and the scheduler's states after 8 steps, a NaN at step 5 (one cut: 0.5)."""
    model, opt, sched, guard = _build()
    for step in range(8):
        loss = model(torch.randn(2, 4)).pow(2).mean()
        if step == 5:
            loss = loss * float("nan")
        loss.backward()
        if guard.check(loss, step):
            opt.step()
            sched.step()  # type: ignore[attr-defined]
        opt.zero_grad()
    assert guard.multiplier == 0.5 == sched.multiplier  # type: ignore[attr-defined]
    return guard.state_dict(), sched.state_dict()  # type: ignore[attr-defined]


def test_a_state_from_a_newer_lrkit_is_named_so() -> None:
    state, _ = _run_with_one_nan()
    guard = _build()[3]
    with pytest.raises(
        ValueError,
        match=r"written by a newer lrkit \(format 'lrkit\.guard/3'; "
        r"this lrkit reads 'lrkit\.guard/1' or 'lrkit\.guard/2'\)",
    ):
        guard.load_state_dict({**state, "format": "lrkit.guard/3", "something_new": 1})
    assert guard.events == [] and guard.multiplier == 1.0  # nothing changed
    # another object's state is still "not a DivergenceGuard state_dict()"
    for other in ("lrkit.torch/1", "lrkit.guard/0", "lrkit.guard/x", None):
        with pytest.raises(ValueError, match=r"not a DivergenceGuard state_dict\(\)"):
            guard.load_state_dict({**state, "format": other})


def test_loading_the_guard_without_the_scheduler_state_warns_naming_both_multipliers() -> None:
    guard_state, sched_state = _run_with_one_nan()
    _, _, sched, guard = _build()
    with pytest.warns(RuntimeWarning, match=r"multiplier .* is 0\.5, but the scheduler's is 1\b") as rec:
        guard.load_state_dict(guard_state)
    assert "scheduler.load_state_dict" in str(rec[0].message)
    assert rec[0].filename == __file__  # the caller's line
    # in the documented order (the scheduler's state first), nothing to say
    _, _, sched, guard = _build()
    sched.load_state_dict(sched_state)  # type: ignore[attr-defined]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        guard.load_state_dict(guard_state)
    assert guard.multiplier == 0.5 == sched.multiplier  # type: ignore[attr-defined]
