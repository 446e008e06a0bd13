"""The LR range test ("LR finder"): a framework-free core, a PyTorch driver and suggestion rules.

* :func:`range_test` runs the test on any ``step(lr) -> loss`` callback (numpy only).
* :func:`find_lr` runs it on a PyTorch model, optimizer and data loader, and restores them exactly
  (it is :func:`lrkit.finder.torch_driver.find_lr`; torch is imported when ``find_lr`` is first
  used, not when this package is imported). Keras 3 and optax have their own drivers,
  :func:`lrkit.keras.find_lr` and :func:`lrkit.optax.find_lr`, with the same result.
* :data:`RULES` holds the suggestion rules (pure functions of ``(lrs, losses)``): ``lrkit`` (the
  default), ``steepest``, ``minimum`` (minimum / 10) and ``valley``.
* :class:`FinderResult` has the curves, each rule's suggestion, the interval over repeats, a trust
  verdict with its reason, ``.plot()``, and :func:`schedule_from_result` builds a schedule from it;
  an untrusted result has no suggestion (``None``; :meth:`FinderResult.require` raises
  :class:`NoSuggestionError` with the reason). With a budget (``planned_steps=``/``budget=``) the
  finder retries a test without signal by itself (see :func:`lrkit.finder.torch_driver.find_lr`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from lrkit.finder.core import Curve, ema_debiased, lr_ramp, range_test
from lrkit.finder.result import FinderResult, NoSuggestionError
from lrkit.finder.rules import RULES, lrkit_rule, minimum, steepest, valley
from lrkit.finder.schedule import schedule_from_result

if TYPE_CHECKING:
    from lrkit.finder.torch_driver import find_lr

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


def __getattr__(name: str) -> Any:
    """``find_lr`` is :func:`lrkit.finder.torch_driver.find_lr` itself (its signature and docstring in
    ``help()`` and IDEs), imported with torch on first use, not when this package is imported."""
    if name == "find_lr":
        from lrkit import _import_for

        return _import_for("lrkit.finder.torch_driver", "lrkit.finder.find_lr", "torch").find_lr
    raise AttributeError(f"module 'lrkit.finder' has no attribute {name!r}")
