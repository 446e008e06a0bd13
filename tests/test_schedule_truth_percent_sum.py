"""A chain's lengths given as percentages of the run that add to 100% fill the run exactly.

Rounded up one by one, ``warmup(5%) >> constant(steps=75%) >> linear(steps=20%)`` over 3,910 steps took
196 + 2,933 + 782 = 3,911 steps (warned as longer than the run, the last piece cut one step short). The
pieces of a run of fractions are rounded together: piece ``i`` ends at ``ceil(c_i * total)``, ``c_i`` the
sum of the fractions up to it; the first still takes ``ceil(f_1 * total)`` (transformers' warmup).
"""

from __future__ import annotations

import itertools
import math
import warnings
from fractions import Fraction

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

import lrkit
from lrkit.schedules.duration import Duration

torch = pytest.importorskip("torch")

SETTINGS = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _ceil(c: Fraction, total: int) -> int:
    """``ceil(c * total)`` as lrkit rounds one fraction: exactly (7% of 100 is 7, not ceil(0.07 * 100))."""
    return math.ceil(c * total)


@st.composite
def _percents(draw: st.DrawFn) -> list[Fraction]:
    """2 to 6 percentages (whole, or in halves and quarters) adding to exactly 100%."""
    n = draw(st.integers(2, 6))
    quarters = 400  # 100% in quarter percents
    cuts = sorted(draw(st.lists(st.integers(1, quarters - 1), min_size=n - 1, max_size=n - 1, unique=True)))
    bounds = [0, *cuts, quarters]
    return [Fraction(b - a, 4) for a, b in itertools.pairwise(bounds)]


def _spec(pcts: list[Fraction]) -> str:
    def text(p: Fraction) -> str:
        return f"{float(p):g}%"

    pieces = [f"warmup({text(pcts[0])})"]
    for i, p in enumerate(pcts[1:-1]):
        pieces.append(f"constant(lr={0.1 / (i + 1):g}, steps={text(p)})")
    pieces.append(f"linear(lr=0.05, end_lr=0, steps={text(pcts[-1])})")
    return " >> ".join(pieces)


def _scheduler(spec: str, total: int) -> lrkit.torch.Scheduler:
    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=0.1)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        return lrkit.torch.scheduler(opt, spec, total_steps=total)


def test_the_reported_chain_fills_its_3910_steps() -> None:
    spec = "warmup(5%) >> constant(0.1, steps=75%) >> linear(lr=0.1, end_lr=0, steps=20%)"
    _scheduler(spec, 3910)  # warned ScheduleLongerThanRunWarning (3,911 steps) before
    r = lrkit.parse(spec).resolve(total_steps=3910)
    assert [p.length_steps for p in r.pieces] == [196.0, 2932.0, 782.0]
    assert r.offsets == (0.0, 196.0, 3128.0)
    assert r.length == Duration(3910)


@SETTINGS
@given(pcts=_percents(), total=st.integers(1, 10**6))
@example(pcts=[Fraction(7), Fraction(14), Fraction(28), Fraction(51)], total=100)  # the first took 8 steps
def test_percentages_adding_to_100_fill_the_run(pcts: list[Fraction], total: int) -> None:
    spec = _spec(pcts)
    r = lrkit.parse(spec).resolve(total_steps=total)
    lengths = [p.length_steps for p in r.pieces]
    assert lengths[0] == _ceil(pcts[0] / 100, total)  # as transformers' warmup ratio, exactly
    assert lengths[0] == Duration.parse(f"{float(pcts[0]):g}%").to_steps(total, None)
    # every piece sees a step at least; when each percentage is a step of the run at least, the pieces
    # start where the cumulative fractions say and fill the run exactly
    assert all(n is not None and n >= 1 for n in lengths)
    if all(p / 100 * total >= 1 for p in pcts):
        c = [sum(pcts[:i], Fraction(0)) / 100 for i in range(len(pcts))]
        assert r.offsets == tuple(float(_ceil(ci, total)) for ci in c)
        assert r.length == Duration(total)
        _scheduler(spec, total)  # no ScheduleLongerThanRunWarning
    else:  # never longer than when each was rounded up alone
        alone = sum(_ceil(p / 100, total) for p in pcts)
        assert r.length is not None and r.length.value <= alone


@SETTINGS
@given(p=st.integers(1, 99), total=st.integers(1, 10**6))
@example(p=7, total=100)  # ceil(0.07 * 100) took 8 steps
def test_warmup_then_the_rest_as_a_percentage(p: int, total: int) -> None:
    """``warmup(p%) >> cosine(steps=(100-p)%)`` warned for ~4,400-4,900 of the totals 100..5000."""
    spec = f"warmup({p}%) >> cosine(lr=1, steps={100 - p}%)"
    r = lrkit.parse(spec).resolve(total_steps=total)
    w = _ceil(Fraction(p, 100), total)
    assert r.offsets == (0.0, float(w))
    if w < total:
        assert r.length == Duration(total)
        _scheduler(spec, total)


@SETTINGS
@given(p=st.integers(1, 100), total=st.integers(1, 10**6))
@example(p=7, total=10_000)  # took 701 steps
def test_a_single_fraction_still_rounds_up_alone(p: int, total: int) -> None:
    want = float(_ceil(Fraction(p, 100), total))
    assert lrkit.parse(f"cosine(lr=1, steps={p}%)").resolve(total_steps=total).length == Duration(want)
    s = lrkit.parse(f"warmup({p}%) >> constant(lr=1, steps=1000) >> linear(lr=1, end_lr=0, steps={p}%)")
    # a length in steps ends the run of fractions: the fraction after it rounds up alone again
    assert [q.length_steps for q in s.resolve(total_steps=total).pieces] == [want, 1000.0, want]


def test_fractions_around_an_overlapping_warmup_and_a_rest_piece() -> None:
    s = lrkit.parse(
        "warmup(5%, overlap=true) >> constant(lr=1, steps=75%) >> linear(lr=1, end_lr=0, steps=25%)"
    )
    r = s.resolve(total_steps=3910)
    # the overlapping warmup takes no steps of its own and leaves the 75% + 25% to fill the run
    assert [p.length_steps for p in r.pieces] == [196.0, 2933.0, 977.0]
    assert r.length == Duration(3910)
    t = lrkit.parse("warmup(5%) >> cosine(lr=1) >> constant(lr=0.1, steps=20%)").resolve(total_steps=3910)
    assert [p.length_steps for p in t.pieces] == [196.0, 2932.0, 782.0]
