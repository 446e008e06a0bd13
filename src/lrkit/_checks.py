"""The check of an integer argument shared by the Python API, so that a bad count reads one way
everywhere: ``scale_lr: devices must be an integer >= 1, got 0``."""

from __future__ import annotations

import numbers
from collections.abc import Callable


def bound(n: int, grouped: bool = False) -> str:
    """``2**53`` and ``2**63 - 1`` for the large powers of two (and one less), ``n`` itself otherwise
    (``1,000,000`` with ``grouped``)."""
    for k, tail in ((n, ""), (n + 1, " - 1")):
        if k >= 2**20 and k & (k - 1) == 0:
            return f"2**{k.bit_length() - 1}{tail}"
    return f"{n:,}" if grouped else str(n)


def _int_wanted(
    name: str, low: int, *, high: int | None = None, where: str = "", or_none: bool = False
) -> str:
    """The front of the message: ``{where}{name} must be an integer >= {low}[ and <= {high}][ or None]``."""
    top = "" if high is None else f" and <= {bound(high)}"
    return f"{where}{name} must be an integer >= {low}{top}{' or None' if or_none else ''}"


def check_int(
    value: object,
    name: str,
    low: int = 1,
    *,
    high: int | None = None,
    where: str = "",
    or_none: bool = False,
    why: str = "",
    kinds: type | tuple[type, ...] = numbers.Integral,
    type_error: type | tuple[type, ...] | None = None,
    show: Callable[[object], str] = repr,
) -> int:
    """``value`` as a Python int in ``[low, high]``, else ``{where}{name} must be an integer >= {low}
    [and <= {high}][ or None]{why}, got {value}``, the value's type named first unless it is an integer
    (``got str '3'``). A bool is never an integer here. ``kinds``: the integer types taken (``int``:
    Python's only; the default: numpy's too). A value that is not a ``type_error`` (when given) raises
    ``TypeError``, any other refusal ``ValueError``. ``or_none`` only says that None is also taken (the
    caller lets it through)."""

    def message() -> str:
        integer = isinstance(value, numbers.Integral) and not isinstance(value, bool)
        got = show(value) if integer else f"{type(value).__name__} {show(value)}"
        return f"{_int_wanted(name, low, high=high, where=where, or_none=or_none)}{why}, got {got}"

    if type_error is not None and (isinstance(value, bool) or not isinstance(value, type_error)):
        raise TypeError(message())
    if isinstance(value, bool) or not isinstance(value, kinds) or not isinstance(value, numbers.Integral):
        raise ValueError(message())
    n = int(value)
    if n < low or (high is not None and n > high):
        raise ValueError(message())
    return n
