"""Composition: chains of pieces (each in its own local time), scaling, products, clamps, repetition."""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field, replace
from fractions import Fraction
from typing import Literal

import numpy as np

from .._checks import check_int
from ._xp import Array, Namespace
from .base import (
    MAX_STEPS,
    Schedule,
    check_bound,
    check_number,
    divide,
    divide_steps,
    param,
    schedule_field,
    shift_steps,
    step_text,
)
from .duration import REST, Duration, DurationLike, _short, as_written, fraction_steps
from .warmup import Warmup


def bounded(s: Schedule) -> bool:
    """Whether ``s`` ends (has a length that is neither forever nor "the rest")."""
    d = s.length
    return d is not None and d.unit != "rest"


def takes_rest(s: Schedule) -> bool:
    """Whether ``s``'s length is "the rest" (what the pieces around it leave of the run)."""
    d = s.length
    return d is not None and d.unit == "rest"


def overlaps(s: Schedule) -> bool:
    """Whether ``s`` is a warmup the next piece of a chain starts with (``warmup(..., overlap=True)``)."""
    return isinstance(s, Warmup) and s.overlap


def _length_of(parts: Sequence[Schedule], how: str) -> Duration | None:
    """Length of pieces run one after another (``how="sum"``) or side by side (``"max"``)."""
    ds = [p.length for p in parts]
    if how == "sum":
        ds_last = ds[-1]
        if ds_last is None or any(d is not None and d.unit == "rest" for d in ds):
            return REST if ds_last is not None else None
    else:
        if any(d is not None and d.unit == "rest" for d in ds):
            return REST
        if any(d is None for d in ds):  # one factor runs forever, so does the product
            return None
    if all(d is not None and d.is_steps for d in ds):
        vals = [float(d.value) for d in ds if d is not None]
        return Duration(sum(vals) if how == "sum" else max(vals))
    raise ValueError(
        f"length of {[p.name for p in parts]} is not known in steps yet; call .resolve(...) first"
    )


@dataclass(frozen=True)
class Chain(Schedule):
    """Pieces one after another: piece ``i`` runs for its length, seeing local time ``t - start_i``.

    Every piece but the last needs a length, except that one piece may take "the rest": what the others
    leave of ``total_steps`` (``warmup(5%) >> cosine(lr=1) >> constant(lr=0.01, steps=100)``: the cosine
    runs until 100 steps before the end; every other piece then needs a length). A :class:`Warmup` with no
    ``lr`` ramps up to the value the next piece starts at; one with ``overlap=True`` takes no time of
    its own: the next piece starts with it (its local time 0 is the warmup's), and the warmup stands in
    for that piece's first steps (last in a chain, with no next piece, it is a plain warmup).

    >>> from lrkit.schedules import Warmup, Cosine
    >>> s = Warmup(steps=10, start=0.0) >> Cosine(lr=1.0, steps=90)
    >>> s(0), s(5), s(10), round(s(55), 6), s(100)
    (0.0, 0.5, 1.0, 0.5, 0.0)
    """

    pieces: tuple[Schedule, ...] = field(
        default=(), metadata={"kind": "schedules", "doc": "the pieces, in order"}
    )
    name = "chain"
    length_field = None
    summary = "pieces one after another, each in its own local time (a >> b)"
    example = "warmup(10%) >> constant(lr=1e-3, steps=50%) >> linear(lr=1e-3, end_lr=0)"

    def _validate(self) -> None:
        if not isinstance(self.pieces, (tuple, list)):  # a str or a dict would be iterated as one
            raise TypeError(
                f"chain: pieces must be a list of schedules, got {type(self.pieces).__name__} "
                f"{_short(self.pieces)}"
            )
        flat: list[Schedule] = []
        for i, p in enumerate(self.pieces):
            if not isinstance(p, Schedule):
                raise TypeError(f"chain: pieces[{i}] must be a schedule, got {type(p).__name__} {p!r}")
            flat.extend(p.pieces if isinstance(p, Chain) else (p,))
        if not flat:
            raise ValueError("chain: pieces must hold at least one schedule, got none")
        _check_rest(flat)
        for i, p in enumerate(flat[:-1]):
            if p.length is None:
                raise ValueError(
                    f"chain: piece {i} ({p.name}) has no length (forever); "
                    "give it steps=... or make it the last piece"
                )
            d = p.length
            if d is not None and d.value == 0 and d.unit != "rest" and not p.zero_length_ok:
                raise ValueError(
                    f"chain: piece {i} ({p.name}) has zero length; it would never be seen (only a warmup "
                    "may be 0 long, meaning none)"
                )
            if overlaps(p):
                _check_overlapped(i, p, flat[i + 1])
        object.__setattr__(self, "pieces", tuple(flat))

    @property
    def length(self) -> Duration | None:
        return _length_of([*(p for p in self.pieces[:-1] if not overlaps(p)), self.pieces[-1]], "sum")

    def peak(self) -> float | None:
        return _max_peak(self.pieces)

    def _resolve(self, total: float | None, spe: float | None, span: float | None) -> Chain:
        pieces = _fractions_together(self.pieces, total)
        rest = next((i for i, p in enumerate(pieces) if takes_rest(p)), len(pieces) - 1)
        out: list[Schedule | None] = [None] * len(pieces)
        others: float | None = 0.0  # the steps the pieces other than `rest` take (overlaps take none)
        for i, p in enumerate(pieces):
            if i == rest:
                continue
            r = out[i] = p._resolve(total, spe, None)
            d = r.length
            if overlaps(r):  # the next piece starts where the warmup does
                continue
            others = others + float(d.value) if others is not None and d is not None and d.is_steps else None
        p = pieces[rest]
        sp = None if span is None or others is None else span - others
        if sp is not None and sp <= 0 and takes_rest(p):
            last = rest == len(pieces) - 1
            raise ValueError(
                f"chain: the pieces {'before the last' if last else 'around it'} take {others:g} "
                f"step{'' if others == 1 else 's'}, leaving nothing of total_steps={span:g} for "
                f"{'the last piece' if last else f'piece {rest}'} ({p.name}, steps='rest'); expected a "
                f"total_steps above {others:g}, so that a step at least is left for it, or shorter pieces "
                "before it"
            )
        out[rest] = p._resolve(total, spe, sp)
        return Chain(tuple(r for r in out if r is not None))

    def _events(self) -> Iterator[tuple[float, str]]:
        """Each piece's events from where it starts, and where each piece after the first takes over."""
        offs = self.offsets
        for i, (p, o) in enumerate(zip(self.pieces, offs)):
            at = f" (from step {step_text(o)})" if o else ""
            for t, what in p.events():
                yield o + t, f"piece {i}{at}: {what}"
        for i, b in enumerate(self._bounds(offs), start=1):
            yield b, f"piece {i} ({self.pieces[i].name}) starts"

    @property
    def offsets(self) -> tuple[float, ...]:
        """Where each piece starts (its local step 0), in steps."""
        starts = [0.0]
        for p in self.pieces[:-1]:
            starts.append(starts[-1] if overlaps(p) else starts[-1] + float(p.length_steps or 0.0))
        return tuple(starts)

    def _bounds(self, offs: tuple[float, ...]) -> tuple[float, ...]:
        """Where each piece after the first takes over: where the piece before it ends, which is its own
        start except after an overlapping warmup (which it starts with)."""
        return tuple(o + float(p.length_steps or 0.0) for o, p in zip(offs[:-1], self.pieces[:-1]))

    def _piece(self, i: int, local: Array, xp: Namespace, k: Array | None = None) -> Array:
        p = self.pieces[i]
        v = p._eval(local, xp, k)
        if isinstance(p, Warmup) and p.lr is None and i + 1 < len(self.pieces):
            v = v * self._piece(i + 1, local * 0.0, xp)
        return v

    def _eval(self, t: Array, xp: Namespace, k: Array | None = None) -> Array:
        offs = self.offsets
        ends = self._bounds(offs)
        if xp is np:  # numpy: evaluate each piece only where it runs (traced arrays need `where`)
            idx = np.searchsorted(np.asarray(ends), t, side="right")
            lo, hi = (int(idx.min()), int(idx.max())) if t.size else (0, 0)
            if lo == hi:
                return self._piece(lo, t - offs[lo], xp)
            res = np.empty_like(t)
            for i in range(lo, hi + 1):
                sel = idx == i
                res[sel] = self._piece(i, t[sel] - offs[i], xp)
            return res
        out = self._piece(len(offs) - 1, t - offs[-1], xp, shift_steps(k, offs[-1], xp))
        for i in range(len(offs) - 2, -1, -1):
            out = xp.where(t < ends[i], self._piece(i, t - offs[i], xp, shift_steps(k, offs[i], xp)), out)
        return out


def _fractions_together(pieces: tuple[Schedule, ...], total: float | None) -> tuple[Schedule, ...]:
    """``pieces`` with each run of consecutive lengths given as fractions of the run rounded together.

    Within a run, piece ``i`` ends at ``ceil(c_i * total)`` steps from the run's start, ``c_i`` the sum of
    the fractions up to it (as written: 5% + 75% + 20% is exactly 1), so the first piece takes
    ``ceil(f_1 * total)`` as alone and fractions adding to 100% fill ``total`` exactly (each rounded up
    on its own, they took one step more) when each is a step of it at least: a piece given more than 0%
    still takes one step at least (a chain never holds a piece no step sees). A length in steps, epochs or
    "rest" (or one inside a wrapper) ends the run; the next fraction starts a new one. Overlapping warmups
    take no steps and are left out.
    """
    if total is None:
        return pieces
    out = list(pieces)
    c, end = Fraction(0), 0.0  # the run's fractions so far and the steps they take
    for i, p in enumerate(pieces):
        if overlaps(p):
            continue
        d, name = p.length, p.length_field
        if d is None or d.unit != "fraction" or name is None or getattr(p, name) is not d:
            c, end = Fraction(0), 0.0
            continue
        c += as_written(float(d.value))
        e = fraction_steps(c, total)  # as Duration.to_steps rounds one fraction
        if d.value > 0:  # a piece given time is seen for a step at least, as when rounded alone
            e = max(e, end + 1)
        out[i] = replace(p, **{name: Duration(e - end)})
        end = e
    return tuple(out)


def _check_rest(flat: Sequence[Schedule]) -> None:
    """At most one piece of a chain takes "the rest"; one that is not last needs every other piece to
    have a length (a last piece that runs forever would leave the rest undefined)."""
    rest = [i for i, p in enumerate(flat) if takes_rest(p)]
    if len(rest) > 1:
        names = ", ".join(f"{i} ({flat[i].name})" for i in rest)
        raise ValueError(
            f"chain: pieces {names} each take 'the rest' of the run; only one can: give the others steps=..."
        )
    if rest and rest[0] < len(flat) - 1 and flat[-1].length is None:
        raise ValueError(
            f"chain: piece {rest[0]} ({flat[rest[0]].name}) takes 'the rest' of the run, which needs a "
            f"length for every other piece; the last ({flat[-1].name}) runs forever: give it steps=..."
        )


def _check_overlapped(i: int, w: Schedule, nxt: Schedule) -> None:
    """Refuse a piece that starts with the overlapping warmup ``w`` (piece ``i``) and ends no later than
    it: it would never be seen (lengths in different units are compared once resolved)."""
    a, b = w.length, nxt.length
    if a is None or b is None or b.unit == "rest" or a.unit != b.unit or b.value > a.value:
        return
    raise ValueError(
        f"chain: piece {i + 1} ({nxt.name}, steps={b.to_data()!r}) starts with the overlapping warmup before "
        f"it (overlap=true) and must outlast it, steps > {a.to_data()!r}; it would never be seen"
    )


def _max_peak(parts: Sequence[Schedule]) -> float | None:
    peaks = [p.peak() for p in parts]
    return None if any(v is None for v in peaks) else max(v for v in peaks if v is not None)


def chain(*pieces: Schedule) -> Chain:
    """``chain(a, b, c)`` == ``a >> b >> c``."""
    return Chain(tuple(pieces))


def with_warmup(
    schedule: Schedule,
    steps: DurationLike,
    start: float | None = None,
    mode: Literal["linear", "exponential"] = "linear",
) -> Chain:
    """``warmup(steps) >> schedule``: warm up to the value ``schedule`` starts at; ``steps=0`` (in any
    unit) is no warmup: the chain is ``schedule`` at every step."""
    return chain(Warmup(steps=steps, start=start, mode=mode), schedule)


@dataclass(frozen=True)
class Scale(Schedule):
    """``factor * schedule``.

    >>> from lrkit.schedules import Constant
    >>> (Constant(0.5) * 4)(0)
    2.0
    """

    schedule: Schedule = schedule_field(doc="the schedule to scale")
    factor: float = param(default=1.0, doc="the constant multiplier, >= 0")
    name = "scale"
    length_field = None
    summary = "a schedule times a constant (s * 2)"
    example = "scale(cosine(lr=1.0), factor=0.1)"

    def _validate(self) -> None:
        check_number(self.name, "factor", self.factor, low=0)
        p = self.peak()
        if p is not None:
            check_bound(
                self.name,
                f"factor={self.factor!r} times the peak {self.schedule.peak():g}",
                p,
                "use a smaller factor",
            )

    def peak(self) -> float | None:
        p = self.schedule.peak()
        return None if p is None else p * self.factor

    @property
    def length(self) -> Duration | None:
        return self.schedule.length

    def _events(self) -> Iterator[tuple[float, str]]:
        return iter(self.schedule.events())

    def _eval(self, t: Array, xp: Namespace, k: Array | None = None) -> Array:
        return self.schedule._eval(t, xp, k) * self.factor


@dataclass(frozen=True)
class Product(Schedule):
    """``a(t) * b(t)``: e.g. a multiplier schedule on top of a base schedule, on one clock. It ends when
    both factors have (never, if one runs forever).

    >>> from lrkit.schedules import Constant, Linear
    >>> (Constant(0.1) * Linear(lr=1.0, steps=10, end_lr=0.0))(5)
    0.05
    """

    a: Schedule = schedule_field(doc="the first factor")
    b: Schedule = schedule_field(doc="the second factor")
    name = "product"
    length_field = None
    summary = "two schedules multiplied (a * b)"
    example = "product(cosine(lr=0.1), warmup(steps=100))"

    def _validate(self) -> None:
        p = self.peak()
        if p is not None:
            check_bound(
                self.name,
                f"the product of the peaks {self.a.peak():g} * {self.b.peak():g}",
                p,
                "use smaller factors",
            )

    def peak(self) -> float | None:
        a, b = self.a.peak(), self.b.peak()
        return None if a is None or b is None else a * b

    @property
    def length(self) -> Duration | None:
        return _length_of((self.a, self.b), "max")

    def _events(self) -> Iterator[tuple[float, str]]:
        yield from self.a.events()
        yield from self.b.events()

    def _eval(self, t: Array, xp: Namespace, k: Array | None = None) -> Array:
        return self.a._eval(t, xp, k) * self.b._eval(t, xp, k)


@dataclass(frozen=True)
class Clamp(Schedule):
    """``min(max(schedule(t), min_lr), max_lr)``.

    >>> from lrkit.schedules import Linear
    >>> Clamp(Linear(lr=1.0, steps=10, end_lr=0.0), min_lr=0.25)(9)
    0.25
    """

    schedule: Schedule = schedule_field(doc="the schedule to bound")
    min_lr: float = param(default=0.0, doc="floor")
    max_lr: float | None = param(default=None, doc="ceiling (default: none)")
    name = "clamp"
    length_field = None
    summary = "a schedule held between a floor and a ceiling"
    example = "clamp(exp_decay(lr=0.1, k=1e-3), min_lr=1e-4)"

    def _validate(self) -> None:
        check_number(self.name, "min_lr", self.min_lr, low=0)
        if self.max_lr is not None:
            check_number(self.name, "max_lr", self.max_lr, low=self.min_lr)

    def peak(self) -> float | None:
        p = self.schedule.peak()
        if p is None:
            return None if self.max_lr is None else float(self.max_lr)
        return max(p if self.max_lr is None else min(p, self.max_lr), self.min_lr)

    @property
    def length(self) -> Duration | None:
        return self.schedule.length

    def _events(self) -> Iterator[tuple[float, str]]:
        return iter(self.schedule.events())

    def _eval(self, t: Array, xp: Namespace, k: Array | None = None) -> Array:
        return xp.clip(self.schedule._eval(t, xp, k), self.min_lr, self.max_lr)


@dataclass(frozen=True)
class Repeat(Schedule):
    """A bounded schedule repeated ``times`` times (forever when None), then held at its end.

    >>> from lrkit.schedules import Linear
    >>> r = Repeat(Linear(lr=1.0, steps=10, end_lr=0.0), times=2)
    >>> r(5), r(15), r(25)
    (0.5, 0.5, 0.0)
    """

    schedule: Schedule = schedule_field(doc="the piece to repeat (needs a length)")
    times: int | None = param(default=None, doc="how many times (default: forever)")
    name = "repeat"
    length_field = None
    summary = "a piece repeated, each time from its start"
    example = "repeat(cosine(lr=0.1, steps=1000), times=3)"

    def _validate(self) -> None:
        if not bounded(self.schedule):
            raise ValueError(f"repeat: schedule ({self.schedule.name}) needs a length (steps=...) to repeat")
        if self.times is not None:
            check_int(self.times, "times", 1, high=MAX_STEPS, where="repeat: ", or_none=True, show=_short)
        d = self.schedule.length
        if d is not None and d.is_steps and d.value == 0:
            raise ValueError(
                f"repeat: schedule ({self.schedule.name}) has zero length; there is nothing to repeat"
            )
        if (
            self.times is not None
            and d is not None
            and d.is_steps
            and float(d.value) * self.times > MAX_STEPS
        ):
            raise ValueError(
                f"repeat: times={self.times} repeats of {d.to_data()} steps exceed 2**53 steps; "
                "use times=None (forever) or fewer"
            )

    def peak(self) -> float | None:
        return self.schedule.peak()

    @property
    def length(self) -> Duration | None:
        if self.times is None:
            return None
        d = self.schedule.length
        if d is not None and d.is_steps:
            return Duration(float(d.value) * self.times)
        raise ValueError("repeat: length is not known in steps yet; call .resolve(...) first")

    def _events(self) -> Iterator[tuple[float, str]]:
        """The first pass's events, and where the second starts."""
        yield from self.schedule.events()
        n = float(self.schedule.length_steps or 0.0)
        yield n, f"{self.name}: the first repeat (after {step_text(n)} steps)"

    def _eval(self, t: Array, xp: Namespace, k: Array | None = None) -> Array:
        p = float(self.schedule.length_steps or math.inf)
        t = xp.clip(t, 0.0, float(MAX_STEPS))
        k = None if k is None else xp.clip(k, 0, None)
        exact = divide_steps(k, p, xp)  # from an integer step: exact, as a periodic schedule's cycle
        if exact is None:
            passes, local = divide(t, None, p, xp)
            local_k = None
        else:
            passes, local = xp.astype(exact[0], t.dtype), xp.astype(exact[1], t.dtype)
            local_k = exact[1]
        if self.times is not None:
            done = passes >= self.times
            local = xp.where(done, t * 0.0 + p, local)
            local_k = None if local_k is None else xp.where(done, local_k * 0 + int(p), local_k)
        return self.schedule._eval(local, xp, local_k)


__all__ = ["Chain", "Clamp", "Product", "Repeat", "Scale", "bounded", "chain", "with_warmup"]
