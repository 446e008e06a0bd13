"""Array-namespace plumbing: one formula, evaluated on Python numbers, numpy, torch or jax.

Python numbers and numpy arrays are served by numpy itself (numpy >= 2 speaks the array API in its
main namespace, and the few functions used here exist in numpy 1.x too), so the core needs numpy
alone. Other arrays (torch tensors, jax arrays, traced jax values) go through ``array_api_compat``,
imported only when such an array is seen.
"""

from __future__ import annotations

from typing import Any

import numpy as np

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
    try:
        from array_api_compat import array_namespace
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise TypeError(
            f"step: evaluating a schedule on {type(t).__module__}.{type(t).__name__} needs the "
            "array-api-compat package (pip install 'lrkit[torch]' or 'lrkit[jax]')"
        ) from exc
    try:
        return array_namespace(t)
    except TypeError as exc:
        raise TypeError(
            f"step: expected an int, a float or an array (numpy, torch, jax), got {type(t).__name__} {t!r}"
        ) from exc


def as_float_time(t: Array, xp: Namespace) -> Array:
    """``t`` as a floating array: float64 for numpy and Python numbers, the namespace's default float
    dtype for integer tensors, unchanged for floating arrays (so dtype and device are kept)."""
    if xp is np:
        return np.asarray(t, dtype=np.float64)
    if xp.isdtype(t.dtype, "real floating"):
        return t
    return xp.astype(t, xp.float32)
