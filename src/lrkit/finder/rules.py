"""Suggestion rules: pure functions of ``(lrs, losses)`` that return one learning rate.

``losses`` is the smoothed loss of one range test (what :class:`~lrkit.finder.FinderResult` passes).
Every rule first keeps the finite prefix of the curve (the test stops at the first non-finite loss) and
needs at least two points there. Only numpy is imported here.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
from numpy.typing import NDArray

__all__ = ["RULES", "Rule", "lrkit_rule", "minimum", "steepest", "valley"]

Rule = Callable[[NDArray[np.float64], NDArray[np.float64]], float]
ArrayLike = Sequence[float] | NDArray[np.float64]


def finite_prefix(lrs: ArrayLike, losses: ArrayLike) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """Validate a curve and cut it at its first non-finite loss; at least two points must remain."""
    x = np.asarray(lrs, dtype=np.float64)
    y = np.asarray(losses, dtype=np.float64)
    if x.ndim != 1 or y.ndim != 1 or x.shape != y.shape:
        raise ValueError(
            f"lrs and losses must be 1-D arrays of the same length, got shapes {x.shape} and {y.shape}"
        )
    if not np.all(np.isfinite(x)) or np.any(x <= 0):
        raise ValueError(f"lrs must be finite and > 0, got {x!r}")
    if np.any(np.diff(x) <= 0):
        raise ValueError(f"lrs must be strictly increasing, got {x!r}")
    bad = np.flatnonzero(~np.isfinite(y))
    n = int(bad[0]) if bad.size else y.size
    if n < 2:
        raise ValueError(f"losses must start with at least 2 finite values, got {y!r}")
    return x[:n], y[:n]


def minimum(lrs: ArrayLike, losses: ArrayLike, divisor: float = 10.0) -> float:
    """The LR of the lowest loss divided by ``divisor``: :math:`\\eta_{\\arg\\min \\ell} / 10` (fastai).

    >>> minimum([1e-3, 1e-2, 1e-1, 1.0], [2.0, 1.0, 0.5, 9.0])
    0.01
    """
    if not divisor > 0:
        raise ValueError(f"divisor must be > 0, got {divisor!r}")
    x, y = finite_prefix(lrs, losses)
    return float(x[int(np.argmin(y))] / divisor)


def steepest(lrs: ArrayLike, losses: ArrayLike) -> float:
    """The LR of steepest descent of the loss on the log-LR axis, before the minimum.

    :math:`\\arg\\min_i \\, d\\ell/d\\ln\\eta` with central differences (``np.gradient``) over the points up
    to and including the lowest loss; a rise after the minimum cannot be the answer.

    >>> steepest([1e-3, 1e-2, 1e-1, 1.0, 10.0], [3.0, 2.9, 1.0, 0.95, 5.0])
    0.01
    """
    x, y = finite_prefix(lrs, losses)
    end = int(np.argmin(y)) + 1
    if end < 2:
        return float(x[0])
    grad = np.gradient(y[:end], np.log(x[:end]))
    return float(x[int(np.argmin(grad))])


def valley(lrs: ArrayLike, losses: ArrayLike) -> float:
    """fastai's ``valley`` rule: a point 1/2 of the way into the longest descending run of the loss.

    Finds the longest decreasing subsequence of the loss (dynamic programming, O(n^2)), whose span is
    ``[start, end]``, and returns the LR at ``start + int(s) + int(s / 2)`` with ``s = (end - start) / 3``
    (fastai 2.7, ``fastai/callback/schedule.py``). Like fastai, it skips the first tenth and last five
    points when the curve is long enough (more than 20 points), and keeps fastai's ``start = end -
    length`` (one before the run's first point); unlike fastai, an index below 0 is clamped to 0 instead
    of wrapping around to the last LR.

    >>> valley([1e-4, 1e-3, 1e-2, 1e-1, 1.0, 2.0, 10.0], [5.0, 4.0, 3.0, 2.0, 1.0, 0.5, 9.0])
    0.01
    """
    x, y = finite_prefix(lrs, losses)
    if y.size > 20:
        x, y = x[y.size // 10 : -5], y[y.size // 10 : -5]
    n = y.size
    lds = [1] * n
    max_start = max_end = 0
    for i in range(1, n):
        for j in range(i):
            if y[i] < y[j] and lds[i] < lds[j] + 1:
                lds[i] = lds[j] + 1
            if lds[max_end] < lds[i]:
                max_end = i
                max_start = max_end - lds[max_end]
    sections = (max_end - max_start) / 3
    idx = max(0, max_start + int(sections) + int(sections / 2))
    return float(x[idx])


def lrkit_rule(lrs: ArrayLike, losses: ArrayLike, tolerance: float = 0.05, divisor: float = 10.0) -> float:
    """lrkit's default: the centre of the bottom of the curve, divided by 10.

    With :math:`\\ell_{min}` the lowest loss, :math:`\\ell_0` the median of the first tenth of the
    curve (at least 3 points) and :math:`D = \\ell_0 - \\ell_{min}` the drop, the *bottom* is the
    contiguous run of rungs around the minimum with :math:`\\ell \\le \\ell_{min} + 0.05 D`; the
    suggestion is its geometric centre divided by 10:
    :math:`\\eta = \\exp(\\operatorname{mean}_{i \\in bottom} \\ln \\eta_i) / 10`.

    This is :func:`minimum` made robust: on a sharp minimum the bottom is one rung and both agree; on a
    flat, noisy bottom the argmin is decided by noise, the centre of the bottom is not. Chosen with
    ``bench/finder.py`` (four tasks, grid search as the reference): it matched minimum / 10 on the final
    metric and varied less between repeats and across smoothing factors, while ``valley`` and
    ``steepest`` missed on some tasks. Applied per repeat; the result takes the median over repeats.

    >>> lrs = [1e-4, 1e-3, 1e-2, 1e-1, 1.0, 10.0]
    >>> lrkit_rule(lrs, [5.0, 4.0, 1.0, 0.5, 9.0, 20.0])  # sharp minimum at 0.1: same as minimum / 10
    0.01
    >>> round(lrkit_rule(lrs, [5.0, 4.0, 1.02, 1.0, 1.01, 20.0]), 6)  # flat bottom 1e-2..1: centre 0.1
    0.01
    """
    if not tolerance >= 0:
        raise ValueError(f"tolerance must be >= 0, got {tolerance!r}")
    if not divisor > 0:
        raise ValueError(f"divisor must be > 0, got {divisor!r}")
    x, y = finite_prefix(lrs, losses)
    i = int(np.argmin(y))
    head = min(y.size, max(3, y.size // 10))
    drop = max(float(np.median(y[:head])) - float(y[i]), 0.0)
    threshold = y[i] + tolerance * drop
    lo = hi = i
    while lo > 0 and y[lo - 1] <= threshold:
        lo -= 1
    while hi < y.size - 1 and y[hi + 1] <= threshold:
        hi += 1
    centre = x[i] if lo == hi else np.exp(np.mean(np.log(x[lo : hi + 1])))
    return float(centre / divisor)


#: The rules a :class:`~lrkit.finder.FinderResult` evaluates, by name; ``"lrkit"`` is the default.
RULES: dict[str, Rule] = {
    "lrkit": lrkit_rule,
    "steepest": steepest,
    "minimum": minimum,
    "valley": valley,
}
