"""Long curves drawn with a few thousand points keep each run of steps' lowest and highest value: the lab
report's LR figure took every stride-th step, so a cyclical LR whose period was near the stride was drawn
flat at its base (40,000 steps of step_size_up=5: all 4,000 points at 1e-3), and ``lrkit plot`` refused
runs over 1,000,000 steps."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import lrkit
from lrkit.plot import MAX_POINTS, minmax_thin

pytest.importorskip("matplotlib")


@settings(max_examples=200, deadline=None)
@given(
    y=hnp.arrays(np.float64, st.integers(1, 300), elements=st.floats(-1e6, 1e6) | st.just(np.nan)),
    stride=st.integers(1, 40),
    offset=st.integers(0, 10**9),
)
def test_each_run_keeps_its_lowest_and_highest(y: np.ndarray, stride: int, offset: int) -> None:
    x, v = minmax_thin(y, stride, offset)
    assert np.all(np.diff(x) > 0) and np.array_equal(v, y[(x - offset).astype(int)])
    for start in range(0, len(y), stride):
        run = y[start : start + stride]
        mine = v[(x - offset >= start) & (x - offset < start + stride)]
        fin = run[np.isfinite(run)]
        assert len(mine) == (0 if not len(fin) else 1 if fin.min() == fin.max() else 2)
        if len(fin):
            assert mine.min() == fin.min() and mine.max() == fin.max()


@pytest.mark.parametrize("up", [5, 7, 10])
def test_the_report_draws_a_fast_cycle_over_its_whole_range(up: int) -> None:
    from lrkit.lab import report

    y = lrkit.parse(f"cyclic(lr=1e-3, max_lr=0.1, step_size_up={up})")(np.arange(40_000.0))
    x, mean, xb, lo, hi = report._band([y, y])
    assert len(x) <= MAX_POINTS and mean.min() == pytest.approx(1e-3) and mean.max() == pytest.approx(0.1)
    assert len(xb) == len(lo) == len(hi) <= MAX_POINTS and lo.min() == pytest.approx(1e-3)
    assert hi.max() == pytest.approx(0.1)


def test_a_short_curve_is_drawn_at_every_step_as_before() -> None:
    from lrkit.lab import report

    a, b = np.linspace(1.0, 2.0, 300), np.linspace(3.0, 2.0, 300)
    b[250:] = np.nan  # a seed that diverged
    x, mean, xb, lo, hi = report._band([a, b])
    assert np.array_equal(x, np.arange(300.0)) and np.array_equal(xb, x)
    assert np.allclose(mean[:250], 2.0) and np.allclose(mean[250:], a[250:])
    assert np.array_equal(lo[:250], np.minimum(a, b)[:250]) and np.array_equal(hi[250:], a[250:])


def test_plot_draws_ten_million_steps_of_a_fast_cycle(tmp_path: object) -> None:
    from lrkit.plot import plot_schedules, pyplot

    fig = plot_schedules(["cyclic(lr=1e-3, max_lr=0.1, step_size_up=5)"], 10**7)
    (line,) = fig.axes[0].get_lines()
    x, y = line.get_xdata(), line.get_ydata()
    pyplot().close(fig)
    assert len(x) <= MAX_POINTS + 2 and x[0] == 0 and x[-1] == 10**7  # its first and last step too
    assert min(y) == pytest.approx(1e-3) and max(y) == pytest.approx(0.1)
