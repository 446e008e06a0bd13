"""Durations: in steps, in epochs, as a fraction of the total, or "the rest".

A schedule is defined in steps. A duration given in epochs or as a fraction is converted when the
schedule is resolved with :meth:`Schedule.resolve` (``total_steps``, ``steps_per_epoch``); until then,
evaluating the schedule raises a clear error instead of guessing.

Text forms (used in specs and on the command line): ``500`` (steps), ``"3ep"`` (epochs), ``"10%"``
(fraction of the total), ``"rest"`` (what is left of the total, or of a chain).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

Unit = Literal["steps", "epochs", "fraction", "rest"]


@dataclass(frozen=True)
class Duration:
    """A length of time. ``Duration(500)`` is 500 steps; see :func:`epochs`, :func:`fraction`.

    >>> Duration.parse("10%"), Duration.parse("3ep"), Duration.parse(500)
    (fraction(0.1), epochs(3), steps(500))
    >>> Duration.parse("10%").to_steps(total_steps=2000, steps_per_epoch=None)
    200.0
    """

    value: float
    unit: Unit = "steps"

    def __post_init__(self) -> None:
        if self.unit not in ("steps", "epochs", "fraction", "rest"):
            raise ValueError(f"unit: expected 'steps', 'epochs', 'fraction' or 'rest', got {self.unit!r}")
        if self.unit == "rest":
            return
        v = self.value
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) or v < 0:
            raise ValueError(f"duration: expected a finite number >= 0, got {v!r}")
        if self.unit == "fraction" and v > 1:
            raise ValueError(f"duration: a fraction of the total must be in [0, 1], got {v!r}")

    # -- construction -------------------------------------------------------------------------
    @classmethod
    def parse(cls, x: DurationLike, *, name: str = "duration") -> Duration:
        """Accept a Duration, a number of steps, or one of the text forms."""
        if isinstance(x, Duration):
            return x
        if isinstance(x, bool):
            raise TypeError(f"{name}: expected a duration (steps, '3ep', '10%', 'rest'), got {x!r}")
        if isinstance(x, (int, float)):
            if not math.isfinite(x) or x < 0:
                raise ValueError(f"{name}: expected a number of steps >= 0, got {x!r}")
            return cls(x)
        if isinstance(x, str):
            s = x.strip().lower()
            try:
                if s == "rest":
                    return REST
                if s.endswith("%"):
                    return cls(float(s[:-1]) / 100.0, "fraction")
                if s.endswith("ep"):
                    return cls(_num(s[:-2]), "epochs")
                if s.endswith("epochs"):
                    return cls(_num(s[:-6]), "epochs")
                return cls(_num(s))
            except ValueError as exc:
                raise ValueError(
                    f"{name}: expected a duration like 500, '3ep', '10%' or 'rest', got {x!r} ({exc})"
                ) from None
        raise TypeError(
            f"{name}: expected a duration (steps, '3ep', '10%', 'rest'), got {type(x).__name__} {x!r}"
        )

    # -- use ----------------------------------------------------------------------------------
    @property
    def is_steps(self) -> bool:
        return self.unit == "steps"

    def to_steps(
        self, total_steps: float | None, steps_per_epoch: float | None, span: float | None = None
    ) -> float:
        """This duration in steps. ``span`` is what "rest" means here (defaults to ``total_steps``)."""
        if self.unit == "steps":
            return float(self.value)
        if self.unit == "epochs":
            if steps_per_epoch is None:
                raise ValueError(f"duration {self}: epochs need steps_per_epoch; pass steps_per_epoch=...")
            return float(self.value) * steps_per_epoch
        if self.unit == "fraction":
            if total_steps is None:
                raise ValueError(
                    f"duration {self}: a fraction of the total needs total_steps; pass total_steps=..."
                )
            return float(self.value) * total_steps
        span = total_steps if span is None else span
        if span is None:
            raise ValueError("duration 'rest': the rest of the run needs total_steps; pass total_steps=...")
        return float(span)

    def to_data(self) -> int | float | str:
        """The plain form used in specs: a number of steps or a text form."""
        if self.unit == "steps":
            return _plain(self.value)
        if self.unit == "epochs":
            return f"{_plain(self.value)}ep"
        if self.unit == "fraction":
            return f"{_plain(round(self.value * 100, 12))}%"
        return "rest"

    def __repr__(self) -> str:
        if self.unit == "rest":
            return "REST"
        return f"{self.unit}({_plain(self.value)})"


DurationLike = Duration | int | float | str

REST = Duration(0.0, "rest")


def steps(n: float) -> Duration:
    """``n`` optimizer steps."""
    return Duration(n, "steps")


def epochs(n: float) -> Duration:
    """``n`` epochs (needs ``steps_per_epoch`` when resolved)."""
    return Duration(n, "epochs")


def fraction(f: float) -> Duration:
    """The fraction ``f`` of the total run (needs ``total_steps`` when resolved)."""
    return Duration(f, "fraction")


def _num(s: str) -> float:
    v = float(s)
    return int(v) if v.is_integer() else v


def _plain(v: float) -> int | float:
    return int(v) if float(v).is_integer() else float(v)
