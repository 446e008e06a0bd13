"""The figure of one :func:`lrkit.auto` run: what the LR search saw, and the LR the run follows.

Left, the search's loss-against-LR curve (:func:`lrkit.finder.plot.plot_result`) with the peak LR and,
after an in-run ramp, the last rung kept as training. Right, the reference param group's LR (group 0,
or the first with LR > 0 when it is frozen at 0) at every optimizer step
(:meth:`lrkit.auto.AutoResult.lrs`: the kept ramp, shaded, then the schedule) and, when given, the
training loss on a second axis (raw as dots, an EMA as a line). matplotlib is imported here, for a
``Figure`` on its own Agg canvas only (:func:`lrkit.plot.new_figure`, no pyplot), so it works headless.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from lrkit._paths import save_figure
from lrkit.finder.core import ema_debiased

if TYPE_CHECKING:
    from lrkit.auto import AutoResult

__all__ = ["by_step", "plot_auto"]

#: the EMA of the training loss drawn on the right panel, on a run long enough (see smoothing_for)
LOSS_SMOOTHING = 0.98
#: :attr:`AutoResult.search` in words, for the titles (keys: :data:`lrkit.auto.SEARCH_OUTCOMES`)
SEARCH_WORDS = {
    "in_run": "in-run ramp, kept as warmup",
    "in_run_restored": "in-run ramp, undone",
    "in_run_then_separate": "separate range test after an in-run ramp without signal",
    "separate": "separate range test",
}


def smoothing_for(steps: int) -> float:
    """The EMA factor for a loss curve of ``steps`` points: :data:`LOSS_SMOOTHING`, but at most
    ``1 - 10 / steps``, so that its memory (about ``1 / (1 - beta)`` steps) is a tenth of the curve or
    less (at 0.98, 50 steps, it lagged half a short run behind the raw loss)."""
    return min(LOSS_SMOOTHING, max(0.0, 1.0 - 10.0 / max(steps, 1)))


def by_step(values: Sequence[float], events: Sequence[Any]) -> list[float]:
    """``values``, one per optimizer step applied in order (replays after a guard rollback too: what
    ``losses.append(loss.item())`` after each step gives), as one per step of the run: at a rollback
    (each of the guard's ``events``, a :class:`lrkit.control.DivergenceEvent`, went back from its
    ``step`` to its ``snapshot_step``) the steps from the snapshot on are replayed, and the replay's
    losses take their place."""
    rollbacks = [e for e in events if e.action == "rollback"]
    out: list[float] = []
    k = 0
    for v in [*values, None]:  # None: the end, after which a last rollback may have come
        while k < len(rollbacks) and rollbacks[k].step == len(out):  # rolled back before this step
            del out[rollbacks[k].snapshot_step :]
            k += 1
        if v is not None:
            out.append(v)
    return out


def _check_losses(losses: Sequence[float] | None, remaining: int, events: Sequence[Any] = ()) -> np.ndarray:
    if losses is None:
        return np.empty(0)
    expected = "losses must be a sequence of numbers (one per optimizer step after the search)"
    if isinstance(losses, (str, bytes)) or not hasattr(losses, "__len__"):
        raise TypeError(f"{expected}, got {losses!r}")
    try:
        values = np.asarray([float(v) for v in losses], dtype=float)
    except (TypeError, ValueError):
        raise TypeError(f"{expected}, got {list(losses)[:5]!r}...") from None
    given = values.size
    values = np.asarray(by_step(list(values), events), dtype=float)
    if values.size > remaining:
        replays = f" ({given} given, the replays after the guard's rollbacks taken out)" if events else ""
        raise ValueError(
            f"losses has {values.size} values{replays}, more than the run's {remaining} steps after the "
            "search (remaining_steps): give one loss per optimizer step after lrkit.auto returned"
        )
    return values


def plot_auto(
    result: AutoResult,
    path: str | Path | None = None,
    *,
    losses: Sequence[float] | None = None,
    title: str | None = None,
) -> Any:
    """Draw ``result`` (two panels, see the module docstring), save to ``path`` if given, return the Figure.

    ``losses``: the training loss of each optimizer step applied after the search, in order, the
    replays after a guard rollback included (:func:`by_step` puts each replay in the place of the steps
    it replays, from ``result.guard``'s events); at most ``result.remaining_steps`` steps, non-finite
    losses left out. The kept ramp's losses come from its curve.
    """
    from lrkit.plot import hangul_fallback

    if path is not None:  # before drawing: matplotlib names neither the argument nor what it takes
        from lrkit._paths import PLOT_SUFFIXES, check_output_file

        check_output_file(path, "path", PLOT_SUFFIXES)
    after = _check_losses(losses, result.remaining_steps, result.guard.events if result.guard else ())
    with hangul_fallback():  # a title in Hangul
        return _draw(result, path, after, title)


def _draw(result: AutoResult, path: str | Path | None, after: np.ndarray, title: str | None) -> Any:
    """:func:`plot_auto`'s drawing, its arguments checked."""
    from lrkit.plot import new_figure

    fig = new_figure(figsize=(13.0, 4.6), layout="constrained")
    left, right = fig.subplots(1, 2)

    found = result.finder
    search = SEARCH_WORDS.get(result.search, result.search)
    found.plot(ax=left, title=f"the LR search ({search}): loss against LR")
    peak = result.peak_lr
    left.axvline(peak, color="k", ls="--", lw=1.6, label=f"peak LR of the schedule: {peak:.3g}")
    kept = result.trained_steps
    if kept:
        last = float(found.curves[0].lrs[kept - 1])
        left.axvline(last, color="C5", ls=":", lw=1.6, label=f"ramp kept up to {last:.3g}")
    lo, hi = left.get_xlim()  # the LRs the search tried: the peak may lie past them (a peak factor > 1)
    if peak > 0 and not lo <= peak <= hi:
        left.set_xlim(min(lo, peak / 1.3), max(hi, peak * 1.3))
    left.legend(fontsize="small", loc="best")

    lrs = result.lrs()
    steps = np.arange(lrs.size)
    if kept:
        right.axvspan(0, kept, color="C5", alpha=0.12, label=f"in-run ramp kept as warmup ({kept} steps)")
    right.plot(steps, lrs, color="C3", lw=1.8, label=f"learning rate (group {found.reference_group})")
    right.set_xlabel("optimizer step")
    right.set_ylabel("learning rate")
    right.set_xlim(0, max(lrs.size - 1, 1))
    right.grid(True, alpha=0.25)
    handles, labels = right.get_legend_handles_labels()
    if kept or after.size:
        ramp_losses = np.asarray(found.curves[0].losses[:kept], dtype=float)
        loss = np.concatenate([ramp_losses, after])
        ok = np.isfinite(loss)
        if ok.any():
            twin = right.twinx()
            x, y = steps[: loss.size][ok], loss[ok]
            twin.plot(x, y, ".", ms=2.0, color="0.55", alpha=0.5, label="training loss")
            beta = smoothing_for(loss.size)
            smooth = ema_debiased(y, beta)
            twin.plot(x, smooth, "-", color="C0", lw=1.4, label=f"training loss (EMA {beta:.3g})")
            lo, hi = float(smooth.min()), float(smooth.max())
            pad = 0.1 * max(hi - lo, 1e-12)
            if math.isfinite(lo) and math.isfinite(hi):
                twin.set_ylim(lo - pad, hi + pad)
            twin.set_ylabel("training loss")
            more_h, more_l = twin.get_legend_handles_labels()
            handles, labels = handles + more_h, labels + more_l
    # below the axes: "best" weighs only the LR panel's own artists, and put the legend on the loss dots
    right.legend(
        handles,
        labels,
        fontsize="small",
        loc="upper center",
        bbox_to_anchor=(0.5, -0.14),
        ncols=2,
        frameon=False,
    )
    right.set_title(f"the run: {result.kind}, {result.total_steps} steps")
    fig.suptitle(
        title
        or f"lrkit.auto: peak LR {result.peak_lr:.3g}, {result.kind} schedule, LR from the {search} "
        f"(compute {result.compute:.2f}x one run)"
    )
    if path is not None:
        save_figure(fig, path, dpi=120)
    return fig
