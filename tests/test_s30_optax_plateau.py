"""lrkit.optax.find_lr with an ``optax.contrib.reduce_on_plateau`` in the optimizer (jax on the CPU).

lrkit.optax.schedule's ``plateau=`` error tells users to chain ``reduce_on_plateau`` after the optimizer;
the finder gave optax's raw ``TypeError: ... missing 1 required keyword-only argument: 'value'`` on such
a chain. It now passes the loss as ``value`` and holds the plateau at scale 1: the ramp alone sets the LR.

Reference: one weight whose loss *rises* by the LR of each rung (its value is ``w``, its gradient ``-1``,
so SGD moves ``w`` up by exactly the LR): the loss at rung ``i`` is ``lr_0 + ... + lr_{i-1}``, and a
plateau left to itself cuts the LR after ``patience`` rungs without improvement.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from sklearn.datasets import load_digits

import lrkit
from lrkit.finder import lr_ramp

find_lr = lrkit.optax.find_lr
N = 12
RAMP = {"start_lr": 1e-3, "end_lr": 1e-1, "num_steps": N, "diverge_factor": None, "repeats": 1}


def _rising_loss(w: jax.Array, g: Any) -> jax.Array:
    """Valued ``w * g``, with gradient ``-g``: SGD moves ``w`` by ``+lr * g``, so it never improves."""
    return 2 * jax.lax.stop_gradient(w * g) - w * g


def _held_losses() -> np.ndarray:
    """The loss at each rung when every rung applies the ramp's LR in full."""
    return np.concatenate([[0.0], np.cumsum(lr_ramp(1e-3, 1e-1, N))[:-1]])


def _optimizer(where: str, plateau: optax.GradientTransformationExtraArgs) -> Any:
    sgd = optax.inject_hyperparams(optax.sgd)(learning_rate=0.5)
    if where == "after":
        return optax.chain(sgd, plateau)
    if where == "before":
        return optax.chain(plateau, sgd)
    if where == "factory":
        return lambda lr: optax.chain(optax.sgd(lr), plateau)
    return optax.MultiSteps(optax.chain(sgd, plateau), every_k_schedule=1)  # "multisteps"


# no shrinking: each example compiles a step, and the failing one is reported as drawn
@settings(
    max_examples=12,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
    phases=[Phase.explicit, Phase.reuse, Phase.generate],
)
@given(
    where=st.sampled_from(["after", "before", "factory", "multisteps"]),
    factor=st.floats(0.01, 0.9),
    patience=st.integers(1, 4),
    cooldown=st.integers(0, 3),
    accumulation=st.integers(1, 2),
)
def test_a_plateau_in_the_chain_is_fed_the_loss_and_never_cuts_the_ramp(
    where: str, factor: float, patience: int, cooldown: int, accumulation: int
) -> None:
    plateau = optax.contrib.reduce_on_plateau(
        factor=factor, patience=patience, cooldown=cooldown, accumulation_size=accumulation
    )
    # the plateau left to itself cuts on this loss within the ramp (else the test could not fail)
    state, w = plateau.init(jnp.zeros(())), 0.0
    for lr in lr_ramp(1e-3, 1e-1, N):
        _, state = plateau.update(jnp.ones(()), state, value=jnp.float32(w))
        w += lr
    assert float(state.scale) < 1.0

    res = find_lr(_rising_loss, jnp.zeros(()), _optimizer(where, plateau), [jnp.float32(1.0)], **RAMP)
    np.testing.assert_array_equal(res.lrs, lr_ramp(1e-3, 1e-1, N))
    np.testing.assert_allclose(res.losses, _held_losses(), rtol=1e-5, atol=1e-9)


def test_an_update_without_extra_arguments_is_given_none_or_refused_if_a_plateau_needs_them() -> None:
    """The loss goes to the update as ``value`` when it takes it; a hand-made GradientTransformation whose
    update takes no such argument is given none, and refused (naming the plateau) if its state holds a
    reduce_on_plateau, which could not get the loss."""
    inner = optax.inject_hyperparams(optax.sgd)(learning_rate=0.5)
    plain = optax.GradientTransformation(inner.init, lambda u, s, p=None: inner.update(u, s, p))
    res = find_lr(_rising_loss, jnp.zeros(()), plain, [jnp.float32(1.0)], **RAMP)
    np.testing.assert_allclose(res.losses, _held_losses(), rtol=1e-5, atol=1e-9)
    chained = optax.chain(inner, optax.contrib.reduce_on_plateau())
    hidden = optax.GradientTransformation(
        chained.init, lambda u, s, p=None: chained.update(u, s, p, value=0.0)
    )
    with pytest.raises(ValueError, match=r"reduce_on_plateau \(state\[1\]\), which needs the loss as value"):
        find_lr(_rising_loss, jnp.zeros(()), hidden, [jnp.float32(1.0)], **RAMP)


@pytest.mark.parametrize("where", ["after", "before"])
def test_the_reported_chain_finds_what_the_optimizer_alone_finds(where: str) -> None:
    """Tester F's case: adam chained with a default reduce_on_plateau on scikit-learn's digits, with the
    escalation's budget. The plateau held at 1 scales nothing, so the test is the optimizer's alone (left
    to itself, it cut the ramp's high end and the test found no suggestion)."""
    d = load_digits()
    x, y = (d.data / 16).astype("float32"), d.target.astype("int32")
    k1, k2 = jax.random.split(jax.random.PRNGKey(0))
    params = {"w1": jax.random.normal(k1, (64, 16)) / 8, "w2": jax.random.normal(k2, (16, 10)) / 4}

    def loss_fn(p: Any, b: Any) -> jax.Array:
        lg = jnp.tanh(b[0] @ p["w1"]) @ p["w2"]
        return optax.softmax_cross_entropy_with_integer_labels(lg, b[1]).mean()

    adam = optax.inject_hyperparams(optax.adam)(learning_rate=1e-3)
    rop = optax.contrib.reduce_on_plateau()
    chained = optax.chain(adam, rop) if where == "after" else optax.chain(rop, adam)
    kw: dict[str, Any] = {"batch_size": 64, "planned_steps": 500, "num_steps": 60, "repeats": 2}
    res = find_lr(loss_fn, params, chained, (x, y), **kw)
    alone = find_lr(loss_fn, params, adam, (x, y), **kw)
    assert res.suggestion is not None  # a plateau left to cut the ramp gives None here (no blow-up seen)
    assert res.suggestion == alone.suggestion
    # x * 1.0 compiles to other float32 roundings, which the blow-up amplifies: compared up to it
    below = np.asarray(alone.lrs) <= alone.suggestion
    np.testing.assert_allclose(np.asarray(res.losses)[below], np.asarray(alone.losses)[below], rtol=1e-4)
