"""``find_lr`` run after the scheduler was built: its optimizer steps are not the run's. The scheduler's
optimizer step hook counted them, so the run's first ``step()`` gave a false EpochwiseSteppingWarning
('called once for 41 optimizer steps') and used up that once-per-scheduler warning."""

from __future__ import annotations

import warnings

import pytest

torch = pytest.importorskip("torch")

import lrkit  # noqa: E402
from lrkit.adapters.torch import EpochwiseSteppingWarning  # noqa: E402

pytestmark = pytest.mark.usefixtures("one_torch_thread")

SPEC = "warmup(10) >> cosine(lr=0.1)"


def _task() -> tuple[torch.nn.Module, torch.optim.Optimizer, torch.utils.data.DataLoader]:
    g = torch.Generator().manual_seed(0)
    x = torch.randn(256, 20, generator=g)
    y = (x[:, :5].sum(1) > 0).long()
    loader = torch.utils.data.DataLoader(
        torch.utils.data.TensorDataset(x, y), batch_size=32, shuffle=True, generator=g
    )
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(20, 64), torch.nn.ReLU(), torch.nn.Linear(64, 2))
    return model, torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9), loader


def _train_step(model: torch.nn.Module, opt: torch.optim.Optimizer, loader: object) -> None:
    xb, yb = next(iter(loader))  # type: ignore[call-overload]
    torch.nn.functional.cross_entropy(model(xb), yb).backward()
    opt.step()
    opt.zero_grad()


def test_find_lr_after_the_scheduler_leaves_its_step_count_as_it_was() -> None:
    model, opt, loader = _task()
    sched = lrkit.torch.scheduler(opt, SPEC, total_steps=100)
    lrkit.find_lr(model, opt, loader, torch.nn.functional.cross_entropy, repeats=1, num_steps=40)
    flag = sched._flag
    assert (flag.count, flag.stepped, flag.ever, flag.taken, flag.found) == (0, False, False, False, [])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        _train_step(model, opt, loader)
        sched.step()
    assert sched.last_epoch == 1
    assert opt.param_groups[0]["lr"] == lrkit.parse(SPEC).resolve(total_steps=100)(1)
    # the warning was not used up: a real once-per-three-steps loop still gets it
    with pytest.warns(EpochwiseSteppingWarning, match="once for 3 optimizer steps"):
        for _ in range(3):
            _train_step(model, opt, loader)
        sched.step()


def test_find_lr_mid_run_puts_back_the_steps_the_scheduler_has_yet_to_count() -> None:
    model, opt, loader = _task()
    sched = lrkit.torch.scheduler(opt, SPEC, total_steps=100)
    for _ in range(5):
        _train_step(model, opt, loader)
        sched.step()
    _train_step(model, opt, loader)  # an optimizer step the scheduler has not followed yet
    lrkit.find_lr(model, opt, loader, torch.nn.functional.cross_entropy, repeats=1, num_steps=20)
    assert (sched._flag.count, sched._flag.stepped) == (1, True)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        sched.step()
    assert sched.last_epoch == 6
