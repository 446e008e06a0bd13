"""What a tuning search tried: one row per trial (``trials.csv``) and the search's figure
(``trials.png``): the metric against the peak LR, by kind of schedule (how sensitive the task is to the
LR, and which kinds reached the best), and the metric by trial number with the best so far (whether the
search settled). Like Optuna's ``plot_slice`` and ``plot_optimization_history``, in one figure, with the
diverged and pruned trials shown for what they are.

A diverged trial's value is the direction's worst (``-inf`` / ``inf``, never the best): it has no metric
cell in the table, and is drawn as a cross on the figure's worst edge; a pruned trial's value is its
metric at the epoch it was stopped (``last_epoch``), drawn hollow.
"""

from __future__ import annotations

import csv
import io
import math
from pathlib import Path
from typing import Any

from .._paths import save_figure, write_output
from ..lab._messages import check_lang, messages

__all__ = ["TRIALS_COLUMNS", "plot_trials", "trial_rows", "write_trials_csv"]

#: the columns of ``trials.csv``: the point searched (``kind``, ``lr``, ``warmup``, ``final``, WSD's
#: ``decay``), the trial's state and value, and the spec it trained
TRIALS_COLUMNS = (
    "trial",
    "state",
    "status",
    "kind",
    "lr",
    "warmup",
    "final",
    "decay",
    "value",
    "last_epoch",
    "diverged_step",
    "spec",
)
#: a marker and a colour per kind, the same in every study's figure (colours alone do not tell kinds
#: apart for every reader)
_MARKERS = {"cosine": "o", "linear": "s", "one_cycle": "^", "wsd": "D"}
_COLORS = {"cosine": "C0", "linear": "C1", "one_cycle": "C4", "wsd": "C2"}


def _trials(study: Any) -> list[Any]:
    return sorted(study.get_trials(deepcopy=False), key=lambda t: t.number)


def trial_rows(study: Any) -> list[dict[str, Any]]:
    """One dict per trial of the Optuna ``study``, keys :data:`TRIALS_COLUMNS`, in trial order: None where
    a trial has no such value (a diverged trial's value, a failed one's point)."""
    rows = []
    for t in _trials(study):
        status = t.user_attrs.get("status")
        value = t.value if t.state.name == "COMPLETE" else None
        if t.state.name == "PRUNED" and t.intermediate_values:
            value = t.intermediate_values[max(t.intermediate_values)]
        if status == "diverged" or (value is not None and not math.isfinite(value)):
            value = None
        rows.append(
            {
                "trial": t.number,
                "state": t.state.name.lower(),
                "status": status,
                "kind": t.params.get("kind"),
                "lr": t.params.get("lr"),
                "warmup": t.params.get("warmup"),
                "final": t.params.get("final"),
                "decay": t.params.get("decay"),
                "value": value,
                "last_epoch": t.last_step,
                "diverged_step": t.user_attrs.get("diverged_step"),
                "spec": t.user_attrs.get("spec"),
            }
        )
    return rows


def write_trials_csv(study: Any, path: str | Path) -> Path:
    """``trials.csv``: :func:`trial_rows` under the header :data:`TRIALS_COLUMNS` (lrkit's mark: a file
    with another first line is not replaced); empty cells for None."""
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(TRIALS_COLUMNS)
    for row in trial_rows(study):
        w.writerow(["" if row[c] is None else row[c] for c in TRIALS_COLUMNS])
    return write_output(path, buf.getvalue().encode("utf-8"), "trials.csv")


def plot_trials(
    result: Any,
    path: str | Path | None = None,
    *,
    lang: str = "en",
) -> Any:
    """The search's figure of a :class:`~lrkit.tune.TuneResult` (its ``study``): left, the metric of
    each finished trial against its peak LR (log axis; a marker and colour per kind; pruned trials
    hollow, diverged ones a cross on the worst edge; the best trial a star; the LR range searched
    shaded); right, the metric by trial number and the best so far. Saved to ``path`` when given (lrkit's
    mark; a file lrkit did not write is not replaced); returns the Figure. ``lang``: ``"en"`` or
    ``"ko"`` (English words where no installed font has Hangul; the report says how to get one)."""
    from lrkit.plot import hangul_fallback, hangul_font, new_figure

    check_lang(lang)
    if result.study is None:
        raise ValueError("plot_trials: the result has no study (a TuneResult from lrkit.tune.tune)")
    w = messages("en" if lang == "ko" and hangul_font() is None else lang)
    rows = trial_rows(result.study)
    higher = result.direction == "maximize"
    metric = w.metric(result.metric_name)  # lrkit's own metric names in the figure's language
    with hangul_fallback():  # Korean words, and a study or task named in Hangul
        fig = new_figure(figsize=(12.0, 4.6), layout="constrained")
        left, right = fig.subplots(1, 2)
        values = [r["value"] for r in rows if r["value"] is not None]
        lo_v, hi_v = (min(values), max(values)) if values else (0.0, 1.0)
        pad = 0.08 * max(hi_v - lo_v, 1e-12 + 0.05 * abs(hi_v))
        worst_edge = lo_v - pad if higher else hi_v + pad
        left.set_xscale("log")
        lr_lo, lr_hi = result.space.lr_range
        left.axvspan(lr_lo, lr_hi, color="0.5", alpha=0.08, lw=0, label=w("trials.searched"))
        kinds = [k for k in _MARKERS if any(r["kind"] == k for r in rows)]
        for kind in kinds:
            color = _COLORS[kind]
            mine = [r for r in rows if r["kind"] == kind and r["lr"] is not None]
            done = [r for r in mine if r["value"] is not None and r["state"] == "complete"]
            cut = [r for r in mine if r["value"] is not None and r["state"] == "pruned"]
            gone = [r for r in mine if r["status"] == "diverged"]
            m = _MARKERS[kind]
            left.scatter([r["lr"] for r in done], [r["value"] for r in done], marker=m, color=color,
                         s=28, label=kind, zorder=3)  # fmt: skip
            left.scatter([r["lr"] for r in cut], [r["value"] for r in cut], marker=m, facecolors="none",
                         edgecolors=color, s=28, zorder=3)  # fmt: skip
            left.scatter([r["lr"] for r in gone], [worst_edge] * len(gone), marker="x", color=color,
                         s=36, zorder=3)  # fmt: skip
        if any(r["state"] == "pruned" and r["value"] is not None for r in rows):
            left.scatter([], [], marker="o", facecolors="none", edgecolors="0.3", label=w("trials.pruned"))
        if any(r["status"] == "diverged" for r in rows):
            left.scatter([], [], marker="x", color="0.3", label=w("trials.diverged"))
        best = next((r for r in rows if r["trial"] == result.best_trial), None)
        if best is not None and best["value"] is not None:
            label = f"trial {best['trial']}: {best['value']:.4g}"
            left.scatter([best["lr"]], [best["value"]], marker="*", s=220, color="gold", edgecolors="k",
                         linewidths=0.8, zorder=4, label=label)  # fmt: skip
        left.set_xlabel(w("trials.lr"))
        left.set_ylabel(metric)
        left.set_title(w("trials.by_lr", metric=metric))
        left.grid(True, alpha=0.25)
        left.legend(fontsize="small", loc="best")

        numbers = [r["trial"] for r in rows if r["value"] is not None and r["state"] == "complete"]
        done_values = [r["value"] for r in rows if r["value"] is not None and r["state"] == "complete"]
        right.scatter(numbers, done_values, s=16, color="C0", label=metric, zorder=3)
        so_far: list[float] = []
        for v in done_values:
            so_far.append(v if not so_far else (max if higher else min)(so_far[-1], v))
        if numbers:
            right.step(numbers, so_far, where="post", color="C3", lw=1.6, label=w("trials.best"))
        gone_numbers = [r["trial"] for r in rows if r["status"] == "diverged"]
        right.scatter(gone_numbers, [worst_edge] * len(gone_numbers), marker="x", color="0.3",
                      label=w("trials.diverged") if gone_numbers else None)  # fmt: skip
        right.set_xlabel(w("trials.trial"))
        right.set_ylabel(metric)
        right.set_title(w("trials.by_trial", metric=metric))
        right.grid(True, alpha=0.25)
        from matplotlib.ticker import MaxNLocator

        right.xaxis.set_major_locator(MaxNLocator(integer=True))
        right.legend(fontsize="small", loc="best")
        if values:
            for ax in (left, right):
                ax.set_ylim(min(lo_v, worst_edge) - pad, max(hi_v, worst_edge) + pad)
        fig.suptitle(w("trials.title", n=len(rows), study=result.study_name, task=result.task))
        if path is not None:
            save_figure(fig, path, dpi=110, flag="trials.png")
    return fig
