"""Edges of the optax and Keras adapters: the optax LR's weak type (bfloat16 and x64 parameters keep
their dtype under ``inject_hyperparams``), a fractional Keras ``steps_per_epoch``, ``lrkit.torch``'s
keywords given to the other adapters, and the steps a ``KerasSchedule`` is called with by hand.

Keras runs its torch backend here (as in ``tests/test_keras.py``); the jax backend's int32 step runs in
a subprocess, since a process has one Keras backend.
"""

from __future__ import annotations

import math
import os
import textwrap
import warnings

os.environ["KERAS_BACKEND"] = "torch"  # before the first `import keras` in this process

import jax
import jax.numpy as jnp
import keras
import numpy as np
import optax
import pytest
import torch

import lrkit
import lrkit.keras

from ._jax import x64
from .keras_jax import run_on_keras_jax

if keras.backend.backend() != "torch":  # pragma: no cover - keras imported earlier with another backend
    raise RuntimeError(f"{__name__} needs Keras' torch backend; keras runs {keras.backend.backend()!r}")

pytestmark = pytest.mark.filterwarnings("ignore:__array__ implementation doesn't accept a copy keyword")

SPEC = "warmup(5, start=0) >> cosine(lr=0.1, min_lr=0.01)"


# -- optax: the LR is weakly typed ----------------------------------------------------------------
def test_optax_lr_is_weakly_typed_with_unchanged_values() -> None:
    """As optax's cosine_decay_schedule: a weakly typed float32 array, the same values as before (lrkit's
    float64 evaluation to float32 precision), on the host, under jit and for a float count."""
    f = lrkit.optax.schedule(SPEC, total_steps=50)
    counts = jnp.arange(60, dtype=jnp.int32)
    want = lrkit.parse(SPEC).resolve(total_steps=50)(np.arange(60))
    for got in (f(counts), jax.jit(f)(counts), f(7), f(counts.astype(jnp.float32))):
        assert got.dtype == jnp.float32 and got.weak_type
    np.testing.assert_allclose(np.asarray(jax.jit(f)(counts)), want, rtol=1e-6, atol=1e-9)
    assert float(f(5)) == np.float32(0.1)


def test_inject_hyperparams_keeps_bfloat16_params_in_a_scan_and_traces_once() -> None:
    """A strongly typed float32 LR was left as it is by inject_hyperparams: bfloat16 parameters got
    float32 updates, and a scan carrying ``p + u`` failed (carry bfloat16[3] in, float32[3] out). Now
    the LR is cast to the parameters' dtype, as with optax.cosine_decay_schedule, and the update is
    traced once."""
    f = lrkit.optax.schedule(SPEC, total_steps=50)
    opt = optax.inject_hyperparams(optax.sgd)(learning_rate=f)
    params = jnp.ones(3, jnp.bfloat16)
    state = opt.init(params)
    traces = 0

    def update(g: jax.Array, state: optax.OptState, p: jax.Array) -> tuple[jax.Array, optax.OptState]:
        nonlocal traces
        traces += 1
        return opt.update(g, state, p)

    step = jax.jit(update)
    lrs = []
    for _ in range(8):
        u, state = step(jnp.ones(3, jnp.bfloat16), state, params)
        assert u.dtype == jnp.bfloat16
        params = params + u
        lrs.append(float(state.hyperparams["learning_rate"]))
    assert traces == 1 and params.dtype == jnp.bfloat16
    # the LR each update used, rounded to the parameters' bfloat16
    want = [
        float(jnp.asarray(v, jnp.bfloat16)) for v in lrkit.parse(SPEC).resolve(total_steps=50)(np.arange(8))
    ]
    assert lrs == want

    def body(
        carry: tuple[jax.Array, optax.OptState], _: None
    ) -> tuple[tuple[jax.Array, optax.OptState], None]:
        p, s = carry
        u, s = opt.update(jnp.ones(3, jnp.bfloat16), s, p)
        return (p + u, s), None

    (p_end, _), _ = jax.lax.scan(body, (jnp.ones(3, jnp.bfloat16), opt.init(params)), None, length=8)
    assert p_end.dtype == jnp.bfloat16
    np.testing.assert_array_equal(np.asarray(p_end, np.float32), np.asarray(params, np.float32))


def test_x64_lr_is_float64_and_float32_params_get_float32_updates() -> None:
    """Under jax_enable_x64 the LR is a weak float64 (as optax.cosine_decay_schedule's), so
    inject_hyperparams casts it to float32 parameters: their updates were float64."""
    f = lrkit.optax.schedule(SPEC, total_steps=50)
    with x64():
        lr = f(jnp.int32(7))
        assert lr.dtype == jnp.float64 and lr.weak_type
        opt = optax.inject_hyperparams(optax.sgd)(learning_rate=f)
        params = jnp.ones(3, jnp.float32)
        state = opt.init(params)
        u, state = jax.jit(opt.update)(jnp.ones(3, jnp.float32), state, params)
        assert u.dtype == jnp.float32 and state.hyperparams["learning_rate"].dtype == jnp.float32


# -- lrkit.torch's keywords -------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("adapter", "keyword", "value", "says"),
    [
        ("optax", "relative", True, r"lrkit\.parse\(spec\) \* LR"),
        ("optax", "in_graph", True, r"already computed inside jax\.jit: leave it out"),
        ("optax", "plateau", None, r"optax\.contrib\.reduce_on_plateau"),
        ("keras", "relative", True, r"KerasSchedule\(spec, multiplier=LR\)"),
        ("keras", "in_graph", True, r"inside its train step: leave it out"),
        ("keras", "plateau", None, r"lrkit\.keras\.ReduceOnPlateau\(monitor='val_loss', \.\.\.\)"),
        ("keras", "epochs", 3, r"total_steps=epochs \* steps_per_epoch"),
    ],
)
def test_torch_only_keywords_say_what_to_use_instead(
    adapter: str, keyword: str, value: object, says: str
) -> None:
    """Python's bare "unexpected keyword argument 'relative'" did not say that it is lrkit.torch's."""
    make = lrkit.optax.schedule if adapter == "optax" else lrkit.keras.schedule
    if keyword == "plateau":
        value = lrkit.control.Plateau()
    torch_s = rf"^lrkit\.{adapter}\.schedule: {keyword}= is lrkit\.torch\.scheduler's, not taken here; "
    with pytest.raises(TypeError, match=torch_s + ".*" + says):
        make("cosine(lr=0.1)", total_steps=100, **{keyword: value})
    with pytest.raises(
        TypeError, match=rf"^lrkit\.{adapter}\.schedule: unexpected keyword argument 'totl_steps'"
    ):
        make("cosine(lr=0.1)", totl_steps=100)


# -- Keras: a fractional steps_per_epoch ----------------------------------------------------------
def test_keras_fractional_steps_per_epoch_is_warned_with_its_ceil() -> None:
    """70 samples in batches of 16 are ceil(70/16) = 5 Keras steps an epoch; 4.375 ended '1ep' early."""
    with pytest.warns(
        UserWarning,
        match=r"lrkit\.keras\.schedule: steps_per_epoch=4\.375 is not a whole number; .* an epoch runs "
        r"ceil\(4\.375\) = 5 of them .*steps_per_epoch=math\.ceil\(n_train / batch_size\) \(5 here\)",
    ) as seen:
        lrkit.keras.schedule("warmup(1ep) >> cosine(lr=1e-2)", total_steps=15, steps_per_epoch=70 / 16)
    assert seen[0].filename == __file__
    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)
        for whole in (5, 5.0, np.int64(5), torch.tensor(5)):
            s = lrkit.keras.schedule("warmup(1ep) >> cosine(lr=1e-2)", total_steps=15, steps_per_epoch=whole)
            assert s.schedule.to_dict()["pieces"][0]["steps"] == 5


# -- Keras: steps given by hand -------------------------------------------------------------------
def test_keras_schedule_checks_steps_as_the_optax_adapter_does() -> None:
    """True was read as step 1 (0.09998), NaN gave NaN: refused, as lrkit.optax refuses them."""
    s = lrkit.keras.schedule("cosine(lr=0.1)", total_steps=100)
    for bad, error, says in [
        (True, TypeError, r"step: expected an int, a float or a tensor, got bool True"),
        (np.bool_(False), TypeError, r"got bool np\.False_"),
        (
            torch.tensor(True),
            TypeError,
            r"a tensor of integer or real floating steps, got Tensor of dtype bool",
        ),
        (torch.tensor([1 + 2j]), TypeError, r"got Tensor of dtype complex64"),
        ("5", TypeError, r"got str '5'"),
        (math.nan, ValueError, r"step: must be a finite number, got nan"),
        (np.array([1.0, math.inf]), ValueError, r"step: must hold finite numbers"),
        (np.array([True]), TypeError, r"got an array of dtype bool"),
    ]:
        with pytest.raises(error, match=says):
            s(bad)
    want = lrkit.parse("cosine(lr=0.1)").resolve(total_steps=100)(np.arange(5))
    for steps in (np.arange(5), list(range(5)), torch.arange(5), np.arange(5, dtype=np.float32)):
        np.testing.assert_allclose(np.asarray(keras.ops.convert_to_numpy(s(steps))), want, rtol=1e-6)
    assert float(s(3)) == float(s(torch.tensor(3))) and float(s(10**30)) == float(s(100)) == pytest.approx(
        0.0
    )


JAX_SCRIPT = textwrap.dedent(
    """
    import json, lrkit, lrkit.keras
    s = lrkit.keras.schedule("warmup(10, start=0) >> cosine(lr=0.1, min_lr=0.01)", total_steps=110)
    print(json.dumps({"big": float(s(10**12)), "huge": float(s(2**70)), "end": float(s(110)),
                      "low": float(s(-10**12)), "five": float(s(5))}))
    """
)


def test_keras_jax_backend_holds_steps_beyond_int32() -> None:
    """The jax backend read a Python int as int32: s(10**12) raised jax's OverflowError."""
    got = run_on_keras_jax(JAX_SCRIPT)
    assert got["big"] == got["huge"] == got["end"] == pytest.approx(0.01, rel=1e-6)
    assert got["low"] == 0.0 and got["five"] == pytest.approx(0.05, rel=1e-6)


# -- Keras: a fractional total_steps --------------------------------------------------------------
def test_keras_fractional_total_steps_is_warned() -> None:
    """3 epochs of 70 samples in batches of 16 run 3 * ceil(70/16) = 15 Keras steps; total_steps=13.125
    (3 * 70 / 16) ended the cosine's '100%' at step 13, two steps early, without a word."""
    with pytest.warns(
        UserWarning,
        match=r"lrkit\.keras\.schedule: total_steps=13\.125 is not a whole number; .*"
        r"total_steps=epochs \* math\.ceil\(n_train / batch_size\)",
    ) as seen:
        lrkit.keras.schedule("warmup(10%) >> cosine(lr=1e-2)", total_steps=3 * 70 / 16)
    assert seen[0].filename == __file__
    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)
        for whole in (15, 15.0, np.int64(15), torch.tensor(15)):
            lrkit.keras.schedule("warmup(10%) >> cosine(lr=1e-2)", total_steps=whole)
