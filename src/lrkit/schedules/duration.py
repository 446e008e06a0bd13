"""Durations: in steps, in epochs, as a fraction of the total, or "the rest".

A schedule is defined in steps. A duration given in epochs or as a fraction is converted when the
schedule is resolved with :meth:`Schedule.resolve` (``total_steps``, ``steps_per_epoch``); until then,
evaluating the schedule raises a clear error instead of guessing.

Text forms (used in specs and on the command line): ``500`` (steps), ``"3ep"`` (epochs), ``"10%"``
(fraction of the total), ``"rest"`` (what is left of the total, or of a chain).

Rounding: a fraction of the run resolves to a whole number of steps, ``ceil(fraction * total_steps)``,
the rule transformers' ``TrainingArguments.get_warmup_steps`` applies to ``warmup_ratio`` (so
``warmup(10%)`` over 37 steps is 4 steps, and ``"rest"`` after it is 33). In a chain, consecutive
fractions are rounded together (each piece ends at ``ceil`` of the fractions so far times the total), so
``warmup(5%) >> cosine(steps=95%)`` fills the run exactly. Steps and epochs are not rounded (2.5 epochs
of 3.3 steps are 8.25 steps). A duration holds at most :data:`MAX_STEPS` (2**53) steps or epochs: beyond
it a float no longer counts single steps.

Exactness: a fraction or a number of epochs is the decimal it is written as (``"7%"`` and
``fraction(0.07)`` are 7/100, ``"0.07ep"`` is 7/100 of an epoch; see :func:`as_written`), multiplied
exactly. So 7% of 100 steps is 7 steps and 0.07 epochs of 100 steps are 7, where the float product
``0.07 * 100`` is 7.000000000000001 (its ceil, 8, is what transformers' float arithmetic takes).
"""

from __future__ import annotations

import math
import numbers
import reprlib
from dataclasses import dataclass
from decimal import Context, Decimal, InvalidOperation
from fractions import Fraction
from typing import Any, Literal, SupportsInt

from .._checks import dtype_kind, finite_real, plain_number

Unit = Literal["steps", "epochs", "fraction", "rest"]

#: The largest duration (in steps or epochs) and the largest step a schedule tells apart: 2**53, the
#: last integer a float64 holds exactly. Steps beyond it are evaluated as 2**53.
MAX_STEPS = 2**53


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
        v = _number(self.value, "duration")
        if v < 0:
            raise ValueError(f"duration: expected a finite number >= 0, got {_short(v)}")
        if v > MAX_STEPS:
            raise ValueError(f"duration: expected at most 2**53 = {MAX_STEPS}, got {_short(v)}")
        if self.unit == "fraction" and v > 1:
            raise ValueError(f"duration: a fraction of the total must be in [0, 1], got {v!r}")
        object.__setattr__(self, "value", v + 0 if isinstance(v, int) else v + 0.0)  # -0.0 -> 0.0

    # -- construction -------------------------------------------------------------------------
    @classmethod
    def parse(cls, x: DurationLike, *, name: str = "duration") -> Duration:
        """Accept a Duration, a number of steps (any real, a 0-d array or tensor too: see
        :mod:`lrkit._checks`), or one of the text forms."""
        if isinstance(x, Duration):
            return x
        x = _unwrapped(x)
        if isinstance(x, bool) or (not isinstance(x, (str, numbers.Real))):
            raise TypeError(
                f"{name}: expected a duration (steps, '3ep', '10%', 'rest'), "
                f"got {type(x).__name__} {_short(x)}"
            )
        if not isinstance(x, str):
            v = _number(x, name)
            if v < 0:
                raise ValueError(f"{name}: expected a number of steps >= 0, got {_short(x)}")
            if v > MAX_STEPS:
                raise ValueError(f"{name}: expected at most 2**53 = {MAX_STEPS} steps, got {_short(x)}")
            return cls(v)
        s = x.strip().lower()
        try:
            if s == "rest":
                return REST
            if s.endswith("%"):
                return cls(_percent(s[:-1]), "fraction")
            if s.endswith("epochs"):
                return cls(_num(s[:-6]), "epochs")
            if s.endswith("ep"):
                return cls(_num(s[:-2]), "epochs")
            return cls(_num(s))
        except (ValueError, ArithmeticError) as exc:
            raise ValueError(
                f"{name}: expected a duration like 500, '3ep', '10%' or 'rest', got {_short(x)} ({exc})"
            ) from None

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
            return float(as_written(float(self.value)) * Fraction(float(steps_per_epoch)))  # 0.07ep x 100: 7
        if self.unit == "fraction":
            if total_steps is None:
                raise ValueError(
                    f"duration {self}: a fraction of the total needs total_steps; pass total_steps=..."
                )
            return fraction_steps(as_written(float(self.value)), total_steps)
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
            return f"{percent_text(float(self.value))}%"
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


_NUMBER_TEXT = 40  # characters: a number written longer than this is refused before it is converted


_REPR = reprlib.Repr()
_REPR.maxlevel, _REPR.maxlist, _REPR.maxtuple, _REPR.maxdict = 3, 6, 6, 6
_REPR.maxstring, _REPR.maxlong, _REPR.maxother = 60, 40, 60


def _short(x: object) -> str:
    """``repr(x)`` cut to a readable length, without building the whole repr of a huge value."""
    if isinstance(x, int) and x.bit_length() > 256:
        return f"an integer of {math.floor(x.bit_length() * math.log10(2)) + 1} digits"
    return _REPR.repr(x)


def held_step(n: SupportsInt) -> int:
    """An integer step held to ``[-2**53, 2**53]`` (:data:`MAX_STEPS`): a step beyond it is evaluated as
    2**53, where a float would overflow or no longer tell single steps apart."""
    return min(max(int(n), -MAX_STEPS), MAX_STEPS)


def _unwrapped(v: Any) -> Any:
    """The Python number a 0-d array or tensor of integer or real dtype holds (numpy, torch, jax), as
    :mod:`lrkit._checks` takes it; ``v`` itself otherwise (a number, another array: refused by name)."""
    return plain_number(v) if dtype_kind(v) in ("i", "f") else v


def _real(v: object) -> float | None:
    """``v`` as a finite float when it is a real number (:mod:`lrkit._checks`' rule: numpy's, a 0-d
    array or tensor too; never a bool), else None."""
    return finite_real(v)


def _number(x: object, name: str) -> int | float:
    """``x`` (a real number, a 0-d array or tensor too: :mod:`lrkit._checks`' rule) as a finite Python int
    or float; ints beyond 2**53 become floats."""
    x = _unwrapped(x)
    if isinstance(x, bool) or not isinstance(x, numbers.Real):
        raise TypeError(f"{name}: expected a number, got {type(x).__name__} {_short(x)}")
    if isinstance(x, numbers.Integral):
        i = int(x)
        if abs(i) <= MAX_STEPS:
            return i
        if i.bit_length() > 1024:
            raise ValueError(f"{name}: expected a finite number, got {_short(i)} (beyond 1.8e308)")
        return float(i)
    try:
        v = float(x)
    except OverflowError:
        raise ValueError(f"{name}: expected a finite number, got {_short(x)} (beyond 1.8e308)") from None
    if not math.isfinite(v):
        raise ValueError(f"{name}: expected a finite number, got {_short(x)}")
    return v


def _num(s: str) -> int | float:
    if len(s) > _NUMBER_TEXT:
        raise ValueError(f"a number written with {len(s)} characters (at most {_NUMBER_TEXT})")
    v = float(s)
    return int(v) if v.is_integer() and abs(v) <= MAX_STEPS else v


def _percent(s: str) -> float:
    """The fraction a percentage denotes, correctly rounded: ``"10"`` -> 0.1, ``"1e-320"`` -> 1e-322."""
    if len(s) > _NUMBER_TEXT:
        raise ValueError(f"a number written with {len(s)} characters (at most {_NUMBER_TEXT})")
    try:
        d = Decimal(s.strip())
    except InvalidOperation:
        raise ValueError(f"{s!r} is not a number") from None
    if not d.is_finite():
        raise ValueError(f"{s!r} is not a finite number")
    if d.adjusted() > 400:  # far beyond 100%: no need to compute it
        return math.inf
    exact = Context(prec=_NUMBER_TEXT + 4, Emin=-999_999, Emax=999_999)
    return float(d.scaleb(-2, exact))


def as_written(v: float) -> Fraction:
    """The number a duration's float ``v`` stands for: the shortest decimal that reads back as ``v`` (its
    ``repr``), exactly. ``0.07`` -> 7/100, not the float's binary value (7/100 + 6.7e-18).

    A number in text is read to the nearest float and means this decimal, the one :meth:`Duration.to_data`
    writes back (:func:`percent_text`), so a schedule resolves the same after a round trip through text.
    """
    return Fraction(Decimal(repr(float(v))))


def fraction_steps(c: Fraction, total_steps: float) -> float:
    """The whole steps the fraction ``c`` of a run of ``total_steps`` takes: ``ceil(c * total_steps)``,
    computed exactly (as transformers' ``get_warmup_steps`` rounds up, without its float product)."""
    return float(math.ceil(c * Fraction(float(total_steps))))


def percent_text(f: float) -> str:
    """The shortest decimal ``p`` with ``_percent(p) == f``: ``1/3`` -> ``"33.33333333333333"``.

    Shifting the shortest repr of ``f`` by two places is exact, so it always reads back as ``f``.
    """
    d = Decimal(repr(f)).scaleb(2, Context(prec=30, Emin=-999_999, Emax=999_999)).normalize()
    _sign, digits, exp = d.as_tuple()
    if isinstance(exp, int) and -7 <= exp + len(digits) - 1 < 16:
        return f"{d:f}"
    return f"{d:e}".replace("e+", "e").replace("E+", "e").replace("E", "e")


def _plain(v: float) -> int | float:
    return int(v) if float(v).is_integer() and abs(v) <= MAX_STEPS else float(v)
