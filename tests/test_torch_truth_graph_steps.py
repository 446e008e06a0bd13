"""The in-graph scheduler advances its device counter on every ``step()`` or ``begin_step()``: calling
both in one iteration ran the schedule twice as fast without a word. The second kind of call raises."""

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


def test_gradscaler_skipped_steps_advance_the_in_graph_schedule_as_documented() -> None:
    """The documented difference from the host scheduler: 3 skipped of 10 steps, counted 10 and 7."""
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
