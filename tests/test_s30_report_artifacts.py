"""The report's and ``lrkit plot``'s pictures and pages as things people look at: printed (the page's print
style), with Hangul in an English figure, when every run diverged, with long names that differ at their
end, with a legend that could cover a curve, and in the page's English counts."""

from __future__ import annotations

import re
import warnings
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lrkit.lab import report
from lrkit.lab.runner import LabResult
from tests.test_report import make_result, make_run

matplotlib = pytest.importorskip("matplotlib")

from lrkit.plot import plot_schedules  # noqa: E402  (after matplotlib's importorskip)

needs_hangul = pytest.mark.skipif(
    report._hangul_font() is None,
    reason="no font with Hangul installed (Debian: fonts-nanum; .ci/run installs it)",
)


def _media_block(css: str, query: str) -> str:
    """The rules inside ``@media QUERY { ... }`` of ``css`` (braces matched)."""
    start = css.index("@media " + query)
    depth, i = 0, css.index("{", start)
    for j in range(i, len(css)):
        depth += {"{": 1, "}": -1}.get(css[j], 0)
        if depth == 0:
            return css[i + 1 : j]
    raise AssertionError(f"@media {query}: no closing brace")


def _rule(block: str, selector: str) -> str:
    """The declarations of the rule whose selector list holds ``selector``."""
    for sel, body in re.findall(r"([^{}]+)\{([^{}]*)\}", block):
        if selector in [s.strip() for s in sel.split(",")]:
            return body
    raise AssertionError(f"no rule for {selector!r} in {block!r}")


# --------------------------------------------------------------------------------------------------
# 1. printed, and on a phone
# --------------------------------------------------------------------------------------------------
def test_the_printed_page_shows_every_column_and_the_collapsed_runs_and_keeps_headings_with_figures() -> None:
    """Printed (Chromium's print to PDF: checked by eye, the table's 12 columns on an A4 page), the summary
    table is not cut at the page's edge by its scroll box, the runs' table collapsed in ``<details>`` is
    shown, a heading does not end a page whose next starts with its figure, and a figure or row is not
    split between pages."""
    page = report.render_html(make_result())
    css = page[page.index("<style>") + 7 : page.index("</style>")]
    printed = _media_block(css, "print")
    assert re.search(r"overflow(-x)?:\s*visible", _rule(printed, ".scroll"))
    assert "content-visibility: visible" in _rule(printed, "details::details-content")
    for heading in ("h1", "h2", "h3"):
        assert "break-after: avoid" in _rule(printed, heading)
    for thing in ("img", "tr"):
        assert "break-inside: avoid" in _rule(printed, thing)
    assert "max-width: none" in _rule(printed, "body")  # the page's width, not 1240px
    assert "<details>" in page  # on screen it stays collapsed


def test_on_a_phone_the_strategy_column_stays_in_view_while_the_table_scrolls() -> None:
    page = report.render_html(make_result())
    css = page[page.index("<style>") + 7 : page.index("</style>")]
    narrow = _media_block(css, "(max-width: 700px)")
    sticky = _rule(narrow, ".scroll td:first-child")
    assert "position: sticky" in sticky and "left: 0" in sticky and "background" in sticky


# --------------------------------------------------------------------------------------------------
# 2. Hangul in an English figure
# --------------------------------------------------------------------------------------------------
def test_an_english_figure_falls_back_to_the_hangul_font(monkeypatch: pytest.MonkeyPatch) -> None:
    """Any machine: English figures list the Hangul font after matplotlib's own, as Korean ones do; with
    no such font, English figures are unchanged and say nothing."""
    monkeypatch.setattr(report, "_hangul_font", lambda: "Some Hangul Font")
    t, family = report._figure_language("en")
    assert t.lang == "en" and family == [*matplotlib.rcParams["font.family"], "Some Hangul Font"]
    monkeypatch.setattr(report, "_hangul_font", lambda: None)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert report._figure_language("en")[1] is None


def _korean_named() -> LabResult:
    runs = [make_run("코사인 워밍업", s, 0.9 + 0.01 * s) for s in range(2)]
    runs += [make_run("constant", s, 0.8 + 0.01 * s, lr=0.05) for s in range(2)]
    return LabResult("toy-task", 1, runs, ":memory:", "실험", "val accuracy", True, 5)


@needs_hangul
def test_hangul_in_an_english_report_and_plot_is_drawn_not_boxed(tmp_path: Path) -> None:
    """A Korean strategy name in an English lab, a Korean lab reported in English, ``lrkit plot --title``
    in Korean: matplotlib's "Glyph ... missing from DejaVu Sans" (boxes drawn) is an error here."""
    result = _korean_named()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        warnings.filterwarnings("ignore", category=DeprecationWarning)
        report.write_all(result, tmp_path / "lab", title="학습률 실험", lang="en")
        for panel in report.PANELS:
            report.panel_figure(result, panel, lang="en").canvas.draw()
        plot_schedules(["cosine(lr=0.1)"], 100, tmp_path / "lr.png", title="학습률 스케줄")
        plot_schedules(["cosine(lr=0.1)"], 100, tmp_path / "lr.svg", title="학습률 스케줄")


# --------------------------------------------------------------------------------------------------
# 3. every run diverged; whole steps and epochs; x marks at one place
# --------------------------------------------------------------------------------------------------
def _all_diverged(epochs: int = 2) -> LabResult:
    runs = [
        make_run(label, 0, None, diverge_at=1, lr=lr, epochs=epochs) for label, lr in (("a", 9.0), ("b", 5.0))
    ]
    return LabResult("toy-task", 1, runs, ":memory:", "boom", "val accuracy", True, epochs)


@pytest.mark.parametrize("lang", ["en", "ko"])
def test_with_no_finished_run_the_metric_panel_says_so_and_names_no_line(
    lang: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(report, "_hangul_font", lambda: "DejaVu Sans")  # the panel's words, any machine
    result = _all_diverged()
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", "Glyph .* missing", UserWarning)
        fig = report.panel_figure(result, "metric", lang=lang)
        fig.canvas.draw()
        three = report.lab_figure(result, lang=lang)
    ax = fig.axes[0]
    assert not ax.get_lines() and not fig.legends and ax.get_legend() is None
    said = [t.get_text() for t in ax.texts]
    m = report.messages(lang).metric("val accuracy")
    assert said == [report.messages(lang)("fig.metric_none", m=m)]
    assert list(ax.get_xticks()) == [] and list(ax.get_yticks()) == []  # no made-up axis -0.04 .. 0.04
    # the three-panel figure keeps its legend (the LR panel's lines)
    assert three.legends


def _tick_values(fig: object, ax: object) -> list[float]:
    fig.canvas.draw()  # type: ignore[attr-defined]
    lo, hi = ax.get_xlim()  # type: ignore[attr-defined]
    return [float(v) for v in ax.get_xticks() if lo <= v <= hi]  # type: ignore[attr-defined]


@pytest.mark.parametrize("epochs", [1, 2])
def test_steps_and_epochs_are_whole_numbers_on_every_panel(epochs: int) -> None:
    """A lab whose runs diverged at step 1 drew LR ticks 0.0, 0.2, ... 1.0; a lab of one epoch, epoch ticks
    0.96 .. 1.04."""
    diverged = _all_diverged(epochs)
    one = LabResult("toy-task", 1, [make_run("c", s, 0.9, epochs=epochs) for s in range(2)], ":memory:", "x",
                    "val accuracy", True, epochs)  # fmt: skip
    for result, panels in ((diverged, ("lr", "loss")), (one, report.PANELS)):
        for panel in panels:
            fig = report.panel_figure(result, panel)
            ticks = _tick_values(fig, fig.axes[0])
            assert ticks and all(v == int(v) for v in ticks), (panel, epochs, ticks)


def test_runs_that_diverged_at_one_place_are_marked_side_by_side() -> None:
    result = _all_diverged()
    fig = report.panel_figure(result, "loss")
    fig.canvas.draw()
    ax = fig.axes[0]
    crosses = [line for line in ax.get_lines() if line.get_marker() == "x"]
    assert len(crosses) == 2
    at = [line.get_transform().transform(np.column_stack(line.get_data()))[0] for line in crosses]
    assert {line.get_color() for line in crosses} == set(report._styles(result)[lb][0] for lb in ("a", "b"))
    assert abs(at[0][0] - at[1][0]) >= 9  # apart, in display pixels (one over another hid the first)
    assert at[0][1] == pytest.approx(at[1][1])  # at one height: the top edge


# --------------------------------------------------------------------------------------------------
# 4. long names
# --------------------------------------------------------------------------------------------------
@settings(max_examples=300, deadline=None)
@given(st.lists(st.text(max_size=150), min_size=1, max_size=8, unique=True))
def test_distinct_labels_get_distinct_legend_names(labels: list[str]) -> None:
    names = report.legend_names(labels)
    assert list(names) == labels and len(set(names.values())) == len(labels)
    for label, name in names.items():
        assert "\n" not in name and "\r" not in name
        if len(label) <= report.LEGEND_CHARS and not any(c in label for c in "\n\r\x0b\x0c\x1c\x1d\x1e\x85"):
            assert name == label or name == repr(label)


@settings(max_examples=200, deadline=None)
@given(
    st.text(alphabet="abcdefgh_(=.)0123456789 ", min_size=61, max_size=120),
    st.lists(st.text(alphabet="0123456789.e-", min_size=1, max_size=12), min_size=2, max_size=6, unique=True),
)
def test_names_that_differ_at_their_end_stay_apart_and_short(prefix: str, ends: list[str]) -> None:
    """A sweep's labels: one long prefix, the LR at the end; cut in the middle, each keeps its end and its
    60 characters."""
    labels = [prefix + e for e in ends]
    names = report.legend_names(labels)
    assert len(set(names.values())) == len(labels)
    for label, name in names.items():
        assert len(name) <= report.LEGEND_CHARS and label.endswith(name.split("…")[-1])


def test_the_figures_legend_tells_long_names_apart() -> None:
    head = "a_very_long_strategy_name_that_someone_copied_from_their_wandb_run_config_warmup_cosine_"
    labels = [head + "lr005", head + "lr010"]
    runs = [make_run(label, 0, 0.8 + 0.01 * i) for i, label in enumerate(labels)]
    result = LabResult("toy-task", 1, runs, ":memory:", "long", "val accuracy", True, 5)
    fig = report.panel_figure(result, "lr")
    legend = [t.get_text() for t in fig.legends[0].get_texts()]
    assert len(set(legend)) == 2 and legend[0].endswith("lr005") and legend[1].endswith("lr010")


# --------------------------------------------------------------------------------------------------
# 5. lrkit plot's legend and log scale
# --------------------------------------------------------------------------------------------------
def test_plot_legend_covers_no_curve_where_a_corner_is_free() -> None:
    """A constant LR along the top and a linear decay corner to corner: the upper right, where the legend
    was fixed, is on the constant line; the lower left is free."""
    fig = plot_schedules(["constant(lr=0.1)", "linear(lr=0.1, end_lr=0)"], 1000)
    fig.canvas.draw()
    ax = fig.axes[0]
    box = ax.get_legend().get_window_extent()
    for line in ax.get_lines():
        xy = ax.transData.transform(np.column_stack(line.get_data()))
        inside = (box.x0 <= xy[:, 0]) & (xy[:, 0] <= box.x1) & (box.y0 <= xy[:, 1]) & (xy[:, 1] <= box.y1)
        assert not inside.any(), line.get_label()


def test_plot_on_a_log_scale_says_which_steps_it_leaves_out() -> None:
    """A warmup from 0 trains its first step with LR 0, which a log axis cannot draw: the legend says so.
    The last point drawn (step ``total``, where a decay to 0 ends) is no step a run trains with."""
    specs = [
        "warmup(10%, start=0) >> cosine(lr=0.1)",
        "cosine(lr=0.1, min_lr=0.001)",
        "linear(lr=0.1, end_lr=0)",
    ]
    fig = plot_schedules(specs, 100, log=True)
    labels = [line.get_label() for line in fig.axes[0].get_lines()]
    assert labels == [specs[0] + " (LR ≤ 0 at step 0: not drawn on a log scale)", specs[1], specs[2]]
    ramps = ["warmup(2, start=0) >> constant(0.1)", "cyclic(lr=0, max_lr=0.1, step_size_up=10)"]
    big = plot_schedules(ramps, 10_000, log=True)
    assert [line.get_label() for line in big.axes[0].get_lines()] == [
        ramps[0] + " (LR ≤ 0 at step 0: not drawn on a log scale)",
        ramps[1] + " (LR ≤ 0 at 500 steps from 0 to 9,980: not drawn on a log scale)",
    ]
    two = plot_schedules(["piecewise(points=[[0, 0], [1, 0], [2, 0.1]])"], 10, log=True)
    assert (
        two.axes[0]
        .get_lines()[0]
        .get_label()
        .endswith(" (LR ≤ 0 at steps 0 and 1: not drawn on a log scale)")
    )
    # without --log nothing is left out and nothing is said
    assert [line.get_label() for line in plot_schedules(specs, 100).axes[0].get_lines()] == specs


# --------------------------------------------------------------------------------------------------
# 6. the page's English counts
# --------------------------------------------------------------------------------------------------
def test_the_pages_subtitle_counts_in_english_and_korean() -> None:
    one = LabResult(
        "toy-task", 1, [make_run("c", 0, 0.9, epochs=1)], ":memory:", "x", "val accuracy", True, 1
    )
    page = report.render_html(one)
    assert "· 1 strategy · seed 0 · 1 epoch · 1 run ·" in page
    assert "· 5 strategies · seeds 0, 1, 2 · 5 epochs · 11 runs ·" in report.render_html(make_result())
    assert "· 전략 1개 · 시드 0 · 1 에폭 · 실행 1개 ·" in report.render_html(one, lang="ko")
