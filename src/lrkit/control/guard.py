"""Divergence guard: roll back to the last good snapshot and cut the learning rate when the loss blows up.

A step *diverges* when its loss is NaN or infinite, or has stayed above ``threshold`` times the median
of the last ``window`` good losses for ``jump_steps`` steps in a row (one high batch is noise, a model
that got worse is high on every batch; while fewer than ``window`` are known, their lowest median so
far: :attr:`~DivergenceGuard.reference`; for a loss that has been negative, above that median by
``threshold - 1`` times the size of its losses, :attr:`~DivergenceGuard.scale`), or when a snapshot is
due and the model's parameters or buffers hold NaN/inf behind a finite loss (a NaN gradient in a part of
the model that the next batches do not use, such as an embedding row: a snapshot is never taken of a
broken model). The guard then
restores the model, the optimizer, the scheduler and the RNG state from its last in-memory snapshot (or,
when the recovery from that one failed, from the one before: a snapshot can hold the seed of a
divergence, such as a huge momentum behind a finite loss), multiplies the learning rate by ``factor`` (the
restored scheduler state does not undo a cut; by default nothing does: see ``regrow_after``), records a
:class:`DivergenceEvent`, and lets training go on. After ``max_recoveries`` recoveries in a row that
did not hold, it stops with a :class:`DivergenceError` that names the step and the learning rate. The
result is always a legitimate run: one that trained normally up to the snapshot and went on from there
with the lower LR.

A cut stays by default, even where the recovery held (a one-off bad batch whose replay is clean): the
guard cannot tell from one event a bad batch from an LR that is too high, and a cut that stays is the
safe answer to the second. ``regrow_after=N`` undoes one cut after ``N`` good steps at the cut LR, as
``torch.amp.GradScaler`` grows its scale back (never above the LR before the guard's cuts); a regrowth
that diverges again within its wait doubles the wait for the next one, so an LR that really is too high
is tried again ever more rarely (once in ``N``, ``2N``, ``4N``... steps) and the run settles at the
cut LR.

Call :meth:`DivergenceGuard.check` with the loss of each step *before* ``optimizer.step()``::

    guard = DivergenceGuard(model, optimizer, scheduler, factor=0.5, snapshot_every=50)
    step = 0
    while step < total_steps:
        x, y = batch(step)
        loss = loss_fn(model(x), y)
        loss.backward()
        if guard.check(loss, step):            # good: apply the update
            optimizer.step(); scheduler.step(); step += 1
        else:                                   # rolled back and cut: replay from the snapshot
            step = guard.resume_step
        optimizer.zero_grad()

A snapshot is taken at a step whose loss was checked (the model at the start of that step) every
``snapshot_every`` good steps: deep copies of ``model.state_dict()``, ``optimizer.state_dict()``, the
scheduler's and the ``scaler``'s ``state_dict()`` and the guard's own loss history; the model's buffers
(BatchNorm's running statistics, which the step's forward has already moved) and the torch RNG state
(CPU and every CUDA device) as they were when the step began, i.e. at the end of the previous
:meth:`~DivergenceGuard.check` (the first snapshot, with no check before it, takes the buffers as they
are). Replaying the same batches from :attr:`~DivergenceGuard.resume_step` therefore reproduces, bit for
bit, a run that trained to the snapshot and continued with the cut LR (draw the data order from its own
generator, or index it by step, so that it does not depend on the torch RNG between steps). A loop
that does not replay simply goes on with the next batch from the restored model.

Data-parallel training (DDP): under an initialized ``torch.distributed`` process group (of more than
one rank) the guard makes one decision for every rank. Each :meth:`~DivergenceGuard.check` all-reduces
(a sum, in float64) the rank's loss and, when a snapshot is due, a flag for NaN/inf in its parameters,
within the one host sync it pays anyway: the guard sees the mean loss over the ranks, so a NaN on one
rank (a poisoned batch) rolls every rank back to the same snapshot and the replicas stay one model.
Pass the local loss (an all-reduced one works too: its mean is itself). ``sync=False`` lets each rank
decide alone (ranks that train separate models); a ``DistributedDataParallel`` model's own process
group is used, or the ``sync`` one given. Without an initialized group, nothing is communicated.
Under FSDP2 (``fully_shard``: ``DTensor`` parameters) each rank checks and snapshots its own shards, and
``sync=False`` is refused (as with a ``ZeroRedundancyOptimizer``: a rank rolling back alone breaks the model).
A rank that fails alone stops every rank at once, rather than leave them waiting in a collective until
the group's timeout (30 minutes by default): a bad argument to ``check`` (a loss that is not a number
or a one-element tensor, a step that is not an int) is a flag in its all-reduce, and a snapshot or a
rollback (out of memory on one GPU) is followed by an all-reduce of a flag; the rank that failed raises
its own error, the others a ``RuntimeError`` naming it. The same all-reduce carries each rank's ``step``
and number of param groups: where they differ (a rank that passed another step, or added a group alone),
every rank raises a ``RuntimeError`` that names what differs. A rank that calls ``check`` once more or
once less than the others is caught so only where nothing else communicates between two checks (its next
check meets another step's); under DDP a backward's gradient all-reduce meets it instead, which the guard
cannot see. And a rank that stops calling ``check`` leaves the others waiting until the group's timeout.

Mixed precision: pass the unscaled loss. A step the ``torch.amp.GradScaler`` skips for inf gradients
has a finite loss: it is a good step to the guard, unless the scaler keeps skipping: ``max_skipped``
(32 by default) skipped steps in a row are a divergence, reason ``"scale"`` (rolled back and cut as a NaN
loss is, and at the end a :class:`DivergenceError` that names the skips and the scale), rather than a
run that trains nothing for the rest of its steps. A low scale alone is not one: a float16 run whose
gradients are large (a sum-reduced loss) trains at a scale below 1, and a scaler finding its scale from
65536 skips about log2(65536 / the scale it needs) steps in a row (16 to reach 1), while 32 halvings divide
the scale by 2**32, far below any scale that trains. No snapshot is taken just
after a skipped step (it would keep the fallen scale): the next step that follows an applied one takes
it. Give the scaler as ``scaler``: a snapshot keeps its
state (scale and growth tracker), a rollback restores it (not the scale that the overflows of a blow-up
halved, again and again) and ends the scaler's iteration. Without it, a rollback after
``scaler.unscale_(optimizer)`` (gradient clipping) leaves the scaler mid-iteration, and the next
``unscale_`` raises "unscale_() has already been called on this optimizer since the last update()".

Costs: ``float(loss)`` is one host sync per step; a snapshot copies the model and optimizer state (per
snapshot, and ``keep`` are kept: Adam 3x the parameter bytes, SGD with momentum 2x, plain SGD 1x) and
reads every parameter once to check that it is finite. ``snapshot_device="cpu"`` keeps the snapshots
in host memory (a rollback copies them back onto the devices the state was on);
:attr:`~DivergenceGuard.snapshot_bytes` says what they hold where. A rollback loads the optimizer's
state (``Optimizer.load_state_dict``), which puts new tensors in it: re-capture a CUDA graph after one.

Checkpoints: :meth:`~DivergenceGuard.state_dict` is the guard's own state as plain data that strict JSON
holds (its events, cuts, counters, regrowth wait, loss history and the phase of its snapshot cadence;
not the snapshots, copies of what the checkpoint holds already). Loaded into a new guard, the run goes
on as the one that never stopped would, but for a rollback before its first snapshot after the resume
(at the first good step), which goes back to that step rather than to an earlier snapshot.

``torch`` is imported only when a guard is built, so ``import lrkit.control`` does not import it.
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import math
import numbers
import statistics
import sys
import warnings
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, NoReturn, SupportsFloat

from .._checks import as_integer, as_measured, as_real, check_int, dtype_kind, eps_underflow
from .plateau import json_number, newer_format, number_from_json

if TYPE_CHECKING:  # pragma: no cover
    import torch

__all__ = ["DivergenceError", "DivergenceEvent", "DivergenceGuard"]


@dataclass(frozen=True)
class DivergenceEvent:
    """One divergence the guard handled.

    ``lr_before`` are the groups' LRs when the step diverged, ``lr_after`` those training resumes with
    (``lr_before`` times ``factor`` without a scheduler; the scheduler's LR of the snapshot step with
    the cut multiplier with one). ``recovery`` counts the recoveries in a row (1 for the first);
    ``action`` is ``"rollback"``, or ``"stop"`` for the one that raised :class:`DivergenceError`.
    """

    step: int
    loss: float
    # "nan", "inf", "jump", "params" (NaN/inf in the parameters behind a finite loss) or "scale" (the
    # GradScaler skipped max_skipped steps in a row: a finite loss and inf/NaN gradients)
    reason: str
    reference: float  # what a jump is measured against: DivergenceGuard.reference (nan: none yet)
    lr_before: tuple[float, ...]
    lr_after: tuple[float, ...]
    snapshot_step: int
    recovery: int
    action: str = "rollback"


#: how :class:`DivergenceError`'s advice names the settings it needs, in Python; a command line gives its
#: own spelling to :meth:`DivergenceError.advice` (``lrkit auto``: ``--max-grad-norm C``), and a remedy
#: whose setting it lacks is left out
PYTHON_SETTINGS: Mapping[str, str] = MappingProxyType(
    {"lr": "the learning rate", "max_recoveries": "max_recoveries"}
)
#: what :class:`DivergenceError` advises after failed recoveries, each naming its setting as ``{name}``
REMEDIES = ("lower {lr}", "raise {max_recoveries}", "clip the gradients ({max_grad_norm})")


class DivergenceError(RuntimeError):
    """Training kept diverging after ``max_recoveries`` recoveries; ``event`` is the last one.

    The model, optimizer and scheduler are left at the last good snapshot (``event.snapshot_step``).
    ``finding``: what happened, in one sentence; ``remedies``: what would help, spelled by
    :meth:`advice` (the message ends with them as Python names them). Pickled (raised in a worker
    process) or deep-copied, it keeps its message and every attribute, those of a subclass too.
    """

    def __init__(
        self,
        message: str,
        event: DivergenceEvent | None,
        events: list[DivergenceEvent],
        *,
        finding: str | None = None,
        remedies: tuple[str, ...] = (),
    ) -> None:
        super().__init__(message)
        self.event = event
        self.events = events
        self.finding = message if finding is None else finding
        self.remedies = remedies

    def __reduce__(self) -> tuple[Any, ...]:
        """Pickle (a worker process's error, ``copy.deepcopy``) without calling ``__init__``: the message
        through ``args``, every attribute (``event``, ``events``, ``finding``, ``remedies``, and those a
        subclass adds) through ``__dict__``, so a subclass with another ``__init__`` pickles as it is."""
        return (_new_error, (type(self), *self.args), self.__dict__)

    def advice(self, settings: Mapping[str, str] = PYTHON_SETTINGS) -> str:
        """The remedies whose settings ``settings`` spells, spelled so ("lower the learning rate or raise
        max_recoveries"); "" when none is left."""
        return _advise(self.remedies, settings)


def _new_error(cls: type[DivergenceError], *args: Any) -> DivergenceError:
    """An instance of ``cls`` with ``args`` and no ``__init__`` (its attributes come from the pickle)."""
    return cls.__new__(cls, *args)


def _advise(remedies: tuple[str, ...], settings: Mapping[str, str]) -> str:
    """The finder's phrasing of remedies (:func:`lrkit.finder.result._advice`): "a, b or c"."""
    from lrkit.finder.result import _advice

    return _advice(remedies, settings)


@dataclass
class _Held:
    """A copy of one optimizer-state tensor (on the snapshot device) and the device it came from."""

    tensor: torch.Tensor
    device: torch.device


@dataclass
class _Snapshot:
    step: int
    model: dict[str, Any]
    optimizer: dict[str, Any]  # its "state" tensors are _Held
    scheduler: dict[str, Any] | None
    rng: Any  # (cpu state, [cuda states]) or None
    history: deque[float]
    low: float  # the guard's lowest median of a short history (DivergenceGuard._low)
    scale: float  # DivergenceGuard.scale
    layout: tuple[int, ...]  # the parameter count of each optimizer group (see DivergenceGuard._layout)
    scaler: dict[str, Any] | None  # the GradScaler's state_dict ({} when it is disabled)


#: /2: strict JSON (a NaN or infinite loss by its name, no lowest median as None); /1 states (floats,
#: inf and NaN among them) still load
_STATE_FORMAT = "lrkit.guard/2"
_READ_FORMATS = ("lrkit.guard/1", _STATE_FORMAT)
#: DivergenceGuard.state_dict's counters (integers >= -1)
_STATE_COUNTS = ("in_a_row", "failed_at", "good_since_rollback", "since_snapshot", "high")
_STATE_KEYS = ("format", "events", "multiplier", "history", "low", "resume_step", *_STATE_COUNTS)
#: the most doublings of the wait before a regrowth (``backoff`` in the state): 2**64 x regrow_after
#: good steps is never reached
_MAX_BACKOFF = 64


def _event_state(event: DivergenceEvent) -> dict[str, Any]:
    """A :class:`DivergenceEvent` as strict JSON data: its LRs as lists, a NaN or infinite loss by its
    name (``"nan"``, ``"inf"``, ``"-inf"``), no ``reference`` yet (NaN) as None (:func:`json_number`)."""
    return {
        **dataclasses.asdict(event),
        "loss": json_number(event.loss),
        "reference": json_number(event.reference, absent=math.nan),
        "lr_before": [json_number(x) for x in event.lr_before],
        "lr_after": [json_number(x) for x in event.lr_after],
    }


def _event_from_state(data: Mapping[str, Any]) -> DivergenceEvent:
    """The :class:`DivergenceEvent` of :func:`_event_state`'s dict, or of an older lrkit's (NaN and
    infinite floats; a strict JSON writer makes them None: a loss not known, NaN)."""
    fields = {f.name for f in dataclasses.fields(DivergenceEvent)}
    if not isinstance(data, Mapping) or set(data) != fields:
        raise ValueError(f"an event must be a dict of {sorted(fields)}, got {data!r}")

    def lrs(key: str) -> tuple[float, ...]:
        return tuple(number_from_json(x, f"{key}[{i}]", "event ") for i, x in enumerate(data[key]))

    return DivergenceEvent(
        step=int(data["step"]),
        loss=number_from_json(data["loss"], "loss", "event ", absent=math.nan),
        reason=str(data["reason"]),
        reference=number_from_json(data["reference"], "reference", "event ", absent=math.nan),
        lr_before=lrs("lr_before"),
        lr_after=lrs("lr_after"),
        snapshot_step=int(data["snapshot_step"]),
        recovery=int(data["recovery"]),
        action=str(data["action"]),
    )


def _hold(obj: Any, device: torch.device | None) -> Any:
    """``obj`` with each tensor copied onto ``device`` (None: its own) as a :class:`_Held`."""
    import torch

    if isinstance(obj, torch.Tensor):
        t = obj.detach()
        return _Held(t.clone() if device is None else t.to(device, copy=True), t.device)
    if isinstance(obj, dict):
        return {k: _hold(v, device) for k, v in obj.items()}
    if type(obj) in (list, tuple):  # (a named tuple is deep-copied whole)
        return type(obj)(_hold(v, device) for v in obj)
    return copy.deepcopy(obj)


def _unhold(obj: Any) -> Any:
    """New tensors, on the devices they came from, for the :class:`_Held` in ``obj``."""
    if isinstance(obj, _Held):
        return obj.tensor.to(obj.device, copy=True)
    if isinstance(obj, dict):
        return {k: _unhold(v) for k, v in obj.items()}
    if type(obj) in (list, tuple):
        return type(obj)(_unhold(v) for v in obj)
    return copy.deepcopy(obj)


def _tensor_bytes(obj: Any, out: dict[str, int]) -> None:
    """Add the bytes of the tensors in ``obj`` to ``out``, by device."""
    import torch

    if isinstance(obj, _Held):
        obj = obj.tensor
    if isinstance(obj, torch.Tensor):
        out[str(obj.device)] = out.get(str(obj.device), 0) + obj.numel() * obj.element_size()
    elif isinstance(obj, dict):
        for v in obj.values():
            _tensor_bytes(v, out)
    elif isinstance(obj, (list, tuple)):
        for v in obj:
            _tensor_bytes(v, out)


def _int(name: str, v: object, low: int, high: int = sys.maxsize) -> int:
    """An integer in ``[low, high]`` (numpy's integers too)."""
    return check_int(v, name, low, high=high, where="DivergenceGuard: ", type_error=numbers.Real)


def _float(name: str, v: object, *, low: float, high: float | None = None) -> float:
    """A finite number > low (and < high): any real by lrkit's rule (numpy's, 0-d arrays and tensors)."""
    x = as_real(v)
    if x is None:
        raise TypeError(f"DivergenceGuard: {name} must be a number, got {type(v).__name__} {v!r}")
    if not (math.isfinite(x) and x > low and (high is None or x < high)):
        want = f"> {low:g}" + ("" if high is None else f" and < {high:g}")
        raise ValueError(f"DivergenceGuard: {name} must be a finite number {want}, got {v!r}")
    return x


#: the attributes under which a wrapper optimizer holds the one it wraps: accelerate's
#: ``AcceleratedOptimizer`` (``optimizer``), ``ZeroRedundancyOptimizer`` (``optim``), timm's
#: ``Lookahead`` (``_base_optimizer``), SAM-style wrappers (``base_optimizer``); here, where importing
#: needs no torch, for the guard, ``lrkit.torch``'s scheduler and the finder
WRAPPED = ("optimizer", "optim", "_base_optimizer", "base_optimizer")


def _reachable(obj: Any) -> list[Any]:
    """``obj`` and the optimizers it wraps (accelerate's ``.optimizer``, ZeRO's ``.optim``, timm's
    Lookahead's ``._base_optimizer``, SAM's ``.base_optimizer``)."""
    out: list[Any] = []
    while obj is not None and all(obj is not o for o in out) and len(out) < 8:
        out.append(obj)
        obj = next((o for o in (getattr(obj, n, None) for n in WRAPPED) if o is not None), None)
    return out


def _check_scheduler(scheduler: Any, optimizer: Any) -> None:
    """Refuse a ``scheduler`` the guard cannot cut (not an lrkit one) or that drives another optimizer."""
    if scheduler is None:
        return
    missing = [
        a for a in ("state_dict", "load_state_dict", "scale", "multiplier") if not hasattr(scheduler, a)
    ]
    if missing:
        inner = getattr(scheduler, "scheduler", None)  # accelerate's AcceleratedScheduler
        wraps = inner is not None and all(
            hasattr(inner, a) for a in ("state_dict", "load_state_dict", "scale", "multiplier")
        )
        hint = (
            "; it wraps an lrkit scheduler (accelerate's prepared scheduler passes on step() and "
            "state_dict() only): pass the wrapped one, its .scheduler"
            if wraps
            else "; torch's own schedulers recompute the LR and would undo the cut"
        )
        raise TypeError(
            f"DivergenceGuard: scheduler must be an lrkit.torch scheduler (with state_dict, "
            f"load_state_dict, multiplier and scale), got {type(scheduler).__name__} without "
            f"{', '.join(missing)}{hint}"
        )
    theirs = getattr(scheduler, "optimizer", None)
    if theirs is not None and not any(a is b for a in _reachable(theirs) for b in _reachable(optimizer)):
        raise ValueError(
            f"DivergenceGuard: the scheduler drives another optimizer ({type(theirs).__name__} "
            f"at {id(theirs):#x}) than the one given ({type(optimizer).__name__} at "
            f"{id(optimizer):#x}): its cuts would not reach the optimizer that is rolled back"
        )
    built, groups = _groups_of(scheduler), len(optimizer.param_groups)
    if built is not None and built != groups:
        raise ValueError(
            f"DivergenceGuard: the scheduler was built for {built} parameter groups, the optimizer has "
            f"{groups}: build the scheduler after adding groups (optimizer.add_param_group)"
        )


def _groups_of(scheduler: Any) -> int | None:
    """How many param groups an lrkit scheduler was built for (its ``schedules``: one per group); None
    for another scheduler or none."""
    schedules = getattr(scheduler, "schedules", None)
    return len(schedules) if isinstance(schedules, (tuple, list)) else None


def _zero_of(optimizer: Any) -> Any:
    """The ``torch.distributed.optim.ZeroRedundancyOptimizer`` that ``optimizer`` is or wraps, or None."""
    # a ZeroRedundancyOptimizer was built from that module, so it is imported already; importing it here
    # for everyone would cost 0.2-0.7 s and dozens of torch DeprecationWarnings (errors under -W error)
    zero = getattr(sys.modules.get("torch.distributed.optim"), "ZeroRedundancyOptimizer", None)
    if zero is None:
        return None
    return next((o for o in _reachable(optimizer) if isinstance(o, zero)), None)


def _lr_value(lr: Any) -> float:
    return float(lr.item()) if hasattr(lr, "item") else float(lr)


class DivergenceGuard:
    """Watch the loss; on NaN/inf or a jump, roll back to the last snapshot and cut the LR.

    Args:
        model: the ``torch.nn.Module`` being trained.
        optimizer: its ``torch.optim.Optimizer``.
        scheduler: an ``lrkit.torch`` scheduler (anything with ``state_dict``/``load_state_dict``, a
            settable ``multiplier`` and ``scale(factor)``), or None. With one, a cut is
            ``scheduler.scale(factor)`` on top of the multiplier in force before the rollback, so the
            schedule goes on, lower; without one, every param group's ``lr`` is multiplied by
            ``factor``. (torch's own schedulers recompute the LR from their own state and would undo a
            cut, so they are refused.)
        factor: the cut, ``0 < factor < 1``.
        threshold: a loss above ``threshold * reference`` (:attr:`reference`: the median of the last
            ``window`` good losses, its lowest value so far while there are fewer; if positive) for
            ``jump_steps`` steps in a row is a divergence. Once a good negative loss has been seen (GAN,
            WGAN, ELBO or NLL losses, whose ratios mean nothing), a loss above ``reference +
            (threshold - 1) * scale`` instead (:attr:`scale`: the size of the losses; the same test
            where ``scale`` is ``reference``), and none until ``window`` good losses give a scale.
            ``None`` checks NaN/inf only (in the loss, and in the parameters at each snapshot). ``> 1``.
        window: how many recent good losses the median is taken over.
        jump_steps: how many steps in a row the loss must stay above ``threshold * reference``. The
            updates of those steps are applied (they are rolled back if the jump is confirmed); a high
            loss is not added to the history and no snapshot is taken on it.
        snapshot_every: take a snapshot every this many good steps (the first at the first good step).
        max_recoveries: how many recoveries in a row may fail before :class:`DivergenceError` (0: stop
            at the first divergence). A recovery holds once training is past the step that diverged
            and has made ``snapshot_every`` good steps since the rollback.
        regrow_after: None (the default): a cut stays for the rest of the run. An integer ``N >= 1``:
            once the last recovery held, after ``N`` good steps since the last cut or regrowth, undo one
            cut (the guard's :attr:`multiplier` divided by ``factor``, never above 1; a scheduler's
            ``multiplier`` by as much, so a ``scheduler.scale(...)`` of your own stays). A divergence
            within the wait after a regrowth doubles the wait (``2N``, ``4N``...: an LR that is too
            high is tried ever more rarely); a regrowth that lasts its wait sets it back to ``N``.
        keep: how many snapshots are kept; a failed recovery drops the newest and goes one further back.
        restore_rng: restore the torch RNG state (CPU and CUDA) with the snapshot.
        sync: under an initialized ``torch.distributed`` group, make one decision for all ranks
            (True: the ``DistributedDataParallel`` model's group, else the default one; or the
            ``ProcessGroup`` given): the loss checked is ``sum(rank losses) / world_size`` and the
            parameters are broken when they are on any rank; a bad argument, a snapshot or a rollback
            that fails on one rank raises on every rank, and so do ranks that pass different steps or
            have different numbers of param groups. False: each rank decides on its own loss
            (ranks that train separate models). Nothing is communicated without an initialized group.
        scaler: the ``torch.amp.GradScaler`` of the loop, or None: its state is snapshotted and
            restored with the model's, and a rollback ends its iteration.
        max_skipped: with an enabled ``scaler``, the number of optimizer steps in a row that it skips
            (inf/NaN gradients behind a finite loss: its scale falls at each) at which the run is a
            divergence (reason ``"scale"``): it trains nothing. 32 by default, the count at which
            lrkit's torch scheduler warns that the optimizer is not stepping
            (:class:`~lrkit.adapters.torch.NoOptimizerStepWarning`): a scaler finding its scale skips
            about log2(65536 / the scale it needs) steps from its default 65536 (16 to reach 1, 20 to
            reach 0.0625), and 32 halvings divide the scale by 2**32, far below any scale that trains;
            it is not tuned to any benchmark. A scale below 1 alone is not a divergence (a sum-reduced
            loss can need one). Megatron-LM's dynamic scaler clamps at its minimum scale and keeps
            training; DeepSpeed's raises at its minimum (``raise_error_at_min_scale``). No snapshot is
            taken just after a skipped step, and a recovery holds only once the scaler steps again.
            ``None``: no check.
        snapshot_device: where the snapshots' model and optimizer state are kept (``"cpu"``: host
            memory, for a GPU near its limit); None keeps each tensor on its own device.

    >>> import torch
    >>> model = torch.nn.Linear(1, 1)
    >>> opt = torch.optim.SGD(model.parameters(), lr=0.1)
    >>> guard = DivergenceGuard(model, opt, snapshot_every=2)
    >>> [guard.check(loss, step) for step, loss in enumerate([1.0, 0.9, 0.8, float("nan")])]
    [True, True, True, False]
    >>> e = guard.events[0]
    >>> e.step, e.reason, e.snapshot_step, e.lr_before, e.lr_after, guard.resume_step
    (3, 'nan', 2, (0.1,), (0.05,), 2)
    >>> guard = DivergenceGuard(model, opt, snapshot_every=2, regrow_after=3)
    >>> [guard.check(loss, step) for step, loss in enumerate([1.0, 0.9, 0.8, float("nan")])]
    [True, True, True, False]
    >>> [guard.check(1.0, step) for step in range(2, 7)], guard.multiplier, opt.param_groups[0]["lr"]
    ([True, True, True, True, True], 1.0, 0.05)
    """

    def __init__(
        self,
        model: torch.nn.Module,
        optimizer: torch.optim.Optimizer,
        scheduler: Any = None,
        *,
        factor: float = 0.5,
        threshold: float | None = 4.0,
        window: int = 100,
        jump_steps: int = 5,
        snapshot_every: int = 100,
        max_recoveries: int = 3,
        regrow_after: int | None = None,
        keep: int = 2,
        restore_rng: bool = True,
        sync: bool | torch.distributed.ProcessGroup = True,
        scaler: torch.amp.GradScaler | None = None,
        max_skipped: int | None = 32,
        snapshot_device: str | torch.device | None = None,
    ) -> None:
        import torch

        if not isinstance(model, torch.nn.Module):
            raise TypeError(f"DivergenceGuard: model must be a torch.nn.Module, got {type(model).__name__}")
        if not isinstance(optimizer, torch.optim.Optimizer):
            raise TypeError(
                f"DivergenceGuard: optimizer must be a torch.optim.Optimizer, got {type(optimizer).__name__}"
            )
        _check_scheduler(scheduler, optimizer)
        if not isinstance(restore_rng, bool):
            raise TypeError(f"DivergenceGuard: restore_rng must be True or False, got {restore_rng!r}")
        if not isinstance(sync, bool) and not (
            torch.distributed.is_available() and isinstance(sync, torch.distributed.ProcessGroup)
        ):
            raise TypeError(
                "DivergenceGuard: sync must be True (one decision for all ranks under torch.distributed), "
                f"False (each rank decides alone) or a torch.distributed.ProcessGroup, got "
                f"{type(sync).__name__} {sync!r}"
            )
        if scaler is not None:
            missing = [a for a in ("state_dict", "load_state_dict", "update") if not hasattr(scaler, a)]
            if missing:
                raise TypeError(
                    f"DivergenceGuard: scaler must be a torch.amp.GradScaler (with state_dict, "
                    f"load_state_dict and update) or None, got {type(scaler).__name__} without "
                    f"{', '.join(missing)}"
                )
        self._zero = _zero_of(optimizer)
        if self._zero is not None and sync is False and self._zero.world_size > 1:
            raise ValueError(
                f"DivergenceGuard: sync=False with a ZeroRedundancyOptimizer over {self._zero.world_size} "
                "ranks: each rank holds a shard of one optimizer, and a rank that rolled back alone would "
                "break the model; leave sync=True (every rank rolls back together)"
            )
        if sync is False and any(_local(p) is not p for p in model.parameters()):
            raise ValueError(
                "DivergenceGuard: sync=False with a model whose parameters are DTensors (FSDP2's "
                "fully_shard, tensor parallelism): each rank holds a shard of one model, and a rank that "
                "rolled back alone would break it; leave sync=True (every rank rolls back together)"
            )
        self.snapshot_device = None if snapshot_device is None else _device(snapshot_device)
        underflow = eps_underflow(optimizer)
        if underflow is not None:  # a warning: an optimizer may keep its state in float32 (bitsandbytes')
            warnings.warn(
                f"DivergenceGuard: {underflow}; the guard would blame the learning rate",
                UserWarning,
                stacklevel=2,
            )
        self.model = model
        self.optimizer = optimizer
        self._scheduler = scheduler
        self.factor = _float("factor", factor, low=0.0, high=1.0)
        self.threshold = None if threshold is None else _float("threshold", threshold, low=1.0)
        self.window = _int("window", window, 1)
        self.jump_steps = _int("jump_steps", jump_steps, 1)
        self.snapshot_every = _int("snapshot_every", snapshot_every, 1)
        self.max_recoveries = _int("max_recoveries", max_recoveries, 0)
        self.regrow_after = (
            None
            if regrow_after is None
            else check_int(
                regrow_after,
                "regrow_after",
                1,
                where="DivergenceGuard: ",
                or_none=True,
                type_error=numbers.Real,
            )
        )
        self.keep = _int("keep", keep, 1)
        self.restore_rng = restore_rng
        self.sync = sync
        self.scaler = scaler
        self.max_skipped = None if max_skipped is None else _int("max_skipped", max_skipped, 1)
        # the scaler's scale at the last check (None: not known): a float where reading it costs no host
        # sync (on the CPU), else a copy of its scale tensor, compared with the next one on its device
        self._last_scale: float | torch.Tensor | None = None
        self._skips = 0  # steps in a row the scaler skipped (its scale fell between two checks)
        self._skipping = False  # the scaler skipped the last step (on any rank)
        self._history: deque[float] = deque(maxlen=self.window)
        self._low = math.inf  # the lowest median of the history while it held fewer than window losses
        self._signed = False  # a good negative loss was seen: jumps are measured in scale (see _bar)
        self._scale = 0.0  # DivergenceGuard.scale
        self._high = 0  # steps in a row above threshold * reference
        self._snapshots: deque[_Snapshot] = deque(maxlen=self.keep)  # oldest first
        self._resume_step: int | None = None
        self._since_snapshot = 0  # good steps since the last snapshot
        self._good_since_rollback = 0
        self._in_a_row = 0  # recoveries in a row that have not held yet
        self._failed_at = -1  # the step of the last divergence
        self._events: list[DivergenceEvent] = []
        self._multiplier = 1.0
        self._since_change = 0  # good steps since the last cut or regrowth (-1 after a cut, as above)
        self._backoff = 0  # how many times the wait before a regrowth has doubled
        self._regrown = False  # the last change was a regrowth whose wait has not passed yet
        self._dropped = ""  # why the snapshots were dropped ("": they were not)
        self._keep_phase = False  # loaded from a state_dict: the first snapshot keeps the cadence's phase
        self._rng_at_start = self._rng_state()  # the RNG as the next step begins
        self._buffers_at_start: dict[str, torch.Tensor] | None = None  # its buffers (None: unknown yet)

    @property
    def scheduler(self) -> Any:
        """The scheduler the guard restores and cuts (None: it cuts the groups' ``lr``).

        Give it a new one when you rebuild the scheduler (after ``optimizer.add_param_group``: a new
        scheduler over every group, then ``new.set_step(old.last_epoch)``): ``guard.scheduler = new``.
        It is checked as the constructor's is; one still at ``multiplier`` 1 takes the old one's (the
        guard's cuts stay in force); the snapshots taken with the old one are dropped, and the next
        good step takes a new one.
        """
        return self._scheduler

    @scheduler.setter
    def scheduler(self, new: Any) -> None:
        _check_scheduler(new, self.optimizer)
        old = self._scheduler
        if new is old:
            return
        if old is not None and new is not None and _lr_value(new.multiplier) == 1.0:
            new.multiplier = _lr_value(old.multiplier)
        self._scheduler = new
        if self._snapshots:  # they hold the old one's state
            self._drop("the scheduler was replaced (guard.scheduler = ...)")

    # -- what a loop reads ---------------------------------------------------------------------------
    @property
    def events(self) -> list[DivergenceEvent]:
        """Every divergence handled so far, in order (a copy)."""
        return list(self._events)

    @property
    def resume_step(self) -> int | None:
        """The step of the snapshot the last rollback restored (where a loop replays from)."""
        return self._resume_step

    @property
    def multiplier(self) -> float:
        """The product of the guard's cuts in force (1.0 when none; ``regrow_after`` undoes them)."""
        return self._multiplier

    @property
    def regrow_wait(self) -> int | None:
        """How many good steps since the last cut or regrowth the next regrowth waits for
        (``regrow_after`` times 2 per regrowth that diverged again; None without ``regrow_after``)."""
        return None if self.regrow_after is None else self.regrow_after << self._backoff

    @property
    def snapshot_bytes(self) -> dict[str, int]:
        """The bytes of the tensors the kept snapshots hold, by device (``{"cuda:0": ..., "cpu": ...}``)."""
        out: dict[str, int] = {}
        for snap in self._snapshots:
            _tensor_bytes([snap.model, snap.optimizer, snap.scheduler, snap.rng], out)
        return out

    @property
    def reference(self) -> float:
        """What a jump is measured against: the median of the last ``window`` good losses (nan before
        the first); while the history holds fewer, the lowest median it has had, so that it cannot rise:
        a model that gets worse by less than ``threshold`` x a step would drag the median of a few losses
        up with it. A rollback restores the snapshot's (its history and lowest median)."""
        if not self._history:
            return math.nan
        median = statistics.median(self._history)
        return median if len(self._history) >= self.window else min(median, self._low)

    @property
    def scale(self) -> float:
        """The size a jump of a loss that has been negative is measured in (see ``threshold``): the largest
        median of the absolute values of ``window`` good losses so far, since the first negative loss
        (0.0 until a full window of them). It cannot fall: a loss that crosses zero has phases where it
        stays near it, where its size says nothing of the size of its healthy swings. A rollback
        restores the snapshot's."""
        return self._scale

    def __repr__(self) -> str:
        """The settings (``regrow_after``, ``restore_rng``, ``sync`` and ``snapshot_device`` only where they
        are not the defaults; a process group by its type) and where the guard stands: its multiplier and
        how many events it had. Not the model, optimizer and scheduler it watches."""
        settings = [
            f"factor={self.factor!r}",
            f"threshold={self.threshold!r}",
            f"window={self.window}",
            f"jump_steps={self.jump_steps}",
            f"snapshot_every={self.snapshot_every}",
            f"max_recoveries={self.max_recoveries}",
            f"keep={self.keep}",
        ]
        if self.regrow_after is not None:
            settings.append(f"regrow_after={self.regrow_after}")
        if not self.restore_rng:
            settings.append("restore_rng=False")
        if self.sync is not True:
            settings.append(f"sync={self.sync if self.sync is False else type(self.sync).__name__}")
        if self.snapshot_device is not None:
            settings.append(f"snapshot_device={str(self.snapshot_device)!r}")
        state = f"multiplier={self._multiplier:g}, events={len(self._events)}"
        return f"{type(self).__name__}({', '.join(settings)}, {state})"

    # -- checkpoints ---------------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        """The guard's own state, plain data (``torch.save`` / ``torch.load(weights_only=True)`` or strict
        JSON carry it: a NaN or infinite event loss is written ``"nan"``, ``"inf"`` or ``"-inf"``, the
        lowest median and an event's reference before there is one as None): its events, the product of
        its cuts (``multiplier``), the recoveries in a row and their counters, where the regrowth of a
        cut stands (``since_change``, ``backoff``, ``regrown``), the loss history a jump
        is measured against (and :attr:`scale`), and how many good steps the last snapshot lies behind
        (the snapshots' cadence). Not the snapshots themselves (copies of the model and optimizer,
        which the checkpoint holds once already): a guard that loads this state takes its first snapshot
        at its first good step, then goes on at the saved cadence, so its later snapshots are those of
        the run that never stopped. ``snapshot_every``, ``regrow_after`` and the other settings are for
        the reader; the guard that loads the state keeps its own (a new ``regrow_after`` applies to the
        saved counters)."""
        return {
            "format": _STATE_FORMAT,
            "events": [_event_state(e) for e in self._events],
            "multiplier": self._multiplier,
            "in_a_row": self._in_a_row,
            "failed_at": self._failed_at,
            "good_since_rollback": self._good_since_rollback,
            "since_snapshot": self._since_snapshot,
            "resume_step": self._resume_step,
            "history": list(self._history),
            "low": json_number(self._low, absent=math.inf),
            "signed": self._signed,
            "scale": self._scale,
            "high": self._high,
            "since_change": self._since_change,
            "backoff": self._backoff,
            "regrown": self._regrown,
            "snapshot_every": self.snapshot_every,
            "regrow_after": self.regrow_after,
        }

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Restore a :meth:`state_dict` (after the model, optimizer, scheduler and RNG state of the same
        checkpoint: the RNG as it is now is what the first snapshot keeps). The snapshots this guard
        holds are dropped: they are not of the run resumed. Every value is checked before anything
        changes (``ValueError`` naming the key; a state of a later format says it was written by a newer
        lrkit). The NaN and infinite floats of an older lrkit's state load as their names do; its state
        without regrowth counters as one where no cut was regrown (a cut stayed there). A
        scheduler whose ``multiplier`` differs from the state's (its own state not loaded yet: it holds
        the guard's cuts) is warned about, naming both."""
        if not isinstance(state, Mapping):
            raise TypeError(
                f"DivergenceGuard.load_state_dict: state must be a dict from state_dict(), got "
                f"{type(state).__name__}"
            )
        fmt = state.get("format")
        known = " or ".join(map(repr, _READ_FORMATS))
        if newer_format(fmt, _STATE_FORMAT):
            raise ValueError(
                f"DivergenceGuard.load_state_dict: the state was written by a newer lrkit (format {fmt!r}; "
                f"this lrkit reads {known}): load it with that lrkit, or upgrade this one"
            )
        missing = sorted(set(_STATE_KEYS) - set(state))
        if missing or fmt not in _READ_FORMATS:
            raise ValueError(
                f"DivergenceGuard.load_state_dict: not a DivergenceGuard state_dict() (format "
                f"{fmt!r}, expected {known}; missing {missing or 'nothing'})"
            )
        where = "DivergenceGuard.load_state_dict: "
        try:
            events = [_event_from_state(e) for e in state["events"]]
            history = [float(v) for v in state["history"]]
            resume = state["resume_step"]
            counts = {k: check_int(state[k], k, -1, where=where) for k in _STATE_COUNTS}
            multiplier = _float("multiplier", state["multiplier"], low=0.0, high=math.inf)
            low = number_from_json(state["low"], "low", "", absent=math.inf)
            if math.isnan(low):
                raise ValueError(f"low must be a number, or None before any median, got {state['low']!r}")
            # (a state of an older lrkit has neither: what its history shows)
            signed = state.get("signed", any(v < 0.0 for v in history))
            if not isinstance(signed, bool):
                raise TypeError(f"signed must be True or False, got {signed!r}")
            scale = float(state.get("scale", 0.0))
            if not (math.isfinite(scale) and scale >= 0.0):
                raise ValueError(f"scale must be a finite number >= 0, got {scale!r}")
            resume_step = None if resume is None else check_int(resume, "resume_step", 0, where=where)
            # (an older lrkit's state: no cut was ever regrown, so its cuts date from its last rollback)
            since_change = check_int(
                state.get("since_change", counts["good_since_rollback"]), "since_change", -1, where=where
            )
            backoff = check_int(state.get("backoff", 0), "backoff", 0, high=_MAX_BACKOFF, where=where)
            regrown = state.get("regrown", False)
            if not isinstance(regrown, bool):
                raise TypeError(f"regrown must be True or False, got {regrown!r}")
        except (TypeError, KeyError, ValueError) as exc:
            raise ValueError(f"{where}a corrupt state: {exc}") from None
        self._events = events
        self._history = deque(history, maxlen=self.window)
        self._low = low
        self._signed, self._scale = signed, scale
        self._multiplier = multiplier
        self._resume_step = resume_step
        self._in_a_row, self._failed_at = counts["in_a_row"], counts["failed_at"]
        self._good_since_rollback, self._high = counts["good_since_rollback"], counts["high"]
        self._since_snapshot = counts["since_snapshot"]
        self._since_change, self._backoff, self._regrown = since_change, backoff, regrown
        self._snapshots.clear()
        self._keep_phase = True  # the first snapshot (due at once) keeps the saved cadence
        self._dropped = ""
        self._rng_at_start = self._rng_state()
        self._buffers_at_start = None
        self._last_scale, self._skips, self._skipping = None, 0, False  # counted again from here
        theirs = None if self.scheduler is None else _lr_value(self.scheduler.multiplier)
        # a scheduler still at 1 under a state with cuts: its own state was not loaded (one the user
        # scaled by hand, scheduler.scale(), holds their factor too, and is not compared)
        if theirs == 1.0 and not math.isclose(multiplier, 1.0, rel_tol=1e-9):
            warnings.warn(
                f"DivergenceGuard.load_state_dict: the state's multiplier (the product of the guard's cuts) "
                f"is {multiplier:g}, but the scheduler's is {theirs:g}: the scheduler's own state holds the "
                "cuts in force; load it (scheduler.load_state_dict) before the guard's, or the run goes on "
                "at another LR than the one saved",
                RuntimeWarning,
                stacklevel=2,
            )

    # -- the check -----------------------------------------------------------------------------------
    def check(self, loss: SupportsFloat, step: int) -> bool:
        """Take the loss of ``step`` (before ``optimizer.step()``); True when the step may go on.

        False: the step diverged; the model, optimizer, scheduler and RNG are back at the snapshot of
        step :attr:`resume_step` and the LR is cut; skip this update. Raises :class:`DivergenceError`
        after ``max_recoveries`` recoveries in a row that failed.
        """
        import torch

        group = self._group()
        problem: TypeError | None = None  # a bad argument (under a group, every rank hears of it first)
        mine: torch.Tensor | None = None
        fell = self._watch_scale()  # whether the scale fell since the last check (a bool or a 0-d tensor)
        skipped = False
        try:
            step = _step(step)
            if group is None:
                broken = None  # the params are checked below, if need be
                if fell is None or isinstance(fell, bool):
                    value, skipped = _loss(loss, None), bool(fell)
                elif isinstance(loss, torch.Tensor) and loss.device == fell.device:
                    # the loss and the skip in one host sync
                    value, skip = torch.stack([_loss(loss, None, fell.device), fell]).tolist()
                    skipped = skip > 0
                else:
                    value, skipped = _loss(loss, None), bool(fell)
            else:
                mine = _loss(loss, group)  # a tensor on the collective's device: no host sync yet
        except TypeError as exc:
            if group is None:
                raise
            problem = exc
        self._drop_stale()
        if group is not None:
            value, broken, skipped = self._reduce(mine, group, problem, None if problem else step, fell)
        if fell is not None:
            self._skips = self._skips + 1 if skipped else 0
            self._skipping = skipped
        reason = "nan" if math.isnan(value) else "inf" if math.isinf(value) else ""
        if not reason and self.max_skipped is not None and self._skips >= self.max_skipped:
            reason = "scale"  # the scaler has skipped step after step: nothing trains
        bar = self._bar()
        if not reason and bar is not None and value > bar:
            self._high += 1
            if self._high >= self.jump_steps:
                reason = "jump"
        else:
            self._high = 0
        if (
            not reason
            and not self._high
            and self._snapshot_due()
            and (broken if broken is not None else not self._model_is_finite())
        ):
            reason = "params"  # a snapshot is due, of a model that is already broken
        if reason:
            self._recover(step, value, reason, group)
            return False
        if not self._high:  # a high loss that is not (yet) a jump: applied, but neither kept nor snapshotted
            self._good(step, value, group)
        if self._snapshot_due():
            # the next step may be snapshotted: note its RNG and buffers before its forward changes them
            self._rng_at_start = self._rng_state()
            self._buffers_at_start = self._buffers()
        return True

    def _scale_tensor(self) -> torch.Tensor | None:
        """The enabled scaler's scale as a tensor (no host sync where the scaler has one: torch's
        ``_get_scale_async``), or None (no scaler, a disabled one, or none made yet)."""
        import torch

        scaler = self.scaler
        if scaler is None or not getattr(scaler, "is_enabled", lambda: True)():
            return None
        get_async = getattr(scaler, "_get_scale_async", None)
        t = get_async() if get_async is not None else None
        if isinstance(t, torch.Tensor):
            return t
        get = getattr(scaler, "get_scale", None)
        return None if get is None else torch.tensor(float(get()), dtype=torch.float64)

    def _watch_scale(self) -> bool | torch.Tensor | None:
        """Whether the enabled scaler's scale fell since the last check (``scaler.update`` lowers it
        only when it skips the step, for inf/NaN gradients): a bool where the scale is on the CPU
        (reading it there is no host sync), else a 0-d float64 tensor on the scale's device, not read
        yet (the caller reads it with the loss: no host sync of its own); None where there is no scale
        to watch."""
        import torch

        scale = self._scale_tensor()
        if scale is None:
            return None
        last = self._last_scale
        if not _syncs(scale.device):
            now = float(scale.reshape(-1)[0])
            self._last_scale = now
            return isinstance(last, float) and now < last
        self._last_scale = scale.detach().clone()
        if not isinstance(last, torch.Tensor) or last.device != scale.device:
            return torch.zeros((), dtype=torch.float64, device=scale.device)
        return (scale < last).to(torch.float64).reshape(())

    def _scale_finding(self) -> str:
        """What a ``"scale"`` divergence is, in words: the skips and the scale (read here: an error path)."""
        skips = f"{self._skips} optimizer steps" if self._skips != 1 else "1 optimizer step"
        scale = self._last_scale
        value = scale if scale is None or isinstance(scale, float) else float(scale.reshape(-1)[0])
        now = "" if value is None else f", its scale fell to {value:.3g}"
        return (
            f"the GradScaler skipped {skips} in a row{now} (inf/NaN gradients behind a finite loss: a "
            f"skipped step trains nothing; max_skipped={self.max_skipped})"
        )

    def _bar(self) -> float | None:
        """The loss above which a step is high (None: no jump test): ``threshold`` x :attr:`reference`,
        or, once a good negative loss has been seen, :attr:`reference` + ``(threshold - 1)`` x
        :attr:`scale`."""
        ref = self.reference
        if self.threshold is None or math.isnan(ref):  # no history yet
            return None
        if not self._signed:
            return self.threshold * ref if ref > 0.0 else None
        return ref + (self.threshold - 1.0) * self._scale if self._scale > 0.0 else None

    def _snapshot_due(self) -> bool:
        """Whether the next good step is snapshotted."""
        return not self._snapshots or self._since_snapshot + 1 >= self.snapshot_every

    def _finite_flags(self) -> list[torch.Tensor]:
        """One flag per device: whether its floating-point parameters and buffers are all finite. Of a
        ``DTensor`` (FSDP2's ``fully_shard``, tensor parallelism), this rank's shard: the all-reduce of
        :meth:`_reduce` combines the ranks' flags."""
        import torch

        flags: dict[Any, list[torch.Tensor]] = {}
        for t in self.model.state_dict().values():
            t = _local(t)
            if isinstance(t, torch.Tensor) and (t.is_floating_point() or t.is_complex()):
                flags.setdefault(t.device, []).append(torch.isfinite(t).all())
        return [torch.stack(fs).all() for fs in flags.values()]

    def _model_is_finite(self) -> bool:
        """Whether every floating-point parameter and buffer is finite (one host sync per device)."""
        return all(bool(f) for f in self._finite_flags())

    def _group(self) -> Any:
        """The process group the decision is shared over, or None (no sync, no group, one rank)."""
        if self.sync is False:
            return None
        import torch.distributed as dist

        if not (dist.is_available() and dist.is_initialized()):
            return None
        group = self.sync if not isinstance(self.sync, bool) else getattr(self.model, "process_group", None)
        if not isinstance(group, dist.ProcessGroup):  # not a DistributedDataParallel model
            group = dist.group.WORLD
        return group if dist.get_world_size(group) > 1 else None

    def _reduce(
        self,
        t: torch.Tensor | None,
        group: Any,
        problem: TypeError | None,
        step: int | None,
        fell: bool | torch.Tensor | None,
    ) -> tuple[float, bool, bool]:
        """The mean over the ranks of the loss ``t``, whether any rank's model is broken (when a
        snapshot is due; else False) and whether any rank's scaler skipped the last step (``fell``, a
        0-d tensor from :meth:`_watch_scale`, or None): one all-reduce (a sum) of eight float64 numbers,
        one host sync.

        The fourth counts the ranks whose ``check`` got a bad argument (``problem``; ``t`` is None there):
        then every rank raises (:meth:`_stop_together`), none is left waiting for another in a
        collective. The last four are ``x`` and ``x**2`` for the ``step`` and for the number of param
        groups (``x`` taken modulo 2**16, so that the sums stay exact integers in float64 up to 2**21
        ranks): the ranks agree iff ``world_size * sum(x**2) == sum(x)**2``, which every rank computes
        from the same sums, so every rank raises together (:meth:`_out_of_step`) where they do not."""
        import torch
        import torch.distributed as dist

        device = t.device if t is not None else _collective_device(group, None)
        zero = torch.zeros((), dtype=torch.float64, device=device)
        bad = zero.clone()
        if self._snapshot_due():  # the params are checked before the snapshot, on every rank alike
            for f in self._finite_flags():
                bad += (~f).to(device, torch.float64)
        mine = [] if step is None else [step, len(self.optimizer.param_groups)]
        ints = [v for x in mine for v in (x % _MOD, (x % _MOD) ** 2)] or [0] * 4
        skip = fell.to(device) if isinstance(fell, torch.Tensor) else zero + bool(fell)
        flags: list[float] = [problem is not None, *ints]
        status = torch.cat([torch.stack([zero if t is None else t, bad, skip]), _numbers(flags, device)])
        dist.all_reduce(status, op=dist.ReduceOp.SUM, group=group)
        total, broken, skips, failed, *sums = status.tolist()
        if failed:
            self._stop_together(group, problem, "got a bad argument")
        world = dist.get_world_size(group)
        apart = [
            name
            for name, s, s2 in zip(("step", "groups"), sums[::2], sums[1::2], strict=True)
            if world * int(s2) != int(s) ** 2
        ]
        if apart:
            self._out_of_step(apart, step, len(self.optimizer.param_groups))
        return total / world, broken > 0, skips > 0

    def _out_of_step(self, apart: list[str], step: int | None, groups: int) -> NoReturn:
        """Raise, on every rank alike, that the ranks' ``step`` or number of param ``groups`` differ."""
        what = []
        if "step" in apart:
            what.append(f"passed different steps to check (this rank: step {step})")
        if "groups" in apart:
            what.append(f"have different numbers of param groups in their optimizers (this rank: {groups})")
        raise RuntimeError(
            f"DivergenceGuard: the ranks {' and '.join(what)}, so their check all-reduces do not belong "
            "together; every rank stops here. Call check once per optimizer step on every rank, with the "
            "same step (a rank that skips a check, e.g. on its last uneven batch, or calls it twice is out "
            "of step from then on), and give every rank's optimizer the same param groups "
            "(add_param_group on every rank at the same step)"
        )

    def _together(self, group: Any, what: str, act: Callable[[], None]) -> None:
        """``act()``; under ``group``, one all-reduce of a flag after it: where it raised on any rank,
        every rank raises (:meth:`_stop_together`). For the work that follows a shared decision (a
        snapshot, a rollback) and can fail on one rank only (out of memory)."""
        if group is None:
            act()
            return
        import torch
        import torch.distributed as dist

        error: Exception | None = None
        try:
            act()
        except Exception as exc:  # raised again below, on this rank, once the others know
            error = exc
        flag = torch.tensor(
            float(error is not None), dtype=torch.float64, device=_collective_device(group, None)
        )
        dist.all_reduce(flag, op=dist.ReduceOp.SUM, group=group)
        if flag.item():
            self._stop_together(group, error, what)

    def _stop_together(self, group: Any, error: Exception | None, what: str) -> NoReturn:
        """Raise on every rank of ``group`` (each calls this): ``error`` where it happened; elsewhere a
        :class:`RuntimeError` naming the ranks that ``what`` and their errors (one all-gather)."""
        import torch.distributed as dist

        mine = None if error is None else f"{type(error).__name__}: {error}"
        theirs: list[str | None] = [None] * dist.get_world_size(group)
        dist.all_gather_object(theirs, mine, group=group)
        if error is not None:
            raise error
        failed = [(_global_rank(group, i), m) for i, m in enumerate(theirs) if m is not None]
        who = "rank" if len(failed) == 1 else "ranks"
        ranks = " and ".join(str(r) for r, _ in failed)
        details = "; ".join(m if len(failed) == 1 else f"rank {r}: {m}" for r, m in failed)
        raise RuntimeError(
            f"DivergenceGuard: {who} {ranks} {what} ({details}); every rank stops here rather than wait "
            "for it in a collective until the process group's timeout"
        )

    def _good(self, step: int, value: float, group: Any) -> None:
        self._since_snapshot += 1
        # not while the scaler skips: a snapshot would keep its fallen scale, and a rollback to it would
        # go on skipping (the next good step after the run of skips takes it)
        if (not self._snapshots or self._since_snapshot >= self.snapshot_every) and not self._skipping:
            # the state at the start of this step, before its loss joins the history
            phase = self._since_snapshot
            self._together(group, f"failed to take the snapshot of step {step}", lambda: self._take(step))
            if self._keep_phase and phase < self.snapshot_every:  # resumed: the next ones as before
                self._since_snapshot = phase
            self._keep_phase = False
        self._history.append(value)
        self._signed = self._signed or value < 0.0  # 0 itself: a margin loss's best, no sign
        if len(self._history) < self.window:
            self._low = min(self._low, statistics.median(self._history))
        elif self._signed:
            self._scale = max(self._scale, statistics.median(abs(v) for v in self._history))
        self._good_since_rollback += 1
        if self._good_since_rollback >= self.snapshot_every and step > self._failed_at and not self._skipping:
            # the last recovery held: past the step that diverged, for snapshot_every good steps, and
            # the scaler steps again
            self._in_a_row = 0
        self._since_change += 1
        wait = self.regrow_wait
        if wait is not None and self._since_change >= wait:
            if self._regrown:  # the last regrowth lasted its wait: the next one waits regrow_after again
                self._regrown, self._backoff = False, 0
            if self._in_a_row == 0 and 0.0 < self._multiplier < 1.0:
                self._regrow()

    def _regrow(self) -> None:
        """Undo one cut: the guard's multiplier divided by ``factor`` (at most 1), the scheduler's
        ``multiplier`` (or, without one, the groups' ``lr``) by as much."""
        old = self._multiplier
        new = min(1.0, old / self.factor)
        # x / old * new, not x * (new / old): while x is the guard's own multiplier (nobody else scaled
        # the scheduler), the result is new exactly, and undoing every cut gives back the LR exactly
        if self.scheduler is not None:
            self.scheduler.multiplier = _lr_value(self.scheduler.multiplier) / old * new
        else:
            self._set_lrs(tuple(lr / old * new for lr in self._lrs()), None)
        self._multiplier = new
        self._since_change = 0
        self._regrown = True

    # -- snapshots ------------------------------------------------------------------------------------
    def _take(self, step: int) -> None:
        dev = self.snapshot_device
        # the buffers as the step began: its forward has already moved BatchNorm's running statistics
        start = self._buffers_at_start or {}
        self._snapshots.append(
            _Snapshot(
                step=step,
                model={k: _copy(start.get(k, v), dev) for k, v in self.model.state_dict().items()},
                optimizer=self._optimizer_state(dev),
                scheduler=None if self.scheduler is None else copy.deepcopy(self.scheduler.state_dict()),
                rng=self._rng_at_start,
                history=deque(self._history, maxlen=self.window),
                low=self._low,
                scale=self._scale,
                layout=self._layout(),
                scaler=None if self.scaler is None else dict(self.scaler.state_dict()),
            )
        )
        self._since_snapshot = 0
        self._buffers_at_start = None  # taken: the next snapshot's are noted by the check before it

    def _optimizer_state(self, device: torch.device | None) -> dict[str, Any]:
        """A copy of the optimizer's ``state_dict()``, its state tensors held on ``device``. Of a
        ``ZeroRedundancyOptimizer``, whose ``state_dict()`` is the whole state gathered onto one rank
        (``consolidate_state_dict``, a collective), this rank's own: its shard (the local optimizer's
        ``state_dict()``) and the groups' settings (``lr``...) in ``"zero"``."""
        import torch

        def held(sd: dict[str, Any]) -> dict[str, Any]:
            return {k: _hold(v, device) if k == "state" else copy.deepcopy(v) for k, v in sd.items()}

        if self._zero is None:
            return held(self.optimizer.state_dict())
        return {
            "zero": held(torch.optim.Optimizer.state_dict(self._zero)),
            "shard": held(self._zero.optim.state_dict()),
        }

    def _load_optimizer_state(self, state: dict[str, Any]) -> None:
        """Load a state of :meth:`_optimizer_state` (new tensors)."""
        import torch

        if self._zero is None:
            self.optimizer.load_state_dict(state)
            return
        torch.optim.Optimizer.load_state_dict(self._zero, state["zero"])
        self._zero.optim.load_state_dict(state["shard"])

    def _buffer_keys(self) -> set[str]:
        return {k for k, _ in self.model.named_buffers(remove_duplicate=False)}

    def _buffers(self) -> dict[str, torch.Tensor]:
        """Copies of the model's buffers in its ``state_dict`` (BatchNorm's running statistics...)."""
        keys = self._buffer_keys()
        return {k: v.detach().clone() for k, v in self.model.state_dict().items() if k in keys}

    def _layout(self) -> tuple[int, ...]:
        return tuple(len(g["params"]) for g in self.optimizer.param_groups)

    def _drop_stale(self) -> None:
        """Forget the snapshots taken before a group was added (``add_param_group``, progressive
        unfreezing): the optimizer cannot load them; the next good step takes a new one."""
        if self._snapshots and self._snapshots[-1].layout != self._layout():
            self._drop("the optimizer's parameter groups changed (add_param_group)")

    def _drop(self, why: str) -> None:
        """Forget every snapshot (``why``: since what); the next good step takes a new one."""
        self._snapshots.clear()
        self._since_snapshot = 0
        self._buffers_at_start = None  # not noted for this step: its snapshot takes the current ones
        self._dropped = why

    def _rng_state(self) -> Any:
        if not self.restore_rng:
            return None
        import torch

        # CUDA's generators only once CUDA is in use (reading them would initialise it);
        # torch.cuda.is_initialized has no annotations
        in_use = torch.cuda.is_available() and torch.cuda.is_initialized()  # type: ignore[no-untyped-call]
        return torch.get_rng_state(), (torch.cuda.get_rng_state_all() if in_use else [])

    def _restore(self, snap: _Snapshot) -> None:
        import torch

        self.model.load_state_dict(snap.model)  # copies into the parameters, on their devices
        # new tensors, on the devices the state was on: Optimizer.load_state_dict keeps same-device
        # state tensors as they are (`.to` is a no-op), so the next optimizer.step() would otherwise
        # write into the snapshot
        self._load_optimizer_state(_unhold(snap.optimizer))
        self.model.zero_grad(set_to_none=True)
        if self.scheduler is not None and snap.scheduler is not None:
            self.scheduler.load_state_dict(copy.deepcopy(snap.scheduler))
        self._last_scale, self._skips, self._skipping = None, 0, False
        if self.scaler is not None and snap.scaler:
            self.scaler.load_state_dict(snap.scaler)
            # end the iteration: forget an unscale_ done for the step rolled back (an AssertionError:
            # the scaler has scaled nothing yet, there is no iteration to end)
            with contextlib.suppress(AssertionError):
                self.scaler.update(float(snap.scaler["scale"]))
            scale = self._scale_tensor()  # the restored scale: the next check compares with it
            self._last_scale = (
                None
                if scale is None
                else scale.detach().clone()
                if _syncs(scale.device)
                else float(scale.reshape(-1)[0])
            )
        if snap.rng is not None:
            cpu, cuda = snap.rng
            torch.set_rng_state(cpu)
            if cuda:
                torch.cuda.set_rng_state_all(cuda)
        self._history = deque(snap.history, maxlen=self.window)
        self._low = snap.low
        self._scale = snap.scale
        self._high = 0
        # the next check sees the snapshot's own state again: it is not progress, so count from -1
        self._since_snapshot = -1
        self._good_since_rollback = -1
        self._rng_at_start = snap.rng
        self._buffers_at_start = {k: snap.model[k] for k in self._buffer_keys() if k in snap.model}

    def _lrs(self) -> tuple[float, ...]:
        return tuple(_lr_value(g["lr"]) for g in self.optimizer.param_groups)

    def _recover(self, step: int, value: float, reason: str, group: Any) -> None:
        built, groups = _groups_of(self.scheduler), len(self.optimizer.param_groups)
        if built is not None and built != groups:
            raise RuntimeError(
                f"DivergenceGuard: step {step} diverged (loss {value}), but the guard's scheduler was built "
                f"for {built} parameter groups and the optimizer has {groups} "
                "(optimizer.add_param_group), so it cannot be restored or cut. A scheduler rebuilt for the "
                "new groups must be given to the guard too: guard.scheduler = new_scheduler (built after "
                "add_param_group, then new_scheduler.set_step(old_scheduler.last_epoch))"
            )
        ref, scale = self.reference, self._scale
        median = (
            "the median of the recent good losses"
            if not self._history or ref == statistics.median(self._history)
            else f"the lowest median of the good losses so far (fewer than window={self.window})"
        )
        before = self._lrs()
        scaled = self._scale_finding() if reason == "scale" else ""  # before the rollback resets the count
        if not self._snapshots:
            what = (
                "the model's parameters or buffers hold NaN/inf"
                if reason == "params"
                else f"the loss is {value} but {scaled}"
                if reason == "scale"
                else f"the loss is {value}"
            )
            if self._keep_phase:  # loaded from a state_dict, no good step since
                raise DivergenceError(
                    f"DivergenceGuard: at step {step} {what}, the first step checked since the guard's "
                    "state was loaded (load_state_dict), so there is no snapshot to roll back to yet "
                    f"(lr={_fmt(before)}; the snapshots are not part of the state): the checkpoint itself "
                    "may hold the seed of the blow-up; resume from an earlier one, or with a lower LR",
                    None,
                    self.events,
                )
            if self._dropped:
                likely = (
                    "; the groups added last (their LR, or the layers they unfreeze) are the likely cause"
                    if "add_param_group" in self._dropped
                    else ""
                )
                raise DivergenceError(
                    f"DivergenceGuard: at step {step} {what}, before any good step since {self._dropped}, "
                    f"so there is no snapshot to roll back to (lr={_fmt(before)}){likely}",
                    None,
                    self.events,
                )
            raise DivergenceError(
                f"DivergenceGuard: at step {step} {what} before any good step, so there is no snapshot "
                f"to roll back to (lr={_fmt(before)}); check the data, the model (its initialisation or "
                "the checkpoint it was loaded from) and the loss function: a learning rate has not acted yet",
                None,
                self.events,
            )
        stop = self._in_a_row >= self.max_recoveries
        self._failed_at = step
        if self._in_a_row > 0 and len(self._snapshots) > 1:
            # the last recovery failed: the newest snapshot may already hold the seed of the divergence
            # (a huge momentum behind a finite loss), so drop it and go one further back
            self._snapshots.pop()
        snap = self._snapshots[-1]
        self._resume_step = snap.step
        multiplier_before = None if self.scheduler is None else float(self.scheduler.multiplier)
        self._together(
            group, f"failed to roll back to the snapshot of step {snap.step}", lambda: self._restore(snap)
        )
        if stop:
            self._set_lrs(before, multiplier_before)  # back at the snapshot, with every cut kept
        else:
            self._cut(before, multiplier_before)
            self._in_a_row += 1
            if self._regrown:  # diverged again within the wait after a regrowth: wait twice as long
                self._backoff = min(self._backoff + 1, _MAX_BACKOFF)
            self._regrown = False
            self._since_change = -1  # as _good_since_rollback: the snapshot's own step comes next
        event = DivergenceEvent(
            step=step,
            loss=value,
            reason=reason,
            reference=ref,
            lr_before=before,
            lr_after=self._lrs(),
            snapshot_step=snap.step,
            recovery=self._in_a_row + (1 if stop else 0),
            action="stop" if stop else "rollback",
        )
        self._events.append(event)
        if stop:
            if reason == "jump":
                what = (
                    f"above {median}, {ref:.4g}, by more than {self.threshold:g} - 1 times the size of "
                    f"the losses (scale {scale:.4g})"
                    if self._signed
                    else f"above {self.threshold:g} x {median}, {ref:.4g}"
                ) + f", for {self.jump_steps} steps in a row"
                hint = (
                    "; if losses this far apart are normal for your batches, raise threshold "
                    "(or pass threshold=None to catch NaN/inf only)"
                )
            elif reason == "params":
                what = "finite, but the model's parameters or buffers hold NaN/inf"
                hint = (
                    "; a NaN/inf gradient behind a finite loss (sqrt, norm or log at 0, a division by 0) "
                    "in a part of the model that not every batch uses can cause this"
                )
            elif reason == "scale":
                what = f"finite, but {scaled}"
                hint = (
                    "; a lower LR helps only where the gradients overflow because the model blew up: "
                    "otherwise find where backward makes inf/NaN gradients "
                    "(torch.autograd.set_detect_anomaly(True) names the op): a sqrt, norm or log at 0, a "
                    "division by 0, or a float16 overflow (compute that part in float32, or use bfloat16); "
                    "max_skipped=None turns this check off"
                )
            else:
                what, hint = ("NaN" if reason == "nan" else "infinite"), ""
            finding = (
                f"training diverged at step {step} (loss {value:.4g}: {what}) with lr={_fmt(before)}, "
                f"after {self._in_a_row} recoveries in a row (each cut the LR by {self.factor:g})"
            )
            remedies: tuple[str, ...] = REMEDIES
            underflow = eps_underflow(self.optimizer)
            if underflow is not None:  # the warning's cause: a lower LR or more recoveries cannot help
                finding += f": {underflow.short}, and no learning rate fixes this"
                remedies, hint = underflow.fixes, ""
            advice = _advise(remedies, PYTHON_SETTINGS)
            raise DivergenceError(
                f"DivergenceGuard: {finding}; the model, optimizer and scheduler are left at the snapshot "
                f"of step {snap.step}. {advice[:1].upper()}{advice[1:]}{hint}",
                event,
                self.events,
                finding=finding,
                remedies=remedies,
            )

    def _cut(self, before: tuple[float, ...], multiplier_before: float | None) -> None:
        """Multiply the LR in force before the rollback by ``factor``."""
        self._multiplier *= self.factor
        if self.scheduler is not None:
            # the restored state holds the multiplier of the snapshot: keep every cut made since
            self.scheduler.multiplier = multiplier_before
            self.scheduler.scale(self.factor)
        else:
            self._set_lrs(tuple(lr * self.factor for lr in before), None)

    def _set_lrs(self, lrs: tuple[float, ...], multiplier: float | None) -> None:
        if self.scheduler is not None:
            self.scheduler.multiplier = multiplier
            return
        for g, lr in zip(self.optimizer.param_groups, lrs, strict=True):
            if hasattr(g["lr"], "fill_"):
                g["lr"].fill_(lr)
            else:
                g["lr"] = lr


_MOD = 2**16  # check's step and group count are compared modulo this (see DivergenceGuard._reduce)


def _numbers(values: list[float], device: torch.device) -> torch.Tensor:
    """``values`` as a float64 tensor on ``device``, with no host sync (a copy onto a GPU would wait
    for the work queued on it: scalar adds instead)."""
    import torch

    if device.type == "cpu":
        return torch.tensor(values, dtype=torch.float64)
    zero = torch.zeros((), dtype=torch.float64, device=device)
    return torch.stack([zero + v for v in values])


def _syncs(device: torch.device) -> bool:
    """Whether reading a tensor on ``device`` into Python waits for the device (a host sync)."""
    return device.type != "cpu"


def _local(t: Any) -> Any:
    """This rank's shard of a ``torch.distributed.tensor.DTensor``; anything else as it is."""
    dtensor = sys.modules.get("torch.distributed.tensor")  # imported wherever a DTensor exists
    cls = getattr(dtensor, "DTensor", None)
    return t.to_local() if cls is not None and isinstance(t, cls) else t


def _copy(v: Any, device: torch.device | None) -> Any:
    """A copy of a ``state_dict`` value: a tensor on ``device`` (None: its own), anything else deep."""
    import torch

    if isinstance(v, torch.Tensor):
        return v.detach().clone() if device is None else v.detach().to(device, copy=True)
    return copy.deepcopy(v)


def _step(step: object) -> int:
    """``check``'s ``step``: an integer by lrkit's rule (numpy's, 0-d integer arrays and tensors)."""
    n = as_integer(step)
    if n is None:
        raise TypeError(f"DivergenceGuard.check: step must be an int, got {type(step).__name__} {step!r}")
    return n


def _loss(loss: object, group: Any, device: torch.device | None = None) -> Any:
    """``check``'s ``loss`` as a float (``group`` and ``device`` None), or as a 0-d float64 tensor on
    ``device`` or else the device of ``group``'s collectives (no host sync yet)."""
    try:
        if isinstance(loss, (str, bytes, bool)):  # float("1.0") and float(True) would pass
            raise TypeError(type(loss).__name__)
        x = loss.detach() if hasattr(loss, "detach") else loss
        if device is not None:
            return _float64(x).to(device)
        if group is None:  # a number, or a one-element array or tensor (lrkit._checks.as_measured)
            value = as_measured(x)
            if value is None:
                raise TypeError(type(loss).__name__)
            return value
        return _float64(x).to(_collective_device(group, getattr(x, "device", None)))
    except (TypeError, ValueError, RuntimeError) as exc:
        shape = getattr(loss, "shape", None)
        if shape is not None and not isinstance(shape, (tuple, list)):  # torch.Size is a tuple
            shape = None
        if shape is not None and len(shape) > 0:  # a per-example loss (reduction='none'): not its values
            got = (
                f"a {type(loss).__name__} of shape {tuple(shape)}; reduce it to one number first "
                "(loss.mean(), or the loss function's default reduction)"
            )
        else:
            got = f"{type(loss).__name__} {_short(loss)}"
        raise TypeError(
            f"DivergenceGuard.check: loss must be a number or a one-element tensor, got {got}"
        ) from exc


def _short(x: object, limit: int = 80) -> str:
    """``repr(x)`` cut to ``limit`` characters."""
    text = repr(x)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _collective_device(group: Any, device: torch.device | None) -> torch.device:
    """Where ``group``'s collectives take their tensors: the CPU for gloo and MPI, else the loss's own
    device (``device``), or the current CUDA device for NCCL when the loss is on the CPU (or not a tensor)."""
    import torch
    import torch.distributed as dist

    backend = str(dist.get_backend(group))
    if backend in ("gloo", "mpi"):
        return torch.device("cpu")
    if device is not None and device.type != "cpu":
        return device
    if "nccl" in backend:
        return torch.device("cuda", torch.cuda.current_device())
    return torch.device("cpu")


def _global_rank(group: Any, group_rank: int) -> int:
    """The global rank of ``group``'s rank ``group_rank`` (itself where the group does not say)."""
    import torch.distributed as dist

    try:
        return dist.get_global_rank(group, group_rank)
    except (ValueError, RuntimeError):
        return group_rank


def _float64(x: Any) -> torch.Tensor:
    """A one-element tensor or a number as a 0-d float64 tensor (on the tensor's device), by the rule of
    the path without a process group (:func:`lrkit._checks.as_measured`): a tensor of integer or real
    dtype, never a bool one."""
    import torch

    if isinstance(x, torch.Tensor):
        if x.numel() != 1:
            raise TypeError(f"a tensor of {x.numel()} elements")
        if dtype_kind(x) not in ("i", "f"):
            raise TypeError(f"a tensor of dtype {x.dtype}")
        return x.reshape(()).to(torch.float64)
    value = as_measured(x)
    if value is None:
        raise TypeError(type(x).__name__)
    return torch.tensor(value, dtype=torch.float64)


def _device(v: object) -> torch.device:
    """``snapshot_device``: a device that tensors can be put on (not ``meta``)."""
    import torch

    if not isinstance(v, (str, torch.device)):
        raise TypeError(
            f"DivergenceGuard: snapshot_device must be None, a device name such as 'cpu' or a "
            f"torch.device, got {type(v).__name__} {v!r}"
        )
    try:
        dev = torch.device(v)
        if dev.type == "meta":
            raise RuntimeError("a meta tensor holds no data")
        torch.empty(1, device=dev)  # not compiled in, no such device: an error here, not at a snapshot
    except (RuntimeError, AssertionError) as exc:
        why = (str(exc).strip().splitlines() or [type(exc).__name__])[0].split(". ")[0]
        raise ValueError(
            f"DivergenceGuard: snapshot_device must be a device that can hold the snapshots (None, "
            f"'cpu', 'cuda', 'cuda:1'...), got {v!r}: {why}"
        ) from exc
    return torch.device("cpu") if dev.type == "cpu" else dev


def _fmt(lrs: tuple[float, ...]) -> str:
    return f"{lrs[0]:.4g}" if len(lrs) == 1 else "[" + ", ".join(f"{v:.4g}" for v in lrs) + "]"
