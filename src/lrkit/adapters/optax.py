"""lrkit schedules as optax schedules: ``count -> learning rate``, usable inside ``jax.jit``.

An optax schedule is a function of the optimizer's step count (an ``int32`` array inside
``optax.scale_by_schedule`` and friends). :func:`schedule` resolves an lrkit schedule's durations
(epochs, fractions, "rest") into steps once, looks up the ``jax.numpy`` array namespace once, and
returns a pure function that evaluates the closed form with jax.numpy: it traces under ``jax.jit``
(no Python branching on the step), works on batches of counts, and never replays earlier steps::

    import optax, lrkit
    sched = lrkit.optax.schedule(lrkit.parse("warmup(500) >> cosine(lr=3e-4, min_lr=3e-5)"),
                                 total_steps=10_000)
    opt = optax.adamw(learning_rate=sched)

The count is converted to jax's default float dtype (float32 unless ``jax_enable_x64`` is on), so
the values agree with lrkit's float64 numpy evaluation to float32 precision (a relative error of about
1e-7, a few 1e-7 after ``cos``/``exp``). An integer count (optax's own) is kept an integer where it
decides a period or a milestone (a restart, a cycle, a step decay's cut): those land on the exact step
at any count, where a float32 step beyond 2**24 is one or two steps off.
The LR is *weakly typed*, as a Python float is (and as optax's ``cosine_decay_schedule`` returns it), so
that it takes the dtype of what it meets: ``optax.inject_hyperparams`` casts it to the parameters'
dtype (a strongly typed float32 LR it would leave as it is, and bfloat16 parameters would get float32
updates, which a ``lax.scan`` carrying the parameters refuses), and ``scale_by_schedule`` (inside
``optax.adam(sched)``) to the gradients'. Under ``jax_enable_x64`` it is float64, as optax's
``cosine_decay_schedule`` and ``piecewise_constant_schedule`` give (its ``linear_schedule`` and
``warmup_cosine_decay_schedule`` give a strongly typed float32); cast the same way, float32 parameters
get float32 updates. A bool or complex count is a ``TypeError``, inside ``jit`` too (its dtype is static).

optax counts from 0: update ``k`` (0-based) uses ``s(k)``, and ``inject_hyperparams`` records that LR
in ``state.hyperparams["learning_rate"]`` after the update. A restored state's count (a numpy
``int32``) carries the schedule on where it stopped.

Past ``total_steps`` the schedule holds its end value and nothing warns (``lrkit.torch``'s
``PastTheRunWarning`` has no counterpart): the count lives in the optimizer's state on the device, and
checking it at each step would cost a host sync inside ``jit``. Compare the state's count with
``total_steps`` where your loop reads the state anyway (a log, a checkpoint).

Where lrkit and optax describe the same curve (checked in ``tests/test_optax.py``; optax's
``transition_begin`` is a ``Constant(v, steps=begin) >>`` in front, its ``end_value`` a ``Clamp``):

- ``constant_schedule(v)``: ``Constant(v)``
- ``linear_schedule(a, b, n)``: ``Linear(lr=a, steps=n, end_lr=b)``
- ``polynomial_schedule(a, b, p, n)``: ``Polynomial(lr=a, steps=n, power=p, end_lr=b)``
- ``cosine_decay_schedule(v, n, alpha)``: ``Cosine(lr=v, steps=n, min_lr=alpha * v)``
- ``exponential_decay(v, k, r, staircase=st)``: ``Exponential(lr=v, gamma=r, every=k, staircase=st)``
- ``piecewise_constant_schedule(v, {m1: g, m2: g})``: ``MultiStep(lr=v, milestones=[m1, m2], gamma=g)``
- ``warmup_cosine_decay_schedule(a, p, w, n, e)``: ``Warmup(w, start=a/p, lr=p) >> Cosine(p, n - w, e)``
  (optax's ``decay_steps`` *includes* the warmup; lrkit's pieces have their own lengths)
- ``warmup_exponential_decay_schedule(a, p, w, k, r)``: ``Warmup(w, start=a/p, lr=p) >> Exponential(p, r, k)``
- ``sgdr_schedule`` with ``k`` cycles of ``decay_steps=n, warmup_steps=0, end_value=e`` and peaks
  ``e + (p - e) * d**i``: ``CosineRestarts(lr=p, period=n, min_lr=e, decay=d)``; with a warmup ``w`` in
  every cycle: ``Repeat(Warmup(w, start=a/p, lr=p) >> Cosine(p, n - w, e), times=k)``
- ``cosine_onecycle_schedule(n, p, pct, d, f)``: ``OneCycle(p, steps=n + 1, pct_start=(k + 1)/(n + 1),
  div_factor=d, final_div_factor=f)`` with ``k = int(pct * n)``. The conventions differ: optax peaks
  at step ``int(pct * n)`` and ends at step ``n``; torch's ``OneCycleLR`` (and lrkit's ``OneCycle``)
  peak at ``pct * steps - 1`` and end at ``steps - 1``. Same values, shifted lengths.
- ``linear_onecycle_schedule(n, p, pct, pf, d, f)``: ``Piecewise([(0, p/d), (k1, p), (k2, p/d),
  (n, p/(d*f))])`` with ``k1 = int(pct*n)``, ``k2 = int(pf*n)``; it is ``OneCycle(three_phase=True,
  anneal="linear")`` only when ``k2 == 2 * k1`` (torch's three phases are symmetric). optax's
  docstring says the end value is ``p / f``; its code (and this equivalence) gives ``p / (d * f)``.

optax's linear warmup starts at ``init_value``; lrkit's default ``Warmup`` starts at ``peak / (n + 1)``
so that its first step already moves: pass ``start=init_value / peak`` to match optax.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, SupportsFloat, overload

import jax
import jax.numpy as jnp
import numpy as np
from array_api_compat import array_namespace

from ..schedules.base import warn_run_length
from ..schedules.warmup import refuse_bare_warmup
from ..spec import ScheduleLike, as_schedule
from ._host import _MISSING, deprecated, host_steps, schedule_argument

try:  # jax's conversion to a weakly typed array (what a Python float becomes); jax has no public one
    from jax._src.lax.lax import _convert_element_type

    def _weak(lr: jax.Array) -> jax.Array:
        """``lr`` weakly typed, values and dtype unchanged (a no-op ``convert`` under ``jit``); as it is
        where a jax changed the private function's signature."""
        try:
            return _convert_element_type(lr, weak_type=True)  # type: ignore[no-any-return]
        except TypeError:  # pragma: no cover - depends on jax's version
            return lr

except ImportError:  # pragma: no cover - a jax that moved it: the LR stays strongly typed

    def _weak(lr: jax.Array) -> jax.Array:
        return lr


__all__ = ["find_lr", "schedule"]

#: What an optax schedule returns (``optax.Schedule`` is ``Callable[[Numeric], Numeric]``).
OptaxSchedule = Callable[[Any], jax.Array]


#: ``lrkit.torch.scheduler``'s keywords that ``schedule`` does not take, with what to do in optax
_TORCH_ONLY = {
    "relative": "an optax optimizer has one learning rate: write it in the schedule (cosine(lr=1e-3)), "
    "or scale a relative one: lrkit.parse(spec) * LR",
    "plateau": "chain optax.contrib.reduce_on_plateau(...) after the optimizer (it scales the updates, "
    "so the schedule) and pass value=loss to its update, built with accumulation_size=steps_per_epoch "
    "so that it decides once an epoch on the epoch's mean loss (with the default accumulation_size=1 "
    "every batch counts as an epoch: patience=10 means 10 noisy batches); or feed it a validation "
    "metric once an epoch",
    "in_graph": "the optax schedule is already computed inside jax.jit: leave it out",
    "fuse": "the optax schedule is already computed inside jax.jit: leave it out",
    "follow_optimizer": "the count is the optimizer state's own: leave it out",
    "epochs": "pass total_steps=epochs * steps_per_epoch",
    "interval": "optax evaluates the schedule at every update: give lengths in epochs ('30ep') with "
    "steps_per_epoch=...",
    "hparams": "schedule another hyperparameter with optax.inject_hyperparams(optax.adam)"
    "(learning_rate=..., b1=lrkit.optax.schedule(...))",
}


@overload
def schedule(
    schedule: ScheduleLike,
    total_steps: SupportsFloat | None = None,
    steps_per_epoch: SupportsFloat | None = None,
) -> OptaxSchedule: ...


@overload
@deprecated("lrkit.optax.schedule: spec= is now schedule=")
def schedule(
    *,
    spec: ScheduleLike,
    total_steps: SupportsFloat | None = None,
    steps_per_epoch: SupportsFloat | None = None,
) -> OptaxSchedule: ...


def schedule(
    schedule: ScheduleLike = _MISSING,
    total_steps: SupportsFloat | None = None,
    steps_per_epoch: SupportsFloat | None = None,
    **unexpected: Any,
) -> OptaxSchedule:
    """``schedule`` (a Schedule, spec string or dict) as an optax schedule: a pure, jit-friendly function
    ``count -> jax.Array``.

    Durations in epochs or fractions are resolved with ``total_steps`` / ``steps_per_epoch`` here,
    once; what cannot be resolved raises :class:`ValueError` now, not at the first step. A fractional
    ``steps_per_epoch`` is taken as it is (``optax.MultiSteps`` over 10 batches an epoch, every 4th an
    update, makes 2.5 updates an epoch, its count running on across epochs). The returned
    function accepts a Python int, a jax array of any shape (integer or float) or a traced value, and
    returns ``s(count)`` as a weakly typed jax array of jax's default float dtype with the shape of
    ``count``. A count from the host (a Python int of any size, a numpy int64) is held to
    ``[-2**53, 2**53]`` as lrkit holds any step, before jax sees it; a NaN count from the host is a
    ValueError, inside ``jit`` it gives NaN. ``lrkit.torch``'s other keywords (``relative``,
    ``plateau``, ``in_graph``...) are a TypeError that says what to use here, another unknown keyword a
    TypeError that names it. The keyword ``spec=`` (this parameter's old name) still works, with a
    DeprecationWarning.

    >>> import jax, jax.numpy as jnp, lrkit
    >>> f = schedule(lrkit.parse("warmup(10, start=0) >> cosine(lr=0.1)"), total_steps=110)
    >>> [round(float(v), 6) for v in jax.jit(f)(jnp.array([0, 5, 10, 60, 110, 500]))]
    [0.0, 0.05, 0.1, 0.05, 0.0, 0.0]
    """
    given = schedule_argument(
        "lrkit.optax.schedule",
        schedule,
        unexpected,
        "spec",
        _TORCH_ONLY,
        ("schedule", "total_steps", "steps_per_epoch"),
    )
    s = as_schedule(given, "schedule")
    refuse_bare_warmup(s)
    resolved = s.resolve(total_steps=total_steps, steps_per_epoch=steps_per_epoch)
    problem = resolved.unresolved
    if problem:
        raise ValueError(f"schedule: cannot make an optax schedule from {s}: {problem}")
    if total_steps is not None:
        warn_run_length(resolved, float(total_steps), shown=repr(str(s)), where="lrkit.optax.schedule")
    xp = array_namespace(jnp.zeros(()))  # resolved once, outside any traced region

    def lr_at(count: Any) -> jax.Array:
        if not isinstance(count, jax.Array):  # given from the host (a traced count is a jax.Array)
            count = host_steps(count, "count", "an array (jax, numpy)")
            # evaluated on the host in float64 (exact at any step: a float32 step past 2**24 is one or
            # two steps off, a restart or a cycle with it), then given jax's default float
            lr = resolved(np.asarray(count, dtype=np.float64))
            return _weak(jnp.asarray(lr, dtype=jax.dtypes.canonicalize_dtype(jnp.float64)))
        if not jnp.issubdtype(count.dtype, jnp.integer) and not jnp.issubdtype(count.dtype, jnp.floating):
            # the dtype is known at trace time: a bool or complex count is refused, as lrkit's core does
            raise TypeError(
                f"count: expected integer or real floating counts, got a jax array of dtype {count.dtype}"
            )
        t = jnp.asarray(count)
        if not jnp.issubdtype(t.dtype, jnp.signedinteger):  # an integer count stays one: reduced exactly
            # jax's default float (float32, or float64 under jax_enable_x64), looked up at trace time
            t = t.astype(jax.dtypes.canonicalize_dtype(jnp.float64))
        return _weak(resolved(t, xp=xp))

    lr_at.__name__ = f"lrkit_{resolved.name}"
    lr_at.__doc__ = f"optax schedule for {resolved}"
    return lr_at


# the range test, functional (see lrkit.finder.optax_driver), imported after the rest of this module
from ..finder.optax_driver import find_lr  # noqa: E402
