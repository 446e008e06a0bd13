"""Decays: constant, step, multistep, exponential, time-based, inverse square root, polynomial,
linear, cosine and piecewise-linear. ``t`` below is the step (local to the schedule, from 0)."""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np

from ._xp import Array, Namespace, power
from .base import (
    Schedule,
    check_bound,
    check_number,
    const_like,
    divide,
    duration_field,
    durations_field,
    growth,
    param,
    step_text,
    steps_of,
    zero_safe,
)
from .duration import REST, Duration, DurationLike, _short


def _plain(v: object) -> object:
    """A numpy scalar as a Python number (other values are left for the check that names them)."""
    if isinstance(v, np.integer):
        return int(v)
    return float(v) if isinstance(v, np.floating) else v


_LR = "the learning rate"


@dataclass(frozen=True)
class Constant(Schedule):
    """``lr(t) = lr``. With ``steps`` it occupies that many steps of a chain.

    >>> Constant(0.1)(1000)
    0.1
    """

    lr: float = param(doc=_LR)
    steps: DurationLike | None = duration_field(default=None, doc="length inside a chain (default: forever)")
    name = "constant"
    summary = "a fixed learning rate"
    example = "constant(lr=0.1)"

    def _validate(self) -> None:
        check_number(self.name, "lr", self.lr, low=0)

    def _f(self, t: Array, xp: Namespace) -> Array:
        return const_like(t, self.lr)


class _GammaPower:
    """What step decay and exponential decay share: ``lr * gamma ** exponent``; gamma > 1 needs an end
    and a finite last value. A subclass gives ``_exponent()``, the power of gamma at its end."""

    name: ClassVar[str]
    lr: float
    gamma: float
    steps: DurationLike | None

    def _exponent(self) -> float | None:
        raise NotImplementedError

    def _validate(self) -> None:
        check_number(self.name, "lr", self.lr, low=0)
        check_number(self.name, "gamma", self.gamma, low=0, low_open=True)
        self._check_growth(self._exponent())

    def _check_growth(self, exponent: float | None) -> None:
        """gamma > 1 grows the learning rate: it needs an end, and its last value must be finite."""
        if self.gamma <= 1:
            return
        if self.steps is None:
            raise ValueError(
                f"{self.name}: gamma={self.gamma!r} > 1 grows without bound; give steps=... (the "
                "schedule then holds its last value) or use gamma <= 1"
            )
        if exponent is not None:
            check_bound(
                self.name,
                f"lr * gamma**{exponent:g}",
                self.lr * growth(self.gamma, exponent) + growth(self.gamma, exponent) * 0.0,  # NaN when inf
                "use a smaller gamma or fewer steps",
            )

    def peak(self) -> float | None:
        if self.gamma <= 1:
            return float(self.lr)
        e = self._exponent()
        return None if e is None else self.lr * growth(self.gamma, e)


@dataclass(frozen=True)
class StepDecay(_GammaPower, Schedule):
    """Step decay: ``lr(t) = lr * gamma ** floor(t / step_size)`` (torch's ``StepLR``).

    >>> s = StepDecay(lr=1.0, step_size=10, gamma=0.5)
    >>> s(9), s(10), s(25)
    (1.0, 0.5, 0.25)
    """

    lr: float = param(doc=_LR)
    step_size: DurationLike = duration_field(doc="decay every this many steps (or '2ep')", positive=True)
    gamma: float = param(default=0.1, doc="multiplier applied at each decay, > 0")
    steps: DurationLike | None = duration_field(default=None, doc="length inside a chain (default: forever)")
    name = "step"
    summary = "multiply by gamma every step_size steps"
    example = "step(lr=0.1, step_size=30ep, gamma=0.1)"

    def _exponent(self) -> float | None:
        """How many times gamma applies by the end (None: not known until resolved)."""
        n, k = self.steps, self.step_size
        if isinstance(n, Duration) and n.is_steps and isinstance(k, Duration) and k.is_steps:
            return float(math.floor(float(n.value) / float(k.value)))
        return None

    def _events(self) -> Iterator[tuple[float, str]]:
        k = steps_of(self.step_size)
        yield k, f"{self.name}: the first decay (step_size={step_text(k)})"

    def _fk(self, t: Array, k: Array | None, xp: Namespace) -> Array:
        return self.lr * power(self.gamma, divide(t, k, steps_of(self.step_size), xp)[0], xp)


@dataclass(frozen=True)
class MultiStep(Schedule):
    """Multistep decay: ``lr(t) = lr * gamma ** #{m in milestones : m <= t}`` (torch's ``MultiStepLR``).

    >>> s = MultiStep(lr=0.1, milestones=[30, 60, 90], gamma=0.1)
    >>> [round(s(t), 6) for t in (29, 30, 60, 95)]
    [0.1, 0.01, 0.001, 0.0001]
    """

    lr: float = param(doc=_LR)
    milestones: Sequence[DurationLike] = durations_field(
        default=(), doc="increasing steps (or epochs) where lr *= gamma"
    )
    gamma: float = param(default=0.1, doc="multiplier at each milestone, > 0")
    steps: DurationLike | None = duration_field(default=None, doc="length inside a chain (default: forever)")
    name = "multistep"
    summary = "multiply by gamma at each milestone"
    example = "multistep(lr=0.1, milestones=[30ep, 60ep, 90ep], gamma=0.1)"

    def _validate(self) -> None:
        check_number(self.name, "lr", self.lr, low=0)
        check_number(self.name, "gamma", self.gamma, low=0, low_open=True)
        ms = [d for d in self.milestones if isinstance(d, Duration)]
        for a, b in itertools.pairwise(ms):
            if a.unit == b.unit and not a.value < b.value:
                raise ValueError(
                    f"{self.name}: milestones must be strictly increasing, got "
                    f"{[d.to_data() for d in ms][:10]} ({a.to_data()!r} then {b.to_data()!r})"
                )
        check_bound(
            self.name,
            f"lr * gamma**{len(ms)} (one gamma per milestone)",
            self.peak(),
            "use a smaller gamma or fewer milestones",
        )

    def peak(self) -> float:
        g = growth(self.gamma, len(self.milestones))
        return max(float(self.lr), self.lr * g) if math.isfinite(g) else math.inf  # gamma**n itself overflows

    def _events(self) -> Iterator[tuple[float, str]]:
        for i, d in enumerate(self.milestones):
            m = steps_of(d)
            yield m, f"{self.name} milestones[{i}]={step_text(m)}"

    def _fk(self, t: Array, k: Array | None, xp: Namespace) -> Array:
        count = t * 0.0
        for d in self.milestones:
            m = steps_of(d)
            # an integer step as an integer: t >= m is k >= ceil(m) (a float32 t is off past 2**24)
            passed = t >= m if k is None or math.ceil(m) > xp.iinfo(k.dtype).max else k >= math.ceil(m)
            count = count + xp.astype(passed, t.dtype)
        return self.lr * power(self.gamma, count, xp)


def _staircase_event(name: str, staircase: bool, every: DurationLike) -> Iterator[tuple[float, str]]:
    """A staircase decay's first jump, at ``every`` (a smooth one has no event: ``every`` is a scale)."""
    if staircase:
        k = steps_of(every)
        yield k, f"{name}: the first decay (every={step_text(k)}, staircase)"


@dataclass(frozen=True)
class Exponential(_GammaPower, Schedule):
    """Exponential decay per step: ``lr(t) = lr * gamma ** (t / every)``, with ``floor`` when
    ``staircase`` (torch's ``ExponentialLR`` with ``every=1``; optax's ``exponential_decay``).

    >>> Exponential(lr=1.0, gamma=0.5)(3)
    0.125
    """

    lr: float = param(doc=_LR)
    gamma: float = param(default=0.99, doc="multiplier per `every` steps, > 0")
    every: DurationLike = duration_field(default=1, doc="steps per application of gamma", positive=True)
    staircase: bool = param(default=False, doc="decay in discrete jumps")
    steps: DurationLike | None = duration_field(default=None, doc="length inside a chain (default: forever)")
    name = "exponential"
    summary = "lr * gamma**(t/every)"
    example = "exponential(lr=0.1, gamma=0.999)"

    def _exponent(self) -> float | None:
        """The power of gamma at the end (None: not known until resolved)."""
        n, k = self.steps, self.every
        if isinstance(n, Duration) and n.is_steps and isinstance(k, Duration) and k.is_steps:
            e = float(n.value) / float(k.value)
            return float(math.floor(e)) if self.staircase else e
        return None

    def _events(self) -> Iterator[tuple[float, str]]:
        return _staircase_event(self.name, self.staircase, self.every)

    def _fk(self, t: Array, k: Array | None, xp: Namespace) -> Array:
        n = steps_of(self.every)
        return self.lr * power(self.gamma, divide(t, k, n, xp)[0] if self.staircase else t / n, xp)


@dataclass(frozen=True)
class ExpDecay(Schedule):
    """Continuous exponential decay: ``lr(t) = lr * exp(-k * t)``.

    >>> round(ExpDecay(lr=1.0, k=0.1)(10), 6)
    0.367879
    """

    lr: float = param(doc=_LR)
    k: float = param(doc="decay rate per step, >= 0")
    steps: DurationLike | None = duration_field(default=None, doc="length inside a chain (default: forever)")
    name = "exp_decay"
    summary = "lr * exp(-k*t)"
    example = "exp_decay(lr=0.1, k=1e-3)"

    def _validate(self) -> None:
        check_number(self.name, "lr", self.lr, low=0)
        check_number(self.name, "k", self.k, low=0)

    def _f(self, t: Array, xp: Namespace) -> Array:
        return self.lr * xp.exp(-self.k * t)


@dataclass(frozen=True)
class InverseTime(Schedule):
    """Time-based decay: ``lr(t) = lr / (1 + k * t / every)``, ``floor(t / every)`` when ``staircase``
    (Keras' ``InverseTimeDecay``; the classic ``lr0 / (1 + k t)`` with ``every=1``).

    >>> InverseTime(lr=1.0, k=0.5)(2)
    0.5
    """

    lr: float = param(doc=_LR)
    k: float = param(doc="decay rate, >= 0")
    every: DurationLike = duration_field(default=1, doc="steps per unit of time", positive=True)
    staircase: bool = param(default=False, doc="decay in discrete jumps")
    steps: DurationLike | None = duration_field(default=None, doc="length inside a chain (default: forever)")
    name = "inverse_time"
    summary = "lr / (1 + k*t/every), time-based decay"
    example = "inverse_time(lr=0.1, k=1e-3)"

    def _validate(self) -> None:
        check_number(self.name, "lr", self.lr, low=0)
        check_number(self.name, "k", self.k, low=0)

    def _events(self) -> Iterator[tuple[float, str]]:
        return _staircase_event(self.name, self.staircase, self.every)

    def _fk(self, t: Array, k: Array | None, xp: Namespace) -> Array:
        n = steps_of(self.every)
        return self.lr / (1.0 + self.k * (divide(t, k, n, xp)[0] if self.staircase else t / n))


@dataclass(frozen=True)
class InverseSqrt(Schedule):
    """Inverse square root: ``lr(t) = lr * sqrt(timescale / (t + timescale))``.

    After ``warmup(steps=w - 1)`` with ``timescale=w`` this is the transformer ("Noam") schedule at
    the paper's 1-based step number ``n = t + 1``: ``lr * sqrt(w / n)`` from the peak at ``t = w - 1``
    on (Vaswani et al., 2017; :func:`lrkit.recipes.transformer_noam`).

    >>> InverseSqrt(lr=1.0, timescale=100)(300)
    0.5
    """

    lr: float = param(doc=_LR)
    timescale: DurationLike = duration_field(
        default=1, doc="steps until lr has fallen by 1/sqrt(2)", positive=True
    )
    steps: DurationLike | None = duration_field(default=None, doc="length inside a chain (default: forever)")
    name = "inverse_sqrt"
    summary = "lr * sqrt(timescale/(t+timescale)), the transformer decay"
    example = "warmup(4000) >> inverse_sqrt(lr=1e-3, timescale=4000)"

    def _validate(self) -> None:
        check_number(self.name, "lr", self.lr, low=0)

    def _f(self, t: Array, xp: Namespace) -> Array:
        # as lr / sqrt(1 + t / ts): exactly lr at 0 (torch computes ts / (t + ts) as (t + ts)**-1 * ts)
        return self.lr / xp.sqrt(1.0 + t / steps_of(self.timescale))


# -- interpolation from the nearer end ---------------------------------------------------------
@dataclass(frozen=True)
class Curve:
    """A way from one value to another, for :func:`between`: ``up(x)`` is the part of the way done after
    a fraction ``x`` of the time, ``down(x) = 1 - up(1 - x)`` the part still to go with a fraction ``x``
    of the time left (None: the curve is symmetric, ``down = up``). Each is written so that it is
    exactly 0 at ``x = 0`` and accurate near it (no ``1 - ...`` of a value near 1), and differentiable
    on ``[0, 1/2]``, all :func:`between` evaluates it on."""

    up: Callable[[Array, Namespace], Array]
    down: Callable[[Array, Namespace], Array] | None = None


def _identity(x: Array, xp: Namespace) -> Array:
    return x


def _half_sine_squared(x: Array, xp: Namespace) -> Array:
    s = xp.sin((0.5 * math.pi) * x)  # (1 - cos(pi x)) / 2, with no 1 - cos(pi x) to cancel near 0
    return s * s


#: straight: ``up(x) = down(x) = x``
LINE = Curve(_identity)
#: the half cosine: ``up(x) = (1 - cos(pi x)) / 2 = sin(pi x / 2)**2``, its own complement
COSINE = Curve(_half_sine_squared)


def polynomial_curve(p: float) -> Curve:
    """The polynomial decay's way, ``1 - (1 - x)**p``: ``up(x) = -expm1(p * log1p(-x))`` (accurate for
    small ``x``, where ``1 - (1 - x)**p`` keeps only the precision of 1), ``down(x) = x**p``."""

    def up(x: Array, xp: Namespace) -> Array:
        return -xp.expm1(p * xp.log1p(-x))

    def down(x: Array, xp: Namespace) -> Array:
        return zero_safe(lambda y: y**p, x, xp)  # power < 1: d/dx is inf at 0

    return Curve(up, down)


def between(
    start: float | Array, end: float | Array, u: Array, v: Array, xp: Namespace, curve: Curve = LINE
) -> Array:
    """From ``start`` to ``end`` along ``curve``, at ``u`` of the way in time and ``v = 1 - u`` left:
    ``start + (end - start) * up(u)``, computed from the nearer end: with ``x = min(u, v)``,
    ``start + (end - start) * up(x)`` where ``u < v`` and ``end + (start - end) * down(x)`` elsewhere.

    ``u`` and ``v`` are each computed directly (``t / n`` and ``(n - t) / n``, not ``1 - t / n``), so
    each is exactly 0 at its own end, and so ``u = 0`` gives ``start`` and ``v = 0`` gives ``end``
    exactly, in float32 too, whatever their sizes: computed from one end only, ``start + (end - start)``
    rounds ``start`` to the precision of ``end`` (2.4e-4 off for ``1.2e-4 -> 1``) and XLA's
    ``t * (1 / n)`` may leave ``n / n`` an ulp below 1 (a cosine to 0 ending at 8.8e-15). In between,
    the values are the formula's to float rounding, and the derivative is the selected side's.
    """
    near = u < v
    x = xp.where(near, u, v)  # in [0, 1/2] (give or take rounding): both sides are finite there
    a = curve.up(x, xp)
    b = a if curve.down is None else curve.down(x, xp)
    return xp.where(near, start + (end - start) * a, end + (start - end) * b)


def along(start: float, end: float, t: Array, n: float, xp: Namespace, curve: Curve = LINE) -> Array:
    """:func:`between` at step ``t`` of ``n`` (``t`` in ``[0, n]``): ``u = t / n``, ``v = (n - t) / n``.

    >>> along(1.2e-4, 1.0, np.array([0.0, 41.0]), 41.0, np).tolist()
    [0.00012, 1.0]
    """
    return between(start, end, t / n, (n - t) / n, xp, curve)


@dataclass(frozen=True)
class Polynomial(Schedule):
    """Polynomial decay: ``lr(t) = (lr - end_lr) * (1 - t/steps) ** power + end_lr``
    (torch's ``PolynomialLR`` with ``end_lr=0``; optax's ``polynomial_schedule``).

    Computed from the nearer end (:func:`between`), so both ends are exact in float32 too.

    >>> Polynomial(lr=1.0, steps=10, power=2.0)(5)
    0.25
    """

    lr: float = param(doc=_LR)
    steps: DurationLike = duration_field(default=REST, doc="decay length (default: the rest of the run)")
    power: float = param(default=1.0, doc="exponent, > 0")
    end_lr: float = param(default=0.0, doc="value reached at the end")
    name = "polynomial"
    summary = "(lr-end_lr)*(1-t/steps)**power + end_lr"
    example = "polynomial(lr=0.1, steps=1000, power=2.0)"

    def _validate(self) -> None:
        check_number(self.name, "lr", self.lr, low=0)
        check_number(self.name, "power", self.power, low=0, low_open=True)
        check_number(self.name, "end_lr", self.end_lr, low=0)

    def _f(self, t: Array, xp: Namespace) -> Array:
        return along(self.lr, self.end_lr, t, steps_of(self.steps), xp, polynomial_curve(self.power))


@dataclass(frozen=True)
class Linear(Schedule):
    """Linear from ``lr`` to ``end_lr`` over ``steps``: ``lr + (end_lr - lr) * t / steps``
    (torch's ``LinearLR`` with ``lr = base*start_factor``, ``end_lr = base*end_factor``).

    Computed from the nearer end (:func:`between`), so both ends are exact in float32 too.

    >>> Linear(lr=1.0, steps=4, end_lr=0.0)(1)
    0.75
    """

    lr: float = param(doc="value at step 0")
    steps: DurationLike = duration_field(default=REST, doc="length (default: the rest of the run)")
    end_lr: float = param(default=0.0, doc="value at the end")
    name = "linear"
    summary = "straight line from lr to end_lr"
    example = "linear(lr=5e-5, end_lr=0)"

    def _validate(self) -> None:
        check_number(self.name, "lr", self.lr, low=0)
        check_number(self.name, "end_lr", self.end_lr, low=0)

    def _f(self, t: Array, xp: Namespace) -> Array:
        return along(self.lr, self.end_lr, t, steps_of(self.steps), xp)


@dataclass(frozen=True)
class Cosine(Schedule):
    """Cosine annealing: ``lr(t) = min_lr + (lr - min_lr) * (1 + cos(pi * t / steps)) / 2``
    (Loshchilov & Hutter, 2017; torch's ``CosineAnnealingLR`` up to ``T_max``, then held).

    Computed from the nearer end (:func:`between`), so both ends are exact in float32 too.

    >>> s = Cosine(lr=1.0, steps=100, min_lr=0.1)
    >>> s(0), round(s(50), 6), s(100), s(10**9)
    (1.0, 0.55, 0.1, 0.1)
    """

    lr: float = param(doc="value at step 0")
    steps: DurationLike = duration_field(default=REST, doc="length (default: the rest of the run)")
    min_lr: float = param(default=0.0, doc="floor reached at the end")
    name = "cosine"
    summary = "half cosine from lr down to min_lr"
    example = "cosine(lr=3e-4, min_lr=3e-5)"

    def _validate(self) -> None:
        check_number(self.name, "lr", self.lr, low=0)
        check_number(self.name, "min_lr", self.min_lr, low=0)

    def _f(self, t: Array, xp: Namespace) -> Array:
        return along(self.lr, self.min_lr, t, steps_of(self.steps), xp, COSINE)


@dataclass(frozen=True)
class Piecewise(Schedule):
    """Piecewise linear through ``points`` ``[(step, lr), ...]``; flat before the first and after the last.

    >>> s = Piecewise(points=[(0, 0.0), (10, 1.0), (30, 0.0)])
    >>> s(5), s(20), s(99)
    (0.5, 0.5, 0.0)
    """

    points: Sequence[tuple[DurationLike, float]] = field(
        default=(), metadata={"kind": "points", "doc": "[(step, lr), ...] with increasing steps"}
    )
    name = "piecewise"
    length_field = None
    summary = "straight lines through given (step, lr) points"
    example = "piecewise(points=[[0, 0.0], [10%, 1e-3], [100%, 1e-5]])"

    def _validate(self) -> None:
        pts: list[tuple[Duration, float]] = []
        raw: Any = self.points
        if isinstance(raw, (str, bytes)) or not hasattr(raw, "__iter__"):
            raise TypeError(f"{self.name}: points must be a list of [step, lr] pairs, got {_short(raw)}")
        for i, p in enumerate(raw):
            if isinstance(p, (str, bytes)) or not hasattr(p, "__len__") or len(p) != 2:
                raise ValueError(f"{self.name}: points[{i}] must be a [step, lr] pair, got {_short(p)}")
            d = Duration.parse(p[0], name=f"{self.name}: points[{i}] step")
            if d.unit == "rest":
                raise ValueError(f"{self.name}: points[{i}] step cannot be 'rest'")
            y: Any = _plain(p[1])
            check_number(self.name, f"points[{i}] lr", y, low=0)
            pts.append((d, y))
        if not pts:
            raise ValueError(f"{self.name}: points must hold at least one [step, lr] pair, got {_short(raw)}")
        for (a, _), (b, _) in itertools.pairwise(pts):
            if a.unit == b.unit and not a.value < b.value:
                raise ValueError(
                    f"{self.name}: point steps must be strictly increasing, "
                    f"got {a.to_data()!r} then {b.to_data()!r}"
                )
        object.__setattr__(self, "points", tuple(pts))

    @property
    def length(self) -> Duration | None:
        return self.points[-1][0] if self.points else None  # type: ignore[return-value]

    def peak(self) -> float:
        return max(float(y) for _, y in self.points)

    def _f(self, t: Array, xp: Namespace) -> Array:
        """Segment by segment, ``y0 * (1 - r) + y1 * r`` with ``r = (t - x0) / (x1 - x0)`` in [0, 1]: two
        non-negative terms, so never below 0 and never inf, however close the points are."""
        xs = [steps_of(d) for d, _ in self.points]
        ys = [float(y) for _, y in self.points]
        out = const_like(t, ys[-1])
        for x0, x1, y0, y1 in reversed(list(zip(xs, xs[1:], ys, ys[1:]))):
            r = (xp.clip(t, x0, x1) - x0) / (x1 - x0)
            out = xp.where(t < x1, y0 * (1.0 - r) + y1 * r, out)
        return out


__all__ = [
    "COSINE",
    "LINE",
    "Constant",
    "Cosine",
    "Curve",
    "ExpDecay",
    "Exponential",
    "InverseSqrt",
    "InverseTime",
    "Linear",
    "MultiStep",
    "Piecewise",
    "Polynomial",
    "StepDecay",
    "along",
    "between",
    "polynomial_curve",
]
