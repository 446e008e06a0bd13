"""Resume: a scheduler restored from its state_dict at any step gives exactly the LRs of an
uninterrupted run (pytorch#162591, #29697), with no ``initial_lr`` needed in the new optimizer
(#160626). Checked as a property over random schedules, resume points and plateau metrics."""

from __future__ import annotations

import io
from typing import Any

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import lrkit
from lrkit.adapters.torch import BLOCK, one_cycle_momentum
from lrkit.control import Plateau


def _schedules(n: int) -> st.SearchStrategy[lrkit.Schedule]:
    """Random relative schedules (peak 1.0) that fit in ``n`` steps."""
    frac = st.integers(1, max(1, n // 3))
    return st.one_of(
        st.builds(
            lambda w, m: lrkit.Warmup(w) >> lrkit.Cosine(lr=1.0, min_lr=m),
            frac,
            st.sampled_from([0.0, 0.01, 0.1]),
        ),
        st.builds(lambda w: lrkit.Warmup(w, start=0.0) >> lrkit.Linear(lr=1.0, end_lr=0.0), frac),
        st.builds(
            lambda p: lrkit.OneCycle(max_lr=1.0, pct_start=p, steps="rest"), st.sampled_from([0.25, 0.3, 0.5])
        ),
        st.builds(
            lambda p, mult: lrkit.CosineRestarts(lr=1.0, period=p, mult=mult),
            frac,
            st.sampled_from([1.0, 2.0]),
        ),
        st.builds(
            lambda s, g: lrkit.StepDecay(lr=1.0, step_size=s, gamma=g), frac, st.sampled_from([0.1, 0.5])
        ),
        st.builds(lambda w: lrkit.WSD(lr=1.0, warmup=w, decay="30%"), frac),
        st.builds(lambda g: lrkit.Exponential(lr=1.0, gamma=g), st.sampled_from([0.9, 0.99])),
    )


def _make(
    schedule: lrkit.Schedule, n: int, plateau: bool, lrs: tuple[float, ...] = (0.1, 0.03)
) -> tuple[torch.optim.Optimizer, Any]:
    params = [torch.nn.Parameter(torch.zeros(2)) for _ in lrs]
    opt = torch.optim.SGD(
        [{"params": [p], "lr": lr} for p, lr in zip(params, lrs, strict=True)], momentum=0.9
    )
    pl = Plateau(patience=1, factor=0.5, min_lr=1e-3) if plateau else None
    return opt, lrkit.torch.scheduler(opt, schedule, total_steps=n, relative=True, plateau=pl)


def _run(opt: torch.optim.Optimizer, sch: Any, ks: range, metrics: list[float]) -> list[list[float]]:
    """Record the LRs at each step of ``ks``; report a metric every 3rd step."""
    out = []
    for k in ks:
        out.append([g["lr"] for g in opt.param_groups])
        if sch.plateau is not None and k % 3 == 2:
            sch.report(metrics[k % len(metrics)])
        opt.step()
        sch.step()
    return out


def _through_torch_save(state: dict[str, Any]) -> dict[str, Any]:
    buf = io.BytesIO()
    torch.save(state, buf)
    buf.seek(0)
    loaded: dict[str, Any] = torch.load(buf, weights_only=True)  # the safe default since torch 2.6
    return loaded


@settings(max_examples=40, deadline=None)
@given(
    data=st.data(),
    n=st.integers(8, 80),
    plateau=st.booleans(),
    metrics=st.lists(st.sampled_from([1.0, 0.9, 0.95, 1.2]), min_size=1, max_size=12),
)
def test_resume_at_any_step_equals_uninterrupted(
    data: st.DataObject, n: int, plateau: bool, metrics: list[float]
) -> None:
    schedule = data.draw(_schedules(n), label="schedule")
    k = data.draw(st.integers(0, n + 5), label="resume at")
    total = n + 10  # run past the end too: schedules hold their final value

    opt, sch = _make(schedule, n, plateau)
    want = _run(opt, sch, range(total), metrics)

    opt1, sch1 = _make(schedule, n, plateau)
    first = _run(opt1, sch1, range(k), metrics)
    state = _through_torch_save(sch1.state_dict())
    # a fresh process: new optimizer (no initial_lr in its groups), new scheduler, then the state
    opt2, sch2 = _make(schedule, n, plateau)
    sch2.load_state_dict(state)
    assert sch2.last_epoch == k
    second = _run(opt2, sch2, range(k, total), metrics)
    assert first + second == want  # exact: the same floats, not approximately


def test_resume_with_optimizer_state_loaded_first() -> None:
    """Optimizer state loaded before the scheduler is built: the groups hold a decayed lr; the scheduler
    takes the base LRs from its own state, not from the groups."""
    s = lrkit.Warmup(3) >> lrkit.Cosine(lr=1.0, min_lr=0.0)
    opt, sch = _make(s, 30, False)
    want = _run(opt, sch, range(30), [1.0])

    opt1, sch1 = _make(s, 30, False)
    _run(opt1, sch1, range(17), [1.0])
    opt_state = _through_torch_save(opt1.state_dict())
    sch_state = _through_torch_save(sch1.state_dict())

    params = [torch.nn.Parameter(torch.zeros(2)) for _ in range(2)]
    opt2 = torch.optim.SGD([{"params": [p]} for p in params], lr=0.5, momentum=0.9)  # a different lr even
    opt2.load_state_dict(opt_state)
    sch2 = lrkit.torch.scheduler(opt2, s, total_steps=30, relative=True)
    sch2.load_state_dict(sch_state)
    assert [g["lr"] for g in opt2.param_groups] == want[17]  # no off-by-one right after the resume
    assert _run(opt2, sch2, range(17, 30), [1.0]) == want[17:]


def test_resume_without_initial_lr_in_the_groups() -> None:
    """#160626: torch's schedulers raise KeyError('initial_lr') when resumed on a fresh optimizer."""
    s = lrkit.Cosine(lr=1.0, steps=20)
    opt1, sch1 = _make(s, 20, False)
    _run(opt1, sch1, range(9), [1.0])
    params = [torch.nn.Parameter(torch.zeros(2)) for _ in range(2)]
    opt2 = torch.optim.SGD([{"params": [p]} for p in params], lr=1.0)
    assert all("initial_lr" not in g for g in opt2.param_groups)
    sch2 = lrkit.torch.scheduler(opt2, s, relative=True)
    sch2.load_state_dict(sch1.state_dict())
    assert [g["lr"] for g in opt2.param_groups] == pytest.approx([0.1 * s(9), 0.03 * s(9)], rel=1e-15)


def test_resume_across_a_block_boundary_is_exact() -> None:
    s = lrkit.Cosine(lr=1.0, steps=3 * BLOCK)
    opt, sch = _make(s, 3 * BLOCK, False)
    sch.follow_optimizer = False
    for _ in range(BLOCK - 3):
        sch.step()
    state = sch.state_dict()
    want = []
    for _ in range(8):
        sch.step()
        want.append([g["lr"] for g in opt.param_groups])
    opt2, sch2 = _make(s, 3 * BLOCK, False)
    sch2.follow_optimizer = False
    sch2.load_state_dict(state)
    got = []
    for _ in range(8):
        sch2.step()
        got.append([g["lr"] for g in opt2.param_groups])
    assert got == want


def test_resume_restores_scheduled_momentum_and_multiplier() -> None:
    n = 40

    def make() -> tuple[torch.optim.Optimizer, Any]:
        opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(2))], lr=0.1, momentum=0.9)
        return opt, lrkit.torch.scheduler(
            opt, lrkit.OneCycle(max_lr=0.1, steps=n), hparams={"momentum": one_cycle_momentum(n)}
        )

    opt1, sch1 = make()
    for _ in range(13):
        opt1.step()
        sch1.step()
    sch1.scale(0.25)
    opt2, sch2 = make()
    sch2.load_state_dict(_through_torch_save(sch1.state_dict()))
    assert sch2.multiplier == 0.25
    assert opt2.param_groups[0]["lr"] == opt1.param_groups[0]["lr"]
    assert opt2.param_groups[0]["momentum"] == opt1.param_groups[0]["momentum"] == one_cycle_momentum(n)(13)


def test_graph_scheduler_resume() -> None:
    s = lrkit.Warmup(4) >> lrkit.Cosine(lr=1.0)

    def make() -> tuple[torch.optim.Optimizer, Any]:
        opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(2))], lr=torch.tensor(0.1))
        return opt, lrkit.torch.scheduler(opt, s, total_steps=30, relative=True, in_graph=True)

    opt1, sch1 = make()
    for _ in range(11):
        sch1.step()
    opt2, sch2 = make()
    sch2.load_state_dict(_through_torch_save(sch1.state_dict()))
    assert sch2.last_epoch == 11 and int(sch2.step_tensor) == 11
    for _ in range(5):
        sch1.step()
        sch2.step()
        assert torch.equal(opt1.param_groups[0]["lr"], opt2.param_groups[0]["lr"])


@pytest.mark.parametrize(
    ("state", "exc", "match"),
    [
        ({"last_epoch": 3}, KeyError, "not an lrkit.torch scheduler state"),
        (
            {"last_epoch": 3, "base_lrs": [0.1], "multiplier": 1.0, "plateau": None},
            ValueError,
            r"holds 1 base LRs \(base_lrs\), the optimizer has 2",
        ),
        (
            {"last_epoch": -1, "base_lrs": [0.1, 0.1], "multiplier": 1.0},
            ValueError,
            "last_epoch must be an integer",
        ),
        (
            {"last_epoch": 3, "base_lrs": [0.1, 0.1], "multiplier": 1.0, "plateau": {"best": 1.0}},
            ValueError,
            "no plateau",
        ),
        (
            {"last_epoch": 3, "base_lrs": [0.1, 0.1], "multiplier": 1.0, "interval": "epoch"},
            ValueError,
            "interval='epoch' but this scheduler has interval='step'",
        ),
    ],
)
def test_load_state_dict_validation(state: dict[str, Any], exc: type, match: str) -> None:
    _, sch = _make(lrkit.Cosine(lr=1.0, steps=10), 10, False)
    with pytest.raises(exc, match=match):
        sch.load_state_dict(state)
