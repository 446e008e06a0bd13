"""The range-test figure: loss against LR on a log axis, with every suggestion and the interval.

matplotlib is imported inside the function, and only for a ``Figure`` on its own Agg canvas
(:func:`lrkit.plot.new_figure`, no pyplot), so it works under any backend, headless included.
"""

from __future__ import annotations

import math
import textwrap
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from lrkit._text import plural
from lrkit.finder.result import RULE_LABELS

if TYPE_CHECKING:
    from lrkit.finder.result import FinderResult

__all__ = ["plot_result", "verdict"]

_STYLES = {"lrkit": ("C3", "-"), "steepest": ("C2", "--"), "minimum": ("C1", "-."), "valley": ("C4", ":")}
#: the loss axis spans at least this fraction of the starting loss, so that a curve that fell by less
#: than 1% (the "flat" verdict) looks flat instead of its noise filling the figure
MIN_SPAN = 0.04
#: a loss axis whose top is more than this times its bottom is logarithmic (a linear one squeezes the
#: losses before the blow-up onto its floor)
LOG_LOSS_RATIO = 100.0
#: characters per line of the verdict under the title (it fits over the axes beside the legend)
_WIDTH = 64


def verdict(result: FinderResult) -> str:
    """The figure's second title line: the suggestion and its interval, or why there is none, such as
    ``suggested LR 0.0464 (rule 'lrkit', interval 0.0464 .. 0.0509)``, or ``no suggestion (NOT TRUSTED):``
    over the reason's first clause (``flat: the smoothed loss fell by 0.0153 from 2.31, ...``), wrapped."""
    if result.suggestion is not None:
        lo, hi = result.interval
        spread = f", interval {lo:.3g} .. {hi:.3g}" if hi > lo else ""
        return f"suggested LR {result.suggestion:.3g} (rule {result.rule!r}{spread})"
    why = result.reason.split(";")[0] if result.reason else "no usable curve"
    why = textwrap.shorten(why, 2 * _WIDTH, placeholder=" ...")
    if len(result.problems) > 1:
        why += f" (and {plural(len(result.problems) - 1, 'more problem')}: see the printed result)"
    return "\n".join(["no suggestion (NOT TRUSTED):", *textwrap.wrap(why, _WIDTH)])


def _lr_range(result: FinderResult) -> tuple[float, float] | None:
    """The LR axis: the LRs the test tried (and the suggestion with its interval, when there is one),
    a twentieth of their span in log space wider on each side; a rule's raw value outside it is not
    drawn but named in the legend (:func:`_off_axis`). None when no LR was tried."""
    lrs = np.concatenate([c.lrs[np.isfinite(c.lrs) & (c.lrs > 0)] for c in result.curves] or [np.zeros(0)])
    if not lrs.size:
        return None
    lo, hi = float(lrs.min()), float(lrs.max())
    if result.suggestion is not None:
        lo = min(lo, result.suggestion, *(v for v in result.interval if v > 0))
        hi = max(hi, result.suggestion, *result.interval)
    pad = max(math.log10(hi / lo), 0.5) / 20
    return lo / 10**pad, hi * 10**pad


def _off_axis(value: float, shown: tuple[float, float]) -> str:
    """``, below the LRs tried`` / ``, above ...`` for a value outside the LR axis, else ``""``."""
    if value < shown[0]:
        return ", below the LRs tried"
    return ", above the LRs tried" if value > shown[1] else ""


def _ylim(result: FinderResult) -> tuple[float, float, bool] | None:
    """The loss axis: from the lowest smoothed loss to the highest of each curve's first tenth (the
    diverged tail runs off the top), at least :data:`MIN_SPAN` of the starting loss high. When that
    top is more than :data:`LOG_LOSS_RATIO` times the bottom (a loss that blew up within the first
    tenth of the rungs), the axis is logarithmic (the third value True), from the bottom to the top, a
    little wider."""
    heads, lows = [], []
    for c in result.curves:
        y = c.smoothed[np.isfinite(c.smoothed)]
        if y.size:
            heads.append(y[: max(3, y.size // 10)])
            lows.append(float(y.min()))
    if not heads:
        return None
    top = max(float(h.max()) for h in heads)
    bottom = min(lows)
    if bottom > 0 and top / bottom > LOG_LOSS_RATIO:
        return bottom / 1.5, top * 1.5, True
    level = float(np.median(np.concatenate(heads)))
    span = max(top - bottom, MIN_SPAN * abs(level), 1e-12)
    mid = (top + bottom) / 2 if top - bottom < span else None
    if mid is not None:  # a flat curve: centred in a window of MIN_SPAN of its level
        bottom, top = mid - span / 2, mid + span / 2
    pad = 0.1 * span
    return bottom - pad, top + 3 * pad, False


def plot_result(
    result: FinderResult, path: str | Path | None = None, *, ax: Any = None, title: str | None = None
) -> Any:
    """Draw ``result`` on ``ax`` (a new figure when None), save it to ``path`` if given, return the Axes.

    Raw losses are faint dots, smoothed curves solid lines (one per repeat); each rule's suggestion is a
    vertical line, the default rule's interval over the repeats a shaded band, and the LRs past the
    first rung where a repeat stopped because its loss blew up a grey band. On a figure of its own (no
    ``ax``) the suggestion is also a dot on the first repeat's smoothed curve, labelled with its value,
    the legend sits beside the axes, and the title is ``title`` (default: the ramp and the repeats) over
    the :func:`verdict`: the suggestion, or "no suggestion (NOT TRUSTED)" and why. On a given ``ax`` the
    caller composes the figure (``lrkit.auto``'s peak may differ from the suggestion): a given ``title``
    is used as it is, and there is no dot or label.
    """
    from lrkit.plot import hangul_fallback

    if path is not None:  # before drawing: matplotlib names neither the argument nor what it takes
        from lrkit._paths import PLOT_SUFFIXES, check_output_file

        check_output_file(path, "path", PLOT_SUFFIXES)
    if ax is not None and not callable(getattr(ax, "plot", None)):
        raise TypeError(f"ax must be a matplotlib Axes or None (a figure of its own), got {ax!r}")
    with hangul_fallback():  # a title or label in Hangul (lrkit find --title, a task's name)
        return _draw(result, path, ax, title)


def _draw(result: FinderResult, path: str | Path | None, ax: Any, title: str | None) -> Any:
    """:func:`plot_result`'s drawing, its arguments checked."""
    from lrkit.plot import new_figure

    own = ax is None
    if ax is None:
        fig = new_figure(figsize=(9.0, 4.8), layout="constrained")
        ax = fig.add_subplot()
    else:
        fig = ax.figure
    ax.set_xscale("log")
    for k, c in enumerate(result.curves):
        ok = np.isfinite(c.losses)
        ax.plot(
            c.lrs[ok], c.losses[ok], ".", ms=2.5, color="0.6", alpha=0.6, label="raw loss" if k == 0 else None
        )
        ok_s = np.isfinite(c.smoothed)
        ax.plot(
            c.lrs[ok_s],
            c.smoothed[ok_s],
            "-",
            color="C0",
            lw=1.4,
            alpha=1.0 if k == 0 else 0.5,
            label=f"smoothed (EMA {result.smoothing:g})" if k == 0 else None,
        )
    lo, hi = result.interval
    # an untrusted result has no suggestion: the rules' raw values and their interval are drawn faint and
    # marked unused, none in the bold line that reads as "the" suggestion
    used = result.suggestion is not None
    shown = _lr_range(result)
    if hi > lo:
        ax.axvspan(
            lo,
            hi,
            color="C3",
            alpha=0.12 if used else 0.05,
            label=f"{result.rule} interval over {result.repeats} repeats: {lo:.3g} .. {hi:.3g}"
            + ("" if used else " (not used)"),
        )
    for name, value in result.suggestions.items():
        if not np.isfinite(value):
            continue
        color, style = _STYLES.get(name, ("k", "--"))
        lw = 2.0 if name == result.rule and used else 1.1
        ax.axvline(
            value,
            color=color,
            ls=style,
            lw=lw,
            alpha=1.0 if used else 0.45,
            label=f"{RULE_LABELS.get(name, name)}: {value:.3g}"
            + (_off_axis(value, shown) if shown is not None else "")
            + ("" if used else " (not used)"),
        )
    if own and result.suggestion is not None:
        _mark_suggestion(ax, result, result.suggestion)
    if shown is not None:
        ax.set_xlim(*shown)
    limits = _ylim(result)
    if limits is not None:
        bottom, top, log = limits
        if log:
            ax.set_yscale("log")
        ax.set_ylim(bottom, top)
    _shade_diverged(ax, result)
    ref = result.reference_group
    group = f" of param group {ref}" if len(set(result.group_ratios)) > 1 else ""  # groups at other LRs
    ax.set_xlabel(f"learning rate{group} (log scale)")
    ax.set_ylabel("loss")
    if title is not None and not own:
        ax.set_title(title)
    else:
        alike = ", all alike" if result.repeats > 1 and result.distinct_repeats == 1 else ""  # one curve
        head = title or f"LR range test ({result.mode} ramp, {plural(result.repeats, 'repeat')}{alike})"
        ax.set_title(head + "\n" + verdict(result), color="k" if used else "C3")
    ax.grid(True, which="major", alpha=0.3)
    ax.grid(True, which="minor", axis="x", alpha=0.1)
    if own:  # beside the axes: inside, it covers the raw losses or the tail wherever it goes
        ax.legend(fontsize="small", loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0.0)
    else:
        ax.legend(fontsize="small", loc="best")
    if path is not None:
        from lrkit._paths import save_figure

        save_figure(fig, path, dpi=120)
    return ax


def _mark_suggestion(ax: Any, result: FinderResult, lr: float) -> None:
    """A dot on the first repeat's smoothed curve at ``lr`` (interpolated on the log axis), with its value."""
    c = result.curves[0]
    ok = np.isfinite(c.smoothed)
    if not ok.any():
        return
    y = float(np.interp(math.log(lr), np.log(c.lrs[ok]), c.smoothed[ok]))
    ax.scatter([lr], [y], s=55, color="C3", edgecolors="white", linewidths=1.2, zorder=5)
    ax.annotate(
        f"suggested {lr:.3g}",
        xy=(lr, y),
        xytext=(-8, -10),
        textcoords="offset points",
        ha="right",
        va="top",
        color="C3",
        fontweight="bold",
        bbox={"boxstyle": "round,pad=0.2", "fc": "white", "ec": "none", "alpha": 0.8},
        zorder=6,
    )


def _shade_diverged(ax: Any, result: FinderResult) -> None:
    """Grey band from the earliest LR where a repeat stopped because its loss blew up to the right edge.

    A test that stopped at its first rung (a loss not finite before the LR changed anything: "broken")
    drew nothing: the axis then spans the LRs it tried and says so instead."""
    if not any(np.isfinite(c.losses).any() for c in result.curves):
        lrs = np.concatenate([c.lrs for c in result.curves])
        ax.set_xlim(float(lrs.min()) / 3, float(lrs.max()) * 3)
        ax.text(0.5, 0.5, "no finite loss to draw", transform=ax.transAxes, ha="center", va="center")
        return
    stops = [float(c.lrs[c.stopped_at]) for c in result.curves if c.stopped_at]  # not at rung 0
    if not stops:
        return
    left, right = ax.get_xlim()
    first = min(stops)
    right = max(right, first * 1.5)
    n = result.repeats
    which = "" if n == 1 else f" ({len(stops)} of {n} repeats)"
    ax.axvspan(
        first,
        right,
        color="0.5",
        alpha=0.1,
        lw=0,
        label=f"loss blew up: test stopped from {first:.3g}{which}",
    )
    ax.set_xlim(left, right)
