"""lrkit's torch scheduler in Hugging Face accelerate (CPU, one process), as people call it: built on the
optimizer that ``accelerator.prepare`` returned (what transformers' ``Trainer.create_scheduler`` does),
prepared itself with ``accelerator.prepare(scheduler)``, with gradient accumulation, and saved/restored
with ``accelerator.save_state``/``load_state``.

Reference: torch's own ``LambdaLR`` driven by the same loop with ``lambda k: schedule(k)`` (relative), which
accelerate has always supported; the LRs must be equal at every step.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import torch

accelerate = pytest.importorskip("accelerate")
from accelerate.state import AcceleratorState, GradientState  # noqa: E402

import lrkit  # noqa: E402

pytestmark = pytest.mark.usefixtures("one_torch_thread")

SPEC = lrkit.parse("warmup(3, start=0.1) >> cosine(lr=1.0, min_lr=0.05)")
TOTAL = 12


@pytest.fixture(autouse=True)
def fresh_accelerate_state() -> Iterator[None]:
    """accelerate keeps process-wide singletons; each test builds its own Accelerator."""
    AcceleratorState._reset_state(True)
    GradientState._reset_state()
    yield
    AcceleratorState._reset_state(True)
    GradientState._reset_state()


def _parts(seed: int = 0) -> tuple[torch.nn.Module, torch.optim.Optimizer, Any]:
    torch.manual_seed(seed)
    model = torch.nn.Linear(3, 1)
    opt = torch.optim.AdamW(model.parameters(), lr=0.01)
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(96, 3, generator=g)
    data = torch.utils.data.TensorDataset(x, x.sum(1, keepdim=True))
    return model, opt, torch.utils.data.DataLoader(data, batch_size=2)


def _train(accumulation: int, make_scheduler: Any, prepare_scheduler: bool, steps: int) -> list[float]:
    """The loop of accelerate's README: LR recorded before every micro-batch."""
    acc = accelerate.Accelerator(cpu=True, gradient_accumulation_steps=accumulation)
    model, opt, loader = _parts()
    model, opt, loader = acc.prepare(model, opt, loader)
    sched = make_scheduler(opt)  # on the AcceleratedOptimizer, as Trainer.create_scheduler does
    if prepare_scheduler:
        sched = acc.prepare(sched)
    seen = []
    for i, (x, y) in enumerate(loader):
        if i >= steps * accumulation:
            break
        with acc.accumulate(model):
            seen.append(opt.param_groups[0]["lr"])
            loss = torch.nn.functional.mse_loss(model(x), y)
            acc.backward(loss)
            opt.step()
            sched.step()
            opt.zero_grad()
    return seen


def _lrkit(opt: torch.optim.Optimizer) -> Any:
    return lrkit.torch.scheduler(opt, SPEC, total_steps=TOTAL, relative=True)


def _lambda(opt: torch.optim.Optimizer) -> Any:
    s = SPEC.resolve(total_steps=TOTAL)
    return torch.optim.lr_scheduler.LambdaLR(opt, lambda k: float(s(k)))


@pytest.mark.parametrize("accumulation", [1, 2, 3])
@pytest.mark.parametrize("prepare_scheduler", [False, True])
def test_scheduler_on_an_accelerated_optimizer_matches_lambda_lr(
    accumulation: int, prepare_scheduler: bool
) -> None:
    """Unprepared, lrkit's scheduler still advances only when the optimizer really stepped (it follows
    the wrapped optimizer's step hook); LambdaLR needs ``accelerator.prepare`` for that, so the reference
    is always prepared."""
    got = _train(accumulation, _lrkit, prepare_scheduler, TOTAL)
    want = _train(accumulation, _lambda, True, TOTAL)
    assert len(got) == TOTAL * accumulation
    assert got == pytest.approx(want, rel=1e-12, abs=1e-15)
    # and the schedule itself: one schedule step per optimizer step, not per micro-batch
    s = SPEC.resolve(total_steps=TOTAL)
    assert got == pytest.approx([0.01 * s(i // accumulation) for i in range(len(got))], rel=1e-12)


def test_save_state_and_load_state_resume_exactly(tmp_path: Path) -> None:
    def run(stop: int | None, resume: Path | None) -> tuple[list[float], Any]:
        AcceleratorState._reset_state(True)
        GradientState._reset_state()
        acc = accelerate.Accelerator(cpu=True)
        model, opt, loader = _parts()
        model, opt, loader = acc.prepare(model, opt, loader)
        sched = acc.prepare(_lrkit(opt))
        start = 0
        if resume is not None:
            acc.load_state(str(resume))
            start = sched.scheduler.last_epoch
        seen = []
        for i, (x, y) in enumerate(loader):
            if i < start:
                continue
            if i == stop or i >= TOTAL:
                acc.save_state(str(tmp_path / "ckpt"))
                break
            seen.append(opt.param_groups[0]["lr"])
            acc.backward(torch.nn.functional.mse_loss(model(x), y))
            opt.step()
            sched.step()
            opt.zero_grad()
        return seen, sched

    want, _ = run(None, None)
    first, _ = run(5, None)
    second, sched = run(None, tmp_path / "ckpt")
    assert sched.scheduler.last_epoch == TOTAL
    assert first + second == want


def test_a_wrapper_without_hooks_and_without_an_inner_optimizer_is_refused_clearly() -> None:
    class Bare(torch.optim.Optimizer):
        def __init__(self, groups: list[dict[str, Any]]) -> None:  # no super().__init__: no hooks
            self.param_groups = groups

    bare = Bare([{"params": [torch.nn.Parameter(torch.zeros(1))], "lr": 0.1}])
    with pytest.raises(TypeError, match="follow_optimizer=False"):
        lrkit.torch.scheduler(bare, "constant(lr=0.1)")
    sch = lrkit.torch.scheduler(bare, "linear(lr=0.1, steps=4)", follow_optimizer=False)
    sch.step()
    assert bare.param_groups[0]["lr"] == pytest.approx(0.075)


def _loop(
    acc: Any, model: Any, opt: Any, loader: Any, sched: Any, updates: int, accumulation: int
) -> list[float]:
    seen = []
    for i, (x, y) in enumerate(loader):
        if i >= updates * accumulation:
            break
        with acc.accumulate(model):
            seen.append(opt.param_groups[0]["lr"])
            acc.backward(torch.nn.functional.mse_loss(model(x), y))
            opt.step()
            sched.step()
            opt.zero_grad()
    return seen


@pytest.mark.parametrize("accumulation", [1, 3])
def test_the_scheduler_prepared_with_the_optimizer_it_was_built_on(accumulation: int) -> None:
    """accelerate's own pattern: ``model, opt, loader, sched = accelerator.prepare(model, opt, loader,
    sched)`` with the scheduler built on the unprepared optimizer; one schedule step per update."""
    acc = accelerate.Accelerator(cpu=True, gradient_accumulation_steps=accumulation)
    model, opt, loader = _parts()
    sched = _lrkit(opt)
    model, opt, loader, sched = acc.prepare(model, opt, loader, sched)
    got = _loop(acc, model, opt, loader, sched, TOTAL, accumulation)
    s = SPEC.resolve(total_steps=TOTAL)
    assert got == pytest.approx([0.01 * s(i // accumulation) for i in range(TOTAL * accumulation)], rel=1e-12)


def test_with_several_processes_it_counts_the_optimizer_steps_of_a_process(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Without ``split_batches``, accelerate's scheduler wrapper calls ``step()`` once per process after
    each update (its convention: a torch scheduler's length counts the batches of all processes). lrkit's
    scheduler advances once per optimizer step whatever the number of calls, so its ``total_steps`` is
    the updates of one process (``len(loader)`` after ``prepare``), as the guide says. Two processes are
    simulated by the count accelerate's wrapper reads; LambdaLR shows the wrapper's two calls."""
    import accelerate.scheduler

    class TwoProcesses:
        num_processes = 2

    acc = accelerate.Accelerator(cpu=True, gradient_accumulation_steps=2)
    model, opt, loader = _parts()
    model, opt, loader = acc.prepare(model, opt, loader)
    sched = acc.prepare(_lrkit(opt))
    monkeypatch.setattr(accelerate.scheduler, "AcceleratorState", TwoProcesses)
    got = _loop(acc, model, opt, loader, sched, 6, 2)
    s = SPEC.resolve(total_steps=TOTAL)
    assert got == pytest.approx([0.01 * s(i // 2) for i in range(12)], rel=1e-12)

    reference = torch.optim.lr_scheduler.LambdaLR(opt, lambda k: float(s(k)))
    prepared = acc.prepare(reference)
    got = _loop(acc, model, opt, loader, prepared, 6, 2)
    assert got == pytest.approx([0.01 * s(2 * (i // 2)) for i in range(12)], rel=1e-12)
