"""Which batches the Keras (torch backend) and optax finders draw from arrays (``finder/_data.py``).

References: the documented stream, computed here apart from ``Batches``: repeat ``r`` shuffles with
``numpy.random.default_rng(seed + r)``, a new permutation from the same generator when a pass ends, cut
into full batches of ``min(batch_size, n)``; pinned by its literal values for one seed. The escalation's
fixed batches are the first 2 batches of the pass with ``seed`` (repeat 0's first two). In the drivers,
the sample ids each step trained on and each fixed-batch evaluation saw, recorded by the model itself.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

os.environ["KERAS_BACKEND"] = "torch"  # before the first `import keras` in this process

import jax
import jax.numpy as jnp
import keras
import numpy as np
import optax
import pytest

import lrkit
from lrkit.finder._data import Batches
from lrkit.finder.escalation import FIXED_BATCHES

if keras.backend.backend() != "torch":  # pragma: no cover - keras imported earlier with another backend
    raise RuntimeError(f"this file needs Keras' torch backend; keras runs {keras.backend.backend()!r}")

pytestmark = [
    pytest.mark.filterwarnings("ignore:__array__ implementation doesn't accept a copy keyword"),
    pytest.mark.usefixtures("one_torch_thread"),
]


def stream(seed: int, n: int, batch_size: int, count: int) -> list[list[int]]:
    """The first ``count`` batches (sample indices) of the pass that ``seed`` begins, as documented."""
    rng = np.random.Generator(np.random.PCG64(seed))  # what default_rng(seed) is
    size = min(batch_size, n)
    out: list[list[int]] = []
    while len(out) < count:
        perm = rng.permutation(n)
        out += [perm[k * size : (k + 1) * size].tolist() for k in range(n // size)]  # a short rest dropped
    return out[:count]


def test_the_stream_is_numpys_pcg64_permutations_pinned_by_value() -> None:
    # default_rng(0).permutation(10), twice: [4 6 2 7 3 5 9 0 8 1], [2 9 3 6 0 4 8 7 5 1]
    assert stream(0, 10, 3, 6) == [[4, 6, 2], [7, 3, 5], [9, 0, 8], [2, 9, 3], [6, 0, 4], [8, 7, 5]]


def _ids(batch: Any) -> list[int]:
    """The sample ids of a batch of the pytree ``(ids, {"x10": 10 * ids})``, checking its two leaves agree."""
    ids, rest = batch
    np.testing.assert_array_equal(rest["x10"], 10 * ids)
    return [int(i) for i in ids]


@pytest.mark.parametrize(
    ("n", "batch_size", "seed"), [(10, 3, 0), (10, 3, 7), (12, 4, 3), (7, 7, 1), (5, 8, 2), (9, 2, 11)]
)
def test_a_pass_is_the_seeds_permutations_cut_into_full_batches(n: int, batch_size: int, seed: int) -> None:
    ids = np.arange(n)
    batches = Batches((ids, {"x10": 10 * ids}), batch_size, "x")
    count = 3 * (n // min(batch_size, n)) + 1  # three passes and one batch of the fourth
    for r in range(3):  # repeat r begins the pass with seed + r, from its start each time
        batches.restart(seed + r)
        assert [_ids(batches.next()) for _ in range(count)] == stream(seed + r, n, batch_size, count)
    batches.restart(seed)
    assert [_ids(batches.next()) for _ in range(count)] == stream(seed, n, batch_size, count)


def test_fixed_batches_are_the_first_of_the_seeds_pass_drawn_once() -> None:
    ids = np.arange(10)
    batches = Batches((ids, {"x10": 10 * ids}), 3, "x")
    batches.restart(5)
    batches.next()  # wherever the stream stands, fixed() begins the pass with its seed
    fixed = batches.fixed(2, 4)
    assert [_ids(b) for b in fixed] == stream(4, 10, 3, 2) == [[1, 0, 7], [2, 9, 8]]
    assert batches.fixed(2, 9) is fixed and batches.fixed(5, 4) is fixed  # drawn at the first call only
    assert [_ids(b) for b in fixed] == stream(4, 10, 3, 2)
    batches.restart(6)  # and a later pass is the one its seed gives
    assert [_ids(batches.next()) for _ in range(4)] == stream(6, 10, 3, 4)


# --- the drivers: what each step trained on, what each fixed-batch evaluation saw ------------------

N, BATCH, SEED = 10, 3, 7
NOISE = np.random.default_rng(0).normal(0.0, 3.0, N).astype("float32")
#: a noisy loss (the noise of the batch's samples, which does not move the weight) escalates to fixed
#: batches, then to a wider ramp: three attempts, the last trusted
TEST = {"start_lr": 1e-3, "end_lr": 1.0, "num_steps": 30, "budget": 400, "repeats": 2, "seed": SEED}

Record = tuple[str, float, list[int]]  # "train" or "eval", the weight the loss saw, the batch's ids


class _Seen(keras.layers.Layer):
    """One weight ``w`` (from 0): outputs ``w`` per sample, so ``mean(y_pred)`` has gradient 1;
    records the ids of each batch it is called on (``training``: a train step, else an evaluation)."""

    def __init__(self, record: Callable[[Record], None]) -> None:
        super().__init__()
        self.record = record  # (a list would be copied into a Keras-tracked one)

    def build(self, input_shape: Any) -> None:
        self.w = self.add_weight(shape=(), initializer="zeros")

    def call(self, inputs: Any, training: bool | None = None) -> Any:
        w = float(keras.ops.convert_to_numpy(keras.ops.stop_gradient(self.w)))
        ids = [int(i) for i in keras.ops.convert_to_numpy(inputs)[:, 0]]
        self.record(("train" if training else "eval", w, ids))
        return self.w * keras.ops.ones_like(inputs)


def _keras(records: list[Record]) -> Any:
    x, y = np.arange(N, dtype="float32")[:, None], NOISE[:, None]
    model = keras.Sequential([keras.Input((1,)), _Seen(records.append)])
    model.compile(
        optimizer=keras.optimizers.SGD(0.5), loss=lambda t, p: keras.ops.mean(p) + keras.ops.mean(t)
    )
    model.evaluate(x, y, batch_size=N, verbose=0)  # Keras' one-time build (on placeholders) done here
    records.clear()
    return lrkit.keras.find_lr(model, x, y, batch_size=BATCH, **TEST)


def _optax(records: list[Record]) -> Any:
    # jax differentiates through tap's fwd rule (a train step) and evaluates tap itself otherwise
    def seen(kind: str) -> Any:
        return lambda w, ids: records.append((kind, float(w), [int(i) for i in ids]))

    @jax.custom_vjp
    def tap(w: Any, ids: Any) -> Any:
        jax.debug.callback(seen("eval"), w, ids)
        return w

    def tap_fwd(w: Any, ids: Any) -> Any:
        jax.debug.callback(seen("train"), w, ids)
        return w, None

    tap.defvjp(tap_fwd, lambda _, g: (g, None))

    def loss_fn(w: Any, batch: Any) -> Any:
        ids, noise = batch
        return tap(w, ids) + jnp.mean(noise)

    data = (np.arange(N), NOISE)
    return lrkit.optax.find_lr(
        loss_fn, jnp.zeros(()), lambda lr: optax.sgd(lr), data, batch_size=BATCH, **TEST
    )


@pytest.mark.parametrize("driver", ["keras", "optax"])
def test_every_ramp_trains_on_its_repeats_pass_and_every_retry_evaluates_the_same_fixed_batches(
    driver: str,
) -> None:
    records: list[Record] = []
    res = _keras(records) if driver == "keras" else _optax(records)
    tried = [line for line in res.escalation if not line.startswith("stopped")]
    assert f"loss measured on {FIXED_BATCHES} fixed batches" in tried[0] and len(tried) == 2 and res.trusted
    firsts = [stream(SEED + r, N, BATCH, 1)[0] for r in range(6)]
    assert len({tuple(b) for b in firsts}) == 6  # a ramp's first batch tells which repeat it is
    # a ramp begins where the weight is back at 0 (the model as given); a step moves it by -lr
    assert records[0][:2] == ("train", 0.0)
    ramps: list[tuple[list[list[int]], list[Record]]] = []
    for kind, w, ids in records:
        if kind == "train" and w == 0.0:
            ramps.append(([], []))
        if kind == "train":
            ramps[-1][0].append(ids)
        else:
            ramps[-1][1].append((kind, w, ids))
    attempts: list[list[tuple[list[list[int]], list[Record]]]] = []
    for trained, evals in ramps:
        r = firsts.index(trained[0])
        if r == 0:
            attempts.append([])
        assert r == len(attempts[-1])  # repeats 0, 1, ... in order, each attempt from repeat 0
        assert trained == stream(SEED + r, N, BATCH, len(trained))  # its pass, reshuffled as it goes on
        attempts[-1].append((trained, evals))
    assert len(attempts) == 1 + len(tried) and len(attempts[-1]) == res.repeats == len(res.curves)
    assert all(evals == [] for _, evals in attempts[0])  # the first test: the loss of its training batches
    fixed = stream(SEED, N, BATCH, FIXED_BATCHES)
    offset = float(np.mean([NOISE[b].mean() for b in fixed]))
    for attempt in attempts[1:]:  # each rung of each retry: the two fixed batches, the same ones
        for _, evals in attempt:
            assert evals and [ids for _, _, ids in evals] == fixed * (len(evals) // FIXED_BATCHES)
    for (_, evals), curve in zip(attempts[-1], res.curves, strict=True):
        # the rung's loss: that of the fixed batches at the weight the rung left
        after = np.array([w for _, w, _ in evals[::FIXED_BATCHES]])
        np.testing.assert_allclose(curve.losses, after + offset, rtol=1e-5, atol=1e-5)
