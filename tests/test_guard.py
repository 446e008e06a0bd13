"""The divergence guard on a real model made to diverge by a too-large learning rate.

The reference for "the parameters equal a legitimate continuation" is a plain training loop, without the
guard, that uses the LR the events say (``lr0 * factor**i`` from the snapshot step of the ``i``-th
event on) with the same data order and the same RNG seed: the guarded run must match it bit for bit
(``torch.equal``), momentum buffers included.
"""

from __future__ import annotations

import itertools
import math
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import lrkit
from lrkit.control.guard import DivergenceError, DivergenceEvent, DivergenceGuard

N = 200  # steps
B = 32  # batch size
SPEC = "warmup(20, start=0.1) >> cosine(lr=0.8, min_lr=0.08)"

_gen = torch.Generator().manual_seed(0)
X = torch.randn(512, 8, generator=_gen)
Y = torch.sin(X @ torch.randn(8, 1, generator=_gen) / 3) + 0.1 * torch.randn(512, 1, generator=_gen)
ORDER = np.random.default_rng(0).permutation(512)  # the data order: its own generator, indexed by step


def batch(step: int) -> tuple[torch.Tensor, torch.Tensor]:
    k = (step * B) % 512
    i = torch.as_tensor(ORDER[k : k + B])
    return X[i], Y[i]


def make(lr: float | torch.Tensor) -> tuple[torch.nn.Module, torch.optim.Optimizer]:
    """A small MLP with dropout (so the RNG matters) and SGD with momentum (so optimizer state matters)."""
    torch.manual_seed(0)
    model = torch.nn.Sequential(
        torch.nn.Linear(8, 32), torch.nn.ReLU(), torch.nn.Dropout(0.1), torch.nn.Linear(32, 1)
    )
    return model, torch.optim.SGD(model.parameters(), lr=lr, momentum=0.9)


def make_with(
    lr: float, scheduler_spec: str | None, in_graph: bool
) -> tuple[torch.nn.Module, torch.optim.Optimizer, Any]:
    """``make`` with an lrkit scheduler (``in_graph``: the device-counter one, with a tensor lr)."""
    model, opt = make(torch.tensor(lr) if in_graph else lr)
    if scheduler_spec is None:
        return model, opt, None
    return model, opt, lrkit.torch.scheduler(opt, scheduler_spec, total_steps=N, in_graph=in_graph)


def loss_of(model: torch.nn.Module, step: int) -> torch.Tensor:
    x, y = batch(step)
    return F.mse_loss(model(x), y)


def guarded_run(
    lr: float, scheduler_spec: str | None = None, in_graph: bool = False, **kwargs: Any
) -> tuple[torch.nn.Module, torch.optim.Optimizer, Any, DivergenceGuard, list[dict[str, Any]]]:
    """Train N steps with the guard, replaying from the snapshot after each rollback. Returns the state
    at the start of every step of the final trajectory too (model and optimizer), for the rollback checks."""
    model, opt, sched = make_with(lr, scheduler_spec, in_graph)
    torch.manual_seed(1)
    guard = DivergenceGuard(model, opt, sched, **kwargs)
    starts: list[dict[str, Any]] = []
    step = 0
    while step < N:
        del starts[step:]
        starts.append({"model": _clone(model.state_dict()), "momentum": _momenta(opt)})
        loss = loss_of(model, step)
        loss.backward()
        if guard.check(loss, step):
            opt.step()
            if sched is not None:
                sched.step()
            step += 1
        else:
            resume = guard.resume_step
            assert resume is not None
            # rolled back: exactly the state the run had when that step began
            _assert_equal(model.state_dict(), starts[resume]["model"])
            _assert_equal(_momenta(opt), starts[resume]["momentum"])
            step = resume
        opt.zero_grad()
    return model, opt, sched, guard, starts


def reference_run(
    lr: float,
    events: list[DivergenceEvent],
    factor: float,
    scheduler_spec: str | None = None,
    in_graph: bool = False,
) -> tuple[torch.nn.Module, torch.optim.Optimizer]:
    """No guard: the LR is lr0 (or the schedule) times factor**i from the i-th event's snapshot step on."""
    mult = np.ones(N)
    for i, e in enumerate(events, 1):
        mult[e.snapshot_step :] = factor**i
    model, opt, sched = make_with(lr, scheduler_spec, in_graph)
    torch.manual_seed(1)
    for step in range(N):
        if sched is None:
            opt.param_groups[0]["lr"] = lr * mult[step]
        elif sched.multiplier != mult[step]:
            sched.multiplier = float(mult[step])
        loss_of(model, step).backward()
        opt.step()
        if sched is not None:
            sched.step()
        opt.zero_grad()
    return model, opt


def _clone(sd: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in sd.items()}


def _momenta(opt: torch.optim.Optimizer) -> dict[int, torch.Tensor]:
    return {
        i: s["momentum_buffer"].clone() for i, s in enumerate(opt.state.values()) if "momentum_buffer" in s
    }


def _assert_equal(a: dict[Any, torch.Tensor], b: dict[Any, torch.Tensor]) -> None:
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k


def _all_finite(model: torch.nn.Module) -> bool:
    return all(bool(torch.isfinite(p).all()) for p in model.parameters())


def test_without_the_guard_the_run_diverges() -> None:
    model, opt = make(0.8)
    torch.manual_seed(1)
    for step in range(N):
        loss = loss_of(model, step)
        if not math.isfinite(loss.item()):
            break
        loss.backward()
        opt.step()
        opt.zero_grad()
    assert step < 50 and not math.isfinite(loss.item())


@pytest.mark.parametrize("threshold", [10.0, None], ids=["jump", "nan_inf_only"])
def test_guarded_run_is_finite_and_a_legitimate_continuation(threshold: float | None) -> None:
    model, opt, _, guard, _ = guarded_run(0.8, factor=0.5, threshold=threshold, snapshot_every=10, window=20)
    events = guard.events
    assert events and _all_finite(model)
    assert all(e.action == "rollback" for e in events)
    if threshold is None:
        assert {e.reason for e in events} <= {"nan", "inf"}
    # and it learned: the mean squared error is below the data's variance, far below it with NaN/inf only
    # (0.15 of it). With the jump test the second blow-up is a jump at step 25 (against the lowest median
    # of the short history; it was an inf loss at step 26 before, rolled back to a snapshot that failed
    # again, then to step 10 with LR 0.1: 0.17 of it), rolled back to step 10 with LR 0.2, which holds
    # and ends at 0.52 of it
    mse = F.mse_loss(model.eval()(X), Y).item()
    assert mse < (0.2 if threshold is None else 0.6) * Y.var().item()
    ref_model, ref_opt = reference_run(0.8, events, 0.5)
    _assert_equal(model.state_dict(), ref_model.state_dict())
    _assert_equal(_momenta(opt), _momenta(ref_opt))
    assert guard.multiplier == 0.5 ** len(events)
    assert opt.param_groups[0]["lr"] == 0.8 * 0.5 ** len(events)


def test_events_are_complete() -> None:
    _, _, _, guard, starts = guarded_run(0.8, factor=0.5, threshold=10.0, snapshot_every=10, window=20)
    events = guard.events
    lr = 0.8
    for e in events:
        assert isinstance(e, DivergenceEvent) and e.action == "rollback"
        assert 0 <= e.snapshot_step <= e.step
        assert e.lr_before == (lr,) and e.lr_after == (lr * 0.5,)
        lr *= 0.5
        assert e.recovery >= 1
        if e.reason == "jump":
            assert math.isfinite(e.loss) and e.loss > 10.0 * e.reference > 0
        else:
            assert e.reason == ("nan" if math.isnan(e.loss) else "inf")
    assert guard.events is not guard.events  # a copy: the record cannot be edited from outside
    assert len(starts) == N


@pytest.mark.parametrize("in_graph", [False, True], ids=["host", "in_graph"])
def test_with_an_lrkit_scheduler_the_cut_survives_the_rollback(in_graph: bool) -> None:
    model, opt, sched, guard, _ = guarded_run(
        0.8, SPEC, in_graph, factor=0.5, threshold=10.0, snapshot_every=10, window=20
    )
    events = guard.events
    assert len(events) >= 2 and _all_finite(model)
    # the scheduler is where the run ended, with every cut in its multiplier
    assert sched.last_epoch == N and sched.multiplier == 0.5 ** len(events)
    s = lrkit.parse(SPEC).resolve(total_steps=N)
    for i, e in enumerate(events, 1):
        # training resumed at the snapshot step's LR of the schedule, times every cut so far
        assert e.lr_after == pytest.approx((s(e.snapshot_step) * 0.5**i,), rel=1e-6 if in_graph else 1e-12)
    ref_model, ref_opt = reference_run(0.8, events, 0.5, SPEC, in_graph)
    _assert_equal(model.state_dict(), ref_model.state_dict())
    _assert_equal(_momenta(opt), _momenta(ref_opt))


def test_a_failed_recovery_goes_one_snapshot_further_back() -> None:
    # NaN/inf only: the newest snapshot can already carry a huge momentum (with a finite loss)
    _, _, _, guard, _ = guarded_run(0.8, SPEC, factor=0.5, threshold=None, snapshot_every=10, keep=2)
    events = guard.events
    pairs = list(itertools.pairwise(events))
    assert any(b.snapshot_step < a.snapshot_step for a, b in pairs)


def test_error_after_max_recoveries_names_the_step_and_the_lr() -> None:
    model = torch.nn.Linear(1, 1, bias=False)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    guard = DivergenceGuard(model, opt, snapshot_every=3, max_recoveries=2, keep=1)
    step = 0
    with pytest.raises(DivergenceError) as info:
        while True:
            with torch.no_grad():
                model.weight.fill_(step)
            if guard.check(float("nan") if step >= 7 else 1.0, step):
                step += 1
            else:
                step = guard.resume_step  # type: ignore[assignment]
    err = info.value
    assert "step 7" in str(err) and "lr=0.025" in str(err) and "2 recoveries" in str(err)
    assert err.event is not None and err.event.action == "stop" and err.event.step == 7
    assert [e.action for e in err.events] == ["rollback", "rollback", "stop"]
    assert [e.lr_after for e in err.events] == [(0.05,), (0.025,), (0.025,)]
    assert [e.recovery for e in err.events] == [1, 2, 3]
    # left at the last good snapshot (step 6: snapshots at 0, 3, 6), with the cuts kept
    assert err.event.snapshot_step == 6 and model.weight.item() == 6.0
    assert opt.param_groups[0]["lr"] == 0.025
    assert guard.events == err.events


def test_recoveries_that_hold_reset_the_count() -> None:
    model = torch.nn.Linear(1, 1, bias=False)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    guard = DivergenceGuard(model, opt, snapshot_every=4, max_recoveries=1)
    bad = {5, 30}  # one bad step each (it is good when replayed: the data there is fine now)
    step = 0
    while step < 40:
        loss = float("inf") if step in bad else 1.0
        if guard.check(loss, step):
            step += 1
        else:
            bad.discard(step)
            step = guard.resume_step  # type: ignore[assignment]
    assert [(e.step, e.snapshot_step, e.recovery) for e in guard.events] == [(5, 4, 1), (30, 28, 1)]


def test_one_high_batch_is_noise_a_loss_that_stays_high_is_a_jump() -> None:
    """A batch whose loss is far above the recent median, once, is noise (replaying it would find it as
    high again: it is the batch, not the model): training goes on. A loss that stays high for
    jump_steps steps in a row is a model that got worse: rolled back; if it never comes down, the guard
    stops, saying what to change."""
    model = torch.nn.Linear(1, 1)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    guard = DivergenceGuard(model, opt, snapshot_every=5, jump_steps=3)
    assert all(guard.check(1.0 if step in (13, 20, 21) else 0.1, step) for step in range(40))
    assert guard.events == [] and guard.reference == 0.1

    guard = DivergenceGuard(model, opt, snapshot_every=5, jump_steps=3)
    step, checks = 0, 0
    with pytest.raises(
        DivergenceError,
        match=r"step 15 .*above 4 x the median of the recent good losses, 0.1, for 3 steps in a row"
        r".*raise threshold",
    ):
        while checks < 1000:
            checks += 1
            ok = guard.check(1.0 if step >= 13 else 0.1, step)
            step = step + 1 if ok else guard.resume_step  # type: ignore[assignment]
    assert [(e.step, e.snapshot_step, e.action) for e in guard.events] == [
        (15, 10, "rollback"),
        (15, 5, "rollback"),  # the recovery from 10 failed: one snapshot further back
        (15, 5, "rollback"),
        (15, 5, "stop"),
    ]


def test_jumps_are_measured_against_the_median_of_the_window() -> None:
    def run(losses: list[float], **kwargs: Any) -> list[DivergenceEvent]:
        model = torch.nn.Linear(1, 1)
        guard = DivergenceGuard(model, torch.optim.SGD(model.parameters(), lr=1.0), **kwargs)
        for step, loss in enumerate(losses):
            guard.check(loss, step)
        return guard.events

    # the median of [1.0, 0.5, 0.6] is 0.6: 2.3 < 4 * 0.6 (the lowest, 0.5, would have made it a jump)
    assert run([1.0, 0.5, 0.6, 2.3], jump_steps=1) == []
    (e,) = run([1.0, 0.5, 0.6, 2.5], jump_steps=1)
    assert (e.reason, e.loss, e.reference, e.step, e.snapshot_step) == ("jump", 2.5, 0.6, 3, 0)
    # the window: the median of the last 3 is 1.0, of the last 6 is 0.75
    assert run([0.5, 0.5, 0.5, 1.0, 1.0, 1.0, 3.9], window=3, jump_steps=1) == []
    (e,) = run([0.5, 0.5, 0.5, 1.0, 1.0, 1.0, 3.9], window=6, jump_steps=1)
    assert (e.step, e.reference) == (6, 0.75)
    # jump_steps=3: high, high, back down (noise: not kept in the median), then three in a row
    (e,) = run([1.0, 1.0, 1.0, 5.0, 5.0, 1.0, 5.0, 5.0, 5.0], jump_steps=3)
    assert (e.step, e.reference, e.loss) == (8, 1.0, 5.0)
    # a median <= 0 (a loss that can be negative) has no ratio: only NaN and inf count
    assert run([-1.0, -1.0, -1.0, 5.0, 5.0, 5.0]) == []
    # threshold=None: only NaN and inf count
    model = torch.nn.Linear(1, 1)
    g = DivergenceGuard(model, torch.optim.SGD(model.parameters(), lr=1.0), threshold=None)
    assert all(g.check(v, i) for i, v in enumerate([1.0, 1e6, 1e30, 1e30, 1e30]))
    assert not g.check(float("-inf"), 5) and g.events[0].reason == "inf"


def test_high_losses_are_neither_kept_nor_snapshotted() -> None:
    """The steps of a high loss that is not yet a jump are applied but not snapshotted: a later
    rollback goes to the last snapshot before them, with the RNG of that step."""
    model = torch.nn.Linear(1, 1)
    opt = torch.optim.SGD(model.parameters(), lr=1.0)
    guard = DivergenceGuard(model, opt, snapshot_every=1, keep=3, jump_steps=3)
    rng_at: dict[int, torch.Tensor] = {}
    for step, loss in enumerate([1.0, 1.0, 1.0, 9.0, 9.0, 1.0, 9.0, 9.0, 9.0]):
        rng_at[step] = torch.get_rng_state()
        ok = guard.check(loss, step)
        torch.rand(3)  # the step's dropout
        if not ok:
            break
    (e,) = guard.events
    assert (e.step, e.snapshot_step, guard.resume_step) == (8, 5, 5)  # 6 and 7 were high: not taken
    assert torch.equal(torch.get_rng_state(), rng_at[5])
    # a NaN right after a high step goes back to the last good one's snapshot
    guard = DivergenceGuard(model, opt, snapshot_every=1, jump_steps=3)
    assert [guard.check(v, i) for i, v in enumerate([1.0, 1.0, 9.0, math.nan])] == [True, True, True, False]
    assert guard.resume_step == 1


def test_nan_before_any_good_step_is_not_a_learning_rate_problem() -> None:
    model = torch.nn.Linear(1, 1)
    guard = DivergenceGuard(model, torch.optim.SGD(model.parameters(), lr=0.3))
    with pytest.raises(DivergenceError, match=r"at step 0 the loss is nan before any good step.*lr=0.3"):
        guard.check(torch.tensor(float("nan")), 0)


def _unfreezing(snapshot_every: int) -> tuple[torch.nn.Sequential, torch.optim.SGD, DivergenceGuard]:
    """A head trained alone for 3 steps, then the body unfrozen with add_param_group (ULMFiT style)."""
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(4, 4), torch.nn.Linear(4, 1))
    opt = torch.optim.SGD(model[1].parameters(), lr=0.1)
    guard = DivergenceGuard(model, opt, snapshot_every=snapshot_every)
    x, y = torch.randn(8, 4), torch.randn(8, 1)
    for step in range(3):
        loss = torch.nn.functional.mse_loss(model(x), y)
        assert guard.check(loss, step)
        opt.zero_grad()
        loss.backward()
        opt.step()
    opt.add_param_group({"params": model[0].parameters(), "lr": 0.01})
    return model, opt, guard


def test_a_group_added_after_the_snapshot_is_rolled_back_to_a_new_snapshot() -> None:
    model, opt, guard = _unfreezing(snapshot_every=100)  # the only snapshot (step 0) has one group
    x, y = torch.randn(8, 4), torch.randn(8, 1)
    good = torch.nn.functional.mse_loss(model(x), y)
    assert guard.check(good, 3)  # a new snapshot, of both groups
    at_3 = {k: v.clone() for k, v in model.state_dict().items()}
    opt.zero_grad()
    good.backward()
    opt.step()
    assert not guard.check(torch.tensor(float("nan")), 4)  # the old code: "different number of groups"
    assert guard.resume_step == 3
    assert all(torch.equal(v, at_3[k]) for k, v in model.state_dict().items())
    assert [g["lr"] for g in opt.param_groups] == pytest.approx([0.05, 0.005])


def test_nan_right_after_a_group_is_added_names_the_new_groups() -> None:
    _, _, guard = _unfreezing(snapshot_every=100)
    with pytest.raises(DivergenceError, match=r"at step 3 the loss is nan, .*parameter groups changed"):
        guard.check(torch.tensor(float("nan")), 3)


#: the bound DivergenceGuard names for its counts (sys.maxsize)
_GUARD_MAX = r" and <= 2\*\*63 - 1"


def test_validation_names_the_argument() -> None:
    model = torch.nn.Linear(1, 1)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    for kwargs, pattern in [
        ({"jump_steps": 0}, r"jump_steps must be an integer >= 1 and <= 2\*\*63 - 1, got 0"),
        ({"factor": 1.0}, r"factor must be a finite number > 0 and < 1, got 1.0"),
        ({"factor": 0}, r"factor must be a finite number > 0 and < 1, got 0"),
        ({"threshold": 1.0}, r"threshold must be a finite number > 1, got 1.0"),
        ({"window": 0}, r"window must be an integer >= 1 and <= 2\*\*63 - 1, got 0"),
        ({"snapshot_every": 2.5}, rf"snapshot_every must be an integer >= 1{_GUARD_MAX}, got float 2.5"),
        ({"max_recoveries": -1}, r"max_recoveries must be an integer >= 0 and <= 2\*\*63 - 1, got -1"),
        ({"keep": 0}, r"keep must be an integer >= 1 and <= 2\*\*63 - 1, got 0"),
    ]:
        with pytest.raises(ValueError, match=pattern):
            DivergenceGuard(model, opt, **kwargs)
    with pytest.raises(TypeError, match=r"model must be a torch.nn.Module, got SGD"):
        DivergenceGuard(opt, opt)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match=r"optimizer must be a torch.optim.Optimizer, got Linear"):
        DivergenceGuard(model, model)  # type: ignore[arg-type]
    step_lr = torch.optim.lr_scheduler.StepLR(opt, 10)
    with pytest.raises(TypeError, match=r"lrkit.torch scheduler.*StepLR without scale, multiplier"):
        DivergenceGuard(model, opt, step_lr)
    guard = DivergenceGuard(model, opt)
    with pytest.raises(TypeError, match=r"step must be an int, got float"):
        guard.check(1.0, 1.5)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match=r"loss must be a number or a one-element tensor"):
        guard.check(torch.ones(3), 0)


@pytest.mark.parametrize("shape", [(64,), (8, 3), (2, 2, 2)])
def test_a_per_example_loss_is_named_by_its_shape_not_its_values(shape: tuple[int, ...]) -> None:
    """``reduction='none'`` hands check a loss per example: the message gives the shape and the fix,
    not 64 printed numbers (torch cuts them with '...' and the shape is lost)."""
    model = torch.nn.Linear(1, 1)
    guard = DivergenceGuard(model, torch.optim.SGD(model.parameters(), lr=0.1))
    with pytest.raises(TypeError) as info:
        guard.check(torch.rand(shape), 0)
    text = str(info.value)
    assert f"got a Tensor of shape {shape}; reduce it to one number first (loss.mean()" in text, text
    assert "tensor([" not in text
    with pytest.raises(TypeError, match=r"got a ndarray of shape \(5,\)"):
        guard.check(np.ones(5), 0)
    long_list = [1.0] * 1000  # no shape: its repr, cut
    with pytest.raises(TypeError) as info:
        guard.check(long_list, 0)  # type: ignore[arg-type]
    assert len(str(info.value)) < 200 and str(info.value).endswith("...")


def test_lrkit_control_imports_without_torch() -> None:
    src = str(Path(lrkit.__file__).resolve().parents[1])
    code = "import sys, lrkit.control.guard, lrkit.control; assert 'torch' not in sys.modules, 'torch'"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([src, os.environ.get("PYTHONPATH", "")])}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=False)
    assert out.returncode == 0, out.stderr


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA: the CUDA RNG round trip")
def test_cuda_rng_is_restored() -> None:  # pragma: no cover - no GPU in CI
    model = torch.nn.Linear(4, 1).cuda()
    guard = DivergenceGuard(model, torch.optim.SGD(model.parameters(), lr=0.1), snapshot_every=1)
    guard.check(1.0, 0)
    expected = torch.rand(3, device="cuda")
    guard.check(1.0, 1)  # snapshot of step 1: the CUDA RNG as it was after the check of step 0
    torch.rand(5, device="cuda")
    assert not guard.check(float("nan"), 2)
    assert torch.equal(torch.rand(3, device="cuda"), expected)


# -- mixed precision --------------------------------------------------------------------------------


def _amp_batch(step: int) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(step)
    return torch.randn(32, 8, generator=g), torch.randn(32, 1, generator=g)


def _amp_make() -> tuple[torch.nn.Module, torch.optim.Optimizer, torch.amp.GradScaler]:
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(8, 16), torch.nn.ReLU(), torch.nn.Linear(16, 1))
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    return model, opt, torch.amp.GradScaler("cpu", init_scale=2.0**10, growth_interval=3)


def _amp_loss(model: torch.nn.Module, step: int) -> torch.Tensor:
    x, y = _amp_batch(step)
    with torch.autocast("cpu", dtype=torch.float16):
        out = model(x)
    return F.mse_loss(out.float(), y)


def _amp_step(scaler: torch.amp.GradScaler, opt: torch.optim.Optimizer, loss: torch.Tensor) -> None:
    """The AMP recipe with gradient clipping: scale, backward, unscale, clip (then step and update)."""
    scaler.scale(loss).backward()
    scaler.unscale_(opt)
    torch.nn.utils.clip_grad_norm_([p for g in opt.param_groups for p in g["params"]], 1.0)


def test_a_grad_scaler_is_rolled_back_with_the_model() -> None:
    """fp16 autocast and a GradScaler, clipping after ``unscale_``. Steps 11 and 12 overflow in the
    backward (inf gradients, finite loss): the scaler skips them and halves its scale twice, and the
    guard, seeing finite losses, lets them pass. Step 13's loss is NaN: back to the snapshot of step 10,
    and the scaler with it (scale and growth tracker), so the run is the one that never overflowed,
    with the LR cut from step 10 on: params and scale equal a plain loop's, bit for bit. Before, the
    rollback left the scaler mid-iteration (unscale_ done, no update) and the next unscale_ raised."""
    n = 30
    model, opt, scaler = _amp_make()
    guard = DivergenceGuard(model, opt, snapshot_every=5, scaler=scaler)
    step, poisoned, starts = 0, False, {}
    while step < n:
        starts.setdefault(step, scaler.state_dict())  # the scaler's state as each step first began
        loss = _amp_loss(model, step)
        overflow = step in (11, 12) and not poisoned
        _amp_step(scaler, opt, loss * 1e36 if overflow else loss)
        if step == 13 and not poisoned:
            loss, poisoned = loss * float("nan"), True
        if guard.check(loss, step):
            scaler.step(opt)
            scaler.update()
            step += 1
        else:
            assert guard.resume_step == 10
            assert scaler.state_dict() == starts[10]  # the snapshot's scale, not the one after the overflows
            assert scaler.get_scale() == 4 * starts[13]["scale"]
            step = 10
        opt.zero_grad()
    assert [(e.step, e.reason, e.snapshot_step) for e in guard.events] == [(13, "nan", 10)]
    ref_model, ref_opt, ref_scaler = _amp_make()
    for s in range(n):
        ref_opt.param_groups[0]["lr"] = 1e-2 if s < 10 else 5e-3
        _amp_step(ref_scaler, ref_opt, _amp_loss(ref_model, s))
        ref_scaler.step(ref_opt)
        ref_scaler.update()
        ref_opt.zero_grad()
    _assert_equal(model.state_dict(), ref_model.state_dict())
    assert scaler.state_dict() == ref_scaler.state_dict()


def test_a_rollback_before_the_scaler_has_scaled_anything_leaves_it_usable() -> None:
    model, opt, scaler = _amp_make()
    guard = DivergenceGuard(model, opt, snapshot_every=1, scaler=scaler)
    assert guard.check(1.0, 0) and not guard.check(float("nan"), 1)  # nothing scaled yet
    assert scaler.state_dict()["scale"] == 2.0**10
    _amp_step(scaler, opt, _amp_loss(model, 0))
    scaler.step(opt)
    scaler.update()


def _nan_at_step_12(
    make: Callable[[], tuple[torch.nn.Module, torch.optim.Optimizer]],
    loss_fn: Callable[[torch.nn.Module, int], torch.Tensor],
) -> tuple[torch.nn.Module, torch.nn.Module, DivergenceGuard]:
    """30 steps of ``make()``'s model under a guard (a snapshot every 5 steps), the loss made NaN at step
    12 (once): the guarded model, the reference (a plain loop from ``make()`` whose LR is halved from
    step 10 on, as the rollback to step 10's snapshot does) and the guard."""
    model, opt = make()
    guard = DivergenceGuard(model, opt, snapshot_every=5)
    step = 0
    while step < 30:
        loss = loss_fn(model, step)
        if step == 12 and not guard.events:
            loss = loss * float("nan")
        loss.backward()
        if guard.check(loss, step):
            opt.step()
            step += 1
        else:
            step = 10
        opt.zero_grad()
    ref, ref_opt = make()
    lr = ref_opt.param_groups[0]["lr"]
    for s in range(30):
        ref_opt.param_groups[0]["lr"] = lr if s < 10 else lr / 2
        loss_fn(ref, s).backward()
        ref_opt.step()
        ref_opt.zero_grad()
    return model, ref, guard


def test_a_bf16_model_is_rolled_back_to_a_legitimate_run() -> None:
    """bf16 parameters and Adam: a NaN at step 12 goes back to step 10's snapshot, bit for bit."""

    def make_bf16() -> tuple[torch.nn.Module, torch.optim.Optimizer]:
        torch.manual_seed(0)
        model = torch.nn.Sequential(torch.nn.Linear(8, 16), torch.nn.ReLU(), torch.nn.Linear(16, 1))
        model = model.to(torch.bfloat16)
        return model, torch.optim.Adam(model.parameters(), lr=1e-2)

    def bf16_loss(model: torch.nn.Module, step: int) -> torch.Tensor:
        x, y = _amp_batch(step)
        loss = F.mse_loss(model(x.bfloat16()), y.bfloat16())
        assert loss.dtype == torch.bfloat16
        return loss

    model, ref, guard = _nan_at_step_12(make_bf16, bf16_loss)
    assert [(e.step, e.snapshot_step) for e in guard.events] == [(12, 10)]
    _assert_equal(model.state_dict(), ref.state_dict())


def test_scaler_must_be_a_grad_scaler() -> None:
    model = torch.nn.Linear(1, 1)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    with pytest.raises(TypeError, match=r"scaler must be a torch.amp.GradScaler .* got SGD without update"):
        DivergenceGuard(model, opt, scaler=opt)  # type: ignore[arg-type]


def test_batchnorm_statistics_are_rolled_back_to_the_start_of_the_snapshot_step() -> None:
    """A snapshot is taken at the check of its step, after that step's forward has moved BatchNorm's
    running statistics: before, it kept those, and the replay moved them by that batch a second time
    (and counted it twice in num_batches_tracked), so the run was no run that trained normally. The
    buffers as the step began are noted at the check before it: the guarded run equals a plain loop
    with the LR cut from the snapshot step on, buffers included."""

    def make_bn() -> tuple[torch.nn.Module, torch.optim.Optimizer]:
        torch.manual_seed(0)
        model = torch.nn.Sequential(
            torch.nn.Linear(8, 32), torch.nn.BatchNorm1d(32), torch.nn.ReLU(), torch.nn.Linear(32, 1)
        )
        return model, torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)

    model, ref, guard = _nan_at_step_12(make_bn, loss_of)
    assert [(e.step, e.snapshot_step) for e in guard.events] == [(12, 10)]
    _assert_equal(model.state_dict(), ref.state_dict())
    assert model[1].num_batches_tracked.item() == 30
