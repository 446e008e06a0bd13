"""The Keras 3 driver of the range test: ``train_on_batch`` at each rung's LR, then an exact restore.

:func:`find_lr` sets the compiled optimizer's learning rate (its float LR variable) at each rung, runs
``train_on_batch`` and records that batch's loss (the metrics are reset before each batch: recent Keras
versions do it themselves, earlier ones return the running mean since the last reset), or the mean of
``test_on_batch``'s loss over ``val_data``. With a budget, a test without usable signal is retried by
the shared escalation (:mod:`lrkit.finder.escalation`), every ramp starting from the model as given.
Afterwards, and also when the test raises, every variable of the model (weights, BatchNorm statistics,
dropout seed states), of the optimizer (its iteration count, LR, moments; built first if it was not)
and of the compiled metrics is put back bit for bit, and so are torch's RNG states on the torch backend
(where dropout without a seed draws from them; repeat ``r`` seeds them with ``seed + r``).
"""

from __future__ import annotations

import traceback
from typing import Any

import numpy as np

try:
    import keras
except ModuleNotFoundError as _exc:  # keras 3 picks TensorFlow unless told otherwise
    if _exc.name != "tensorflow":
        raise
    import lrkit.adapters.keras  # noqa: F401  # raises the error that says to set KERAS_BACKEND

from lrkit._checks import plain_number
from lrkit._text import plural
from lrkit.finder import _attempt, core
from lrkit.finder._data import Batches, check_each, fixed_batches, is_arrays
from lrkit.finder.escalation import Plan, budget_steps, epoch_steps
from lrkit.finder.result import FinderResult, warn_if_alike

__all__ = ["find_lr"]


def _lr_owner(optimizer: Any) -> Any:
    """The optimizer that holds the learning rate (the inner one of a ``LossScaleOptimizer``)."""
    while getattr(optimizer, "inner_optimizer", None) is not None:
        optimizer = optimizer.inner_optimizer
    return optimizer


def _check_model(model: Any) -> Any:
    """The compiled model's optimizer whose LR the test sets; a clear error for anything else."""
    if not isinstance(model, keras.Model):
        raise TypeError(f"model must be a keras.Model, got {type(model).__name__}")
    if not getattr(model, "compiled", False) or model.optimizer is None:
        raise ValueError(
            "model is not compiled: call model.compile(optimizer=keras.optimizers.Adam(learning_rate=1e-3), "
            "loss=...) first; the range test trains with the compiled optimizer and loss"
        )
    if not model.built:
        raise ValueError(
            "model is not built: give it an input shape (keras.Input((features,)) as its first layer) or "
            "call it on a batch first, so that its weights exist before the test"
        )
    owner = _lr_owner(model.optimizer)
    lr = getattr(owner, "_learning_rate", None)
    if not isinstance(lr, keras.Variable):
        raise ValueError(
            f"model's optimizer ({type(owner).__name__}) has learning_rate={lr!r}, a schedule; the range "
            "test sets a constant LR at each rung: compile the model with a float learning rate for the "
            "test (model.compile(optimizer=keras.optimizers.Adam(learning_rate=1e-3), loss=...)), then "
            "compile it with the schedule built from the result "
            "(lrkit.keras.schedule(result.schedule(), total_steps=...)) to train"
        )
    return owner


def _torch() -> Any:
    """torch, when it is Keras' backend (whose unseeded dropout draws from torch's global RNG), else None."""
    if keras.backend.backend() != "torch":
        return None
    import torch

    return torch


class _Snapshot:
    """Copies of the model's, the optimizer's and the metrics' variables, assigned back by
    :meth:`restore`; metrics built during the test are reset (their initial state). On the torch
    backend, torch's global RNG states too: Keras' dropout without a seed draws from them there."""

    def __init__(self, model: Any) -> None:
        self.model = model
        if not model.optimizer.built:  # its variables (iterations, moments) exist, zero, as at a first fit
            model.optimizer.build(model.trainable_variables)
        self.variables = [*model.variables, *model.optimizer.variables, *model.metrics_variables]
        self.values = [np.array(keras.ops.convert_to_numpy(v.value), copy=True) for v in self.variables]
        self.torch = _torch()
        self.rng: Any = None
        if self.torch is not None:
            cuda = self.torch.cuda
            self.rng = (
                self.torch.random.get_rng_state(),
                cuda.get_rng_state_all() if cuda.is_available() and cuda.is_initialized() else None,
            )

    def restore(self, *, metrics: bool = True, seed: int | None = None) -> None:
        """Assign the saved values back; ``seed``: seed torch's RNG with it (each repeat's dropout masks),
        else restore its saved states (the end of the test)."""
        if metrics:
            self.model.reset_metrics()
        for v, value in zip(self.variables, self.values, strict=True):
            v.assign(value)
        if self.torch is not None:
            if seed is not None:
                self.torch.manual_seed(seed)
            else:
                self.torch.random.set_rng_state(self.rng[0])
                if self.rng[1] is not None:
                    self.torch.cuda.set_rng_state_all(self.rng[1])


#: the methods by which Keras' ``train_on_batch`` reaches the compiled loss; a model that overrides one
#: may give that loss targets of its own (an autoencoder's ``y = x``)
_LOSS_PATH = ("train_on_batch", "train_step", "compute_loss", "compute_loss_and_updates")


def _check_targets(model: Any, x: Any, y: Any) -> None:
    """Arrays ``x`` without ``y`` on a model that trains its compiled loss the Keras way: that loss is
    called as ``loss(y_true=None, y_pred)`` and fails inside Keras ("Invalid dtype: object"), whatever
    the loss (one that ignores ``y_true`` too), so the test is refused before any step. Without a
    compiled loss (``add_loss`` alone) no ``y`` is legal; with one of the methods above overridden it
    may be, and the first step tells (:func:`_batch_loss`)."""
    if y is not None or not is_arrays(x) or isinstance(x, (list, tuple)) or model.loss is None:
        return
    if any(getattr(type(model), name, None) is not getattr(keras.Model, name, None) for name in _LOSS_PATH):
        return
    raise ValueError(
        f"find_lr got x but no y; Keras' loss needs targets: pass y=... or a dataset of (x, y) batches "
        f"(the model's compiled loss {model.loss!r} is called with y_true=None otherwise)"
    )


def _loss_got_no_targets(error: BaseException) -> bool:
    """Whether ``error`` rose through Keras' own ``Model.compute_loss`` called with ``y=None``: the one
    that calls the compiled loss, which then fails on ``y_true=None`` (on every backend, differently)."""
    code = keras.Model.compute_loss.__code__
    return any(
        frame.f_code is code and frame.f_locals.get("y", ()) is None
        for frame, _ in traceback.walk_tb(error.__traceback__)
    )


def _batch_loss(model: Any, method: Any, batch: Any, name: str) -> float:
    """The loss ``method`` (``model.train_on_batch`` or ``test_on_batch``) reports on ``batch`` (metrics
    reset first). A batch without ``y`` whose compiled loss Keras called with ``y_true=None`` (a
    ``train_step`` of the model's own, or Keras' first call that builds the loss, handing it on; a
    dataset of inputs alone) gets that said, naming ``name``, instead of Keras' error from inside."""
    bx, by, sw = keras.utils.unpack_x_y_sample_weight(batch)
    model.reset_metrics()
    try:
        return float(method(bx, by, sample_weight=sw, return_dict=True)["loss"])
    except Exception as exc:
        if by is None and model.loss is not None and _loss_got_no_targets(exc):
            raise ValueError(
                f"{name} has no targets (y), and Keras called the model's compiled loss {model.loss!r} with "
                f"y_true=None ({type(exc).__name__}: {exc}); pass targets (y=..., or batches (x, y)), or "
                "give that loss targets in the model (override compute_loss, e.g. with y = x for an "
                "autoencoder), or compile without a loss and compute the loss in train_step"
            ) from exc
        raise


def _parts(batch: Any) -> list[tuple[str, Any]]:
    """A batch's arrays as ``fit`` names them (errors about its data name them so)."""
    return list(zip(("x", "y", "sample_weight"), keras.utils.unpack_x_y_sample_weight(batch)))


def _val_arrays(val_data: Any) -> bool:
    """Whether ``val_data`` is ``fit``'s ``validation_data`` as arrays: a tuple ``(x, y)`` or ``(x, y,
    sample_weight)`` of arrays (or dicts of arrays); anything else is an iterable of batches."""
    return isinstance(val_data, tuple) and len(val_data) in (2, 3) and is_arrays(val_data)


def find_lr(
    model: Any,
    x: Any,
    y: Any = None,
    *,
    batch_size: int = 32,
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
    """Run the LR range test on a compiled Keras 3 model and restore it exactly afterwards.

    The optimizer's learning rate (a float, not a schedule: a schedule is refused) follows the ramp
    ``start_lr -> end_lr`` (``mode`` ``"exp"`` or ``"linear"``, ``num_steps`` rungs); each rung runs
    ``batches_per_step`` optimizer steps (``train_on_batch`` calls; with the optimizer's
    ``gradient_accumulation_steps=k``, ``k`` calls make one step) and records their mean loss, the
    ``"loss"`` Keras reports (regularization losses included). With ``val_data`` the rung records
    instead the mean of ``test_on_batch``'s loss over its batches (the compiled loss, without training
    and with ``training=False``: no dropout, BatchNorm's moving statistics), at the weights the rung
    left: ``val_data`` is ``fit``'s ``validation_data``, a tuple ``(x, y)`` or ``(x, y,
    sample_weight)`` of arrays cut into batches of ``batch_size`` in order (the last one short), or an
    iterable of batches (read once, before the test).

    Data as ``fit`` takes it: arrays ``x``, ``y`` (or dicts of arrays) with ``batch_size``, shuffled for
    repeat ``r`` with ``seed + r`` and cut into full batches; or, with ``y=None`` and ``x`` not an
    array, an iterable of batches (a ``tf.data.Dataset``, a torch ``DataLoader``, a list of ``(x, y)``
    or ``(x, y, sample_weight)``), cycled when exhausted, each repeat starting a new pass. Arrays ``x``
    without ``y`` are refused before any step when the model trains a compiled loss Keras' way (it would
    get ``y_true=None``); they are legal without a compiled loss (``add_loss`` alone) or with a
    ``train_step`` / ``compute_loss`` of the model's own (an autoencoder's ``y = x``). Where Keras
    still calls the compiled loss with ``y_true=None`` (a ``train_step`` handing ``y`` on; Keras' first
    call, which builds the loss; batches of inputs alone, in ``val_data`` too), the first such call
    stops the test with what to pass instead of Keras' error. A batch whose loss is NaN/inf because a
    value in it is (in ``x``, ``y`` or ``sample_weight``) stops the test with a ValueError naming the
    batch, the array, the value's index and, for arrays, the sample: no learning rate fixes that, so no
    retry is spent on it (a blow-up on finite data ends the ramp as before).

    **Escalation**, as :func:`lrkit.finder.find_lr` does it (:mod:`lrkit.finder.escalation`): the first
    test runs as asked; with a budget, a test without usable signal is retried by itself (a lower
    ``start_lr`` / higher ``end_lr``, a ramp narrowed below the blow-up, twice the batches per rung,
    the loss measured on 2 fixed training batches with ``test_on_batch``, more repeats) until the
    result is trusted or the budget is spent. ``budget`` bounds the optimizer steps the retries add:
    an int is that many steps, a float in (0, 1] that fraction of ``planned_steps`` (the optimizer
    steps of the planned training); by default, with ``planned_steps``, ``max(0.1 * planned_steps,
    one epoch)`` (``ceil(ceil(n / batch_size) / k)`` steps for ``n`` samples, ``ceil(len(x) / k)``
    for an iterable with a length); without either, no retry. The result says what was tried
    (``escalation``), ``steps`` in all and ``first_steps``; without signal its ``suggestion`` is None.

    Every ramp (a retry's too) starts from the model as given. The model's variables (weights,
    BatchNorm statistics, seed states), the optimizer's (iterations, LR, moments; built first if a fit
    has not built them) and the compiled metrics are restored bit for bit afterwards, also when the test
    raises; on the torch backend, where Keras' unseeded dropout draws from torch's RNG, its states too
    (repeat ``r`` seeds it with ``seed + r``). One thing stays: the model has now been trained, and
    Keras' first ``fit`` of a model never trained draws once more from that RNG (its one-time setup)
    than a later one does. See :class:`FinderResult` for the suggestion, the interval over repeats and
    the trust verdict.

    Example::

        model.compile(optimizer=keras.optimizers.Adam(learning_rate=1e-3), loss="mse")
        result = find_lr(model, x, y, batch_size=64, repeats=3, planned_steps=10 * len(x) // 64)
    """
    owner = _check_model(model)
    _check_targets(model, x, y)
    core.lr_ramp(start_lr, end_lr, num_steps, mode)  # checks the ramp's settings before any work
    start_lr, end_lr, num_steps = float(start_lr), float(end_lr), int(num_steps)  # numpy's as Python's
    dtype = np.dtype(keras.backend.standardize_dtype(owner._learning_rate.dtype))
    if dtype.kind == "f" and end_lr > float(np.finfo(dtype).max):  # an inf LR, not an error, otherwise
        raise ValueError(
            f"end_lr must be at most {float(np.finfo(dtype).max):.3g}, the largest LR the optimizer's "
            f"{dtype} learning_rate can hold, got {end_lr!r}"
        )
    k_batches = core._check_int("batches_per_step", batches_per_step, 1)
    n_rep = core._check_int("repeats", repeats, 1)
    seed = core._check_int("seed", seed, 0)
    accumulate = getattr(model.optimizer, "gradient_accumulation_steps", None) or 1
    if y is not None or (is_arrays(x) and not isinstance(x, (list, tuple))):
        batches = Batches(x if y is None else (x, y), batch_size, "x" if y is None else "x, y", _parts)
    else:
        batches = Batches(x, None, "x", _parts)
    per_epoch = batches.per_epoch()
    allowed = budget_steps(
        plain_number(budget),
        plain_number(planned_steps),
        None if per_epoch is None else epoch_steps(per_epoch, accumulate),
    )
    val = None
    if hasattr(val_data, "shape") or isinstance(val_data, dict):  # inputs without targets: not batches
        raise TypeError(
            f"val_data must be a tuple (x_val, y_val) or (x_val, y_val, sample_weight) of arrays, as fit's "
            f"validation_data, or an iterable of batches; got a {type(val_data).__name__} of inputs alone"
        )
    if isinstance(val_data, tuple) and is_arrays(val_data) and not _val_arrays(val_data):
        raise TypeError(  # (x_val,) would be read as one batch of inputs without targets
            f"val_data must be a tuple (x_val, y_val) or (x_val, y_val, sample_weight) of arrays, as fit's "
            f"validation_data, or an iterable of batches; got a tuple of {plural(len(val_data), 'array')}"
        )
    if val_data is not None:
        val = fixed_batches(val_data, batch_size if _val_arrays(val_data) else None, "val_data")
    snapshot = _Snapshot(model)

    def train(lr: float, steps: int) -> float:
        owner.learning_rate = lr
        total = 0.0
        for _ in range(steps * accumulate):
            loss = _batch_loss(model, model.train_on_batch, batches.next(), "x")
            batches.check_loss(loss)  # a loss that is not finite because the batch is not: said here
            total += loss
        return total / (steps * accumulate)

    def evaluate(chosen: list[Any]) -> float:
        name = "val_data" if val is not None else "x"  # else the escalation's fixed batches of x
        losses = [_batch_loss(model, model.test_on_batch, b, name) for b in chosen]
        check_each(chosen, losses, "val_data's batch" if val is not None else "x's fixed batch", _parts)
        return sum(losses) / len(losses)

    def reset(repeat_seed: int) -> None:
        snapshot.restore(metrics=False, seed=repeat_seed)

    first = Plan(float(start_lr), float(end_lr), num_steps, k_batches, n_rep, False, val_data is not None)
    options: dict[str, Any] = {"mode": mode, "smoothing": smoothing, "rule": rule}  # range_test's
    options |= {"diverge_factor": diverge_factor, "diverge_patience": diverge_patience}
    try:
        result = _attempt.run(train, evaluate, reset, batches, val, seed, first, allowed, **options)
    finally:
        snapshot.restore()
    warn_if_alike(result)  # an iterable that gives its batches in the same order every pass
    return result
