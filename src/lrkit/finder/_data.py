"""The batches of the Keras and optax drivers' range tests (numpy only).

Data comes as arrays with a ``batch_size`` (shuffled by each repeat's seed and cut into full batches,
reshuffled when a pass ends) or as an iterable of batches (cycled; each repeat starts a new pass when
it can be iterated again). A pytree of arrays (an array, or a tuple, list or dict of them) shares its
leading axis. A validation set (:func:`fixed_batches`) is cut in order, its last batch short.

A loss that is not finite on a batch that holds a value that is not finite is the data's fault, not the
learning rate's: :func:`nonfinite_data_error` says so, naming the batch and the value (every driver's
wording, the PyTorch one's too: :func:`data_error`).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any, TypeVar

import numpy as np

from .._checks import check_int

T = TypeVar("T")
#: a batch's arrays by name, as an error about its data names them: ``[("batch", batch)]``, Keras' x, y
Parts = Callable[[Any], list[tuple[str, Any]]]


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


def _batch_size(batch_size: object) -> int | None:
    """``batch_size`` as a Python int (any integer, numpy's too), or None."""
    return None if batch_size is None else check_int(batch_size, "batch_size", 1)


def _length(data: Any, batch_size: int | None, name: str) -> int | None:
    """The shared leading length of arrays ``data`` (with ``batch_size``, checked), else None after
    checking that ``data`` is an iterable of batches; a clear error naming ``name`` otherwise."""
    if batch_size is not None:
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
    batch_size = _batch_size(batch_size)
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


def first_found(tree: Any, test: Callable[[Any], T | None], path: str) -> tuple[str, T] | None:
    """The first leaf of ``tree`` (tuples, lists and mappings of leaves, walked in order) for which
    ``test(leaf)`` is not None, as (its path from ``path``, e.g. ``batch[0]['ids']``, that result)."""
    items: Iterable[tuple[Any, Any]] = ()
    if isinstance(tree, (tuple, list)):
        items = enumerate(tree)
    elif isinstance(tree, Mapping):
        items = tree.items()
    else:
        found = test(tree)
        return None if found is None else (path, found)
    for key, value in items:
        hit = first_found(value, test, f"{path}[{key!r}]")
        if hit is not None:
            return hit
    return None


def data_error(
    where: str,
    path: str,
    value: object,
    index: tuple[int, ...],
    bad: int,
    size: int,
    loss: float,
    check: str,
    note: str = "",
) -> ValueError:
    """The error for a batch (``where``) whose loss was ``loss`` because its array at ``path`` holds
    ``value`` at ``index`` (``bad`` of its ``size`` values not finite; ``note``: more on where);
    ``check``: the call that finds them (``torch.isfinite``, ``np.isfinite``)."""
    at = f"{path}[{', '.join(map(str, index))}]" if index else path
    note = f"; {note}" if note else ""
    return ValueError(
        f"{where} holds {value} at {at} ({bad} of {size} values in {path} not finite{note}), and its loss "
        f"was {loss}: the data is broken, not the learning rate, so no learning rate fixes this; clean the "
        f"data (drop or fix the samples where {check}(x) is False) and run the test again"
    )


def _not_finite(leaf: Any) -> tuple[np.ndarray, np.ndarray] | None:
    """A floating or complex array leaf (numpy, jax, TensorFlow, a CPU torch tensor) that holds a value
    that is not finite, as (the array, the mask of those values); None for anything else."""
    if not hasattr(leaf, "shape") or not hasattr(leaf, "dtype"):
        return None
    try:
        array = np.asarray(leaf)
        if array.dtype.kind not in "fcV":  # V: ml_dtypes' bfloat16 and float8
            return None
        mask = ~np.isfinite(array)
    except (TypeError, ValueError, RuntimeError):  # not readable as numbers here: not claimed
        return None
    return (array, mask) if mask.any() else None


def _parts(batch: Any) -> list[tuple[str, Any]]:
    return [("batch", batch)]


def nonfinite_data_error(
    parts: list[tuple[str, Any]],
    loss: float,
    where: str,
    previous: list[tuple[str, Any]] | None = None,
    rows: tuple[str, np.ndarray] | None = None,
) -> ValueError | None:
    """When the loss of a batch (``where``: which one; ``parts``: its arrays by name, ``[("batch",
    batch)]`` or Keras' ``x``, ``y``, ``sample_weight``) is not finite: the :func:`data_error` of the
    first value in it that is not finite, which no learning rate fixes; None when its floating arrays
    are all finite (the LR blew the model up), or when ``previous`` (the batch before, as parts) held
    such values too (the loss then takes them, as one that masks missing targets does, and it was
    finite on that one). ``rows``: the batch was cut from arrays (their name), these samples of them."""
    hit = next((h for name, part in parts if (h := first_found(part, _not_finite, name))), None)
    if hit is None or (previous and any(first_found(p, _not_finite, n) for n, p in previous)):
        return None
    path, (array, mask) = hit
    first = tuple(int(i) for i in np.argwhere(mask)[0])
    note = ""
    if rows is not None and first:
        note = f"row {first[0]} of the batch is sample {int(rows[1][first[0]])} of {rows[0]}"
    value = array[first].item()
    return data_error(where, path, value, first, int(mask.sum()), mask.size, loss, "np.isfinite", note)


def check_each(
    batches: list[Any],
    losses: list[float],
    label: str,
    parts: Parts = _parts,
) -> None:
    """Raise :func:`nonfinite_data_error`'s error for the first of ``batches`` (``label`` and its index
    name it, e.g. ``val_data's batch 1``) whose loss in ``losses`` is not finite because of its data."""
    for i, (batch, loss) in enumerate(zip(batches, losses, strict=True)):
        if not math.isfinite(loss):
            before = parts(batches[i - 1]) if i else None
            error = nonfinite_data_error(parts(batch), loss, f"{label} {i}", before)
            if error is not None:
                raise error


def _short_repr(value: Any, limit: int = 80) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


class Batches:
    """Endless batches for one ramp at a time; :meth:`restart` begins a repeat's pass with its seed."""

    def __init__(
        self,
        data: Any,
        batch_size: int | None,
        name: str,
        parts: Parts = _parts,
    ) -> None:
        self.name = name
        self.data = data
        self.batch_size = batch_size = _batch_size(batch_size)
        self.parts = parts  # a batch's arrays by name, as errors name them
        self._it: Iterator[tuple[int, np.ndarray | None, Any]] = iter(())
        self.drawn = 0  # batches given in all: an iterable that never yields one is empty, not one-shot
        self._fixed: list[Any] | None = None
        # the last batch (its index in its pass, its samples of the arrays) and the one before it
        self.index = -1
        self.rows: np.ndarray | None = None
        self.last: Any = None
        self.previous: Any = None
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
        self._it = self._shuffled(seed) if self.batch_size is not None else self._pass()
        self.last = None  # a new ramp: no batch before its first

    def fixed(self, count: int, seed: int) -> list[Any]:
        """The escalation's fixed batches: the first ``count`` batches of the pass with ``seed``, drawn
        at the first call (which begins that pass), the same list at every later one."""
        if self._fixed is None:
            self.restart(seed)
            self._fixed = [self.next() for _ in range(count)]
        return self._fixed

    def _shuffled(self, seed: int) -> Iterator[tuple[int, np.ndarray | None, Any]]:
        assert self.batch_size is not None
        rng = np.random.default_rng(seed)
        size = min(self.batch_size, self.n)
        while True:  # full batches only: a short last batch would be a noisier rung
            perm = rng.permutation(self.n)
            for i, start in enumerate(range(0, self.n - size + 1, size)):
                rows = perm[start : start + size]
                yield i, rows, _take(self.data, rows)

    def _pass(self) -> Iterator[tuple[int, np.ndarray | None, Any]]:
        return ((i, None, batch) for i, batch in enumerate(self.data))

    def next(self) -> Any:
        """The next batch; an exhausted iterable is iterated again (a one-shot iterator cannot be)."""
        try:
            index, rows, batch = next(self._it)
        except StopIteration:
            self._it = self._pass()
            try:
                index, rows, batch = next(self._it)
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
        self.index, self.rows, self.previous, self.last = index, rows, self.last, batch
        return batch

    def check_loss(self, loss: float) -> None:
        """Raise :func:`nonfinite_data_error`'s error when ``loss``, that of the last batch, is not finite
        because a value in that batch is not. Only then is the batch read: the normal path costs nothing."""
        if math.isfinite(loss):
            return
        kind = "a shuffled pass" if self.rows is not None else "a pass"
        where = f"batch {self.index} (counting from 0) of {kind} over {self.name}"
        before = None if self.previous is None else self.parts(self.previous)
        rows = None if self.rows is None else (self.name, self.rows)
        error = nonfinite_data_error(self.parts(self.last), loss, where, before, rows)
        if error is not None:
            raise error
