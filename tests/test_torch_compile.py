"""The in-graph scheduler under torch.compile (one graph, no recompile when the LR changes) and inside
a CUDA graph (GPU only). Kept few and small: compiling is slow on two cores."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
import torch
from torch._dynamo.testing import CompileCounter

import lrkit

SCHEDULE = lrkit.Warmup(5) >> lrkit.Cosine(lr=1.0, min_lr=0.1)
TOTAL = 20


def _expected(k: int, base: float = 0.1) -> float:
    return base * SCHEDULE.resolve(total_steps=TOTAL)(k)


def _model_and_opt(
    lr: float | torch.Tensor, device: str = "cpu"
) -> tuple[torch.nn.Module, torch.optim.Optimizer]:
    torch.manual_seed(0)
    model = torch.nn.Linear(4, 1).to(device)
    return model, torch.optim.SGD(model.parameters(), lr=lr)


@pytest.fixture(autouse=True)
def _fresh_dynamo() -> Any:
    torch._dynamo.reset()
    yield
    torch._dynamo.reset()


def test_in_graph_step_is_one_fullgraph_for_every_lr() -> None:
    _, opt = _model_and_opt(torch.tensor(0.1))
    sch = lrkit.torch.scheduler(opt, SCHEDULE, total_steps=TOTAL, relative=True, in_graph=True)
    cnt = CompileCounter()
    step = torch.compile(sch.step, backend=cnt, fullgraph=True)
    for k in range(1, 26):
        step()
        cut = 0.5 if k > 12 else 1.0
        assert float(opt.param_groups[0]["lr"]) == pytest.approx(cut * _expected(k), rel=1e-6)
        if k == 12:
            sch.scale(0.5)  # a controller cut is a device write, not a new constant
    assert cnt.frame_count == 1
    assert float(opt.param_groups[0]["lr"]) == pytest.approx(0.5 * _expected(25), rel=1e-6)


def test_compiled_optimizer_step_with_in_graph_schedule_does_not_recompile() -> None:
    """The torch.compile recipe: forward/backward eager, ``opt.step(); sched.step()`` compiled."""
    model, opt = _model_and_opt(torch.tensor(0.1))
    sch = lrkit.torch.scheduler(opt, SCHEDULE, total_steps=TOTAL, relative=True, in_graph=True)
    cnt = CompileCounter()

    @torch.compile(backend=cnt)
    def opt_step() -> None:
        opt.step()
        sch.step()

    x, y = torch.randn(8, 4), torch.randn(8, 1)
    graphs_after_first = None
    for k in range(1, 26):
        torch.nn.functional.mse_loss(model(x), y).backward()
        opt_step()
        opt.zero_grad()
        if k == 1:
            graphs_after_first = cnt.frame_count
        assert float(opt.param_groups[0]["lr"]) == pytest.approx(_expected(k), rel=1e-6)
    assert cnt.frame_count == graphs_after_first


def _train_step_graphs(with_schedule: bool) -> int:
    """Graphs dynamo compiles for a training step with ``begin_step()`` before the forward (or a
    constant LR), over 20 steps; checks the LRs on the way."""
    torch._dynamo.reset()
    model, opt = _model_and_opt(torch.tensor(0.1))
    sch = None
    if with_schedule:
        sch = lrkit.torch.scheduler(opt, SCHEDULE, total_steps=TOTAL, relative=True, in_graph=True)
    cnt = CompileCounter()
    x, y = torch.randn(8, 4), torch.randn(8, 1)

    @torch.compile(backend=cnt)
    def train_step() -> None:
        opt.zero_grad()  # a graph break of torch's own
        if sch is not None:
            sch.begin_step()
        torch.nn.functional.mse_loss(model(x), y).backward()
        opt.step()

    for k in range(20):
        train_step()
        if sch is not None:  # the LR this step used is still in the group
            assert float(opt.param_groups[0]["lr"]) == pytest.approx(_expected(k), rel=1e-6)
            assert sch.last_epoch == k + 1
    return cnt.frame_count


def test_begin_step_joins_the_forward_graph() -> None:
    """``begin_step()`` before the forward of a compiled step: the LRs of ``step()``-after-the-
    optimizer, and not one graph more than the same step with a constant LR."""
    assert _train_step_graphs(True) == _train_step_graphs(False)


def test_host_scheduler_with_tensor_lr_and_compiled_optimizer() -> None:
    """The host scheduler fills a tensor LR in place: the compiled optimizer step is not recompiled,
    and its step hook (which the scheduler follows) still fires."""
    model, opt = _model_and_opt(torch.tensor(0.1))
    sch = lrkit.torch.scheduler(opt, SCHEDULE, total_steps=TOTAL, relative=True)
    cnt = CompileCounter()
    opt_step = torch.compile(opt.step, backend=cnt)
    x, y = torch.randn(8, 4), torch.randn(8, 1)
    for k in range(1, 26):
        torch.nn.functional.mse_loss(model(x), y).backward()
        opt_step()
        opt.zero_grad()
        sch.step()
        assert sch.last_epoch == k
        assert float(opt.param_groups[0]["lr"]) == pytest.approx(_expected(k), rel=1e-6)
    assert cnt.frame_count == 1


def test_fused_update_compiles_with_inductor() -> None:
    """fuse=True: the update runs as one compiled (inductor) kernel outside a compiled region."""
    _, opt = _model_and_opt(torch.tensor(0.1))
    sch = lrkit.torch.scheduler(opt, SCHEDULE, total_steps=TOTAL, relative=True, in_graph=True, fuse=True)
    got = []
    for _ in range(1, 8):
        sch.step()
        got.append(float(opt.param_groups[0]["lr"]))
    assert got == pytest.approx([_expected(k) for k in range(1, 8)], rel=1e-6)
    assert sch._update_fused is not None  # the compiled path was the one taken


@pytest.mark.skipif(not torch.cuda.is_available(), reason="CUDA graphs need a GPU")
def test_whole_step_in_a_cuda_graph_follows_the_schedule() -> None:  # pragma: no cover - GPU only
    model, opt = _model_and_opt(torch.tensor(0.1, device="cuda"), device="cuda")
    opt = torch.optim.AdamW(model.parameters(), lr=torch.tensor(0.1, device="cuda"), capturable=True)
    sch = lrkit.torch.scheduler(opt, SCHEDULE, total_steps=TOTAL, relative=True, in_graph=True)
    x, y = torch.randn(8, 4, device="cuda"), torch.randn(8, 1, device="cuda")

    def step() -> None:
        torch.nn.functional.mse_loss(model(x), y).backward()
        opt.step()
        opt.zero_grad(set_to_none=False)
        sch.step()

    side = torch.cuda.Stream()
    side.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(side):
        for _ in range(3):
            step()
    torch.cuda.current_stream().wait_stream(side)
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        step()
    sch.set_step(0)
    for k in range(1, 26):
        graph.replay()
        assert float(opt.param_groups[0]["lr"]) == pytest.approx(_expected(k), rel=1e-6)


COMPILED = [
    lrkit.WSD(lr=1.0, steps=100, warmup=10, decay=20),  # 1-sqrt cool-down (zero_safe)
    lrkit.OneCycle(max_lr=1.0, steps=100, three_phase=True),
    lrkit.CosineRestarts(lr=1.0, period=10, mult=2.0, decay=0.5),
    lrkit.Polynomial(lr=1.0, steps=100, power=0.5),
    lrkit.Cyclic(lr=0.1, max_lr=1.0, step_size_up=10, mode="triangular2"),
    lrkit.Repeat(lrkit.Piecewise(points=[(0, 0.0), (10, 1.0), (30, 0.1)]), times=2),
    (lrkit.Warmup(5) >> lrkit.MultiStep(lr=1.0, milestones=[20, 50])) * 0.5,
]


@pytest.mark.parametrize("s", COMPILED, ids=lambda s: s.name)
def test_schedules_compile_into_one_graph_for_every_step(s: lrkit.Schedule) -> None:
    """``s(t, xp=xp)`` under ``torch.compile(fullgraph=True)``: no graph break (no host sync, no
    ``.item()``), one graph per step dtype whatever the step's value, numpy's values (float64)."""
    from array_api_compat import array_namespace

    xp = array_namespace(torch.zeros(()))  # outside the compiled region
    cnt = CompileCounter()
    f = torch.compile(lambda t: s(t, xp=xp), backend=cnt, fullgraph=True)
    ks = [0, 1, 9, 10, 25, 80, 99, 100, 2**40]
    for k in ks:
        assert float(f(torch.tensor(float(k), dtype=torch.float64))) == pytest.approx(
            s(k), rel=1e-12, abs=1e-15
        )
    assert cnt.frame_count == 1
    np.testing.assert_allclose(f(torch.tensor(ks)).numpy(), s(np.array(ks)), rtol=1e-5, atol=1e-7)  # float32
    assert float(f(torch.tensor(3.0, dtype=torch.bfloat16))) == pytest.approx(s(3), rel=1e-6)
    assert cnt.frame_count == 3  # one graph more for each new step dtype
    t = torch.tensor([float(k) for k in ks], dtype=torch.float64, requires_grad=True)
    (g,) = torch.autograd.grad(f(t).sum(), t)
    assert bool(torch.isfinite(g).all())
