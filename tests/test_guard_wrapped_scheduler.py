"""DivergenceGuard given accelerate's prepared scheduler (which wraps lrkit's and passes on step() and
state_dict() only) says to pass the wrapped one, its ``.scheduler``; torch's own schedulers are still
refused for undoing the cut."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")
accelerate = pytest.importorskip("accelerate")

import lrkit  # noqa: E402
from lrkit.control import DivergenceGuard  # noqa: E402


def test_a_prepared_scheduler_is_refused_with_where_the_lrkit_one_is() -> None:
    model = torch.nn.Linear(2, 1)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    sched = lrkit.torch.scheduler(opt, "cosine(lr=0.1)", total_steps=10)
    acc = accelerate.Accelerator(cpu=True)
    model, opt, prepared = acc.prepare(model, opt, sched)
    says = (
        r"got AcceleratedScheduler without .*; it wraps an lrkit scheduler \(accelerate's prepared "
        r"scheduler passes on step\(\) and state_dict\(\) only\): pass the wrapped one, its \.scheduler$"
    )
    with pytest.raises(TypeError, match=says):
        DivergenceGuard(model, opt, prepared)
    DivergenceGuard(model, opt, prepared.scheduler)  # taken


def test_torchs_own_scheduler_is_still_refused_for_undoing_the_cut() -> None:
    model = torch.nn.Linear(2, 1)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    with pytest.raises(TypeError, match=r"torch's own schedulers recompute the LR and would undo the cut$"):
        DivergenceGuard(model, opt, torch.optim.lr_scheduler.StepLR(opt, 1))
