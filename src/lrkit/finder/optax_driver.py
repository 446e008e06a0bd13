"""The optax (JAX) driver of the range test: a functional ``find_lr`` that never touches your params.

Each rung sets the optimizer's learning rate in its state (the hyperparameter that
``optax.inject_hyperparams`` keeps there) and runs one jitted step, compiled once for the whole test::

    step(params, state, batch, lr):
        state.hyperparams["learning_rate"] = lr     # and every reduce_on_plateau held at scale 1
        loss, grads = jax.value_and_grad(loss_fn)(params, batch)
        updates, state = optimizer.update(grads, state, params, value=loss)
        return optax.apply_updates(params, updates), state, loss

The loss goes to the update as ``value`` (optax's extra argument for it), which an
``optax.contrib.reduce_on_plateau`` in the chain requires; the ramp alone sets the LR, so the plateau's
scale is held at 1 through the test (it would cut the ramp where the loss stops improving, its high end).

Every repeat (a retry's too: see :mod:`lrkit.finder.escalation`) starts from the ``params`` you gave and
a fresh ``optimizer.init(params)``; jax arrays are immutable, so there is nothing to restore afterwards.
"""

from __future__ import annotations

import inspect
import math
import re
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import optax

try:  # optax.contrib.reduce_on_plateau's state: scale and cooldown_count since optax 0.2.2 (lrkit's floor)
    from optax.contrib import ReduceLROnPlateauState as _Plateau
except ImportError:  # pragma: no cover - an optax without it: no plateau to hold
    _Plateau = None

from lrkit.finder import _attempt, core
from lrkit.finder._data import Batches, check_each, fixed_batches
from lrkit.finder.escalation import Plan, budget_steps
from lrkit.finder.result import FinderResult, warn_if_alike

__all__ = ["find_lr"]

#: the states of optax's line searches, by the transformation that makes them (optax.lbfgs(): the zoom one)
_LINE_SEARCHES = {
    getattr(optax, state): f"optax.{name}"
    for state, name in (
        ("ScaleByZoomLinesearchState", "scale_by_zoom_linesearch"),
        ("ScaleByBacktrackingLinesearchState", "scale_by_backtracking_linesearch"),
    )
    if hasattr(optax, state)
}

_HOW = (
    "build it with optax.inject_hyperparams, e.g. optax.inject_hyperparams(optax.adamw)(learning_rate=1e-3, "
    "weight_decay=1e-4), or pass a factory lr -> GradientTransformation, e.g. "
    "lambda lr: optax.adamw(lr, weight_decay=1e-4)"
)


def _injected(node: Any) -> bool:
    """Whether ``node`` is the state of ``optax.inject_hyperparams`` (its hyperparameters in a dict)."""
    return isinstance(getattr(node, "hyperparams", None), dict) and hasattr(node, "hyperparams_states")


def _children(node: Any) -> list[tuple[str, Any]]:
    if isinstance(node, tuple) and hasattr(node, "_fields"):
        return [(f".{f}", getattr(node, f)) for f in node._fields]
    if isinstance(node, (tuple, list)):
        return [(f"[{i}]", v) for i, v in enumerate(node)]
    if isinstance(node, dict):
        return [(f"[{k!r}]", v) for k, v in node.items()]
    return []


def _nodes(state: Any, keep: Callable[[Any], bool], path: str = "state") -> list[tuple[str, Any]]:
    """Every node of ``state`` (itself included) that ``keep`` keeps, with its path."""
    here = [(path, state)] if keep(state) else []
    return here + [node for name, child in _children(state) for node in _nodes(child, keep, path + name)]


def _lr_slots(state: Any) -> list[tuple[str, Any]]:
    """Every ``inject_hyperparams`` state in ``state`` that holds a ``learning_rate``, with its path."""
    return _nodes(state, lambda n: _injected(n) and "learning_rate" in n.hyperparams)


def _takes_value(update: Callable[..., Any]) -> bool:
    """Whether ``update`` takes the loss as ``value=``: it has a ``value`` keyword or ``**kwargs``, as
    ``optax.chain``'s and ``inject_hyperparams``' do (a GradientTransformationExtraArgs')."""
    try:
        params = inspect.signature(update).parameters.values()
    except (TypeError, ValueError):  # pragma: no cover - a callable without a signature: given nothing
        return False
    return any(
        p.kind is p.VAR_KEYWORD or (p.name == "value" and p.kind is not p.POSITIONAL_ONLY) for p in params
    )


def _ramped(state: Any, lr: Any) -> Any:
    """``state`` as a rung of the ramp takes it: its ``learning_rate`` hyperparameter set to ``lr`` (in
    its own dtype), and every ``reduce_on_plateau`` held at scale 1, in its cooldown, so that this
    update cannot cut it either (in cooldown it keeps its scale, whatever the loss)."""
    if _injected(state) and "learning_rate" in state.hyperparams:
        old = jnp.asarray(state.hyperparams["learning_rate"])
        state = state._replace(hyperparams={**state.hyperparams, "learning_rate": jnp.asarray(lr, old.dtype)})
    if _Plateau is not None and isinstance(state, _Plateau):
        return state._replace(
            scale=jnp.ones_like(state.scale), cooldown_count=jnp.ones_like(state.cooldown_count)
        )
    if isinstance(state, tuple) and hasattr(state, "_fields"):
        return type(state)(*(_ramped(v, lr) for v in state))
    if isinstance(state, (tuple, list)):
        return type(state)(_ramped(v, lr) for v in state)
    if isinstance(state, dict):
        return {k: _ramped(v, lr) for k, v in state.items()}
    return state


def _settable(optimizer: Any, params: Any, start_lr: float, end_lr: float) -> optax.GradientTransformation:
    """The optimizer whose learning rate the test sets: ``optimizer`` when its state holds exactly one
    constant ``learning_rate`` (``inject_hyperparams``), a factory wrapped in ``inject_hyperparams``;
    ``end_lr`` must fit the dtype that state keeps the LR in (float32 by default). An
    ``optax.MultiSteps`` is taken as its ``.gradient_transformation()``. A ``reduce_on_plateau`` in
    its state needs the loss, so its update must take ``value`` (:func:`_takes_value`)."""
    if not isinstance(optimizer, optax.GradientTransformation) and callable(
        getattr(optimizer, "gradient_transformation", None)
    ):  # optax.MultiSteps (gradient accumulation) is not a GradientTransformation itself
        optimizer = optimizer.gradient_transformation()
    if not isinstance(optimizer, optax.GradientTransformation):
        if not callable(optimizer):
            raise TypeError(
                f"optimizer must be an optax.GradientTransformation whose learning rate can be set, or a "
                f"factory lr -> GradientTransformation; got {type(optimizer).__name__}: {_HOW}"
            )
        factory = optimizer
        made = factory(start_lr)
        if not isinstance(made, optax.GradientTransformation):
            raise TypeError(
                f"optimizer: the factory returned {type(made).__name__} for lr={start_lr!r}; expected an "
                f"optax.GradientTransformation: {_HOW}"
            )
        optimizer = optax.inject_hyperparams(lambda learning_rate: factory(learning_rate))(
            learning_rate=start_lr
        )
    state = optimizer.init(params)
    _refuse_line_search(optimizer, state, params)
    slots = _lr_slots(state)
    if not slots:
        raise ValueError(
            "optimizer: its learning rate cannot be set (its state holds no 'learning_rate' "
            f"hyperparameter; optax.adam(1e-3) bakes the LR into its update function): {_HOW}"
        )
    if len(slots) > 1:
        raise ValueError(
            f"optimizer: its state holds {len(slots)} 'learning_rate' hyperparameters "
            f"({', '.join(p for p, _ in slots)}); the range test ramps one: inject_hyperparams on one "
            "optimizer only"
        )
    path, slot = slots[0]
    if "learning_rate" in slot.hyperparams_states:
        raise ValueError(
            f"optimizer: learning_rate at {path} is a schedule; the range test sets a constant LR at each "
            "rung: build the optimizer for the test with a number, "
            "optax.inject_hyperparams(optax.adam)(learning_rate=1e-3) (or pass lambda lr: optax.adam(lr)), "
            "and give the schedule built from the result (lrkit.optax.schedule(result.schedule(), "
            "total_steps=...)) to the optimizer you train with"
        )
    dtype = jnp.asarray(slot.hyperparams["learning_rate"]).dtype
    # jax's finfo (bfloat16 too) has no annotations
    finfo = jnp.finfo(dtype) if jnp.issubdtype(dtype, jnp.floating) else None  # type: ignore[no-untyped-call]
    largest = math.inf if finfo is None else float(finfo.max)
    if end_lr > largest:
        raise ValueError(
            f"end_lr must be at most {largest:.3g}, the largest LR the optimizer's {dtype} learning_rate "
            f"can hold, got {end_lr!r}"
        )
    plateaus = _nodes(state, lambda n: _Plateau is not None and isinstance(n, _Plateau))
    if plateaus and not _takes_value(optimizer.update):
        raise ValueError(
            f"optimizer: its state holds an optax.contrib.reduce_on_plateau ({plateaus[0][0]}), which needs "
            "the loss as value=..., but the optimizer's update(updates, state, params) takes no value "
            "argument to pass it on: give the update **extra_args that it passes on, as optax.chain's "
            "does, or leave the plateau out of the optimizer given to the range test"
        )
    return optimizer


_NO_LINE_SEARCH = (
    "a line search sets the step size itself at every update, evaluating the loss along the step, so the "
    "LR each rung of the range test sets is only its first guess and the ramp measures nothing. Run the "
    "range test with a first-order optimizer (lambda lr: optax.adam(lr), lambda lr: optax.sgd(lr)); an "
    "optimizer with a line search (optax.lbfgs()) needs no learning rate searched"
)


def _refuse_line_search(optimizer: optax.GradientTransformation, state: Any, params: Any) -> None:
    """Refuse an optimizer with a line search (optax's, found in its state) or, generally, one whose update
    needs extra arguments besides the ``value=`` the test gives (a line search's ``grad=``,
    ``value_fn=``): ``TypeError`` naming the line search or the arguments, and why (optax's own error
    names a local ``update_fn``, or a traced hyperparameter, as ``inject_hyperparams(optax.lbfgs)``'s)."""
    found = _nodes(state, lambda n: type(n) in _LINE_SEARCHES)
    if found:
        path, node = found[0]
        raise TypeError(
            f"optimizer: its state holds a line search, {_LINE_SEARCHES[type(node)]} (at {path}), as "
            f"optax.lbfgs()'s does; the range test cannot ramp its learning rate: {_NO_LINE_SEARCH}"
        )
    extra = {"value": jnp.zeros((), jnp.float32)} if _takes_value(optimizer.update) else {}
    try:  # traced for shapes alone: nothing is computed
        jax.eval_shape(lambda s, p: optimizer.update(p, s, p, **extra), state, params)
    except TypeError as exc:
        missing = re.search(r"missing \d+ required (?:keyword-only )?arguments?: (.+)$", str(exc))
        if missing is None:
            return  # another error: the test's first step raises it where it happens
        raise TypeError(
            f"optimizer: its update needs {missing.group(1)} besides the (updates, state, params"
            f"{', value=loss' if extra else ''}) that the range test gives it (the arguments of a line "
            f"search, as optax.lbfgs()'s grad= and value_fn=): {_NO_LINE_SEARCH}"
        ) from exc
    except Exception:  # a probe: the test's first step raises the error where it happens
        return


def _check_unbatched(data: Any, name: str) -> None:
    """Without ``batch_size``, ``data`` is iterated as batches: arrays (an array, a tuple of arrays, a
    dict) would give rows, single arrays or keys as batches, so they are refused with what to pass."""
    if hasattr(data, "shape"):
        got = f"an array of shape {tuple(data.shape)}"
    elif isinstance(data, dict):
        got = f"a dict (keys {sorted(map(str, data))})"
    elif isinstance(data, tuple) and data and all(hasattr(a, "shape") for a in data):
        got = f"a tuple of {len(data)} arrays (shapes {', '.join(str(tuple(a.shape)) for a in data)})"
    else:
        return
    raise ValueError(
        f"{name} is {got} and batch_size is None: give batch_size=... to cut it into batches, or pass an "
        "iterable of batches (a list of (x, y) tuples, a data loader)"
    )


def _check_loss(loss_fn: Callable[[Any, Any], Any], params: Any, batch: Any) -> None:
    """``loss_fn(params, batch)`` must give a real scalar (``jax.value_and_grad`` takes nothing else):
    checked on one batch by its shape alone (``jax.eval_shape``: nothing is computed)."""
    out = jax.eval_shape(loss_fn, params, batch)
    shape, dtype = getattr(out, "shape", None), getattr(out, "dtype", None)
    if shape is None or dtype is None:
        raise TypeError(
            f"loss_fn(params, batch) must return the loss as a scalar, got {type(out).__name__} (a loss "
            "with auxiliary outputs: return the loss alone)"
        )
    if shape != () or not jnp.issubdtype(dtype, jnp.floating):
        raise TypeError(
            f"loss_fn(params, batch) must return the loss as a float scalar (shape ()), got {dtype} of "
            f"shape {tuple(shape)}" + (" (reduce it, e.g. .mean())" if shape != () else "")
        )


def find_lr(
    loss_fn: Callable[[Any, Any], Any],
    params: Any,
    optimizer: optax.GradientTransformation | Callable[[Any], optax.GradientTransformation],
    data: Any,
    *,
    batch_size: int | None = None,
    start_lr: float = core.START_LR,
    end_lr: float = core.END_LR,
    num_steps: int = core.NUM_STEPS,
    mode: core.Mode = "exp",
    smoothing: float = core.SMOOTHING,
    diverge_factor: float | None = core.DIVERGE_FACTOR,
    diverge_patience: int = core.DIVERGE_PATIENCE,
    val_data: Any = None,
    batches_per_step: int = 1,
    repeats: int = 3,
    seed: int = 0,
    rule: str = "lrkit",
    planned_steps: int | None = None,
    budget: float | int | None = None,
) -> FinderResult:
    """Run the LR range test on ``loss_fn(params, batch) -> scalar loss`` with an optax optimizer.

    ``optimizer`` is one whose learning rate can be set from outside: built with
    ``optax.inject_hyperparams(optax.adam)(learning_rate=1e-3)`` (alone or inside an ``optax.chain``;
    the LR must be a number, not a schedule), or a factory ``lambda lr: optax.adam(lr)``, which the
    finder wraps in ``inject_hyperparams`` itself. ``optax.adam(1e-3)`` is refused: its LR is baked
    into its update function. The update is given the batch's loss as ``value`` (when it takes it); an
    ``optax.contrib.reduce_on_plateau`` in the chain gets it, and is held at scale 1 through the test
    (the ramp alone sets the LR: a plateau would cut its high end, where the loss stops improving).

    The LR follows the ramp ``start_lr -> end_lr`` (``mode`` ``"exp"`` or ``"linear"``, ``num_steps``
    rungs); each rung runs ``batches_per_step`` jitted steps at that LR (in the dtype the optimizer
    keeps it in, float32 by default) and records their mean loss (the loss at the params before each
    update, as ``jax.value_and_grad`` gives it). With ``val_data`` it records instead
    ``mean(loss_fn(params, b) for b in val_data)`` at the params the rung left (jitted, no update);
    ``val_data`` is taken as ``data`` is: an iterable of batches (read once, before the test) or, with
    ``batch_size``, arrays cut into batches in order (the last one short). ``data`` is an iterable of
    batches (a list, a generator, a data loader), cycled when exhausted, each batch handed to
    ``loss_fn`` as it is; or, with ``batch_size``, arrays (or a tuple/dict of arrays sharing their
    first axis), shuffled for repeat ``r`` with ``seed + r`` and cut into full batches. Each repeat
    starts from ``params`` and ``optimizer.init(params)``; ``params`` itself is never changed. A batch
    whose loss is NaN/inf because a value in it is stops the test with a ValueError naming the batch, the
    array (``batch[0]``), the value's index and, for arrays, the sample: no learning rate fixes that, so
    no retry is spent on it (a blow-up on finite data ends the ramp as before).

    **Escalation**, as :func:`lrkit.finder.find_lr` does it (:mod:`lrkit.finder.escalation`): the first
    test runs as asked; with a budget, a test without usable signal is retried by itself (a lower
    ``start_lr`` / higher ``end_lr``, a ramp narrowed below the blow-up, twice the batches per rung,
    the loss of 2 fixed training batches evaluated with ``loss_fn``, more repeats) until the result is
    trusted or the budget is spent. ``budget`` bounds the optimizer steps the retries add: an int is
    that many steps, a float in (0, 1] that fraction of ``planned_steps`` (the optimizer steps of the
    planned training); by default, with ``planned_steps``, ``max(0.1 * planned_steps, one epoch)``
    (``ceil(n / batch_size)`` steps for arrays, ``len(data)`` for an iterable with a length); without
    either, no retry. The result says what was tried (``escalation``), ``steps`` in all and
    ``first_steps``; without signal its ``suggestion`` is None. See :class:`FinderResult` for the
    suggestion, the interval over repeats and the trust verdict.

    Example::

        result = find_lr(loss_fn, params, lambda lr: optax.adam(lr), (x, y), batch_size=64,
                         planned_steps=10 * len(x) // 64)
        opt = optax.adam(lrkit.optax.schedule(result.schedule(), total_steps=10_000))
    """
    if not callable(loss_fn):
        raise TypeError(f"loss_fn must be callable as loss_fn(params, batch) -> loss, got {loss_fn!r}")
    start = core._check_positive_float("start_lr", start_lr)
    core.lr_ramp(start_lr, end_lr, num_steps, mode)  # checks the ramp's settings before any work
    start_lr, end_lr, num_steps = float(start_lr), float(end_lr), int(num_steps)  # numpy's as Python's
    k_batches = core._check_int("batches_per_step", batches_per_step, 1)
    n_rep = core._check_int("repeats", repeats, 1)
    seed = core._check_int("seed", seed, 0)
    if batch_size is None:
        _check_unbatched(data, "data")
        if val_data is not None:
            _check_unbatched(val_data, "val_data")
    batches = Batches(data, batch_size, "data")
    allowed = budget_steps(budget, planned_steps, batches.per_epoch())
    val = None if val_data is None else fixed_batches(val_data, batch_size, "val_data")
    opt = _settable(optimizer, params, start, float(end_lr))
    takes_value = _takes_value(opt.update)

    def one_step(p: Any, state: Any, batch: Any, lr: jax.Array) -> tuple[Any, Any, jax.Array]:
        loss, grads = jax.value_and_grad(loss_fn)(p, batch)
        extra = {"value": loss} if takes_value else {}  # the loss, for a reduce_on_plateau in the chain
        updates, state = opt.update(grads, _ramped(state, lr), p, **extra)
        return optax.apply_updates(p, updates), state, loss

    jitted_step = jax.jit(one_step)
    loss_at = jax.jit(loss_fn)
    current: list[Any] = [params, None]
    checked = False

    def train(lr: float, steps: int) -> float:
        nonlocal checked
        total = 0.0
        for _ in range(steps):
            batch = batches.next()
            if not checked:  # on the first batch, before jax's own "Gradient only defined for scalar..."
                _check_loss(loss_fn, current[0], batch)
                checked = True
            p, state, loss = jitted_step(current[0], current[1], batch, jnp.asarray(lr))
            current[:] = [p, state]
            batches.check_loss(float(loss))  # a loss that is not finite because the batch is not: said here
            total += float(loss)
        return total / steps

    def evaluate(chosen: list[Any]) -> float:
        losses = [float(loss_at(current[0], b)) for b in chosen]
        check_each(chosen, losses, "val_data's batch" if val is not None else "data's fixed batch")
        return sum(losses) / len(losses)

    def reset(repeat_seed: int) -> None:
        current[:] = [params, opt.init(params)]

    first = Plan(start, float(end_lr), num_steps, k_batches, n_rep, False, val_data is not None)
    options: dict[str, Any] = {"mode": mode, "smoothing": smoothing, "rule": rule}  # range_test's
    options |= {"diverge_factor": diverge_factor, "diverge_patience": diverge_patience}
    try:
        result = _attempt.run(train, evaluate, reset, batches, val, seed, first, allowed, **options)
    finally:
        current.clear()  # the test's params and state are dropped; the caller's params were never changed
    warn_if_alike(result)  # an iterable that gives its batches in the same order every pass
    return result
