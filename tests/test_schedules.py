"""Schedules against hand-computed values and formulas, durations, evaluation types, validation."""

from __future__ import annotations

import math
import subprocess
import sys
from typing import Any

import numpy as np
import pytest

import lrkit
from lrkit.schedules import (
    WSD,
    Clamp,
    Constant,
    Cosine,
    CosineRestarts,
    Cyclic,
    ExpDecay,
    Exponential,
    InverseSqrt,
    InverseTime,
    Linear,
    MultiStep,
    OneCycle,
    Piecewise,
    Repeat,
    StepDecay,
    Warmup,
    epochs,
    fraction,
)


def test_exp_decay_and_time_based_formulas() -> None:
    t = np.arange(0, 500, 7)
    np.testing.assert_allclose(ExpDecay(lr=0.3, k=0.01)(t), 0.3 * np.exp(-0.01 * t), rtol=1e-15)
    np.testing.assert_allclose(InverseTime(lr=0.3, k=0.01)(t), 0.3 / (1 + 0.01 * t), rtol=1e-15)
    stair = InverseTime(lr=0.3, k=0.5, every=100, staircase=True)
    assert [stair(x) for x in (0, 99, 100, 250)] == pytest.approx([0.3, 0.3, 0.3 / 1.5, 0.3 / 2], rel=1e-15)
    assert Exponential(lr=1.0, gamma=0.5, every=10, staircase=True)(25) == 0.25
    assert Exponential(lr=1.0, gamma=0.5, every=10)(25) == pytest.approx(0.5**2.5)


def test_noam_is_warmup_then_inverse_sqrt() -> None:
    """Vaswani et al.: lr = peak * min(step/w, sqrt(w/step)); here the warmup starts at 0."""
    w, peak = 400, 1e-3
    s = Warmup(steps=w, start=0.0) >> InverseSqrt(lr=peak, timescale=w)
    for step in (1, 100, 399, 400, 401, 1600, 10_000):
        assert s(step) == pytest.approx(peak * min(step / w, math.sqrt(w / step)), rel=1e-12)


def test_warmup_forms() -> None:
    lin = Warmup(steps=9, lr=1.0)  # default: (t+1)/(n+1), never exactly zero
    assert lin(0) == pytest.approx(0.1) and lin(9) == 1.0
    assert Warmup(steps=10, start=0.2, lr=1.0)(5) == pytest.approx(0.6)
    ex = Warmup(steps=10, mode="exponential", start=0.01, lr=2.0)
    assert ex(0) == pytest.approx(0.02) and ex(5) == pytest.approx(0.2) and ex(10) == 2.0
    assert (Warmup(steps=10) >> Cosine(lr=0.5, steps=90))(10) == 0.5


@pytest.mark.parametrize("steps", [0.05, 0.1, 0.5, 0.999])
def test_warmup_of_less_than_one_step_is_refused_with_the_fraction_it_meant(steps: float) -> None:
    """Warmup(0.05) is 0.05 *steps*, i.e. no warmup; lrkit.auto itself once shipped it meaning 5%."""
    with pytest.raises(ValueError, match=rf"steps={steps:g} is less than one step.*'{100 * steps:g}%'"):
        Warmup(steps)
    assert Warmup(1)(0) == pytest.approx(0.5)  # one step stays valid
    from lrkit.schedules.duration import fraction

    w = (Warmup(fraction(steps)) >> Cosine(lr=1.0)).resolve(total_steps=10_000)
    assert w(0) < 1.0 and w(math.ceil(10_000 * steps)) == pytest.approx(1.0)


@pytest.mark.parametrize(
    ("make", "field"),
    [
        (lambda v: WSD(lr=0.05, decay=v), "decay"),
        (lambda v: WSD(lr=0.05, warmup=v), "warmup"),
        (lambda v: Cosine(lr=0.1, steps=v), "steps"),
        (lambda v: MultiStep(lr=0.1, milestones=[v, 5]), "milestones"),
    ],
)
@pytest.mark.parametrize("v", [0.2, 0.05, 0.999])
def test_every_length_of_less_than_one_step_is_refused_with_the_fraction_it_meant(
    make: Any, field: str, v: float
) -> None:
    """wsd(lr=0.05, decay=0.2) was a cool-down of 0.2 steps: the LR held to the last step, silently
    (a lab report's LR plot showed it). Lengths and milestones below one step are refused like Warmup's."""
    with pytest.raises(ValueError, match=rf"{field}={v:g} is less than one step.*'{100 * v:g}%'"):
        make(v)
    make(1)  # one step is a length
    make(fraction(v))  # the fraction it meant


def test_a_period_may_be_shorter_than_a_step() -> None:
    """Periods (step sizes, cycles, timescales) are not lengths: down to MIN_PERIOD steps, as before."""
    assert Cyclic(lr=0.1, max_lr=1.0, step_size_up=0.5)(0) == pytest.approx(0.1)
    assert StepDecay(lr=1.0, step_size=0.5, gamma=0.5)(1) == pytest.approx(0.25)


def test_wsd_cooldown_shapes() -> None:
    for shape, f in [
        ("linear", lambda s: 1 - s),
        ("cosine", lambda s: (1 + math.cos(math.pi * s)) / 2),
        ("1-sqrt", lambda s: 1 - math.sqrt(s)),
    ]:
        s = WSD(lr=2.0, steps=1000, warmup=100, decay=200, cooldown=shape, min_lr=0.5)
        assert s(500) == 2.0 and s(800) == 2.0
        for t in (850, 900, 999, 1000):
            assert s(t) == pytest.approx(0.5 + 1.5 * f((t - 800) / 200), rel=1e-12)
        assert s(0) == pytest.approx(2.0 / 101)


def test_wsd_default_decay_is_a_fifth_of_its_own_length() -> None:
    """wsd(lr=1, steps=100) could not be evaluated without a total (its decay was 20% of the run), and in
    a 1000-step run asked for a 200-step cool-down inside 100 steps. Left out, decay is ceil(0.2 * steps)."""
    s = lrkit.parse("wsd(lr=2.0, steps=100, cooldown=linear)")
    assert s.unresolved == ""  # evaluable as it is: no total needed
    # cool-down over the last 20 steps (80..100): 2 * (1 - (t - 80) / 20)
    assert [s(t) for t in (0, 79, 80, 85, 90, 95, 100, 150)] == [2.0, 2.0, 2.0, 1.5, 1.0, 0.5, 0.0, 0.0]
    for total in (100, 1000, 10**6):  # the same curve in a run of any length
        r = s.resolve(total_steps=total)
        assert [r(t) for t in (79, 80, 90, 100)] == [2.0, 2.0, 1.0, 0.0]
    odd = WSD(lr=1.0, steps=101, cooldown="linear")  # ceil(20.2) = 21 steps, from step 80
    assert odd(80) == 1.0 and odd(87) == pytest.approx(1 - 7 / 21, rel=1e-15) and odd(101) == 0.0
    epochs_long = lrkit.parse("wsd(lr=1.0, steps=10ep, cooldown=linear)").resolve(steps_per_epoch=30)
    assert epochs_long(240) == 1.0 and epochs_long(270) == 0.5  # 300 steps: the last 60
    half = lrkit.parse("wsd(lr=1.0, steps=50%, cooldown=linear)").resolve(total_steps=1000)
    assert half(400) == 1.0 and half(450) == 0.5 and half(500) == 0.0  # 20% of its 500 steps
    with pytest.raises(ValueError, match=r"warmup \(90\) \+ decay \(20, the default 20% of steps\) must fit"):
        WSD(lr=1.0, steps=100, warmup=90)


def test_wsd_default_decay_over_the_rest_of_the_run_and_a_written_percent_are_as_before() -> None:
    """With steps='rest' (the default) the default cool-down is 20% of the whole run, as decay='20%' is
    (values and spec text unchanged); a written percent stays a percent of the run, as for every duration."""
    alone = lrkit.parse("wsd(lr=1.0, cooldown=linear)").resolve(total_steps=1000)
    assert alone(800) == 1.0 and alone(900) == 0.5 and alone(1000) == 0.0  # 200 steps
    assert str(alone) == "wsd(lr=1.0, steps=1000, decay=200, cooldown=linear)"
    chained = lrkit.parse("warmup(100) >> wsd(lr=1.0, cooldown=linear)").resolve(total_steps=1000)
    assert chained(800) == 1.0 and chained(900) == 0.5  # still the run's last 200 steps
    with pytest.raises(ValueError, match=r"warmup \(750\) \+ decay \(200\) must fit in steps \(900\)"):
        lrkit.parse("warmup(100) >> wsd(lr=1.0, warmup=750)").resolve(total_steps=1000)
    written = lrkit.parse("wsd(lr=1.0, steps=500, decay=20%, cooldown=linear)").resolve(total_steps=1000)
    assert written(300) == 1.0 and written(400) == 0.5  # 20% of the run: 200 of its 500 steps
    with pytest.raises(ValueError, match=r"warmup \(0\) \+ decay \(200\) must fit in steps \(100\)"):
        lrkit.parse("wsd(lr=1.0, steps=100, decay=20%)").resolve(total_steps=1000)
    # spec text: the default is left out; a written 20% is kept where it differs from the default
    for text, shown in [
        ("wsd(lr=1.0, steps=100)", "wsd(lr=1.0, steps=100)"),
        ("wsd(lr=1.0, steps=100, decay=20%)", "wsd(lr=1.0, steps=100, decay=20%)"),
        ("wsd(lr=1.0)", "wsd(lr=1.0)"),
        ("wsd(lr=1.0, decay=20%)", "wsd(lr=1.0)"),  # over the rest of the run it *is* the default
        ("wsd(lr=1.0, decay=30%)", "wsd(lr=1.0, decay=30%)"),
    ]:
        s = lrkit.parse(text)
        assert str(s) == shown and lrkit.parse(str(s)) == s and lrkit.from_dict(s.to_dict()) == s
        assert lrkit.loads(lrkit.dumps(s, "json"), "json") == s
    assert lrkit.parse("wsd(lr=1.0, decay=20%)") == lrkit.parse("wsd(lr=1.0)")
    assert lrkit.parse("wsd(lr=1.0, steps=100, decay=20%)") != lrkit.parse("wsd(lr=1.0, steps=100)")
    assert eval(repr(WSD(lr=1.0, steps=100)), {"WSD": WSD, "steps": lrkit.steps}) == WSD(lr=1.0, steps=100)


def test_lrkit_show_evaluates_a_wsd_of_given_length_without_a_total(
    capsys: pytest.CaptureFixture[str],
) -> None:
    from lrkit.cli import main

    assert main(["show", "wsd(lr=1, steps=100, cooldown=linear)", "--at", "79,90,100"]) == 0
    out = capsys.readouterr().out.split()
    assert out[-6:] == ["79", "1", "90", "0.5", "100", "0"]


def test_cyclic_sine_is_smooth_and_peaks_on_time() -> None:
    s = Cyclic(lr=0.1, max_lr=1.1, step_size_up=100, step_size_down=300, mode="sine")
    assert s(0) == pytest.approx(0.1) and s(100) == pytest.approx(1.1) and s(400) == pytest.approx(0.1)
    assert s(50) == pytest.approx(0.6) and s(250) == pytest.approx(0.6)


def test_cosine_restarts_cycle_boundaries_with_peak_decay() -> None:
    s = CosineRestarts(lr=1.0, period=10, mult=2, decay=0.5, min_lr=0.0)
    starts = [0, 10, 30, 70, 150]
    assert [s(x) for x in starts] == [1.0, 0.5, 0.25, 0.125, 0.0625]
    assert [s(x - 1) < s(x) for x in starts[1:]] == [True] * 4
    frac = CosineRestarts(lr=1.0, period=3, mult=1.5)
    assert frac(3) == 1.0 and frac(7.5) == 1.0 and frac(7.4) < 0.01


def test_piecewise_repeat_clamp() -> None:
    p = Piecewise(points=[(0, 0.0), (10, 1.0), (30, 0.0)])
    np.testing.assert_allclose(p(np.array([-5, 0, 5, 10, 20, 30, 99])), [0, 0, 0.5, 1, 0.5, 0, 0])
    r = Repeat(Cosine(lr=1.0, steps=10), times=3)
    assert r(0) == r(10) == r(20) == 1.0 and r(30) == r(10**6) == 0.0
    assert Clamp(ExpDecay(lr=1.0, k=1.0), min_lr=0.1)(100) == 0.1
    assert Clamp(Constant(5.0), max_lr=2.0)(0) == 2.0


def test_durations_in_epochs_and_fractions() -> None:
    s = lrkit.parse("warmup(1ep) >> constant(lr=1.0, steps=50%) >> linear(lr=1.0, end_lr=0)")
    with pytest.raises(ValueError, match=r"warmup.steps='1ep' is not in steps; call .resolve"):
        s(0)
    r = s.resolve(total_steps=1000, steps_per_epoch=100)
    assert r.offsets == (0.0, 100.0, 600.0)
    assert r.pieces[2].steps == lrkit.steps(400)  # "the rest" of the chain
    assert r(1000) == 0.0 and r(800) == 0.5
    half = s.resolve(steps_per_epoch=100)  # the fraction stays unknown: an error, never a wrong value
    with pytest.raises(ValueError, match=r"constant\.steps='50%' is not in steps"):
        half(0)
    assert MultiStep(lr=0.1, milestones=[epochs(30), epochs(60)]).resolve(steps_per_epoch=10).milestones == (
        lrkit.steps(300),
        lrkit.steps(600),
    )
    assert Cosine(lr=1.0, steps=fraction(0.25)).resolve(total_steps=400).steps == lrkit.steps(100)
    with pytest.raises(ValueError, match="cosine: cannot evaluate yet"):
        Cosine(lr=1.0)(5)
    with pytest.raises(ValueError, match="leaving nothing of total_steps=100"):
        (Warmup(200) >> Cosine(lr=1.0)).resolve(total_steps=100)
    with pytest.raises(ValueError, match=r"resolve: total_steps must be > 0 and <= 2\*\*53, got -1"):
        Cosine(lr=1.0).resolve(total_steps=-1)


def test_evaluation_types() -> None:
    s = (Warmup(10) >> Cosine(lr=0.1)).resolve(total_steps=100)
    assert type(s(5)) is float and type(s(np.int64(5))) is float and type(s(5.5)) is float
    out = s(np.arange(4))
    assert isinstance(out, np.ndarray) and out.dtype == np.float64
    assert s(np.arange(6).reshape(2, 3)).shape == (2, 3)
    with pytest.raises(TypeError, match="step: expected an int, a float or an array"):
        s("5")  # type: ignore[call-overload]


def test_torch_tensor_keeps_device_and_dtype() -> None:
    torch = pytest.importorskip("torch")
    s = (Warmup(10) >> Cosine(lr=0.1)).resolve(total_steps=100)
    for dtype in (torch.float32, torch.float64):
        t = torch.arange(100, dtype=dtype)
        out = s(t)
        assert out.dtype == dtype and out.device == t.device
        # float32 time carries ~1e-7 relative error into (1 - t/n), hence the float32 tolerance
        tol = {"rtol": 1e-5, "atol": 1e-7} if dtype == torch.float32 else {"rtol": 1e-15}
        np.testing.assert_allclose(out.numpy(), s(np.arange(100)), **tol)
    assert s(torch.tensor(5)).dtype == torch.float32  # integer steps give the default float


def test_jax_under_jit() -> None:
    jax = pytest.importorskip("jax")
    jnp = jax.numpy
    s = (Warmup(10) >> OneCycle(max_lr=0.1)).resolve(total_steps=200)
    f = jax.jit(lambda t: s(t))
    np.testing.assert_allclose(
        np.asarray(f(jnp.arange(200))), s(np.arange(200)), rtol=1e-5, atol=1e-7
    )  # float32
    assert float(f(jnp.asarray(199.0))) == pytest.approx(s(199), rel=1e-6)


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda: Cosine(lr=-0.1), "cosine: lr must be >= 0, got -0.1"),
        (lambda: Cosine(lr=float("nan")), "cosine: lr must be finite, got nan"),
        (lambda: Cosine(lr=True), "cosine: lr must be a number, got bool True"),
        (lambda: StepDecay(lr=0.1, step_size=10, gamma=0.0), "step: gamma must be > 0, got 0.0"),
        (lambda: StepDecay(lr=0.1, step_size=0), "step: step_size must be > 0, got 0"),
        (lambda: Exponential(lr=0.1, gamma=0.5, every="0ep"), "exponential: every must be > 0, got '0ep'"),
        (lambda: InverseSqrt(lr=0.1, timescale=0), "inverse_sqrt: timescale must be > 0, got 0"),
        (lambda: Cyclic(lr=0.1, max_lr=0.2, step_size_down=0), "cyclic: step_size_down must be > 0, got 0"),
        (lambda: CosineRestarts(lr=1.0, period=0), "cosine_restarts: period must be > 0, got 0"),
        (lambda: MultiStep(lr=0.1, milestones=[10, 10]), "milestones must be strictly increasing"),
        (lambda: Cyclic(lr=0.1, max_lr=0.2, mode="square"), "cyclic: mode must be one of"),
        (lambda: Cyclic(lr=0.2, max_lr=0.1), "cyclic: max_lr must be >= 0.2, got 0.1"),
        (lambda: OneCycle(max_lr=0.1, steps=3, pct_start=0.3), "leaves a phase with no steps"),
        (lambda: Warmup(steps=-1), "warmup: steps: expected a number of steps >= 0, got -1"),
        (lambda: Warmup(steps=10, mode="exponential", start=0.0), "warmup: start must be > 0"),
        (lambda: WSD(lr=1.0, steps=100, warmup=60, decay=50), r"warmup \(60\) \+ decay \(50\) must fit"),
        (lambda: Linear(lr=1.0, steps="abc"), "linear: steps: expected a duration like 500"),
        (lambda: Repeat(Cosine(lr=1.0)), r"repeat: schedule \(cosine\) needs a length"),
        (lambda: Constant(1.0) >> Cosine(lr=1.0), r"chain: piece 0 \(constant\) has no length"),
        (lambda: Piecewise(points=[(10, 1.0), (5, 0.0)]), "point steps must be strictly increasing"),
        (
            lambda: CosineRestarts(lr=1.0, period=10, mult=0.5),
            r"cosine_restarts: mult must be >= 1 and <= 1e\+06, got 0.5",
        ),
    ],
)
def test_invalid_values_are_rejected_with_a_clear_message(make, message) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises((ValueError, TypeError), match=message):
        make()


def test_schedules_are_immutable_and_hashable() -> None:
    s = Cosine(lr=0.1)
    with pytest.raises(AttributeError):
        s.lr = 0.2  # type: ignore[misc]
    assert hash(s) == hash(Cosine(lr=0.1))


def test_import_lrkit_needs_numpy_alone() -> None:
    code = (
        "import sys, lrkit; s = lrkit.parse('warmup(10) >> cosine(lr=1, steps=90)'); s(5); "
        "heavy = ('torch', 'jax', 'keras', 'matplotlib', 'array_api_compat', 'yaml'); "
        "bad = [m for m in heavy if m in sys.modules]; "
        "print(','.join(bad))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""


def test_long_arrays_are_evaluated_in_blocks_with_the_same_values() -> None:
    s = (Warmup(1000) >> Cosine(lr=1.0, steps=100_000, min_lr=0.01) >> Constant(0.01)).resolve()
    t = np.arange(-5, 250_000)
    v = s(t)
    rng = np.random.default_rng(0)
    for i in rng.integers(0, t.size, 200):
        assert v[i] == s(int(t[i]))
    shuffled = rng.permutation(t)
    np.testing.assert_array_equal(s(shuffled), s(t)[shuffled - t[0]])


def test_schedule_longer_than_run_warning_is_public_and_names_the_run_as_given() -> None:
    """``lrkit.schedules.ScheduleLongerThanRunWarning`` is the class the adapters warn with (a
    UserWarning, to filter on); inside ``run_named`` (an adapter built on another) the warning names the
    run and the adapter as that one's user gave them, and only there."""
    from lrkit.schedules import ScheduleLongerThanRunWarning, base

    assert ScheduleLongerThanRunWarning is base.ScheduleLongerThanRunWarning
    assert "ScheduleLongerThanRunWarning" in lrkit.schedules.__all__
    assert issubclass(ScheduleLongerThanRunWarning, UserWarning)
    s = Cosine(lr=0.1, steps=10_000)
    with pytest.warns(ScheduleLongerThanRunWarning) as seen:
        with base.run_named("lrkit.transformers", "num_training_steps"):
            base.warn_longer_than_run(s, 450, where="lrkit.torch.scheduler")
        base.warn_longer_than_run(s, 450, where="lrkit.torch.scheduler")
    said = [str(w.message).split(": the run")[0] for w in seen]
    assert said == [
        f"lrkit.transformers: {str(s)!r} lasts 10,000 steps, more than num_training_steps=450",
        f"lrkit.torch.scheduler: {str(s)!r} lasts 10,000 steps, more than total_steps=450",
    ]
    assert seen[0].filename == __file__
