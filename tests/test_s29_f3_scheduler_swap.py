"""Giving the guard a rebuilt scheduler: ``guard.scheduler = new``.

After ``optimizer.add_param_group`` the documented way on is a new scheduler over every group, then
``new.set_step(old.last_epoch)``; the guard kept the old one, and a later NaN raised the scheduler's
"Build the scheduler after adding groups", which the user had done (exA's t15.py). The guard now takes
the new one (checked like the constructor's argument, the guard's cuts carried over, the snapshots of the
old one dropped), and a guard still holding the old one says to give it the new one.
"""

from __future__ import annotations

from typing import Any

import pytest

torch = pytest.importorskip("torch")

import lrkit  # noqa: E402
from lrkit.control import DivergenceError, DivergenceGuard  # noqa: E402

SPEC = "cosine(lr=1)"


def _setup() -> tuple[Any, Any, Any, DivergenceGuard]:
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(4, 4), torch.nn.Linear(4, 1))
    opt = torch.optim.SGD(model[1].parameters(), lr=0.01)
    sched = lrkit.torch.scheduler(opt, SPEC, total_steps=100, relative=True)
    return model, opt, sched, DivergenceGuard(model, opt, sched, snapshot_every=5)


def _run(swap: bool, nan_at: tuple[int, ...] = (5, 20), until: int = 30) -> dict[str, Any]:
    """exA's t15.py: a group added at step 12 and the scheduler rebuilt (given to the guard where
    ``swap``); the loss is NaN once at each step of ``nan_at``."""
    model, opt, sched, guard = _setup()
    x, y = torch.randn(64, 4), torch.randn(64, 1)
    step, poisoned, added, lrs = 0, set(), False, {}
    while step < until:
        loss = torch.nn.functional.mse_loss(model(x), y)
        if step == 12 and not added:
            added = True
            opt.add_param_group({"params": model[0].parameters(), "lr": 0.001})
            old, sched = sched, lrkit.torch.scheduler(opt, SPEC, total_steps=100, relative=True)
            sched.set_step(step)
            if swap:
                guard.scheduler = sched
            del old
        if step in nan_at and step not in poisoned:
            poisoned.add(step)
            loss = loss * float("nan")
        loss.backward()
        if guard.check(loss, step):
            opt.step()
            sched.step()
            step += 1
        else:
            assert guard.resume_step is not None
            step = guard.resume_step
        lrs[step] = [float(g["lr"]) for g in opt.param_groups]
        opt.zero_grad()
    return {"guard": guard, "scheduler": sched, "lrs": lrs}


def test_the_rebuilt_scheduler_given_to_the_guard_is_restored_and_cut() -> None:
    """A cut at step 5 (x0.5, back to step 0), the rebuild at 12, a NaN at 20: rolled back to the
    snapshot of step 17 with both groups at the new schedule's LR times 0.25. The new scheduler, built
    at multiplier 1, took the guard's first cut from the old one."""
    got = _run(swap=True)
    guard, sched = got["guard"], got["scheduler"]
    assert guard.scheduler is sched
    assert [(e.step, e.reason, e.snapshot_step) for e in guard.events] == [(5, "nan", 0), (20, "nan", 17)]
    assert sched.multiplier == 0.25 and guard.multiplier == 0.25
    probe = lrkit.torch.scheduler(
        torch.optim.SGD(
            [{"params": [torch.zeros(1)], "lr": 0.01}, {"params": [torch.zeros(1)], "lr": 0.001}]
        ),
        SPEC,
        total_steps=100,
        relative=True,
    )
    probe.set_step(17)
    want = [lr * 0.25 for lr in probe.get_last_lr()]
    assert guard.events[1].lr_after == pytest.approx(want, rel=1e-12)
    assert got["lrs"][17] == pytest.approx(want, rel=1e-12)


def test_a_guard_that_kept_the_old_scheduler_says_to_give_it_the_new_one() -> None:
    with pytest.raises(RuntimeError) as info:
        _run(swap=False)
    msg = str(info.value)
    assert "DivergenceGuard: step 20 diverged" in msg
    assert "built for 1 parameter groups and the optimizer has 2" in msg
    assert "guard.scheduler = new_scheduler" in msg and "set_step(old_scheduler.last_epoch)" in msg


def test_a_scheduler_the_guard_cannot_use_is_refused_when_set() -> None:
    model, opt, sched, guard = _setup()
    with pytest.raises(TypeError, match=r"scheduler must be an lrkit\.torch scheduler .* got StepLR"):
        guard.scheduler = torch.optim.lr_scheduler.StepLR(opt, 10)
    other = torch.optim.SGD(model.parameters(), lr=0.1)
    with pytest.raises(ValueError, match="the scheduler drives another optimizer"):
        guard.scheduler = lrkit.torch.scheduler(other, SPEC, total_steps=100)
    opt.add_param_group({"params": model[0].parameters(), "lr": 0.001})
    with pytest.raises(ValueError, match="built for 1 parameter groups, the optimizer has 2"):
        guard.scheduler = sched
    assert guard.scheduler is sched  # unchanged by a refused one


def test_replacing_the_scheduler_drops_the_snapshots_of_the_old_one() -> None:
    """The snapshots hold the old scheduler's state, which another schedule cannot load: a NaN before
    the next good step raises, saying so; one after it rolls back to that step."""
    _, opt, sched, guard = _setup()
    for step in range(8):
        assert guard.check(1.0, step)
        opt.step()
        sched.step()
    guard.scheduler = lrkit.torch.scheduler(opt, "constant(0.01)", total_steps=100)
    with pytest.raises(DivergenceError, match="before any good step since the scheduler was replaced"):
        guard.check(float("nan"), 8)
    _, opt, sched, guard = _setup()
    for step in range(8):
        assert guard.check(1.0, step)
        opt.step()
        sched.step()
    new = lrkit.torch.scheduler(opt, "constant(0.01)", total_steps=100)
    guard.scheduler = new
    assert guard.check(1.0, 8)
    assert not guard.check(float("nan"), 9)
    assert guard.resume_step == 8 and new.multiplier == 0.5


def test_setting_none_or_the_same_scheduler() -> None:
    """None: the guard cuts the groups' lr itself; the scheduler it holds: nothing changes."""
    _, opt, sched, guard = _setup()
    assert guard.check(1.0, 0)
    guard.scheduler = sched
    assert not guard.check(float("nan"), 1)  # the snapshot of step 0 is kept
    guard.scheduler = None
    lr = opt.param_groups[0]["lr"]
    assert guard.check(1.0, 0)
    assert not guard.check(float("nan"), 1)
    assert opt.param_groups[0]["lr"] == pytest.approx(lr * 0.5)
