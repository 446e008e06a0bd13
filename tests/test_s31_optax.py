"""lrkit.optax.find_lr refuses an optimizer with a line search (optax.lbfgs(), a chain with
optax.scale_by_backtracking_linesearch, or any update that needs extra arguments besides ``value``):
a line search picks its own step size, so the ramp measures nothing, and optax's own error named a
local ``update_fn`` (or, for ``inject_hyperparams(optax.lbfgs)``, a traced boolean)."""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import lrkit

find_lr = lrkit.optax.find_lr
RNG = np.random.default_rng(0)
X = RNG.normal(size=(32, 3)).astype("float32")
Y = X @ np.ones(3, "float32")
QUICK = {"batch_size": 8, "num_steps": 8, "repeats": 1, "diverge_factor": None}


def _mse(p: jax.Array, batch: Any) -> jax.Array:
    x, y = batch
    return jnp.mean((x @ p - y) ** 2)


def _sgd_then(*rest: optax.GradientTransformation) -> optax.GradientTransformation:
    return optax.chain(optax.inject_hyperparams(optax.sgd)(learning_rate=1e-3), *rest)


LINE_SEARCHES = {
    "lbfgs factory": (lambda lr: optax.lbfgs(lr), "optax.scale_by_zoom_linesearch"),
    "injected lbfgs": (optax.inject_hyperparams(optax.lbfgs)(learning_rate=1e-3), "zoom_linesearch"),
    "lbfgs, no LR": (lambda lr: optax.lbfgs(), "optax.scale_by_zoom_linesearch"),
    "chain + backtracking": (
        _sgd_then(optax.scale_by_backtracking_linesearch(max_backtracking_steps=5)),
        "optax.scale_by_backtracking_linesearch (at state[1])",
    ),
    "chain + zoom": (_sgd_then(optax.scale_by_zoom_linesearch(max_linesearch_steps=5)), "zoom_linesearch"),
}


@settings(max_examples=10, deadline=None)
@given(which=st.sampled_from(sorted(LINE_SEARCHES)), val=st.booleans())
def test_an_optimizer_with_a_line_search_is_refused_naming_it_and_why(which: str, val: bool) -> None:
    optimizer, named = LINE_SEARCHES[which]
    with pytest.raises(TypeError) as caught:
        find_lr(_mse, jnp.zeros(3), optimizer, (X, Y), val_data=(X, Y) if val else None, **QUICK)
    message = str(caught.value)
    assert message.startswith("optimizer: its state holds a line search, ")
    assert named in message
    assert "the range test cannot ramp its learning rate" in message
    assert "first-order optimizer (lambda lr: optax.adam(lr)" in message


class _Empty(NamedTuple):
    pass


def _needs_grad_and_value_fn() -> optax.GradientTransformationExtraArgs:
    """A line search of one's own making: its update needs the gradient and the loss function."""

    def update(
        updates: Any, state: Any, params: Any = None, *, value: Any, grad: Any, value_fn: Any, **extra: Any
    ) -> tuple[Any, Any]:
        return updates, state

    return optax.GradientTransformationExtraArgs(lambda params: _Empty(), update)


@pytest.mark.parametrize("chained", [False, True])
def test_an_update_that_needs_more_than_value_is_refused_naming_the_arguments(chained: bool) -> None:
    own = _needs_grad_and_value_fn()
    optimizer = _sgd_then(own) if chained else (lambda lr: optax.chain(optax.sgd(lr), own))
    with pytest.raises(
        TypeError,
        match=r"^optimizer: its update needs 'grad' and 'value_fn' besides the \(updates, state, params, "
        r"value=loss\) that the range test gives it .*a line search sets the step size itself",
    ):
        find_lr(_mse, jnp.zeros(3), optimizer, (X, Y), **QUICK)


def test_optimizers_that_take_value_alone_still_run() -> None:
    """optax.polyak_sgd takes the loss as value= (and no line search); a reduce_on_plateau in a chain
    too (tests/test_s30_optax_plateau.py checks what it does): both run as before."""
    for optimizer in (
        lambda lr: optax.polyak_sgd(lr),
        _sgd_then(optax.contrib.reduce_on_plateau(patience=1)),
        lambda lr: optax.adam(lr),
    ):
        result = find_lr(_mse, jnp.zeros(3), optimizer, (X, Y), **QUICK)
        assert len(result.lrs) == QUICK["num_steps"]
