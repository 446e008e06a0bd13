"""The range test on Keras 3 models (torch backend here, jax in a subprocess): lrkit.keras.find_lr.
Escalation, budgets and val_data: tests/test_finder_escalation_drivers.py.

References: the LR each rung applied is read off a one-weight model trained by plain SGD on
``loss = mean(w * 1)`` (gradient exactly 1: the loss at rung ``i`` is ``-sum(lr_0 .. lr_{i-1})``); the
restore is checked bit for bit on every variable, and by training after the test, which must give the
very weights that training without it gives; the suggestion by training at it, at 100x less and 100x
more on scikit-learn's digits (held-out accuracy).
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

os.environ["KERAS_BACKEND"] = "torch"  # before the first `import keras` in this process

import keras
import numpy as np
import pytest
from sklearn.datasets import load_digits

import lrkit
from lrkit.finder import FinderResult, lr_ramp, schedule_from_result

if keras.backend.backend() != "torch":  # pragma: no cover - keras imported earlier with another backend
    raise RuntimeError(
        f"tests/test_finder_keras.py needs the torch backend; keras runs {keras.backend.backend()!r}"
    )

find_lr = lrkit.keras.find_lr
pytestmark = pytest.mark.filterwarnings("ignore:__array__ implementation doesn't accept a copy keyword")
ROOT = Path(__file__).resolve().parents[1]


@keras.saving.register_keras_serializable(package="lrkit_finder_tests")
def mean_prediction(y_true: object, y_pred: object) -> object:
    """A loss whose gradient with respect to a bias-free Dense(1) on inputs of 1 is exactly 1."""
    return keras.ops.mean(y_pred)


def _one_weight_model(optimizer: keras.optimizers.Optimizer | None = None) -> keras.Model:
    model = keras.Sequential(
        [keras.Input((1,)), keras.layers.Dense(1, use_bias=False, kernel_initializer="zeros")]
    )
    model.compile(optimizer=optimizer or keras.optimizers.SGD(learning_rate=0.5), loss=mean_prediction)
    return model


def _digits() -> tuple[np.ndarray, np.ndarray]:
    d = load_digits()
    return (d.data / 16).astype("float32"), d.target.astype("int32")


def _mlp(lr: float, *, adam: bool = False, seed: int = 0) -> keras.Model:
    keras.utils.set_random_seed(seed)
    model = keras.Sequential(
        [
            keras.Input((64,)),
            keras.layers.Dense(32, activation="tanh"),
            keras.layers.BatchNormalization(),
            keras.layers.Dropout(0.1),
            keras.layers.Dense(10),
        ]
    )
    opt = keras.optimizers.Adam(lr) if adam else keras.optimizers.SGD(lr, momentum=0.9)
    model.compile(
        optimizer=opt, loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True), metrics=["accuracy"]
    )
    return model


def _state(model: keras.Model) -> list[np.ndarray]:
    every = [*model.variables, *model.optimizer.variables, *model.metrics_variables]
    return [np.array(keras.ops.convert_to_numpy(v.value), copy=True) for v in every]


def _same_bits(a: list[np.ndarray], b: list[np.ndarray]) -> None:
    assert len(a) == len(b)
    for u, v in zip(a, b, strict=True):
        assert u.dtype == v.dtype and u.shape == v.shape and u.tobytes() == v.tobytes()


@pytest.mark.parametrize(
    "optimizer",
    [
        pytest.param(lambda: keras.optimizers.SGD(learning_rate=0.5), id="sgd"),
        # two train_on_batch calls make one step: a rung is both, at one LR
        pytest.param(lambda: keras.optimizers.SGD(0.5, gradient_accumulation_steps=2), id="accumulation"),
        # mixed precision's wrapper: the LR is its inner optimizer's
        pytest.param(lambda: keras.optimizers.LossScaleOptimizer(keras.optimizers.SGD(0.5)), id="loss_scale"),
    ],
)
def test_each_rung_applies_the_ramps_lr(optimizer: Any) -> None:
    model = _one_weight_model(optimizer())
    x, y = np.ones((8, 1), "float32"), np.zeros((8, 1), "float32")
    res = find_lr(model, x, y, batch_size=4, start_lr=1e-3, end_lr=1e-1, num_steps=12, diverge_factor=None)
    lrs = lr_ramp(1e-3, 1e-1, 12)
    np.testing.assert_array_equal(res.lrs, lrs)
    # the loss at rung i is the weight before its update: -(lr_0 + ... + lr_{i-1}), in float32
    np.testing.assert_allclose(
        res.losses, -np.concatenate([[0.0], np.cumsum(lrs)[:-1]]), rtol=1e-5, atol=1e-9
    )
    # and afterwards the weight, the optimizer's LR and its step count are the model's again
    assert float(keras.ops.convert_to_numpy(model.layers[0].kernel).ravel()[0]) == 0.0
    assert float(model.optimizer.learning_rate) == 0.5 and int(model.optimizer.iterations) == 0
    assert all(
        not np.any(keras.ops.convert_to_numpy(v.value))
        for v in model.optimizer.variables
        if "accumulator" in v.path
    )


def test_every_variable_is_restored_bit_for_bit_and_training_after_it_is_unchanged() -> None:
    x, y = _digits()
    trained, twin = _mlp(1e-3, adam=True), _mlp(1e-3, adam=True)
    for m in (trained, twin):  # moments, BN statistics, a step count
        keras.utils.set_random_seed(2)
        m.fit(x[:256], y[:256], batch_size=64, epochs=1, verbose=0)
    before = _state(trained)
    _same_bits(before, _state(twin))
    keras.utils.set_random_seed(1)
    res = find_lr(trained, x, y, batch_size=64, num_steps=30, repeats=2)
    assert res.repeats == 2
    _same_bits(before, _state(trained))
    # the fit that follows gives exactly the weights a fit without the test gives: BN, and the dropout
    # masks (unseeded, Keras' torch backend draws them from torch's RNG, which the test leaves as it was)
    trained.fit(x[:512], y[:512], batch_size=64, epochs=1, shuffle=False, verbose=0)
    keras.utils.set_random_seed(1)
    twin.fit(x[:512], y[:512], batch_size=64, epochs=1, shuffle=False, verbose=0)
    _same_bits(_state(trained), _state(twin))


def test_an_optimizer_not_built_yet_is_left_as_a_first_fit_builds_it() -> None:
    x, y = _digits()
    a, b = _mlp(0.05), _mlp(0.05)
    assert not a.optimizer.built
    find_lr(a, x, y, batch_size=64, num_steps=30)
    b.optimizer.build(b.trainable_variables)  # what fit does first: iterations 0, zero momentum

    def every(m: keras.Model) -> list[np.ndarray]:
        return [np.array(keras.ops.convert_to_numpy(v.value)) for v in (*m.variables, *m.optimizer.variables)]

    _same_bits(every(a), every(b))


def test_restored_when_the_test_raises_midway() -> None:
    x, y = _digits()
    model = _mlp(0.05)
    model.fit(x[:128], y[:128], batch_size=64, epochs=1, verbose=0)
    before = _state(model)

    def batches():  # five good batches, then a broken one
        for i in range(5):
            yield x[64 * i : 64 * (i + 1)], y[64 * i : 64 * (i + 1)]
        raise RuntimeError("the data pipeline broke")

    with pytest.raises(RuntimeError, match="pipeline broke"):
        find_lr(model, batches(), num_steps=20)
    _same_bits(before, _state(model))


def test_the_suggestion_trains_better_than_100x_less_or_more() -> None:
    x, y = _digits()
    res = find_lr(_mlp(1e-3), x[:1400], y[:1400], batch_size=64, repeats=3)
    assert isinstance(res, FinderResult) and res.trusted, res.reason
    lr = res.require()
    assert res.interval[0] <= lr <= res.interval[1]
    assert res.budget is None and res.escalation == () and res.steps == res.first_steps  # no budget, no retry
    sched = schedule_from_result(res).resolve(total_steps=100)
    assert max(sched(np.arange(100))) == pytest.approx(res.peak_lr)
    keras_sched = lrkit.keras.schedule(res.schedule(), total_steps=100)  # what one trains with next
    assert float(keras_sched(50)) == pytest.approx(sched(50), rel=1e-6)

    def accuracy(rate: float) -> float:
        model = _mlp(rate)
        model.fit(x[:1400], y[:1400], batch_size=64, epochs=3, verbose=0)
        return float(model.evaluate(x[1400:], y[1400:], verbose=0, return_dict=True)["accuracy"])

    at = accuracy(lr)
    assert at > accuracy(lr / 100) and at > accuracy(lr * 100)
    assert at > 0.7


def test_a_list_of_batches_is_cycled_and_each_repeat_starts_over() -> None:
    model = _one_weight_model()
    one, two = (
        (np.ones((4, 1), "float32"), np.zeros((4, 1), "float32")),
        (
            2 * np.ones((4, 1), "float32"),
            np.zeros((4, 1), "float32"),
        ),
    )
    # inputs of 1 then 2: the gradient alternates 1, 2; the weight before rung 2 is -(lr_0 + 2 lr_1)
    res = find_lr(model, [one, two], start_lr=0.01, end_lr=0.1, num_steps=3, repeats=2, diverge_factor=None)
    lrs = lr_ramp(0.01, 0.1, 3)
    for c in res.curves:
        np.testing.assert_allclose(c.losses, [0.0, -2 * lrs[0], -(lrs[0] + 2 * lrs[1])], rtol=1e-6)


def test_bad_inputs_are_refused_with_what_was_expected() -> None:
    x, y = np.ones((8, 1), "float32"), np.zeros((8, 1), "float32")
    bare = keras.Sequential([keras.Input((1,)), keras.layers.Dense(1)])
    with pytest.raises(ValueError, match=r"not compiled: call model.compile\("):
        find_lr(bare, x, y)
    with pytest.raises(TypeError, match=r"model must be a keras\.Model, got str"):
        find_lr("model", x, y)
    unbuilt = keras.Sequential([keras.layers.Dense(1)])
    unbuilt.compile(optimizer="sgd", loss="mse")
    with pytest.raises(ValueError, match="not built: give it an input shape"):
        find_lr(unbuilt, x, y)
    for sched in (
        lrkit.keras.schedule("cosine(lr=0.1, steps=10)"),
        keras.optimizers.schedules.CosineDecay(0.1, 10),
    ):
        scheduled = keras.Sequential([keras.Input((1,)), keras.layers.Dense(1)])
        scheduled.compile(optimizer=keras.optimizers.Adam(learning_rate=sched), loss="mse")
        with pytest.raises(ValueError, match=r"a schedule; .*compile the model with a float learning rate"):
            find_lr(scheduled, x, y)
    model = _one_weight_model()
    before = _state(model)
    with pytest.raises(ValueError, match="num_steps must be an integer >= 2, got 1"):
        find_lr(model, x, y, num_steps=1)
    with pytest.raises(ValueError, match=r"end_lr must be greater than start_lr=0\.1, got 0\.01"):
        find_lr(model, x, y, start_lr=0.1, end_lr=0.01)
    with pytest.raises(ValueError, match="start_lr must be a finite number > 0, got -1"):
        find_lr(model, x, y, start_lr=-1)
    with pytest.raises(ValueError, match="batch_size must be an integer >= 1, got 0"):
        find_lr(model, x, y, batch_size=0)
    with pytest.raises(ValueError, match=r"sharing their first axis.*\(8, 1\), \(7, 1\)"):
        find_lr(model, x, y[:7])
    with pytest.raises(TypeError, match="x must be an iterable of batches"):
        find_lr(model, 3.0)
    # read as one batch of inputs without targets, it failed in Keras with "Invalid dtype: object"
    with pytest.raises(
        TypeError, match=r"val_data must be a tuple \(x_val, y_val\) .* got a tuple of 1 array$"
    ):
        find_lr(model, x, y, val_data=(x,))
    # the float32 LR variable turned a larger end_lr into inf: a curve of NaN, not an error
    with pytest.raises(
        ValueError, match=r"end_lr must be at most 3\.4e\+38, .*float32 learning_rate.* 1e\+300"
    ):
        find_lr(model, x, y, end_lr=1e300)
    _same_bits(before, _state(model))
    assert not model.optimizer.built  # refused before anything was touched
    # found at the first rung (the optimizer is built by then, as a first fit builds it): not "yielded no
    # more batches; pass a list", which an empty list is
    with pytest.raises(ValueError, match=r"x yielded no batches \(list \[\]\); expected at least one"):
        find_lr(model, [])


class _AddedLoss(keras.layers.Layer):
    """The identity, adding ``mean(inputs)`` to the model's losses: a loss with no targets."""

    def call(self, inputs: Any) -> Any:
        self.add_loss(keras.ops.mean(inputs))
        return inputs


class _Autoencoder(keras.Sequential):
    """Trains its compiled loss on ``y = x`` when given no ``y``: a standard loss without targets."""

    def compute_loss(  # type: ignore[override]
        self,
        x: Any = None,
        y: Any = None,
        y_pred: Any = None,
        sample_weight: Any = None,
        training: bool = True,
    ) -> Any:
        return super().compute_loss(x, x if y is None else y, y_pred, sample_weight, training=training)


def test_x_without_y_is_refused_where_keras_loss_needs_targets_and_runs_where_it_does_not() -> None:
    x, y = _digits()
    for loss in (
        "sparse_categorical_crossentropy",
        keras.losses.SparseCategoricalCrossentropy(),
        mean_prediction,
    ):
        model = _mlp(0.05)
        model.compile(optimizer=keras.optimizers.SGD(0.05), loss=loss)
        model.fit(x[:128], y[:128], batch_size=64, epochs=1, verbose=0)  # moments, BN statistics, a step
        before = _state(model)
        # Keras calls the compiled loss, even one that ignores y_true, with y_true=None: it failed inside
        # Keras with "Invalid dtype: object"; refused now before any step, naming y
        with pytest.raises(
            ValueError,
            match=r"^find_lr got x but no y; Keras' loss needs targets: pass y=\.\.\. or a dataset of "
            r"\(x, y\) batches",
        ):
            find_lr(model, x, batch_size=64, num_steps=10, repeats=1)
        _same_bits(before, _state(model))
        keras.utils.set_random_seed(3)
        with_y = find_lr(model, x[:256], y[:256], batch_size=64, num_steps=10, repeats=1, diverge_factor=None)
        keras.utils.set_random_seed(3)
        dataset = [(x[i : i + 64], y[i : i + 64]) for i in range(0, 256, 64)]
        listed = find_lr(model, dataset, num_steps=10, repeats=1, diverge_factor=None)
        assert np.all(np.isfinite(with_y.losses)) and np.all(np.isfinite(listed.losses))
        _same_bits(before, _state(model))
    lrs = lr_ramp(1e-3, 1e-1, 12)
    ramp = {"batch_size": 4, "start_lr": 1e-3, "end_lr": 1e-1, "num_steps": 12, "diverge_factor": None}
    ones = np.ones((8, 1), "float32")
    # no compiled loss, add_loss alone: mean(w * 1) by SGD, the loss at rung i is -(lr_0 + ... + lr_{i-1})
    added = keras.Sequential(
        [keras.Input((1,)), keras.layers.Dense(1, use_bias=False, kernel_initializer="zeros"), _AddedLoss()]
    )
    added.compile(optimizer=keras.optimizers.SGD(0.5))
    res = find_lr(added, ones, **ramp)
    np.testing.assert_allclose(
        res.losses, -np.concatenate([[0.0], np.cumsum(lrs)[:-1]]), rtol=1e-5, atol=1e-9
    )
    # a standard loss given targets by the model (y = x = 1): mse (w - 1)^2, w <- w - lr 2 (w - 1) from 0
    auto = _Autoencoder(
        [keras.Input((1,)), keras.layers.Dense(1, use_bias=False, kernel_initializer="zeros")]
    )
    auto.compile(optimizer=keras.optimizers.SGD(0.5), loss="mse")
    res = find_lr(auto, ones, **ramp)
    w, want = 0.0, []
    for lr in lrs:
        want.append((w - 1) ** 2)
        w -= lr * 2 * (w - 1)
    np.testing.assert_allclose(res.losses, want, rtol=1e-5)


class _HandsBatchOn(keras.Sequential):
    """A ``train_step`` of its own that hands the batch on as it is: ``y=None`` reaches the loss."""

    def train_step(self, *args: Any) -> Any:
        return super().train_step(*args)


class _TargetsInStep(keras.Sequential):
    """A ``train_step`` that gives the compiled loss ``y = x`` itself; Keras' first ``train_on_batch``
    builds that loss first, calling it with ``y_true=None`` (unless it was built already)."""

    def train_step(self, data: Any) -> Any:
        x, _, sample_weight = keras.utils.unpack_x_y_sample_weight(data)
        return super().train_step((x, x, sample_weight))


NO_TARGETS = (
    r"^{} has no targets \(y\), and Keras called the model's compiled loss 'mse' with y_true=None "
    r"\(ValueError: .+\); pass targets \(y=\.\.\., or batches \(x, y\)\), or give that loss targets in "
    r"the model \(override compute_loss, e\.g\. with y = x for an autoencoder\), or compile without a "
    r"loss and compute the loss in train_step$"
)


def test_a_loss_keras_calls_without_targets_is_said_so_with_what_to_pass() -> None:
    """Where that cannot be known before a step (a train_step of the model's own, a dataset of inputs
    alone), Keras' own error from inside ("Invalid dtype: object" here) is said in those terms."""
    lrs = lr_ramp(1e-3, 1e-1, 12)
    ramp = {"start_lr": 1e-3, "end_lr": 1e-1, "num_steps": 12, "diverge_factor": None}
    ones = np.ones((8, 1), "float32")
    w, mse = 0.0, []  # mse (w - 1)^2 on x = y = 1, w <- w - lr 2 (w - 1) from 0
    for lr in lrs:
        mse.append((w - 1) ** 2)
        w -= lr * 2 * (w - 1)

    def one_weight(cls: type[keras.Sequential]) -> keras.Sequential:
        model = cls([keras.Input((1,)), keras.layers.Dense(1, use_bias=False, kernel_initializer="zeros")])
        model.compile(optimizer=keras.optimizers.SGD(0.5), loss="mse")
        return model

    for cls in (_HandsBatchOn, _TargetsInStep, keras.Sequential):
        model = one_weight(cls)
        before = _state(model)
        data = [ones[:4], ones[4:]] if cls is keras.Sequential else ones  # a dataset of inputs alone
        with pytest.raises(ValueError, match=NO_TARGETS.format("x")):
            find_lr(model, data, batch_size=4, **ramp)
        _same_bits(before, _state(model))
        np.testing.assert_allclose(find_lr(model, ones, ones, batch_size=4, **ramp).losses, mse, rtol=1e-5)
        with pytest.raises(ValueError, match=NO_TARGETS.format("val_data")):  # val batches of inputs alone
            find_lr(model, ones, ones, batch_size=4, val_data=[ones], **ramp)
        _same_bits(before, _state(model))
    # built (by a first evaluate), the loss gets the targets _TargetsInStep gives it: it runs
    model = one_weight(_TargetsInStep)
    model.evaluate(ones, ones, verbose=0)
    np.testing.assert_allclose(find_lr(model, ones, batch_size=4, **ramp).losses, mse, rtol=1e-5)


def test_jax_backend_ramp_and_restore(tmp_path: Path) -> None:
    """A process has one Keras backend: the jax one runs in a subprocess."""
    code = textwrap.dedent(
        """
        import os; os.environ["KERAS_BACKEND"] = "jax"
        import keras, numpy as np, lrkit
        from lrkit.finder import lr_ramp
        model = keras.Sequential([keras.Input((1,)), keras.layers.Dense(1, use_bias=False,
                                  kernel_initializer="zeros")])
        model.compile(optimizer=keras.optimizers.SGD(learning_rate=0.5),
                      loss=lambda t, p: keras.ops.mean(p))
        x, y = np.ones((8, 1), "float32"), np.zeros((8, 1), "float32")
        model.fit(x, y, batch_size=4, epochs=1, verbose=0)
        before = [np.array(v.value) for v in (*model.variables, *model.optimizer.variables)]
        res = lrkit.keras.find_lr(model, x, y, batch_size=4, start_lr=1e-3, end_lr=1e-1, num_steps=12,
                                  diverge_factor=None, repeats=2)
        lrs = lr_ramp(1e-3, 1e-1, 12)
        for c in res.curves:
            want = -1.0 - np.concatenate([[0.0], np.cumsum(lrs)[:-1]])  # two steps of 0.5 before
            np.testing.assert_allclose(c.losses, want, rtol=1e-5)
        after = [np.array(v.value) for v in (*model.variables, *model.optimizer.variables)]
        assert all(a.tobytes() == b.tobytes() for a, b in zip(before, after))
        # still falling at end_lr (the loss falls forever): retried within the budget, on val_data
        res = lrkit.keras.find_lr(model, x, y, batch_size=4, start_lr=1e-4, end_lr=1e-2, num_steps=20,
                                  budget=200, val_data=(x, y), diverge_factor=None, repeats=2)
        assert res.escalation[0] == "end_lr 0.01 -> 1 (40 rungs, still no signal)"  # 2 repeats x 20
        assert res.escalation[-1] == "stopped after 4 retries" and res.steps - res.first_steps <= 200
        after = [np.array(v.value) for v in (*model.variables, *model.optimizer.variables)]
        assert all(a.tobytes() == b.tobytes() for a, b in zip(before, after))
        try:  # no y: the compiled loss would get y_true=None (jax's train step too)
            lrkit.keras.find_lr(model, x, batch_size=4)
            raise AssertionError("x without y was not refused")
        except ValueError as err:
            assert str(err).startswith("find_lr got x but no y; Keras' loss needs targets"), err
        class Own(keras.Sequential):  # a train_step of its own, handing y=None on: said at the first step
            def train_step(self, *args):
                return super().train_step(*args)
        own = Own([keras.Input((1,)), keras.layers.Dense(1)])
        own.compile(optimizer=keras.optimizers.SGD(learning_rate=0.5), loss="mse")
        for built in (False, True):  # Keras' first call builds the loss; then the jitted train step
            if built:
                own.evaluate(x, y, verbose=0)
            try:
                lrkit.keras.find_lr(own, x, batch_size=4)
                raise AssertionError("y=None reached the compiled loss unsaid")
            except ValueError as err:
                assert str(err).startswith("x has no targets (y), and Keras called the model's compiled "
                                           "loss 'mse' with y_true=None (ValueError: "), err
        print("ok")
        """
    )
    env = {**os.environ, "KERAS_BACKEND": "jax", "JAX_PLATFORMS": "cpu"}
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, cwd=ROOT, timeout=120
    )
    assert done.returncode == 0 and done.stdout.strip().endswith("ok"), done.stderr[-3000:]
