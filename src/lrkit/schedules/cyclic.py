"""Schedules that go up and down: cosine with warm restarts, cyclical LR and one-cycle."""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Literal

import numpy as np

from ._xp import Array, Namespace, power
from .base import (
    Schedule,
    check_bound,
    check_choice,
    check_number,
    divide,
    duration_field,
    param,
    step_text,
    steps_of,
)
from .basic import COSINE, LINE, along, between
from .duration import MAX_STEPS, REST, Duration, DurationLike

#: the most cycles :func:`_cycle_table` lists (a mult this near 1 with a short period has more before
#: 2**53: their steps are then computed from the float step, as for a float step)
MAX_TABLE = 1 << 16


def _start_of(k: Array, p: float, m: float, xp: Namespace) -> Array:
    """Where cycle ``k`` of a cosine with restarts starts, ``p * (m**k - 1) / (m - 1)`` (``m != 1``); a start
    within its rounding error of a whole step is that step (in float32, 10 * (1.7**2 - 1) / 0.7 is
    27.000002: step 27 would still be the last cycle's end, at min_lr, not the new cycle's peak)."""
    eps = float(xp.finfo(k.dtype).eps)
    s = p * xp.expm1(k * math.log(m)) / (m - 1.0)  # m**k - 1 without losing m - 1 to rounding
    whole = xp.round(s)
    return xp.where(xp.abs(s - whole) <= 4.0 * eps * (1.0 + k * math.log(m)) * s, whole, s)


def _cycle_table(p: float, m: float, top: int) -> tuple[list[int], list[float], list[float]] | None:
    """For integer steps up to ``top``: each cycle's first step (``ceil`` of its start, computed as
    :func:`_start_of` does in float64), how far that is after the start, and the cycle's length, for
    every cycle starting by ``top`` (None: more than :data:`MAX_TABLE` of them)."""
    top = min(top, MAX_STEPS)
    n = math.ceil(math.log1p(top * (m - 1.0) / p) / math.log(m)) + 2
    if n > MAX_TABLE:
        return None
    s = _start_of(np.arange(n + 1, dtype=np.float64), p, m, np)
    s = s[: int(np.searchsorted(s, top, side="right")) + 1]  # through the first start past top
    first = np.ceil(s[:-1])
    return [int(x) for x in first], (first - s[:-1]).tolist(), np.diff(s).tolist()


@dataclass(frozen=True)
class CosineRestarts(Schedule):
    """Cosine annealing with warm restarts (SGDR, Loshchilov & Hutter, 2017).

    Cycle ``i`` lasts ``period * mult**i`` steps and starts at ``period * (mult**i - 1) / (mult - 1)``
    (``i * period`` when ``mult == 1``); inside it, with ``tc`` the step within the cycle and ``Ti`` its
    length, ``lr(t) = min_lr + (lr - min_lr) * decay**i * (1 + cos(pi * tc / Ti)) / 2``: ``decay``
    shrinks each cycle's height above the floor.
    torch's ``CosineAnnealingWarmRestarts`` is ``decay=1``.

    >>> s = CosineRestarts(lr=1.0, period=10, mult=2)
    >>> [round(s(t), 12) for t in (0, 5, 10, 20, 30)]
    [1.0, 0.5, 1.0, 0.5, 1.0]
    """

    lr: float = param(doc="peak of the first cycle")
    period: DurationLike = duration_field(doc="length of the first cycle (or '10ep')", positive=True)
    mult: float = param(
        default=1.0, doc="each cycle is this many times longer than the one before (1 to 1e6)"
    )
    min_lr: float = param(default=0.0, doc="floor of every cycle")
    decay: float = param(
        default=1.0, doc="each cycle's height above min_lr is this many times the last (0 < decay <= 1)"
    )
    steps: DurationLike | None = duration_field(default=None, doc="length inside a chain (default: forever)")
    name = "cosine_restarts"
    summary = "cosine annealing with warm restarts (SGDR)"
    example = "cosine_restarts(lr=0.1, period=10ep, mult=2, min_lr=1e-4)"

    MAX_MULT = 1e6

    def _validate(self) -> None:
        check_number(self.name, "lr", self.lr, low=0)
        check_number(self.name, "mult", self.mult, low=1, high=self.MAX_MULT)
        check_number(self.name, "min_lr", self.min_lr, low=0)
        check_number(self.name, "decay", self.decay, low=0, low_open=True, high=1)
        # for integer steps of 32 and 64 bits, made here: torch.compile would trace the making
        p, m = self.period, float(self.mult)
        tables = {}
        if isinstance(p, Duration) and p.is_steps and m != 1.0:
            tables = {bits: _cycle_table(float(p.value), m, 2 ** (bits - 1) - 1) for bits in (32, 64)}
        object.__setattr__(self, "_cycles", tables)

    def _events(self) -> Iterator[tuple[float, str]]:
        p = steps_of(self.period)
        yield p, f"{self.name}: the first restart (period={step_text(p)})"

    def _fk(self, t: Array, k: Array | None, xp: Namespace) -> Array:
        p, m = steps_of(self.period), self.mult
        table = None if k is None else self.__dict__["_cycles"].get(xp.iinfo(k.dtype).bits)
        if m == 1.0:
            i, tc = divide(t, k, p, xp)
            length = t * 0.0 + p
        elif k is not None and table is not None:
            # an integer step: its cycle from the first steps of the cycles, computed in float64 on the
            # host, in integer arithmetic (a float32 step past 2**24, and the starts computed from it,
            # would put a restart steps away from its place)
            first, late, lengths = table
            at = getattr(k, "device", None)  # None for a traced jax value (jax has no device there)
            starts = xp.asarray(first, dtype=k.dtype, device=at)
            j = xp.searchsorted(starts, k, side="right") - 1  # (indexing keeps the shape; take is 1-d)
            tc = xp.astype(k - starts[j], t.dtype) + xp.asarray(late, dtype=t.dtype, device=at)[j]
            length = xp.asarray(lengths, dtype=t.dtype, device=at)[j]
            i = xp.astype(j, t.dtype)
        else:
            i = xp.floor(xp.log(1.0 + t * (m - 1.0) / p) / math.log(m))
            # the logarithm may land one cycle off at a boundary: correct both ways, against the same
            # starts, so the two corrections cannot undo each other
            for _ in range(2):
                i = xp.where(
                    t < _start_of(i, p, m, xp),
                    i - 1.0,
                    xp.where(t >= _start_of(i + 1.0, p, m, xp), i + 1.0, i),
                )
            start = _start_of(i, p, m, xp)
            tc = t - start
            length = _start_of(i + 1.0, p, m, xp) - start
        # each cycle's peak as lr + (min_lr - lr) * (1 - decay**i): exactly lr in the first
        peak = (
            self.lr
            if self.decay == 1.0
            else self.lr - (self.lr - self.min_lr) * -xp.expm1(i * math.log(self.decay))
        )
        return along(peak, self.min_lr, tc, length, xp, COSINE)


@dataclass(frozen=True)
class Cyclic(Schedule):
    """Cyclical learning rate (Smith, 2017), as torch's ``CyclicLR``.

    With ``c = up + down`` the cycle length, ``cycle = floor(1 + t/c)``, ``x = 1 + t/c - cycle`` and
    ``r = up/c``: the scale is ``x/r`` while rising and ``(x-1)/(r-1)`` while falling, and
    ``lr(t) = lr + (max_lr - lr) * scale * amp``, where ``amp`` is 1 (``triangular``),
    ``1/2**(cycle-1)`` (``triangular2``) or ``gamma**t`` (``exp_range``). ``sine`` replaces the straight
    ramps by half cosines, ``(1 - cos(pi*x/r))/2`` up and ``(1 + cos(pi*(x-r)/(1-r)))/2`` down.

    >>> s = Cyclic(lr=0.1, max_lr=1.0, step_size_up=10)
    >>> s(0), s(5), s(10), s(20)
    (0.1, 0.55, 1.0, 0.1)
    """

    lr: float = param(doc="the base (lowest) learning rate")
    max_lr: float = param(doc="the peak learning rate")
    step_size_up: DurationLike = duration_field(default=2000, doc="steps from base to peak", positive=True)
    step_size_down: DurationLike | None = duration_field(
        default=None, doc="steps from peak to base (default: = up)", positive=True
    )
    mode: Literal["triangular", "triangular2", "exp_range", "sine"] = param(
        default="triangular", doc="triangular, triangular2, exp_range or sine"
    )
    gamma: float = param(default=1.0, doc="exp_range: amplitude multiplier per step")
    steps: DurationLike | None = duration_field(default=None, doc="length inside a chain (default: forever)")
    name = "cyclic"
    summary = "cyclical LR: triangular, triangular2, exp_range or sine"
    example = "cyclic(lr=1e-4, max_lr=1e-2, step_size_up=2000, mode=triangular2)"

    MODES = ("triangular", "triangular2", "exp_range", "sine")

    def _validate(self) -> None:
        check_number(self.name, "lr", self.lr, low=0)
        check_number(self.name, "max_lr", self.max_lr, low=self.lr)
        check_choice(self.name, "mode", self.mode, self.MODES)
        check_number(self.name, "gamma", self.gamma, low=0, low_open=True, high=1)

    def _events(self) -> Iterator[tuple[float, str]]:
        up = steps_of(self.step_size_up)
        down = up if self.step_size_down is None else steps_of(self.step_size_down)
        yield up, f"{self.name}: the first peak (step_size_up={step_text(up)})"
        yield up + down, f"{self.name}: the end of the first cycle (step_size_up + step_size_down)"

    def _fk(self, t: Array, k: Array | None, xp: Namespace) -> Array:
        up = steps_of(self.step_size_up)
        down = up if self.step_size_down is None else steps_of(self.step_size_down)
        c = up + down
        q, x = divide(t, k, c, xp)  # the cycle and the step in it, in [0, c]
        rising = x <= up
        # the fraction of the ramp (up or down) from the base, and to the top: each exactly 0 at its end
        base = xp.clip(xp.where(rising, x / up, (c - x) / down), 0.0, 1.0)
        top = xp.clip(xp.where(rising, (up - x) / up, (x - up) / down), 0.0, 1.0)
        peak: float | Array = self.max_lr
        if self.mode == "triangular2":
            # the first cycle's peak is max_lr exactly, not lr + (max_lr - lr) to the precision of max_lr
            peak = xp.where(q < 1.0, self.max_lr, self.lr + (self.max_lr - self.lr) * 0.5**q)
        elif self.mode == "exp_range":
            peak = self.lr + (self.max_lr - self.lr) * power(self.gamma, t, xp)
        return between(self.lr, peak, base, top, xp, COSINE if self.mode == "sine" else LINE)


@dataclass(frozen=True)
class OneCycle(Schedule):
    """The one-cycle policy (Smith & Topin, 2018), exactly as torch's ``OneCycleLR``.

    ``initial = max_lr / div_factor`` and ``final = initial / final_div_factor``. Two phases: initial ->
    max_lr until step ``pct_start*steps - 1``, then max_lr -> final until ``steps - 1``. With
    ``three_phase``: initial -> max_lr, max_lr -> initial (until ``2*pct_start*steps - 2``), initial -> final.
    Each phase anneals by ``end + (start-end)*(1+cos(pi*p))/2`` (``anneal="cos"``) or linearly. Unlike
    torch, stepping past the end holds the final value instead of going negative or raising.

    >>> s = OneCycle(max_lr=1.0, steps=100)
    >>> round(s(0), 12), round(s(29), 12), s(99) == s(10**6) == 1.0 / 25 / 1e4
    (0.04, 1.0, True)
    """

    max_lr: float = param(doc="the peak learning rate")
    steps: DurationLike = duration_field(default=REST, doc="total length (default: the rest of the run)")
    pct_start: float = param(default=0.3, doc="fraction of the cycle spent rising")
    anneal: Literal["cos", "linear"] = param(default="cos", doc="cos or linear")
    div_factor: float = param(default=25.0, doc="initial lr = max_lr / div_factor")
    final_div_factor: float = param(default=1e4, doc="final lr = initial lr / final_div_factor")
    three_phase: bool = param(default=False, doc="come back down to the initial lr before the final anneal")
    name = "one_cycle"
    summary = "one-cycle: warm up to max_lr, then anneal far below the start"
    example = "one_cycle(max_lr=0.1, pct_start=0.25)"

    def _validate(self) -> None:
        check_number(self.name, "max_lr", self.max_lr, low=0)
        check_number(self.name, "pct_start", self.pct_start, low=0, low_open=True, high=1, high_open=True)
        check_choice(self.name, "anneal", self.anneal, ("cos", "linear"))
        check_number(self.name, "div_factor", self.div_factor, low=0, low_open=True)
        check_number(self.name, "final_div_factor", self.final_div_factor, low=0, low_open=True)
        initial = self.max_lr / self.div_factor
        check_bound(
            self.name, f"the initial lr max_lr / div_factor = {initial:g}", initial, "use a larger div_factor"
        )
        final = initial / self.final_div_factor
        check_bound(
            self.name,
            f"the final lr max_lr / div_factor / final_div_factor = {final:g}",
            final,
            "use a larger final_div_factor",
        )
        n = self.steps
        if isinstance(n, Duration) and n.is_steps:
            ends = self._phase_ends(float(n.value))
            if not all(b > a for a, b in zip([0.0, *ends], ends)):
                raise ValueError(
                    f"{self.name}: steps={n.to_data()} with pct_start={self.pct_start} leaves a phase "
                    f"with no steps (phase ends {', '.join(f'{e:g}' for e in ends)}); use more steps or "
                    "another pct_start"
                )

    def peak(self) -> float:
        initial = self.max_lr / self.div_factor
        return max(self.max_lr, initial, initial / self.final_div_factor)

    def _phase_ends(self, n: float) -> list[float]:
        if self.three_phase:
            return [self.pct_start * n - 1.0, 2.0 * self.pct_start * n - 2.0, n - 1.0]
        return [self.pct_start * n - 1.0, n - 1.0]

    def _f(self, t: Array, xp: Namespace) -> Array:
        initial = self.max_lr / self.div_factor
        final = initial / self.final_div_factor
        ends = self._phase_ends(steps_of(self.steps))
        levels = [initial, self.max_lr, initial, final] if self.three_phase else [initial, self.max_lr, final]
        out = None
        start = 0.0
        values = []
        curve = COSINE if self.anneal == "cos" else LINE
        for i, end in enumerate(ends):
            u = xp.clip((t - start) / (end - start), 0.0, 1.0)
            v = xp.clip((end - t) / (end - start), 0.0, 1.0)
            values.append(between(levels[i], levels[i + 1], u, v, xp, curve))
            start = end
        out = values[-1]
        for end, value in zip(reversed(ends[:-1]), reversed(values[:-1])):
            out = xp.where(t <= end, value, out)
        return out


__all__ = ["CosineRestarts", "Cyclic", "OneCycle"]
