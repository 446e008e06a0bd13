"""The batches of the Keras and optax drivers' range tests (numpy only).

Data comes as arrays with a ``batch_size`` (shuffled by each repeat's seed and cut into full batches,
reshuffled when a pass ends) or as an iterable of batches (cycled; each repeat starts a new pass when
it can be iterated again). A pytree of arrays (an array, or a tuple, list or dict of them) shares its
leading axis. A validation set (:func:`fixed_batches`) is cut in order, its last batch short.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

import numpy as np

from .._checks import check_int


def _leaves(tree: Any) -> list[Any]:
    if isinstance(tree, dict):
        return [leaf for v in tree.values() for leaf in _leaves(v)]
    if isinstance(tree, (tuple, list)):
        return [leaf for v in tree for leaf in _leaves(v)]
    return [tree]


def _take(tree: Any, idx: np.ndarray) -> Any:
    if isinstance(tree, dict):
        return {k: _take(v, idx) for k, v in tree.items()}
    if isinstance(tree, (tuple, list)):
        return type(tree)(_take(v, idx) for v in tree)
    return tree[idx]


def known_length(data: Any) -> int | None:
    """``len(data)``, or None when the length is unknown: no ``__len__``, or one that raises TypeError
    (a torch ``DataLoader`` over an ``IterableDataset`` without ``__len__``, a generator, a
    ``tf.data.Dataset`` of unknown or infinite cardinality)."""
    try:
        return len(data)
    except TypeError:
        return None


def is_arrays(data: Any) -> bool:
    """Whether ``data`` is a pytree of arrays (every leaf has a ``shape``), not an iterable of batches."""
    leaves = _leaves(data)
    return bool(leaves) and all(hasattr(leaf, "shape") for leaf in leaves)


def _length(data: Any, batch_size: int | None, name: str) -> int | None:
    """The shared leading length of arrays ``data`` (with ``batch_size``), else None after checking
    that ``data`` is an iterable of batches; a clear error naming ``name`` otherwise."""
    if batch_size is not None:
        check_int(batch_size, "batch_size", 1, kinds=int)
        lengths = {len(leaf) if getattr(leaf, "shape", ()) != () else 0 for leaf in _leaves(data)}
        if not is_arrays(data) or len(lengths) != 1 or 0 in lengths:
            shapes = [getattr(leaf, "shape", type(leaf).__name__) for leaf in _leaves(data)]
            raise ValueError(
                f"{name} with batch_size must be arrays (or a tuple/dict of arrays) sharing their first "
                f"axis, of length >= 1; got leaves of shapes {shapes}"
            )
        return lengths.pop()
    if not isinstance(data, Iterable) or isinstance(data, (str, bytes)):
        raise TypeError(
            f"{name} must be an iterable of batches (a list, a tf.data.Dataset, a DataLoader, a "
            f"generator), or arrays with batch_size=...; got {type(data).__name__}"
        )
    return None


def fixed_batches(data: Any, batch_size: int | None, name: str) -> list[Any]:
    """A validation set as a list of batches, evaluated whole at every rung: arrays with ``batch_size``
    cut in order (the last batch short), or the batches of an iterable (read once); at least one."""
    n = _length(data, batch_size, name)
    if n is not None:
        assert batch_size is not None
        return [_take(data, np.arange(i, min(i + batch_size, n))) for i in range(0, n, batch_size)]
    batches = list(data)
    if not batches:
        raise ValueError(
            f"{name} must hold at least one batch, got {type(data).__name__} {_short_repr(data)} with none"
        )
    return batches


def _short_repr(value: Any, limit: int = 80) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


class Batches:
    """Endless batches for one ramp at a time; :meth:`restart` begins a repeat's pass with its seed."""

    def __init__(self, data: Any, batch_size: int | None, name: str) -> None:
        self.name = name
        self.data = data
        self.batch_size = batch_size
        self._it: Iterator[Any] = iter(())
        self.drawn = 0  # batches given in all: an iterable that never yields one is empty, not one-shot
        self._fixed: list[Any] | None = None
        n = _length(data, batch_size, name)
        if n is not None:
            self.n = n

    def per_epoch(self) -> int | None:
        """Batches in an epoch as ``fit`` counts them: ``ceil(n / batch_size)`` for arrays, ``len(data)``
        for an iterable that has one, else None (unknown)."""
        if self.batch_size is not None:
            return -(-self.n // self.batch_size)
        return known_length(self.data)

    def restart(self, seed: int) -> None:
        """Begin a new pass: the arrays shuffled with ``seed``, or the iterable iterated anew."""
        self._it = self._shuffled(seed) if self.batch_size is not None else iter(self.data)

    def fixed(self, count: int, seed: int) -> list[Any]:
        """The escalation's fixed batches: the first ``count`` batches of the pass with ``seed``, drawn
        at the first call (which begins that pass), the same list at every later one."""
        if self._fixed is None:
            self.restart(seed)
            self._fixed = [self.next() for _ in range(count)]
        return self._fixed

    def _shuffled(self, seed: int) -> Iterator[Any]:
        assert self.batch_size is not None
        rng = np.random.default_rng(seed)
        size = min(self.batch_size, self.n)
        while True:  # full batches only: a short last batch would be a noisier rung
            perm = rng.permutation(self.n)
            for start in range(0, self.n - size + 1, size):
                yield _take(self.data, perm[start : start + size])

    def next(self) -> Any:
        """The next batch; an exhausted iterable is iterated again (a one-shot iterator cannot be)."""
        try:
            batch = next(self._it)
        except StopIteration:
            self._it = iter(self.data)
            try:
                batch = next(self._it)
            except StopIteration:
                if self.drawn == 0:
                    raise ValueError(
                        f"{self.name} yielded no batches ({type(self.data).__name__} "
                        f"{_short_repr(self.data)}); expected at least one"
                    ) from None
                raise ValueError(
                    f"{self.name} yielded no more batches; pass a list, a dataset or a loader, which can "
                    "be iterated again, or an endless generator"
                ) from None
        self.drawn += 1
        return batch
