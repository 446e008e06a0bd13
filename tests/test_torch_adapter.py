"""lrkit.torch.scheduler against torch's own schedulers, step by step, and its contract: groups,
hyperparameters, intervals, skipped steps, tensor LRs, controllers, validation."""

from __future__ import annotations

import json
import math
import warnings
from collections.abc import Callable
from typing import Any

import pytest
import torch
from torch.optim.lr_scheduler import (
    CosineAnnealingLR,
    CosineAnnealingWarmRestarts,
    ExponentialLR,
    LambdaLR,
    LinearLR,
    LRScheduler,
    MultiStepLR,
    OneCycleLR,
    PolynomialLR,
    SequentialLR,
    StepLR,
)

import lrkit
from lrkit.adapters.torch import BLOCK, GraphScheduler, Scheduler, one_cycle_momentum

N = 60


def _params(n: int = 1) -> list[torch.nn.Parameter]:
    return [torch.nn.Parameter(torch.zeros(2)) for _ in range(n)]


def _sgd(lrs: list[float] | None = None, **kw: object) -> torch.optim.SGD:
    lrs = lrs or [0.1]
    return torch.optim.SGD(
        [{"params": [p], "lr": lr} for p, lr in zip(_params(len(lrs)), lrs, strict=True)], **kw
    )


def _trace(
    opt: torch.optim.Optimizer, sched: object, n: int, keys: tuple[str, ...] = ("lr",)
) -> list[list[float]]:
    """The groups' values before each of ``n`` (optimizer step, scheduler step) pairs."""
    out = []
    for _ in range(n):
        row = []
        for g in opt.param_groups:
            for k in keys:
                v = g["betas"][0] if k == "beta1" else g[k]
                row.append(float(v))
        out.append(row)
        opt.step()
        sched.step()  # type: ignore[attr-defined]
    return out


def _close(a: list[list[float]], b: list[list[float]], rel: float = 1e-9) -> None:
    assert len(a) == len(b)
    for k, (x, y) in enumerate(zip(a, b, strict=True)):
        assert x == pytest.approx(y, rel=rel, abs=1e-15), f"step {k}: lrkit {x} torch {y}"


# -- against torch's schedulers ----------------------------------------------------------------------
def _bert(w: int, n: int) -> Callable[[int], float]:
    return lambda k: k / w if k < w else max(0.0, (n - k) / (n - w))


CASES: dict[str, tuple[Callable[[torch.optim.Optimizer], LRScheduler], lrkit.Schedule, bool]] = {
    # name: (torch scheduler on an SGD with lr=0.1, the lrkit schedule, relative?)
    "bert_lambda": (
        lambda o: LambdaLR(o, _bert(10, N)),
        lrkit.Warmup(10, start=0.0) >> lrkit.Linear(lr=1.0, end_lr=0.0),
        True,
    ),
    "sequential_linear_cosine": (
        lambda o: SequentialLR(
            o,
            [LinearLR(o, start_factor=0.1, total_iters=8), CosineAnnealingLR(o, T_max=N - 8, eta_min=1e-3)],
            milestones=[8],
        ),
        lrkit.Warmup(8, start=0.1) >> lrkit.Cosine(lr=0.1, min_lr=1e-3),
        False,
    ),
    "cosine_warm_restarts": (
        lambda o: CosineAnnealingWarmRestarts(o, T_0=7, T_mult=2, eta_min=1e-4),
        lrkit.CosineRestarts(lr=0.1, period=7, mult=2, min_lr=1e-4),
        False,
    ),
    "step": (
        lambda o: StepLR(o, step_size=7, gamma=0.5),
        lrkit.StepDecay(lr=1.0, step_size=7, gamma=0.5),
        True,
    ),
    "multistep": (
        lambda o: MultiStepLR(o, milestones=[10, 25, 40], gamma=0.3),
        lrkit.MultiStep(lr=0.1, milestones=[10, 25, 40], gamma=0.3),
        False,
    ),
    "exponential": (lambda o: ExponentialLR(o, gamma=0.95), lrkit.Exponential(lr=0.1, gamma=0.95), False),
    "polynomial": (
        lambda o: PolynomialLR(o, total_iters=40, power=2.0),
        lrkit.Polynomial(lr=1.0, steps=40, power=2.0),
        True,
    ),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_matches_torch_scheduler(name: str) -> None:
    make_ref, schedule, relative = CASES[name]
    opt_t = _sgd()
    ref = make_ref(opt_t)
    opt_l = _sgd()
    sch = lrkit.torch.scheduler(opt_l, schedule, total_steps=N, relative=relative)
    _close(_trace(opt_l, sch, N), _trace(opt_t, ref, N))


@pytest.mark.parametrize(
    ("optim", "key", "three_phase", "anneal", "n"),
    [
        ("sgd", "momentum", False, "cos", N),
        ("adam", "beta1", False, "cos", N),
        ("sgd", "momentum", True, "linear", N),
        ("sgd", "momentum", True, "cos", 37),  # phase ends off the integer grid
    ],
)
def test_one_cycle_with_momentum_matches_torch(
    optim: str, key: str, three_phase: bool, anneal: str, n: int
) -> None:
    def make() -> torch.optim.Optimizer:
        if optim == "sgd":
            return torch.optim.SGD(_params(), lr=0.1, momentum=0.9)
        return torch.optim.Adam(_params(), lr=0.1)

    opt_t = make()
    ref = OneCycleLR(opt_t, max_lr=0.1, total_steps=n, three_phase=three_phase, anneal_strategy=anneal)
    opt_l = make()
    sch = lrkit.torch.scheduler(
        opt_l,
        lrkit.OneCycle(max_lr=0.1, steps=n, three_phase=three_phase, anneal=anneal),
        hparams={key: one_cycle_momentum(n, three_phase=three_phase, anneal=anneal)},
    )
    # torch raises when stepped past total_steps: compare the steps it can take
    got = _trace(opt_l, sch, n - 1, ("lr", key))
    want = _trace(opt_t, ref, n - 1, ("lr", key))
    _close(got, want)


def test_one_cycle_past_its_end_holds_the_final_value() -> None:
    """torch's OneCycleLR goes negative at step == total_steps, then raises; lrkit holds the end."""
    opt = _sgd()
    sch = lrkit.torch.scheduler(opt, lrkit.OneCycle(max_lr=0.1, steps=20))
    lrs = [v[0] for v in _trace(opt, sch, 60)]
    final = 0.1 / 25 / 1e4
    assert min(lrs) > 0 and lrs[19:] == [pytest.approx(final, rel=1e-12)] * 41


# -- groups -----------------------------------------------------------------------------------------
def test_relative_schedule_multiplies_each_groups_lr() -> None:
    """Discriminative LRs: one multiplier schedule, each group keeps its own base LR (like LambdaLR)."""
    lrs = [0.1, 0.01, 0.003]
    opt_t = _sgd(lrs)
    ref = LambdaLR(opt_t, _bert(6, 30))
    opt_l = _sgd(lrs)
    sch = lrkit.torch.scheduler(
        opt_l, "warmup(6, start=0.0) >> linear(lr=1.0, end_lr=0)", total_steps=30, relative=True
    )
    _close(_trace(opt_l, sch, 30), _trace(opt_t, ref, 30))


def test_one_schedule_per_group() -> None:
    opt = _sgd([0.1, 0.1])
    a, b = lrkit.Constant(0.5), lrkit.Linear(lr=0.2, end_lr=0.0, steps=10)
    sch = lrkit.torch.scheduler(opt, [a, b])
    got = _trace(opt, sch, 12)
    assert got == [[0.5, pytest.approx(b(k))] for k in range(12)]


def test_absolute_schedule_with_different_group_lrs_is_refused() -> None:
    with pytest.raises(ValueError, match=r"relative=True.*one schedule per group"):
        lrkit.torch.scheduler(_sgd([0.1, 0.01]), lrkit.Cosine(lr=0.1, steps=10))
    # equal group LRs are fine
    lrkit.torch.scheduler(_sgd([0.1, 0.1]), lrkit.Cosine(lr=0.1, steps=10))


@pytest.mark.parametrize("n, in_graph", [(1, False), (2, False), (1, True)])
def test_a_group_added_after_the_scheduler_is_refused_at_the_next_step(n: int, in_graph: bool) -> None:
    # torch's own schedulers leave such a group unscheduled without a word; the fast path and the
    # in-graph scheduler did too
    opt = torch.optim.SGD(
        [{"params": _params(), "lr": torch.tensor(0.1) if in_graph else 0.1} for _ in range(n)]
    )
    sch = lrkit.torch.scheduler(opt, lrkit.Cosine(lr=0.1, steps=10), in_graph=in_graph)
    opt.step()
    sch.step()
    opt.add_param_group({"params": _params(), "lr": torch.tensor(0.01) if in_graph else 0.01})
    opt.step()
    with pytest.raises(RuntimeError, match=rf"has {n + 1} parameter groups, the scheduler was built for {n}"):
        sch.step()


def test_wrong_number_of_schedules() -> None:
    with pytest.raises(ValueError, match="got 3 schedules for 2 parameter groups"):
        lrkit.torch.scheduler(_sgd([0.1, 0.1]), [lrkit.Constant(0.1)] * 3)


# -- the contract of an LRScheduler -------------------------------------------------------------------
def test_is_a_torch_lr_scheduler_and_sets_step_0_at_construction() -> None:
    opt = _sgd()
    sch = lrkit.torch.scheduler(opt, lrkit.Warmup(4, lr=0.2))
    assert isinstance(sch, LRScheduler) and sch.optimizer is opt
    assert opt.param_groups[0]["lr"] == pytest.approx(0.2 / 5)
    assert sch.last_epoch == 0 and sch.get_last_lr() == [opt.param_groups[0]["lr"]]


def test_get_last_lr_and_get_lr_follow_the_optimizer() -> None:
    opt = _sgd([0.1, 0.05])
    sch = lrkit.torch.scheduler(opt, lrkit.Cosine(lr=1.0, steps=BLOCK + 10), relative=True)
    for k in range(1, BLOCK + 20):  # crosses a block boundary
        opt.step()
        sch.step()
        if k % 997 == 0 or k >= BLOCK - 2:
            assert sch.last_epoch == k
            assert sch.get_last_lr() == [g["lr"] for g in opt.param_groups] == sch.get_lr()


def test_interval_epoch_matches_torch_steplr_per_epoch() -> None:
    spe = 5
    opt_t = _sgd()
    ref = StepLR(opt_t, step_size=3, gamma=0.5)
    opt_l = _sgd()
    sch = lrkit.torch.scheduler(
        opt_l,
        lrkit.StepDecay(lr=1.0, step_size="3ep", gamma=0.5),
        relative=True,
        interval="epoch",
        steps_per_epoch=spe,
    )
    per_step = lrkit.torch.scheduler(
        _sgd(),
        lrkit.StepDecay(lr=0.1, step_size="3ep", gamma=0.5),
        steps_per_epoch=spe,
        follow_optimizer=False,
    )
    for _epoch in range(10):
        for _ in range(spe):
            assert opt_l.param_groups[0]["lr"] == opt_t.param_groups[0]["lr"]
            assert per_step.optimizer.param_groups[0]["lr"] == pytest.approx(opt_t.param_groups[0]["lr"])
            opt_t.step()
            opt_l.step()
            per_step.step()
        ref.step()
        sch.step()
    assert sch.last_epoch == 10


def test_epochs_argument_resolves_the_total() -> None:
    opt = _sgd()
    sch = lrkit.torch.scheduler(
        opt, lrkit.Cosine(lr=0.1), epochs=4, steps_per_epoch=25, follow_optimizer=False
    )
    for _ in range(50):
        sch.step()
    assert opt.param_groups[0]["lr"] == pytest.approx(0.05)  # half way through 4 epochs of 25 steps
    assert not hasattr(sch, "total_steps")  # accelerate would take it for a OneCycleLR (reads _step_count)


def test_step_epoch_jumps_in_closed_form() -> None:
    opt = _sgd()
    s = lrkit.Cosine(lr=0.1, steps=100)
    sch = lrkit.torch.scheduler(opt, s)
    sch.step(epoch=70)
    assert sch.last_epoch == 70 and opt.param_groups[0]["lr"] == pytest.approx(s(70))
    sch.set_step(3)
    assert opt.param_groups[0]["lr"] == pytest.approx(s(3))


# -- skipped steps ------------------------------------------------------------------------------------
def _scaled_step(
    opt: torch.optim.Optimizer, scaler: torch.amp.GradScaler, p: torch.nn.Parameter, bad: bool
) -> None:
    loss = (p * (math.inf if bad else 1.0)).sum()
    scaler.scale(loss).backward()
    scaler.step(opt)
    scaler.update()
    opt.zero_grad()


@pytest.mark.parametrize("fused", [False, True])
def test_gradscaler_skipped_step_does_not_advance_and_does_not_warn(fused: bool) -> None:
    """pytorch#44511: torch warns "lr_scheduler.step() before optimizer.step()" and advances anyway."""
    p = torch.nn.Parameter(torch.zeros(3))
    opt = torch.optim.Adam([p], lr=0.1, fused=fused)
    s = lrkit.Warmup(4, start=0.0) >> lrkit.Linear(lr=1.0, end_lr=0.0, steps=20)
    sch = lrkit.torch.scheduler(opt, s, relative=True)
    scaler = torch.amp.GradScaler("cpu")
    bad = [True, True, False, True, False, False, True, False]  # the first steps of AMP often overflow
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        taken = 0
        for b in bad:
            _scaled_step(opt, scaler, p, b)
            sch.step()
            taken += not b
            assert sch.last_epoch == taken
            assert opt.param_groups[0]["lr"] == pytest.approx(0.1 * s(taken))
    assert taken == 4


def test_torch_scheduler_does_advance_on_skipped_step() -> None:
    """The failure mode above, shown on torch itself (so the test above means something)."""
    p = torch.nn.Parameter(torch.zeros(3))
    opt = torch.optim.SGD([p], lr=0.1)
    ref = LambdaLR(opt, lambda k: 1.0 / (k + 1))
    scaler = torch.amp.GradScaler("cpu")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        _scaled_step(opt, scaler, p, True)
        ref.step()
    assert ref.last_epoch == 1
    assert any("before `optimizer.step()`" in str(w.message) for w in caught)


def test_follow_optimizer_false_advances_on_every_call() -> None:
    opt = _sgd()
    sch = lrkit.torch.scheduler(opt, lrkit.Linear(lr=0.1, steps=10), follow_optimizer=False)
    for _ in range(5):
        sch.step()
    assert sch.last_epoch == 5
    held = lrkit.torch.scheduler(_sgd(), lrkit.Linear(lr=0.1, steps=10))
    held.step()
    assert held.last_epoch == 0  # no optimizer step: nothing to follow
    held.optimizer.step()
    held.step()
    held.step()  # accelerate calls step() once per process after each optimizer step
    assert held.last_epoch == 1


# -- tensor LRs ----------------------------------------------------------------------------------------
def test_tensor_lr_is_written_in_place() -> None:
    lr = torch.tensor(0.1)
    opt = torch.optim.SGD(_params(), lr=lr)
    s = lrkit.Warmup(3) >> lrkit.Cosine(lr=0.1, steps=10)
    sch = lrkit.torch.scheduler(opt, s)
    t0 = opt.param_groups[0]["lr"]
    ptr = t0.data_ptr()
    for k in range(15):
        cur = opt.param_groups[0]["lr"]
        assert isinstance(cur, torch.Tensor) and cur is t0 and cur.data_ptr() == ptr
        assert float(cur) == pytest.approx(s(k), rel=1e-6)
        opt.step()
        sch.step()


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA (sync debug mode)")
def test_tensor_lr_on_cuda_steps_without_host_sync() -> None:  # pragma: no cover - GPU only
    p = torch.nn.Parameter(torch.zeros(3, device="cuda"))
    opt = torch.optim.SGD([p], lr=torch.tensor(0.1, device="cuda"))
    sch = lrkit.torch.scheduler(opt, lrkit.Cosine(lr=0.1, steps=10), follow_optimizer=False)
    torch.cuda.set_sync_debug_mode("error")
    try:
        for _ in range(5):
            sch.step()
    finally:
        torch.cuda.set_sync_debug_mode("default")
    assert float(opt.param_groups[0]["lr"]) == pytest.approx(lrkit.Cosine(lr=0.1, steps=10)(5), rel=1e-6)


# -- controllers: multiplier / scale --------------------------------------------------------------------
def test_scale_rewrites_the_current_lr_and_persists() -> None:
    opt = _sgd([0.1, 0.02])
    s = lrkit.Cosine(lr=1.0, steps=20)
    sch = lrkit.torch.scheduler(opt, s, relative=True, follow_optimizer=False)
    for _ in range(5):
        sch.step()
    sch.scale(0.5)
    assert sch.multiplier == 0.5
    assert [g["lr"] for g in opt.param_groups] == pytest.approx([0.05 * s(5), 0.01 * s(5)])
    sch.step()
    assert [g["lr"] for g in opt.param_groups] == pytest.approx([0.05 * s(6), 0.01 * s(6)])
    assert sch.state_dict()["multiplier"] == 0.5
    sch.multiplier = 1.0
    assert opt.param_groups[0]["lr"] == pytest.approx(0.1 * s(6))
    for bad in (-1.0, math.nan, "2"):
        with pytest.raises(ValueError, match="factor must be a finite number >= 0"):
            sch.scale(bad)  # type: ignore[arg-type]


# -- hyperparameters --------------------------------------------------------------------------------
def test_weight_decay_can_be_scheduled() -> None:
    opt = torch.optim.AdamW(_params(), lr=0.1, weight_decay=0.1)
    wd = lrkit.Linear(lr=0.1, end_lr=0.0, steps=10)
    sch = lrkit.torch.scheduler(opt, lrkit.Constant(0.1), hparams={"weight_decay": wd})
    got = _trace(opt, sch, 12, ("weight_decay",))
    assert got == [[pytest.approx(wd(k))] for k in range(12)]


@pytest.mark.parametrize(
    ("make", "hp", "match"),
    [
        (
            lambda: torch.optim.SGD(_params(), lr=0.1),
            {"beta1": lrkit.Constant(0.9)},
            "'beta1' needs a 'betas' pair",
        ),
        (lambda: torch.optim.SGD(_params(), lr=0.1), {"betas2": lrkit.Constant(0.9)}, "has no 'betas2'"),
        (lambda: torch.optim.SGD(_params(), lr=0.1), {"lr": lrkit.Constant(0.9)}, "'lr' cannot be scheduled"),
        (lambda: torch.optim.SGD(_params(), lr=0.1), {"nesterov": lrkit.Constant(1.0)}, "not a float"),
    ],
)
def test_hparams_validation(
    make: Callable[[], torch.optim.Optimizer], hp: dict[str, object], match: str
) -> None:
    with pytest.raises(ValueError, match=match):
        lrkit.torch.scheduler(make(), lrkit.Constant(0.1), hparams=hp)  # type: ignore[arg-type]


# -- validation ----------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("kwargs", "exc", "match"),
    [
        (dict(schedule=lrkit.Cosine(lr=0.1)), ValueError, r"steps='rest'.*total_steps=\.\.\."),
        (dict(schedule=lrkit.Cosine(lr=0.1, steps="3ep"), total_steps=100), ValueError, "steps_per_epoch"),
        (dict(schedule=42), TypeError, "schedule must be a schedule or a list"),
        (
            dict(schedule="cosine(lr=0.1, steps=10)", interval="batch"),
            ValueError,
            "interval must be 'step' or 'epoch'",
        ),
        (
            dict(schedule="constant(0.1)", interval="epoch"),
            ValueError,
            "interval='epoch' needs steps_per_epoch",
        ),
        (
            dict(schedule="constant(0.1)", total_steps=0),
            ValueError,
            "total_steps must be a finite number > 0, got 0",
        ),
        (dict(schedule="constant(0.1)", epochs=3), ValueError, "epochs=3 needs steps_per_epoch"),
        (dict(schedule="constant(0.1)", relative="yes"), TypeError, "relative must be True or False"),
        (dict(schedule="constant(0.1)", plateau=0.1), TypeError, "plateau must be an lrkit.control.Plateau"),
        (dict(schedule="constant(0.1)", fuse=True), ValueError, "fuse=True applies to in_graph=True only"),
        (
            dict(schedule="constant(0.1)", in_graph=True),
            TypeError,
            r"needs a tensor lr.*lr=torch.tensor\(0.1",
        ),
    ],
)
def test_validation_names_argument_and_value(kwargs: dict[str, object], exc: type, match: str) -> None:
    schedule = kwargs.pop("schedule")
    with pytest.raises(exc, match=match):
        lrkit.torch.scheduler(_sgd(), schedule, **kwargs)  # type: ignore[arg-type]


def test_optimizer_must_be_an_optimizer() -> None:
    with pytest.raises(TypeError, match=r"optimizer must be a torch\.optim\.Optimizer, got list"):
        Scheduler([], lrkit.Constant(0.1))  # type: ignore[arg-type]


def test_state_dict_is_tiny_and_plain() -> None:
    opt = _sgd()
    sch = lrkit.torch.scheduler(opt, lrkit.Cosine(lr=0.1, steps=10**6), plateau=lrkit.control.Plateau())
    state = sch.state_dict()
    assert json.loads(json.dumps(state)) == state
    assert len(json.dumps(state)) < 450  # 405 bytes since the plateau's state names its format


def test_graph_scheduler_on_the_cpu_matches_the_host_scheduler() -> None:
    """The in-graph path run eagerly (no compile): same LRs as the host path, in float32."""
    s = lrkit.Warmup(5) >> lrkit.Cosine(lr=1.0, min_lr=0.1)
    opt_h = torch.optim.SGD(_params(2), lr=0.1)
    host = lrkit.torch.scheduler(opt_h, s, total_steps=40, relative=True)
    opt_g = torch.optim.SGD(_params(2), lr=torch.tensor(0.1))
    graph = lrkit.torch.scheduler(opt_g, s, total_steps=40, relative=True, in_graph=True)
    assert isinstance(graph, GraphScheduler) and isinstance(graph, LRScheduler)
    for _ in range(45):
        assert float(opt_g.param_groups[0]["lr"]) == pytest.approx(opt_h.param_groups[0]["lr"], rel=1e-6)
        opt_h.step()
        opt_g.step()
        host.step()
        graph.step()
    assert graph.last_epoch == host.last_epoch == 45
    graph.scale(0.5)
    assert float(opt_g.param_groups[0]["lr"]) == pytest.approx(
        0.5 * 0.1 * s.resolve(total_steps=40)(45), rel=1e-6
    )


def test_graph_scheduler_plateau_cut_writes_the_lr_tensor() -> None:
    opt = torch.optim.SGD([{"params": [p], "lr": torch.tensor(0.1)} for p in _params(2)])
    plateau = lrkit.control.Plateau(patience=0, factor=0.5, min_lr=0.04)
    sch = lrkit.torch.scheduler(opt, lrkit.Constant(1.0), relative=True, plateau=plateau, in_graph=True)
    assert [sch.report(1.0) for _ in range(4)] == [False, True, True, False]  # 0.1 -> 0.05 -> 0.04 (floor)
    assert float(opt.param_groups[0]["lr"]) == pytest.approx(0.04)
    assert sch.plateau_cuts == [0.25, 0.25]
    sch.step()
    assert float(opt.param_groups[1]["lr"]) == pytest.approx(0.04)


@pytest.mark.parametrize(
    "spec", ["warmup(100)", "warmup(10, mode='exponential')", "cosine(lr=0.1, steps=10) >> warmup(10)"]
)
def test_an_absolute_schedule_ending_in_a_bare_warmup_is_refused(spec: str) -> None:
    """Alone, a warmup with no lr is a multiplier rising to 1: written as absolute LRs (the default) it
    sent an AdamW at 3e-4 to LR 1.0. It is refused, and works as a multiplier with relative=True."""
    import lrkit

    p = torch.nn.Parameter(torch.zeros(1))
    opt = torch.optim.AdamW([p], lr=3e-4)
    with pytest.raises(ValueError, match=r"ends in a warmup with no lr.*relative=True"):
        lrkit.torch.scheduler(opt, spec, total_steps=1000)
    assert opt.param_groups[0]["lr"] == 3e-4  # untouched
    sched = lrkit.torch.scheduler(opt, spec, total_steps=1000, relative=True)
    for _ in range(200):
        opt.step()
        sched.step()
    assert opt.param_groups[0]["lr"] == pytest.approx(3e-4)


@pytest.mark.parametrize(
    "spec", ["warmup(100) >> constant(3e-4)", "warmup(100, lr=3e-4)", "warmup(100) * constant(3e-4)"]
)
def test_a_warmup_with_a_target_is_an_lr(spec: str) -> None:
    import lrkit

    opt = torch.optim.AdamW([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
    sched = lrkit.torch.scheduler(opt, spec, total_steps=1000)
    for _ in range(200):
        opt.step()
        sched.step()
    assert opt.param_groups[0]["lr"] == pytest.approx(3e-4)


def _steps(sched: Any, opt: Any, pattern: str) -> list[warnings.WarningMessage]:
    """Call ``sched.step()`` once per character, after ``opt.step()`` where it is ``o``."""
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        for c in pattern:
            if c == "o":
                opt.step()
            sched.step()
    return [w for w in seen if issubclass(w.category, lrkit.torch.NoOptimizerStepWarning)]


@pytest.mark.parametrize(
    ("pattern", "warned", "last"),
    [
        ("." * 32, 1, 0),  # a preview loop without optimizer steps: the schedule stands still, once warned
        ("." * 60, 1, 0),  # warned once only
        ("o" * 10, 0, 10),  # the normal loop
        ("....." + "o" * 5, 0, 5),  # a GradScaler skipping the first steps of a float16 run
        ("." * 16 + "o" * 5, 0, 5),  # 16 skipped (a scale of 2**16 halved to 1), or a 16-step accumulation
        ("o" + "." * 20, 0, 1),  # after the first optimizer step, idle calls are an accumulation's
    ],
)
def test_step_without_any_optimizer_step_warns_once(pattern: str, warned: int, last: int) -> None:
    import lrkit

    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=0.1)
    sched = lrkit.torch.scheduler(opt, "cosine(lr=0.1)", total_steps=100)
    assert len(_steps(sched, opt, pattern)) == warned and sched.last_epoch == last
    free = lrkit.torch.scheduler(
        torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=0.1), "cosine(lr=0.1)", total_steps=100,
        follow_optimizer=False,
    )  # fmt: skip
    assert not _steps(free, opt, "." * 40) and free.last_epoch == 40


LONGER = r"lasts 10,000 steps, more than total_steps=450: the run ends before the schedule does"


def test_a_schedule_longer_than_total_steps_is_warned_about_at_the_callers_line() -> None:
    """cosine(steps=10000) on a 450-step run never decays: lrkit show, plot and the lab warn, and so does
    the scheduler, naming the schedule, its length and total_steps (the one check, longer_than_run)."""
    assert issubclass(lrkit.torch.ScheduleLongerThanRunWarning, UserWarning)
    match = rf"lrkit\.torch\.scheduler: 'cosine\(lr=0\.1, steps=10000\)' {LONGER}"
    for in_graph in (False, True):
        opt = torch.optim.SGD(_params(), lr=torch.tensor(0.1)) if in_graph else _sgd()
        with pytest.warns(lrkit.torch.ScheduleLongerThanRunWarning, match=match) as seen:
            lrkit.torch.scheduler(opt, "cosine(lr=0.1, steps=10000)", total_steps=450, in_graph=in_graph)
        assert len(seen) == 1 and seen[0].filename == __file__  # the user's line, not lrkit's
    ep = r"'cosine\(lr=0\.1, steps=4ep\)' lasts 600 steps, more than total_steps=450"
    with pytest.warns(lrkit.torch.ScheduleLongerThanRunWarning, match=ep):
        lrkit.torch.scheduler(_sgd(), "cosine(lr=0.1, steps=4ep)", epochs=3, steps_per_epoch=150)
    with pytest.warns(
        lrkit.torch.ScheduleLongerThanRunWarning,
        match=r"hparams\['momentum'\] = 'warmup\(steps=5%\) >> cosine\(lr=0\.9, steps=10000\)' lasts 10,023",
    ):
        lrkit.torch.scheduler(
            _sgd(momentum=0.9),
            "constant(0.1)",
            hparams={"momentum": "warmup(5%) >> cosine(lr=0.9, steps=10000)"},
            total_steps=450,
        )
    with warnings.catch_warnings():
        warnings.simplefilter("error", lrkit.torch.ScheduleLongerThanRunWarning)  # fits, forever, no total
        for spec, total in [
            ("cosine(lr=0.1, steps=450)", 450),
            ("warmup(5%) >> cosine(lr=0.1)", 450),
            ("constant(0.1)", 450),
            ("cosine(lr=0.1, steps=10000)", None),
        ]:
            lrkit.torch.scheduler(_sgd(), spec, total_steps=total)
