"""Warmup in front of any schedule, and warmup-stable-decay."""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Literal

from ._xp import Array, Namespace, power
from .base import Schedule, check_choice, check_number, const_like, duration_field, param, steps_of, zero_safe
from .basic import COSINE, LINE, Curve, along, between
from .duration import REST, Duration, DurationLike, fraction, percent_text


def warmup_factor(t: Array, n: float, start: float | None, mode: str, xp: Namespace) -> Array:
    """The warmup multiplier at step ``t`` of ``n``: ``start`` at ``t = 0``, 1 at ``t = n``.

    linear: ``start + (1 - start) * t / n``; with ``start=None``, ``(t + 1) / (n + 1)`` (``start =
    1 / (n + 1)``), so that the first step already moves (a warmup that starts at exactly 0 wastes it).
    exponential: ``start ** (1 - t / n)`` (``start`` defaults to 0.01).

    Both from the nearer end (:func:`~lrkit.schedules.basic.between`), so both ends are exact in float32
    too; the exponential one as ``start * (1 / start) ** (t / n)`` in the first half and
    ``start ** ((n - t) / n)`` in the second. With ``n = 0`` (no warmup) it is 1 at every step.
    """
    if n == 0:
        return const_like(t, 1.0)
    if mode == "linear":
        return along(1.0 / (n + 1.0) if start is None else start, 1.0, t, n, xp)
    s = 0.01 if start is None else start
    u, v = t / n, (n - t) / n
    near = u < v
    x = xp.where(near, u, v)
    return xp.where(near, s * power(1.0 / s, x, xp), power(s, x, xp))


@dataclass(frozen=True)
class Warmup(Schedule):
    """Warmup from ``start * peak`` to ``peak`` over ``steps``.

    In a chain, a warmup whose ``lr`` is None ramps to the value the next piece starts at, so
    ``warmup(500) >> cosine(lr=3e-4)`` warms up to 3e-4. Alone, with ``lr=None``, it is a multiplier
    rising to 1. The factor is :func:`warmup_factor`.

    With ``overlap=True`` the next piece in the chain starts with the warmup instead of after it, and
    the warmup takes its place for its first ``steps`` steps: at step ``t >= steps`` the chain is the
    next piece at ``t``, not ``t - steps`` (timm's default, ``warmup_prefix=False``). The next piece
    must outlast the warmup. With no next piece (alone, or last in a chain) it is a plain warmup.

    ``steps=0`` (``warmup(0)``, ``warmup(0%)``, ``warmup(0ep)``) is no warmup, as transformers'
    ``num_warmup_steps=0``: ``warmup(0) >> s`` is ``s`` at every step, and alone it is its peak.

    >>> w = Warmup(steps=4, lr=1.0)
    >>> [w(t) for t in range(6)]
    [0.2, 0.4, 0.6, 0.8, 1.0, 1.0]
    >>> Warmup(steps=4, start=0.0, lr=1.0)(1)
    0.25
    >>> from lrkit.schedules import Linear
    >>> s = Warmup(steps=2, start=0.0, overlap=True) >> Linear(lr=1.0, end_lr=0.0, steps=4)
    >>> [s(t) for t in range(5)], s.length
    ([0.0, 0.5, 0.5, 0.25, 0.0], steps(4))
    """

    steps: DurationLike = duration_field(default=1, doc="warmup length")
    start: float | None = param(
        default=None, doc="start as a fraction of the peak (default: linear (t+1)/(n+1), exp 0.01)"
    )
    mode: Literal["linear", "exponential"] = param(default="linear", doc="linear or exponential")
    lr: float | None = param(default=None, doc="the peak (default: the next piece's first value, or 1)")
    overlap: bool = param(
        default=False, doc="the next piece starts with the warmup, not after it (timm's warmup_prefix=False)"
    )
    name = "warmup"
    zero_length_ok = True
    summary = "ramp up to the next piece's value (linear or exponential)"
    example = "warmup(steps=500) >> cosine(lr=3e-4, min_lr=3e-5)"

    def _validate(self) -> None:
        check_choice(self.name, "mode", self.mode, ("linear", "exponential"))
        if self.start is not None:
            if self.mode == "exponential":
                check_number(self.name, "start", self.start, low=0, low_open=True, high=1)
            else:
                check_number(self.name, "start", self.start, low=0, high=1)
        if self.lr is not None:
            check_number(self.name, "lr", self.lr, low=0)
        if isinstance(self.steps, Duration) and self.steps.unit == "rest":
            raise ValueError(f"{self.name}: steps must be a length, not 'rest'")

    def peak(self) -> float:
        return 1.0 if self.lr is None else float(self.lr)

    def _f(self, t: Array, xp: Namespace) -> Array:
        w = warmup_factor(t, steps_of(self.steps), self.start, self.mode, xp)
        return w if self.lr is None else self.lr * w


def _sqrt_done(x: Array, xp: Namespace) -> Array:
    return zero_safe(xp.sqrt, x, xp)  # d/dx is inf at 0


def _sqrt_left(x: Array, xp: Namespace) -> Array:
    return x / (1.0 + xp.sqrt(1.0 - x))  # 1 - sqrt(1 - x), with no 1 - sqrt(...) to cancel near 0


#: WSD's cool-downs, as the way from lr to min_lr: 1-sqrt leaves ``1 - sqrt(s)`` of it after ``s``
_COOLDOWN_CURVES = {"linear": LINE, "cosine": COSINE, "1-sqrt": Curve(_sqrt_done, _sqrt_left)}
COOLDOWNS = tuple(_COOLDOWN_CURVES)
#: WSD's cool-down when ``decay`` is left out: this fraction of its own length (Hägele et al. 2024)
DEFAULT_DECAY = 0.2


@dataclass(frozen=True)
class WSD(Schedule):
    """Warmup-stable-decay ("trapezoidal"; Zhai et al. 2022, Hägele et al. 2024).

    Warm up over ``warmup`` (as :func:`warmup_factor`), hold ``lr``, then cool down over the last
    ``decay`` steps to ``min_lr``: with ``s`` the fraction of the cool-down done, the factor is
    ``1 - s`` (linear), ``(1 + cos(pi s)) / 2`` (cosine) or ``1 - sqrt(s)`` (1-sqrt), computed from the
    nearer end (:func:`~lrkit.schedules.basic.between`): the stable phase is exactly ``lr`` and the end
    exactly ``min_lr``, in float32 too.

    Left out, ``decay`` is :data:`DEFAULT_DECAY` (20%) of the schedule's own length,
    ``ceil(0.2 * steps)``, so ``wsd(lr=1, steps=100)`` cools down over its last 20 steps in a run of any
    length. With ``steps="rest"`` (its default) it is ``decay="20%"``, 20% of the whole run (also after a
    separate ``warmup(...) >>``), and is kept as the default. A written percent, as every duration's,
    is a percent of the run: ``wsd(lr=1, steps=100, decay="20%")`` in a 1000-step run asks for 200 steps.

    >>> s = WSD(lr=1.0, steps=100, warmup=10, decay=20, cooldown="linear")
    >>> round(s(9), 6), s(50), s(90), s(100)
    (0.909091, 1.0, 0.5, 0.0)
    >>> WSD(lr=1.0, steps=100, cooldown="linear")(90)  # the default cool-down: the last 20 steps
    0.5
    """

    lr: float = param(doc="the stable (peak) learning rate")
    steps: DurationLike = duration_field(default=REST, doc="total length (default: the rest of the run)")
    warmup: DurationLike = duration_field(default=0, doc="warmup length")
    decay: DurationLike | None = duration_field(
        default=None, doc="cool-down length at the end (default: 20% of steps; of the run when steps is rest)"
    )
    cooldown: Literal["linear", "cosine", "1-sqrt"] = param(default="1-sqrt", doc="linear, cosine or 1-sqrt")
    min_lr: float = param(default=0.0, doc="value at the end")
    warmup_start: float | None = param(default=None, doc="warmup start as a fraction of lr (see warmup)")
    name = "wsd"
    summary = "warmup-stable-decay with a linear, cosine or 1-sqrt cool-down"
    example = "wsd(lr=3e-4, warmup=2%, decay=20%, cooldown=1-sqrt)"

    def _validate(self) -> None:
        check_number(self.name, "lr", self.lr, low=0)
        check_number(self.name, "min_lr", self.min_lr, low=0)
        check_choice(self.name, "cooldown", self.cooldown, COOLDOWNS)
        if self.warmup_start is not None:
            check_number(self.name, "warmup_start", self.warmup_start, low=0, high=1)
        if self.steps == REST and self.decay == fraction(DEFAULT_DECAY):  # the default itself: one form,
            object.__setattr__(self, "decay", None)  # so 'wsd(lr=1, decay=20%)' prints as 'wsd(lr=1)'
        n, w, d = self.steps, self.warmup, self._decay()
        if (
            isinstance(n, Duration)
            and isinstance(w, Duration)
            and isinstance(d, Duration)
            and n.is_steps
            and w.is_steps
            and d.is_steps
            and w.value + d.value > n.value
        ):
            default = (
                "" if self.decay is not None else f", the default {percent_text(DEFAULT_DECAY)}% of steps"
            )
            raise ValueError(
                f"{self.name}: warmup ({w.to_data()}) + decay ({d.to_data()}{default}) "
                f"must fit in steps ({n.to_data()})"
            )

    def _decay(self) -> DurationLike:
        """``decay``, or where it is left out, :data:`DEFAULT_DECAY` of ``steps`` once that is in steps
        (rounded up, as a fraction of the run is); else the fraction itself, which resolves against the
        run (``steps="rest"``: the run is what the schedule fills) or waits for ``steps`` to resolve."""
        if self.decay is not None:
            return self.decay
        n = self.steps
        if isinstance(n, Duration) and n.is_steps:
            return Duration(fraction(DEFAULT_DECAY).to_steps(float(n.value), None))
        return fraction(DEFAULT_DECAY)

    def _resolve(self, total: float | None, spe: float | None, span: float | None) -> WSD:
        """A left-out ``decay`` with ``steps="rest"`` becomes 20% of the run (``total``) in steps, as
        ``decay="20%"`` does; otherwise it stays left out and follows the resolved ``steps``."""
        if self.decay is None and self.steps == REST and total is not None:
            decay = Duration(fraction(DEFAULT_DECAY).to_steps(total, spe))
            return replace(self, decay=decay)._resolve(total, spe, span)
        return super()._resolve(total, spe, span)

    def _f(self, t: Array, xp: Namespace) -> Array:
        n, w, d = steps_of(self.steps), steps_of(self.warmup), steps_of(self._decay())
        if d > 0:
            done, left = xp.clip((t - (n - d)) / d, 0.0, 1.0), xp.clip((n - t) / d, 0.0, 1.0)
            body = between(self.lr, self.min_lr, done, left, xp, _COOLDOWN_CURVES[self.cooldown])
        else:
            body = const_like(t, self.lr)
        if w <= 0:
            return body
        ramp = self.lr * warmup_factor(xp.clip(t, 0.0, w), w, self.warmup_start, "linear", xp)
        return xp.where(t < w, ramp, body)


__all__ = ["COOLDOWNS", "DEFAULT_DECAY", "WSD", "Warmup", "warmup_factor"]


def refuse_bare_warmup(s: Schedule, how: str = "", remedy: str = "") -> None:
    """Raise when ``s`` is, or ends in, a :class:`Warmup` with no ``lr``, used as LRs: alone such a
    warmup is a multiplier rising to 1 (in a chain it ramps to the next piece's value), so every LR
    would become 1.0. ``how`` says how the schedule is used, ``remedy`` adds a way out."""
    from .compose import Chain

    last = s
    while isinstance(last, Chain):
        last = last.pieces[-1]
    if isinstance(last, Warmup) and last.lr is None:
        raise ValueError(
            f"schedule: {str(s)!r} ends in a warmup with no lr, a multiplier rising to 1: as LRs{how} "
            "every LR would become 1.0. Follow it with the LR to reach (warmup(100) >> constant(3e-4)) "
            f"or give it lr=...{remedy}"
        )
