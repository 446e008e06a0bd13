"""A percentage (or a number of epochs) becomes steps in exact arithmetic, from the decimal as written.

``"7%"`` was read as the float 0.07 and multiplied as a float: ``ceil(0.07 * 100) = ceil(7.000000000000001)
= 8``, so ``multistep(milestones=[7%, 14%, 28%, 57%])`` over 100 steps cut at 8, 15, 29 and
``warmup(7%)`` took 8 steps (694 of the 485,199 pairs of a whole percentage 1..99 and a total
100..5,000; 7% of 10,000 was 701). ``"0.07ep"`` of 100 steps was 7.000000000000001 steps, a milestone
there cut a step late. The reference here is :class:`fractions.Fraction` of the text.
"""

from __future__ import annotations

import math
from decimal import Decimal
from fractions import Fraction

import numpy as np
from hypothesis import example, given, settings
from hypothesis import strategies as st

import lrkit
from lrkit.schedules import Chain, Constant, Cosine, MultiStep, Warmup, epochs, fraction
from lrkit.schedules.duration import MAX_STEPS, Duration

SETTINGS = settings(max_examples=300, deadline=None)


def _ref(percent: str, total: float) -> int:
    """``ceil(percent / 100 * total)`` of the percentage as written, exactly."""
    return math.ceil(Fraction(percent) / 100 * Fraction(total))


#: percentages as people write them: whole, or with up to 4 decimals, 0% to 100%
percent_texts = st.builds(
    lambda n, places: str(Decimal(n).scaleb(-places)),
    st.integers(0, 10**6),
    st.integers(0, 4),
).filter(lambda t: Decimal(t) <= 100)
totals = st.integers(1, 10**7) | st.integers(1, MAX_STEPS)


def test_the_reported_percentages_resolve_to_the_steps_they_name() -> None:
    s = lrkit.parse("multistep(lr=0.1, milestones=[7%, 14%, 28%, 57%])").resolve(total_steps=100)
    assert str(s) == "multistep(lr=0.1, milestones=[7, 14, 28, 57])"
    w = lrkit.parse("warmup(7%) >> cosine(lr=0.1)").resolve(total_steps=100)
    assert str(w) == "warmup(steps=7) >> cosine(lr=0.1, steps=93)"
    assert Duration.parse("7%").to_steps(10_000, None) == 700.0


def test_every_whole_percentage_of_every_total_up_to_5000_is_exact() -> None:
    wrong = [
        (p, t)
        for p in range(101)
        for d in [Duration.parse(f"{p}%")]
        for t in range(1, 5001)
        if d.to_steps(t, None) != math.ceil(Fraction(p * t, 100))
    ]
    assert wrong == []


@SETTINGS
@example(percent="7", total=100)
@example(percent="0.07", total=10_000)
@example(percent="57", total=100)
@given(percent=percent_texts, total=totals)
def test_a_percentage_resolves_to_the_exact_ceil(percent: str, total: int) -> None:
    d = Duration.parse(f"{percent}%")
    assert d.to_steps(total, None) == _ref(percent, total)
    if Fraction(percent) > 0:
        c = Cosine(lr=1.0, steps=f"{percent}%").resolve(total_steps=total)
        assert c.length_steps == _ref(percent, total)
        m = MultiStep(lr=1.0, milestones=(f"{percent}%",)).resolve(total_steps=total)
        assert m.milestones == (Duration(_ref(percent, total)),)


@SETTINGS
@example(percent="56", total=12.5)  # 0.56 * 12.5 = 7.000000000000001 took 8 steps
@given(percent=percent_texts, total=st.floats(min_value=1.0, max_value=1e9))
def test_a_percentage_of_a_total_that_is_not_whole_is_exact_too(percent: str, total: float) -> None:
    assert Duration.parse(f"{percent}%").to_steps(total, None) == _ref(percent, total)


@SETTINGS
@example(k=7, total=100)
@given(k=st.integers(0, 10_000), total=totals)
def test_a_fraction_given_as_a_float_is_the_decimal_it_is_written_as(k: int, total: int) -> None:
    """``fraction(0.07)`` (the Python API) is 7%, the same steps as the text ``"7%"``."""
    f = k / 10_000  # the float nearest k/10,000, written as that decimal
    want = math.ceil(Fraction(k, 10_000) * total)
    assert fraction(f).to_steps(total, None) == want
    assert Duration.parse(f"{Decimal(k).scaleb(-2)}%") == fraction(f)
    if k:
        assert Warmup(steps=fraction(f)).resolve(total_steps=total).length_steps == want


@SETTINGS
@example(pcts=[700, 1400, 2800, 5100], total=100)
@given(
    pcts=st.lists(st.integers(1, 10_000), min_size=2, max_size=5).filter(lambda p: sum(p) <= 10_000),
    total=st.integers(1, 10**6),
)
def test_a_chain_of_percentages_ends_each_piece_at_the_exact_ceil_of_their_sum(
    pcts: list[int], total: int
) -> None:
    """Consecutive percentages (in hundredths of a percent here) are summed and multiplied exactly."""
    text = [f"{Decimal(p).scaleb(-2)}%" for p in pcts]
    spec = " >> ".join([f"warmup({text[0]})", *(f"constant(lr=1, steps={t})" for t in text[1:])])
    r = lrkit.parse(spec).resolve(total_steps=total)
    ends = [math.ceil(Fraction(sum(pcts[: i + 1]), 10_000) * total) for i in range(len(pcts))]
    lengths = [p.length_steps for p in r.pieces]
    assert lengths[0] == ends[0]
    if all(Fraction(p, 10_000) * total >= 1 for p in pcts):  # each a step at least: ends as summed
        assert [sum(lengths[: i + 1]) for i in range(len(lengths))] == ends


@SETTINGS
@example(pcts=[7, 14], total=100)
@given(pcts=st.lists(st.integers(1, 25), min_size=1, max_size=4), total=totals)
def test_a_spec_round_trips_through_its_text_to_the_same_steps(pcts: list[int], total: int) -> None:
    """``str()`` of a schedule in percentages (given as floats) reads back as one that resolves the same."""
    s = Warmup(steps=fraction(pcts[0] / 100))
    for p in pcts[1:]:
        s = s >> Constant(lr=0.1, steps=fraction(p / 100))
    again = lrkit.parse(str(s))
    assert again == s
    assert again.resolve(total_steps=total) == s.resolve(total_steps=total)
    r = s.resolve(total_steps=total)
    warm = r.pieces[0] if isinstance(r, Chain) else r
    assert warm.length_steps == math.ceil(Fraction(pcts[0], 100) * total)


@SETTINGS
@example(digits="7.0000000000000000001", total=100)
@given(
    digits=st.decimals(min_value=0, max_value=100, allow_nan=False, allow_infinity=False, places=20).map(str),
    total=totals,
)
def test_a_percentage_longer_than_a_float_resolves_as_the_text_it_prints_as(digits: str, total: int) -> None:
    """Text with more digits than a float holds is read to the nearest float, whose shortest decimal it
    then means: the one it prints as, so printing and reading back never changes the steps."""
    d = Duration.parse(f"{digits}%")
    printed = d.to_data()
    assert isinstance(printed, str) and Duration.parse(printed) == d
    assert d.to_steps(total, None) == _ref(printed[:-1], total)


# -- epochs: exact too, and not rounded -------------------------------------------------------------
@SETTINGS
@example(n=7, spe=100)
@given(n=st.integers(0, 10**6), spe=st.integers(1, 10**6))
def test_epochs_in_hundredths_are_exact_steps(n: int, spe: int) -> None:
    e = str(Decimal(n).scaleb(-2))
    assert Duration.parse(f"{e}ep").to_steps(None, spe) == float(Fraction(e) * spe)
    assert epochs(n / 100).to_steps(None, spe) == float(Fraction(n, 100) * spe)


def test_a_milestone_in_epochs_cuts_at_the_step_it_names() -> None:
    s = lrkit.parse("multistep(lr=0.1, milestones=[0.07ep])").resolve(steps_per_epoch=100)
    assert str(s) == "multistep(lr=0.1, milestones=[7])"
    np.testing.assert_allclose(s(np.arange(5, 10)), [0.1, 0.1, 0.01, 0.01, 0.01])
    assert lrkit.parse("cosine(lr=1, steps=2.5ep)").resolve(steps_per_epoch=3.3).length_steps == 8.25
