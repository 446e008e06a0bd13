"""The Keras and optax finders warn, as the torch finder does, when their repeats measured the same curve
again: an iterable of batches (a list, a generator factory) comes in the same order every pass, so the
repeats give no interval. Arrays cut by ``batch_size`` are shuffled per repeat: no warning. The warning
points at the caller's line."""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
import pytest

import lrkit

jax = pytest.importorskip("jax")
optax = pytest.importorskip("optax")
keras = pytest.importorskip("keras")
jnp = jax.numpy

RAMP: dict[str, Any] = {"start_lr": 1e-3, "end_lr": 1.0, "num_steps": 20, "repeats": 2}
SAYS = "find_lr: the 2 repeats saw the same batches in the same order"


def _alike(caught: list[warnings.WarningMessage]) -> list[warnings.WarningMessage]:
    return [w for w in caught if SAYS in str(w.message)]


def _sq(w: Any, batch: Any) -> Any:
    x, y = batch
    return jnp.mean((x * w - y) ** 2)


def _data() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    x = rng.normal(size=64).astype("float32")
    return x, (3 * x + 0.1 * rng.normal(size=64)).astype("float32")


def test_optax_repeats_over_a_list_of_batches_are_said_to_be_alike() -> None:
    x, y = _data()
    batches = [(x[i : i + 8], y[i : i + 8]) for i in range(0, 64, 8)]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        res = lrkit.optax.find_lr(_sq, jnp.zeros(()), lambda lr: optax.sgd(lr), batches, **RAMP)
    assert res.distinct_repeats == 1
    (w,) = _alike(caught)
    assert w.category is UserWarning and w.filename == __file__, (w.filename, str(w.message))


def test_optax_repeats_over_shuffled_arrays_are_not() -> None:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        res = lrkit.optax.find_lr(_sq, jnp.zeros(()), lambda lr: optax.sgd(lr), _data(), batch_size=8, **RAMP)
    assert res.distinct_repeats == 2 and not _alike(caught)


def _model() -> Any:
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((1,)), keras.layers.Dense(1)])
    model.compile(optimizer=keras.optimizers.SGD(0.01), loss="mse")
    return model


def test_keras_repeats_over_a_list_of_batches_are_said_to_be_alike() -> None:
    x, y = (a.reshape(-1, 1) for a in _data())
    batches = [(x[i : i + 8], y[i : i + 8]) for i in range(0, 64, 8)]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        res = lrkit.keras.find_lr(_model(), batches, **RAMP)
    assert res.distinct_repeats == 1
    (w,) = _alike(caught)
    assert w.category is UserWarning and w.filename == __file__, (w.filename, str(w.message))


def test_keras_repeats_over_shuffled_arrays_are_not() -> None:
    x, y = (a.reshape(-1, 1) for a in _data())
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        res = lrkit.keras.find_lr(_model(), x, y, batch_size=8, **RAMP)
    assert res.distinct_repeats == 2 and not _alike(caught)
