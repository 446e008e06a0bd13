"""Escalation, budgets, batches_per_step and val_data in the Keras (torch backend) and optax finders.

References: the PyTorch finder (whose escalation is the benchmark's stored calibration) on the same
one-weight problem, which all three drivers compute alike in float32; hand-computed losses of one weight
``w`` trained by plain SGD on ``mean(w * x)`` (its gradient is ``mean(x)``); the restore bit for bit.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Iterator
from typing import Any

os.environ["KERAS_BACKEND"] = "torch"  # before the first `import keras` in this process

import jax.numpy as jnp
import keras
import numpy as np
import optax
import pytest
import torch

import lrkit
from lrkit.finder import find_lr as torch_find_lr
from lrkit.finder import lr_ramp
from lrkit.finder.escalation import FIXED_BATCHES

if keras.backend.backend() != "torch":  # pragma: no cover - keras imported earlier with another backend
    raise RuntimeError(f"this file needs Keras' torch backend; keras runs {keras.backend.backend()!r}")

pytestmark = [
    pytest.mark.filterwarnings("ignore:__array__ implementation doesn't accept a copy keyword"),
    pytest.mark.usefixtures("one_torch_thread"),
]
DRIVERS = ["keras", "optax"]


def _f32(*shape: int, value: float = 1.0) -> np.ndarray:
    return np.full(shape, value, "float32")


def _keras_loss(kind: str) -> Any:
    if kind == "quadratic":
        return "mse"  # mean((w x - y)^2)
    if kind == "linear":
        return lambda y_true, y_pred: keras.ops.mean(y_pred)  # mean(w x): gradient mean(x)
    return lambda y_true, y_pred: keras.ops.mean(y_pred) + keras.ops.mean(y_true)  # + noise from y


def _optax_loss(kind: str) -> Callable[[Any, Any], Any]:
    def loss(w: Any, batch: Any) -> Any:
        x, y = batch
        if kind == "quadratic":
            return jnp.mean((w * x - y) ** 2)
        if kind == "linear":
            return jnp.mean(w * x)
        return jnp.mean(w * x) + jnp.mean(y)

    return loss


def _one_weight(kind: str, accumulate: int | None = None) -> keras.Model:
    model = keras.Sequential(
        [keras.Input((1,)), keras.layers.Dense(1, use_bias=False, kernel_initializer="zeros")]
    )
    opt = keras.optimizers.SGD(learning_rate=0.5, gradient_accumulation_steps=accumulate)
    model.compile(optimizer=opt, loss=_keras_loss(kind))
    return model


def run(driver: str, kind: str, data: Any, y: Any = None, **kw: Any) -> Any:
    """The range test of one weight ``w = 0`` trained by plain SGD on the loss ``kind``, with
    ``data`` a list of ``(x, y)`` batches or arrays ``x`` (with ``y`` and ``batch_size``)."""
    if driver == "keras":
        return lrkit.keras.find_lr(_one_weight(kind), data, y, **kw)
    arrays = data if y is None else (data, y)
    return lrkit.optax.find_lr(_optax_loss(kind), jnp.zeros(()), lambda lr: optax.sgd(lr), arrays, **kw)


ONES = [(_f32(4, 1), _f32(4, 1))] * 2
CASES = {
    # still falling at end_lr: end_lr raised twice, then trusted
    "end_lr too low": {"start_lr": 1e-5, "end_lr": 1e-2, "num_steps": 40, "budget": 300},
    # blows up from the first rung: narrowed, start_lr cut, end_lr raised, budget spent
    "start_lr too high": {"start_lr": 3.0, "end_lr": 100.0, "num_steps": 30, "budget": 300},
    # flat over a range far too narrow: twice then four times the batches, budget spent
    "range too narrow": {"start_lr": 1e-7, "end_lr": 1e-4, "num_steps": 30, "budget": 300},
    "a budget from planned_steps": {"start_lr": 1e-7, "end_lr": 1e-4, "num_steps": 30, "planned_steps": 900},
}


@pytest.mark.parametrize("repeats", [1, 2])
@pytest.mark.parametrize("case", list(CASES))
@pytest.mark.parametrize("driver", DRIVERS)
def test_a_test_without_signal_escalates_as_the_torch_finder_does(
    driver: str, case: str, repeats: int
) -> None:
    kw = {**CASES[case], "repeats": repeats}
    model = torch.nn.Linear(1, 1, bias=False)
    torch.nn.init.zeros_(model.weight)
    opt = torch.optim.SGD(model.parameters(), lr=0.5)
    ref = torch_find_lr(
        model, opt, [(torch.ones(4, 1), torch.ones(4, 1))] * 2, torch.nn.functional.mse_loss, **kw
    )
    res = run(driver, "quadratic", ONES, **kw)
    assert res.escalation and res.escalation == ref.escalation  # one mechanism: the same retries
    assert (res.steps, res.first_steps, res.budget) == (ref.steps, ref.first_steps, ref.budget)
    assert res.first_steps == sum(c.lrs.size for c in ref.curves) or res.steps > res.first_steps
    assert res.budget is not None and res.steps - res.first_steps <= res.budget
    assert res.trusted == ref.trusted and (res.suggestion is None) == (not res.trusted)
    if res.trusted:
        assert res.suggestion == pytest.approx(ref.suggestion, rel=1e-9)
    else:
        assert "The finder already tried" in res.why_none and "larger budget (budget)" in res.why_none
    for c, r in zip(res.curves, ref.curves, strict=True):  # the last try's ramps
        np.testing.assert_array_equal(c.lrs, r.lrs)
        np.testing.assert_allclose(c.losses, r.losses, rtol=1e-5, atol=1e-6)
    # and the hand-computed curve of the last try's plan, each ramp (a retry's too) from w = 0: SGD on
    # (w - 1)^2, w <- w - lr 2 (w - 1), in float32 as the drivers (w reaches 1 exactly and stays)
    log = " ".join(res.escalation)
    found = re.findall(r"(\d+) batches per rung", log)
    per_rung, fixed = (int(found[-1]) if found else 1), "fixed batches" in log
    f32 = np.float32
    for c in res.curves:
        w, want = f32(0.0), []
        with np.errstate(over="ignore", invalid="ignore"):
            for lr in c.lrs:
                seen = []
                for _ in range(per_rung):
                    seen.append(float(w - 1) ** 2)
                    w = f32(w - f32(lr) * (f32(2) * (w - f32(1))))
                want.append(float(w - 1) ** 2 if fixed else float(np.mean(seen)))
        ok = np.isfinite(c.losses)  # float32 overflows (inf) where float64 does not yet
        assert np.all(np.asarray(want)[~ok] > np.finfo(np.float32).max)
        np.testing.assert_allclose(c.losses[ok], np.asarray(want)[ok], rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize(
    "budget", [{"budget": 1}, {"budget": 500}, {"budget": 0.5, "planned_steps": 1000}, {"planned_steps": 10}]
)
@pytest.mark.parametrize("driver", DRIVERS)
def test_a_clear_signal_gives_the_same_result_with_or_without_a_budget(driver: str, budget: Any) -> None:
    ramp = {"start_lr": 1e-4, "end_lr": 10.0, "num_steps": 40, "repeats": 2}
    free = run(driver, "quadratic", ONES, **ramp)
    res = run(driver, "quadratic", ONES, **ramp, **budget)
    assert free.trusted and res.suggestion == free.suggestion is not None
    assert res.escalation == () and res.steps == res.first_steps == free.steps == 80
    assert res.budget == {1: 1, 500: 500, 0.5: 500, None: 2}[budget.get("budget")]  # 10 % of 10 < 2 batches
    for a, b in zip(free.curves, res.curves, strict=True):
        np.testing.assert_array_equal(a.losses, b.losses)


@pytest.mark.parametrize("driver", DRIVERS)
def test_three_repeats_by_default_as_the_torch_finder(driver: str) -> None:
    """The default the trust verdict was calibrated at (3 repeats), in every driver."""
    res = run(driver, "quadratic", ONES, start_lr=1e-3, end_lr=1.0, num_steps=20)
    assert res.repeats == 3 and len(res.curves) == 3
    assert res.first_steps == sum(c.lrs.size for c in res.curves)


def _sgd_weights(lrs: np.ndarray, per_rung: int, gradient: float = 1.0) -> np.ndarray:
    """``W[i]``: the weight before rung ``i`` (``W[n]``: after the last), from 0, ``per_rung`` SGD steps
    of a constant ``gradient`` at each rung's LR."""
    return -gradient * per_rung * np.concatenate([[0.0], np.cumsum(lrs)])


@pytest.mark.parametrize("driver", DRIVERS)
def test_batches_per_step_and_val_data_record_the_loss_the_formula_gives(driver: str) -> None:
    lrs = lr_ramp(1e-3, 1e-1, 12)
    ramp = {"start_lr": 1e-3, "end_lr": 1e-1, "num_steps": 12, "diverge_factor": None}
    x = _f32(8, 1)
    m = 3
    w = _sgd_weights(lrs, m)
    # m steps at lr_i from W_i: the losses W_i, W_i - lr_i, ..., W_i - (m - 1) lr_i, their mean recorded
    res = run(driver, "linear", x, x, batch_size=2, batches_per_step=m, **ramp)
    np.testing.assert_allclose(res.losses, w[:-1] - lrs * (m - 1) / 2, rtol=1e-5, atol=1e-8)
    # val_data as arrays, cut in order into batch_size 2: inputs (1, 2), (3, 4), (5); the mean of the
    # batches' losses at the weight the rung left: W_{i+1} (1.5 + 3.5 + 5) / 3
    xv = np.arange(1, 6, dtype="float32").reshape(5, 1)
    res = run(driver, "linear", x, x, batch_size=2, batches_per_step=m, val_data=(xv, xv), **ramp)
    np.testing.assert_allclose(res.losses, w[1:] * 10 / 3, rtol=1e-5, atol=1e-8)
    # val_data as a list of batches (inputs 2 and 4): W_{i+1} (2 + 4) / 2
    val = [(_f32(3, 1, value=2.0), _f32(3, 1)), (_f32(5, 1, value=4.0), _f32(5, 1))]
    res = run(driver, "linear", [(x, x)], val_data=val, **ramp)
    np.testing.assert_allclose(res.losses, _sgd_weights(lrs, 1)[1:] * 3, rtol=1e-5, atol=1e-8)


def test_keras_gradient_accumulation_counts_optimizer_steps_in_the_budget() -> None:
    """With gradient_accumulation_steps=2 one epoch of ceil(10 / 4) = 3 batches is ceil(3 / 2) = 2
    optimizer steps; each rung of batches_per_step=2 is 2 optimizer steps of 2 batches."""
    x = _f32(10, 1)
    model = _one_weight("linear", accumulate=2)
    ramp = {"start_lr": 1e-3, "end_lr": 1e-1, "num_steps": 12, "diverge_factor": None}
    res = lrkit.keras.find_lr(model, x, x, batch_size=4, batches_per_step=2, planned_steps=10, **ramp)
    assert res.budget == 2  # max(int(0.1 * 10), 2)
    lrs = lr_ramp(1e-3, 1e-1, 12)
    # the two batches of a step see the weight before it: losses W_i, W_i, W_i - lr_i, W_i - lr_i
    np.testing.assert_allclose(res.losses, _sgd_weights(lrs, 2)[:-1] - lrs / 2, rtol=1e-5, atol=1e-8)


@pytest.mark.parametrize("driver", DRIVERS)
def test_a_retry_measures_the_loss_on_fixed_batches_as_the_formula_gives(driver: str) -> None:
    """``mean(w x) + mean(y)``: y (noise) does not move ``w``, so a training batch's loss is noisy while
    ``w`` falls by exactly the sum of the LRs. The retry's loss is that of the first 2 batches of the
    data, at the weight the rung left: ``W_{i+1} + mean(mean(y_0), mean(y_1))``."""
    rng = np.random.default_rng(0)
    data = [(_f32(4, 1), rng.normal(0.0, 3.0, (4, 1)).astype("float32")) for _ in range(16)]
    res = run(driver, "noisy", data, start_lr=1e-3, end_lr=1.0, num_steps=30, budget=400, repeats=2)
    assert f"loss measured on {FIXED_BATCHES} fixed batches" in " ".join(res.escalation)
    assert res.steps - res.first_steps <= 400
    per_rung = int(re.findall(r"(\d+) batches per rung", " ".join(res.escalation))[-1])
    offset = float(np.mean([np.mean(y) for _, y in data[:FIXED_BATCHES]]))
    for c in res.curves:
        want = _sgd_weights(c.lrs, per_rung)[1:] + offset
        np.testing.assert_allclose(c.losses, want, rtol=1e-5, atol=1e-5)


# --- Keras: the restore holds across retries --------------------------------------------------------


def _mlp(seed: int = 0) -> keras.Model:
    keras.utils.set_random_seed(seed)
    model = keras.Sequential(
        [
            keras.Input((8,)),
            keras.layers.Dense(16, activation="tanh"),
            keras.layers.BatchNormalization(),
            keras.layers.Dropout(0.1),
            keras.layers.Dense(3),
        ]
    )
    loss = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    model.compile(optimizer=keras.optimizers.Adam(1e-3), loss=loss, metrics=["accuracy"])
    return model


def _blobs(n: int = 256) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    y = rng.integers(0, 3, n).astype("int32")
    x = (rng.normal(size=(n, 8)) + y[:, None]).astype("float32")
    return x, y


def _state(model: keras.Model) -> list[bytes]:
    every = [*model.variables, *model.optimizer.variables, *model.metrics_variables]
    return [np.array(keras.ops.convert_to_numpy(v.value), copy=True).tobytes() for v in every]


def test_keras_restores_every_variable_after_retries_and_training_after_it_is_unchanged() -> None:
    x, y = _blobs()
    model, twin = _mlp(), _mlp()
    for m in (model, twin):
        keras.utils.set_random_seed(2)
        m.fit(x, y, batch_size=32, epochs=1, verbose=0)
    before = _state(model)
    keras.utils.set_random_seed(1)
    # a range far too narrow: flat, retried with more batches per rung and val_data's loss
    res = lrkit.keras.find_lr(
        model,
        x,
        y,
        batch_size=32,
        start_lr=1e-8,
        end_lr=1e-6,
        num_steps=20,
        budget=120,
        val_data=(x[:64], y[:64]),
    )
    assert res.steps > res.first_steps and res.escalation and res.suggestion is None
    assert _state(model) == before
    model.fit(x, y, batch_size=32, epochs=1, shuffle=False, verbose=0)
    keras.utils.set_random_seed(1)
    twin.fit(x, y, batch_size=32, epochs=1, shuffle=False, verbose=0)
    assert _state(model) == _state(twin)


class _Breaks:
    """Batches of ``x, y`` (an iterable that can be iterated again) that raise at the ``at``-th batch."""

    def __init__(self, x: np.ndarray, y: np.ndarray, at: int) -> None:
        self.x, self.y, self.at, self.drawn = x, y, at, 0

    def __iter__(self) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        for i in range(0, len(self.x), 32):
            self.drawn += 1
            if self.drawn == self.at:
                raise RuntimeError("the data pipeline broke")
            yield self.x[i : i + 32], self.y[i : i + 32]


def test_keras_restores_every_variable_when_a_retry_raises() -> None:
    x, y = _blobs()
    model = _mlp()
    model.fit(x, y, batch_size=32, epochs=1, verbose=0)
    before = _state(model)
    data = _Breaks(x, y, at=20 * 2 + 15)  # the first test (20 rungs, 2 repeats, never stops) draws 40
    with pytest.raises(RuntimeError, match="pipeline broke"):
        lrkit.keras.find_lr(model, data, start_lr=1e-8, end_lr=1e-6, num_steps=20, repeats=2, budget=200)
    assert data.drawn == 55 and _state(model) == before


# --- optax: params are never changed, across retries and when a retry raises ------------------------


def test_optax_never_changes_params_across_retries_or_when_a_retry_raises() -> None:
    params = {"w": np.zeros(1, "float32")}  # numpy leaves: a driver writing in place would show here

    def loss_fn(p: Any, batch: Any) -> Any:
        return jnp.mean((p["w"] * batch[0] - batch[1]) ** 2)

    kw = {"start_lr": 3.0, "end_lr": 100.0, "num_steps": 30, "budget": 300, "repeats": 2}
    res = lrkit.optax.find_lr(loss_fn, params, lambda lr: optax.sgd(lr), ONES, **kw)
    assert res.steps > res.first_steps and res.repeats == 2
    assert res.curves[0].losses[0] == res.curves[1].losses[0]  # both ramps from the params given
    np.testing.assert_array_equal(params["w"], [0.0])

    drawn = {"n": 0}
    at = res.first_steps + 5  # the first test blew up at once and drew first_steps batches: a retry's

    class Data:
        def __iter__(self) -> Iterator[Any]:
            for batch in ONES:
                drawn["n"] += 1
                if drawn["n"] == at:
                    raise RuntimeError("the data pipeline broke")
                yield batch

    with pytest.raises(RuntimeError, match="pipeline broke"):
        lrkit.optax.find_lr(loss_fn, params, lambda lr: optax.sgd(lr), Data(), **kw)
    np.testing.assert_array_equal(params["w"], [0.0])


# --- bad input ----------------------------------------------------------------------------------------

BAD = [
    ({"budget": -1}, ValueError, r"budget must be an integer >= 1, got -1"),
    (
        {"budget": 1.5, "planned_steps": 100},
        ValueError,
        r"budget as a float is a fraction of planned_steps in \(0, 1\], got 1\.5",
    ),
    ({"budget": 0.5}, ValueError, r"budget=0\.5 is a fraction of planned_steps; pass planned_steps too"),
    (
        {"budget": "x"},
        TypeError,
        r"budget must be an int \(optimizer steps\) or a float in \(0, 1\], got 'x'",
    ),
    ({"planned_steps": 0}, ValueError, r"planned_steps must be an integer >= 1, got 0"),
    ({"batches_per_step": 0}, ValueError, r"batches_per_step must be an integer >= 1, got 0"),
    ({"val_data": []}, ValueError, r"val_data must hold at least one batch, got list \[\] with none"),
    ({"val_data": 3.0}, TypeError, r"val_data must be an iterable of batches .* got float"),
]


@pytest.mark.parametrize(("kw", "error", "message"), BAD)
@pytest.mark.parametrize("driver", DRIVERS)
def test_bad_budgets_and_settings_are_refused_naming_the_argument(
    driver: str, kw: dict[str, Any], error: type[Exception], message: str
) -> None:
    if driver == "keras":
        model = _one_weight("quadratic")
        before = _state(model)
        with pytest.raises(error, match=message):
            lrkit.keras.find_lr(model, ONES, **kw)
        with pytest.raises(
            TypeError, match=r"val_data must be a tuple \(x_val, y_val\) .* ndarray of inputs"
        ):
            lrkit.keras.find_lr(model, ONES, val_data=_f32(4, 1))  # rows are no batches
        assert _state(model) == before and not model.optimizer.built  # refused before any work
    else:
        with pytest.raises(error, match=message):
            lrkit.optax.find_lr(_optax_loss("quadratic"), jnp.zeros(()), lambda lr: optax.sgd(lr), ONES, **kw)
