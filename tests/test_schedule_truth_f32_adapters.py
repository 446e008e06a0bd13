"""optax's and Keras' integer step counters reach a schedule as integers: a restart, a cycle or a step
decay's cut lands on its exact step at any count (optax under jit and Keras' int64 counter turned the count
into float32 first, so past 2**24 a cosine restart came a step early: 0.1 where 1e-4 is right)."""

from __future__ import annotations

import json

import numpy as np
import pytest

import lrkit

from .keras_jax import run_on_keras_jax

SPECS = [
    "cosine_restarts(lr=0.1, period=1000, min_lr=1e-4)",
    "cyclic(lr=0.01, max_lr=0.1, step_size_up=7)",
    "step(lr=1.0, step_size=3, gamma=0.5)",
]
STEPS = [50_000_999, 50_001_000, 2**24 + 1, 2**31 - 2]


def _want() -> list[list[float]]:
    return [[lrkit.parse(s)(k) for k in STEPS] for s in SPECS]


def test_optax_under_jit_lands_on_the_exact_step() -> None:
    jax = pytest.importorskip("jax")
    pytest.importorskip("optax")
    import jax.numpy as jnp

    for spec, want in zip(SPECS, _want(), strict=True):
        f = jax.jit(lrkit.optax.schedule(spec))
        got = [float(f(jnp.asarray(k, dtype=jnp.int32))) for k in STEPS]
        np.testing.assert_allclose(got, want, rtol=2e-6, atol=0, err_msg=spec)


@pytest.mark.parametrize("backend", ["jax", "torch"])
def test_keras_counters_land_on_the_exact_step(backend: str) -> None:
    pytest.importorskip("keras")
    script = f"""
import json, numpy as np, keras, lrkit
out = []
for spec in {SPECS!r}:
    s = lrkit.keras.schedule(spec)
    counts = [keras.Variable(k, dtype="int32", trainable=False) for k in {STEPS!r}]
    out.append([float(keras.ops.convert_to_numpy(s(c))) for c in counts])
print(json.dumps(out))
"""
    if backend == "jax":
        got = run_on_keras_jax(script)
    else:
        import os
        import subprocess
        import sys

        env = {**os.environ, "KERAS_BACKEND": "torch"}
        out = subprocess.run(
            [sys.executable, "-c", script], env=env, capture_output=True, text=True, check=True
        )
        got = json.loads(out.stdout.strip().splitlines()[-1])
    for spec, g, w in zip(SPECS, got, _want(), strict=True):
        np.testing.assert_allclose(g, w, rtol=2e-6, atol=0, err_msg=spec)


def test_optax_from_the_host_lands_on_the_exact_step() -> None:
    """A count from the host (a Python or numpy int: an eager update, a restored state) was made a float32
    step too; it is evaluated in float64 on the host now, weakly typed as before."""
    pytest.importorskip("optax")
    import jax.numpy as jnp

    for spec, want in zip(SPECS, _want(), strict=True):
        f = lrkit.optax.schedule(spec)
        for kind in (int, np.int32, np.int64):
            got = [f(kind(k)) for k in STEPS]
            assert all(g.weak_type and g.dtype == jnp.float32 for g in got)
            np.testing.assert_allclose([float(g) for g in got], want, rtol=2e-7, atol=0, err_msg=spec)


def test_keras_from_the_host_lands_on_the_exact_step() -> None:
    pytest.importorskip("keras")
    script = f"""
import json, numpy as np, keras, lrkit
out = []
for spec in {SPECS!r}:
    s = lrkit.keras.schedule(spec)
    out.append([float(keras.ops.convert_to_numpy(s(kind(k)))) for k in {STEPS!r} for kind in (int, np.int64)])
print(json.dumps(out))
"""
    got = run_on_keras_jax(script)
    for spec, g, w in zip(SPECS, got, _want(), strict=True):
        np.testing.assert_allclose(g, [x for x in w for _ in (0, 1)], rtol=2e-7, atol=0, err_msg=spec)
