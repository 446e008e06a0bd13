"""The framework-free LR range test: drive any training step with a ramp of learning rates.

The range test (Smith, 2017, "Cyclical Learning Rates for Training Neural Networks", section 3.3)
trains for a few steps while the learning rate grows from ``start_lr`` to ``end_lr`` and records the
loss at every rung. The core here knows nothing about frameworks: it calls ``step(lr) -> loss`` once per
rung and decides when to stop. The PyTorch driver (:mod:`lrkit.finder.torch_driver`) builds ``step``.

Only numpy is imported here.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
from numpy.typing import NDArray

from lrkit._checks import as_measured, as_real, check_int
from lrkit.finder.result import Curve, FinderResult
from lrkit.finder.rules import RULES

__all__ = ["Curve", "ema_debiased", "lr_ramp", "range_test", "sweep"]

Mode = Literal["exp", "linear"]

#: Defaults shared by the core and the PyTorch driver.
START_LR = 1e-7
END_LR = 10.0
NUM_STEPS = 100
#: the most rungs a range test may have (a ramp of 10**9 took 8 GB before the first step)
MAX_RUNGS = 1_000_000
SMOOTHING = 0.9
DIVERGE_FACTOR = 4.0
DIVERGE_PATIENCE = 3
#: raw losses whose median is the starting level of :class:`StopRule`'s ``rise`` test
RISE_HEAD = 10


def _check_positive_float(name: str, value: object) -> float:
    x = as_real(value)  # numpy scalars and 0-d tensors too
    if x is None:
        raise TypeError(f"{name} must be a real number, got {value!r} ({type(value).__name__})")
    if not math.isfinite(x) or x <= 0:
        raise ValueError(f"{name} must be a finite number > 0, got {value!r}")
    return x


def _check_int(name: str, value: object, minimum: int) -> int:
    return check_int(value, name, minimum, type_error=numbers.Integral)


def lr_ramp(start_lr: float, end_lr: float, num_steps: int, mode: Mode = "exp") -> NDArray[np.float64]:
    """The learning rates of the range test, one per rung.

    ``exp``: :math:`\\eta_i = \\eta_0 (\\eta_{end}/\\eta_0)^{i/(n-1)}`; ``linear``:
    :math:`\\eta_i = \\eta_0 + (\\eta_{end}-\\eta_0)\\, i/(n-1)`, for :math:`i = 0..n-1`. Both include the two
    ends (the ramp of torch-lr-finder).

    >>> lr_ramp(1e-3, 1e-1, 3).tolist()
    [0.001, 0.01, 0.1]
    >>> lr_ramp(0.1, 0.3, 3, mode="linear").round(12).tolist()
    [0.1, 0.2, 0.3]
    """
    start = _check_positive_float("start_lr", start_lr)
    end = _check_positive_float("end_lr", end_lr)
    if end <= start:
        raise ValueError(f"end_lr must be greater than start_lr={start!r}, got {end!r}")
    n = _check_int("num_steps", num_steps, 2)
    if n > MAX_RUNGS:  # each rung is an optimizer step; the ramp is built in memory before the first
        raise ValueError(f"num_steps must be at most {MAX_RUNGS:,} (rungs of the range test), got {n:,}")
    frac = np.arange(n, dtype=np.float64) / (n - 1)
    if mode == "exp":
        lrs = start * (end / start) ** frac
    elif mode == "linear":
        lrs = start + (end - start) * frac
    else:
        raise ValueError(f"mode must be 'exp' or 'linear', got {mode!r}")
    lrs[0], lrs[-1] = start, end  # exact ends, no rounding drift
    return lrs


def ema_debiased(losses: Sequence[float] | NDArray[np.float64], beta: float) -> NDArray[np.float64]:
    """Debiased exponential moving average (Adam's bias correction, fastai's ``AvgSmoothLoss``).

    :math:`a_i = \\beta a_{i-1} + (1-\\beta) \\ell_i`, :math:`a_{-1} = 0`, and
    :math:`s_i = a_i / (1 - \\beta^{i+1})`; so :math:`s_0 = \\ell_0` and ``beta=0`` returns the input.

    >>> ema_debiased([1.0, 3.0], 0.5).round(6).tolist()
    [1.0, 2.333333]
    """
    b = check_smoothing(beta)
    x = np.asarray(losses, dtype=np.float64)
    out = np.empty_like(x)
    avg = 0.0
    for i, v in enumerate(x):
        avg = b * avg + (1.0 - b) * v
        out[i] = avg / (1.0 - b ** (i + 1))
    return out


def check_smoothing(beta: object) -> float:
    b = as_real(beta)
    if b is None:
        raise TypeError(f"smoothing must be a real number in [0, 1), got {beta!r}")
    if not 0.0 <= b < 1.0:
        raise ValueError(f"smoothing must be in [0, 1), got {beta!r}")
    return b


@dataclass(frozen=True)
class StopRule:
    """When to end the ramp early.

    The test stops at the first non-finite loss, or once the raw loss has stayed above
    ``factor`` times the best smoothed loss for ``patience`` consecutive rungs (a single spike does
    not end it). With ``rise`` it also stops as soon as the smoothed loss has climbed back above its
    minimum by more than ``rise`` times the drop :math:`D = \\ell_0 - \\ell_{min}` (:math:`\\ell_0`: the
    median of the first :data:`RISE_HEAD` raw losses): the bottom of the curve is then behind the ramp,
    which is all a rule needs (used when the ramp's steps are kept as training, where every rung past
    the bottom is wasted compute).
    """

    factor: float = DIVERGE_FACTOR
    patience: int = DIVERGE_PATIENCE
    rise: float | None = None

    def __post_init__(self) -> None:
        factor = _check_positive_float("diverge_factor", self.factor)
        if factor <= 1.0:
            raise ValueError(f"diverge_factor must be > 1, got {self.factor!r}")
        object.__setattr__(self, "factor", factor)  # numpy's numbers as Python's
        object.__setattr__(self, "patience", _check_int("diverge_patience", self.patience, 1))
        if self.rise is not None:
            object.__setattr__(self, "rise", _check_positive_float("rise", self.rise))


def _risen(raw: list[float], smoothed: float, best: float, best_at: int, rise: float) -> bool:
    """Whether the smoothed loss is more than ``rise`` x the drop above its minimum (see StopRule),
    counting only a drop that stands out of the noise: more than 3 x the robust std of the raw loss's
    rung-to-rung differences before the minimum (so a wiggle on a flat start never stops the ramp). The
    minimum must come after the first RISE_HEAD rungs, whose median is the start: the smoothed loss of
    the first few rungs is little more than one raw loss, and its noise is no drop."""
    if len(raw) <= RISE_HEAD or smoothed <= best or best_at < RISE_HEAD:
        return False  # the drop is from the head's level to a minimum after it
    start = float(np.median(raw[:RISE_HEAD]))
    drop = start - best
    if not drop > 0 or smoothed - best <= rise * drop:
        return False
    pre = np.asarray(raw[: best_at + 1])
    # the mean |difference| (E = 2 sigma / sqrt(pi) for Gaussian noise): steadier than the median on
    # the ~10-30 rungs before a minimum, where a median of small differences can be a fifth of sigma
    noise = float(np.mean(np.abs(np.diff(pre)))) * math.sqrt(math.pi) / 2.0
    return drop > 3.0 * noise


class RungSkipped(Exception):
    """Raised by a ``step(lr)`` callback whose update could not be applied: a ``GradScaler`` skipped
    ``skipped`` steps in a row (inf/NaN gradients). :func:`sweep` records ``loss``, the rung's real loss,
    ends the ramp at that rung as at a blow-up (its smoothed loss NaN) and keeps the count in the curve's
    :attr:`~lrkit.finder.result.Curve.skipped`, for the verdict's words."""

    def __init__(self, loss: float, skipped: int) -> None:
        super().__init__(f"the GradScaler skipped {skipped} steps in a row (loss {loss:.4g})")
        self.loss = loss
        self.skipped = skipped


def sweep(
    step: Callable[[float], float],
    lrs: NDArray[np.float64],
    *,
    smoothing: float = SMOOTHING,
    stop: StopRule | None = StopRule(),
) -> Curve:
    """Run one ramp: call ``step(lr)`` for each rung and record the losses until the stop rule fires."""
    beta = check_smoothing(smoothing)
    done_lrs: list[float] = []
    raw: list[float] = []
    smooth: list[float] = []
    avg = 0.0
    best = math.inf
    best_at = 0
    above = 0
    stopped_at: int | None = None
    skipped = 0
    for i, lr in enumerate(lrs):
        try:
            value = step(float(lr))
        except RungSkipped as exc:
            value, skipped = exc.loss, exc.skipped
        measured = as_measured(value)
        if measured is None:
            raise TypeError(f"step(lr) must return the loss as a float, got {value!r} at lr={float(lr)!r}")
        loss = measured
        done_lrs.append(float(lr))
        raw.append(loss)
        if skipped or not math.isfinite(loss):
            smooth.append(math.nan)
            stopped_at = i
            break
        avg = beta * avg + (1.0 - beta) * loss
        s = avg / (1.0 - beta ** (i + 1))
        smooth.append(s)
        if s < best:
            best, best_at = s, i
        if stop is not None:
            above = above + 1 if loss > stop.factor * best else 0
            risen = stop.rise is not None and _risen(raw, s, best, best_at, stop.rise)
            if above >= stop.patience or risen:
                stopped_at = i
                break
    return Curve(
        lrs=np.asarray(done_lrs),
        losses=np.asarray(raw),
        smoothed=np.asarray(smooth),
        stopped_at=stopped_at,
        skipped=skipped,
    )


def range_test(
    step: Callable[[float], float],
    *,
    start_lr: float = START_LR,
    end_lr: float = END_LR,
    num_steps: int = NUM_STEPS,
    mode: Mode = "exp",
    smoothing: float = SMOOTHING,
    diverge_factor: float | None = DIVERGE_FACTOR,
    diverge_patience: int = DIVERGE_PATIENCE,
    repeats: int = 1,
    before_repeat: Callable[[int], None] | None = None,
    rule: str = "lrkit",
    group_ratios: Sequence[float] = (1.0,),
) -> FinderResult:
    """LR range test on a ``step(lr) -> loss`` callback, repeated ``repeats`` times.

    Each rung calls ``step(lr)`` once; the callback trains (one or more optimizer steps at ``lr``) and
    returns the loss it measured. ``before_repeat(r)`` is called before repeat ``r = 0..repeats-1``: reset
    the model there and change the seed/batch order. Each repeat gives one :class:`Curve`; the suggestions
    are the medians over the repeats (see :class:`FinderResult`); ``rule`` names the default one.
    ``diverge_factor=None`` disables the early stop (a non-finite loss still ends the ramp).
    ``group_ratios``: each param group's LR over the reference group's, the LR ``step`` is given (kept in
    the result, see :attr:`FinderResult.reference_group`; ``step`` sets the groups).

    >>> res = range_test(lambda lr: (lr - 1e-2) ** 2 + 1.0, num_steps=50, diverge_factor=None)
    >>> len(res.lrs), float(res.lrs[0]), float(res.lrs[-1])
    (50, 1e-07, 10.0)
    """
    lrs = lr_ramp(start_lr, end_lr, num_steps, mode)
    smoothing = check_smoothing(smoothing)
    n_rep = _check_int("repeats", repeats, 1)
    if not callable(step):
        raise TypeError(f"step must be callable as step(lr) -> loss, got {step!r}")
    stop = None if diverge_factor is None else StopRule(diverge_factor, diverge_patience)
    if rule not in RULES:
        raise ValueError(f"rule must be one of {sorted(RULES)}, got {rule!r}")
    curves: list[Curve] = []
    for r in range(n_rep):
        if before_repeat is not None:
            before_repeat(r)
        curves.append(sweep(step, lrs, smoothing=smoothing, stop=stop))
    return FinderResult.from_curves(
        curves,
        mode=mode,
        smoothing=smoothing,
        rule=rule,
        group_ratios=group_ratios,
        steps=sum(c.lrs.size for c in curves),
    )
