"""Warnings that fired in correct use (found by auditing this session's warnings): a GradScaler skipping the
first 16 steps of a float16 run or a 16-step accumulation warned that the optimizer never stepped; a
cosine over EPOCHS stepped once an epoch (torch's T_max=EPOCHS habit) was said to run 50x too slowly;
loading a guard's state after the scheduler's warned when the user had scaled the scheduler by hand."""

from __future__ import annotations

import warnings

import pytest

torch = pytest.importorskip("torch")

import lrkit  # noqa: E402
from lrkit.adapters.torch import EpochwiseSteppingWarning  # noqa: E402
from lrkit.control import DivergenceGuard  # noqa: E402


def _opt() -> torch.optim.Optimizer:
    return torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=0.1)


def test_a_scheduler_whose_total_counts_epochs_stepped_once_an_epoch_is_quiet() -> None:
    opt = _opt()
    sched = lrkit.torch.scheduler(opt, "cosine(lr=0.1)", total_steps=5)  # T_max=EPOCHS, step() per epoch
    lrs = []
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for _ in range(5):
            for _ in range(50):
                opt.step()
            sched.step()
            lrs.append(opt.param_groups[0]["lr"])
    assert lrs == pytest.approx([lrkit.parse("cosine(lr=0.1, steps=5)")(k) for k in range(1, 6)])


def test_a_step_per_epoch_on_a_run_counted_in_optimizer_steps_still_warns() -> None:
    opt = _opt()
    sched = lrkit.torch.scheduler(opt, "cosine(lr=0.1)", total_steps=250)  # 5 epochs x 50 steps
    with pytest.warns(EpochwiseSteppingWarning, match="once for 50 optimizer steps"):
        for _ in range(50):
            opt.step()
        sched.step()


def test_a_guard_loaded_after_its_scheduler_that_was_scaled_by_hand_is_quiet() -> None:
    torch.manual_seed(0)
    model = torch.nn.Linear(2, 1)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    sched = lrkit.torch.scheduler(opt, "cosine(lr=0.1)", total_steps=50)
    guard = DivergenceGuard(model, opt, sched, snapshot_every=2)
    sched.scale(0.5)  # the user's own cut
    for step in range(6):
        loss = model(torch.randn(2, 2)).pow(2).mean() * (float("nan") if step == 3 else 1.0)
        loss.backward()
        if guard.check(loss, step):
            opt.step()
            sched.step()
        opt.zero_grad()
    g_state, s_state = guard.state_dict(), sched.state_dict()
    opt2 = torch.optim.SGD(model.parameters(), lr=0.1)
    sched2 = lrkit.torch.scheduler(opt2, "cosine(lr=0.1)", total_steps=50)
    guard2 = DivergenceGuard(model, opt2, sched2, snapshot_every=2)
    sched2.load_state_dict(s_state)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        guard2.load_state_dict(g_state)
    assert sched2.multiplier == sched.multiplier


@pytest.mark.parametrize(("epochs_run", "warned"), [(4, False), (5, True)])
def test_an_epoch_loop_one_epoch_past_its_schedule_is_warned(epochs_run: int, warned: bool) -> None:
    """``for epoch in range(EPOCHS + 1)`` trained its last epoch at the schedule's end (0 for a cosine)
    unwarned: the one step let through past the end was, for interval='epoch', a whole epoch."""
    opt = _opt()
    sched = lrkit.torch.scheduler(opt, "cosine(lr=0.1)", interval="epoch", epochs=4, steps_per_epoch=5)
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        for _ in range(epochs_run):
            for _ in range(5):
                opt.step()
            sched.step()
    past = [w for w in seen if issubclass(w.category, lrkit.torch.PastTheRunWarning)]
    assert [str(w.message) for w in seen if w not in past] == []
    assert len(past) == warned
    if warned:
        assert "covers 4 epochs" in str(past[0].message) and "this is epoch 5" in str(past[0].message)
