"""An ``lrkit.auto`` run resumed from a checkpoint: the guard's own state (``state_dict``) travels with
the model's, the optimizer's and the scheduler's, and the resumed run is the one that never stopped."""

from __future__ import annotations

import io
from typing import Any

import pytest

torch = pytest.importorskip("torch")
pytestmark = pytest.mark.usefixtures("one_torch_thread")

BATCHES = 16  # a 16-step epoch: auto's guard snapshots every 16 steps


def _data() -> list[tuple[Any, Any]]:
    g = torch.Generator().manual_seed(0)
    x = torch.randn(BATCHES * 32, 10, generator=g)
    y = (x[:, 0] > 0).long()
    return [(x[i : i + 32], y[i : i + 32]) for i in range(0, len(x), 32)]


def _fresh() -> tuple[Any, Any]:
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(10, 32), torch.nn.ReLU(), torch.nn.Linear(32, 2))
    return model, torch.optim.AdamW(model.parameters(), lr=1e-3)


def _train(model: Any, opt: Any, sched: Any, guard: Any, start: int, stop: int, nan_at: set[int]) -> None:
    """Steps ``start`` to ``stop``, batch ``step % BATCHES`` at each (so a replay sees the same data),
    a NaN loss once at each step of ``nan_at``."""
    batches, step, seen = _data(), start, set()
    while step < stop:
        x, y = batches[step % BATCHES]
        loss = torch.nn.functional.cross_entropy(model(x), y)
        if step in nan_at and step not in seen:
            seen.add(step)
            loss = loss * float("nan")
        loss.backward()
        if guard.check(loss, step):
            opt.step()
            sched.step()
            step += 1
        else:
            step = guard.resume_step
        opt.zero_grad()


def _auto(model: Any, opt: Any) -> Any:
    import lrkit

    loader = torch.utils.data.DataLoader(_data(), batch_size=None)
    return lrkit.auto(model, opt, loader, torch.nn.functional.cross_entropy, epochs=20, verbose=False)


@pytest.mark.parametrize("nan_after", [170, 200])
def test_a_resumed_run_is_the_run_that_never_stopped(nan_after: int) -> None:
    """A NaN at step 30, a checkpoint at 148, a NaN at ``nan_after``: the run resumed from the
    checkpoint (the scheduler built from its saved state, the guard loading its state_dict) rolls back
    to the same snapshot and ends with the same parameters, events and cuts as the run that never
    stopped. Before, the resumed guard had no events, read multiplier 1.0 and took its snapshots at
    148, 164, ...: the NaN at 170 went back to 164, not 160."""
    import lrkit

    model, opt = _fresh()
    run = _auto(model, opt)
    steps = run.remaining_steps
    _train(model, opt, run.scheduler, run.guard, 0, steps, {30, nan_after})
    whole = (list(model.parameters()), run.guard.events, run.guard.multiplier, run.scheduler.multiplier)

    model, opt = _fresh()
    run = _auto(model, opt)
    assert run.remaining_steps == steps
    _train(model, opt, run.scheduler, run.guard, 0, 148, {30})
    buf = io.BytesIO()
    torch.save(
        {"model": model.state_dict(), "optimizer": opt.state_dict(), "scheduler": run.scheduler.state_dict(),
         "guard": run.guard.state_dict(), "rng": torch.get_rng_state(), "step": 148,
         "remaining_steps": run.remaining_steps},
        buf,
    )  # fmt: skip
    buf.seek(0)
    saved = torch.load(buf)  # weights_only: the guard's state is plain data

    model, opt = _fresh()  # a new process: no lrkit.auto (it would run its ramp on the trained model)
    model.load_state_dict(saved["model"])
    opt.load_state_dict(saved["optimizer"])
    state = saved["scheduler"]
    sched = lrkit.torch.scheduler(opt, state["schedule"], total_steps=state["total_steps"])
    sched.load_state_dict(state)
    torch.set_rng_state(saved["rng"])
    guard = lrkit.control.DivergenceGuard(
        model, opt, sched, threshold=None, snapshot_every=saved["guard"]["snapshot_every"]
    )
    guard.load_state_dict(saved["guard"])
    assert repr(guard.events) == repr(whole[1][:1]) and guard.multiplier == 0.5 == sched.multiplier
    _train(model, opt, sched, guard, saved["step"], saved["remaining_steps"], {nan_after})
    assert [e.snapshot_step for e in guard.events] == [e.snapshot_step for e in whole[1]]
    assert repr(guard.events) == repr(whole[1]) and (guard.multiplier, sched.multiplier) == whole[2:]
    assert all(torch.equal(a, b) for a, b in zip(model.parameters(), whole[0], strict=True))


def test_the_state_is_checked_before_anything_changes() -> None:
    from lrkit.control import DivergenceGuard

    model, opt = _fresh()
    guard = DivergenceGuard(model, opt, threshold=None, snapshot_every=4)
    for step, loss in enumerate([1.0, 0.9, float("nan"), 0.9, 0.8]):
        guard.check(loss, step)
    state = guard.state_dict()
    other = DivergenceGuard(model, opt, threshold=None)
    with pytest.raises(ValueError, match="not a DivergenceGuard state_dict"):
        other.load_state_dict({**state, "format": "x"})
    with pytest.raises(ValueError, match=r"corrupt state: .*since_snapshot must be an integer >= -1"):
        other.load_state_dict({**state, "since_snapshot": 1.5})
    assert other.events == [] and other.multiplier == 1.0
    other.load_state_dict(state)
    assert repr(other.events) == repr(guard.events) and other.multiplier == 0.5 and other.resume_step == 0


def test_a_nan_at_the_first_step_after_a_resume_says_the_snapshots_were_not_saved() -> None:
    """It said "before any good step ... check the data, the model (its initialisation ...)": wrong for
    a run that trained 3 steps before its checkpoint."""
    from lrkit.control import DivergenceError, DivergenceGuard

    model, opt = _fresh()
    guard = DivergenceGuard(model, opt, threshold=None, snapshot_every=4)
    for step, loss in enumerate([1.0, 0.9, 0.8]):
        guard.check(loss, step)
    resumed = DivergenceGuard(model, opt, threshold=None, snapshot_every=4)
    resumed.load_state_dict(guard.state_dict())
    with pytest.raises(
        DivergenceError,
        match=r"at step 3 the loss is nan, the first step checked since the guard's state was loaded",
    ):
        resumed.check(float("nan"), 3)
