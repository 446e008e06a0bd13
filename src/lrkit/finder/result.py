"""The outcome of a range test: curves, every rule's suggestion, the interval and a trust verdict.

Only numpy is imported here; :meth:`FinderResult.plot` imports matplotlib when called.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from numpy.typing import NDArray

from lrkit.finder import rules as _rules

if TYPE_CHECKING:
    from lrkit.schedules.base import Schedule

__all__ = ["Curve", "FinderResult"]

#: A curve is "flat" when its smoothed loss falls by less than this fraction of its starting level.
FLAT_DROP = 0.01
#: A curve is "noisy" when its drop is less than this many times the batch-to-batch noise of the loss.
NOISE_RATIO = 3.0
#: Repeats "disagree" when their suggestions span more than this many decades.
MAX_SPREAD_DECADES = 1.0


@dataclass(frozen=True, eq=False)
class Curve:
    """One ramp: the LR of each rung, the raw and smoothed losses, and the rung where it stopped early.

    ``stopped_at`` is the index of the rung that ended the test (divergence or a non-finite loss), or
    ``None`` when the ramp reached ``end_lr``.
    """

    lrs: NDArray[np.float64]
    losses: NDArray[np.float64]
    smoothed: NDArray[np.float64]
    stopped_at: int | None = None

    def __post_init__(self) -> None:
        if not (self.lrs.shape == self.losses.shape == self.smoothed.shape) or self.lrs.ndim != 1:
            raise ValueError(
                "lrs, losses and smoothed must be 1-D arrays of one length, got shapes "
                f"{self.lrs.shape}, {self.losses.shape}, {self.smoothed.shape}"
            )

    @property
    def diverged(self) -> bool:
        """Whether the test ended before ``end_lr`` because the loss blew up."""
        return self.stopped_at is not None


def _log_median(values: Sequence[float]) -> float:
    """Median on the log axis (geometric mean of the two middle values for an even count), ignoring
    NaN (a repeat without a usable curve); NaN when there is no value."""
    v = np.sort(np.asarray(values, dtype=np.float64))
    v = v[np.isfinite(v)]
    n = v.size
    if n == 0:
        return math.nan
    return float(v[n // 2]) if n % 2 else math.sqrt(float(v[n // 2 - 1]) * float(v[n // 2]))


def _curve_problems(curve: Curve) -> list[str]:
    """Reasons not to trust one curve (empty when it looks fine)."""
    try:
        _, y = _rules.finite_prefix(curve.lrs, curve.smoothed)
    except ValueError:
        return ["fewer than 2 finite losses were recorded; lower start_lr or check the loss"]
    raw = curve.losses[: y.size]
    head = max(3, y.size // 10)
    start = float(np.median(raw[:head]))
    i_min = int(np.argmin(y))
    drop = start - float(y[i_min])
    problems: list[str] = []
    if drop <= FLAT_DROP * abs(start):
        problems.append(
            f"flat: the smoothed loss fell by {drop:.3g} from {start:.3g}, less than "
            f"{FLAT_DROP:.0%} of its starting level; widen the LR range, use more steps or check that the "
            "model learns"
        )
        return problems
    if i_min < 2:
        problems.append(f"the loss rose from the first rung; lower start_lr (now {curve.lrs[0]:.3g})")
    # Noise of the raw loss: robust std of first differences (MAD / 0.6745 / sqrt(2)) before the minimum.
    pre = raw[: max(i_min + 1, 3)]
    noise = float(np.median(np.abs(np.diff(pre))) / 0.6745 / math.sqrt(2.0))
    if NOISE_RATIO * noise > drop:
        problems.append(
            f"noisy: the loss fell by {drop:.3g}, less than {NOISE_RATIO:g} x its batch-to-batch noise "
            f"({noise:.3g}); use more batches per step (batches_per_step), a validation set or more repeats"
        )
    if curve.stopped_at is None and i_min >= y.size - 2:
        problems.append(f"the loss was still falling at end_lr={curve.lrs[-1]:.3g}; raise end_lr")
    return problems


@dataclass(frozen=True, eq=False)
class FinderResult:
    """The range test's curves and suggestions, usable without plotting.

    ``lrs``, ``losses`` and ``smoothed`` are the first repeat's curve; ``curves`` has all of them.
    ``per_repeat[name]`` is rule ``name`` applied to each repeat's smoothed curve and
    ``suggestions[name]`` their median (on the log axis). ``suggestion`` is ``suggestions[rule]``;
    ``interval`` is the (lowest, highest) of that rule over the repeats (one point for one repeat).
    A repeat whose curve has fewer than two finite losses suggests NaN and is left out of both.
    ``trusted`` is False when a curve is flat or too noisy, or the repeats disagree by more than a
    decade; ``reason`` then says why. ``group_ratios`` are the LRs of the optimizer's param groups
    relative to the first group (the suggestion is for the first group).
    """

    curves: tuple[Curve, ...]
    per_repeat: Mapping[str, tuple[float, ...]]
    rule: str = "lrkit"
    mode: str = "exp"
    smoothing: float = 0.9
    group_ratios: tuple[float, ...] = (1.0,)
    problems: tuple[str, ...] = field(default=())

    @classmethod
    def from_curves(
        cls,
        curves: Sequence[Curve],
        *,
        mode: str = "exp",
        smoothing: float = 0.9,
        rule: str = "lrkit",
        group_ratios: Sequence[float] = (1.0,),
    ) -> FinderResult:
        """Apply every rule in :data:`lrkit.finder.rules.RULES` to each curve and judge the result."""
        if not curves:
            raise ValueError("curves must hold at least one Curve, got an empty sequence")
        if rule not in _rules.RULES:
            raise ValueError(f"rule must be one of {sorted(_rules.RULES)}, got {rule!r}")
        per: dict[str, tuple[float, ...]] = {}
        problems: list[str] = []
        usable = []
        for k, c in enumerate(curves):
            issues = _curve_problems(c)
            tag = f"repeat {k}: " if len(curves) > 1 else ""
            problems.extend(tag + p for p in issues)
            try:
                _rules.finite_prefix(c.lrs, c.smoothed)
                usable.append(True)
            except ValueError:
                usable.append(False)
        for name, fn in _rules.RULES.items():
            per[name] = tuple(
                fn(c.lrs, c.smoothed) if ok else math.nan for c, ok in zip(curves, usable, strict=True)
            )
        chosen = [v for v in per[rule] if math.isfinite(v)]
        if len(chosen) > 1:
            spread = math.log10(max(chosen) / min(chosen))
            if spread > MAX_SPREAD_DECADES:
                problems.append(
                    f"the repeats disagree: the {rule!r} suggestions span {spread:.2g} decades "
                    f"({min(chosen):.3g} to {max(chosen):.3g})"
                )
        return cls(
            curves=tuple(curves),
            per_repeat=per,
            rule=rule,
            mode=mode,
            smoothing=smoothing,
            group_ratios=tuple(float(r) for r in group_ratios),
            problems=tuple(problems),
        )

    # --- the first repeat's curve -------------------------------------------------------------
    @property
    def lrs(self) -> NDArray[np.float64]:
        return self.curves[0].lrs

    @property
    def losses(self) -> NDArray[np.float64]:
        return self.curves[0].losses

    @property
    def smoothed(self) -> NDArray[np.float64]:
        return self.curves[0].smoothed

    @property
    def repeats(self) -> int:
        return len(self.curves)

    # --- suggestions ------------------------------------------------------------------------------
    @property
    def suggestions(self) -> dict[str, float]:
        """Each rule's median suggestion over the repeats."""
        return {name: _log_median(v) for name, v in self.per_repeat.items()}

    @property
    def suggestion(self) -> float:
        """The default rule's median suggestion: the LR to train at."""
        return _log_median(self.per_repeat[self.rule])

    @property
    def interval(self) -> tuple[float, float]:
        """(lowest, highest) suggestion of the default rule over the repeats (NaN if none)."""
        v = [x for x in self.per_repeat[self.rule] if math.isfinite(x)]
        return (min(v), max(v)) if v else (math.nan, math.nan)

    @property
    def trusted(self) -> bool:
        return not self.problems

    @property
    def reason(self) -> str:
        """Why the result is not trusted ("" when it is)."""
        return "; ".join(self.problems)

    @property
    def peak_lr(self) -> float:
        """Peak LR for warmup + cosine: the suggestion itself.

        Measured in ``bench/finder.py --schedules``: a peak 3x the suggestion wrecked the SGD task (0.4 of
        the best accuracy) while gaining at most 1% elsewhere, so the peak is not scaled up.
        """
        return self.suggestion

    @property
    def max_lr(self) -> float:
        """``max_lr`` for one-cycle: the suggestion itself (3x failed on SGD, as for :attr:`peak_lr`)."""
        return self.suggestion

    def group_lrs(self, lr: float | None = None) -> list[float]:
        """The LR of each param group for first-group LR ``lr`` (default: the suggestion)."""
        base = self.suggestion if lr is None else float(lr)
        return [base * r for r in self.group_ratios]

    # --- output -----------------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        """Plain-Python summary (JSON-ready): suggestions, interval, verdict and the curves."""
        return {
            "suggestion": self.suggestion,
            "rule": self.rule,
            "interval": list(self.interval),
            "suggestions": self.suggestions,
            "per_repeat": {k: list(v) for k, v in self.per_repeat.items()},
            "peak_lr": self.peak_lr,
            "max_lr": self.max_lr,
            "trusted": self.trusted,
            "reason": self.reason,
            "mode": self.mode,
            "smoothing": self.smoothing,
            "group_ratios": list(self.group_ratios),
            "curves": [
                {
                    "lrs": c.lrs.tolist(),
                    "losses": c.losses.tolist(),
                    "smoothed": c.smoothed.tolist(),
                    "stopped_at": c.stopped_at,
                }
                for c in self.curves
            ],
        }

    def __str__(self) -> str:
        lo, hi = self.interval
        lines = [
            f"suggested LR {self.suggestion:.3g} (rule {self.rule!r}, {self.repeats} repeat"
            f"{'s' if self.repeats != 1 else ''}, interval {lo:.3g} .. {hi:.3g})",
            "  " + ", ".join(f"{k}={v:.3g}" for k, v in self.suggestions.items()),
            f"  warmup+cosine peak_lr={self.peak_lr:.3g}, one-cycle max_lr={self.max_lr:.3g}",
        ]
        lines.append("  trusted" if self.trusted else "  NOT TRUSTED: " + self.reason)
        return "\n".join(lines)

    def plot(self, path: str | Path | None = None, *, ax: Any = None, title: str | None = None) -> Any:
        """Draw the curves on a log-LR axis with the suggestions and the interval; save to ``path``.

        Returns the matplotlib ``Axes``. Imports matplotlib only when called.
        """
        from lrkit.finder.plot import plot_result

        return plot_result(self, path, ax=ax, title=title)

    def schedule(self, kind: str = "cosine", **kwargs: Any) -> Schedule:
        """A schedule built from this result; see :func:`lrkit.finder.schedule_from_result`."""
        from lrkit.finder.schedule import schedule_from_result

        return schedule_from_result(self, kind, **kwargs)
