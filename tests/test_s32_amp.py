"""Mixed precision (explorer AMP's findings 1-4): a GradScaler that skips every step is a divergence to
the guard (max_skipped skips in a row); the finder names the scaler's skips and keeps the real loss; an
eps that is 0 in the parameters' dtype is warned about where lrkit first sees the optimizer; amp_dtype
takes only the dtypes torch.autocast runs in."""

from __future__ import annotations

import json
import math
import re
import warnings
from typing import Any

import pytest

torch = pytest.importorskip("torch")
F = torch.nn.functional
pytestmark = pytest.mark.usefixtures("one_torch_thread")

import lrkit  # noqa: E402
from lrkit.control import DivergenceError, DivergenceGuard  # noqa: E402
from lrkit.finder.result import FinderResult  # noqa: E402


def _net(seed: int = 0) -> Any:
    torch.manual_seed(seed)
    return torch.nn.Sequential(torch.nn.Linear(10, 32), torch.nn.ReLU(), torch.nn.Linear(32, 1))


def _batch(step: int) -> tuple[Any, Any]:
    g = torch.Generator().manual_seed(step)
    x = torch.randn(32, 10, generator=g)
    return x, x[:, :3].sum(dim=1, keepdim=True) + 0.1 * torch.randn(32, 1, generator=g)


def _nan_grad(model: Any) -> Any:
    """0 x sqrt(0): a finite (zero) term whose gradient is NaN."""
    w = model[0].weight
    return 0.0 * torch.sqrt(w - w.detach()).sum()


def _amp_loop(
    guard: DivergenceGuard,
    model: Any,
    opt: Any,
    scaler: Any,
    steps: int,
    nan_from: int | None,
    first_scale: dict[int, float] | None = None,
) -> dict[str, Any]:
    """The explorer's loop (fp16 autocast, the guard given the scaler): from ``nan_from`` on every
    gradient is NaN behind a finite loss. Returns the scale seen at each step's first check and the
    skips counted (the scale fell between two updates)."""
    first_scale = {} if first_scale is None else first_scale
    skips = iterations = 0
    step = 0
    while step < steps:
        iterations += 1
        assert iterations < 20 * steps, "the loop does not end"
        x, y = _batch(step)
        with torch.autocast("cpu", dtype=torch.float16):
            out = model(x)
        loss = F.mse_loss(out.float(), y)
        if nan_from is not None and step >= nan_from:
            loss = loss + _nan_grad(model)
        first_scale.setdefault(step, scaler.get_scale())
        scaler.scale(loss).backward()
        if guard.check(loss, step):
            before = scaler.get_scale()
            scaler.step(opt)
            scaler.update()
            skips += scaler.get_scale() < before
            if guard.scheduler is not None:
                guard.scheduler.step()
            step += 1
        else:
            step = guard.resume_step
        opt.zero_grad()
    return {"first_scale": first_scale, "skips": skips}


# -- 1. the guard and a scaler that skips every step ------------------------------------------------
@pytest.mark.filterwarnings("ignore::lrkit.adapters.torch.NoOptimizerStepWarning")  # 32 skips: expected
@pytest.mark.parametrize("snapshot_every", [10, 1])
def test_a_scaler_that_skips_every_step_is_a_divergence(snapshot_every: int) -> None:
    """The explorer's repro: before, 280 of 300 steps trained nothing and the guard recorded nothing.
    Now max_skipped=32 skipped steps in a row are a "scale" divergence: rolled back to a snapshot taken
    before the skips (with its scale), cut, and at the end a DivergenceError naming the skips and the
    scale. snapshot_every=1 would snapshot the fallen scale at every skip: none is taken
    just after a skip, so the rollback still reaches the scale from before them."""
    model = _net()
    opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    sched = lrkit.torch.scheduler(opt, "warmup(steps=10) >> cosine(lr=0.05, steps=290)", total_steps=300)
    scaler = torch.amp.GradScaler("cpu")
    guard = DivergenceGuard(model, opt, sched, scaler=scaler, snapshot_every=snapshot_every)
    seen: dict[int, float] = {}  # the scale each step's first check saw
    with pytest.raises(DivergenceError) as info:
        _amp_loop(guard, model, opt, scaler, 300, nan_from=20, first_scale=seen)
    events = guard.events
    assert [e.reason for e in events] == ["scale"] * 4 and events[-1].action == "stop"
    assert all(math.isfinite(e.loss) for e in events)
    # the first divergence is the check after the 32nd skip: steps 20..51 skipped, 32 halvings
    first = events[0]
    assert first.step == 20 + 32 and seen[first.step] == seen[20] / 2.0**32
    assert first.snapshot_step <= 20  # the snapshot before the skips began
    message = str(info.value)
    found = re.search(r"GradScaler skipped (\d+) optimizer steps in a row, its scale fell to (\S+) ", message)
    # the skips since the last rollback, and the scale they halved from the one restored then (the scale
    # that step had when the loop first checked it)
    assert found and int(found[1]) == 32
    assert float(found[2]) == pytest.approx(seen[events[-2].snapshot_step] / 2.0**32, rel=1e-2)
    assert "inf/NaN gradients" in message and "set_detect_anomaly" in message
    # the scaler is back at the scale of the snapshot the run was left at (>= 1: from before the skips)
    assert scaler.get_scale() == seen[events[-1].snapshot_step] >= 2.0**14


def test_the_stop_leaves_the_scaler_at_its_snapshots_scale() -> None:
    """After the DivergenceError the scaler holds the scale it had at the snapshot's step (recorded by
    the loop when that step was first checked), not the fallen one."""
    model = _net(1)
    opt = torch.optim.SGD(model.parameters(), lr=0.02)
    scaler = torch.amp.GradScaler("cpu")
    guard = DivergenceGuard(model, opt, scaler=scaler, snapshot_every=5, max_recoveries=1)
    scales: dict[int, float] = {}
    step = 0
    with pytest.raises(DivergenceError):
        while step < 200:
            x, y = _batch(step)
            with torch.autocast("cpu", dtype=torch.float16):
                loss = F.mse_loss(model(x).float(), y)
            if step >= 12:
                loss = loss + _nan_grad(model)
            scales.setdefault(step, scaler.get_scale())
            scaler.scale(loss).backward()
            if guard.check(loss, step):
                scaler.step(opt)
                scaler.update()
                step += 1
            else:
                step = guard.resume_step
            opt.zero_grad()
    last = guard.events[-1]
    assert scaler.get_scale() == scales[last.snapshot_step] >= 1.0
    assert all(torch.isfinite(p).all() for p in model.parameters())


@pytest.mark.parametrize("seed", range(4))
def test_a_healthy_fp16_run_with_occasional_skips_is_not_flagged(seed: int) -> None:
    """A property over seeds: a too-high init_scale and a short growth_interval make the scaler skip
    now and then (its scale falls, grows back, overflows again); the guard sees no divergence, keeps
    taking snapshots and the run learns."""
    model = _net(seed)
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3)
    scaler = torch.amp.GradScaler("cpu", init_scale=2.0**24, growth_interval=4)
    guard = DivergenceGuard(model, opt, scaler=scaler, snapshot_every=10)
    x0, y0 = _batch(10_000 + seed)
    with torch.no_grad():
        start = float(F.mse_loss(model(x0), y0))
    out = _amp_loop(guard, model, opt, scaler, 150, nan_from=None)
    assert out["skips"] >= 10  # the scaler did skip, repeatedly
    assert guard.events == []
    assert guard.snapshot_bytes  # snapshots were taken between the skips
    with torch.no_grad():
        assert float(F.mse_loss(model(x0), y0)) < 0.5 * start


def test_max_skipped_none_turns_the_check_off_and_a_disabled_scaler_is_not_read() -> None:
    model = _net()
    opt = torch.optim.SGD(model.parameters(), lr=0.05)
    scaler = torch.amp.GradScaler("cpu")
    guard = DivergenceGuard(model, opt, scaler=scaler, max_skipped=None, snapshot_every=10)
    _amp_loop(guard, model, opt, scaler, 60, nan_from=20)  # the old behaviour, asked for
    assert guard.events == [] and scaler.get_scale() < 1e-3
    # a disabled scaler skips nothing and is not read (its get_scale() is 1.0, not a scale at all)
    model = _net()
    opt = torch.optim.SGD(model.parameters(), lr=0.05)
    off = torch.amp.GradScaler("cpu", enabled=False)
    off.get_scale = off._get_scale_async = None  # reading it would raise
    guard = DivergenceGuard(model, opt, scaler=off, max_skipped=1, snapshot_every=10)
    for step in range(5):
        x, y = _batch(step)
        loss = F.mse_loss(model(x), y)
        off.scale(loss).backward()
        assert guard.check(loss, step)
        off.step(opt)
        off.update()
        opt.zero_grad()


@pytest.mark.parametrize(
    ("value", "error"),
    [(0, ValueError), (-1, ValueError), (1.5, ValueError), (math.inf, ValueError), (math.nan, ValueError),
     ("1", TypeError), (True, TypeError)],
)  # fmt: skip
def test_max_skipped_is_checked(value: Any, error: type[Exception]) -> None:
    model = _net()
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    with pytest.raises(error, match=r"DivergenceGuard: max_skipped must be an integer >= 1"):
        DivergenceGuard(model, opt, scaler=torch.amp.GradScaler("cpu"), max_skipped=value)


def test_a_state_with_a_scale_event_round_trips_and_an_older_state_loads() -> None:
    """No new state field: the format stays lrkit.guard/2; a state with a "scale" event goes through
    strict JSON and loads, and so does one written before this change (format /1, no event kinds)."""
    model = _net()
    opt = torch.optim.SGD(model.parameters(), lr=0.05)
    scaler = torch.amp.GradScaler("cpu")
    guard = DivergenceGuard(model, opt, scaler=scaler, snapshot_every=10, max_recoveries=5)
    _amp_loop(guard, model, opt, scaler, 40, nan_from=None)
    state = guard.state_dict()
    assert state["format"] == "lrkit.guard/2"
    guard2 = DivergenceGuard(model, opt, scaler=scaler, snapshot_every=10, max_recoveries=5)
    with pytest.raises(DivergenceError):
        _amp_loop(guard2, model, opt, scaler, 300, nan_from=5)
    text = json.dumps(guard2.state_dict(), allow_nan=False)
    fresh = DivergenceGuard(model, opt, scaler=scaler)
    fresh.load_state_dict(json.loads(text))
    assert [e.reason for e in fresh.events] == ["scale"] * 6
    old = dict(state, format="lrkit.guard/1")
    for key in ("signed", "scale", "since_change", "backoff", "regrown"):
        old.pop(key)
    DivergenceGuard(model, opt, scaler=scaler).load_state_dict(old)


# -- 2. the finder names the skips ------------------------------------------------------------------
class _NanGradNet(torch.nn.Module):  # type: ignore[misc]
    """The explorer's t11 model: a finite output whose gradient is NaN while ``broken(lr)`` holds."""

    def __init__(self, opt_lr: Any = None) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.net = torch.nn.Sequential(torch.nn.Linear(10, 32), torch.nn.ReLU(), torch.nn.Linear(32, 1))
        self.broken_above = 0.0
        self.opt: Any = None

    def forward(self, x: Any) -> Any:
        out = self.net(x)
        lr = 0.0 if self.opt is None else float(self.opt.param_groups[0]["lr"])
        if lr >= self.broken_above:
            w = self.net[0].weight
            out = out + 0.0 * torch.sqrt(w - w.detach()).sum()
        return out


def _data() -> list[tuple[Any, Any]]:
    g = torch.Generator().manual_seed(3)
    return [(torch.randn(32, 10, generator=g), torch.randn(32, 1, generator=g)) for _ in range(20)]


def test_the_finder_names_the_skips_and_keeps_the_real_loss() -> None:
    """Before: 'the loss was inf at the first rung ... check the loss function', losses == [inf]. The
    loss was finite: the rung records it (the loss of the 20th attempt's batch, computed here under the
    same autocast from the unchanged model), and the reason names the scaler's skips."""
    model = _NanGradNet()
    opt = torch.optim.SGD(model.parameters(), lr=0.05)
    data = _data()
    scaler = torch.amp.GradScaler("cpu")
    res = lrkit.find_lr(model, opt, data, F.mse_loss, grad_scaler=scaler, amp_dtype=torch.float16,
                        repeats=1, max_skipped=20)  # fmt: skip
    curve = res.curves[0]
    assert curve.stopped_at == 0 and curve.skipped == 20 and curve.lrs.size == 1
    x, y = data[19]
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.float16):
        expected = float(F.mse_loss(model(x), y))
    assert float(curve.losses[0]) == pytest.approx(expected, rel=1e-6)
    assert res.problem_kinds == ("broken",) and res.suggestion is None
    assert res.reason.startswith("the GradScaler skipped 20 steps in a row at the first rung (lr=1e-07)")
    assert "the loss was finite" in res.reason and "inf at the first rung" not in res.reason
    again = FinderResult.from_dict(json.loads(json.dumps(res.to_dict(), allow_nan=False)))
    assert again.curves[0].skipped == 20 and again.reason == res.reason
    # an older lrkit's dict (no "skipped") still reads
    old = res.to_dict()
    for c in old["curves"]:
        del c["skipped"]
    assert FinderResult.from_dict(old).curves[0].skipped == 0


def test_skips_in_the_middle_of_the_ramp_end_it_as_a_blow_up_and_are_noted() -> None:
    model = _NanGradNet()
    opt = torch.optim.SGD(model.parameters(), lr=0.05)
    model.opt, model.broken_above = opt, 1e-3
    res = lrkit.find_lr(model, opt, _data(), F.mse_loss, grad_scaler=torch.amp.GradScaler("cpu"),
                        amp_dtype=torch.float16, repeats=1, max_skipped=5)  # fmt: skip
    curve = res.curves[0]
    first_broken = int((curve.lrs >= 1e-3).argmax())
    assert curve.stopped_at == first_broken == curve.lrs.size - 1 and curve.skipped == 5
    assert all(math.isfinite(v) for v in curve.losses)
    assert math.isnan(curve.smoothed[-1])
    assert any(n.startswith(f"repeat 0: the GradScaler skipped 5 steps in a row at rung {first_broken}")
               for n in res.notes)  # fmt: skip


def test_the_in_run_ramp_names_the_skips_too() -> None:
    from lrkit.finder.in_run import ramp_in_run

    model = _NanGradNet()
    opt = torch.optim.SGD(model.parameters(), lr=0.05)
    ramp = ramp_in_run(model, opt, _data(), F.mse_loss, grad_scaler=torch.amp.GradScaler("cpu"),
                       amp_dtype=torch.float16, max_skipped=4)  # fmt: skip
    curve = ramp.result.curves[0]
    assert curve.skipped == 4 and curve.stopped_at == 0 and math.isfinite(curve.losses[0])
    assert ramp.kept == 0 and "GradScaler skipped 4 steps in a row" in ramp.result.reason


# -- 3. an eps that is 0 in the parameters' dtype ---------------------------------------------------
def _one_step_nan(model: Any, eps: float) -> bool:
    """Whether one AdamW step at a tiny LR makes the model's parameters NaN (torch's own behaviour,
    the reference the warning is checked against). Input feature 0 is always 0: its weights' gradients
    are exactly 0, the 0/0 of an eps that is 0."""
    opt = torch.optim.AdamW(model.parameters(), lr=1e-7, eps=eps)
    x = torch.randn(16, 10)
    x[:, 0] = 0.0
    model(x.to(next(model.parameters()).dtype)).float().pow(2).mean().backward()
    opt.step()
    return not all(torch.isfinite(p).all() for p in model.parameters())


@pytest.mark.parametrize("eps", [1e-8, 1e-10, 1e-7, 1e-4])
@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16, torch.float32])
def test_the_eps_warning_fires_exactly_where_one_step_makes_nan(eps: float, dtype: Any) -> None:
    reference = _one_step_nan(_net().to(dtype), eps)
    model = _net().to(dtype)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3, eps=eps)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        DivergenceGuard(model, opt)
    said = [str(w.message) for w in caught if "which is 0 in" in str(w.message)]
    assert bool(said) == reference
    if said:
        assert f"param group 0 has eps={eps:g}, which is 0 in {dtype}" in said[0]
        assert "float32 master weights" in said[0] and "eps >= 1e-4" in said[0]


def test_the_finder_warns_of_an_eps_that_is_0_in_float16() -> None:
    model = _net().half()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    data = [(x.half(), y.half()) for x, y in (_batch(s) for s in range(8))]
    with pytest.warns(UserWarning, match=r"eps=1e-08, which is 0 in torch.float16") as caught:
        lrkit.find_lr(model, opt, data, F.mse_loss, num_steps=5, repeats=1)
    assert any("no learning rate the range test tries can train it" in str(w.message) for w in caught)


def test_a_pair_eps_and_a_frozen_float16_parameter_are_not_read() -> None:
    model = _net()
    model[2].half().requires_grad_(False)  # frozen: torch.optim does not step it
    groups = [{"params": list(model[0].parameters())}, {"params": list(model[2].parameters())}]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        DivergenceGuard(model, torch.optim.AdamW(groups, lr=1e-3))
        DivergenceGuard(model, torch.optim.Adafactor(model[0].parameters()))  # eps=(None, 1e-3)


# -- 4. amp_dtype ---------------------------------------------------------------------------------
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.int8])
def test_amp_dtype_outside_autocasts_dtypes_is_refused(dtype: Any) -> None:
    from lrkit.finder.in_run import ramp_in_run

    model = _net()
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    data = [_batch(s) for s in range(4)]
    want = rf"amp_dtype must be None, torch.bfloat16 or torch.float16 \(.*\), got {dtype}$"
    with pytest.raises(TypeError, match=want):  # TypeError, as int8 always was
        lrkit.find_lr(model, opt, data, F.mse_loss, amp_dtype=dtype)
    with pytest.raises(TypeError, match=want):
        ramp_in_run(model, opt, data, F.mse_loss, amp_dtype=dtype)
    with pytest.raises(TypeError, match=r"amp_dtype must be None, .* got 'bf16'"):
        lrkit.find_lr(model, opt, data, F.mse_loss, amp_dtype="bf16")
    with pytest.raises(TypeError, match="amp_dtype"):
        lrkit.auto(model, opt, data, F.mse_loss, epochs=2, amp_dtype=dtype, verbose=False)
