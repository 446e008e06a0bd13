"""An interval='epoch' state saved before the epoch's step() (``epoch_pending``) resumes one epoch on in a
new scheduler, also when the optimizer stepped before the load (a zero-gradient step to create AdamW's
state, the LR finder); loading into the scheduler that made it is a rollback, not a resume."""

from __future__ import annotations

import warnings
from typing import Any

import pytest
import torch

import lrkit

SPE, EPOCHS = 4, 6


def _build() -> tuple[torch.nn.Module, torch.optim.Optimizer, Any]:
    torch.manual_seed(0)
    p = torch.nn.Linear(3, 1)
    o = torch.optim.AdamW(p.parameters(), lr=1e-2)
    s = lrkit.torch.scheduler(
        o, "cosine(lr=1e-2, steps=100%)", total_steps=SPE * EPOCHS, steps_per_epoch=SPE, interval="epoch"
    )
    return p, o, s


def _epoch(p: torch.nn.Module, o: torch.optim.Optimizer) -> None:
    for _ in range(SPE):
        for w in p.parameters():
            w.grad = torch.ones_like(w)
        o.step()


def _full() -> tuple[dict[str, Any], dict[str, Any], list[float]]:
    """The uninterrupted run: a checkpoint saved before epoch 2's step(), and the LRs of every epoch."""
    p, o, s = _build()
    lrs, ck = [], {}
    for epoch in range(EPOCHS):
        lrs.append(o.param_groups[0]["lr"])
        _epoch(p, o)
        if epoch == 2:
            ck = {"o": o.state_dict(), "s": s.state_dict()}
        s.step()
    return ck["o"], ck["s"], lrs


def _zero_grad_step(p: torch.nn.Module, o: torch.optim.Optimizer) -> None:
    """One optimizer step with zero gradients, to create AdamW's state before loading it."""
    for w in p.parameters():
        w.grad = torch.zeros_like(w)
    o.step()


def _find_lr(p: torch.nn.Module, o: torch.optim.Optimizer) -> None:
    """The LR finder on the resumed model and optimizer (20 optimizer steps, 5 epochs' worth)."""
    g = torch.Generator().manual_seed(0)
    x = torch.randn(64, 3, generator=g)
    data = torch.utils.data.TensorDataset(x, x.sum(1, keepdim=True))
    loader = torch.utils.data.DataLoader(data, batch_size=8)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        lrkit.find_lr(p, o, loader, torch.nn.functional.mse_loss, repeats=1, num_steps=20)


@pytest.mark.parametrize(
    "before", [None, _zero_grad_step, _find_lr], ids=["plain", "zero_grad_step", "find_lr"]
)
def test_a_pending_state_resumes_on_schedule_after_an_optimizer_step(before: Any) -> None:
    opt_state, sched_state, lrs = _full()
    assert sched_state["epoch_pending"] is True and sched_state["last_epoch"] == 2
    p, o, s = _build()
    if before is not None:
        before(p, o)
    o.load_state_dict(opt_state)
    s.load_state_dict(sched_state)
    assert s.last_epoch == 3
    got = []
    for _ in range(3, EPOCHS):
        got.append(o.param_groups[0]["lr"])
        _epoch(p, o)
        s.step()
    assert got == lrs[3:]


def test_loading_twice_into_the_scheduler_that_made_the_state_is_a_rollback_each_time() -> None:
    """A guard rolling back twice within the first epoch to a state saved at its end: the first load is
    into a scheduler that took an epoch of steps, the second into one just loaded: neither a resume."""
    p, o, s = _build()
    _epoch(p, o)
    snap = s.state_dict()
    assert snap["epoch_pending"] is True
    s.load_state_dict(snap)
    assert s.last_epoch == 0
    _zero_grad_step(p, o)  # fewer than an epoch's steps since the rollback
    s.load_state_dict(snap)
    assert s.last_epoch == 0
    _epoch(p, o)
    s.step()
    assert s.last_epoch == 1
