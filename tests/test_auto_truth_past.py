"""Training past ``remaining_steps`` after ``lrkit.auto``: the usual ``for epoch in range(EPOCHS)`` loop
trains the kept ramp's steps again, at the schedule's last LR (0 for WSD); the first such step warns."""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import pytest

torch = pytest.importorskip("torch")

from .auto_loops import blobs, guarded_steps, mlp  # noqa: E402  (after the importorskip)

pytestmark = pytest.mark.usefixtures("one_torch_thread")

EPOCHS = 10


def _setup() -> tuple[Any, Any, Any, Any]:
    import lrkit

    loader, model = blobs(), mlp()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    run = lrkit.auto(model, opt, loader, torch.nn.functional.cross_entropy, epochs=EPOCHS, verbose=False)
    return model, opt, loader, run


def test_an_epoch_loop_after_auto_warns_once_at_the_first_step_past_the_run() -> None:
    """48 of 368 steps were trained at LR exactly 0, without a word."""
    from lrkit.auto import PastTheRunWarning

    model, opt, loader, run = _setup()
    assert run.search == "in_run" and run.trained_steps > 0
    lrs = []
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for _ in range(EPOCHS):
            for x, y in loader:
                torch.nn.functional.cross_entropy(model(x), y).backward()
                lrs.append(opt.param_groups[0]["lr"])
                opt.step()  # the line the warning points at
                run.scheduler.step()
                opt.zero_grad()
    past = [w for w in caught if issubclass(w.category, PastTheRunWarning)]
    assert len(past) == 1, [str(w.message) for w in caught]
    assert (
        past[0].filename == __file__
        and "opt.step()" in Path(__file__).read_text().splitlines()[past[0].lineno - 1]
    )
    text = str(past[0].message)
    assert f"covers the {run.remaining_steps} steps left" in text and "Train run.remaining_steps" in text
    assert lrs[run.remaining_steps :] == [0.0] * run.trained_steps  # WSD ends at 0: what it warns of


def test_the_guides_loop_of_remaining_steps_does_not_warn() -> None:
    model, opt, loader, run = _setup()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        step = guarded_steps(run, model, opt, loader, run.remaining_steps)
    assert step == run.remaining_steps
