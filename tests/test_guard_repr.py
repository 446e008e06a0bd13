"""``repr(DivergenceGuard)`` shows its settings and where it stands (multiplier, events), as the schedules'
and the schedulers' reprs do; it was the default ``<lrkit.control.guard.DivergenceGuard object at 0x...>``."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")

import lrkit  # noqa: E402
from lrkit.control import DivergenceGuard  # noqa: E402


def _parts() -> tuple[torch.nn.Module, torch.optim.Optimizer]:
    model = torch.nn.Linear(1, 1)
    return model, torch.optim.SGD(model.parameters(), lr=0.1)


def test_the_defaults() -> None:
    assert repr(DivergenceGuard(*_parts())) == (
        "DivergenceGuard(factor=0.5, threshold=4.0, window=100, jump_steps=5, snapshot_every=100, "
        "max_recoveries=3, keep=2, multiplier=1, events=0)"
    )


def test_settings_that_are_not_the_defaults_are_shown() -> None:
    guard = DivergenceGuard(
        *_parts(),
        factor=0.25,
        threshold=None,
        window=10,
        jump_steps=2,
        snapshot_every=3,
        max_recoveries=0,
        keep=1,
        regrow_after=50,
        restore_rng=False,
        sync=False,
        snapshot_device="cpu",
    )
    assert repr(guard) == (
        "DivergenceGuard(factor=0.25, threshold=None, window=10, jump_steps=2, snapshot_every=3, "
        "max_recoveries=0, keep=1, regrow_after=50, restore_rng=False, sync=False, snapshot_device='cpu', "
        "multiplier=1, events=0)"
    )


def test_it_shows_the_cuts_and_events_not_the_model_or_scheduler() -> None:
    model, opt = _parts()
    sched = lrkit.torch.scheduler(opt, "cosine(lr=0.1)", total_steps=50)
    guard = DivergenceGuard(model, opt, sched, snapshot_every=1)
    assert [guard.check(x, i) for i, x in enumerate([1.0, float("nan")])] == [True, False]
    text = repr(guard)
    assert text.endswith(", multiplier=0.5, events=1)")
    assert "Linear" not in text and "SGD" not in text and "Scheduler" not in text and " at 0x" not in text
