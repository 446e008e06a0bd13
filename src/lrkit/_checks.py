"""The checks of number arguments shared by the Python API, so that a bad count reads one way
everywhere: ``scale_lr: devices must be an integer >= 1, got 0``.

One rule for what a number argument takes: a count is any integer (:class:`numbers.Integral`: Python's,
numpy's), a rate or a factor any real number (:class:`numbers.Real`: also numpy floats, ``Fraction``),
and either may be a 0-d array or tensor (numpy, torch, jax) of integer or real dtype, as
``len(loader) * epochs`` computed on tensors is; a bool is neither, nor is a bool array. Each is taken
as the Python ``int`` or ``float`` it holds (:func:`as_integer`, :func:`as_real`)."""

from __future__ import annotations

import math
import numbers
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, cast

import numpy as np


def bound(n: int, grouped: bool = False) -> str:
    """``2**53`` and ``2**63 - 1`` for the large powers of two (and one less), ``n`` itself otherwise
    (``1,000,000`` with ``grouped``)."""
    for k, tail in ((n, ""), (n + 1, " - 1")):
        if k >= 2**20 and k & (k - 1) == 0:
            return f"2**{k.bit_length() - 1}{tail}"
    return f"{n:,}" if grouped else str(n)


def dtype_kind(v: object) -> str | None:
    """``"i"`` for an array or tensor of integers (numpy, torch, jax: read off the dtype's name), ``"f"``
    of reals, ``"b"`` of bools, ``"?"`` of anything else (complex, strings); None for what is no array
    (a number, a numpy scalar, a string)."""
    if isinstance(v, (numbers.Number, str, bytes, np.generic)):
        return None
    if not (hasattr(v, "shape") and hasattr(v, "dtype")):
        return None
    name = str(v.dtype).rsplit(".", 1)[-1]  # torch.int64 -> int64; numpy and jax: int64
    if name.startswith(("int", "uint")):
        return "i"
    if name.startswith(("float", "bfloat")):
        return "f"
    return "b" if name == "bool" else "?"


def _held(v: object, kinds: str) -> int | float | None:
    """The Python number a 0-d array or tensor of a dtype kind in ``kinds`` holds, else None (a traced
    jax value, which holds none yet, too)."""
    kind = dtype_kind(v)
    if kind is None or kind not in kinds or tuple(getattr(v, "shape", (0,))) != ():
        return None
    try:
        held: Any = v
        return int(held) if kind == "i" else float(held)
    except (TypeError, ValueError):  # jax's ConcretizationTypeError is a TypeError
        return None


def as_integer(v: object) -> int | None:
    """``v`` as a Python int when it is an integer (see the module's rule), else None."""
    if isinstance(v, (bool, np.bool_)):
        return None
    if isinstance(v, numbers.Integral):
        return int(v)
    held = _held(v, "i")
    return held if isinstance(held, int) else None


def as_real(v: object) -> float | None:
    """``v`` as a Python float when it is a real number (see the module's rule), else None. NaN and inf
    come back as they are (the caller's range check refuses them); an int beyond a float's range is inf."""
    if isinstance(v, (bool, np.bool_)):
        return None
    if isinstance(v, numbers.Real):
        try:
            return float(v)
        except OverflowError:  # 10**400, Fraction(10**400)
            return math.inf if cast(Any, v) > 0 else -math.inf
    held = _held(v, "if")
    return None if held is None else float(held)


def finite_real(v: object) -> float | None:
    """``v`` as a finite Python float when it is a real number (see the module's rule), else None."""
    x = as_real(v)
    return x if x is not None and math.isfinite(x) else None


def as_measured(v: object) -> float | None:
    """A measured value (a loss, a metric: what training computes) as a Python float: a real number as
    :func:`as_real` takes it, or a 1-element array or tensor of integer or real dtype (``loss`` of shape
    ``(1,)``); None otherwise."""
    x = as_real(v)
    if x is not None or dtype_kind(v) not in ("i", "f") or math.prod(tuple(getattr(v, "shape", ()))) != 1:
        return x
    reshape = getattr(v, "reshape", None)
    return None if reshape is None else as_real(reshape(()))


def plain_number(v: Any) -> Any:
    """``v`` as a Python int when it is an integer, as a Python float when it is another real number
    (see the module's rule), else ``v`` itself: an entry point's number as the checks further in (which
    may tell ``int`` from ``float``) read it."""
    n = as_integer(v)
    if n is not None:
        return n
    x = as_real(v)
    return v if x is None else x


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
    kinds: type | tuple[type, ...] = object,
    type_error: type | tuple[type, ...] | None = None,
    show: Callable[[object], str] = repr,
) -> int:
    """``value`` as a Python int in ``[low, high]``, else ``{where}{name} must be an integer >= {low}
    [and <= {high}][ or None]{why}, got {value}``, the value's type named first unless it is an integer
    (``got str '3'``). An integer is what :func:`as_integer` takes (numpy's and 0-d integer tensors too;
    never a bool); ``kinds`` narrows that to its types (the default: all). With ``type_error``, a bool
    or a value that is neither an integer nor a ``type_error`` raises ``TypeError``, any other refusal
    ``ValueError``. ``or_none`` only says that None is also taken (the caller lets it
    through)."""

    def message() -> str:
        integer = isinstance(value, numbers.Integral) and not isinstance(value, bool)
        shown = show(value) if integer else f"{type(value).__name__} {show(value)}"
        return f"{_int_wanted(name, low, high=high, where=where, or_none=or_none)}{why}, got {shown}"

    n = as_integer(value) if isinstance(value, kinds) else None
    if type_error is not None and (
        isinstance(value, (bool, np.bool_)) or (n is None and not isinstance(value, type_error))
    ):
        raise TypeError(message())
    if n is None or n < low or (high is not None and n > high):
        raise ValueError(message())
    return n


@dataclass(frozen=True)
class EpsUnderflow:
    """A param group whose ``eps`` is 0 in the dtype of a parameter it trains (:func:`eps_underflow`):
    ``str()`` is the whole warning; :attr:`short` and :attr:`fixes` word a verdict that names it
    instead of blaming the learning rate (the guard's :class:`DivergenceError`, the finder's)."""

    optimizer: str  # the optimizer's class name
    group: int
    eps: float
    dtype: str  # "torch.float16"
    tiny: float  # the dtype's smallest (subnormal) value

    @property
    def short(self) -> str:
        """``optimizer AdamW's eps=1e-08 (param group 0) is 0 in torch.float16, ...``: what is wrong."""
        return (
            f"optimizer {self.optimizer}'s eps={self.eps:g} (param group {self.group}) is 0 in {self.dtype}, "
            "the dtype of the parameters it trains, so a step divides 0 by 0 where a squared gradient "
            "underflows to 0"
        )

    @property
    def fixes(self) -> tuple[str, ...]:
        """What fixes it (no learning rate does), as remedies a :class:`Problem` or a
        :class:`DivergenceError` words ("a or b")."""
        floor = (
            "eps >= 1e-4 for float16" if self.dtype == "torch.float16" else f"eps well above {self.tiny:.3g}"
        )
        return (
            "keep float32 master weights (a float32 model under torch.autocast, with a GradScaler for "
            "float16)",
            f"set {floor}",
        )

    def __str__(self) -> str:
        return (
            f"optimizer {self.optimizer}'s param group {self.group} has eps={self.eps:g}, which is 0 in "
            f"{self.dtype} (its smallest value is {self.tiny:.3g}), the dtype of parameters it trains: where "
            "a squared gradient underflows to 0 the step divides 0 by 0 and the parameters become NaN "
            f"at any learning rate. {self.fixes[0][:1].upper()}{self.fixes[0][1:]} or {self.fixes[1]}"
        )


def eps_underflow(optimizer: Any) -> EpsUnderflow | None:
    """What is wrong when a param group's ``eps`` (Adam, AdamW, RMSprop, Adagrad...) is 0 in the dtype of
    a parameter it trains (``eps=1e-8`` in float16, whose smallest value is 6e-8), or None.

    Such an optimizer keeps its state in the parameter's dtype: a squared gradient that underflows to 0
    meets an ``eps`` of 0, the first step divides 0 by 0 and the parameters are NaN at any learning rate.
    A group whose ``eps`` is not one real number (Adafactor's pair) is not read. torch is imported only
    here (``lrkit._checks`` stays importable without it)."""
    import torch

    for i, group in enumerate(getattr(optimizer, "param_groups", ())):
        eps = group.get("eps")
        if isinstance(eps, bool) or not isinstance(eps, (int, float)) or not 0.0 < eps < math.inf:
            continue
        dtypes = {
            p.dtype
            for p in group.get("params", ())
            if isinstance(p, torch.Tensor) and p.requires_grad and p.is_floating_point()
        }
        for dtype in sorted(dtypes, key=str):
            if float(torch.tensor(float(eps), dtype=dtype)) == 0.0:
                tiny = float(torch.finfo(dtype).tiny) * float(torch.finfo(dtype).eps)  # smallest subnormal
                return EpsUnderflow(type(optimizer).__name__, i, float(eps), str(dtype), tiny)
    return None
