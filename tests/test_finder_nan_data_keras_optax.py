"""A value that is not finite in the data, for the Keras and optax range tests: the batch whose loss it
made NaN/inf is named (which array, which batch, which sample) in a ValueError, as the PyTorch finder
does (tests/test_finder_user_loaders.py), instead of being read as a blow-up at a tiny LR and retried
with ever lower start_lr. A blow-up of the model at a large LR on finite data ends the ramp as before.

Keras runs on the torch backend here (the backend of the other in-process Keras tests), on the jax
backend in a subprocess.
"""

from __future__ import annotations

import math
import os
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

os.environ["KERAS_BACKEND"] = "torch"  # before the first `import keras` in this process

import jax
import jax.numpy as jnp
import keras
import numpy as np
import optax
import pytest

import lrkit
import lrkit.keras
import lrkit.optax

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.filterwarnings("ignore:__array__ implementation doesn't accept a copy keyword")
TAIL = (
    "the data is broken, not the learning rate, so no learning rate fixes this; clean the data (drop or "
    "fix the samples where np.isfinite(x) is False) and run the test again"
)


def _data(n: int = 256) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(n, 8)).astype("float32")
    y = (x @ rng.normal(size=(8, 1))).astype("float32")
    return x, y


def _where(sample: int, seed: int = 0, n: int = 256, batch_size: int = 32) -> tuple[int, int]:
    """The batch (in the first pass, shuffled with ``seed``) and its row that hold ``sample``."""
    pos = int(np.flatnonzero(np.random.default_rng(seed).permutation(n) == sample)[0])
    return pos // batch_size, pos % batch_size


def _blew_up(res: Any) -> None:
    """Every ramp ran a while and ended at its first loss that is not finite, with a result."""
    for c in res.curves:
        assert not math.isfinite(float(c.losses[-1])) and c.stopped_at == c.losses.size - 1
        assert c.losses.size > 10


# --- optax ------------------------------------------------------------------------------------------


def _mlp() -> dict[str, jax.Array]:
    k1, k2 = jax.random.split(jax.random.PRNGKey(0))
    return {
        "w1": jax.random.normal(k1, (8, 16)) / 3,
        "b1": jnp.zeros(16),
        "w2": jax.random.normal(k2, (16, 1)) / 4,
        "b2": jnp.zeros(1),
    }


def _mse(p: Any, batch: Any) -> jax.Array:
    xb, yb = batch
    return jnp.mean((jnp.tanh(xb @ p["w1"] + p["b1"]) @ p["w2"] + p["b2"] - yb) ** 2)


def _adam(lr: float) -> optax.GradientTransformation:
    return optax.adam(lr)


def test_optax_names_the_sample_not_finite_instead_of_escalating() -> None:
    """The tester's case: one NaN among 256 samples. The ramp stopped at its second rung wherever the
    batch came, escalation cut start_lr to 1e-11 and said the loss 'was not finite from the first rung'."""
    x, y = _data()
    x[5, 3] = np.nan
    batch, row = _where(5)
    with pytest.raises(ValueError) as info:
        lrkit.optax.find_lr(_mse, _mlp(), _adam, (x, y), batch_size=32, repeats=3, planned_steps=2000)
    assert str(info.value) == (
        f"batch {batch} (counting from 0) of a shuffled pass over data holds nan at batch[0][{row}, 3] "
        f"(1 of 256 values in batch[0] not finite; row {row} of the batch is sample 5 of data), and its "
        f"loss was nan: {TAIL}"
    )


def test_optax_names_targets_in_an_iterable_of_batches_and_val_data() -> None:
    x, y = _data()
    y[70, 0] = np.inf  # batch 2 of 32, its row 6
    batches = [(x[i : i + 32], y[i : i + 32]) for i in range(0, 256, 32)]
    with pytest.raises(ValueError, match=r"^batch 2 \(counting from 0\) of a pass over data holds inf at "):
        lrkit.optax.find_lr(_mse, _mlp(), _adam, batches, num_steps=30, repeats=1)
    with pytest.raises(ValueError) as info:
        lrkit.optax.find_lr(_mse, _mlp(), _adam, batches[:2], val_data=batches, num_steps=30, repeats=1)
    assert str(info.value).startswith(
        "val_data's batch 2 holds inf at batch[1][6, 0] (1 of 32 values in batch[1] not finite), and its loss"
    )


def test_optax_a_blow_up_on_finite_data_is_still_a_blow_up() -> None:
    """Finite data, an LR that blows the model up: the ramp ends at the first loss that is not finite,
    with a result (the check reads the batch and finds nothing). Also when every batch holds NaN targets
    that the loss masks (the batch before was read the same way, and its loss was finite)."""
    x, y = _data()
    res = lrkit.optax.find_lr(
        _mse,
        _mlp(),
        optax.sgd,
        (x, y * 1e3),
        batch_size=32,
        start_lr=1e-4,
        end_lr=1e4,
        repeats=2,
        diverge_factor=None,
    )
    _blew_up(res)

    y2 = np.repeat(y, 2, axis=1) * 1e3
    y2[::8, 1] = np.nan  # in every batch of 32

    def masked(p: Any, batch: Any) -> jax.Array:
        xb, yb = batch
        out = jnp.tanh(xb @ p["w1"] + p["b1"]) @ p["w2"] + p["b2"]
        ok = jnp.isfinite(yb)
        return jnp.sum(jnp.where(ok, (out - jnp.where(ok, yb, 0.0)) ** 2, 0.0)) / jnp.sum(ok)

    res = lrkit.optax.find_lr(
        masked,
        _mlp(),
        optax.sgd,
        (x, y2),
        batch_size=32,
        start_lr=1e-4,
        end_lr=1e4,
        repeats=1,
        diverge_factor=None,
    )
    assert not math.isfinite(float(res.losses[-1])) and res.losses.size > 10


def test_a_loss_not_finite_from_the_second_rung_whatever_the_lr_says_so() -> None:
    """The model's own reason (sqrt's gradient at 0 is inf: the first update makes the weights NaN at any
    LR): escalation cuts start_lr twice, as before, and its last word now says where the loss went."""
    x, y = _data()

    def loss(p: Any, batch: Any) -> jax.Array:
        return jnp.sqrt(jnp.abs(p["w"])) + 0.0 * jnp.mean(batch[0])

    res = lrkit.optax.find_lr(
        loss, {"w": jnp.zeros(())}, _adam, (x, y), batch_size=32, repeats=2, planned_steps=2000
    )
    assert res.suggestion is None and all(c.losses.size == 2 for c in res.curves)
    assert res.escalation[-1] == (
        "stopped: the loss was not finite from the second rung even at start_lr=1e-11; check the loss "
        "function, the data and the model's initial loss"
    )


# --- Keras ------------------------------------------------------------------------------------------


def _model(opt: Any = None) -> Any:
    keras.utils.set_random_seed(0)
    m = keras.Sequential(
        [keras.Input((8,)), keras.layers.Dense(16, activation="tanh"), keras.layers.Dense(1)]
    )
    m.compile(optimizer=opt or keras.optimizers.Adam(learning_rate=1e-3), loss="mse")
    return m


def _state(m: Any) -> list[bytes]:
    m.optimizer.build(m.trainable_variables)
    return [keras.ops.convert_to_numpy(v.value).tobytes() for v in [*m.variables, *m.optimizer.variables]]


@pytest.mark.parametrize("in_y", [False, True])
def test_keras_names_the_array_and_the_sample_not_finite(in_y: bool) -> None:
    x, y = _data()
    if in_y:
        y[5, 0] = -np.inf
    else:
        x[5, 3] = np.nan
    batch, row = _where(5)
    at, size = (f"y[{row}, 0]", 32) if in_y else (f"x[{row}, 3]", 256)
    model = _model()
    before = _state(model)
    with pytest.raises(ValueError) as info:
        lrkit.keras.find_lr(model, x, y, batch_size=32, repeats=3, planned_steps=2000)
    value, loss = ("-inf", "inf") if in_y else ("nan", "nan")
    assert str(info.value) == (
        f"batch {batch} (counting from 0) of a shuffled pass over x, y holds {value} at {at} (1 of {size} "
        f"values in {at[0]} not finite; row {row} of the batch is sample 5 of x, y), and its loss was "
        f"{loss}: {TAIL}"
    )
    assert _state(model) == before  # restored, as after any error


def test_keras_names_the_batch_of_an_iterable_and_of_val_data() -> None:
    x, y = _data()
    x2 = x.copy()
    x2[33, 1] = np.nan  # batch 1 of 32, its row 1
    good = [(x[i : i + 32], y[i : i + 32]) for i in range(0, 256, 32)]
    bad = [(x2[i : i + 32], y[i : i + 32]) for i in range(0, 256, 32)]
    with pytest.raises(
        ValueError, match=r"^batch 1 \(counting from 0\) of a pass over x holds nan at x\[1, 1\] "
    ):
        lrkit.keras.find_lr(_model(), bad, num_steps=20, repeats=1)
    with pytest.raises(
        ValueError, match=r"^val_data's batch 1 holds nan at x\[1, 1\] \(1 of 256 values in x "
    ):
        lrkit.keras.find_lr(_model(), good, val_data=bad, num_steps=20, repeats=1)


def test_keras_a_blow_up_on_finite_data_is_still_a_blow_up() -> None:
    x, y = _data()
    model = _model(keras.optimizers.SGD(learning_rate=0.1))
    res = lrkit.keras.find_lr(
        model, x, y * 1e3, batch_size=32, start_lr=1e-4, end_lr=1e4, repeats=2, diverge_factor=None
    )
    _blew_up(res)


def test_keras_jax_backend_names_the_sample() -> None:
    """The tester's case on the jax backend (a process has one Keras backend: a subprocess)."""
    batch, row = _where(5)
    code = textwrap.dedent(
        """
        import os; os.environ["KERAS_BACKEND"] = "jax"
        import keras, numpy as np, lrkit.keras
        rng = np.random.default_rng(0)
        x = rng.normal(size=(256, 8)).astype("float32")
        y = (x @ rng.normal(size=(8, 1))).astype("float32")
        x[5, 3] = np.nan
        keras.utils.set_random_seed(0)
        m = keras.Sequential([keras.Input((8,)), keras.layers.Dense(16, activation="tanh"),
                              keras.layers.Dense(1)])
        m.compile(optimizer=keras.optimizers.Adam(learning_rate=1e-3), loss="mse")
        try:
            lrkit.keras.find_lr(m, x, y, batch_size=32, repeats=3, planned_steps=2000)
        except ValueError as err:
            print(err)
        """
    )
    env = {**os.environ, "KERAS_BACKEND": "jax", "JAX_PLATFORMS": "cpu"}
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, cwd=ROOT, timeout=120
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.strip() == (
        f"batch {batch} (counting from 0) of a shuffled pass over x, y holds nan at x[{row}, 3] (1 of 256 "
        f"values in x not finite; row {row} of the batch is sample 5 of x, y), and its loss was nan: {TAIL}"
    )
