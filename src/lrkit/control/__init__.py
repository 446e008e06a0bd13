"""Metric-driven control on top of a schedule: reduce-on-plateau and the divergence guard.

Each controller is explicit state that decides when a multiplier on the schedule changes; the
framework adapters apply it. Importing this package imports no framework (the guard imports torch
when one is built).
"""

from __future__ import annotations

from .guard import DivergenceError, DivergenceEvent, DivergenceGuard
from .plateau import Plateau

__all__ = ["DivergenceError", "DivergenceEvent", "DivergenceGuard", "Plateau"]
