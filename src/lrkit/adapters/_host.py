"""What the Keras and optax adapters share, with numpy only: a step given from the host, checked and held
as lrkit holds any step, and the refusal of ``lrkit.torch.scheduler``'s keywords with what to use."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np

from ..schedules._xp import as_float_time
from ..schedules.duration import MAX_STEPS, _short, held_step


def host_steps(step: object, name: str, arrays: str) -> Any:
    """``step`` given from the host (a Python number, numpy scalar or array, a list) as float64, held to
    +-2**53 as lrkit holds any step (jax would wrap an int64 into int32, ``2**63 - 1`` read as -1, or
    refuse a Python int beyond 2**31 with an OverflowError): a bool is a TypeError, a NaN or infinite
    step a ValueError; ``name`` names the argument in the messages, ``arrays`` the arrays it takes."""
    if isinstance(step, (bool, np.bool_)):
        raise TypeError(f"{name}: expected an int, a float or {arrays}, got bool {step!r}")
    if isinstance(step, (int, np.integer)):
        return float(held_step(step))
    if isinstance(step, (float, np.floating)):
        if not math.isfinite(step):
            raise ValueError(f"{name}: must be a finite number, got {step!r}")
        return min(max(float(step), -MAX_STEPS), MAX_STEPS)
    if not isinstance(step, (np.ndarray, list, tuple)):
        raise TypeError(
            f"{name}: expected an int, a float or {arrays}, got {type(step).__name__} {_short(step)}"
        )
    try:
        a = as_float_time(np.asarray(step), np)
    except ValueError as exc:  # a ragged list
        raise TypeError(f"{name}: expected an array of numbers, got {_short(step)} ({exc})") from None
    if not np.isfinite(a).all():
        raise ValueError(f"{name}: must hold finite numbers, got {_short(step)}")
    return np.clip(a, -MAX_STEPS, MAX_STEPS)


def refuse_other_keywords(
    where: str, given: Mapping[str, Any], advice: Mapping[str, str], takes: str
) -> None:
    """A TypeError for the first of ``given`` (keywords ``where`` does not take): one of
    ``lrkit.torch.scheduler``'s says so with ``advice[name]``, what to do here; another lists ``takes``."""
    if not given:
        return
    name = next(iter(given))
    if name in advice:
        raise TypeError(f"{where}: {name}= is lrkit.torch.scheduler's, not taken here; {advice[name]}")
    raise TypeError(f"{where}: unexpected keyword argument {name!r}; it takes {takes}")
