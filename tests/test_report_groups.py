"""Many strategies in one report: with several optimizers, a line's colour names its optimizer and its
shade and line style its LR within that optimizer (darker = larger), the legend lists each optimizer's
strategies together, and the summary table's swatches match the figures. With one optimizer (labels
without '@OPT'), the i-th strategy keeps the i-th tab10 colour."""

from __future__ import annotations

import colorsys
import dataclasses
import re

import pytest

from lrkit.lab import report
from lrkit.lab.runner import LabResult
from tests.test_report import make_run

matplotlib = pytest.importorskip("matplotlib")
pytest.importorskip("matplotlib.pyplot")  # closing a figure: a no-op for lrkit's (not pyplot's)
from matplotlib import colormaps  # noqa: E402
from matplotlib.colors import to_hex, to_rgb  # noqa: E402

# the adaptive guide's experiment, in its order: the usual LR, 10 times smaller, 100 times larger
GRID = {
    "momentum": (1e-2, 1e-3, 1.0),
    "adagrad": (1e-2, 1e-3, 1.0),
    "rmsprop": (1e-3, 1e-4, 1e-1),
    "adam": (1e-3, 1e-4, 1e-1),
    "adamw": (1e-3, 1e-4, 1e-1),
}


def _grid_result(by_lr: bool = False) -> LabResult:
    """The grid, listed optimizer by optimizer (as the guide does) or, ``by_lr``, every optimizer at
    its usual LR first, then all at the smaller, then all at the larger."""
    pairs = [(opt, lrs[i]) for opt, lrs in GRID.items() for i in range(3)]
    if by_lr:
        pairs = [(opt, lrs[i]) for i in range(3) for opt, lrs in GRID.items()]
    runs = []
    for opt, lr in pairs:
        for seed in range(2):
            run = make_run(f"{opt} {lr:g}", seed, 0.5 + lr / 10, lr=lr)
            runs.append(dataclasses.replace(run, optimizer=opt))
    return LabResult("toy", 1, runs, ":memory:", "grid", "acc", True, 5)


def _lines(panel: str, result: LabResult) -> tuple[dict[str, tuple[str, str]], list[str]]:
    """{legend label: (colour, line style)} of the drawn curves, and the legend's entries in order."""
    fig = report.panel_figure(result, panel)
    try:
        lines = {
            ln.get_label(): (to_hex(ln.get_color()), ln.get_linestyle())
            for ln in fig.axes[0].get_lines()
            if not ln.get_label().startswith("_")
        }
        legend = [t.get_text() for t in fig.legends[0].get_texts()]
    finally:
        matplotlib.pyplot.close(fig)
    return lines, legend


def _hue(color: str) -> float:
    return colorsys.rgb_to_hsv(*to_rgb(color))[0]


def _hue_gap(a: float, b: float) -> float:
    d = abs(a - b) % 1.0
    return min(d, 1.0 - d)


@pytest.mark.parametrize("panel", ["metric", "loss"])
def test_one_hue_per_optimizer_and_a_darker_shade_for_a_larger_lr(panel: str) -> None:
    lines, legend = _lines(panel, _grid_result())
    assert len(lines) == 15 and len(set(lines.values())) == 15  # every curve drawn, no two alike
    hues = {}
    for opt, lrs in GRID.items():
        members = [f"{opt} {lr:g}" for lr in sorted(lrs)]
        # one hue per optimizer (shades mix with white or black, which keeps the HSV hue)
        opt_hues = [_hue(lines[m][0]) for m in members]
        assert max(_hue_gap(h, opt_hues[0]) for h in opt_hues) < 0.02, (opt, opt_hues)
        hues[opt] = opt_hues[0]
        # a larger LR is a darker line (HLS lightness falls strictly), and has its own line style
        light = [colorsys.rgb_to_hls(*to_rgb(lines[m][0]))[1] for m in members]
        assert light == sorted(light, reverse=True) and len(set(light)) == 3, (opt, light)
        assert len({lines[m][1] for m in members}) == 3
        # the legend lists the optimizer's strategies together, smallest LR first
        at = legend.index(members[0])
        assert legend[at : at + 3] == members
    names = list(hues)
    gaps = [_hue_gap(hues[a], hues[b]) for i, a in enumerate(names) for b in names[i + 1 :]]
    assert min(gaps) > 0.05, hues  # the optimizers are told apart by hue


def test_one_optimizer_keeps_one_tab10_colour_per_strategy() -> None:
    """Labels without '@OPT' (every strategy on the task's optimizer): the common case, 2-5 schedules,
    each its own tab10 colour in the experiment's order, solid; the 11th repeats the first colour,
    dashed."""
    labels = ["cosine", "step", "onecycle", "wsd", "constant"]
    runs = [make_run(lb, s, 0.8, lr=0.1 * (i + 1)) for i, lb in enumerate(labels) for s in range(2)]
    lines, legend = _lines("metric", LabResult("toy", 1, runs, ":memory:", "few", "acc", True, 5))
    tab10 = [to_hex(colormaps["tab10"](i)) for i in range(10)]
    assert legend == labels
    assert [lines[lb] for lb in labels] == [(tab10[i], "-") for i in range(5)]
    many = [make_run(f"s{i}", 0, 0.8) for i in range(11)]
    lines, _ = _lines("metric", LabResult("toy", 1, many, ":memory:", "many", "acc", True, 5))
    assert lines["s10"] == (tab10[0], "--") and lines["s0"] == (tab10[0], "-")


def test_schedules_of_different_shapes_under_one_optimizer_each_keep_their_own_colour() -> None:
    """The demo: nine schedules on momentum beside five other optimizers. Coloured by optimizer, the
    nine were shades of one blue that told the schedules apart by line style alone; it is a comparison
    of schedules, not an LR sweep, so each strategy keeps its own colour, in the experiment's order."""
    specs = {
        "wsd": ("momentum", "wsd(lr=0.0464, warmup=5%)"),
        "cosine": ("momentum", "warmup(steps=5%) >> cosine(lr=0.0464)"),
        "step": ("momentum", "multistep(lr=0.0464, milestones=[50%, 75%])"),
        "adam": ("adam", "constant(lr=0.001)"),
        "rmsprop": ("rmsprop", "constant(lr=0.001)"),
    }
    runs = [
        dataclasses.replace(make_run(lb, s, 0.8), optimizer=opt, spec=spec)
        for lb, (opt, spec) in specs.items()
        for s in range(2)
    ]
    lines, legend = _lines("metric", LabResult("toy", 1, runs, ":memory:", "demo", "acc", True, 5))
    tab10 = [to_hex(colormaps["tab10"](i)) for i in range(10)]
    assert legend == list(specs)
    assert [lines[lb] for lb in specs] == [(tab10[i], "-") for i in range(len(specs))]


def test_a_lone_strategy_per_optimizer_gets_the_plain_colour() -> None:
    """Two strategies on two optimizers (sgd cosine against adam cosine): two plain tab10 colours, solid,
    as with one optimizer."""
    runs = [dataclasses.replace(make_run(lb, 0, 0.8), optimizer=lb) for lb in ("sgd", "adam")]
    lines, _ = _lines("metric", LabResult("toy", 1, runs, ":memory:", "two", "acc", True, 5))
    tab10 = [to_hex(colormaps["tab10"](i)) for i in range(2)]
    assert lines == {"sgd": (tab10[0], "-"), "adam": (tab10[1], "-")}


def test_the_table_swatches_match_the_figure_lines() -> None:
    result = _grid_result()
    lines, _ = _lines("metric", result)
    page = report.render_html(result)
    table = page.split("<h2>Summary</h2>", 1)[1].split("</table>", 1)[0]
    cells = re.findall(r'<td class="label"><svg .*?stroke="(#[0-9a-f]{6})"([^/]*)/></svg> (.*?)<br>', table)
    assert len(cells) == 15
    dash_of = {v: k for k, v in report._DASHES.items()}
    for color, rest, label in cells:
        dash = re.search(r'stroke-dasharray="([^"]*)"', rest)
        ls = dash_of[dash.group(1) if dash else ""]
        assert (color, ls) == lines[label], label


def test_the_legend_gives_each_optimizer_a_column() -> None:
    """Five optimizers at three LRs each, listed LR by LR: five legend columns, one optimizer per
    column (the html figure and lab.png alike)."""
    result = _grid_result(by_lr=True)
    for fig in (report.panel_figure(result, "metric"), report.lab_figure(result)):
        try:
            fig.canvas.draw()  # lays the legend out
            renderer = fig.canvas.get_renderer()
            x = {t.get_text(): round(t.get_window_extent(renderer).x0) for t in fig.legends[0].get_texts()}
        finally:
            matplotlib.pyplot.close(fig)
        columns = [{x[f"{opt} {lr:g}"] for lr in lrs} for opt, lrs in GRID.items()]
        assert all(len(c) == 1 for c in columns), columns  # an optimizer's entries share a column
        assert len({c.pop() for c in columns}) == 5  # and each has its own
