"""An optax training loop whose learning rate is an lrkit schedule, evaluated inside jax.jit.

The schedule is written once (durations in epochs and fractions), resolved to steps, and handed to
``optax.adamw`` like any optax schedule; the curve is the same as optax's own
``warmup_cosine_decay_schedule`` (whose ``decay_steps`` counts the warmup too). Runs in seconds on a CPU.

    python examples/optax_loop.py
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import optax

import lrkit

EPOCHS, STEPS_PER_EPOCH = 20, 16
TOTAL = EPOCHS * STEPS_PER_EPOCH

k1, k2 = jax.random.split(jax.random.PRNGKey(0))
x = jax.random.normal(k1, (STEPS_PER_EPOCH * 32, 8))
y = jnp.sin(x @ jax.random.normal(k2, (8,)))

spec = lrkit.parse("warmup(1ep, start=0) >> cosine(lr=3e-2, min_lr=3e-4)")
learning_rate = lrkit.optax.schedule(spec, total_steps=TOTAL, steps_per_epoch=STEPS_PER_EPOCH)
reference = optax.warmup_cosine_decay_schedule(0.0, 3e-2, STEPS_PER_EPOCH, TOTAL, end_value=3e-4)
optimizer = optax.adamw(learning_rate=learning_rate, weight_decay=1e-4)


def init(key: jax.Array) -> dict[str, jax.Array]:
    ka, kb = jax.random.split(key)
    return {"w1": jax.random.normal(ka, (8, 32)) / 8**0.5, "w2": jax.random.normal(kb, (32,)) / 32**0.5}


def loss_fn(p: dict[str, jax.Array], xb: jax.Array, yb: jax.Array) -> jax.Array:
    return jnp.mean((jnp.tanh(xb @ p["w1"]) @ p["w2"] - yb) ** 2)


@jax.jit
def train_step(p: Any, state: Any, xb: jax.Array, yb: jax.Array) -> tuple[Any, Any, jax.Array]:
    loss, grads = jax.value_and_grad(loss_fn)(p, xb, yb)
    updates, state = optimizer.update(grads, state, p)
    return optax.apply_updates(p, updates), state, loss


params = init(jax.random.PRNGKey(1))
state = optimizer.init(params)
for epoch in range(EPOCHS):
    for i in range(STEPS_PER_EPOCH):
        params, state, loss = train_step(params, state, x[i * 32 : (i + 1) * 32], y[i * 32 : (i + 1) * 32])
    step = (epoch + 1) * STEPS_PER_EPOCH
    if epoch % 4 == 3 or epoch == EPOCHS - 1:
        print(f"epoch {epoch + 1:2d}  loss {float(loss):.4f}  lr(next step) {float(learning_rate(step)):.5f}")

counts = jnp.arange(TOTAL + 1)
gap = float(jnp.max(jnp.abs(jax.vmap(learning_rate)(counts) - jax.vmap(reference)(counts))))
print(f"largest difference from optax.warmup_cosine_decay_schedule over {TOTAL + 1} steps: {gap:.2e}")
