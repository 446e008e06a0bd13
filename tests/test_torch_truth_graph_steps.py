"""The in-graph scheduler advanced its device counter on every ``step()`` or ``begin_step()``: calling
both in one iteration ran the schedule twice as fast without a word (the second kind of call now
raises), and a step GradScaler skipped advanced it, while the host scheduler does not count one
(``follow_optimizer=True`` now makes the in-graph one count as the host one does)."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")

import lrkit  # noqa: E402


def _graph() -> tuple[torch.optim.Optimizer, lrkit.torch.GraphScheduler]:
    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=torch.tensor(0.1))
    sched = lrkit.torch.scheduler(opt, "warmup(5) >> cosine(lr=0.1)", total_steps=20, in_graph=True)
    assert isinstance(sched, lrkit.torch.GraphScheduler)
    return opt, sched


def test_step_after_begin_step_raises_and_does_not_advance() -> None:
    opt, sched = _graph()
    sched.begin_step()
    opt.step()
    with pytest.raises(RuntimeError, match=r"step\(\) after begin_step\(\).*twice as fast"):
        sched.step()
    assert sched.last_epoch == 1
    sched.begin_step()  # the kind it started with goes on
    assert sched.last_epoch == 2


def test_begin_step_after_step_raises() -> None:
    opt, sched = _graph()
    opt.step()
    sched.step()
    with pytest.raises(RuntimeError, match=r"begin_step\(\) after step\(\)"):
        sched.begin_step()
    assert sched.last_epoch == 1


def test_set_step_and_step_epoch_are_not_advancing_calls() -> None:
    _, sched = _graph()
    sched.set_step(3)
    sched.step(epoch=4)
    sched.begin_step()
    assert sched.last_epoch == 5


SPEC = "warmup(5) >> cosine(lr=1e-3)"


def _scaled_loop(
    opt: torch.optim.Optimizer, model: torch.nn.Module, sched: object, skip: set[int], begin: bool
) -> list[float]:
    """10 steps under a GradScaler, inf losses at ``skip`` (the step is skipped); the LR of each."""
    scaler = torch.amp.GradScaler("cpu")
    lrs = []
    for i in range(10):
        opt.zero_grad()
        if begin:
            sched.begin_step()  # type: ignore[attr-defined]
        lrs.append(float(opt.param_groups[0]["lr"]))
        loss = model(torch.randn(8, 4)).pow(2).mean() * (float("inf") if i in skip else 1.0)
        scaler.scale(loss).backward()
        scaler.step(opt)
        scaler.update()
        if not begin:
            sched.step()  # type: ignore[attr-defined]
    return lrs


@pytest.mark.parametrize("fused", [False, True])
@pytest.mark.parametrize("begin", [False, True])
def test_follow_optimizer_in_graph_does_not_count_skipped_steps(fused: bool, begin: bool) -> None:
    """The host scheduler's LRs exactly, with ``step()`` after the optimizer or ``begin_step()`` before
    the forward; a fused optimizer's skips are read on the device."""
    skip = {0, 1, 2, 5}
    torch.manual_seed(0)
    m = torch.nn.Linear(4, 1)
    opt = torch.optim.AdamW(m.parameters(), lr=torch.tensor(1e-3), fused=fused)
    graph = lrkit.torch.scheduler(opt, SPEC, total_steps=20, in_graph=True, follow_optimizer=True)
    got = _scaled_loop(opt, m, graph, skip, begin)
    torch.manual_seed(0)
    m2 = torch.nn.Linear(4, 1)
    opt_h = torch.optim.AdamW(m2.parameters(), lr=1e-3, fused=fused)
    host = lrkit.torch.scheduler(opt_h, SPEC, total_steps=20)
    want = _scaled_loop(opt_h, m2, host, skip, False)
    assert got == pytest.approx(want, rel=1e-6)
    assert graph.last_epoch == host.last_epoch == 6  # 6 taken (begin_step: the last one counted ahead)


def test_a_copy_follows_its_own_optimizer() -> None:
    import copy

    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=torch.tensor(0.1))
    sched = lrkit.torch.scheduler(opt, SPEC, total_steps=20, in_graph=True, follow_optimizer=True)
    opt.step()
    twin = copy.deepcopy(sched)
    sched.step()
    twin.step()  # the copied flag: the optimizer had stepped
    twin.step()  # no step of the copied optimizer since
    assert (sched.last_epoch, twin.last_epoch) == (1, 1)
    twin.optimizer.step()
    twin.step()
    assert (sched.last_epoch, twin.last_epoch) == (1, 2)


def test_gradscaler_skipped_steps_advance_the_default_in_graph_schedule_as_documented() -> None:
    """The documented default, unlike the host scheduler: 3 skipped of 10 steps, counted 10 and 7."""
    m = torch.nn.Linear(4, 1)
    opt_g = torch.optim.AdamW(m.parameters(), lr=torch.tensor(1e-3))
    graph = lrkit.torch.scheduler(opt_g, "warmup(5) >> cosine(lr=1e-3)", total_steps=20, in_graph=True)
    m2 = torch.nn.Linear(4, 1)
    opt_h = torch.optim.AdamW(m2.parameters(), lr=1e-3)
    host = lrkit.torch.scheduler(opt_h, "warmup(5) >> cosine(lr=1e-3)", total_steps=20)
    for model, opt, sched in ((m, opt_g, graph), (m2, opt_h, host)):
        scaler = torch.amp.GradScaler("cpu")
        for i in range(10):
            loss = model(torch.randn(8, 4)).pow(2).mean() * (float("inf") if i < 3 else 1.0)
            scaler.scale(loss).backward()
            scaler.step(opt)
            scaler.update()
            opt.zero_grad()
            sched.step()
    assert (graph.last_epoch, host.last_epoch) == (10, 7)


@pytest.mark.parametrize("begin", [False, True])
def test_follow_optimizer_in_graph_under_torch_compile_compiles_once(begin: bool) -> None:
    """``opt.step(); sched.step()`` compiled, or ``begin_step()`` in a compiled training step: the
    schedule's LRs, and no graph compiled after the first calls as the LR changes."""
    from torch._dynamo.testing import CompileCounter

    ref = lrkit.parse(SPEC).resolve(total_steps=20)
    x, y = torch.randn(8, 4), torch.randn(8, 1)
    m = torch.nn.Linear(4, 1)
    opt = torch.optim.SGD(m.parameters(), lr=torch.tensor(1e-3))
    sched = lrkit.torch.scheduler(opt, SPEC, total_steps=20, in_graph=True, follow_optimizer=True)
    cnt = CompileCounter()

    @torch.compile(backend=cnt)
    def train_step() -> None:
        opt.zero_grad()
        if begin:
            sched.begin_step()
        torch.nn.functional.mse_loss(m(x), y).backward()
        opt.step()
        if not begin:
            sched.step()

    torch._dynamo.reset()
    try:
        graphs = []
        for k in range(12):
            train_step()
            graphs.append(cnt.frame_count)
            used = k if begin else k + 1  # begin_step: the LR of this step; step(): of the next
            assert float(opt.param_groups[0]["lr"]) == pytest.approx(ref(used), rel=1e-6)
        assert graphs[2:] == [graphs[2]] * 10, graphs
    finally:
        torch._dynamo.reset()
