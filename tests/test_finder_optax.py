"""The range test with optax (jax on the CPU): lrkit.optax.find_lr.

References: the LR each rung applied is read off one weight trained by plain SGD on ``loss = w * g``
(its gradient is exactly ``g``: the loss at rung ``i`` is ``-g^2 sum(lr_0 .. lr_{i-1})``); the
suggestion by training at it, at 100x less and 100x more on scikit-learn's digits (held-out accuracy).
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from sklearn.datasets import load_digits

import lrkit
from lrkit.finder import FinderResult, lr_ramp

find_lr = lrkit.optax.find_lr
RAMP = {"start_lr": 1e-3, "end_lr": 1e-1, "num_steps": 12, "diverge_factor": None}


def _linear_loss(w: jax.Array, g: Any) -> jax.Array:
    """``w * g``: its gradient is ``g``, so SGD moves ``w`` by exactly ``-lr * g``."""
    return jnp.sum(w * g)


@pytest.mark.parametrize(
    "optimizer",
    [
        pytest.param(lambda lr: optax.sgd(lr), id="factory"),
        pytest.param(optax.inject_hyperparams(optax.sgd)(learning_rate=0.5), id="inject_hyperparams"),
        pytest.param(
            optax.chain(optax.identity(), optax.inject_hyperparams(optax.sgd)(learning_rate=0.5)),
            id="in_a_chain",
        ),
    ],
)
def test_each_rung_applies_the_ramps_lr(optimizer: Any) -> None:
    res = find_lr(_linear_loss, jnp.zeros(()), optimizer, [jnp.float32(1.0)], **RAMP)
    lrs = lr_ramp(1e-3, 1e-1, 12)
    np.testing.assert_array_equal(res.lrs, lrs)
    # the loss at rung i is the weight before its update: -(lr_0 + ... + lr_{i-1}) (float32)
    np.testing.assert_allclose(
        res.losses, -np.concatenate([[0.0], np.cumsum(lrs)[:-1]]), rtol=1e-5, atol=1e-9
    )


def test_params_are_never_changed_and_each_repeat_starts_from_them() -> None:
    params = {"w": np.zeros(2, "float32")}  # numpy leaves: a driver writing in place would show here
    data = [np.array([1.0, 2.0], "float32"), np.array([2.0, 1.0], "float32")]

    def loss_fn(p: Any, g: Any) -> jax.Array:
        return jnp.sum(p["w"] * g)

    res = find_lr(loss_fn, params, lambda lr: optax.sgd(lr), data, repeats=2, **RAMP)
    np.testing.assert_array_equal(params["w"], [0.0, 0.0])
    lrs = lr_ramp(1e-3, 1e-1, 12)
    # batches alternate g=(1,2), (2,1); w moves by -lr*g; the loss is w . g of the next batch
    w, want = np.zeros(2), []
    for i, lr in enumerate(lrs):
        g = data[i % 2].astype(np.float64)
        want.append(w @ g)
        w = w - lr * g
    for c in res.curves:  # the data starts over with each repeat, from the params given
        np.testing.assert_allclose(c.losses, want, rtol=1e-5, atol=1e-8)


def _digits() -> tuple[np.ndarray, np.ndarray]:
    d = load_digits()
    return (d.data / 16).astype("float32"), d.target.astype("int32")


def _init(seed: int = 0) -> dict[str, jax.Array]:
    k1, k2 = jax.random.split(jax.random.PRNGKey(seed))
    return {
        "w1": jax.random.normal(k1, (64, 32)) / 8.0,
        "b1": jnp.zeros(32),
        "w2": jax.random.normal(k2, (32, 10)) / 32**0.5,
        "b2": jnp.zeros(10),
    }


def _logits(p: dict[str, jax.Array], x: Any) -> jax.Array:
    return jnp.tanh(x @ p["w1"] + p["b1"]) @ p["w2"] + p["b2"]


def _xent(p: dict[str, jax.Array], batch: tuple[Any, Any]) -> jax.Array:
    x, y = batch
    return optax.softmax_cross_entropy_with_integer_labels(_logits(p, x), y).mean()


def test_the_suggestion_trains_better_than_100x_less_or_more() -> None:
    x, y = _digits()
    train, held = (x[:1400], y[:1400]), (x[1400:], y[1400:])
    params = _init()
    opt = optax.inject_hyperparams(optax.adam)(learning_rate=1e-3)
    res = find_lr(_xent, params, opt, train, batch_size=64, repeats=3)
    assert isinstance(res, FinderResult) and res.trusted, res.reason
    lr = res.require()
    assert res.interval[0] <= lr <= res.interval[1] and res.repeats == 3
    assert res.budget is None and res.escalation == () and res.steps == res.first_steps  # no budget, no retry
    assert res.curves[0].losses.tolist() != res.curves[1].losses.tolist()  # seed + r: another batch order
    again = find_lr(_xent, params, opt, train, batch_size=64, repeats=3)
    assert again.suggestion == res.suggestion  # and the same seeds give the same test

    def accuracy(rate: float, epochs: int = 3) -> float:
        sched = lrkit.optax.schedule(lrkit.constant(rate), total_steps=1)
        tx = optax.adam(sched)
        p, state = params, tx.init(params)

        @jax.jit
        def step(p: Any, state: Any, batch: Any) -> tuple[Any, Any]:
            grads = jax.grad(_xent)(p, batch)
            updates, state = tx.update(grads, state, p)
            return optax.apply_updates(p, updates), state

        rng = np.random.default_rng(1)
        for _ in range(epochs):
            perm = rng.permutation(1400)
            for i in range(0, 1400 - 63, 64):
                idx = perm[i : i + 64]
                p, state = step(p, state, (train[0][idx], train[1][idx]))
        return float((_logits(p, held[0]).argmax(1) == held[1]).mean())

    at = accuracy(lr)
    assert at > accuracy(lr / 100) and at > accuracy(lr * 100)
    assert at > 0.7
    # the result's schedule runs in optax as it is
    sched = lrkit.optax.schedule(res.schedule(), total_steps=100)
    assert float(jnp.max(jax.vmap(sched)(jnp.arange(100)))) == pytest.approx(res.peak_lr, rel=1e-6)


def test_an_optimizer_whose_lr_cannot_be_set_is_refused_with_how_to_build_one() -> None:
    w, data = jnp.zeros(()), [jnp.float32(1.0)]
    with pytest.raises(ValueError, match=r"cannot be set .*optax\.inject_hyperparams\(optax\.adamw\)"):
        find_lr(_linear_loss, w, optax.adam(1e-3), data)
    sched = optax.inject_hyperparams(optax.adam)(learning_rate=optax.linear_schedule(0.1, 0.0, 10))
    with pytest.raises(ValueError, match=r"learning_rate at state is a schedule; .*with a number"):
        find_lr(_linear_loss, w, sched, data)
    two = optax.chain(
        optax.inject_hyperparams(optax.sgd)(learning_rate=0.1),
        optax.inject_hyperparams(optax.sgd)(learning_rate=0.1),
    )
    with pytest.raises(ValueError, match=r"2 'learning_rate' hyperparameters \(state\[0\], state\[1\]\)"):
        find_lr(_linear_loss, w, two, data)
    with pytest.raises(TypeError, match=r"optimizer must be an optax\.GradientTransformation .* got str"):
        find_lr(_linear_loss, w, "adam", data)


def test_bad_settings_and_data_are_refused() -> None:
    w, data, opt = jnp.zeros(()), [jnp.float32(1.0)], lambda lr: optax.sgd(lr)
    with pytest.raises(ValueError, match="num_steps must be an integer >= 2, got 1"):
        find_lr(_linear_loss, w, opt, data, num_steps=1)
    with pytest.raises(ValueError, match=r"end_lr must be greater than start_lr=0\.1, got 0\.01"):
        find_lr(_linear_loss, w, opt, data, start_lr=0.1, end_lr=0.01)
    with pytest.raises(TypeError, match="start_lr must be a real number, got 'big'"):
        find_lr(_linear_loss, w, opt, data, start_lr="big")
    with pytest.raises(TypeError, match="loss_fn must be callable"):
        find_lr(None, w, opt, data)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"sharing their first axis.*\(8, 2\), \(7,\)"):
        find_lr(_xent, _init(), opt, (np.ones((8, 2)), np.ones(7)), batch_size=4)
    with pytest.raises(TypeError, match="data must be an iterable of batches"):
        find_lr(_linear_loss, w, opt, 3.0)
    with pytest.raises(ValueError, match="data yielded no more batches"):
        find_lr(_linear_loss, w, opt, iter([jnp.float32(1.0)] * 3), num_steps=10)


def test_wrong_data_loss_or_factory_is_named_before_jax_fails_on_it() -> None:
    """What a first try gets wrong is named with what was given: arrays without batch_size (iterating a
    tuple (x, y) would hand x, then y, to loss_fn as batches), an empty list, a per-example loss, a
    factory that returns no optimizer, an end_lr the float32 LR overflows on."""
    x, y = _digits()
    opt = lambda lr: optax.sgd(lr)  # noqa: E731
    with pytest.raises(
        ValueError,
        match=r"data is a tuple of 2 arrays \(shapes \(1797, 64\), \(1797,\)\) and batch_size is None",
    ):
        find_lr(_xent, _init(), opt, (x, y))
    with pytest.raises(ValueError, match=r"data is an array of shape \(1797, 64\) and batch_size is None"):
        find_lr(_xent, _init(), opt, x)
    with pytest.raises(ValueError, match=r"val_data is a dict \(keys \['x', 'y'\]\) and batch_size is None"):
        find_lr(_xent, _init(), opt, [(x[:8], y[:8])], val_data={"x": x, "y": y})
    with pytest.raises(ValueError, match=r"data yielded no batches \(list \[\]\); expected at least one"):
        find_lr(_xent, _init(), opt, [])

    def per_example(p: dict[str, jax.Array], batch: tuple[Any, Any]) -> jax.Array:
        return optax.softmax_cross_entropy_with_integer_labels(_logits(p, batch[0]), batch[1])

    with pytest.raises(
        TypeError, match=r"loss_fn\(params, batch\) must return .* scalar .*shape \(16,\) \(reduce it"
    ):
        find_lr(per_example, _init(), opt, (x, y), batch_size=16)
    with pytest.raises(
        TypeError, match=r"the factory returned int for lr=1e-07; expected an optax\.GradientTransformation"
    ):
        find_lr(_xent, _init(), lambda lr: 3, (x, y), batch_size=16)
    with pytest.raises(
        ValueError, match=r"end_lr must be at most 3\.4e\+38, .* float32 learning_rate .* got 1e\+300"
    ):
        find_lr(_xent, _init(), opt, (x, y), batch_size=16, end_lr=1e300)


def test_multisteps_is_taken_as_its_gradient_transformation() -> None:
    """``optax.MultiSteps`` (gradient accumulation) is not a GradientTransformation itself: it was refused
    with "build it with optax.inject_hyperparams", which the user had done. It is now taken as its
    ``.gradient_transformation()``: with every_k_schedule=2 the weight moves on every second rung, by
    that rung's LR (the mean gradient is 1)."""
    ms = optax.MultiSteps(optax.inject_hyperparams(optax.sgd)(learning_rate=0.5), every_k_schedule=2)
    res = find_lr(_linear_loss, jnp.zeros(()), ms, [jnp.float32(1.0)], **RAMP)
    lrs = lr_ramp(1e-3, 1e-1, 12)
    moved = np.where(np.arange(12) % 2 == 1, lrs, 0.0)  # the update fires on rungs 1, 3, 5, ...
    np.testing.assert_allclose(
        res.losses, -np.concatenate([[0.0], np.cumsum(moved)[:-1]]), rtol=1e-5, atol=1e-9
    )
    again = find_lr(_linear_loss, jnp.zeros(()), ms.gradient_transformation(), [jnp.float32(1.0)], **RAMP)
    np.testing.assert_array_equal(res.losses, again.losses)
