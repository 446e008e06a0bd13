"""Metric-driven control on top of a schedule: reduce-on-plateau (and the divergence guard).

Each controller is explicit, framework-free state that decides when a multiplier on the schedule
changes; the framework adapters apply it.
"""

from __future__ import annotations

from .plateau import Plateau

__all__ = ["Plateau"]

# -- divergence guard (src/lrkit/control/guard.py, written by another engineer) -------------------
# Exported once guard.py exists; until then `from lrkit.control import DivergenceGuard` fails clearly.
try:
    from .guard import DivergenceError, DivergenceGuard  # type: ignore[import-not-found,unused-ignore]
except ModuleNotFoundError as _exc:  # pragma: no cover - depends on guard.py being there
    if _exc.name != f"{__name__}.guard":
        raise
else:
    __all__ += ["DivergenceError", "DivergenceGuard"]
