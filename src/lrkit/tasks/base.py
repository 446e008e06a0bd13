"""The task protocol shared by the finder CLI, the lab and tuning.

A task is a factory ``f(seed) -> TaskParts``: the model (initialised from ``seed``), the train and
validation loaders, the loss, the metric and its direction, the epoch budget and the optimizer it is
usually trained with. Built-in tasks are named (``digits-mlp-sgd``); your own is ``module:function``
(``lrkit lab --task mypkg.tasks:cifar_small``), see ``examples/my_task.py``.

:func:`train_loop` is the one training loop: the lab, tuning and :meth:`Task.train_run` all use it.
"""

from __future__ import annotations

import importlib
import importlib.machinery
import inspect
import math
import os
import re
import sys
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from functools import cached_property
from typing import TYPE_CHECKING, Any

from .._checks import as_real, check_int
from .._forward import TARGET_KEYS, BatchError, batch_size, output_pick, run_batch
from .._text import did_you_mean
from ..finder._data import known_length
from ..schedules.duration import _short
from .optimizers import check_optimizer_name, eval_mode, make_optimizer, train_mode

if TYPE_CHECKING:
    import torch

    from lrkit.finder.result import FinderResult

__all__ = [
    "Task",
    "TaskParts",
    "TrainRun",
    "diverge_threshold",
    "fingerprint_changes",
    "load_factory",
    "task_fingerprint",
    "train_loop",
]

METRICS = ("accuracy", "loss")


@dataclass
class TaskParts:
    """What a task factory returns.

    ``metric`` is ``"accuracy"`` (higher is better), ``"loss"`` (mean ``loss_fn`` over ``val_loader``,
    lower is better) or a callable ``metric(model) -> float`` evaluated in eval mode under
    ``torch.no_grad()``. ``"accuracy"`` is the share of correct targets: the argmax of class scores
    ``(..., classes)`` against integer class indices of shape ``(...)`` (per token for ``(batch, seq,
    classes)``), targets of -100 (``cross_entropy``'s ``ignore_index``) not counted; for one score per
    sample ``(batch, 1)`` against 0/1 targets, binary: a logit above 0, or a probability above 0.5 when
    every score of the validation set lies in [0, 1] (torchmetrics' rule). A model output that is a dict
    or object with ``logits`` is taken by its logits. A callable's direction is ``higher_is_better``; when
    not given it is read from the metric's name (``metric_name``, else the callable's ``__name__``):
    acc, accuracy, auc, f1, precision, recall, r2, iou, map: higher; loss, error, err, mse, mae, rmse,
    nll, ppl, perplexity, wer, cer: lower; a name that says neither (a lambda) is refused. ``optimizer``
    names the optimizer the task is trained with by default (one of
    :data:`lrkit.tasks.OPTIMIZERS`), ``optimizer_params`` its hyper-parameters. ``max_grad_norm``:
    clip the gradient's global norm to it at every step (``torch.nn.utils.clip_grad_norm_``), in the
    training, the LR finder and ``lrkit.auto`` alike; None (default): no clipping.

    **Batches** are taken as :func:`lrkit.find_lr` takes them (:mod:`lrkit._forward`, one function for
    both): an ``(input, target)`` pair gives ``loss_fn(model(input), target)`` (a batch with elements
    after the target, sample weights, is refused: unused, they would change the result); a dict batch
    gives ``loss_fn(model(**rest), batch[key])``, ``key`` the first of
    ``labels, label, targets, target, y``, or with ``loss_fn=None`` ``model(**batch)``'s own loss (the
    output itself, ``out["loss"]`` or ``out.loss``: a Hugging Face model given its labels); accuracy then
    compares the output's logits with ``batch[key]``.

    ``steps_per_epoch``: the optimizer steps of one epoch; None (default): one pass, ``len(train_loader)``
    (:attr:`epoch_steps`). Give it for a loader without ``len()`` (a streaming ``IterableDataset``), or to
    make an epoch shorter or longer than a pass: each epoch then takes the next ``steps_per_epoch``
    batches, and a pass that ends starts a new one (Keras' ``steps_per_epoch``).
    """

    model: torch.nn.Module
    train_loader: Iterable[Any]
    val_loader: Iterable[Any]
    loss_fn: Callable[..., torch.Tensor] | None
    metric: str | Callable[[torch.nn.Module], float] = "accuracy"
    higher_is_better: bool | None = None
    metric_name: str | None = None
    epochs: int = 10
    optimizer: str = "adamw"
    optimizer_params: dict[str, Any] = field(default_factory=dict)
    max_grad_norm: float | None = None
    steps_per_epoch: int | None = None
    _batches: Iterator[Any] | None = field(default=None, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        import torch

        from lrkit.finder.torch_driver import _check_max_grad_norm

        if not isinstance(self.model, torch.nn.Module):
            raise TypeError(f"TaskParts: model must be a torch.nn.Module, got {type(self.model).__name__}")
        for name in ("train_loader", "val_loader"):
            value = getattr(self, name)
            if not isinstance(value, Iterable) or isinstance(value, (str, bytes)):
                raise TypeError(
                    f"TaskParts: {name} must be an iterable of batches, got {type(value).__name__}"
                )
        if next(iter(self.model.parameters()), None) is None:
            raise ValueError(
                f"TaskParts: model ({type(self.model).__name__}) has no parameters; expected a model "
                "with parameters to train"
            )
        for name in ("train_loader", "val_loader"):
            try:
                n = len(getattr(self, name))
            except TypeError:  # no len(): an iterable dataset (steps_per_epoch says so when asked)
                continue
            if n == 0:
                raise ValueError(f"TaskParts: {name} is empty (len 0); expected at least one batch")
        if self.loss_fn is not None and not callable(self.loss_fn):
            raise TypeError(
                f"TaskParts: loss_fn must be callable loss_fn(model(x), y), or None for a model that "
                f"computes its own loss from dict batches, got {_short(self.loss_fn)} "
                f"({type(self.loss_fn).__name__})"
            )
        if isinstance(self.metric, str):
            if self.metric not in METRICS:
                raise ValueError(
                    f"TaskParts: metric must be one of {METRICS} or a callable, got {self.metric!r}"
                )
            if self.higher_is_better is None:
                self.higher_is_better = self.metric == "accuracy"
            if self.metric_name is None:
                self.metric_name = "val accuracy" if self.metric == "accuracy" else "val loss"
        elif not callable(self.metric):
            raise TypeError(
                f"TaskParts: metric must be 'accuracy', 'loss' or a callable, got {self.metric!r}"
            )
        given_name = self.metric_name
        if self.metric_name is None:
            self.metric_name = getattr(self.metric, "__name__", "metric")
        if self.higher_is_better is None:
            names = [given_name, getattr(self.metric, "__name__", None)]
            self.higher_is_better = _direction_of(" ".join(n for n in names if isinstance(n, str)))
            if self.higher_is_better is None:
                raise ValueError(
                    f"TaskParts: metric {self.metric_name!r} (a callable) needs higher_is_better=True or "
                    f"False: its name does not say which way is better (a name with "
                    f"{'/'.join(_HIGHER)} is taken as higher is better, one with {'/'.join(_LOWER)} "
                    "as lower is better)"
                )
        if not isinstance(self.higher_is_better, bool):
            raise TypeError(f"TaskParts: higher_is_better must be a bool, got {self.higher_is_better!r}")
        self.epochs = check_int(self.epochs, "epochs", 1, where="TaskParts: ")  # numpy's ints as Python's
        if self.steps_per_epoch is not None:
            self.steps_per_epoch = check_int(self.steps_per_epoch, "steps_per_epoch", 1, where="TaskParts: ")
        self.epoch_steps  # noqa: B018  (a loader without len() needs steps_per_epoch: said now)
        check_optimizer_name(self.optimizer, "TaskParts: optimizer")
        try:
            self.max_grad_norm = _check_max_grad_norm(self.max_grad_norm)
        except ValueError as exc:
            raise ValueError(f"TaskParts: {exc}") from None

    @property
    def epoch_steps(self) -> int:
        """The optimizer steps of one epoch: ``steps_per_epoch``, or ``len(train_loader)`` (one pass)."""
        if self.steps_per_epoch is not None:
            return self.steps_per_epoch
        length = known_length(self.train_loader)
        if length is None:
            raise TypeError(
                f"TaskParts: train_loader ({type(self.train_loader).__name__}) has no len(); give "
                "steps_per_epoch=N, the optimizer steps of one epoch"
            )
        return length

    def epoch_batches(self) -> Iterator[Any]:
        """One epoch's training batches: a pass over ``train_loader``, or ``steps_per_epoch`` batches of a
        running pass when that is given and differs from ``len(train_loader)`` (a new pass when one ends)."""
        if self.steps_per_epoch is None or self.steps_per_epoch == known_length(self.train_loader):
            yield from self.train_loader
            return
        for _ in range(self.steps_per_epoch):
            batch = _END if self._batches is None else next(self._batches, _END)
            if batch is _END:  # the first pass, or one that ended: a new pass
                self._batches = iter(self.train_loader)
                batch = next(self._batches, _END)
                if batch is _END:
                    raise ValueError("TaskParts: train_loader gave no batch; expected at least one")
            yield batch

    def make_optimizer(
        self, lr: float, name: str | None = None, params: dict[str, Any] | None = None
    ) -> torch.optim.Optimizer:
        """A new optimizer over the model's parameters: ``name`` (default: the task's) at ``lr``."""
        if name is None:
            name, params = self.optimizer, {**self.optimizer_params, **(params or {})}
        return make_optimizer(name, self.model.parameters(), lr, params)

    def evaluate(self, model: torch.nn.Module | None = None) -> float:
        """The validation metric of ``model`` (default: this task's), in eval mode without gradients."""
        import torch

        m = self.model if model is None else model
        was_training = m.training
        m.eval()
        try:
            with torch.no_grad():
                if callable(self.metric):
                    return _number(self.metric(m), f"TaskParts: metric {self.metric_name!r}")
                if self.metric == "accuracy":
                    return _accuracy(m, self.val_loader, self.loss_fn)
                loss_sum, total = _loss_sum(m, self.val_loader, self.loss_fn)
                if total == 0:
                    raise ValueError("TaskParts: val_loader yielded no samples")
                return loss_sum / total
        finally:
            m.train(was_training)

    def val_loss(self, model: torch.nn.Module | None = None) -> float:
        """The mean loss of ``model`` (default: this task's) over ``val_loader``'s batches (``loss_fn``'s, or
        the model's own with ``loss_fn=None``), each weighted by its size, in eval mode without gradients;
        NaN when the loader yields no sample. Every random state is left as it was (torch's, CUDA's,
        Python's, numpy's and the loader's own generator), so measuring it changes no training run that
        follows."""
        import random

        import numpy as np
        import torch

        m = self.model if model is None else model
        was_training = m.training
        gen = getattr(self.val_loader, "generator", None)
        gen_state = gen.get_state() if isinstance(gen, torch.Generator) else None
        py_state, np_state = random.getstate(), np.random.get_state()
        cuda = list(range(torch.cuda.device_count())) if torch.cuda.is_initialized() else []  # type: ignore[no-untyped-call]
        m.eval()
        try:
            with torch.random.fork_rng(devices=cuda), torch.no_grad():
                loss_sum, total = _loss_sum(m, self.val_loader, self.loss_fn)
        finally:
            m.train(was_training)
            random.setstate(py_state)
            np.random.set_state(np_state)
            if gen_state is not None:
                assert isinstance(gen, torch.Generator)
                gen.set_state(gen_state)
        return loss_sum / total if total else math.nan

    def worst(self) -> float:
        """The metric a diverged run scores: the worst there is, -inf where higher is better, +inf where
        lower is (0 was not the worst of a metric that can be negative: R2, MCC, -loss)."""
        return -math.inf if self.higher_is_better else math.inf


def _loss_sum(model: torch.nn.Module, loader: Iterable[Any], loss_fn: Any) -> tuple[float, int]:
    """The sum over ``loader``'s batches of each batch's loss times its size, and the samples counted."""
    total, loss_sum = 0, 0.0
    for batch in loader:
        _, target, loss = run_batch(model, batch, loss_fn, task=True)
        n = batch_size(batch, target)
        loss_sum += float(loss) * n
        total += n
    return loss_sum, total


def diverge_threshold(first: float, factor: float) -> float:
    """The loss past which a run diverges: ``factor`` times its first loss, grown from the first loss by
    ``factor - 1`` times its size, ``first + (factor - 1)·|first|``, so that a loss that can be negative
    (a shifted MSE, a Gaussian NLL, an ELBO) diverges when it has grown as far as a positive one would
    (``factor·first`` for a positive ``first``; for -7 and 10: 56, not -70)."""
    return first + (factor - 1.0) * abs(first)


def _number(value: Any, what: str) -> float:
    """``float(value)`` for a real number (a Python or numpy number, a one-element tensor); else a
    TypeError naming ``what``."""
    if not isinstance(value, (str, bytes, complex)) and not isinstance(value, bool):
        try:
            return float(value)
        except (TypeError, ValueError, RuntimeError):
            pass
    raise TypeError(f"{what} must return a number, got {_short(value)} ({type(value).__name__})")


@dataclass
class TrainRun:
    """One training run: the final validation ``metric`` (the task's worst value when not finite), the
    training loss and LR of every step, whether it diverged and where, and per-epoch curves
    (``epoch_seconds``: wall time at the end of each epoch, from the start of training)."""

    metric: float
    losses: list[float]
    diverged: bool
    steps: int
    lrs: list[float] = field(default_factory=list)
    diverged_step: int | None = None
    epoch_metrics: list[float] = field(default_factory=list)
    epoch_losses: list[float] = field(default_factory=list)
    epoch_seconds: list[float] = field(default_factory=list)
    seconds: float = 0.0


#: the lab's optimizers whose recorded LR is their step size ``d * lr`` (:func:`effective_lr`), not the
#: group's ``lr`` (a multiplier, 1.0): a lab run of one keeps ``lr_recorded: "d*lr"`` in its stored config
#: (:data:`lrkit.lab.store.LR_RECORDED`); one stored without it, by an earlier lrkit, is run again
STEP_SIZE_OPTIMIZERS: tuple[str, ...] = ("prodigy",)


def effective_lr(group: Mapping[str, Any]) -> float:
    """The step size a parameter group's next step takes, as the lab records it: its ``lr``, times its
    ``d`` for an optimizer that estimates its own step (Prodigy, D-Adaptation: ``lr`` is a multiplier of
    the ``d`` they keep in the group, and the step uses ``d * lr``; Prodigy's optional bias correction,
    ``use_bias_correction=True``, is left out)."""
    lr = float(group["lr"])
    d = group.get("d")
    if d is None or isinstance(d, bool):
        return lr
    try:
        return float(d) * lr
    except (TypeError, ValueError):  # a "d" that is not a number is not such an estimate
        return lr


def train_loop(
    parts: TaskParts,
    optimizer: torch.optim.Optimizer,
    epochs: int,
    *,
    before_step: Callable[[int], None] | None = None,
    after_step: Callable[[int], None] | None = None,
    diverge_factor: float | None = None,
    evaluate_every_epoch: bool = True,
    on_epoch: Callable[[int, float], None] | None = None,
    run: TrainRun | None = None,
) -> TrainRun:
    """Train ``parts.model`` for ``epochs`` with ``optimizer``.

    ``before_step(step)`` runs before each forward pass (set the LR there), ``after_step(step)`` after
    ``optimizer.step()`` (step a scheduler there); the gradient is clipped to ``parts.max_grad_norm``
    first when the task sets it. A run *diverges*, and stops, when its loss is not
    finite or exceeds ``diverge_factor`` times its first loss (:func:`diverge_threshold`, for a loss of
    any sign). With ``evaluate_every_epoch`` the metric
    is measured after every epoch and ``on_epoch(epoch, metric)`` is called (it may raise to stop, e.g.
    Optuna's pruning); the final metric is measured in any case. ``run`` collects the curves as they
    grow (pass one in to keep a partial record when an exception escapes); its ``lrs`` are the step sizes
    of the first parameter group (:func:`effective_lr`: ``d * lr`` for Prodigy).
    """
    from lrkit.finder.torch_driver import clip_gradients

    rec = run if run is not None else TrainRun(math.nan, [], False, 0)
    model, loss_fn = parts.model, parts.loss_fn
    t0 = time.perf_counter()

    def measure() -> float:
        eval_mode(optimizer)
        try:
            m = parts.evaluate(model)
        finally:
            train_mode(optimizer)
        return m if math.isfinite(m) else math.nan

    train_mode(optimizer)
    model.train()
    for epoch in range(1, epochs + 1):
        epoch_losses: list[float] = []
        for batch in parts.epoch_batches():
            if before_step is not None:
                before_step(rec.steps)
            rec.lrs.append(effective_lr(optimizer.param_groups[0]))
            optimizer.zero_grad(set_to_none=True)
            loss = run_batch(model, batch, loss_fn, task=True)[2]
            value = float(loss.detach())
            rec.losses.append(value)
            if not math.isfinite(value) or (
                diverge_factor is not None and value > diverge_threshold(rec.losses[0], diverge_factor)
            ):
                rec.diverged, rec.diverged_step = True, rec.steps
                break
            loss.backward()
            if parts.max_grad_norm is not None:
                clip_gradients(optimizer, parts.max_grad_norm)
            optimizer.step()
            if after_step is not None:
                after_step(rec.steps)
            rec.steps += 1
            epoch_losses.append(value)
        if rec.diverged:
            break
        rec.epoch_losses.append(sum(epoch_losses) / max(1, len(epoch_losses)))
        if evaluate_every_epoch or epoch == epochs:
            m = measure()
            rec.epoch_metrics.append(m)
            rec.epoch_seconds.append(time.perf_counter() - t0)
            if on_epoch is not None:
                on_epoch(epoch, m)
    final = measure() if rec.diverged else (rec.epoch_metrics[-1] if rec.epoch_metrics else measure())
    rec.metric = final if math.isfinite(final) else parts.worst()
    rec.seconds = time.perf_counter() - t0
    return rec


#: what ``next`` gives for a pass that has ended (TaskParts.epoch_batches)
_END = object()


def task_fingerprint(parts: TaskParts) -> dict[str, Any]:
    """What a task builds, beyond its name, so that an edited task is told from the one stored runs were
    trained on (the lab): ``epoch_steps``, the model's ``parameters`` (a count), ``init`` (a hash of its
    parameters and buffers as built), ``batch`` (the dtypes and shapes of the first training batch:
    another batch size or input), ``batch_hash`` (a hash of its values: other data), ``metric`` (its
    name and direction; for metric 'accuracy' on outputs whose count lrkit changed, the kind in
    brackets: ``val accuracy [per token] (higher is better)``, see :func:`_accuracy_kind`), ``loss``
    (the loss function's qualified name) and ``val_batch_hash`` (the first validation batch's hash).
    ``parts`` is a fresh build (an untrained model); one batch of each loader
    is drawn."""
    import hashlib

    model = parts.model
    init = hashlib.blake2b(digest_size=16)
    for name, value in model.state_dict().items():  # parameters and buffers, in the model's order
        init.update(name.encode())
        _hash_into(init, value)
    batch = next(iter(parts.train_loader), None)
    data = hashlib.blake2b(digest_size=16)
    _hash_into(data, batch)
    val = hashlib.blake2b(digest_size=16)
    val_batch = next(iter(parts.val_loader), None)
    _hash_into(val, val_batch)
    kind = _accuracy_kind(parts, val_batch)
    return {
        "epoch_steps": parts.epoch_steps,
        "parameters": sum(p.numel() for p in model.parameters()),
        "init": init.hexdigest(),
        "batch": ", ".join(_shapes(batch)) or type(batch).__name__,
        "batch_hash": data.hexdigest(),
        "metric": f"{parts.metric_name}{f' [{kind}]' if kind else ''} "
        f"({'higher' if parts.higher_is_better else 'lower'} is better)",
        "loss": "the model's own (loss_fn=None)" if parts.loss_fn is None else _name_of(parts.loss_fn),
        "val_batch_hash": val.hexdigest(),
    }


def _name_of(fn: Any) -> str:
    """A callable's qualified name (its class's for an object such as ``torch.nn.CrossEntropyLoss()``)."""
    target = fn if hasattr(fn, "__qualname__") else type(fn)
    return f"{getattr(target, '__module__', '?')}.{getattr(target, '__qualname__', type(fn).__name__)}"


def fingerprint_changes(then: Mapping[str, Any], now: Mapping[str, Any], seed: int = 0) -> list[str]:
    """What differs between two :func:`task_fingerprint` of a task built from ``seed``, in words
    (``"parameters 2,410 then, 330 now"``); an item one of them lacks is not compared."""

    def differs(key: str) -> bool:
        return key in then and key in now and then[key] != now[key]

    out = []
    if differs("epoch_steps"):
        out.append(f"batches per epoch {then['epoch_steps']:,} then, {now['epoch_steps']:,} now")
    if differs("parameters"):
        out.append(f"parameters {then['parameters']:,} then, {now['parameters']:,} now")
    elif differs("init"):
        out.append(f"the initial weights (seed {seed}) differ, {now.get('parameters', 0):,} parameters both")
    if differs("batch"):
        out.append(f"first training batch {then['batch']} then, {now['batch']} now")
    elif differs("batch_hash"):
        out.append("the first training batch's values differ (same shapes: other data, or other order)")
    if differs("metric"):
        kind = re.search(r" \[(.+)\] \(", str(now["metric"]))
        if kind and re.sub(r" \[.+\] \(", " (", str(now["metric"])) == then["metric"]:
            # stored by an lrkit whose fingerprint did not name the accuracy kind: the one that counted it
            # as now (42b0825 on) or an older one; it cannot be told which, so the runs are kept, said
            import warnings

            warnings.warn(
                f"the stored runs' fingerprint does not name the accuracy kind (metric {then['metric']} "
                f"then, {now['metric']} now): this task's accuracy is counted {_KINDS[kind.group(1)]}. "
                "Runs trained by an lrkit from before that rule (before December 2026) counted it "
                "otherwise and are not comparable with new ones: rerun with --fresh if yours are that old",
                UserWarning,
                stacklevel=2,
            )
        else:
            out.append(f"metric {then['metric']} then, {now['metric']} now")
    if differs("loss"):
        out.append(f"loss function {then['loss']} then, {now['loss']} now")
    if differs("val_batch_hash"):
        out.append("the first validation batch differs (other validation data)")
    return out


def _hash_into(h: Any, obj: Any) -> None:
    """Feed ``obj`` (a tensor, an array, a number, a string, or a tuple, list or dict of them) to hash ``h``:
    its kind, dtype, shape and values; of another object, its type's name."""
    import numpy as np
    import torch

    if isinstance(obj, torch.Tensor):
        t = obj.detach().cpu()
        h.update(f"tensor {t.dtype} {tuple(t.shape)}".encode())
        try:
            h.update(t.contiguous().reshape(-1).view(torch.uint8).numpy())
        except (RuntimeError, TypeError):  # a sparse or quantized tensor: its values as numbers
            h.update(repr(t.tolist()).encode())
    elif isinstance(obj, np.ndarray):
        h.update(f"array {obj.dtype} {obj.shape}".encode())
        h.update(np.ascontiguousarray(obj) if obj.dtype != object else repr(obj.tolist()).encode())
    elif isinstance(obj, Mapping):
        h.update(f"map {len(obj)}".encode())
        for key in sorted(obj, key=str):
            h.update(str(key).encode())
            _hash_into(h, obj[key])
    elif isinstance(obj, (tuple, list)):
        h.update(f"seq {len(obj)}".encode())
        for item in obj:
            _hash_into(h, item)
    elif obj is None or isinstance(obj, (bool, int, float, complex, str, bytes, np.generic)):
        h.update(f"{type(obj).__name__} {obj!r}".encode())
    else:
        h.update(type(obj).__name__.encode())


def _shapes(obj: Any) -> list[str]:
    """``dtype[shape]`` of each tensor or array in ``obj`` (a batch), in order: ``["float32[16, 64]",
    "int64[16]"]``."""
    import numpy as np
    import torch

    if isinstance(obj, torch.Tensor):
        return [f"{str(obj.dtype).removeprefix('torch.')}{list(obj.shape)}"]
    if isinstance(obj, np.ndarray):
        return [f"{obj.dtype}{list(obj.shape)}"]
    if isinstance(obj, Mapping):
        return [f"{k}: {s}" for k in sorted(obj, key=str) for s in _shapes(obj[k])]
    if isinstance(obj, (tuple, list)):
        return [s for item in obj for s in _shapes(item)]
    return []


def _call_factory(factory: Callable[..., Any], seed: int, name: str) -> Any:
    """``factory(seed)``, or ``factory()`` for a factory that takes nothing. A call refused before any of
    the factory's own code ran (a function written in C such as ``os:system``, a wrong signature) is the
    user's error, naming the task: it has no frame of theirs to show."""
    try:
        sig: inspect.Signature | None = inspect.signature(factory)
    except (TypeError, ValueError):
        sig = None
    args = () if sig is not None and not sig.parameters else (seed,)
    try:
        return factory(*args)
    except Exception as exc:
        if exc.__traceback__ is None or exc.__traceback__.tb_next is not None:
            raise
        from lrkit._usercode import user_error

        raise user_error(f"task {name!r}", exc) from exc


#: what a kind of :func:`_accuracy_kind` means, for the message of a fingerprint from before it
_KINDS = {
    "per token": "per token of a (batch, seq, classes) output (it was right tokens over sequences, up to "
    "the sequence length)",
    "binary": "for one score per sample as binary accuracy (it was the argmax over one class: the share "
    "of class 0)",
    "-100 not counted": "over targets that are not -100 (they were counted, as wrong)",
}

#: a target not counted by accuracy: torch's ``cross_entropy`` ``ignore_index``, Hugging Face's padding
IGNORE_INDEX = -100

#: words of a metric's name that say higher is better / lower is better (Keras' mode="auto" reads "acc")
_HIGHER = ("acc", "accuracy", "auc", "f1", "precision", "recall", "r2", "iou", "map")
_LOWER = ("loss", "error", "err", "mse", "mae", "rmse", "nll", "ppl", "perplexity", "wer", "cer")
#: words that turn a name's direction around (``neg_loss``): the name then says nothing
_FLIP = ("neg", "negative", "minus", "inv", "inverse")


def _direction_of(name: str) -> bool | None:
    """Whether higher is better for a metric named ``name``, from its words (``val_acc``, ``valPerplexity``,
    ``top1 error``): True or False when its words say one way only, else None."""
    words = set(re.findall(r"[a-z0-9]+", re.sub(r"([a-z0-9])([A-Z])", r"\1 \2", name).lower()))
    higher, lower = bool(words & set(_HIGHER)), bool(words & set(_LOWER))
    if higher == lower or words & set(_FLIP):
        return None
    return higher


def _logits(out: Any) -> torch.Tensor:
    """The class scores of a model's output: the output itself (a tensor), or its ``logits`` (a dict
    with a ``"logits"`` tensor, a Hugging Face-style output with ``.logits``); else a TypeError saying
    how to pick them (the LR finder's hint for a loss's input)."""
    import torch

    if isinstance(out, torch.Tensor):
        return out
    logits = out.get("logits") if isinstance(out, Mapping) else getattr(out, "logits", None)
    if isinstance(logits, torch.Tensor):
        return logits
    what, pick, which = output_pick(out)
    hint = f"return output{pick} from the model's forward{which}" if pick else "return the class scores"
    raise TypeError(
        f"TaskParts: metric 'accuracy' takes the argmax of the model's output, but the model returned "
        f"{what}, not a tensor nor an output with logits; {hint}, or give metric='loss' or a callable "
        "metric(model) -> float"
    )


def _accuracy(model: torch.nn.Module, loader: Iterable[Any], loss_fn: Any) -> float:
    """The share of correct targets over ``loader``'s ``(input, target)`` batches (see :class:`TaskParts`):
    class scores by argmax per target (a token of a sequence is one target), one score per sample
    binary; targets of :data:`IGNORE_INDEX` not counted."""
    import torch

    right = counted = 0
    scores: list[torch.Tensor] = []  # binary: decided over the whole set (logits or probabilities)
    labels: list[torch.Tensor] = []
    for batch in loader:
        out, y = _scores(model, batch, loss_fn)
        t = torch.as_tensor(y, device=out.device)
        if out.ndim >= 1 and out.shape[-1] == 1 and t.shape in (out.shape[:-1], out.shape):
            s, t = out.reshape(-1), t.reshape(-1)
            keep = t != IGNORE_INDEX
            s, t = s[keep], t[keep]
            if t.dtype.is_complex or not bool(((t == 0) | (t == 1)).all()):
                seen = torch.unique(t).tolist()
                values = ", ".join(f"{v:g}" for v in seen[:4]) + (", ..." if len(seen) > 4 else "")
                raise TypeError(
                    f"TaskParts: metric 'accuracy' on one score per sample (output shape "
                    f"{tuple(out.shape)}) is binary and needs 0/1 targets, got {t.dtype} targets with "
                    f"values {values}; for other "
                    "targets (a regression) give metric='loss' or a callable"
                )
            scores.append(s.float())
            labels.append(t.bool())
            continue
        t = _class_targets(out, t)
        keep = t != IGNORE_INDEX
        right += int(((out.argmax(dim=-1) == t) & keep).sum())
        counted += int(keep.sum())
    if scores:
        s, t = torch.cat(scores), torch.cat(labels)
        cut = 0.5 if bool(((s >= 0) & (s <= 1)).all()) else 0.0  # probabilities, else logits
        right += int(((s > cut) == t).sum())
        counted += len(t)
    if counted == 0:
        raise ValueError(
            f"TaskParts: val_loader yielded no target to count for metric 'accuracy' (none, or all "
            f"{IGNORE_INDEX}, the ignored index)"
        )
    return right / counted


def _scores(model: torch.nn.Module, batch: Any, loss_fn: Any) -> tuple[torch.Tensor, Any]:
    """The model's class scores on ``batch`` (its output, or the output's logits) and the batch's target
    (a dict batch's under the first of :data:`lrkit._forward.TARGET_KEYS`)."""
    out, target, _ = run_batch(model, batch, loss_fn, loss=False, task=True)
    if target is None:
        raise TypeError(
            f"TaskParts: metric 'accuracy' compares the model's output with each validation batch's "
            f"target, but a dict batch with keys {sorted(batch)} has none; expected it under one of "
            f"{list(TARGET_KEYS)}, or give metric='loss' or a callable"
        )
    return _logits(out), target


def _accuracy_kind(parts: TaskParts, batch: Any) -> str:
    """How metric 'accuracy' counts on this task, read from the untrained model's output on ``batch``, the
    first validation batch (in eval mode, without gradients, every random state left as it was): "" for class
    scores ``(batch, classes)`` against class indices without ignored (-100) ones, whose count has not
    changed; "per token" for scores of a sequence ``(batch, seq, classes)`` (once right tokens over
    sequences); "binary" for one score per sample (once argmax over one class); "-100 not counted" when
    the first batch has targets of -100 (once counted, never right)."""
    import random

    import numpy as np
    import torch

    if parts.metric != "accuracy" or batch is None:
        return ""
    m = parts.model
    was_training = m.training
    py_state, np_state = random.getstate(), np.random.get_state()
    cuda = list(range(torch.cuda.device_count())) if torch.cuda.is_initialized() else []  # type: ignore[no-untyped-call]
    m.eval()
    try:
        with torch.random.fork_rng(devices=cuda), torch.no_grad():
            out, y = _scores(m, batch, parts.loss_fn)
    finally:
        m.train(was_training)
        random.setstate(py_state)
        np.random.set_state(np_state)
    t = torch.as_tensor(y)
    if out.ndim >= 1 and out.shape[-1] == 1 and t.shape in (out.shape[:-1], out.shape):
        return "binary"
    if out.ndim >= 3:
        return "per token"
    return "-100 not counted" if bool((t == IGNORE_INDEX).any()) else ""


def _class_targets(out: torch.Tensor, y: Any) -> torch.Tensor:
    """``y`` if it can be compared with ``out.argmax(-1)``: integer class indices of shape
    ``out.shape[:-1]``. Float targets never equal a class index (accuracy 0), and targets of shape
    (batch, 1) broadcast against (batch,) into a (batch, batch) count (accuracy above 1)."""
    import torch

    t = torch.as_tensor(y)
    if out.ndim <= 1:  # one score per sample, squeezed: no class dimension to take the argmax of
        raise TypeError(
            f"TaskParts: metric 'accuracy' needs class scores of shape (..., classes) (argmax) or one score "
            f"per sample of shape (batch, 1) (binary, 0/1 targets), but the model's output has shape "
            f"{tuple(out.shape)} (targets {tuple(t.shape)}): no class dimension; for a binary model "
            "return the logits as (batch, 1) (output.unsqueeze(-1)), or give metric='loss' or a callable"
        )
    if t.dtype.is_floating_point or t.dtype.is_complex or t.dtype == torch.bool or t.shape != out.shape[:-1]:
        raise TypeError(
            f"TaskParts: metric 'accuracy' compares the argmax of the model's output (shape "
            f"{tuple(out.shape)}) with integer class indices of shape {tuple(out.shape[:-1])}, got {t.dtype} "
            f"targets of shape {tuple(t.shape)}; for other targets give metric='loss' or a callable"
        )
    return t


def _first_batch(loader: Iterable[Any], what: str) -> Any:
    """The first batch of ``loader``; a ValueError naming ``what`` when it yields none."""
    batch = next(iter(loader), None)
    if batch is None:
        raise ValueError(
            f"{what} yielded no batch; expected (input, target) tuples or dict batches (see TaskParts)"
        )
    return batch


def load_factory(text: str, folder: str | os.PathLike[str] | None = None) -> Callable[..., Any]:
    """The callable named by ``"module:function"`` (``module`` is imported; the current directory is
    on the path, as for ``python -m``: its absolute path, which a later ``os.chdir`` does not move).
    ``folder`` (an experiment file's folder) is searched first: where it holds the module (or its package),
    it goes first on the path, so that worker processes find the module there too."""
    if not isinstance(text, str) or text.count(":") != 1:
        raise ValueError(f"task must be a built-in name or 'module:function', got {text!r}")
    mod_name, _, attr = text.partition(":")
    if not mod_name or not attr:
        raise ValueError(f"task must be a built-in name or 'module:function', got {text!r}")
    if mod_name.endswith(".py") or "/" in mod_name or "\\" in mod_name:
        stem = mod_name.replace("\\", "/").rsplit("/", 1)[-1].removesuffix(".py") or "MODULE"
        raise ValueError(
            f"task {text!r}: {mod_name!r} is a file path; expected the module's import name, "
            f"'{stem}:{attr}', run from the file's directory or with that directory on PYTHONPATH"
        )
    if mod_name.startswith("."):  # a relative import has no package to be relative to here
        raise ValueError(
            f"task {text!r}: {mod_name!r} is a relative module name; expected the module's absolute "
            f"import name, e.g. '{mod_name.lstrip('.') or 'MODULE'}:{attr}'"
        )
    cwd = os.getcwd()  # absolute, as `python -m` puts it: "" would follow a later os.chdir
    if cwd not in sys.path:
        sys.path.insert(0, cwd)
    searched = f"the current directory {cwd!r}"
    if folder is not None:
        first = os.path.abspath(folder)
        searched = searched if first == cwd else f"the folder {first!r}, then {searched}"
        found = importlib.machinery.PathFinder.find_spec(mod_name.split(".")[0], [first])
        if found is not None and first != cwd and sys.path[:1] != [first]:
            sys.path.insert(0, first)  # before the current directory: the file's folder is searched first
    try:
        module = importlib.import_module(mod_name)
    except ModuleNotFoundError as exc:
        # the module itself (or a package above it) is missing; a module it imports is its own error
        if exc.name is not None and (mod_name == exc.name or mod_name.startswith(exc.name + ".")):
            raise ValueError(
                f"task {text!r}: no module named {exc.name!r} (searched {searched}, PYTHONPATH and the "
                "installed packages)"
            ) from None
        raise
    obj: Any = module
    done: list[str] = []
    for part in attr.split("."):
        if not hasattr(obj, part):
            names = [n for n in dir(obj) if part.startswith("_") or not n.startswith("_")]
            hint = did_you_mean(part, names, "".join(f"{d}." for d in done))
            raise ValueError(f"task {text!r}: module {mod_name!r} has no attribute {attr!r}{hint}")
        obj = getattr(obj, part)
        done.append(part)
    if not callable(obj):
        raise ValueError(f"task {text!r}: {attr!r} is not callable (expected f(seed) -> TaskParts)")
    return obj  # type: ignore[no-any-return]


@dataclass(frozen=True)
class Task:
    """A named, buildable training task: ``factory(seed) -> TaskParts``.

    ``build(seed)`` seeds torch (CPU and CUDA), numpy's global RNG and Python's ``random`` with ``seed``,
    as Lightning's ``seed_everything`` and transformers' ``set_seed`` do, then calls the factory: a
    factory that ignores the seed, or a loader that draws from ``np.random`` or ``random``, still gives the
    same initial weights and batches for the same seed.
    """

    name: str
    factory: Callable[..., TaskParts] = field(repr=False)
    description: str = ""

    def build(self, seed: int = 0) -> TaskParts:
        """Fresh model (initialised from ``seed``), loaders, loss and metric; torch, numpy's global RNG
        and ``random`` are seeded with ``seed`` first."""
        import random

        import numpy as np
        import torch

        seed = check_int(seed, "seed", 0)
        torch.manual_seed(seed)  # CUDA's generators too
        np.random.seed(seed % 2**32)  # numpy takes seeds below 2**32
        random.seed(seed)
        try:
            parts = _call_factory(self.factory, seed, self.name)
        except (ValueError, TypeError) as exc:
            if str(exc).startswith("TaskParts: "):  # refused by TaskParts: say whose parts they were
                raise type(exc)(f"task {self.name!r}: {exc}") from None
            raise
        if not isinstance(parts, TaskParts):
            raise TypeError(
                f"task {self.name!r}: the factory must return lrkit.tasks.TaskParts, "
                f"got {type(parts).__name__}"
            )
        return parts

    def check(self, seed: int = 0) -> None:
        """Build the task and try each part once, so that a broken task fails before a lab or a search
        writes or trains anything: the forward pass, loss and backward pass of one training step on the
        first training batch (the loss a finite one-element tensor; no optimizer step), and the metric of
        the untrained model (a callable metric once; ``"accuracy"`` and ``"loss"`` on the first
        validation batch). A ValueError or TypeError names the task and the part; an exception raised in
        the task's own code (the factory, the model, the loss, the metric) passes through.
        """
        import dataclasses

        import torch

        where = f"task {self.name!r}"
        parts = self.build(seed)
        first = _first_batch(parts.train_loader, f"{where}: train_loader")
        model = parts.model
        model.train()
        own = parts.loss_fn is None
        whose = "the model's own loss (loss_fn=None)" if own else "loss_fn"
        try:
            loss = run_batch(model, first, parts.loss_fn, task=True)[2]
        except BatchError as exc:  # lrkit's refusal of the batch or the model's output: named
            raise type(exc)(f"{where}: the first training batch: {exc}") from exc.__cause__
        if not isinstance(loss, torch.Tensor) or loss.numel() != 1:
            got = f"a tensor of shape {tuple(loss.shape)}" if isinstance(loss, torch.Tensor) else repr(loss)
            raise TypeError(
                f"{where}: {whose} must {'be' if own else 'return'} a one-element tensor (the batch's mean "
                f"loss), got {got}"
            )
        value = float(loss.detach())
        if not math.isfinite(value):
            raise ValueError(
                f"{where}: {whose} gave {value} on the first training batch of the untrained model (seed "
                f"{seed}); expected a finite loss: check the data and the loss"
            )
        if loss.requires_grad:  # else the loss does not depend on the parameters: backward() says so
            loss.backward()  # type: ignore[no-untyped-call]
        else:
            raise ValueError(
                f"{where}: the loss does not depend on the model's parameters (it has no gradient); "
                "expected loss_fn(model(x), y) to be differentiable, not computed under torch.no_grad() "
                "or detached"
            )
        model.zero_grad(set_to_none=True)
        try:
            if callable(parts.metric):
                parts.evaluate()
            else:
                batch = _first_batch(parts.val_loader, f"{where}: val_loader")
                dataclasses.replace(parts, val_loader=[batch]).evaluate()
        except BatchError as exc:
            raise type(exc)(f"{where}: the first validation batch: {exc}") from exc.__cause__
        except (ValueError, TypeError) as exc:
            if str(exc).startswith("TaskParts: "):
                raise type(exc)(f"{where}: {exc}") from None
            raise
        if seed == 0 and "_probe" not in self.__dict__:
            # the build of seed 0 is the probe the task's properties read (epochs, optimizer, ...): one
            # factory call less. Nothing trains it: its model only ran this check (no optimizer step)
            self.__dict__["_probe"] = parts

    @cached_property
    def _probe(self) -> TaskParts:
        """A build of seed 0 (that :meth:`check` made, when it ran on seed 0), read for the task's
        properties only: never trained, nor handed out."""
        return self.build(0)

    @property
    def epochs(self) -> int:
        """The task's epoch budget."""
        return self._probe.epochs

    @property
    def steps_per_epoch(self) -> int:
        """Optimizer steps in one epoch."""
        return self._probe.epoch_steps

    @property
    def optimizer(self) -> str:
        """The optimizer the task trains with by default."""
        return self._probe.optimizer

    @property
    def optimizer_params(self) -> dict[str, Any]:
        """The task's own hyper-parameters of its optimizer (a copy; e.g. ``{"weight_decay": 0.5}``)."""
        return dict(self._probe.optimizer_params)

    @property
    def metric_name(self) -> str:
        return str(self._probe.metric_name)

    @property
    def higher_is_better(self) -> bool:
        return bool(self._probe.higher_is_better)

    def train_run(
        self,
        lr: float | None = None,
        *,
        epochs: int | None = None,
        seed: int = 0,
        schedule: Callable[[int], float] | None = None,
        optimizer: str | None = None,
        optimizer_params: Mapping[str, Any] | None = None,
    ) -> TrainRun:
        """Train from scratch for ``epochs`` (default: the task's) at constant ``lr``, or with the LR
        ``schedule(step)`` at each optimizer step, with ``optimizer`` and ``optimizer_params`` as
        :meth:`find_lr` takes them; evaluated once, at the end."""
        if (lr is None) == (schedule is None):
            raise ValueError(f"give exactly one of lr and schedule, got lr={lr!r}, schedule={schedule!r}")
        lr_value = None if lr is None else as_real(lr)
        if lr is not None and not (lr_value is not None and math.isfinite(lr_value) and lr_value > 0):
            raise ValueError(f"lr must be a finite number > 0, got {lr!r}")
        lr = lr_value
        parts = self.build(seed)
        n_epochs = check_int(parts.epochs if epochs is None else epochs, "epochs", 0)
        first = float(lr) if lr is not None else float(schedule(0))  # type: ignore[misc]
        opt = parts.make_optimizer(first, optimizer, dict(optimizer_params or {}))

        def set_lr(step: int) -> None:
            if schedule is not None:
                for g in opt.param_groups:
                    g["lr"] = float(schedule(step))

        if n_epochs == 0:
            return TrainRun(parts.evaluate(), [], False, 0)
        return train_loop(parts, opt, n_epochs, before_step=set_lr, evaluate_every_epoch=False)

    def train(
        self,
        lr: float | None = None,
        *,
        epochs: int | None = None,
        seed: int = 0,
        schedule: Callable[[int], float] | None = None,
        optimizer: str | None = None,
        optimizer_params: Mapping[str, Any] | None = None,
    ) -> float:
        """The final validation metric of :meth:`train_run`."""
        return self.train_run(
            lr,
            epochs=epochs,
            seed=seed,
            schedule=schedule,
            optimizer=optimizer,
            optimizer_params=optimizer_params,
        ).metric

    def find_lr(
        self,
        seed: int = 0,
        optimizer: str | None = None,
        *,
        optimizer_params: Mapping[str, Any] | None = None,
        **options: Any,
    ) -> FinderResult:
        """Run :func:`lrkit.finder.find_lr` on a fresh build of this task (``options`` are passed on),
        with ``optimizer`` (None: the task's) and ``optimizer_params`` (in place of the task's own
        hyper-parameters when ``optimizer`` is given, on top of them otherwise, as a lab strategy's)."""
        from lrkit.finder import find_lr

        parts = self.build(seed)
        opt = parts.make_optimizer(1e-3, optimizer, dict(optimizer_params or {}))
        options.setdefault("seed", seed)
        options.setdefault("max_grad_norm", parts.max_grad_norm)  # the test steps as training does
        return find_lr(parts.model, opt, parts.train_loader, parts.loss_fn, **options)
