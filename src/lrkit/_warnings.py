"""Warnings that more than one framework adapter raises, kept here so that they are one class whatever
framework is installed (this module needs nothing but Python)."""

from __future__ import annotations

__all__ = ["PastTheRunWarning"]


class PastTheRunWarning(UserWarning):
    """The optimizer stepped past the end of the run the scheduler was built for (``total_steps``), where
    the schedule has ended and holds its last LR: the loop is longer than the schedule. Warned once per
    scheduler, at the line of ``optimizer.step()``: the host scheduler lets one step past the end pass
    (warns at the second), :func:`lrkit.auto`'s scheduler warns at the first."""
