"""The framework-free range test: ramp, smoothing, divergence stop, repeats, result and plot."""

from __future__ import annotations

import json
import math
import warnings

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lrkit.finder import Curve, FinderResult, ema_debiased, lr_ramp, range_test
from lrkit.finder.core import StopRule, sweep


# --- ramp ---------------------------------------------------------------------------------------
@pytest.mark.parametrize(("start", "end", "n"), [(1e-7, 10.0, 100), (1e-3, 1.0, 7), (0.5, 0.6, 2)])
def test_exp_ramp_matches_torch_lr_finder(start: float, end: float, n: int) -> None:
    torch = pytest.importorskip("torch")
    from torch_lr_finder.lr_finder import ExponentialLR

    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=start)
    sched = ExponentialLR(opt, end, n)
    ref = []
    # torch-lr-finder's scheduler is stepped without optimizer steps here; its warning is expected.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        for _ in range(n):
            ref.append(sched.get_lr()[0])
            sched.step()
    np.testing.assert_allclose(lr_ramp(start, end, n), ref, rtol=1e-12)


def test_linear_ramp_hand_values() -> None:
    np.testing.assert_allclose(lr_ramp(0.1, 1.0, 4, mode="linear"), [0.1, 0.4, 0.7, 1.0], rtol=1e-12)


def test_exp_ramp_is_geometric() -> None:
    lrs = lr_ramp(1e-6, 1.0, 61)
    ratios = lrs[1:] / lrs[:-1]
    np.testing.assert_allclose(ratios, 10 ** (6 / 60), rtol=1e-10)
    assert lrs[0] == 1e-6 and lrs[-1] == 1.0


@pytest.mark.parametrize(
    ("kwargs", "exc", "words"),
    [
        ({"start_lr": 0.0}, ValueError, "start_lr"),
        ({"start_lr": -1.0}, ValueError, "start_lr"),
        ({"end_lr": 1e-8}, ValueError, "end_lr"),
        ({"end_lr": math.inf}, ValueError, "end_lr"),
        ({"num_steps": 1}, ValueError, "num_steps"),
        ({"num_steps": 10.0}, TypeError, "num_steps"),
        ({"num_steps": True}, TypeError, "num_steps"),
        ({"mode": "cos"}, ValueError, "mode"),
        ({"start_lr": "1e-3"}, TypeError, "start_lr"),
    ],
)
def test_ramp_validation_names_the_argument(kwargs: dict[str, object], exc: type, words: str) -> None:
    args: dict[str, object] = {"start_lr": 1e-7, "end_lr": 10.0, "num_steps": 100, "mode": "exp"}
    args.update(kwargs)
    with pytest.raises(exc, match=words):
        lr_ramp(**args)  # type: ignore[arg-type]


# --- smoothing ----------------------------------------------------------------------------------
def test_ema_debiased_hand_values() -> None:
    # beta = 0.5: a = [0.5, 0.5*0.5+0.5*3=1.75], debias by [0.5, 0.75] -> [1, 7/3]
    np.testing.assert_allclose(ema_debiased([1.0, 3.0], 0.5), [1.0, 7.0 / 3.0])


@settings(max_examples=50, deadline=None)
@given(
    st.lists(st.floats(-1e3, 1e3), min_size=1, max_size=40),
    st.floats(0.0, 0.99),
)
def test_ema_debiased_is_a_weighted_mean(xs: list[float], beta: float) -> None:
    """s_i = sum_j w_ij x_j with w_ij = (1-b) b^(i-j) / (1 - b^(i+1)), weights summing to 1."""
    out = ema_debiased(xs, beta)
    x = np.asarray(xs)
    for i in range(len(xs)):
        w = (1 - beta) * beta ** (i - np.arange(i + 1)) / (1 - beta ** (i + 1))
        assert math.isclose(w.sum(), 1.0, rel_tol=1e-9)
        assert out[i] == pytest.approx(float(w @ x[: i + 1]), rel=1e-9, abs=1e-9)


def test_ema_of_constant_is_constant_and_beta_zero_is_identity() -> None:
    np.testing.assert_allclose(ema_debiased([2.5] * 10, 0.98), 2.5)
    xs = [3.0, 1.0, 4.0, 1.0, 5.0]
    np.testing.assert_array_equal(ema_debiased(xs, 0.0), xs)


@pytest.mark.parametrize("beta", [1.0, -0.1, 2])
def test_smoothing_validation(beta: float) -> None:
    with pytest.raises(ValueError, match="smoothing"):
        ema_debiased([1.0], beta)


# --- the sweep and its stop rule ----------------------------------------------------------------
def test_sweep_calls_step_with_each_lr_and_records_smoothed_ema() -> None:
    seen: list[float] = []

    def step(lr: float) -> float:
        seen.append(lr)
        return 1.0 / (1.0 + len(seen))

    lrs = lr_ramp(1e-4, 1e-1, 10)
    c = sweep(step, lrs, smoothing=0.7, stop=None)
    np.testing.assert_array_equal(seen, lrs)
    np.testing.assert_array_equal(c.lrs, lrs)
    np.testing.assert_allclose(c.smoothed, ema_debiased(c.losses, 0.7))
    assert c.stopped_at is None and not c.diverged


def test_single_spike_does_not_stop_but_sustained_rise_does() -> None:
    losses = [1.0] * 10 + [100.0] + [1.0] * 10
    it = iter(losses)
    c = sweep(lambda lr: next(it), lr_ramp(1e-3, 1.0, len(losses)), smoothing=0.5, stop=StopRule(4.0, 3))
    assert c.stopped_at is None and len(c.losses) == len(losses)

    losses = [1.0] * 10 + [10.0] * 10
    it = iter(losses)
    c = sweep(lambda lr: next(it), lr_ramp(1e-3, 1.0, len(losses)), smoothing=0.5, stop=StopRule(4.0, 3))
    assert c.stopped_at == 12  # raw loss 10 > 4 x best (1.0) at rungs 10, 11, 12
    assert len(c.losses) == 13


def test_non_finite_loss_stops_immediately() -> None:
    losses = [1.0, 0.9, math.nan, 0.5]
    it = iter(losses)
    c = sweep(lambda lr: next(it), lr_ramp(1e-3, 1.0, 4), stop=None)
    assert c.stopped_at == 2 and len(c.losses) == 3 and math.isnan(c.smoothed[2])


def test_step_must_return_a_number() -> None:
    with pytest.raises(TypeError, match="step"):
        range_test(lambda lr: "loss", num_steps=5)  # type: ignore[arg-type,return-value]
    with pytest.raises(TypeError, match="step"):
        range_test(42, num_steps=5)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("kwargs", "words"),
    [
        ({"diverge_factor": 1.0}, "diverge_factor"),
        ({"diverge_patience": 0}, "diverge_patience"),
        ({"repeats": 0}, "repeats"),
        ({"rule": "nope"}, "rule"),
        ({"smoothing": 1.5}, "smoothing"),
    ],
)
def test_range_test_validation(kwargs: dict[str, object], words: str) -> None:
    with pytest.raises(ValueError, match=words):
        range_test(lambda lr: 1.0, num_steps=5, **kwargs)  # type: ignore[arg-type]


# --- a synthetic "training" whose best LR is known ---------------------------------------------
def bowl(lr: float, rng: np.random.Generator | None = None, noise: float = 0.0) -> float:
    """Loss falls like 1 / (1 + lr/1e-3) until lr ~ 0.3, then blows up: minimum near 0.1-0.3."""
    base = 2.0 / (1.0 + lr / 1e-3) + 0.1 + 50.0 * max(0.0, lr - 0.1) ** 2
    return base + (noise * float(rng.standard_normal()) if rng is not None else 0.0)


def test_repeats_call_before_repeat_and_give_median_and_interval() -> None:
    calls: list[int] = []
    rng = np.random.default_rng(0)

    def before(r: int) -> None:
        calls.append(r)

    res = range_test(lambda lr: bowl(lr, rng, 0.02), num_steps=80, repeats=5, before_repeat=before)
    assert calls == [0, 1, 2, 3, 4]
    assert res.repeats == 5 and len(res.curves) == 5
    for name, values in res.per_repeat.items():
        assert len(values) == 5
        assert res.suggestions[name] == pytest.approx(float(np.median(values)), rel=1e-12)
    lo, hi = res.interval
    assert lo == min(res.per_repeat["lrkit"]) and hi == max(res.per_repeat["lrkit"])
    assert lo <= res.suggestion <= hi


def test_suggestions_on_the_bowl_are_below_the_cliff() -> None:
    res = range_test(bowl, num_steps=100, smoothing=0.0)
    lr_min = res.lrs[int(np.argmin(res.losses))]
    assert 0.05 < lr_min < 0.5
    assert res.suggestions["minimum"] == pytest.approx(lr_min / 10)
    for name, value in res.suggestions.items():
        assert 1e-5 < value <= lr_min, name
    assert res.curves[0].diverged  # the bowl's right wall triggers the stop
    assert res.trusted, res.reason


# --- trust verdicts -----------------------------------------------------------------------------
def test_flat_curve_is_not_trusted() -> None:
    rng = np.random.default_rng(1)
    res = range_test(lambda lr: 1.0 + 0.001 * float(rng.standard_normal()), num_steps=50)
    assert not res.trusted and "flat" in res.reason


@pytest.mark.parametrize(("noise", "trusted"), [(0.05, True), (1.0, False)])
def test_noisy_curve_is_not_trusted(noise: float, trusted: bool) -> None:
    rng = np.random.default_rng(2)
    res = range_test(lambda lr: bowl(lr, rng, noise), num_steps=100, diverge_factor=None)
    assert res.trusted == trusted, res.reason
    assert trusted or res.reason.startswith("noisy")


def test_loss_still_falling_at_end_lr_is_not_trusted() -> None:
    res = range_test(lambda lr: 1.0 / (1.0 + lr / 1e-4), end_lr=1e-2, num_steps=40, smoothing=0.0)
    assert not res.trusted and "still falling" in res.reason


def test_disagreeing_repeats_are_not_trusted() -> None:
    shifts = iter([1.0, 1e3])
    shift = [1.0]

    def before(r: int) -> None:
        shift[0] = next(shifts)

    res = range_test(lambda lr: bowl(lr * shift[0]), num_steps=100, repeats=2, before_repeat=before)
    assert not res.trusted and "disagree" in res.reason
    lo, hi = res.interval
    assert hi / lo > 10


def test_result_to_dict_is_json_and_str_mentions_suggestion() -> None:
    res = range_test(bowl, num_steps=30, repeats=2)
    d = json.loads(json.dumps(res.to_dict()))
    assert d["suggestion"] == res.suggestion and len(d["curves"]) == 2
    assert f"{res.suggestion:.3g}" in str(res)
    assert f"use {res.peak_lr:.3g} as the peak of warmup + cosine or WSD" in str(res)


def test_curve_shapes_are_checked() -> None:
    with pytest.raises(ValueError, match="shapes"):
        Curve(np.ones(3), np.ones(2), np.ones(3))
    with pytest.raises(ValueError, match="curves"):
        FinderResult.from_curves([])


def test_plot_writes_a_png_with_log_axis(tmp_path: object) -> None:
    pytest.importorskip("matplotlib")
    from pathlib import Path

    res = range_test(bowl, num_steps=40, repeats=3)
    out = Path(str(tmp_path)) / "lr.png"
    ax = res.plot(out)
    assert out.stat().st_size > 1000
    assert ax.get_xscale() == "log"
    assert "learning rate" in ax.get_xlabel() and ax.get_ylabel() == "loss"
    lines = {ln.get_label() for ln in ax.get_lines()}
    assert any(label.startswith("lrkit") for label in lines)


# --- schedules from a result ------------------------------------------------------------------------
def test_schedule_from_result_warmup_cosine_and_one_cycle() -> None:
    from lrkit.finder import schedule_from_result

    res = range_test(bowl, num_steps=60)
    peak = res.peak_lr
    s = schedule_from_result(res).resolve(total_steps=200)  # warmup 5% = 10 steps, then cosine
    values = np.array([s(t) for t in range(200)])
    assert np.all(np.diff(values[:11]) > 0) and values[10] == pytest.approx(peak)
    assert np.all(np.diff(values[10:]) <= 0)
    assert values[-1] == pytest.approx(peak / 100, rel=0.01)
    # the cosine half: min + (peak - min) (1 + cos(pi t / 190)) / 2 at t = 95 (midway)
    assert values[105] == pytest.approx(peak / 100 + (peak - peak / 100) / 2, rel=1e-9)

    # WSD: the warmup, the peak held to step 160, then 1-sqrt over the last 40 steps to 0
    w = res.schedule("wsd").resolve(total_steps=200)
    assert w(10) == w(160) == pytest.approx(peak) and w(180) == pytest.approx(peak * (1 - 0.5**0.5))
    assert w(200) == 0.0
    lin = res.schedule("wsd", decay="10%", cooldown="linear").resolve(total_steps=200)
    assert lin(180) == pytest.approx(peak) and lin(190) == pytest.approx(peak / 2)

    oc = res.schedule("one_cycle", pct_start=0.25).resolve(total_steps=100)
    assert oc(0) == pytest.approx(res.max_lr / 25)
    assert oc(24) == pytest.approx(res.max_lr)  # peak at pct_start * steps - 1
    assert max(oc(t) for t in range(100)) == pytest.approx(res.max_lr)


def test_schedule_from_result_validation() -> None:
    from lrkit.finder import schedule_from_result

    res = range_test(bowl, num_steps=30)
    with pytest.raises(ValueError, match="kind"):
        schedule_from_result(res, "linear")
    with pytest.raises(TypeError, match="options"):
        schedule_from_result(res, "cosine", pct_start=0.3)
    with pytest.raises(TypeError, match="wsd"):
        schedule_from_result(res, "wsd", lr=0.1)
    with pytest.raises(ValueError, match="min_lr_ratio"):
        schedule_from_result(res, min_lr_ratio=2.0)
    with pytest.raises(TypeError, match="FinderResult"):
        schedule_from_result(0.1)  # type: ignore[arg-type]


@pytest.mark.parametrize("n", [1_000_001, 10**9, 10**30])
def test_a_ramp_of_more_rungs_than_a_test_could_run_is_refused_at_once(n: int) -> None:
    from lrkit.finder.core import MAX_RUNGS

    with pytest.raises(ValueError, match=f"num_steps must be at most {MAX_RUNGS:,}"):
        lr_ramp(1e-7, 10.0, n)  # before the ramp is built (10**9 rungs: 8 GB)
    assert lr_ramp(1e-7, 10.0, MAX_RUNGS).size == MAX_RUNGS
