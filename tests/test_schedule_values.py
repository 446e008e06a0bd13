"""Values a schedule gives for any parameters it accepts and any step (issue 9, "Specs and values").

A schedule never returns NaN, inf or a negative learning rate at a finite step: parameters that would
are refused at construction with a message naming the argument. NaN/inf steps are refused. Fractions of
the run resolve to whole steps as transformers does. numpy scalars are stored as Python numbers.
"""

from __future__ import annotations

import math
from decimal import Decimal
from fractions import Fraction

import numpy as np
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

import lrkit
from lrkit import recipes
from lrkit.schedules import (
    Chain,
    Constant,
    Cosine,
    CosineRestarts,
    Cyclic,
    Exponential,
    InverseTime,
    MultiStep,
    OneCycle,
    Piecewise,
    Repeat,
    Schedule,
    StepDecay,
    Warmup,
    fraction,
)
from lrkit.schedules.duration import MAX_STEPS

from . import strategies as S

SETTINGS = settings(
    max_examples=int(__import__("os").environ.get("LRKIT_EXAMPLES", 200)),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)

#: steps from the whole finite range: negative, 0, small, around 2**53, and far beyond it
finite_steps = st.one_of(
    st.integers(-(10**6), 10**6),
    st.integers(0, 2**64),
    st.floats(min_value=-1e308, max_value=1e308, allow_nan=False),
    st.sampled_from([2**53 - 1, 2**53, 2**53 + 1, 10**30, 1e300]),
)


def resolved(s: Schedule, total: int, spe: int) -> Schedule | None:
    try:
        return s.resolve(total_steps=total, steps_per_epoch=spe)
    except ValueError:
        return None  # a resolution it refuses with a message (a piece left with no steps, ...)


@SETTINGS
@given(S.wild_schedules(), st.integers(1, 10**6), st.integers(1, 10**4), st.lists(finite_steps, max_size=8))
def test_any_accepted_schedule_gives_a_finite_non_negative_lr_at_any_finite_step(
    s: Schedule, total: int, spe: int, ts: list[float]
) -> None:
    r = resolved(s, total, spe)
    if r is None or r.unresolved:
        return
    with np.errstate(invalid="raise"):  # an overflow or 0*inf inside a formula fails here too
        for t in [0, 1, total, 2**53, *ts]:
            v = r(t)
            assert math.isfinite(v) and v >= 0, (str(r), t, v)
        arr = r(np.array([float(min(max(t, -1e300), 1e300)) for t in [0, 1, total, *ts]]))
    assert np.all(np.isfinite(arr)) and np.all(arr >= 0)


@SETTINGS
@given(S.wild_schedules(), st.integers(1, 10**5))
def test_steps_beyond_2_53_are_evaluated_at_2_53(s: Schedule, total: int) -> None:
    r = resolved(s, total, 10)
    if r is None or r.unresolved:
        return
    at_max = r(MAX_STEPS)
    for t in (MAX_STEPS + 1, 10**30, 10**400, np.uint64(2**64 - 1)):
        assert r(t) == at_max
    assert r(-(10**400)) == r(-MAX_STEPS)


@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf, np.float32("nan"), np.float64("inf")])
@pytest.mark.parametrize(
    "s", [Constant(0.1), Cosine(lr=0.1, steps=10), Warmup(10) >> Cosine(lr=0.1, steps=10), Constant(0.1) * 2]
)
def test_nan_and_inf_steps_are_refused_with_a_clear_error(s: Schedule, bad: float) -> None:
    with pytest.raises(ValueError, match=r"step must be a finite number, got"):
        s(bad)
    with pytest.raises(ValueError, match=r"steps must be finite numbers, got .* in an array of 3"):
        s(np.array([0.0, 1.0, bad]))


# The parameters the issue found accepted but giving NaN, inf or a negative LR: each is now refused with
# the argument and its safe range named, or gives finite values.
REFUSED = [
    (lambda: Cyclic(lr=0.1, max_lr=1.0, step_size_up=1e-300), r"cyclic: step_size_up must be at least 1e-06"),
    (
        lambda: Cyclic(lr=0.1, max_lr=1.0, step_size_up=1e308),
        r"cyclic: step_size_up: expected at most 2\*\*53",
    ),
    (lambda: CosineRestarts(lr=0.1, period=5e-324), r"cosine_restarts: period must be at least 1e-06 steps"),
    (
        lambda: CosineRestarts(lr=0.1, period=10, mult=1e308),
        r"cosine_restarts: mult must be >= 1 and <= 1e\+06",
    ),
    (lambda: OneCycle(max_lr=0.1, steps=100, div_factor=5e-324), r"one_cycle: the initial lr .* overflows"),
    (
        lambda: OneCycle(max_lr=1.0, steps=100, final_div_factor=5e-324),
        r"one_cycle: the final lr .* overflows",
    ),
    (lambda: Exponential(lr=0.1, gamma=2), r"exponential: gamma=2 > 1 grows without bound; give steps="),
    (lambda: StepDecay(lr=0.1, step_size=10, gamma=1.5), r"step: gamma=1.5 > 1 grows without bound"),
    (lambda: Exponential(lr=0.1, gamma=2, steps=2000), r"exponential: lr \* gamma\*\*2000 overflows"),
    (lambda: MultiStep(lr=1e300, gamma=1e5, milestones=[1, 2]), r"multistep: lr \* gamma\*\*2 .* overflows"),
    (
        lambda: Cosine(lr=1e300, steps=10) * 1e10,
        r"scale: factor=10000000000.0 times the peak 1e\+300 overflows",
    ),
    (lambda: Constant(1e200) * Constant(1e200), r"product: the product of the peaks .* overflows"),
    (
        lambda: Repeat(Cosine(lr=0.1, steps=10), times=10**400),
        r"repeat: times must be an integer >= 1 and <= 2\*\*53 or None",
    ),
    (
        lambda: Repeat(Cosine(lr=0.1, steps=2**52), times=4),
        r"repeat: times=4 repeats .* exceed 2\*\*53 steps",
    ),
    (lambda: Repeat(Piecewise(points=[(0, 0.1)])), r"repeat: schedule \(piecewise\) has zero length"),
    (
        lambda: Cosine(lr=10**400),
        r"cosine: lr must be a finite number \(within 1.8e308\), got an integer of 401",
    ),
    (
        lambda: Cosine(lr=0.1, steps=10**400),
        r"cosine: steps: expected a finite number, got an integer of 401",
    ),
    (lambda: Cosine(lr=0.1, steps=2**53 + 2), r"cosine: steps: expected at most 2\*\*53"),
    (lambda: InverseTime(lr=0.1, k=0.0, every=1e-300), r"inverse_time: every must be at least 1e-06 steps"),
    (lambda: Exponential(lr=0.1, staircase="no"), r"exponential: staircase must be true or false, got 'no'"),
    (lambda: OneCycle(max_lr=0.1, three_phase=1), r"one_cycle: three_phase must be true or false, got 1"),
]


@pytest.mark.parametrize(("make", "message"), REFUSED)
def test_parameters_that_would_give_nan_inf_or_negative_are_refused_by_name(make, message) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises((ValueError, TypeError), match=message):
        make()


@pytest.mark.parametrize(
    "s",
    [
        Cyclic(lr=0.1, max_lr=1.0, step_size_up=1e-6),  # the shortest step size: x clipped to [0, 1]
        Cyclic(lr=0.1, max_lr=1.0, step_size_up=2**53, step_size_down=1e-6, mode="sine"),
        CosineRestarts(lr=0.1, period=1e-6, mult=1e6),
        CosineRestarts(lr=0.1, period=3, mult=1.0 + 2**-52),
        Exponential(lr=1e-300, gamma=1e300, steps=1),  # grows to exactly 1.0 and holds it
        Piecewise(points=[(0, 0.1), (10, 0.7), (20, 0.0), (30, 0.2), (30 + 2**-48, 0.0)]),
        Piecewise(points=[(0, 0.0), (1e-300, 1e300), (2e-300, 0.0)]),  # steep but finite
    ],
    ids=str,
)
def test_extreme_but_accepted_parameters_stay_finite_and_non_negative(s: Schedule) -> None:
    ts = np.concatenate([np.arange(0, 100, 0.25), [2**40, 2**53 - 1, 2**53, 1e18, 1e300]])
    with np.errstate(invalid="raise"):
        v = s(ts)
    assert np.all(np.isfinite(v)) and np.all(v >= 0)
    assert [s(float(t)) for t in ts] == list(v)


def test_piecewise_never_dips_below_zero_between_points() -> None:
    """The old formula summed slopes: 0.1 + 0.6 - 0.7 gave -2.8e-17 at a point whose lr is 0."""
    rng = np.random.default_rng(0)
    for _ in range(200):
        ys = list(rng.choice([0.0, 0.1, 0.2, 0.3, 0.6, 0.7, 1 / 3], size=rng.integers(2, 7)))
        s = Piecewise(points=list(zip(range(0, 10 * len(ys), 10), ys)))
        v = s(np.arange(0, 10 * len(ys) + 1, 0.5))
        assert np.all(v >= 0)
        assert [s(x) for x in range(0, 10 * len(ys), 10)] == ys  # exact at every point


# -- numpy scalars ---------------------------------------------------------------------------------
NUMPY_FLOATS = [np.float16, np.float32, np.float64, np.longdouble]
NUMPY_INTS = [np.int8, np.int16, np.int32, np.int64, np.uint8, np.uint64]


@given(
    st.sampled_from(NUMPY_FLOATS), st.floats(1e-4, 100.0), st.sampled_from(NUMPY_INTS), st.integers(1, 100)
)
@settings(max_examples=60, deadline=None)
def test_numpy_scalars_are_stored_as_python_numbers(ftype: type, x: float, itype: type, n: int) -> None:
    made = [
        Constant(lr=ftype(x)),
        Cosine(lr=ftype(x), steps=itype(n), min_lr=ftype(0)),
        Cosine(lr=0.1) * ftype(x),
        Repeat(Cosine(lr=0.1, steps=itype(n)), times=itype(n)),
        MultiStep(lr=0.1, milestones=[itype(n), itype(n) + 1]),
        Exponential(lr=0.1, staircase=np.bool_(True)),
        Piecewise(points=[(itype(0), ftype(x)), (itype(n), ftype(0))]),
    ]
    for s in made:
        for v in _leaves_values(s):
            assert type(v) in (int, float, bool, str, type(None)), (s, v, type(v))
        for fmt in ("json", "yaml", "toml", "string"):
            assert lrkit.loads(lrkit.dumps(s, fmt), fmt) == s
    assert Constant(lr=ftype(x)).lr == float(ftype(x))  # the value itself, not a rounded decimal


def _leaves_values(x: object) -> list[object]:
    """Every number, flag and string a schedule holds, durations' values included."""
    if isinstance(x, Schedule):
        return [v for f in vars(x).values() for v in _leaves_values(f)]
    if isinstance(x, tuple):
        return [v for item in x for v in _leaves_values(item)]
    if isinstance(x, lrkit.Duration):
        return [x.value]
    return [x]


# -- fractions of the run: whole steps, as transformers (in exact arithmetic) ------------------------
def _exact_ceil(f: float, total: int) -> int:
    """``ceil(f * total)`` with ``f`` the decimal it is written as (``repr``): 0.07 is 7/100."""
    return math.ceil(Fraction(repr(f)) * total)


@given(S.fractions_wide, st.integers(1, 10**7))
@example(0.07, 100)  # 0.07 * 100 = 7.000000000000001 took 8 steps
@settings(max_examples=300, deadline=None)
def test_a_fraction_resolves_to_ceil_of_fraction_times_total(f: float, total: int) -> None:
    transformers = pytest.importorskip("transformers")
    args = transformers.TrainingArguments(output_dir="unused", warmup_steps=f, report_to=[])
    assert fraction(f).to_steps(total, None) == _exact_ceil(f, total)
    if f > 0:
        d = Cosine(lr=1.0, steps=fraction(f)).resolve(total_steps=total).steps
        assert isinstance(d, lrkit.Duration) and d.value == _exact_ceil(f, total)
    # transformers reads warmup_steps < 1 as a ratio of the run and multiplies in floats: it agrees
    # unless the float product lands past a whole number (0.07 * 100 = 7.000000000000001: 8 steps)
    if 0 < f < 1 and math.ceil(f * total) == _exact_ceil(f, total):
        assert d.value == args.get_warmup_steps(total)


@pytest.mark.parametrize(("f", "total", "lrkit_steps", "transformers_steps"), [(0.07, 100, 7, 8)])
def test_a_fraction_is_exact_where_transformers_float_product_is_a_step_over(
    f: float, total: int, lrkit_steps: int, transformers_steps: int
) -> None:
    transformers = pytest.importorskip("transformers")
    args = transformers.TrainingArguments(output_dir="unused", warmup_steps=f, report_to=[])
    assert args.get_warmup_steps(total) == transformers_steps
    assert fraction(f).to_steps(total, None) == lrkit_steps == _exact_ceil(f, total)


@pytest.mark.parametrize("total", [*range(2, 41), 57, 99, 100, 101, 137, 250, 999])
def test_bert_recipe_equals_transformers_linear_schedule_with_warmup(total: int) -> None:
    torch = pytest.importorskip("torch")
    transformers = pytest.importorskip("transformers")
    warmup = transformers.TrainingArguments(output_dir="unused", warmup_steps=0.1, report_to=[])
    p = torch.nn.Parameter(torch.zeros(1))
    opt = torch.optim.SGD([p], lr=5e-5)
    sched = transformers.get_linear_schedule_with_warmup(opt, warmup.get_warmup_steps(total), total)
    ref = []
    for _ in range(total + 1):
        ref.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    mine = recipes.bert_finetune().resolve(total_steps=total)
    np.testing.assert_allclose(mine(np.arange(total + 1)), ref, rtol=1e-12, atol=5e-5 * 1e-12)


def test_bert_recipe_over_one_step_says_what_is_missing() -> None:
    """10% of 1 step is 1 step of warmup, which leaves nothing to decay: an error, not a wrong value."""
    with pytest.raises(ValueError, match=r"leaving nothing of total_steps=1 for the last piece"):
        recipes.bert_finetune().resolve(total_steps=1)


def test_rest_after_a_rounded_fraction_fills_the_run() -> None:
    s = lrkit.parse("warmup(10%) >> linear(lr=1.0)").resolve(total_steps=37)
    assert isinstance(s, Chain)
    assert [p.length_steps for p in s.pieces] == [4.0, 33.0]


# -- recipe numbers print as people write them ------------------------------------------------------
def _artefacts(text: str) -> list[str]:
    """Numbers with a float-rounding tail: a decimal of at most 12 digits lies within 4 ulps."""
    import re

    out = []
    for m in re.findall(r"\d+\.\d+(?:e-?\d+)?|\d+e-?\d+", text):
        x = float(m)
        for p in range(1, 13):
            y = float(f"{x:.{p}g}")
            if abs(y - x) <= 4 * math.ulp(x):
                if y != x:
                    out.append(m)
                break
    return out


@given(
    st.sampled_from([1e-4, 2e-4, 2.5e-4, 3e-4, 6e-4, 7e-4, 1e-3, 3e-3, 1.5e-4]),
    st.sampled_from([0.0, 0.01, 0.05, 0.07, 0.1, 0.3, 0.5, 1.0]),
    st.integers(1, 2**16),
)
@settings(max_examples=100, deadline=None)
def test_recipe_numbers_print_as_written(lr: float, final: float, batch: int) -> None:
    gpt = recipes.gpt_cosine(lr=lr, final_fraction=final)
    assert not _artefacts(str(gpt)), str(gpt)
    assert gpt.pieces[1].min_lr == float(Decimal(repr(lr)) * Decimal(repr(final)))  # type: ignore[attr-defined]
    resnet = recipes.resnet_imagenet(batch=batch)
    assert not _artefacts(str(resnet).split("warmup")[0]), str(
        resnet
    )  # 256/batch may be 1/3: that is no tail
    for r in recipes.RECIPES.values():
        assert not _artefacts(str(r.build())), (r.name, str(r.build()))


# A period or a step size has no sensible default (torch's StepLR and CosineAnnealingWarmRestarts require
# theirs too): a default of 1 step used to make ``step(lr=0.1)`` divide the LR by 10 at every step and
# ``cosine_restarts(lr=0.1)`` a constant. Both are now required, in every form a schedule is written.
@pytest.mark.parametrize(
    ("spec", "name"), [("step(lr=0.1)", "step_size"), ("cosine_restarts(lr=0.1)", "period")]
)
def test_a_period_or_step_size_must_be_given(spec: str, name: str) -> None:
    kind = spec.split("(")[0]
    with pytest.raises(ValueError, match=rf"{kind}: missing required parameter '{name}'"):
        lrkit.parse(spec)
    with pytest.raises(ValueError, match=rf"{kind}: missing required parameter '{name}'"):
        lrkit.Schedule.from_dict({"type": kind, "lr": 0.1})
    cls = lrkit.schedules.REGISTRY[kind]
    with pytest.raises(TypeError, match=name):
        cls(lr=0.1)
    given = lrkit.parse(spec[:-1] + f", {name}=10)")
    # step: x0.1 at step 10; restarts: back to the peak at step 10, after a cosine down to ~0 at step 9
    expected = {"step": (0.1, 0.1 * 0.1), "cosine_restarts": (0.05 * (1 + math.cos(math.pi * 0.9)), 0.1)}[
        kind
    ]
    assert (given(9), given(10)) == pytest.approx(expected, rel=1e-12)
    assert lrkit.parse(lrkit.dumps(given)) == given
