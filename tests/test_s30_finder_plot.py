"""The range test's figure when the curve is not a textbook one: a loss that blows up from the first
rungs keeps the LRs tried in view on a log loss axis, a rule's value off the axis is named, the LR axis
says which param group it is, and auto's figure keeps its peak in view and names its search in words."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from lrkit.finder import range_test

pytest.importorskip("matplotlib")


def early_blow_up(lr: float) -> float:
    """2.3 at the first rungs, then a loss that grows a hundredfold per rung: the test stops early."""
    return 2.3 if lr < 52.0 else 2.3 * 100.0 ** ((lr - 49.0) / 3.0)


def _labels(ax: object) -> list[str]:
    return [h.get_label() for h in ax.get_legend().legend_handles]  # type: ignore[attr-defined]


def test_a_blow_up_from_the_first_rungs_keeps_the_lrs_tried_in_view() -> None:
    res = range_test(early_blow_up, start_lr=50.0, end_lr=1e4, num_steps=100)
    tried = np.concatenate([c.lrs for c in res.curves])
    assert res.suggestion is None and res.suggestions  # the rules' raw values are drawn, unused
    ax = res.plot()
    lo, hi = ax.get_xlim()
    assert tried.min() / 1.5 <= lo <= tried.min() and hi >= tried.max()
    assert math.log10(hi / lo) < 1.0  # the tried range (and the shaded blow-up) fill the axis
    below = [v for v in res.suggestions.values() if v < tried.min()]
    assert below, "the premise: a rule's value lies below the LRs tried"
    assert any(", below the LRs tried" in label for label in _labels(ax))
    # a loss that rose 1e5x within the first tenth: a log axis shows the start and the blow-up
    assert ax.get_yscale() == "log"
    ylo, yhi = ax.get_ylim()
    first = res.curves[0].smoothed[0]
    assert ylo <= first and yhi >= 100 * first


def test_a_textbook_curve_keeps_a_linear_loss_axis_and_every_value_in_view() -> None:
    def bowl(lr: float) -> float:
        return float((np.log10(lr) + 1.0) ** 2 + 1.0) if lr < 3.0 else 1e6

    res = range_test(bowl, num_steps=60)
    assert res.suggestion is not None
    ax = res.plot()
    assert ax.get_yscale() == "linear"
    lo, hi = ax.get_xlim()
    assert lo <= min(res.interval[0], res.suggestion) and hi >= res.suggestion
    assert not any("LRs tried" in label for label in _labels(ax))


def test_the_lr_axis_names_the_param_group_when_there_are_several() -> None:
    def bowl(lr: float) -> float:
        return float((np.log10(lr) + 1.0) ** 2 + 1.0)

    one = range_test(bowl, num_steps=40)
    assert one.plot().get_xlabel() == "learning rate (log scale)"
    from dataclasses import replace

    frozen = replace(one, group_ratios=(0.0, 1.0, 10.0))
    assert frozen.plot().get_xlabel() == "learning rate of param group 1 (log scale)"
    alike = replace(one, group_ratios=(1.0, 1.0))  # several groups at one LR: nothing to tell apart
    assert alike.plot().get_xlabel() == "learning rate (log scale)"


def test_auto_search_words_cover_every_outcome() -> None:
    from lrkit.auto import SEARCH_OUTCOMES
    from lrkit.auto_plot import SEARCH_WORDS

    assert set(SEARCH_WORDS) == set(SEARCH_OUTCOMES)
    assert all("_" not in w for w in SEARCH_WORDS.values())


def test_autos_figure_keeps_a_peak_past_the_lrs_tried_in_view() -> None:
    torch = pytest.importorskip("torch")
    import warnings

    import lrkit

    from .test_auto import _loader, _model

    torch.set_num_threads(1)
    torch.manual_seed(0)
    model = _model()
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the search's cost on this small run is not under test here
        run = lrkit.auto(model, opt, _loader(), torch.nn.functional.cross_entropy, epochs=6,
                         search="separate", peak_factor=300, verbose=False)  # fmt: skip
    tried = np.concatenate([c.lrs for c in run.finder.curves])
    assert run.peak_lr > tried.max(), "the premise: the peak lies past the LRs the search tried"
    fig = run.plot()
    left = fig.axes[0]
    lo, hi = left.get_xlim()
    assert lo <= run.peak_lr <= hi
    words = fig._suptitle.get_text() + left.get_title()
    assert "separate range test" in words and "separate search" not in words and "in_run" not in words


def _no_missing_glyphs() -> Any:
    import warnings

    from lrkit.plot import hangul_font

    if hangul_font() is None:
        pytest.skip("no font with Hangul installed (CI installs fonts-nanum)")
    ctx = warnings.catch_warnings()
    ctx.__enter__()
    warnings.filterwarnings("error", message=".*Glyph .* missing")
    return ctx


def test_hangul_titles_are_drawn_on_the_finder_figure_and_by_lrkit_plot(tmp_path: Path) -> None:
    ctx = _no_missing_glyphs()
    try:

        def bowl(lr: float) -> float:
            return float((np.log10(lr) + 1.0) ** 2 + 1.0)

        res = range_test(bowl, num_steps=40)
        res.plot(tmp_path / "f.png", title="학습률 범위 테스트")
        from lrkit.cli import main

        out = tmp_path / "s.png"
        assert (
            main(["plot", "cosine(lr=0.1)", "--total", "100", "--title", "학습률 스케줄", "--out", str(out)])
            == 0
        )
        assert out.exists()
    finally:
        ctx.__exit__(None, None, None)


def test_lrkit_find_takes_plot_as_auto_does(tmp_path: Path) -> None:
    pytest.importorskip("torch")
    from lrkit.cli import main

    out = tmp_path / "f.svg"
    argv = ["find", "--task", "digits-mlp-sgd", "--repeats", "1", "--num-steps", "30", "--plot", str(out)]
    assert main(argv) == 0
    assert out.read_bytes().lstrip().startswith(b"<?xml")


def test_the_finder_figure_logs_no_bold_weight_fallback_of_the_hangul_font(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """NanumGothic's bold is 600: matplotlib logs "findfont: Failed to find font weight bold" on every
    figure drawn with it as a fallback (lrkit find printed it under its result)."""
    import logging

    from lrkit.plot import hangul_font

    if hangul_font() is None:
        pytest.skip("no font with Hangul installed (CI installs fonts-nanum)")

    def bowl(lr: float) -> float:
        return float((np.log10(lr) + 1.0) ** 2 + 1.0)

    with caplog.at_level(logging.DEBUG, logger="matplotlib.font_manager"):
        range_test(bowl, num_steps=40).plot(tmp_path / "f.png")  # its suggestion label is bold
    assert not [r for r in caplog.records if "Failed to find font weight" in r.getMessage()]


def test_nested_hangul_fallbacks_keep_the_outer_ones_log_filter() -> None:
    """auto's figure draws the finder's inside its own fallback: leaving the inner one must not take
    away the outer one's filter (the bold-weight line came back for the rest of the outer figure)."""
    import logging

    from lrkit.plot import hangul_fallback, hangul_font, not_a_weight_fallback

    if hangul_font() is None:
        pytest.skip("no font with Hangul installed (CI installs fonts-nanum)")
    fonts = logging.getLogger("matplotlib.font_manager")
    with hangul_fallback():
        with hangul_fallback():
            assert not_a_weight_fallback in fonts.filters
        assert not_a_weight_fallback in fonts.filters
    assert not_a_weight_fallback not in fonts.filters
