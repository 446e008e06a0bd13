"""The PyTorch driver of the range test: exact restore, gradient accumulation, GradScaler and DDP.

:func:`find_lr` builds a ``step(lr) -> loss`` callback around a model, an optimizer, a data loader and a
loss function, and hands it to the framework-free core (:func:`lrkit.finder.core.range_test`).

What it guarantees:

* **Exact restore.** Parameters (and their ``.grad``), buffers (BatchNorm statistics, non-persistent ones
  too), every module's train/eval flag, the optimizer's state and param-group hyperparameters (and those
  of the optimizer it wraps: Lookahead's, ``ZeroRedundancyOptimizer``'s), the
  GradScaler, the sampler epoch, and the RNG states (Python, numpy, torch CPU and CUDA, the loader's own
  generator) are put back bit for bit, in place (the same tensor objects), when the test ends, diverges,
  raises or is interrupted.
* **One rung per optimizer step.** With ``accumulation_steps=k`` a rung is ``k`` micro-batches and one
  optimizer step; with ``batches_per_step=m`` it is ``m`` optimizer steps at the same LR. With a
  GradScaler, a step that the scaler skips (inf/nan gradients) is retried at the same LR with new batches.
* **DDP.** When ``torch.distributed`` is initialized, the rung's loss is averaged over all ranks, so
  every rank records the same curve, stops at the same rung and returns the same suggestion.
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import inspect
import math
import random
import warnings
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import Any

import numpy as np
import torch

from lrkit._checks import EpsUnderflow, as_real, eps_underflow, plain_number
from lrkit._forward import default_forward  # the rules of a batch, shared with lrkit.tasks
from lrkit._text import plural
from lrkit.adapters.torch import _step_flags
from lrkit.control.guard import WRAPPED
from lrkit.finder import core
from lrkit.finder._data import data_error, first_found, known_length
from lrkit.finder.escalation import FIXED_BATCHES, Plan, budget_steps, escalate
from lrkit.finder.escalation import epoch_steps as epoch_steps  # lrkit.auto's too
from lrkit.finder.result import FinderResult, warn_if_alike

__all__ = ["clip_gradients", "default_forward", "find_lr", "training_modes"]

Forward = Callable[[torch.nn.Module, Any], torch.Tensor]
#: the dtypes ``amp_dtype`` takes: those ``torch.autocast`` runs in (on the CPU and on CUDA)
AMP_DTYPES = (torch.bfloat16, torch.float16)
_budget = budget_steps  # lrkit.auto checks its budget with it (the same check as find_lr's)


def _to_device(obj: Any, device: torch.device) -> Any:
    if isinstance(obj, torch.Tensor):
        return obj.to(device, non_blocking=True)
    if isinstance(obj, tuple) and hasattr(obj, "_fields"):  # namedtuple
        return type(obj)(*(_to_device(o, device) for o in obj))
    if isinstance(obj, (tuple, list)):
        return type(obj)(_to_device(o, device) for o in obj)
    if isinstance(obj, Mapping):  # a dict, or a Hugging Face BatchEncoding
        return {k: _to_device(v, device) for k, v in obj.items()}
    return obj


class _Away:
    """A tensor's value kept on another device (a snapshot offloaded to the CPU) and where it lives."""

    __slots__ = ("device", "value")

    def __init__(self, value: torch.Tensor, device: torch.device) -> None:
        self.value, self.device = value, device


def _value(v: Any) -> Any:
    """The stored value of a copy (an offloaded copy's tensor where it is kept); ``copy_`` takes either."""
    return v.value if isinstance(v, _Away) else v


def _clone(v: Any, to: torch.device | None = None) -> Any:
    """A copy of ``v``; a tensor on another device than ``to`` (when given) is copied to ``to``."""
    if isinstance(v, _Away):
        return v.value.to(v.device, copy=True)
    if not isinstance(v, torch.Tensor):
        return copy.deepcopy(v)
    if to is not None and v.device != to:
        return _Away(v.detach().to(to, copy=True), v.device)
    return v.detach().clone()


def _put(container: dict[Any, Any], key: Any, saved: Any) -> None:
    """container[key] = saved, copying into the existing tensor when it can (keeps identity)."""
    cur = container.get(key)
    value = _value(saved)
    device = saved.device if isinstance(saved, _Away) else None
    if (
        isinstance(value, torch.Tensor)
        and isinstance(cur, torch.Tensor)
        and cur.shape == value.shape
        and cur.dtype == value.dtype
        and cur.device == (value.device if device is None else device)
    ):
        with torch.no_grad():
            cur.copy_(value)
    else:
        container[key] = _clone(saved)


def _restore_dict(target: dict[Any, Any], saved: dict[Any, Any]) -> None:
    for k in [k for k in target if k not in saved]:
        del target[k]
    for k, v in saved.items():
        _put(target, k, v)


def _generators(loader: Any) -> list[torch.Generator]:
    found: dict[int, torch.Generator] = {}
    for owner in (loader, getattr(loader, "sampler", None), getattr(loader, "batch_sampler", None)):
        g = getattr(owner, "generator", None)
        if isinstance(g, torch.Generator):
            found[id(g)] = g
        inner = getattr(owner, "sampler", None)
        g = getattr(inner, "generator", None)
        if isinstance(g, torch.Generator):
            found[id(g)] = g
    return list(found.values())


def _samplers_with_epoch(loader: Any) -> list[Any]:
    out = []
    for s in (
        getattr(loader, "sampler", None),
        getattr(getattr(loader, "batch_sampler", None), "sampler", None),
    ):
        if s is not None and hasattr(s, "set_epoch") and hasattr(s, "epoch") and s not in out:
            out.append(s)
    return out


def _offload_to(model: torch.nn.Module) -> torch.device | None:
    """Where to keep snapshot copies: the CPU when a parameter is elsewhere (a GPU's memory is the scarce
    one), else None (next to the tensors)."""
    return torch.device("cpu") if any(p.device.type != "cpu" for p in model.parameters()) else None


def _optimizer_chain(optimizer: torch.optim.Optimizer) -> list[torch.optim.Optimizer]:
    """``optimizer`` and the optimizers it wraps, outermost first (under :data:`WRAPPED`, as
    :func:`lrkit.adapters.torch._hookable` follows ``optimizer`` to find step hooks): a wrapper's own
    state (Lookahead's slow weights, its step counter) and the inner optimizer's (Adam's moments) both
    change at every step."""
    chain = [optimizer]
    for _ in range(8):  # wrappers of wrappers, but never a cycle
        inner = next(
            (
                o
                for o in (getattr(chain[-1], name, None) for name in WRAPPED)
                if isinstance(o, torch.optim.Optimizer) and all(o is not c for c in chain)
            ),
            None,
        )
        if inner is None:
            break
        chain.append(inner)
    return chain


class _Snapshot:
    """Everything the range test may change, copied so that :meth:`restore` puts it back exactly.

    ``lean``: only what a training step changes (parameters, buffers, optimizer state and groups; no
    gradients, which a restore then sets to None; no RNG), for the in-run ramp's ring of snapshots.
    ``to``: keep the copies on this device (e.g. the CPU for a model on a GPU).
    """

    def __init__(
        self,
        model: torch.nn.Module,
        optimizer: torch.optim.Optimizer,
        scaler: Any,
        loaders: list[Any],
        *,
        lean: bool = False,
        to: torch.device | None = None,
    ) -> None:
        # Module tensors by (module, dict, name): the object (identity) and a copy of its value.
        self.tensors: list[tuple[dict[str, Any], str, Any, Any]] = []
        self.modes = [(m, m.training) for m in model.modules()]
        covered: set[int] = set()
        params: dict[int, torch.nn.Parameter] = {}
        for m in model.modules():
            for store in (m._parameters, m._buffers):
                for name, t in store.items():
                    if t is not None:
                        self.tensors.append((store, name, t, _clone(t, to)))
                        covered.add(id(t))
        for group in optimizer.param_groups:
            for p in group["params"]:
                params[id(p)] = p
        for m in model.modules():
            for p in m._parameters.values():
                if p is not None:
                    params[id(p)] = p
        self.params = list(params.values())
        # a lean snapshot copies a parameter once (the module tensors above hold the model's)
        self.param_values = [None if lean and id(p) in covered else _clone(p, to) for p in self.params]
        self.grads = [
            (None, None) if lean or p.grad is None else (p.grad, _clone(p.grad, to)) for p in self.params
        ]
        self.optimizer = optimizer
        # every optimizer of a wrapper chain (Lookahead's inner one, ZeroRedundancyOptimizer's local one),
        # each state dict and param group once (a wrapper may share its inner one's): their copies, and
        # each optimizer's scalar attributes (a wrapper's step counter)
        chain = _optimizer_chain(optimizer)
        self.states: list[dict[Any, Any]] = []
        self.opt_state: dict[tuple[int, Any], dict[str, Any]] = {}  # (index in states, param): its state
        self.opt_groups: list[tuple[dict[str, Any], dict[str, Any]]] = []
        seen: set[int] = set()
        for opt in chain:
            if id(opt.state) not in seen:
                seen.add(id(opt.state))
                self.states.append(opt.state)
                i = len(self.states) - 1
                self.opt_state.update(
                    ((i, p), {k: _clone(v, to) for k, v in s.items()}) for p, s in opt.state.items()
                )
            for g in opt.param_groups:
                if id(g) not in seen:
                    seen.add(id(g))
                    self.opt_groups.append((g, {k: _clone(v) for k, v in g.items() if k != "params"}))
        self.opt_attrs = [
            (opt, {k: v for k, v in vars(opt).items() if type(v) in (bool, int, float)}) for opt in chain
        ]
        # the step hooks of lrkit schedulers following the optimizer: the test's steps are not the run's
        self.step_flags = [(f, f.copy()) for f in _step_flags(optimizer)]
        self.scaler = scaler
        self.scaler_state = None if scaler is None else {k: _clone(v) for k, v in vars(scaler).items()}
        self.lean = lean
        self.generators: list[tuple[torch.Generator, torch.Tensor]] = []
        self.epochs: list[tuple[Any, Any]] = []
        if lean:
            return
        self.rng_py = random.getstate()
        self.rng_np = np.random.get_state()
        self.rng_torch = torch.get_rng_state()
        cuda_ready = torch.cuda.is_initialized()  # type: ignore[no-untyped-call]
        self.rng_cuda = torch.cuda.get_rng_state_all() if cuda_ready else None
        self.generators = [(g, g.get_state()) for ld in loaders for g in _generators(ld)]
        self.epochs = [(s, s.epoch) for ld in loaders for s in _samplers_with_epoch(ld)]

    def restore_training_state(self) -> None:
        """Model, optimizer and scaler (between repeats and at the end)."""
        with torch.no_grad():
            for store, name, obj, value in self.tensors:
                store[name] = obj
                obj.copy_(_value(value))
            for param, value in zip(self.params, self.param_values, strict=True):
                if value is not None:
                    param.copy_(_value(value))
            for param, (obj, saved_grad) in zip(self.params, self.grads, strict=True):
                if obj is None or saved_grad is None:
                    param.grad = None
                else:
                    obj.copy_(_value(saved_grad))
                    param.grad = obj
        for m, flag in self.modes:
            m.training = flag
        for i, state in enumerate(self.states):
            for p in [p for p in state if (i, p) not in self.opt_state]:
                del state[p]
        for (i, p), saved in self.opt_state.items():
            state = self.states[i]
            if p not in state:
                state[p] = {}
            _restore_dict(state[p], saved)
        for group, saved in self.opt_groups:
            for k in [k for k in group if k != "params" and k not in saved]:
                del group[k]
            for k, v in saved.items():
                _put(group, k, v)
        for opt, attrs in self.opt_attrs:
            vars(opt).update(attrs)
        for step_flag, saved_flag in self.step_flags:
            step_flag.load(saved_flag)
        if self.scaler is not None and self.scaler_state is not None:
            _restore_dict(vars(self.scaler), self.scaler_state)

    def restore(self) -> None:
        if self.lean:
            raise RuntimeError("a lean snapshot holds no RNG state: use restore_training_state()")
        self.restore_training_state()
        random.setstate(self.rng_py)
        np.random.set_state(self.rng_np)
        torch.set_rng_state(self.rng_torch)
        if self.rng_cuda is not None:
            torch.cuda.set_rng_state_all(self.rng_cuda)
        for g, st in self.generators:
            g.set_state(st)
        for s, epoch in self.epochs:
            s.epoch = epoch


def _tensor_not_finite(leaf: Any) -> torch.Tensor | None:
    """``leaf`` when it is a floating (or complex) tensor that holds a value that is not finite."""
    if isinstance(leaf, torch.Tensor):
        numeric = leaf.is_floating_point() or leaf.is_complex()
        if numeric and leaf.layout == torch.strided and not bool(torch.isfinite(leaf).all()):
            return leaf
    return None


def _nonfinite(batch: Any, path: str = "batch") -> tuple[str, torch.Tensor] | None:
    """The first floating (or complex) tensor in ``batch`` (a tensor, or tuples, lists and mappings of
    them, in order) that holds a value that is not finite, as (its path, e.g. ``batch[0]``, the
    tensor); None when there is none."""
    return first_found(batch, _tensor_not_finite, path)


def _nonfinite_data_error(batch: Any, loss: float, where: str, previous: Any = None) -> ValueError | None:
    """When the loss of ``batch`` (``where``: which batch it was) is not finite: a ValueError naming the
    first value in the batch that is not finite (its tensor, its index, how many), which no learning
    rate fixes; None when the batch's floating tensors are all finite (the LR blew the model up), or
    when ``previous``, the batch before it, held such values too (the loss then takes them, as one that
    masks missing targets does, and it was finite on that one). The wording is every driver's
    (:func:`lrkit.finder._data.data_error`)."""
    found = _nonfinite(batch)
    if found is None or (previous is not None and _nonfinite(previous) is not None):
        return None
    path, t = found
    bad = ~torch.isfinite(t)
    first = tuple(int(i) for i in torch.nonzero(bad)[0].tolist())
    return data_error(where, path, t[first].item(), first, int(bad.sum()), t.numel(), loss, "torch.isfinite")


class _Cycle:
    """Batches from a loader, starting a new pass whenever it is exhausted; a sampler with an epoch
    (``DistributedSampler``) gets ``set_epoch(epoch + 1)`` first, as a training loop's next epoch
    would, else every pass would repeat the first one's order (the snapshot puts the epoch back).
    :meth:`check_loss` keeps the error of the first batch whose loss was not finite because its data
    is not (:func:`_nonfinite_data_error`) in ``bad``, for the rung to raise once it is over (under
    DDP, once every process has seen it: :func:`_rung_loss`)."""

    def __init__(self, loader: Iterable[Any], name: str) -> None:
        self.loader = loader
        self.name = name
        self.it: Iterator[Any] | None = None
        self.samplers = _samplers_with_epoch(loader)
        self.drawn = 0  # batches drawn in all: an iterator that yields none *after* some is one-shot
        self.index = -1  # the last batch's index in its pass over the loader
        self.previous: Any = None  # the batch drawn before the last one
        self.last: Any = None
        self.bad: ValueError | None = None

    def restart(self) -> None:
        self.it = iter(self.loader)
        self.index = -1

    def check_loss(self, batch: Any, loss: float) -> None:
        """``batch``, the last one drawn, had the loss ``loss``: when that is not finite and so is a value
        in the batch, keep the first such error in ``bad``. Only then is the batch read: the normal path
        costs nothing."""
        if self.bad is None and not math.isfinite(loss):
            where = f"batch {self.index} (counting from 0) of a pass over {self.name}"
            self.bad = _nonfinite_data_error(batch, loss, where, self.previous)

    def next(self) -> Any:
        if self.it is None:
            self.it = iter(self.loader)
            self.index = -1
        try:
            batch = next(self.it)
        except StopIteration:
            for s in self.samplers:
                s.set_epoch(s.epoch + 1)
            self.it = iter(self.loader)
            self.index = -1
            try:
                batch = next(self.it)
            except StopIteration:
                if self.drawn == 0:
                    raise ValueError(f"{self.name} yielded no batches") from None
                kind = type(self.loader).__name__
                raise ValueError(
                    f"{self.name} (a {kind}) ran out after {self.drawn} batches and a new pass over it "
                    "yielded none: it can be iterated only once (a generator or an iterator), and the "
                    "test goes on past its end (it cycles the loader; every repeat starts a new pass); "
                    "pass a loader that can be iterated again (a DataLoader, a list of batches) or an "
                    "endless generator"
                ) from None
        self.drawn += 1
        self.index += 1
        self.previous, self.last = self.last, batch
        return batch

    def close(self) -> None:
        self.it = None
        self.previous = self.last = None


def _ddp() -> tuple[bool, int]:
    dist = torch.distributed
    if dist.is_available() and dist.is_initialized():
        return True, dist.get_world_size()
    return False, 1


def _rank() -> int:
    """This process's rank under ``torch.distributed``; 0 without it."""
    return torch.distributed.get_rank() if _ddp()[0] else 0


#: under DDP, rank ``k`` seeds torch (and a loader's generator, unless its sampler shards by
#: ``set_epoch``) with ``seed + r + k * RANK_SEED_STRIDE`` (modulo 2**64): rank 0 as a single process does.
#: Odd and below 2**32 (2**32 * golden ratio): torch's CPU generator keeps only a seed's low 32 bits
RANK_SEED_STRIDE = 0x9E3779B9


def _shifted(seed: int, shift: int) -> int:
    """``seed + shift`` within torch's seeds (below 2**64); ``seed`` itself when ``shift`` is 0."""
    return seed if not shift else (seed + shift) % 2**64


def _mean_over_ranks(value: float, dev: torch.device, world: int, flag: bool = False) -> tuple[float, int]:
    """``value`` averaged over the ``world`` processes, and how many of them raised ``flag`` (every one
    gets the same two numbers, from one all-reduce)."""
    t = torch.tensor([value, float(flag)], dtype=torch.float64, device=dev)
    torch.distributed.all_reduce(t)
    return float(t[0].item()) / world, round(float(t[1].item()))


def _rung_loss(value: float, train: _Cycle, dev: torch.device, distributed: bool, world: int) -> float:
    """A rung's loss as the curve records it: ``value`` (under DDP averaged over the processes). When
    the rung met data that is not finite (``train.bad``, on any process), its ValueError instead: the
    process that met it raises that, the others one that points at it, so that none waits for another
    in a collective."""
    bad, train.bad = train.bad, None
    others = 0
    if distributed:
        value, flagged = _mean_over_ranks(value, dev, world, bad is not None)
        others = flagged - (bad is not None)
    if bad is not None:
        raise bad
    if others:
        raise ValueError(
            f"{plural(others, 'other process', 'other processes')} met data that is not finite in "
            f"{train.name} (this one's was finite): see the error it raised, which names the batch; no "
            "learning rate fixes this: clean the data"
        )
    return value


def _check_lr_fits(optimizer: torch.optim.Optimizer, ratios: Sequence[float], end_lr: float) -> None:
    """Refuse an ``end_lr`` that a param group's dtype cannot hold (torch raises mid-test otherwise)."""
    for ratio, group in zip(ratios, optimizer.param_groups, strict=True):
        for p in group["params"]:
            if p.dtype.is_floating_point and end_lr * ratio > torch.finfo(p.dtype).max:
                raise ValueError(
                    f"end_lr must be at most {torch.finfo(p.dtype).max / ratio:.3g}, the largest LR the "
                    f"{p.dtype} parameters can take, got {end_lr!r}"
                )


def _signature_parameter(fn: Any, name: str) -> inspect.Parameter | None:
    """``fn``'s parameter ``name`` (None when there is none or no signature to read)."""
    try:
        return inspect.signature(fn).parameters.get(name)
    except (TypeError, ValueError):
        return None


def _check_model_and_optimizer(model: Any, optimizer: Any) -> EpsUnderflow | None:
    """Refuse what cannot be range-tested; warn about an eps that is 0 in the parameters' dtype and
    return it (:func:`eps_underflow`: the verdict then names it, :meth:`FinderResult.blaming_eps`)."""
    if not isinstance(model, torch.nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    if not isinstance(getattr(optimizer, "param_groups", None), list) or not optimizer.param_groups:
        raise TypeError(f"optimizer must be a torch.optim.Optimizer with param groups, got {optimizer!r}")
    params = [p for g in optimizer.param_groups for p in g.get("params", ())]
    if not any(isinstance(p, torch.Tensor) and p.requires_grad for p in params):
        raise ValueError(
            f"optimizer {type(optimizer).__name__} has no parameter that requires grad "
            f"({len(params)} parameter(s), all frozen or none): the range test needs something to train; "
            "build the optimizer on the trainable parameters"
        )
    closure = _signature_parameter(getattr(optimizer, "step", None), "closure")
    if closure is not None and closure.default is inspect.Parameter.empty:
        raise TypeError(
            f"optimizer {type(optimizer).__name__}'s step() requires a closure (it evaluates the loss "
            "several times per step, as LBFGS does): the range test takes one loss per optimizer step; "
            "search the LR with a first-order optimizer (SGD, Adam...)"
        )
    underflow = eps_underflow(optimizer)
    if underflow is not None:  # a warning: an optimizer may keep its state in float32 (bitsandbytes')
        warnings.warn(
            f"{underflow}; no learning rate the range test tries can train it", UserWarning, stacklevel=3
        )
    own = {id(p) for p in model.parameters()}
    if own and not any(id(p) in own for p in params):
        raise ValueError(
            f"optimizer {type(optimizer).__name__} holds none of model's parameters: it was built for "
            "another model (a model created again after its optimizer?), so the test would step "
            "parameters the loss does not depend on; build the optimizer on model.parameters()"
        )
    return underflow


def _check_callables(loss_fn: Any, forward: Any, amp_dtype: Any) -> None:
    """``loss_fn`` and ``forward`` callable or None (a class is not: it wants an instance), ``amp_dtype``
    :data:`AMP_DTYPES` or None; else an error naming the argument."""
    if isinstance(loss_fn, type):
        raise TypeError(
            f"loss_fn must be a loss function or an instance, got the class {loss_fn.__name__}; "
            f"pass {loss_fn.__name__}() (or a function such as torch.nn.functional.cross_entropy)"
        )
    if loss_fn is not None and not callable(loss_fn):
        raise TypeError(f"loss_fn must be callable as loss_fn(output, target) or None, got {loss_fn!r}")
    if forward is not None and (isinstance(forward, type) or not callable(forward)):
        raise TypeError(f"forward must be callable as forward(model, batch) -> loss, got {forward!r}")
    if amp_dtype is not None and amp_dtype not in AMP_DTYPES:
        # torch.autocast runs in these only: float32 or float64 would disable it with a warning per rung
        raise TypeError(
            f"amp_dtype must be None, torch.bfloat16 or torch.float16 (the dtypes torch.autocast runs in), "
            f"got {amp_dtype!r}"
        )


def _check_loader(loader: Any, name: str) -> None:
    """``loader`` an iterable of batches, else a TypeError naming ``name``; a map-style ``Dataset`` given
    where batches are expected yields single samples: warn."""
    from torch.utils.data import Dataset, IterableDataset

    if isinstance(loader, (str, bytes)) or not (
        isinstance(loader, Iterable) or hasattr(type(loader), "__getitem__")
    ):
        raise TypeError(
            f"{name} must be an iterable of batches (a torch DataLoader, a list of (x, y) batches), "
            f"got {loader!r:.60} ({type(loader).__name__})"
        )
    if isinstance(loader, Dataset) and not isinstance(loader, IterableDataset):
        warnings.warn(
            f"{name} is a {type(loader).__name__}, a dataset: iterating it yields single samples, "
            "so every step of the test would train on one example; pass "
            f"torch.utils.data.DataLoader({name}, batch_size=...) instead",
            UserWarning,
            stacklevel=3,
        )


def _group_ratios(optimizer: torch.optim.Optimizer) -> list[float]:
    """Each param group's LR over the reference group's, :math:`r_i = \\eta_i / \\eta_{ref}`: the
    reference is the first group with LR > 0 (the one the ramp drives, whose LR the suggestion is). A
    group at LR 0 (frozen while fine-tuning, often the backbone listed first) has ratio 0 and stays at
    exactly 0. Every LR must be finite and >= 0, and one > 0; else a ValueError naming the values."""
    lrs = [float(g["lr"]) for g in optimizer.param_groups]
    for i, lr in enumerate(lrs):
        if not (math.isfinite(lr) and lr >= 0):
            raise ValueError(f"optimizer.param_groups[{i}]['lr'] must be a finite number >= 0, got {lr!r}")
    ref = next((lr for lr in lrs if lr > 0), None)
    if ref is None:
        raise ValueError(
            f"every param group's lr is 0 (optimizer.param_groups' lr: {lrs}): the range test ramps the "
            "first group with lr > 0 and keeps the others at their ratio to it (a group at 0 stays "
            "frozen), so at least one group must have lr > 0; give the groups to train any lr > 0 "
            "(only their ratios matter)"
        )
    return [lr / ref for lr in lrs]


def _autocast(dev: torch.device, amp_dtype: torch.dtype | None) -> contextlib.AbstractContextManager[Any]:
    """``torch.autocast`` on ``dev`` with ``amp_dtype``, or nothing when it is None."""
    if amp_dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device_type=dev.type, dtype=amp_dtype)


def _check_grad_scaler(grad_scaler: Any) -> None:
    if grad_scaler is not None and not all(hasattr(grad_scaler, a) for a in ("scale", "step", "update")):
        raise TypeError(f"grad_scaler must be a torch.amp.GradScaler, got {grad_scaler!r}")


def _schedule_free(optimizer: Any) -> bool:
    """A Schedule-Free optimizer (Defazio et al. 2024, the ``schedulefree`` package): its param groups
    hold its mode (``train_mode``), and ``train()`` / ``eval()`` move the parameters between the point
    where gradients are taken (train) and the average that is evaluated (eval)."""
    return (
        callable(getattr(optimizer, "train", None))
        and callable(getattr(optimizer, "eval", None))
        and any("train_mode" in g for g in optimizer.param_groups)
    )


def _adapts_own_step(optimizer: Any) -> bool:
    """Prodigy / D-Adaptation: the param groups hold the step size ``d`` the optimizer estimates
    itself (``lr`` only multiplies it, 1.0 by default)."""
    return any("d" in g and ("d0" in g or "growth_rate" in g) for g in optimizer.param_groups)


def training_modes(model: torch.nn.Module) -> Callable[[], None]:
    """How a search step puts ``model`` in training mode, as the user's loop would have it.

    A model handed over in train mode keeps every submodule's mode as given: a BatchNorm or Dropout
    that was set to ``.eval()`` to freeze it (fine-tuning a backbone) stays frozen, as in the training
    that follows. A model in eval mode (say after a validation pass) gets ``model.train()``, as a
    training loop's first line does (an overridden ``train()`` that keeps norms frozen is honoured).
    """
    if not model.training:

        def switch() -> None:
            model.train()

        return switch
    modes = [(m, m.training) for m in model.modules()]

    def as_given() -> None:
        for m, flag in modes:
            m.training = flag

    return as_given


def _schedule_free_train(optimizer: Any) -> None:
    """Before a training step: a Schedule-Free optimizer steps only in train mode, and its own
    ``warmup_steps`` would scale the LR the test sets (``lr * (k+1) / warmup_steps``), so it is set to
    0. Both are in every snapshot's param groups: a restore puts the user's mode and warmup back."""
    if not _schedule_free(optimizer):
        return
    for g in optimizer.param_groups:
        if g.get("warmup_steps"):
            g["warmup_steps"] = 0
    if not all(g.get("train_mode", True) for g in optimizer.param_groups):
        optimizer.train()


def _check_max_grad_norm(value: Any) -> float | None:
    """``max_grad_norm`` as a float, or None (no clipping); else a ValueError naming it."""
    if value is None:
        return None
    x = as_real(value)
    if x is None or not 0.0 < x < math.inf:
        raise ValueError(f"max_grad_norm must be a finite number > 0 or None (no clipping), got {value!r}")
    return x


def clip_gradients(optimizer: torch.optim.Optimizer, max_grad_norm: float, grad_scaler: Any = None) -> None:
    """Clip the global L2 norm of the optimizer's gradients to ``max_grad_norm``, as
    ``torch.nn.utils.clip_grad_norm_`` does in a training loop: ``g <- g * min(1, c / ||g||)``. With a
    ``grad_scaler`` the gradients are unscaled first (``grad_scaler.unscale_``), so ``c`` is in the
    units of the true gradient, as in PyTorch's AMP recipe."""
    if grad_scaler is not None:
        grad_scaler.unscale_(optimizer)
    params = [p for g in optimizer.param_groups for p in g["params"] if p.grad is not None]
    torch.nn.utils.clip_grad_norm_(params, max_grad_norm)


def _optimizer_step(
    optimizer: torch.optim.Optimizer,
    batches: _Cycle,
    loss_of: Callable[[Any], torch.Tensor],
    k_acc: int,
    grad_scaler: Any,
    no_sync: Callable[[], contextlib.AbstractContextManager[Any]] | None = None,
    max_grad_norm: float | None = None,
) -> tuple[float, bool]:
    """One optimizer step over ``k_acc`` micro-batches, each loss divided by ``k_acc`` (scaled by
    ``grad_scaler`` when given), the summed gradient clipped to ``max_grad_norm`` when given
    (:func:`clip_gradients`): (their mean loss, whether the scaler skipped the step). A Schedule-Free
    optimizer is put in train mode first (:func:`_schedule_free_train`)."""
    _schedule_free_train(optimizer)
    optimizer.zero_grad(set_to_none=True)
    total = 0.0
    for k in range(k_acc):
        ctx = no_sync() if (no_sync is not None and k < k_acc - 1) else contextlib.nullcontext()
        with ctx:
            batch = batches.next()
            loss = loss_of(batch)
            part = loss / k_acc
            if grad_scaler is not None:
                grad_scaler.scale(part).backward()
            else:
                part.backward()  # type: ignore[no-untyped-call]
        value = float(loss.detach())
        batches.check_loss(batch, value)  # data that is not finite is named when the rung is over
        total += value
    if max_grad_norm is not None:
        clip_gradients(optimizer, max_grad_norm, grad_scaler)
    if grad_scaler is None:
        optimizer.step()
        return total / k_acc, False
    before = float(grad_scaler.get_scale())
    grad_scaler.step(optimizer)
    grad_scaler.update()
    return total / k_acc, float(grad_scaler.get_scale()) < before


def _set_group_lrs(optimizer: torch.optim.Optimizer, ratios: list[float], lr: float) -> None:
    """Each group's LR to ``lr`` x its ratio (:func:`_group_ratios`: the reference group gets ``lr``, a
    group at LR 0 stays at 0); a tensor LR is filled in place."""
    for g, r in zip(optimizer.param_groups, ratios, strict=True):
        if isinstance(g["lr"], torch.Tensor):
            g["lr"].fill_(lr * r)
        else:
            g["lr"] = lr * r


def _resolve_device(model: torch.nn.Module, device: torch.device | str | None) -> torch.device:
    """``device`` (checked: a tensor can be made there), or the device of the model's first parameter."""
    if device is not None:
        try:
            dev = torch.device(device)
            torch.empty(0, device=dev)
        except (RuntimeError, AssertionError, TypeError, ValueError) as exc:
            raise ValueError(f"device={device!r} cannot be used on this machine ({exc})") from None
        return dev
    first = next(iter(model.parameters()), None)
    if first is None:
        raise ValueError("model has no parameters; the range test needs something to train")
    return first.device


def _scalar_loss(loss: Any) -> torch.Tensor:
    """The forward pass's loss as a 0-d tensor; a clear TypeError for anything else."""
    if not isinstance(loss, torch.Tensor) or loss.numel() != 1:
        hint = ""
        if isinstance(loss, torch.Tensor):
            hint = f" of shape {tuple(loss.shape)} (reduce it: reduction='mean')"
        elif isinstance(getattr(loss, "loss", None), torch.Tensor):
            hint = " (it has a .loss: return output.loss from forward)"
        elif isinstance(loss, dict) and isinstance(loss.get("loss"), torch.Tensor):
            hint = " (it has a 'loss' key: return output['loss'] from forward)"
        elif isinstance(loss, tuple) and loss and isinstance(loss[0], torch.Tensor) and loss[0].numel() == 1:
            hint = (
                " (its first item is a 1-element tensor: if your loss_fn returns (loss, logs), pass "
                "lambda out, y: loss_fn(out, y)[0])"
            )
        raise TypeError(
            f"the forward pass (loss_fn, or forward when given) must return the loss as a 1-element "
            f"tensor, got {type(loss).__name__}{hint}"
        )
    if torch.is_grad_enabled() and not loss.requires_grad:  # a training step's loss (not evaluate's)
        raise ValueError(
            "the loss does not depend on the model's parameters (it has no gradient, so backward() "
            "cannot train them): expected loss_fn(model(x), y) differentiable, not computed under "
            "torch.no_grad(), detached (.detach(), .item()) or rebuilt with torch.tensor(...)"
        )
    return loss.reshape(())


def find_lr(
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    train_loader: Iterable[Any],
    loss_fn: Callable[..., torch.Tensor] | None = None,
    *,
    start_lr: float = core.START_LR,
    end_lr: float = core.END_LR,
    num_steps: int = core.NUM_STEPS,
    mode: core.Mode = "exp",
    smoothing: float = core.SMOOTHING,
    diverge_factor: float | None = core.DIVERGE_FACTOR,
    diverge_patience: int = core.DIVERGE_PATIENCE,
    val_data: Iterable[Any] | None = None,
    batches_per_step: int = 1,
    accumulation_steps: int = 1,
    grad_scaler: Any = None,
    amp_dtype: torch.dtype | None = None,
    forward: Forward | None = None,
    device: torch.device | str | None = None,
    repeats: int = 3,
    seed: int = 0,
    rule: str = "lrkit",
    max_skipped: int = 20,
    planned_steps: int | None = None,
    budget: float | int | None = None,
    max_grad_norm: float | None = None,
) -> FinderResult:
    """Run the LR range test on a PyTorch model and restore everything afterwards.

    The reference param group's LR follows the ramp ``start_lr -> end_lr`` (``mode`` ``"exp"`` or
    ``"linear"``, ``num_steps`` rungs) and the suggestion is its LR: the reference is the first group
    with LR > 0 (group 0 unless it is at 0). The other groups keep their ratio to it: a group at LR 0
    (frozen while fine-tuning with discriminative LRs) stays at exactly 0 through every ramp, repeat
    and retry, so its weights do not move (torch.optim's updates, weight decay included, are scaled by the
    LR); the result says which group it is (:attr:`FinderResult.reference_group`). Each rung runs
    ``batches_per_step`` optimizer steps of ``accumulation_steps`` micro-batches each (the loss of every
    micro-batch is divided by ``accumulation_steps``) and records their mean loss, or the mean loss over
    ``val_data`` (a small fixed iterable of batches, evaluated under ``model.eval()`` and ``no_grad``)
    when that is given. ``train_loader`` (a ``DataLoader``, a list of batches, any iterable that can
    be iterated again, or an endless generator) is cycled when exhausted, and every repeat starts a new
    pass over it. The test steps in training mode as your loop would (:func:`training_modes`: a model
    given in train mode keeps the submodules you froze with ``.eval()`` frozen; one given in eval mode
    gets ``model.train()``); the modes are restored afterwards. Batches are moved to ``device`` (default: the
    device of the model's first parameter; the model itself is not moved). ``forward(model, batch) ->
    loss`` replaces :func:`default_forward` (for a Hugging Face-style model with labels in its dict
    batch, the default already returns ``model(**batch).loss``). With ``amp_dtype`` the forward pass
    runs under ``torch.autocast``; with ``grad_scaler`` (a ``torch.amp.GradScaler``) the backward pass
    is scaled and a skipped step is retried (at most ``max_skipped`` times in a row, then the test
    ends at that rung, its real loss recorded, and the result says the scaler skipped: :attr:`Curve.skipped
    <lrkit.finder.result.Curve.skipped>`). Each repeat ``r`` seeds torch (and the loader's generator) with
    ``seed + r`` (under DDP, rank ``k`` with ``seed + r + k * 2654435769``: each rank draws its own
    batches and dropout; a ``DistributedSampler``'s ``set_epoch(seed + r)``, and its loader's generator,
    are common to every rank), so repeats see different batch orders (when the loader shuffles: one
    that gives its batches in the same order every pass makes them alike, which a ``UserWarning`` and
    the result's :attr:`~FinderResult.notes` say) and dropout; see :class:`FinderResult` for the
    median suggestion, the interval and the trust verdict. ``repeats=3`` (the default; ``lrkit find``
    and ``lrkit.auto``'s separate test use it too) is what the trust verdict was calibrated at
    (``bench/results/finder_report.txt``). ``repeats=1`` costs a third, but gives no interval and
    cannot see repeats disagree: on the benchmark it trusted 5 suggestions below 0.95 of the best LR
    in 30 tests, three repeats 3 (a retry runs at least 2 repeats whatever the first test did). If
    your training clips gradients, pass its ``max_grad_norm``: every step of the test then clips alike
    (:func:`clip_gradients`), and a clipped run stays stable to a higher LR than an unclipped test
    would show.

    **Escalation.** The first test always runs as asked (``num_steps`` rungs, ``repeats`` repeats):
    with a clear signal the result is the same with or without a budget. With a compute budget, a test
    whose curves show no usable signal (flat, noisy, rising from the first rung, still falling at
    ``end_lr``, repeats that disagree) is then retried by itself: a lower ``start_lr`` / higher
    ``end_lr``, a ramp narrowed to below the LR where the loss blew up, twice the batches per rung, the
    loss on fixed batches instead of the training batch, more repeats; until the result is trusted or
    the budget is spent. The budget bounds the *extra* optimizer steps these retries add on top of the
    first test (a first test squeezed to fit a small budget has too few rungs to show anything). It
    counts optimizer steps (a rung of the fixed-batch loss counts its forward passes as 1/3 step
    each): ``budget`` an int is that many steps; a float in (0, 1] is that fraction of
    ``planned_steps`` (the optimizer steps of the planned training); by default, with
    ``planned_steps``, ``max(0.1 * planned_steps, one epoch)`` (``ceil(len(train_loader) /
    accumulation_steps)`` steps; a loader without a length has no epoch); without either
    there is no budget and no escalation. A retry is sized to the budget left (fewer rungs, down to 16,
    then fewer repeats). The result says what was tried (``escalation``) and how many steps it took
    (``steps`` in all, ``first_steps`` of them in the first test); when no signal was found within the
    budget its ``suggestion`` is None.

    **Data that is not finite.** When a batch's loss is not finite, its floating tensors are read (only
    then): one that holds NaN or inf ends the test with a ``ValueError`` naming the batch, the tensor and
    the index of the value, since no learning rate fixes it, rather than a curve that "blew up" at
    whatever LR the batch came. A batch whose data is finite (a model the LR blew up) ends the ramp as
    before, and so does one after a batch that held such values with a finite loss (a loss that masks
    missing targets). Under DDP every process raises (the one that met the batch names it).

    **Schedule-Free** optimizers (``schedulefree``) are put in train mode for the test's steps (eval
    mode, their averaged weights, for the ``val_data`` loss), with their own ``warmup_steps`` held at 0
    so the ramp's LR is the LR they step with; the mode and the warmup are restored with the rest.
    **Prodigy / D-Adaptation** estimate their own step size: the test then ramps the multiplier of
    that estimate, which is rarely what is wanted (a ``UserWarning`` says so).

    Example::

        result = find_lr(model, optimizer, loader, torch.nn.functional.cross_entropy, repeats=3)
        print(result.suggestion, result.interval, result.trusted)
    """
    underflow = _check_model_and_optimizer(model, optimizer)
    _check_callables(loss_fn, forward, amp_dtype)
    _check_loader(train_loader, "train_loader")
    if val_data is not None:
        _check_loader(val_data, "val_data")
    core.lr_ramp(start_lr, end_lr, num_steps, mode)  # checks the ramp's settings before any work
    start_lr, end_lr, num_steps = float(start_lr), float(end_lr), int(num_steps)  # numpy's as Python's
    if _adapts_own_step(optimizer):
        warnings.warn(
            f"optimizer {type(optimizer).__name__} estimates its own step size (param group key 'd'); "
            "its lr only multiplies that estimate (1.0 by default), so the range test ramps the "
            "multiplier, not the step size",
            UserWarning,
            stacklevel=2,
        )
    k_acc = core._check_int("accumulation_steps", accumulation_steps, 1)
    k_batches = core._check_int("batches_per_step", batches_per_step, 1)
    k_skip = core._check_int("max_skipped", max_skipped, 1)
    seed = core._check_int("seed", seed, 0)
    n_batches = known_length(train_loader)
    steps_per_epoch = None if n_batches is None else epoch_steps(n_batches, k_acc)
    allowed = budget_steps(plain_number(budget), plain_number(planned_steps), steps_per_epoch)
    _check_grad_scaler(grad_scaler)
    clip = _check_max_grad_norm(max_grad_norm)
    ratios = _group_ratios(optimizer)
    _check_lr_fits(optimizer, ratios, float(end_lr))
    dev = _resolve_device(model, device)
    distributed, world = _ddp()
    no_sync = getattr(model, "no_sync", None) if distributed else None
    run_forward: Callable[[Any], torch.Tensor]
    if forward is not None:
        user_forward = forward

        def run_forward(batch: Any) -> torch.Tensor:
            return user_forward(model, batch)
    else:

        def run_forward(batch: Any) -> torch.Tensor:
            return default_forward(model, batch, loss_fn)

    def loss_of(batch: Any) -> torch.Tensor:
        with _autocast(dev, amp_dtype):
            return _scalar_loss(run_forward(_to_device(batch, dev)))

    train = _Cycle(train_loader, "train_loader")
    train_modes = training_modes(model)

    def optimizer_step() -> tuple[float, bool]:
        return _optimizer_step(optimizer, train, loss_of, k_acc, grad_scaler, no_sync, clip)

    def evaluate(batches: Iterable[Any], label: str) -> float:
        # a Schedule-Free optimizer's evaluated weights are its average: eval mode, then back
        averaged = _schedule_free(optimizer)
        if averaged:
            optimizer.eval()  # type: ignore[attr-defined]
        model.eval()
        total, count, previous = 0.0, 0, None
        with torch.no_grad():
            for batch in batches:
                value = float(loss_of(batch))
                if not math.isfinite(value) and train.bad is None:  # raised once the rung is over
                    train.bad = _nonfinite_data_error(batch, value, f"{label} {count}", previous)
                total += value
                count += 1
                previous = batch
        train_modes()
        if averaged:
            optimizer.train()  # type: ignore[attr-defined]
        if count == 0:
            raise ValueError("val_data yielded no batches")
        return total / count

    batches_now = k_batches
    fixed: list[Any] | None = None

    def step(lr: float) -> float:
        _set_group_lrs(optimizer, ratios, lr)
        train_modes()
        total, done, skipped = 0.0, 0, False
        for _ in range(batches_now):
            for _attempt in range(k_skip):
                loss, skipped = optimizer_step()
                if not skipped:
                    break
            total += loss
            done += 1
            if skipped:  # max_skipped in a row: the rung's real loss, and the ramp ends here
                break
        value = total / done
        if val_data is not None and math.isfinite(value) and not skipped:
            value = evaluate(val_data, "val_data's batch")
        elif fixed is not None and math.isfinite(value) and not skipped:
            value = evaluate(fixed, "train_loader's fixed batch")
        value = _rung_loss(value, train, dev, distributed, world)
        if skipped:  # (under DDP every process's scaler skipped: the gradients are all-reduced)
            raise core.RungSkipped(value, k_skip)
        return value

    loaders = [train_loader] + ([val_data] if val_data is not None else [])
    snapshot = _Snapshot(model, optimizer, grad_scaler, loaders)

    def before_repeat(r: int) -> None:
        # every ramp, the first of a retry too, starts from the model the user gave (a retry after a
        # blow-up would otherwise start from diverged weights)
        snapshot.restore_training_state()
        # under DDP each rank draws its own batches and dropout, as its training does; a sampler with
        # set_epoch (DistributedSampler) shards one common order: its loader's seeds stay common
        shift = _rank() * RANK_SEED_STRIDE if world > 1 else 0
        sharded = _samplers_with_epoch(train_loader)
        torch.manual_seed(_shifted(seed + r, shift))
        for g in _generators(train_loader):
            g.manual_seed(_shifted(seed + r, 0 if sharded else shift))
        for s in sharded:
            s.set_epoch(seed + r)
        train.restart()

    def attempt(plan: Plan) -> FinderResult:
        nonlocal batches_now, fixed
        batches_now = plan.batches
        if plan.fixed and fixed is None:
            train.restart()
            fixed = [train.next() for _ in range(FIXED_BATCHES)]
        tested = plan.range_test(
            step,
            mode=mode,
            smoothing=smoothing,
            diverge_factor=diverge_factor,
            diverge_patience=diverge_patience,
            before_repeat=before_repeat,
            rule=rule,
            group_ratios=ratios,
        )
        return tested.blaming_eps(underflow)  # before escalation, which would retry a lower start_lr

    n_rep = core._check_int("repeats", repeats, 1)
    num_steps = core._check_int("num_steps", num_steps, 2)
    # the first test runs exactly as asked; the budget bounds only what escalation adds to it
    plan0 = Plan(float(start_lr), float(end_lr), num_steps, k_batches, n_rep, False, val_data is not None)
    try:
        result = escalate(attempt, plan0, allowed)
    finally:
        train.close()
        snapshot.restore()
    dataset = getattr(train_loader, "dataset", train_loader)
    if isinstance(dataset, torch.utils.data.IterableDataset):  # shuffled inside its stream, if at all
        result = dataclasses.replace(result, stream=True)
    warn_if_alike(result)  # a loader that does not shuffle: the repeats measured the same curve again
    return result
