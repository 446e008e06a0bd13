"""The LR range test ("LR finder"): a framework-free core, a PyTorch driver and suggestion rules.

* :func:`range_test` runs the test on any ``step(lr) -> loss`` callback (numpy only).
* :func:`find_lr` runs it on a PyTorch model, optimizer and data loader, and restores them exactly
  (torch is imported when it is called, not when this package is imported).
* :data:`RULES` holds the suggestion rules (pure functions of ``(lrs, losses)``): ``lrkit`` (the
  default), ``steepest``, ``minimum`` (minimum / 10) and ``valley``.
* :class:`FinderResult` has the curves, each rule's suggestion, the interval over repeats, a trust
  verdict with its reason, ``.plot()``, and :func:`schedule_from_result` builds a schedule from it;
  an untrusted result has no suggestion (``None``; :meth:`FinderResult.require` raises
  :class:`NoSuggestionError` with the reason). With a budget (``planned_steps=``/``budget=``) the
  finder retries a test without signal by itself (see :func:`lrkit.finder.torch_driver.find_lr`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from lrkit.finder.core import Curve, ema_debiased, lr_ramp, range_test
from lrkit.finder.result import FinderResult, NoSuggestionError
from lrkit.finder.rules import RULES, lrkit_rule, minimum, steepest, valley
from lrkit.finder.schedule import schedule_from_result

__all__ = [
    "RULES",
    "Curve",
    "FinderResult",
    "NoSuggestionError",
    "ema_debiased",
    "find_lr",
    "lr_ramp",
    "lrkit_rule",
    "minimum",
    "range_test",
    "schedule_from_result",
    "steepest",
    "valley",
]


def find_lr(
    model: Any,
    optimizer: Any,
    train_loader: Iterable[Any],
    loss_fn: Callable[..., Any] | None = None,
    **options: Any,
) -> FinderResult:
    """LR range test on a PyTorch model; see :func:`lrkit.finder.torch_driver.find_lr` for the options.

    Model, optimizer, GradScaler and RNG states are restored bit for bit afterwards.
    """
    from lrkit.finder.torch_driver import find_lr as _find_lr

    return _find_lr(model, optimizer, train_loader, loss_fn, **options)
