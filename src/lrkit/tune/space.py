"""The search space of :func:`lrkit.tune.tune`: peak LR, warmup fraction, final fraction and the kind of
schedule, and the lrkit spec each point stands for. Imports no torch and no Optuna.

A point ``(kind, lr, warmup, final[, decay])`` is the schedule:

=============  =========================================================================================
``cosine``     ``warmup(steps=W) >> cosine(lr=L, min_lr=L*F)``
``linear``     ``warmup(steps=W) >> linear(lr=L, end_lr=L*F)``
``one_cycle``  ``one_cycle(max_lr=L, pct_start=P, final_div_factor=1/(25*F))`` (ends at ``L*F``)
``wsd``        ``wsd(lr=L, warmup=W, decay=D, min_lr=L*F)`` (1-sqrt cool-down over the last ``D``)
=============  =========================================================================================

with ``W = warmup``, ``D = decay`` and ``P = min(max(W, 2%), 50%)`` as fractions of the run. Given the run's
length, a warmup shorter than one step is left out, and ``P`` and ``D`` are at least 2 steps (``P`` at most
half the run), so that every phase has steps on a run as short as 3 steps.

The peak LR is searched log-uniformly. From the LR finder (suggestion ``s``, interval ``[a, b]`` over its
repeats) the range is centred on ``s`` on the log axis and covers the interval widened by ``widen``
(default 4) on both sides: ``[s / r, s * r]`` with ``r = widen * max(s / a, b / s)``. Without the finder
it is :data:`DEFAULT_LR_RANGE`.

>>> SearchSpace.from_finder(0.1, (0.05, 0.1)).lr_range
(0.0125, 0.8)
>>> build_spec("cosine", 0.1, 0.05, 0.01)
'warmup(steps=5%) >> cosine(lr=0.1, min_lr=0.001)'
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from .._checks import as_real, check_int
from ..spec import parse, to_string

__all__ = [
    "DEFAULT_LR_RANGE",
    "FINAL_RANGE",
    "KINDS",
    "WSD_DECAY_RANGE",
    "SearchSpace",
    "build_spec",
    "check_kinds",
]

#: the kinds of schedule searched over
KINDS: tuple[str, ...] = ("cosine", "linear", "one_cycle", "wsd")
#: the peak-LR range without the finder (log-uniform)
DEFAULT_LR_RANGE: tuple[float, float] = (1e-4, 1.0)
#: final LR / peak LR (log-uniform)
FINAL_RANGE: tuple[float, float] = (1e-4, 0.5)
#: the warmup fraction is uniform on [0, warmup_max]
WARMUP_MAX = 0.3
#: the fraction of the run a WSD schedule cools down over (uniform)
WSD_DECAY_RANGE: tuple[float, float] = (0.1, 0.5)
#: one-cycle starts at max_lr / ONE_CYCLE_DIV (torch's default div_factor)
ONE_CYCLE_DIV = 25.0


def check_kinds(kinds: Any, name: str = "kinds") -> tuple[str, ...]:
    """``kinds`` (or a comma-separated string of them) as a tuple of distinct names from :data:`KINDS`;
    a ValueError naming ``name`` otherwise."""
    given = kinds  # shown as given (a comma-separated string, too)
    if isinstance(kinds, str):
        kinds = tuple(k.strip() for k in kinds.split(",") if k.strip())
    try:
        out = tuple(kinds)
    except TypeError:
        raise TypeError(f"{name} must be a sequence of names from {KINDS}, got {kinds!r}") from None
    bad = [k for k in out if k not in KINDS]
    if not out or bad or len(set(out)) != len(out):
        raise ValueError(
            f"{name} must be distinct names from {', '.join(KINDS)} (at least one), got {given!r}"
        )
    return out


def _positive_pair(name: str, pair: Any) -> tuple[float, float]:
    try:
        lo, hi = (as_real(v) for v in pair)
    except (TypeError, ValueError):
        lo = hi = None
    if lo is None or hi is None:  # a str or a bool is no number; numpy's numbers are
        raise ValueError(f"{name} must be two numbers (low, high), got {pair!r}")
    if not (math.isfinite(lo) and math.isfinite(hi) and 0 < lo < hi):
        raise ValueError(f"{name} must satisfy 0 < low < high (finite), got {pair!r}")
    return lo, hi


def _g(x: float, digits: int = 4) -> str:
    return f"{x:.{digits}g}"


def _pct(fraction: float) -> str:
    return f"{_g(100 * fraction, 3)}%"


def build_spec(
    kind: str,
    lr: float,
    warmup: float,
    final: float,
    decay: float | None = None,
    total_steps: int | None = None,
) -> str:
    """The canonical lrkit spec of one point of the search space (see the module's table).

    ``lr`` is rounded to 4 significant digits, fractions to 3. ``total_steps`` (when given) drops a
    warmup shorter than one step (once rounded) and raises one-cycle's rise and WSD's cool-down to
    2 steps.
    """
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {', '.join(KINDS)}, got {kind!r}")
    lr_, warmup_, final_ = as_real(lr), as_real(warmup), as_real(final)  # numpy's numbers too
    if not (lr_ is not None and math.isfinite(lr_) and lr_ > 0):
        raise ValueError(f"lr must be a finite number > 0, got {lr!r}")
    if not (warmup_ is not None and 0 <= warmup_ < 1):
        raise ValueError(f"warmup must be a fraction in [0, 1), got {warmup!r}")
    if not (final_ is not None and 0 < final_ <= 1):
        raise ValueError(f"final must be a fraction in (0, 1], got {final!r}")
    lr, warmup, final = lr_, warmup_, final_
    if total_steps is not None:
        total_steps = check_int(total_steps, "total_steps", 3, or_none=True)
    two_steps = 0.0 if total_steps is None else 2.0 / total_steps
    peak = _g(lr)
    floor = _g(float(peak) * final)
    shown = float(_g(100 * warmup, 3)) / 100  # the warmup fraction as the spec writes it
    short = shown <= 0 or (total_steps is not None and shown * total_steps < 1)
    if kind in ("cosine", "linear"):
        end = "min_lr" if kind == "cosine" else "end_lr"
        body = f"{kind}(lr={peak}, {end}={floor})"
        text = body if short else f"warmup(steps={_pct(warmup)}) >> {body}"
    elif kind == "one_cycle":
        pct_start = min(max(warmup, 0.02, two_steps), 0.5)
        text = (
            f"one_cycle(max_lr={peak}, pct_start={_g(pct_start, 3)}, "
            f"final_div_factor={_g(1.0 / (ONE_CYCLE_DIV * final))})"
        )
    else:
        if decay is None or not (0 < decay < 1):
            raise ValueError(f"decay must be a fraction in (0, 1) for kind 'wsd', got {decay!r}")
        if warmup + decay >= 1:
            raise ValueError(f"warmup + decay must be < 1 for kind 'wsd', got {warmup} + {decay}")
        decay = max(decay, two_steps)
        if (0 if short else warmup) + decay >= 1:
            raise ValueError(
                f"a run of {total_steps} steps is too short for a warmup of {warmup} and a cool-down "
                "of 2 steps"
            )
        warm = "" if short else f"warmup={_pct(warmup)}, "
        text = f"wsd(lr={peak}, {warm}decay={_pct(decay)}, min_lr={floor})"
    return to_string(parse(text))


@dataclass(frozen=True)
class SearchSpace:
    """Where :func:`lrkit.tune.tune` searches: the peak LR in ``lr_range`` (log-uniform), the kind, the
    warmup fraction in ``[0, warmup_max]``, the final fraction in ``final_range`` (log-uniform) and, for
    WSD, the cool-down fraction in ``decay_range``. ``center`` is the finder's suggestion (None without
    the finder). Stored with the study, so every worker searches the same space."""

    lr_range: tuple[float, float] = DEFAULT_LR_RANGE
    kinds: tuple[str, ...] = KINDS
    warmup_max: float = WARMUP_MAX
    final_range: tuple[float, float] = FINAL_RANGE
    decay_range: tuple[float, float] = WSD_DECAY_RANGE
    center: float | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "lr_range", _positive_pair("lr_range", self.lr_range))
        object.__setattr__(self, "kinds", check_kinds(self.kinds))
        object.__setattr__(self, "final_range", _positive_pair("final_range", self.final_range))
        object.__setattr__(self, "decay_range", _positive_pair("decay_range", self.decay_range))
        warmup_max = as_real(self.warmup_max)
        if not (warmup_max is not None and 0 <= warmup_max < 0.5):
            raise ValueError(f"warmup_max must be a fraction in [0, 0.5), got {self.warmup_max!r}")
        object.__setattr__(self, "warmup_max", warmup_max)
        if self.final_range[1] > 1:
            raise ValueError(f"final_range must lie in (0, 1], got {self.final_range!r}")
        if self.decay_range[1] + self.warmup_max >= 1:
            raise ValueError(
                f"decay_range's high + warmup_max must be < 1, got {self.decay_range[1]} + {self.warmup_max}"
            )
        center = None if self.center is None else as_real(self.center)
        if self.center is not None and not (center is not None and math.isfinite(center) and center > 0):
            raise ValueError(f"center must be a finite number > 0 or None, got {self.center!r}")
        object.__setattr__(self, "center", center)

    @classmethod
    def from_finder(
        cls,
        suggestion: float,
        interval: tuple[float, float] | None = None,
        *,
        widen: float = 4.0,
        kinds: Any = KINDS,
    ) -> SearchSpace:
        """Centred on ``suggestion`` (log axis), covering ``interval`` widened ``widen`` times each side:
        ``[s / r, s * r]`` with ``r = widen * max(s / low, high / s, 1)``."""
        s, w = as_real(suggestion), as_real(widen)
        if not (s is not None and math.isfinite(s) and s > 0):
            raise ValueError(f"suggestion must be a finite number > 0, got {suggestion!r}")
        if not (w is not None and math.isfinite(w) and w > 1):
            raise ValueError(f"widen must be a number > 1, got {widen!r}")
        suggestion, widen = s, w
        ratio = 1.0
        if interval is not None:
            lo, hi = (float(v) for v in interval)
            if math.isfinite(lo) and math.isfinite(hi) and lo > 0 and hi > 0:
                ratio = max(suggestion / lo, hi / suggestion, 1.0)
        r = widen * ratio
        return cls(lr_range=(suggestion / r, suggestion * r), kinds=kinds, center=float(suggestion))

    @property
    def peak(self) -> float:
        """The finder's suggestion, or the range's centre on the log axis."""
        lo, hi = self.lr_range
        return self.center if self.center is not None else math.sqrt(lo * hi)

    def longest_warmup(self, total_steps: int | None = None) -> float:
        """The longest rise to the peak LR a point of this space can have, as a fraction of the run:
        ``warmup_max`` (cosine, linear, WSD), and one-cycle's ``pct_start``, which is at least 2% (and 2
        steps of ``total_steps``) and at most half the run. A pruner judges no trial before it has ended:
        a curve still warming up is low because its LR is, not because its schedule is poor."""
        longest = self.warmup_max
        if "one_cycle" in self.kinds:
            two_steps = 0.0 if total_steps is None else 2.0 / total_steps
            longest = max(longest, min(max(self.warmup_max, 0.02, two_steps), 0.5))
        return longest

    def sample(self, trial: Any) -> dict[str, Any]:
        """A point drawn with an Optuna ``trial``: ``kind``, ``lr``, ``warmup``, ``final`` (and WSD's
        ``decay``)."""
        point: dict[str, Any] = {"kind": trial.suggest_categorical("kind", list(self.kinds))}
        point["lr"] = trial.suggest_float("lr", *self.lr_range, log=True)
        point["warmup"] = trial.suggest_float("warmup", 0.0, self.warmup_max)
        point["final"] = trial.suggest_float("final", *self.final_range, log=True)
        if point["kind"] == "wsd":
            point["decay"] = trial.suggest_float("decay", *self.decay_range)
        return point

    def to_dict(self) -> dict[str, Any]:
        return {
            "lr_range": list(self.lr_range),
            "kinds": list(self.kinds),
            "warmup_max": self.warmup_max,
            "final_range": list(self.final_range),
            "decay_range": list(self.decay_range),
            "center": self.center,
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> SearchSpace:
        return cls(
            lr_range=tuple(d["lr_range"]),
            kinds=tuple(d["kinds"]),
            warmup_max=float(d["warmup_max"]),
            final_range=tuple(d["final_range"]),
            decay_range=tuple(d["decay_range"]),
            center=d.get("center"),
        )
