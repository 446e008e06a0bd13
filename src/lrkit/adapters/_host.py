"""What the Keras and optax adapters share, with numpy only: a step given from the host, checked and held
as lrkit holds any step, and the refusal of ``lrkit.torch.scheduler``'s keywords with what to use."""

from __future__ import annotations

import math
import warnings
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # PEP 702: a type checker marks a call by the old keyword (warnings.deprecated in 3.13)
    from typing_extensions import deprecated as deprecated
else:

    def deprecated(message: str) -> Any:
        """At run time :func:`schedule_argument` warns; this only marks the overload for checkers."""
        return lambda f: f


import numpy as np

from .._text import did_you_mean
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
    where: str, given: Mapping[str, Any], advice: Mapping[str, str], takes: Sequence[str]
) -> None:
    """A TypeError for the first of ``given`` (keywords ``where`` does not take): one of
    ``lrkit.torch.scheduler``'s says so with ``advice[name]``, what to do here; another names the keyword,
    the closest of ``takes`` (the names ``where`` does take) if one is close, and lists them."""
    if not given:
        return
    name = next(iter(given))
    if name in advice:
        raise TypeError(f"{where}: {name}= is lrkit.torch.scheduler's, not taken here; {advice[name]}")
    listed = ", ".join(takes[:-1]) + " and " + takes[-1] if len(takes) > 1 else takes[0]
    raise TypeError(
        f"{where}: unexpected keyword argument {name!r}{did_you_mean(name, takes)}; it takes {listed}"
    )


def schedule_argument(
    where: str,
    schedule: Any,
    given: dict[str, Any],
    old: str,
    advice: Mapping[str, str],
    takes: Sequence[str],
) -> Any:
    """The ``schedule`` argument of ``where`` (``lrkit.keras.schedule``, ``lrkit.optax.schedule``), with
    the keywords it does not take in ``given`` (its ``**unexpected``): the parameter's old name ``old``
    (``s``, ``spec``) still gives it, with a DeprecationWarning that names ``schedule``; any other keyword is
    refused by :func:`refuse_other_keywords`; none given at all is a TypeError."""
    if old in given:
        value = given.pop(old)
        if schedule is not _MISSING:
            raise TypeError(f"{where}: got the schedule twice, as schedule and as {old}=; pass schedule only")
        warnings.warn(
            f"{where}: the keyword {old}= is now schedule= (the name lrkit.torch.scheduler and "
            f"KerasSchedule use); {old}= will be removed in a later version",
            DeprecationWarning,
            stacklevel=3,
        )
        schedule = value
    refuse_other_keywords(where, given, advice, takes)
    if schedule is _MISSING:
        raise TypeError(
            f"{where}: missing the schedule (an lrkit Schedule, spec string or dict), its first argument"
        )
    return schedule


class _Missing:
    """The default of a ``schedule`` argument that may come under its old name instead."""

    def __repr__(self) -> str:
        return "<required>"


#: ``schedule``'s default in ``lrkit.keras.schedule`` / ``lrkit.optax.schedule``: none given
_MISSING: Any = _Missing()
