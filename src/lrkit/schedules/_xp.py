"""Array-namespace plumbing: one formula, evaluated on Python numbers, numpy, torch or jax.

Python numbers and numpy arrays are served by numpy itself (numpy >= 2 speaks the array API in its
main namespace), so the core needs numpy alone. Other arrays (torch tensors, jax arrays, traced jax
values) go through ``array_api_compat``, imported only when such an array is seen.
"""

from __future__ import annotations

import math
import sys
from typing import Any

import numpy as np

from .duration import held_step

#: The namespace object a formula is written against (``numpy``, ``array_api_compat.torch``, ...).
Namespace = Any
#: An array of that namespace.
Array = Any


def namespace_of(t: object) -> Namespace:
    """The array namespace that serves ``t``.

    >>> namespace_of(3) is np and namespace_of(np.arange(3)) is np
    True
    """
    if isinstance(t, (int, float, np.ndarray, np.generic)) and not isinstance(t, bool):
        return np
    if not (hasattr(t, "shape") and hasattr(t, "dtype")):  # not an array of any library
        raise TypeError(
            f"step: expected an int, a float or an array (numpy, torch, jax), got {type(t).__name__} {t!r}"
        )
    try:
        from array_api_compat import array_namespace
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise TypeError(
            f"step: evaluating a schedule on {type(t).__module__}.{type(t).__name__} needs the "
            "array-api-compat package (pip install 'lrkit[torch]' or 'lrkit[jax]')"
        ) from exc
    torch = sys.modules.get("torch")  # a torch tensor's class means torch is imported
    if torch is not None and isinstance(t, torch.Tensor):
        # array_namespace's answer, found without its lru_cache'd class lookup: torch.compile (Dynamo)
        # traces through that cache and warns at each of its five calls, on every compile
        import array_api_compat.torch as xp_torch

        return xp_torch
    try:
        return array_namespace(t)
    except TypeError as exc:
        raise TypeError(
            f"step: expected an int, a float or an array (numpy, torch, jax), got {type(t).__name__} {t!r}"
        ) from exc


#: numpy dtype kinds read as steps: signed and unsigned integers, real floats (and objects holding
#: Python or numpy reals, as ``np.array`` makes of ints beyond int64)
_REAL_KINDS = "iuf"


def _refuse(dtype: object) -> TypeError:
    return TypeError(
        f"step: expected an array of real numbers, got an array of dtype {dtype} "
        "(bool, complex, str, dates and records are not steps; convert with .astype(float))"
    )


def _object_steps(a: np.ndarray) -> np.ndarray:
    """An object array of real numbers as float64; Python ints held to +-2**53 as a scalar step is."""
    out = np.empty(a.shape, dtype=np.float64)
    flat = out.reshape(-1)
    for i, x in enumerate(a.reshape(-1)):
        if isinstance(x, (bool, np.bool_)) or not isinstance(x, (int, float, np.integer, np.floating)):
            raise TypeError(
                f"step: expected an array of real numbers, got {type(x).__name__} {x!r:.80} at index {i} "
                "of an object array"
            )
        flat[i] = float(held_step(x)) if isinstance(x, (int, np.integer)) else x
    return out


def as_float_time(t: Array, xp: Namespace) -> Array:
    """``t`` as a floating array: float64 for numpy and Python numbers; for integer tensors the
    namespace's default float dtype (float32, or float64 under ``torch.set_default_dtype`` /
    ``jax_enable_x64``); floating arrays unchanged (so dtype and device are kept), except those
    narrower than float32 (float16, bfloat16), evaluated in float32: a half cannot hold the clip
    bounds, a bfloat16 not a length past 256 (1001 steps would be 1000), and both round every value
    to about 3 digits.

    Arrays of bool, complex, strings, dates or records are a TypeError, as such scalars are.
    """
    if xp is np:
        kind = np.asarray(t).dtype.kind
        if kind == "O":
            return _object_steps(np.asarray(t))
        if kind not in _REAL_KINDS:
            raise _refuse(np.asarray(t).dtype)
        return np.asarray(t, dtype=np.float64)
    if xp.isdtype(t.dtype, "real floating"):
        return xp.astype(t, xp.float32) if xp.finfo(t.dtype).bits < 32 else t
    if not xp.isdtype(t.dtype, "integral"):
        raise _refuse(t.dtype)
    default = xp.__array_namespace_info__().default_dtypes()["real floating"]
    return xp.astype(t, default if xp.finfo(default).bits >= 32 else xp.float32)


def power(base: float, x: Array, xp: Namespace) -> Array:
    """``base ** x`` for a Python float ``base > 0``. In float64 as written; in float32 as
    ``exp(x * log(base))`` with the log taken in float64 on the host: ``base ** x`` would round ``base``
    to float32 first, an error that ``x`` multiplies (1.3% at 1e6 steps for 0.99999); here only the
    product is rounded (4e-7 there)."""
    if xp.finfo(x.dtype).bits >= 64:
        return base**x
    return xp.exp(x * math.log(base))
