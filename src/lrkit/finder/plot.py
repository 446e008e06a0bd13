"""The range-test figure: loss against LR on a log axis, with every suggestion and the interval.

matplotlib is imported inside the function, and only through ``matplotlib.figure.Figure`` (no pyplot),
so it works under any backend, headless included.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from lrkit._text import plural

if TYPE_CHECKING:
    from lrkit.finder.result import FinderResult

__all__ = ["plot_result"]

_STYLES = {"lrkit": ("C3", "-"), "steepest": ("C2", "--"), "minimum": ("C1", "-."), "valley": ("C4", ":")}
_LABELS = {"minimum": "minimum/10"}


def plot_result(
    result: FinderResult, path: str | Path | None = None, *, ax: Any = None, title: str | None = None
) -> Any:
    """Draw ``result`` on ``ax`` (a new figure when None), save it to ``path`` if given, return the Axes.

    Raw losses are faint dots, smoothed curves solid lines (one per repeat); each rule's suggestion is a
    vertical line, the default rule's interval over the repeats a shaded band.
    """
    from matplotlib.figure import Figure

    if ax is None:
        fig = Figure(figsize=(7.5, 4.5), layout="constrained")
        ax = fig.add_subplot()
    else:
        fig = ax.figure
    finite_smooth = []
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
        finite_smooth.append(c.smoothed[ok_s])
    lo, hi = result.interval
    if hi > lo:
        ax.axvspan(
            lo, hi, color="C3", alpha=0.12, label=f"{result.rule} interval over {result.repeats} repeats"
        )
    # an untrusted result has no suggestion: the rules' raw values are drawn faint and marked unused, none
    # in the bold line that reads as "the" suggestion
    used = result.suggestion is not None
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
            label=f"{_LABELS.get(name, name)}: {value:.3g}" + ("" if used else " (not used)"),
        )
    ax.set_xscale("log")
    ax.set_xlabel("learning rate (log scale)")
    ax.set_ylabel("loss")
    ys = np.concatenate(finite_smooth) if finite_smooth else np.array([])
    if ys.size:
        top = float(ys[: max(3, ys.size // 10)].max())
        bottom = float(ys.min())
        pad = 0.1 * max(top - bottom, 1e-12)
        ax.set_ylim(bottom - pad, top + 3 * pad)
    verdict = "" if result.trusted else " (NOT TRUSTED)"
    if not result.trusted and result.reason:  # why, in its first clause, on a second line
        head = result.reason.split(";")[0]
        verdict += "\n" + (head if len(head) <= 90 else head[:87] + "...")
    ax.set_title(
        title
        or f"LR range test ({result.mode} ramp, {plural(result.repeats, 'repeat')}): "
        + (f"suggested {result.suggestion:.3g}" if result.suggestion is not None else "no suggestion")
        + verdict
    )
    ax.grid(True, which="both", alpha=0.25)
    ax.legend(fontsize="small", loc="best")
    if path is not None:
        from lrkit._paths import save_figure

        save_figure(fig, path, dpi=120)
    return ax
