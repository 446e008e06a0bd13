"""The lab's report: a figure (LR, training loss and validation metric per strategy) and a table."""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .runner import LabResult
from .store import RunRecord

__all__ = ["Row", "plot_lab", "summary_rows", "table"]


def _ema(x: list[float], beta: float = 0.9) -> np.ndarray:
    """Debiased exponential moving average (as the LR finder smooths), NaN-safe."""
    out = np.empty(len(x))
    avg = 0.0
    for i, v in enumerate(x):
        avg = beta * avg + (1 - beta) * v
        out[i] = avg / (1 - beta ** (i + 1))
    return out


@dataclass(frozen=True)
class Row:
    """One strategy's summary over its seeds."""

    strategy: str
    optimizer: str
    spec: str
    peak_lr: float
    final_mean: float
    final_std: float
    best: float
    diverged: int
    runs: int
    seconds: float


def summary_rows(result: LabResult) -> list[Row]:
    """One row per strategy: optimizer, peak LR, final/best metric over seeds, divergences, time."""
    rows = []
    for label in result.labels():
        runs = result.by_label(label)
        finals = [r.final_metric for r in runs if r.final_metric is not None]
        bests = [r.best_metric for r in runs if r.best_metric is not None]
        lrs = [max(r.lrs) for r in runs if r.lrs]
        rows.append(
            Row(
                strategy=label,
                optimizer=runs[0].optimizer,
                spec=runs[0].spec,
                peak_lr=max(lrs) if lrs else math.nan,
                final_mean=statistics.fmean(finals) if finals else math.nan,
                final_std=statistics.pstdev(finals) if len(finals) > 1 else 0.0,
                best=max(bests) if bests else math.nan,
                diverged=sum(r.status == "diverged" for r in runs),
                runs=len(runs),
                seconds=statistics.fmean(r.seconds for r in runs),
            )
        )
    return rows


def table(result: LabResult, metric_name: str = "metric") -> str:
    """A Markdown table of :func:`summary_rows`, best final metric first."""
    rows = sorted(summary_rows(result), key=lambda r: math.inf if math.isnan(r.final_mean) else -r.final_mean)
    lines = [
        f"| strategy | optimizer | peak LR | final {metric_name} (mean ± sd) | best {metric_name} "
        "| diverged | s/run |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r.strategy} | {r.optimizer} | {r.peak_lr:.3g} | {r.final_mean:.4f} ± {r.final_std:.4f} | "
            f"{r.best:.4f} | {r.diverged}/{r.runs} | {r.seconds:.1f} |"
        )
    return "\n".join(lines)


def plot_lab(
    result: LabResult, out: str | Path, *, title: str | None = None, metric_name: str = "metric"
) -> Path:
    """Three panels per strategy (mean over seeds): LR per step, smoothed training loss per step (both
    on log scales), validation metric per epoch. A diverged run is marked with an x where it blew up."""
    from ..plot import _save, pyplot

    plt = pyplot()
    fig, (ax_lr, ax_loss, ax_m) = plt.subplots(1, 3, figsize=(19, 5.6), constrained_layout=True)
    colors = plt.get_cmap("tab10" if len(result.labels()) <= 10 else "tab20")
    for i, label in enumerate(result.labels()):
        c = colors(i % colors.N)
        runs: list[RunRecord] = result.by_label(label)
        r0 = runs[0]
        ax_lr.plot(np.arange(len(r0.lrs)), r0.lrs, color=c, lw=1.5, label=label)
        for j, r in enumerate(runs):
            losses = np.asarray(r.losses, dtype=float)
            ok = np.isfinite(losses)
            sm = _ema(list(np.where(ok, losses, np.nan)[ok]))
            ax_loss.plot(
                np.flatnonzero(ok),
                sm,
                color=c,
                lw=1.2,
                alpha=0.9 if j == 0 else 0.4,
                label=label if j == 0 else None,
            )
            if r.status == "diverged":
                last = int(np.flatnonzero(ok)[-1]) if ok.any() else 0
                ax_loss.plot([last], [sm[-1] if len(sm) else 1.0], "x", color=c, ms=12, mew=2.5)
            if r.epoch_metrics:
                ax_m.plot(
                    np.arange(1, len(r.epoch_metrics) + 1),
                    r.epoch_metrics,
                    "o-",
                    color=c,
                    ms=3,
                    lw=1.2,
                    alpha=0.9 if j == 0 else 0.4,
                    label=label if j == 0 else None,
                )
            elif r.status == "diverged":
                ax_m.plot(
                    [1], [0.0], "x", color=c, ms=12, mew=2.5, label=f"{label} (diverged)" if j == 0 else None
                )
    ax_lr.set(xlabel="optimizer step", ylabel="learning rate", yscale="log", title="learning rate")
    ax_loss.set(
        xlabel="optimizer step",
        ylabel="training loss (smoothed)",
        yscale="log",
        title="training loss (x: diverged, stopped)",
    )
    ax_m.set(xlabel="epoch", ylabel=f"validation {metric_name}", title=f"validation {metric_name}")
    for ax in (ax_lr, ax_loss, ax_m):
        ax.grid(True, alpha=0.3, which="both")
    ax_m.legend(fontsize=8, loc="lower right")
    fig.suptitle(title or f"lrkit lab: {result.task}, {len(result.labels())} strategies", fontsize=14)
    p = Path(out)
    _save(fig, p)
    plt.close(fig)
    return p
