"""Turn a range test's result into a schedule (warmup + cosine, warmup-stable-decay, or one-cycle).

:mod:`lrkit.schedules` is imported when the helper is called.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from lrkit.finder.result import FinderResult
    from lrkit.schedules import Schedule

__all__ = ["schedule_from_result"]

KINDS = ("cosine", "wsd", "one_cycle")


def schedule_from_result(
    result: FinderResult,
    kind: str = "cosine",
    *,
    warmup: str | int = "5%",
    min_lr_ratio: float = 0.01,
    **options: Any,
) -> Schedule:
    """A schedule whose peak comes from ``result``.

    * ``kind="cosine"``: ``Warmup(warmup) >> Cosine(lr=peak, min_lr=peak * min_lr_ratio)`` with
      ``peak = result.peak_lr``; the warmup ramps to the peak (default over the first 5% of the run).
    * ``kind="wsd"``: ``Warmup(warmup) >> WSD(lr=peak, **options)``: the peak held, then by default a
      1-sqrt cool-down to 0 over the last 20% (``options`` go to :class:`~lrkit.schedules.WSD`, e.g.
      ``decay="10%"``, ``cooldown="linear"``, ``min_lr``).
    * ``kind="one_cycle"``: ``OneCycle(max_lr=result.max_lr, **options)`` (``options`` go to
      :class:`~lrkit.schedules.OneCycle`, e.g. ``pct_start=0.25``).

    Durations are left symbolic; call ``.resolve(total_steps=..., steps_per_epoch=...)`` on the result.

    >>> from lrkit.finder import range_test
    >>> res = range_test(lambda lr: 1 / (1 + lr / 1e-3) + max(0.0, lr - 0.1), num_steps=60)
    >>> s = schedule_from_result(res).resolve(total_steps=100)  # 5 warmup steps, then cosine
    >>> s(0) < s(4) < s(5) == res.peak_lr and s(99) < res.peak_lr / 50
    True
    """
    from lrkit.finder.result import FinderResult
    from lrkit.schedules import WSD, Cosine, OneCycle, Warmup

    if not isinstance(result, FinderResult):
        raise TypeError(f"result must be a FinderResult, got {type(result).__name__}")
    if kind == "cosine":
        if options:
            raise TypeError(f"kind='cosine' takes no extra options, got {sorted(options)}")
        if not 0.0 <= min_lr_ratio <= 1.0:
            raise ValueError(f"min_lr_ratio must be in [0, 1], got {min_lr_ratio!r}")
        peak = result.peak_lr
        return Warmup(warmup) >> Cosine(lr=peak, min_lr=peak * min_lr_ratio)
    if kind == "wsd":
        if "lr" in options or "warmup" in options:
            raise TypeError("kind='wsd' takes its lr from the result and its warmup from warmup=")
        return Warmup(warmup) >> WSD(lr=result.peak_lr, **options)
    if kind == "one_cycle":
        return OneCycle(max_lr=result.max_lr, **options)
    raise ValueError(f"kind must be one of {KINDS}, got {kind!r}")
