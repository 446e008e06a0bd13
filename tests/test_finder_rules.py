"""Suggestion rules: hand values, fastai's and torch-lr-finder's formulas, and invariances."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from lrkit.finder import RULES, lr_ramp, lrkit_rule, minimum, steepest, valley


def fastai_valley(lrs: list[float], losses: list[float]) -> float:
    """fastai 2.7 ``valley`` (fastai/callback/schedule.py), transcribed, with lr_find's slicing."""
    n = len(losses)
    if n > 20:
        lrs, losses = lrs[n // 10 : -5], losses[n // 10 : -5]
        n = len(losses)
    max_start, max_end = 0, 0
    lds = [1] * n
    for i in range(1, n):
        for j in range(0, i):
            if (losses[i] < losses[j]) and (lds[i] < lds[j] + 1):
                lds[i] = lds[j] + 1
            if lds[max_end] < lds[i]:
                max_end = i
                max_start = max_end - lds[max_end]
    sections = (max_end - max_start) / 3
    idx = max_start + int(sections) + int(sections / 2)
    return lrs[max(idx, 0)]  # lrkit clamps; fastai would wrap around to lrs[-1] for idx = -1


def curves(min_size: int = 3, max_size: int = 60) -> st.SearchStrategy[tuple[np.ndarray, np.ndarray]]:
    return st.integers(min_size, max_size).flatmap(
        lambda n: st.tuples(
            st.just(lr_ramp(1e-6, 1.0, n)),
            st.lists(st.floats(0.0, 10.0), min_size=n, max_size=n).map(np.asarray),
        )
    )


def test_minimum_hand_values() -> None:
    lrs = [1e-3, 1e-2, 1e-1, 1.0]
    assert minimum(lrs, [2.0, 1.0, 0.5, 9.0]) == pytest.approx(1e-2)
    assert minimum(lrs, [2.0, 1.0, 0.5, 9.0], divisor=1.0) == pytest.approx(0.1)
    with pytest.raises(ValueError, match="divisor"):
        minimum(lrs, [2.0, 1.0, 0.5, 9.0], divisor=0.0)


def test_steepest_uses_log_lr_axis_and_stops_at_minimum() -> None:
    # Linear LR spacing: on the log axis the steepest drop is at 0.2 (ln-gap small), not at 0.4.
    lrs = [0.1, 0.2, 0.4, 0.8]
    losses = [3.0, 2.0, 1.0, 0.5]
    grad = np.gradient(np.asarray(losses), np.log(lrs))
    assert steepest(lrs, losses) == lrs[int(np.argmin(grad))]
    # A steeper fall after a rise past the minimum is ignored.
    lrs2 = [1e-4, 1e-3, 1e-2, 1e-1, 1.0, 10.0]
    assert steepest(lrs2, [5.0, 4.0, 1.0, 8.0, 0.5, 20.0]) == 1.0  # minimum at 1.0: all points count
    assert steepest(lrs2, [5.0, 4.0, 1.0, 8.0, 3.0, 20.0]) in (1e-3, 1e-2)


@settings(max_examples=60, deadline=None)
@given(curves())
def test_steepest_matches_torch_lr_finder_on_an_exp_ramp(curve: tuple[np.ndarray, np.ndarray]) -> None:
    """On a geometric ramp the log-LR axis is uniform, so d/dlog(lr) is torch-lr-finder's
    ``np.gradient(losses)`` up to a constant; restricted to the points up to the minimum."""
    lrs, losses = curve
    end = int(np.argmin(losses)) + 1
    assume(end >= 2)
    g = np.gradient(losses[:end])
    best = np.flatnonzero(np.isclose(g, g.min(), rtol=1e-9, atol=1e-12))
    assume(best.size == 1)  # ties may break differently under the constant factor
    assert steepest(lrs, losses) == lrs[int(best[0])]


@settings(max_examples=60, deadline=None)
@given(curves(3, 45))
def test_valley_matches_fastai(curve: tuple[np.ndarray, np.ndarray]) -> None:
    lrs, losses = curve
    assert valley(lrs, losses) == fastai_valley(lrs.tolist(), losses.tolist())


def test_valley_hand_value() -> None:
    # Longest descent: points 0..5 (length 6), fastai's start = 5 - 6 = -1, s = 6/3 = 2,
    # idx = -1 + 2 + 1 = 2.
    lrs = [1e-4, 1e-3, 1e-2, 1e-1, 1.0, 2.0, 10.0]
    assert valley(lrs, [5.0, 4.0, 3.0, 2.0, 1.0, 0.5, 9.0]) == 1e-2
    # Length 2 at the start: idx = -1 + 0 + 0, clamped to 0 (fastai would return lrs[-1]).
    assert valley([1e-3, 1e-2, 1e-1], [2.0, 1.0, 3.0]) == 1e-3


@pytest.mark.parametrize("name", sorted(RULES))
def test_rules_cut_at_the_first_non_finite_loss(name: str) -> None:
    lrs = lr_ramp(1e-5, 1.0, 30)
    losses = np.linspace(3.0, 1.0, 30)
    losses[20:] = np.nan
    losses[25] = 0.0  # after the NaN: must be ignored
    assert RULES[name](lrs, losses) == RULES[name](lrs[:20], losses[:20])


@pytest.mark.parametrize("name", sorted(RULES))
@settings(max_examples=25, deadline=None)
@given(curve=curves(5, 60), scale=st.floats(0.01, 100.0), shift=st.floats(-5.0, 5.0))
def test_rules_ignore_affine_changes_of_the_loss(
    name: str, curve: tuple[np.ndarray, np.ndarray], scale: float, shift: float
) -> None:
    lrs, losses = curve
    # Quantise so that the affine map cannot reorder (nearly) equal values by rounding.
    losses = np.round(losses, 1)
    end = int(np.argmin(losses)) + 1
    if end >= 2:  # steepest: gradient ties may break either way after rounding
        g = np.sort(np.gradient(losses[:end]))
        assume(g.size < 2 or g[1] - g[0] > 1e-6)
    a = RULES[name](lrs, losses)
    b = RULES[name](lrs, losses * scale + shift)
    assert a == pytest.approx(b, rel=1e-9)


@pytest.mark.parametrize("name", sorted(RULES))
@settings(max_examples=25, deadline=None)
@given(curve=curves(5, 60), factor=st.floats(1e-3, 1e3))
def test_rules_scale_with_the_lr_axis(name: str, curve: tuple[np.ndarray, np.ndarray], factor: float) -> None:
    lrs, losses = curve
    losses = np.round(losses, 1)
    end = int(np.argmin(losses)) + 1
    if name == "steepest" and end >= 2:  # two slopes equal up to rounding may swap when ln(lr) shifts
        g = np.sort(np.gradient(losses[:end], np.log(lrs[:end])))
        assume(g.size < 2 or g[1] - g[0] > 1e-9 * max(1.0, abs(g[0])))
    assert RULES[name](lrs * factor, losses) == pytest.approx(factor * RULES[name](lrs, losses), rel=1e-9)


@pytest.mark.parametrize("name", sorted(RULES))
@settings(max_examples=25, deadline=None)
@given(curve=curves(3, 60))
def test_rules_return_an_lr_within_the_tested_range(name: str, curve: tuple[np.ndarray, np.ndarray]) -> None:
    lrs, losses = curve
    value = RULES[name](lrs, losses)
    low = {"minimum": lrs[0] / 10, "lrkit": lrs[0] / 10}.get(name, lrs[0])
    assert math.isfinite(value) and low * (1 - 1e-12) <= value <= lrs[-1] * (1 + 1e-12)


@pytest.mark.parametrize(
    ("lrs", "losses", "words"),
    [
        ([1e-3, 1e-2], [1.0], "same length"),
        ([1e-3, 1e-3], [1.0, 2.0], "increasing"),
        ([0.0, 1e-3], [1.0, 2.0], "lrs"),
        ([1e-3, 1e-2], [math.nan, 1.0], "2 finite"),
    ],
)
@pytest.mark.parametrize("name", sorted(RULES))
def test_rules_validate_input(name: str, lrs: list[float], losses: list[float], words: str) -> None:
    with pytest.raises(ValueError, match=words):
        RULES[name](np.asarray(lrs), np.asarray(losses))


# --- lrkit's rule -----------------------------------------------------------------------------------
def test_lrkit_rule_hand_values() -> None:
    lrs = [1e-4, 1e-3, 1e-2, 1e-1, 1.0, 10.0]
    # start level median(5, 4, 1.0) = 4, drop 3.5, bottom: loss <= 0.5 + 0.175 -> only 0.1
    assert lrkit_rule(lrs, [5.0, 4.0, 1.0, 0.5, 9.0, 20.0]) == pytest.approx(0.01)
    # start 4, drop 3, bottom <= 1.15: 1e-2, 1e-1, 1 -> centre 1e-1 -> 1e-2
    assert lrkit_rule(lrs, [5.0, 4.0, 1.02, 1.0, 1.01, 20.0]) == pytest.approx(0.01)
    assert minimum(lrs, [5.0, 4.0, 1.02, 1.0, 1.01, 20.0]) == pytest.approx(0.01)
    # the argmin moves to the right edge of the bottom; the centre stays
    assert minimum(lrs, [5.0, 4.0, 1.02, 1.01, 1.0, 20.0]) == pytest.approx(0.1)
    assert lrkit_rule(lrs, [5.0, 4.0, 1.02, 1.01, 1.0, 20.0]) == pytest.approx(0.01)
    with pytest.raises(ValueError, match="tolerance"):
        lrkit_rule(lrs, [5.0, 4.0, 1.0, 0.5, 9.0, 20.0], tolerance=-1.0)


@settings(max_examples=60, deadline=None)
@given(curves())
def test_lrkit_rule_with_zero_tolerance_is_minimum_over_10(curve: tuple[np.ndarray, np.ndarray]) -> None:
    lrs, losses = curve
    assume(np.sum(losses == losses.min()) == 1)
    assert lrkit_rule(lrs, losses, tolerance=0.0) == minimum(lrs, losses)


def test_lrkit_rule_is_steadier_than_minimum_on_a_flat_noisy_bottom() -> None:
    """A loss with a wide flat bottom (1e-3 .. 1e-1) plus noise: the argmin wanders over the whole
    bottom; the centre of the bottom does not."""
    lrs = lr_ramp(1e-6, 1.0, 90)
    x = np.log10(lrs)
    base = np.where(x < -3, 1.0 + 0.5 * (-3 - x), 1.0) + np.where(x > -1, 20 * (x + 1) ** 2, 0.0)
    rng = np.random.default_rng(0)
    spread_min, spread_lrkit = [], []
    for _ in range(30):
        y = base + 0.003 * rng.standard_normal(x.size)
        spread_min.append(np.log10(minimum(lrs, y)))
        spread_lrkit.append(np.log10(lrkit_rule(lrs, y)))
    assert np.std(spread_lrkit) < 0.5 * np.std(spread_min)
    assert abs(np.mean(spread_lrkit) - (-3.0)) < 0.25  # centre of the bottom (1e-2) / 10
