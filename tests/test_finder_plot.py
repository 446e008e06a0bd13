"""The range test's figure as a user reads it: the verdict in the title whatever the title, the suggestion
marked on the curve with its value, a flat curve drawn flat, every repeat in view, the blow-up shaded."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from lrkit.finder import range_test
from lrkit.finder.plot import MIN_SPAN

pytest.importorskip("matplotlib")


def bowl(lr: float) -> float:
    """A clear minimum near lr = 0.1; past lr = 3 the loss blows up (the test stops there)."""
    return float((np.log10(lr) + 1.0) ** 2 + 1.0) if lr < 3.0 else 1e6


def flat_noise() -> Any:
    """A loss of 2.3 with a deterministic wiggle of +-0.3% and no fall: the "flat" verdict."""
    i = iter(range(10**6))
    return lambda lr: 2.3 + 0.007 * math.sin(1.7 * next(i))


def test_a_given_title_keeps_the_verdict(tmp_path: Path) -> None:
    """``lrkit find`` passes its own title ("LR range test on TASK (OPT)"): the figure of a result with no
    suggestion must still say so and why, and that of a trusted one its value."""
    bad = range_test(flat_noise(), num_steps=60)
    assert not bad.trusted
    title = bad.plot(tmp_path / "bad.png", title="LR range test on my-task (sgd)").get_title()
    assert title.startswith("LR range test on my-task (sgd)\n")
    assert "no suggestion (NOT TRUSTED)" in title and "flat" in title

    good = range_test(bowl, num_steps=60)
    assert good.suggestion is not None
    title = good.plot(tmp_path / "good.png", title="LR range test on my-task (sgd)").get_title()
    assert f"suggested LR {good.suggestion:.3g}" in title and "NOT TRUSTED" not in title


def test_the_suggestion_is_a_dot_on_the_curve_labelled_with_its_value() -> None:
    good = range_test(bowl, num_steps=60)
    s = good.suggestion
    assert s is not None
    ax = good.plot()
    (dot,) = [c for c in ax.collections if len(c.get_offsets()) == 1]
    x, y = dot.get_offsets()[0]
    c = good.curves[0]
    ok = np.isfinite(c.smoothed)
    assert x == pytest.approx(s)
    assert y == pytest.approx(np.interp(math.log(s), np.log(c.lrs[ok]), c.smoothed[ok]))
    assert [t.get_text() for t in ax.texts] == [f"suggested {s:.3g}"]

    bad = range_test(flat_noise(), num_steps=60)  # no suggestion: nothing reads as one
    ax = bad.plot()
    assert not [c for c in ax.collections if len(c.get_offsets()) == 1] and not ax.texts


def test_a_flat_curve_is_drawn_flat() -> None:
    """A 0.3% wiggle must not fill the loss axis (it reads as a dip): the axis spans at least MIN_SPAN of
    the loss, so the curve's own range is a small part of it."""
    bad = range_test(flat_noise(), num_steps=60)
    ax = bad.plot()
    lo, hi = ax.get_ylim()
    y = bad.smoothed[np.isfinite(bad.smoothed)]
    assert hi - lo >= MIN_SPAN * 2.3
    assert (y.max() - y.min()) / (hi - lo) < 0.3
    assert lo < y.min() and y.max() < hi


def test_every_repeats_start_is_in_view() -> None:
    """Repeats at different loss levels: the top of the axis covers the start of each, not only the first."""
    levels = iter([0.0, 30.0])  # the second starts far above the first, beyond the margin above it
    level = [0.0]

    def before(r: int) -> None:
        level[0] = next(levels)

    res = range_test(lambda lr: bowl(lr) + level[0], num_steps=60, repeats=2, before_repeat=before)
    _, hi = res.plot().get_ylim()
    for c in res.curves:
        assert hi > float(np.max(c.smoothed[:6])), (hi, c.smoothed[:6])


def test_the_blow_up_is_shaded_and_labelled() -> None:
    res = range_test(bowl, num_steps=60)
    stop = res.curves[0].stopped_at
    assert stop is not None
    ax = res.plot()
    handles, labels = ax.get_legend_handles_labels()
    (label,) = [t for t in labels if t.startswith("loss blew up")]
    assert f"from {res.lrs[stop]:.3g}" in label
    span = handles[labels.index(label)]
    # axvspan returns a Polygon (matplotlib 3.8) or a Rectangle (3.9+): read its corners in data units
    xs = span.get_patch_transform().transform(span.get_path().vertices)[:, 0]
    left, right = xs.min(), xs.max()
    assert left == pytest.approx(res.lrs[stop]) and right == pytest.approx(ax.get_xlim()[1])


def test_an_untrusted_interval_is_marked_unused() -> None:
    shifts = iter([1.0, 1e3])
    shift = [1.0]

    def before(r: int) -> None:
        shift[0] = next(shifts)

    res = range_test(lambda lr: bowl(lr * shift[0]), num_steps=80, repeats=2, before_repeat=before)
    assert not res.trusted and "disagree" in res.reason
    _, labels = res.plot().get_legend_handles_labels()
    (band,) = [t for t in labels if "interval" in t]
    assert band.endswith("(not used)")


def test_the_legend_and_title_stay_inside_the_figure_and_off_the_data() -> None:
    """The legend sits beside the axes (inside, it covered the raw losses or the tail), and the title,
    verdict included, is not cut at the figure's edges."""
    for res in (range_test(bowl, num_steps=60), range_test(flat_noise(), num_steps=60)):
        ax = res.plot(title="LR range test on a task with a rather long name (adamw)")
        fig = ax.figure
        fig.draw_without_rendering()
        box, legend = ax.get_window_extent(), ax.get_legend().get_window_extent()
        assert legend.x0 >= box.x1
        page, title = fig.bbox, ax.title.get_window_extent()
        assert page.x0 <= title.x0 and title.x1 <= page.x1 and title.y1 <= page.y1
        assert legend.x1 <= page.x1


def test_the_title_says_when_there_are_more_problems_than_it_shows() -> None:
    shifts = iter([1.0, 1e3])
    shift = [1.0]

    def before(r: int) -> None:
        shift[0] = next(shifts)

    res = range_test(
        lambda lr: bowl(lr * shift[0]), num_steps=80, repeats=2, before_repeat=before, start_lr=1e-3
    )
    n = len(res.problems)
    assert n >= 2, res.problems
    title = " ".join(res.plot().get_title().split())
    assert res.reason.split(";")[0] in title
    assert f"(and {n - 1} more problem{'s' if n > 2 else ''}: see the printed result)" in title


def test_a_loss_not_finite_from_the_first_rung_draws_the_lrs_tried_and_says_so() -> None:
    """It drew an empty 1..10 LR axis (matplotlib's default) under a band "loss blew up from 1e-07"."""
    res = range_test(lambda lr: math.nan, num_steps=30, repeats=2)
    assert res.problem_kinds == ("broken",)
    ax = res.plot()
    lo, hi = ax.get_xlim()
    assert lo < res.lrs[0] < hi < 10 * res.lrs[0]
    assert [t.get_text() for t in ax.texts] == ["no finite loss to draw"]
    assert not [t for t in ax.get_legend_handles_labels()[1] if "blew up" in t]


def test_on_a_given_axes_the_caller_composes_the_figure() -> None:
    """lrkit.auto draws the search on its own panel with its own title and peak LR (which may differ from
    the finder's suggestion): no "suggested ..." label or verdict line is added there."""
    from matplotlib.figure import Figure

    res = range_test(bowl, num_steps=60)
    ax = Figure().add_subplot()
    res.plot(ax=ax, title="the LR search: loss against LR")
    assert ax.get_title() == "the LR search: loss against LR"
    assert not ax.texts and not [c for c in ax.collections if len(c.get_offsets()) == 1]
    bare = Figure().add_subplot()  # no title given: the default one still carries the verdict
    res.plot(ax=bare)
    assert f"suggested LR {res.suggestion:.3g}" in bare.get_title()


@pytest.mark.parametrize(
    ("name", "words"),
    [
        (
            "lr.txt",
            r"path: expected a \.png, \.svg, \.pdf file name, got '.*lr\.txt'",
        ),  # matplotlib: "Format 'txt'"
        ("lr_find", r"path: expected a \.png, \.svg, \.pdf file name"),  # was written as a PNG named lr_find
        ("", r"path: .* is a directory; expected a file name"),  # was IsADirectoryError, after the drawing
    ],
)
def test_a_path_that_is_no_plot_file_is_refused_by_name_before_drawing(
    tmp_path: Path, name: str, words: str
) -> None:
    res = range_test(bowl, num_steps=30)
    with pytest.raises(ValueError, match=words):
        res.plot(tmp_path / name if name else tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == []  # nothing written
    with pytest.raises(TypeError, match="ax must be a matplotlib Axes or None"):
        res.plot(ax="left")
