"""PyTorch adapter: an lrkit schedule as a real ``torch.optim.lr_scheduler.LRScheduler``.

::

    sched = lrkit.parse("warmup(500) >> cosine(lr=3e-4, min_lr=3e-5)")
    scheduler = lrkit.torch.scheduler(optimizer, sched, total_steps=len(loader) * epochs)
    for x, y in loader:
        loss_fn(model(x), y).backward(); optimizer.step(); optimizer.zero_grad()
        scheduler.step()

The scheduler holds the step counter, the base LRs, the controllers' cuts (``multiplier``: the
product of :meth:`~Scheduler.scale` factors, used by the divergence guard; ``plateau_cuts``: the
reduce-on-plateau cuts of each group) and the plateau state; nothing else. At scheduler step ``k``
group ``i`` gets

    ``b_i = schedule_i(T)``  (``relative=False``: the schedule gives LRs)
    ``b_i = base_lr_i * schedule_i(T)``  (``relative=True``: the schedule is a multiplier)
    ``lr_i = max(b_i * multiplier * plateau_cuts_i, min(b_i, min_lr_i))``  (``min_lr_i``: the plateau's)

with ``T = k`` (``interval="step"``) or ``T = k * steps_per_epoch`` (``interval="epoch"``: the schedule
is still a function of the optimizer step; the LR is only refreshed once per epoch). As with torch's
schedulers, the optimizer holds the LR of step 0 once the scheduler is built, and every
:meth:`Scheduler.step` advances one step and writes the LR of the new step.

Two ways to run:

- :class:`Scheduler` (the default) evaluates the schedule ahead of time in vectorised blocks of
  ``BLOCK`` steps, fewer for many groups (``BLOCK_VALUES`` values in all; aligned, so a value never
  depends on where a run was resumed), so ``step()`` is a list index and the writes. A tensor
  ``lr`` is written in place with ``fill_`` (no host sync).
- :class:`GraphScheduler` (``in_graph=True``) keeps the step counter in a device tensor and computes
  the LR from it with tensor operations, so a whole training step can be compiled by
  ``torch.compile`` (no recompile when the LR changes) or captured in a CUDA graph. Outside a compiled
  region the update itself is compiled into one fused kernel (``fuse``).
"""

from __future__ import annotations

import math
import numbers
import sys
import warnings
import weakref
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Literal, SupportsFloat, overload

import numpy as np
import torch
from torch.optim import Optimizer
from torch.optim.lr_scheduler import LRScheduler

from .._checks import as_measured, check_int, finite_real
from .._text import plural
from .._warnings import PastTheRunWarning  # re-exported: lrkit.torch.PastTheRunWarning
from ..control.guard import WRAPPED
from ..control.plateau import MissingStateKeys, Plateau, is_torch_plateau_state, on_reset, warmup_steps
from ..schedules import Chain, Cosine, Linear, Schedule
from ..schedules.base import (
    ScheduleLongerThanRunWarning,
    ScheduleShorterThanRunWarning,
    _caller_stacklevel,
    _count,
    peak_until,
    warn_run_length,
)
from ..schedules.duration import MAX_STEPS, _real, _short
from ..schedules.warmup import refuse_bare_warmup
from ..spec import ScheduleLike, as_schedule

__all__ = [
    "BLOCK",
    "BLOCK_VALUES",
    "MIN_BLOCK",
    "EpochwiseSteppingWarning",
    "GraphScheduler",
    "NoOptimizerStepWarning",
    "OverwrittenLRWarning",
    "PastTheRunWarning",
    "ScheduleLongerThanRunWarning",
    "ScheduleMismatchError",
    "ScheduleShorterThanRunWarning",
    "Scheduler",
    "StepwiseSteppingWarning",
    "UnfedPlateauWarning",
    "one_cycle_momentum",
    "scheduler",
]

#: the most steps :class:`Scheduler` evaluates at once; a block holds ``max(MIN_BLOCK, min(BLOCK,
#: BLOCK_VALUES // columns))`` steps (``columns``: the groups, times one plus the scheduled
#: hyperparameters) and starts at a multiple of its length
BLOCK = 4096
#: the values (Python floats, ~32 bytes each) a block holds at most, whatever the number of groups
BLOCK_VALUES = 32768
#: the fewest steps in a block (thousands of groups: a refill every MIN_BLOCK steps)
MIN_BLOCK = 16
_NO_BLOCK = -(1 << 62)
#: /3: its plateau state is strict JSON (``best`` None or ``"inf"``, :meth:`Plateau.state_dict`); /2: the
#: state names its schedule; /1 states (no "schedule") load unchecked
_FORMAT = "lrkit.torch/3"
#: the keys a state of each format always holds (``epoch_pending`` only when it is True); /1 states
#: written before per-group plateau cuts were kept have no ``plateau_cuts`` (loaded as no cuts)
_STATE_KEYS = {
    1: frozenset({"format", "last_epoch", "interval", "base_lrs", "multiplier", "plateau"}),
    2: frozenset(
        {"format", "last_epoch", "interval", "base_lrs", "multiplier", "plateau", "plateau_cuts"}
        | {"schedule", "relative", "hparams", "steps_per_epoch", "total_steps"}
    ),
}
_STATE_KEYS[3] = _STATE_KEYS[2]
#: what ``interval=`` takes (to a type checker; a string outside it is refused when run)
Interval = Literal["step", "epoch"]
_INTERVALS = ("step", "epoch")


class ScheduleMismatchError(ValueError):
    """A checkpoint saved with one schedule is loaded into a scheduler built with another."""


class EpochwiseSteppingWarning(UserWarning):
    """A step-based scheduler (``interval="step"``) is stepped once per many optimizer steps."""


class StepwiseSteppingWarning(UserWarning):
    """An epoch-based scheduler (``interval="epoch"``) is stepped after every optimizer step: it is stepped
    more times than its run has epochs."""


class UnfedPlateauWarning(UserWarning):
    """A scheduler with a plateau reached the end of its run without ever being given a metric, or given
    only metrics its ``start`` held back (all during the warmup)."""


class OverwrittenLRWarning(UserWarning):
    """A group's LR was not the one the scheduler last wrote there: something else set it (torch's
    ``ReduceLROnPlateau``, a second scheduler on the optimizer, a hand edit), and the scheduler's next write
    undoes it; or another lrkit scheduler is stepped on the same optimizer. Warned once per scheduler."""


class NoOptimizerStepWarning(UserWarning):
    """``step()`` keeps being called but the optimizer takes no step, so the schedule stands still: it has
    never stepped, or it stepped before and now every step is skipped (a ``GradScaler`` whose scale
    collapses on inf/NaN gradients) or not made."""


#: calls of ``step()`` in a row with no optimizer step taken before :class:`NoOptimizerStepWarning`: a
#: GradScaler may skip the first few steps of a float16 run while it finds its scale, and a healthy one
#: skips one step now and then; 32 skips in a row divide the scale by 2**32 (backoff 0.5), far below any
#: scale that trains, so a run of them is a scale collapsing, not the scaler settling
IDLE_WARN = 32


# -- argument handling ----------------------------------------------------------------------------


def _refuse_function(x: object, where: str) -> None:
    """A Python function given as a schedule (torch's ``LambdaLR`` habit): say what lrkit takes instead."""
    if callable(x) and not isinstance(x, Schedule):
        name = getattr(x, "__name__", type(x).__name__)
        raise TypeError(
            f"{where}: got a Python function ({name}); lrkit schedules are data, not code: a spec string "
            "such as 'warmup(5%) >> cosine(lr=0.1)' or a Schedule (lrkit.Cosine(lr=0.1), ...), so that they "
            "can be saved and checked on resume, plotted and compiled. Any curve of straight lines is "
            "piecewise(points=[[0, 0.0], [10%, 1e-3], [100%, 1e-5]]), and pieces compose with >> (one after "
            "another) and * (a product); for an arbitrary function, torch.optim.lr_scheduler.LambdaLR "
            "still does the job (without lrkit)"
        )


def _per_group(x: object, n: int, where: str) -> tuple[tuple[Schedule, ...], bool]:
    """One schedule per group, and whether a single schedule was given for all of them."""
    _refuse_function(x, where)
    if isinstance(x, (Schedule, str, Mapping)):
        s = as_schedule(x, where)
        return (s,) * n, True
    if isinstance(x, Sequence) and not isinstance(x, (bytes, bytearray)):
        if len(x) != n:
            raise ValueError(
                f"{where}: got {len(x)} schedules for {n} parameter groups; "
                "give one schedule, or one per group"
            )
        for i, v in enumerate(x):
            _refuse_function(v, f"{where}[{i}]")
        return tuple(as_schedule(v, f"{where}[{i}]") for i, v in enumerate(x)), False
    raise TypeError(
        f"{where} must be a schedule or a list of one schedule per parameter group, "
        f"got {type(x).__name__} {_short(x)}"
    )


def _resolve(s: Schedule, total_steps: float | None, steps_per_epoch: float | None, where: str) -> Schedule:
    """``s`` resolved to steps; a :class:`ScheduleLongerThanRunWarning` when it outlasts ``total_steps``, a
    :class:`ScheduleShorterThanRunWarning` when it ends well before and then holds almost no LR."""
    r = s.resolve(total_steps=total_steps, steps_per_epoch=steps_per_epoch)
    if r.unresolved:
        raise ValueError(
            f"{where} ({r}) cannot be evaluated: {r.unresolved}. Pass total_steps=... (or epochs=... with "
            "steps_per_epoch=...) and steps_per_epoch=... to lrkit.torch.scheduler"
        )
    if total_steps is not None:
        shown = repr(str(s)) if where == "schedule" else f"{where} = {str(s)!r}"
        warn_run_length(r, total_steps, shown=shown, where="lrkit.torch.scheduler")
    return r


def _positive(name: str, v: object) -> float:
    x = _real(v)
    if x is None or x <= 0:
        raise ValueError(f"{name} must be a finite number > 0, got {_short(v)}")
    return x


def _momentum(name: str, v: object) -> float:
    """A momentum of :func:`one_cycle_momentum`: a finite real number >= 0."""
    x = _real(v)
    if x is None or x < 0:
        raise ValueError(f"one_cycle_momentum: {name} must be a finite number >= 0, got {_short(v)}")
    return x


def _step_index(where: str, k: object) -> int:
    """A scheduler step: an integer (Python's, numpy's, a 0-d integer tensor) in [0, 2**53]."""
    return check_int(k, where, 0, high=MAX_STEPS, show=_short)


def _float(v: Any) -> float:
    return float(v.item()) if isinstance(v, torch.Tensor) else float(v)


def _group_float(group: Mapping[str, Any], key: str) -> float:
    return _float(group[key])


def _hparam_of(group: Mapping[str, Any], key: str) -> float:
    """A group's value of a schedulable hyperparameter (``beta1``/``beta2``: a part of ``betas``)."""
    if key in ("beta1", "beta2"):
        return _float(group["betas"][0 if key == "beta1" else 1])
    return _group_float(group, key)


def _per_group_example(spec: str, held: list[float]) -> str:
    """One schedule per group for the groups in ``held``: ``spec`` for those holding the largest value
    (the ones a schedule is usually meant for: decayed weights), a constant at their value for the rest."""
    top = max(held, key=abs)
    return "[" + ", ".join(repr(spec) if v == top else f"'constant(lr={v:g})'" for v in held) + "]"


def _state_number(name: str, v: object, high: float | None = None) -> float:
    """A number from a loaded state: finite, >= 0 (and <= ``high``)."""
    if isinstance(v, bool) or not isinstance(v, numbers.Real):
        raise TypeError(f"load_state_dict: {name} must be a number, got {type(v).__name__} {_short(v)}")
    x = _real(v)
    if x is None or not (x >= 0.0 and (high is None or x <= high)):
        want = "a finite number >= 0" + ("" if high is None else f" and <= {high:g}")
        raise ValueError(f"load_state_dict: {name} must be {want}, got {_short(v)}")
    return x


def _state_numbers(state: Mapping[str, Any], key: str, n: int, high: float | None = None) -> list[float]:
    v = state[key]
    if isinstance(v, (str, bytes)) or not isinstance(v, Sequence):
        raise TypeError(
            f"load_state_dict: {key} must be a list of numbers, got {type(v).__name__} {_short(v)}"
        )
    if len(v) != n:
        what = "base LRs" if key == "base_lrs" else "values"
        raise ValueError(
            f"load_state_dict: the state holds {len(v)} {what} ({key}), the optimizer has "
            f"{n} parameter groups"
        )
    return [_state_number(f"{key}[{i}]", x, high) for i, x in enumerate(v)]


def _format_version(state: Mapping[str, Any]) -> int | None:
    """The version ``N`` of a state's ``"format": "lrkit.torch/N"`` (None: no such key). A newer ``N``
    than this lrkit's, or another format, raises ``ValueError``."""
    if "format" not in state:
        return None
    fmt = state["format"]
    name, _, ours = _FORMAT.rpartition("/")
    *older, last = (repr(f"{name}/{v}") for v in _STATE_KEYS)
    known = f"{', '.join(older)} or {last}"
    version = fmt[len(name) + 1 :] if isinstance(fmt, str) and fmt.startswith(name + "/") else ""
    if not (version.isascii() and version.isdigit()):
        raise ValueError(f"load_state_dict: format must be {known}, got {_short(fmt)}")
    if int(version) > int(ours):
        raise ValueError(
            f"load_state_dict: the state was written by a newer lrkit (format {fmt!r}; this lrkit reads "
            f"{known}): load it with that lrkit, or upgrade this one"
        )
    if int(version) not in _STATE_KEYS:
        raise ValueError(f"load_state_dict: format must be {known}, got {_short(fmt)}")
    return int(version)


def _check_keys(state: Mapping[str, Any], version: int | None) -> None:
    """Refuse a state missing a key its format always holds (truncated or edited: loading it would
    default the key, e.g. drop the plateau's cuts while its count of reductions stays)."""
    missing = sorted(_STATE_KEYS[version or 1] - set(state))
    fmt = f"a 'lrkit.torch/{version}'" if version else "an lrkit.torch"
    if missing:
        raise MissingStateKeys(
            f"load_state_dict: the state is missing {missing}, which {fmt} state always holds (a "
            f"truncated or edited state); got keys {sorted(map(str, state))}"
        )


def _same_spec(key: str, saved: object, mine: object) -> bool:
    """Whether a saved spec entry describes the same curve as this scheduler's (strings equal, or equal
    schedules once parsed: a later lrkit may print a spec differently)."""
    if saved == mine:
        return True
    if key == "schedule" and isinstance(saved, (list, tuple)) and isinstance(mine, list):
        return len(saved) == len(mine) and all(_same_schedule(a, b) for a, b in zip(saved, mine, strict=True))
    if key == "hparams" and isinstance(saved, Mapping) and isinstance(mine, dict):
        return set(saved) == set(mine) and all(_same_spec("schedule", saved[h], mine[h]) for h in mine)
    if key == "steps_per_epoch" and isinstance(saved, (int, float)) and isinstance(mine, float):
        return float(saved) == mine
    return False


def _same_schedule(saved: object, mine: str) -> bool:
    if saved == mine:
        return True
    if not isinstance(saved, str):
        return False
    from ..spec import SpecError, parse

    try:
        return parse(saved) == parse(mine)
    except (SpecError, ValueError, TypeError):
        return False


#: each Plateau given to a scheduler, and that scheduler (a Plateau counts one stream of metrics)
_PLATEAU_OWNERS: weakref.WeakKeyDictionary[Plateau, weakref.ref[_Base]] = weakref.WeakKeyDictionary()


def _claim_plateau(plateau: Plateau, owner: _Base, fresh: bool) -> None:
    """Make ``owner`` the scheduler of ``plateau``. ``fresh`` (a new scheduler): a Plateau that another
    scheduler had starts afresh (:meth:`Plateau.reset`: a new run does not inherit the last one's best);
    a copy of a scheduler (``fresh=False``) keeps its copied plateau's state."""
    prev = _PLATEAU_OWNERS.get(plateau)
    if prev is not None and prev() is not owner:
        if not fresh and prev() is not None:
            return  # a shallow copy sharing a live scheduler's plateau: report() refuses it
        if fresh:
            del _PLATEAU_OWNERS[plateau]  # the scheduler it leaves keeps its cuts (its LRs stay)
            plateau.reset()
    _PLATEAU_OWNERS[plateau] = weakref.ref(owner)


def _plateau_reset(plateau: Plateau) -> None:
    """:meth:`Plateau.reset` forgot the reductions: the scheduler that owns the plateau drops their cuts."""
    prev = _PLATEAU_OWNERS.get(plateau)
    owner = None if prev is None else prev()
    if owner is not None and owner.plateau is plateau:
        owner._drop_plateau_cuts()


on_reset(_plateau_reset)


def _check_plateau_owner(plateau: Plateau, me: _Base) -> None:
    """Refuse a metric for a Plateau that another live scheduler was built with since (one Plateau given
    to two schedulers would count both their metrics in one counter and one best)."""
    prev = _PLATEAU_OWNERS.get(plateau)
    other = None if prev is None else prev()
    if other is None:
        _PLATEAU_OWNERS[plateau] = weakref.ref(me)
    elif other is not me:
        raise ValueError(
            f"report: this scheduler's plateau ({plateau!r}) is also the plateau of another live scheduler "
            f"({type(other).__name__} on a {type(other.optimizer).__name__}, built after this one); one "
            "Plateau counts one stream of metrics (its patience, best and cooldown), so two schedulers "
            "sharing it would cut each other. Build one Plateau per scheduler: plateau=Plateau(...) in each "
            "lrkit.torch.scheduler call"
        )


def _warn_relative_peak(schedules: Sequence[Schedule], base: Sequence[float], total: float | None) -> None:
    """relative=True with a schedule written in LRs given as a multiplier of groups whose lrs are LRs
    too (``cosine(lr=3e-4)`` on a group at 1e-4: it trains at 3e-8): a schedule peaking at >= 100, or at
    <= 0.1 (an LR, as a finder's suggestion) while every group it drives has an lr under 0.5 (groups
    whose lrs are factors, 1.0 and 0.1, driven by a schedule in LRs, as with torch's LambdaLR, pass). A
    schedule at 0 (a frozen group) passes."""
    for s in dict.fromkeys(schedules):
        n = s.length_steps if s.length_steps is not None else total
        if n is None or not math.isfinite(n):
            continue
        top = peak_until(s, n)
        used = [i for i, t in enumerate(schedules) if t is s]
        i = max(used, key=lambda j: base[j])  # the group it drives fastest
        if top == 0.0 or 0.1 < top < 100.0 or (top <= 0.1 and base[i] >= 0.5):
            continue
        warnings.warn(
            f"lrkit.torch.scheduler: relative=True makes the schedule {str(s)!r} a multiplier of each "
            f"group's own lr, and it peaks at {top:.3g}: param_groups[{i}] (lr {base[i]:.3g}) would train at "
            f"up to {base[i] * top:.3g}. A relative schedule peaks at 1 (e.g. 'warmup(5%) >> "
            "cosine(lr=1.0)'). For a schedule written in LRs, pass relative=False (one schedule per group "
            "where their lrs differ), or set each group's lr (after lrkit.find_lr: found.group_lrs()) and "
            "give relative=True a schedule peaking at 1",
            UserWarning,
            stacklevel=_caller_stacklevel() or 2,
        )
        return


# -- the shared part of both schedulers -----------------------------------------------------------
class _Base(LRScheduler):
    """What :class:`Scheduler` and :class:`GraphScheduler` share: arguments, evaluation, controllers."""

    optimizer: Optimizer

    def __init__(
        self,
        optimizer: Optimizer,
        schedule: ScheduleLike | Sequence[ScheduleLike],
        *,
        total_steps: int | None = None,
        steps_per_epoch: int | None = None,
        epochs: float | None = None,
        relative: bool = False,
        interval: Interval = "step",
        plateau: Plateau | None = None,
        hparams: Mapping[str, ScheduleLike | Sequence[ScheduleLike]] | None = None,
        sync: bool | torch.distributed.ProcessGroup = True,
    ) -> None:
        # LRScheduler.__init__ is not called: it needs `initial_lr` on resume and takes a step.
        if not isinstance(optimizer, Optimizer):
            raise TypeError(f"optimizer must be a torch.optim.Optimizer, got {type(optimizer).__name__}")
        self.optimizer = optimizer
        groups = optimizer.param_groups
        n = len(groups)
        if not isinstance(relative, bool):
            raise TypeError(f"relative must be True or False, got {relative!r}")
        if interval not in _INTERVALS:
            raise ValueError(f"interval must be 'step' or 'epoch', got {interval!r}")
        # a 0-d integer tensor (len(loader) * epochs computed on tensors) counts as its int, as in resolve
        total_steps, steps_per_epoch, epochs = (
            None if v is None else _count(v, name)
            for v, name in (
                (total_steps, "total_steps"),
                (steps_per_epoch, "steps_per_epoch"),
                (epochs, "epochs"),
            )
        )
        if steps_per_epoch is not None:
            spe = _positive("steps_per_epoch", steps_per_epoch)
            if interval == "step" and not spe.is_integer():  # 0-d integer tensors are ints by now
                # a step is one batch, so an epoch of durations would end between batches; with
                # interval='epoch' the schedule is read at epoch * steps_per_epoch, on the epochs' ends
                warnings.warn(
                    f"lrkit.torch.scheduler: steps_per_epoch={steps_per_epoch!r} is not a whole number; the "
                    "scheduler steps once per batch, and a DataLoader's epoch is len(loader) = ceil(n / "
                    f"batch_size) = {math.ceil(spe)} batches ({math.floor(spe)} with drop_last=True), so "
                    "durations in epochs would fall between the epochs' ends: pass "
                    "steps_per_epoch=len(train_loader) (with gradient accumulation, the optimizer steps of "
                    "one epoch)",
                    UserWarning,
                    stacklevel=_caller_stacklevel() or 2,
                )
        if epochs is not None:
            _positive("epochs", epochs)
            if steps_per_epoch is None:
                raise ValueError(f"epochs={epochs!r} needs steps_per_epoch=... to count the steps")
            if total_steps is not None and total_steps != epochs * steps_per_epoch:
                raise ValueError(
                    f"total_steps={total_steps!r} disagrees with epochs * steps_per_epoch = "
                    f"{epochs!r} * {steps_per_epoch!r}; give one of them"
                )
            total_steps = round(epochs * steps_per_epoch)
        if total_steps is not None:
            _positive("total_steps", total_steps)
        if interval == "epoch" and steps_per_epoch is None:
            raise ValueError(
                "interval='epoch' needs steps_per_epoch=... (the schedule is a function of the step)"
            )
        if plateau is not None and not isinstance(plateau, Plateau):
            raise TypeError(
                f"plateau must be an lrkit.control.Plateau, got {type(plateau).__name__} {plateau!r}"
            )
        if plateau is not None and isinstance(plateau.min_lr, tuple) and len(plateau.min_lr) != n:
            raise ValueError(f"plateau: min_lr holds {len(plateau.min_lr)} values for {n} parameter groups")
        if not isinstance(sync, bool) and not (
            torch.distributed.is_available() and isinstance(sync, torch.distributed.ProcessGroup)
        ):
            raise TypeError(
                "sync must be True (report the mean metric over the ranks under torch.distributed), False "
                "(each rank's plateau sees its own metric) or a torch.distributed.ProcessGroup, got "
                f"{type(sync).__name__} {_short(sync)}"
            )
        #: under an initialized process group of more than one rank, :meth:`report` gives the plateau
        #: the mean of the ranks' metrics (True: the default group; or the ``ProcessGroup``); False: its own
        self.sync = sync

        raw, shared = _per_group(schedule, n, "schedule")
        if not relative:
            for s in raw:
                refuse_bare_warmup(
                    s,
                    " (relative=False, the default)",
                    "; or pass relative=True to warm up to each group's own lr",
                )
        resolved: dict[int, Schedule] = {}
        for s in raw:  # resolve each distinct schedule once, keeping identity for sharing
            if id(s) not in resolved:
                resolved[id(s)] = _resolve(s, total_steps, steps_per_epoch, "schedule")
        self.schedules: tuple[Schedule, ...] = tuple(resolved[id(s)] for s in raw)
        # the base LRs: a group's `initial_lr` when a scheduler has set one (torch's convention), else its lr
        base = [_group_float(g, "initial_lr" if "initial_lr" in g else "lr") for g in groups]
        if shared and not relative and n > 1 and len(set(base)) > 1:
            raise ValueError(
                f"schedule: one absolute schedule (relative=False) for {n} parameter groups whose lr differ "
                f"({base}) would give them all the same LR; pass relative=True to scale each "
                "group's own lr, with a schedule that is then a multiplier peaking at 1 (e.g. "
                "'warmup(5%) >> cosine(lr=1.0)', not one written in LRs), or one schedule per group. From "
                "lrkit.find_lr: set each group's lr to found.group_lrs() (for g, lr in "
                "zip(optimizer.param_groups, found.group_lrs()): g['lr'] = lr), then relative=True with a "
                "schedule peaking at 1"
            )
        if relative:
            _warn_relative_peak(self.schedules, base, total_steps)
        self.base_lrs: list[float] = base  # type: ignore[assignment]
        self.relative = relative
        self.interval = interval
        self.steps_per_epoch = None if steps_per_epoch is None else float(steps_per_epoch)
        # no `total_steps` attribute: accelerate takes a scheduler that has one for a OneCycleLR
        self._total_steps = None if total_steps is None else float(total_steps)
        #: torch's counter of step() calls; accelerate's AcceleratedScheduler adds to it during gradient
        #: accumulation (lrkit does not read it: the step counter is ``last_epoch``)
        self._step_count = 0
        #: :meth:`load_state_dict` accepts a state saved with another schedule (keeping its step,
        #: base LRs and cuts) instead of raising :class:`ScheduleMismatchError`; for loaders that call
        #: ``load_state_dict(state)`` themselves (Lightning, transformers, accelerate)
        self.allow_schedule_change = False
        self.plateau = plateau
        if plateau is not None:
            _claim_plateau(plateau, self, fresh=True)
        self.hparams: dict[str, tuple[Schedule, ...]] = {}
        if hparams is not None and not isinstance(hparams, Mapping):
            raise TypeError(
                "hparams must be a dict of hyperparameter name -> schedule, such as "
                f"{{'weight_decay': 'cosine(lr=0.05)'}}, got {type(hparams).__name__} {_short(hparams)}"
            )
        for key, value in (hparams or {}).items():
            self.hparams[key] = self._check_hparam(key, value, total_steps, steps_per_epoch)
        self._multiplier = 1.0
        #: per group: the product of the plateau's cuts (kept per group, as torch's eps rule is)
        self.plateau_cuts: list[float] = [1.0] * n
        for g in groups:  # for code that expects torch's convention; lrkit itself keeps base_lrs
            lr = g["lr"]
            g.setdefault("initial_lr", lr.clone() if isinstance(lr, torch.Tensor) else lr)

    def _check_hparam(
        self, key: str, value: object, total_steps: float | None, steps_per_epoch: float | None
    ) -> tuple[Schedule, ...]:
        groups = self.optimizer.param_groups
        if key in ("lr", "initial_lr", "params"):
            raise ValueError(
                f"hparams: {key!r} cannot be scheduled as a hyperparameter; the schedule sets lr"
            )
        for i, g in enumerate(groups):
            if key in ("beta1", "beta2"):
                betas = g.get("betas")
                if not isinstance(betas, tuple) or len(betas) != 2:
                    raise ValueError(
                        f"hparams: {key!r} needs a 'betas' pair in param_groups[{i}], got {betas!r} "
                        f"({type(self.optimizer).__name__})"
                    )
            elif key not in g:
                raise ValueError(
                    f"hparams: param_groups[{i}] of {type(self.optimizer).__name__} has no {key!r}; "
                    f"it has {sorted(k for k in g if k != 'params')}"
                )
            elif isinstance(g[key], bool) or not isinstance(g[key], (int, float)):
                raise ValueError(
                    f"hparams: param_groups[{i}][{key!r}] is {g[key]!r}, not a float to schedule"
                )
        raw, shared = _per_group(value, len(groups), f"hparams[{key!r}]")
        held = [_hparam_of(g, key) for g in groups]
        if shared and len(set(held)) > 1:
            raise ValueError(
                f"hparams[{key!r}]: one schedule for {len(groups)} parameter groups whose {key} differ "
                f"({held}) would give them all the same {key}; give one schedule per group, e.g. "
                f"hparams={{{key!r}: {_per_group_example(str(raw[0]), held)}}} (a constant keeps a group "
                f"at the {key} it has)"
            )
        return tuple(_resolve(s, total_steps, steps_per_epoch, f"hparams[{key!r}]") for s in raw)

    # -- evaluation (numpy, float64) -------------------------------------------------------------
    def _times(self, ks: np.ndarray) -> np.ndarray:
        return ks * self.steps_per_epoch if self.interval == "epoch" and self.steps_per_epoch else ks

    def _floors(self) -> list[float]:
        p = self.plateau
        return [0.0] * len(self.schedules) if p is None else [p.floor(i) for i in range(len(self.schedules))]

    def factors(self) -> list[float]:
        """Per group, what the schedule is multiplied by: :attr:`multiplier` times the plateau's cuts."""
        return [self._multiplier * c for c in self.plateau_cuts]

    def values(self, ks: np.ndarray | Sequence[int]) -> np.ndarray:
        """The LRs at scheduler steps ``ks``, shape ``(len(ks), groups)``, with the current controls.

        Each distinct schedule is evaluated once; the groups are then columns of one array operation."""
        t = self._times(np.asarray(ks, dtype=np.float64))
        n = len(self.schedules)
        if not n:
            return np.zeros((*t.shape, 0))
        return self._controlled(self._columns(self.schedules, t), self.relative)

    def _controlled(self, b: np.ndarray, relative: bool) -> np.ndarray:
        """Schedule values ``b`` (a column per group) as LRs with the current controls: times the base
        LRs when ``relative``, the multiplier and cuts, and the plateau's floor."""
        if relative:
            b = b * np.asarray(self.base_lrs, dtype=np.float64)
        out = b * np.asarray(self.factors(), dtype=np.float64)
        floors = np.asarray(self._floors(), dtype=np.float64)
        if (floors > 0.0).any():
            out = np.where(floors > 0.0, np.maximum(out, np.minimum(b, floors)), out)
        return out

    @staticmethod
    def _columns(schedules: Sequence[Schedule], t: np.ndarray) -> np.ndarray:
        """``schedules`` at times ``t``, one column each, shape ``(*t.shape, len(schedules))``; a schedule
        shared by several groups is evaluated once."""
        where: dict[int, int] = {}
        uniq: list[np.ndarray] = []
        idx: list[int] = []
        for s in schedules:
            if id(s) not in where:
                where[id(s)] = len(uniq)
                uniq.append(np.broadcast_to(np.asarray(s(t), dtype=np.float64), t.shape))
            idx.append(where[id(s)])
        return np.stack(uniq, axis=-1)[..., idx]

    def _hparam_values(self, ks: np.ndarray) -> dict[str, np.ndarray]:
        t = self._times(np.asarray(ks, dtype=np.float64))
        return {key: self._columns(ss, t) for key, ss in self.hparams.items()}

    def get_lr(self) -> list[float]:  # type: ignore[override]
        """The LRs (floats) for the current step, in closed form."""
        return [float(v) for v in self.values([self._current_step()])[0]]

    def _current_step(self) -> int:
        raise NotImplementedError

    # -- controllers -----------------------------------------------------------------------------
    @property
    def multiplier(self) -> float:
        """The product of the :meth:`scale` factors (the divergence guard's cuts); 1.0 when there were none.

        It multiplies every group's LR, on top of the plateau's cuts (:attr:`plateau_cuts`); setting it
        rewrites the current LRs at once.
        """
        return self._multiplier

    @multiplier.setter
    def multiplier(self, value: float) -> None:
        x = finite_real(value)  # numpy's numbers and 0-d tensors too
        if x is None or x < 0:
            raise ValueError(f"multiplier must be a finite number >= 0, got {_short(value)}")
        self._multiplier = x
        self._multiplier_changed()

    def scale(self, factor: float) -> None:
        """Multiply :attr:`multiplier` by ``factor`` (>= 0) and rewrite the current LRs at once."""
        x = finite_real(factor)  # numpy's numbers and 0-d tensors too
        if x is None or x < 0:
            raise ValueError(f"scale: factor must be a finite number >= 0, got {_short(factor)}")
        if not math.isfinite(self._multiplier * x):
            raise ValueError(
                f"scale: factor={x:g} times the multiplier {self._multiplier:g} overflows a float"
            )
        self.multiplier = self._multiplier * x

    def _multiplier_changed(self) -> None:
        raise NotImplementedError

    def report(self, metric: SupportsFloat) -> bool:
        """Give the plateau controller a metric; return True when it cut the LR (now, at once).

        A cut multiplies each group's entry of :attr:`plateau_cuts` by the plateau's ``factor``, except,
        as in torch's ``ReduceLROnPlateau``, for a group whose LR would move by ``eps`` or less (e.g. one
        already at ``min_lr``). The LR is then ``max(b * cuts * multiplier, min(b, min_lr))``.

        Under an initialized ``torch.distributed`` process group of more than one rank (``sync=True``,
        the default), the plateau sees the mean of the ranks' metrics (one all-reduce, in float64; a NaN
        on any rank makes it NaN), so every rank cuts alike and the replicas stay one model: every rank
        must report, as often as the others. ``sync=False``: each rank's plateau sees its own metric.
        """
        p = self.plateau
        if p is None:
            raise ValueError(
                "report: this scheduler has no plateau; pass plateau=Plateau(...) to lrkit.torch.scheduler"
            )
        _check_plateau_owner(p, self)
        metric = _mean_over_ranks(metric, getattr(self, "sync", True))
        if not p.offer(metric, self._current_step(), self._warmup_end()):
            return False
        current = self.values([self._current_step()])[0]
        cut = False
        for i, lr in enumerate(current.tolist()):
            if p.reduce(lr, i) != lr:
                self.plateau_cuts[i] *= p.factor
                cut = True
        if cut:
            self._multiplier_changed()
        else:
            p.cut_skipped()  # every group at min_lr or within eps: no cut made
        return cut

    def _drop_plateau_cuts(self) -> None:
        """No plateau cuts (its :meth:`Plateau.reset`), the current LRs rewritten without them."""
        if any(c != 1.0 for c in self.plateau_cuts):
            self.plateau_cuts = [1.0] * len(self.plateau_cuts)
            self._multiplier_changed()

    def _warmup_end(self) -> float:
        """Where the warmup the schedules begin with ends, in this scheduler's steps (epochs with
        ``interval="epoch"``): where :class:`Plateau`'s ``start="warmup"`` starts counting."""
        end = max((warmup_steps(s) for s in set(self.schedules)), default=0.0)
        spe = self.steps_per_epoch if self.interval == "epoch" and self.steps_per_epoch else 1.0
        return end / spe

    def _step_metric(self, metric: SupportsFloat) -> None:
        """``step(metric)``: the metric goes to the plateau; without one, say what the argument is, since
        torch's ``step(epoch)`` takes its place in code ported from torch."""
        if self.plateau is None:
            raise ValueError(
                f"step({_short(metric)}): the positional argument of lrkit's step() is a metric for the "
                "plateau (reduce-on-plateau), and this scheduler has no plateau; pass plateau=Plateau(...) "
                "to lrkit.torch.scheduler for one. torch's scheduler.step(epoch) is step(epoch=k) (or "
                "set_step(k)) here: k an integer count of this scheduler's steps (epochs with "
                "interval='epoch'), the LR of step k in closed form. For a fractional epoch (torch's "
                "CosineAnnealingWarmRestarts stepped with step(epoch + i / iters)), call step() after every "
                "optimizer step and give the schedule in epochs, e.g. cosine_restarts(lr=0.1, period=10ep) "
                "with steps_per_epoch=iters"
            )
        self.report(metric)

    # -- checkpoints -----------------------------------------------------------------------------
    def schedule_specs(self) -> dict[str, Any]:
        """What the LR curve is made of, as saved in :meth:`state_dict` and checked on load.

        ``schedule``: each group's schedule as its spec string, resolved to steps (so ``total_steps`` and
        ``steps_per_epoch`` are in it wherever they change the curve); ``relative``; ``hparams``: the spec
        strings of the other scheduled hyperparameters; and ``steps_per_epoch`` with ``interval="epoch"``
        (the step of scheduler step ``k`` is ``k * steps_per_epoch``).
        """
        return {
            "schedule": [str(s) for s in self.schedules],
            "relative": self.relative,
            "hparams": {key: [str(s) for s in ss] for key, ss in self.hparams.items()},
            "steps_per_epoch": self.steps_per_epoch if self.interval == "epoch" else None,
        }

    def state_dict(self) -> dict[str, Any]:
        """The step counter, base LRs, multiplier, plateau state and the schedule's specs: plain data.

        ``{"format", "last_epoch", "interval", "base_lrs", "multiplier", "plateau_cuts", "plateau",
        "schedule", "relative", "hparams", "steps_per_epoch", "total_steps"}``; ``total_steps`` is for
        the reader (what the curve depends on is in the resolved ``schedule`` strings).

        With ``interval="epoch"``, a state saved after one epoch of optimizer steps (``steps_per_epoch``,
        rounded up: a loader's ``len``) but before the ``step()`` that ends it also holds
        ``"epoch_pending": True``, and :meth:`load_state_dict` into a new scheduler (a resume) restores it
        one epoch on: the ``step()`` it waited for is one that a resumed run does not make. (Lightning
        saves the checkpoint of an epoch during its validation and, resuming, skips that epoch's update of
        a ``reduce_on_plateau`` scheduler; a loop that saves before its epoch's ``step(val_loss)`` resumes
        at the next epoch.) The metric of that skipped call is not given to the plateau.
        """
        state: dict[str, Any] = {
            "format": _FORMAT,
            "last_epoch": self._current_step(),
            "interval": self.interval,
            "base_lrs": list(self.base_lrs),
            "multiplier": self._multiplier,
            "plateau_cuts": list(self.plateau_cuts),
            "plateau": None if self.plateau is None else self.plateau.state_dict(),
            **self.schedule_specs(),
            "total_steps": self._total_steps,
        }
        if self._epoch_pending():
            state["epoch_pending"] = True
        return state

    def _epoch_pending(self) -> bool:
        """Whether an epoch of optimizer steps was taken since the last ``step()`` (interval='epoch')."""
        return False

    def _fresh(self) -> bool:
        """Whether this scheduler has not run yet (loading a state into it is a resume, not a rollback)."""
        return False

    def load_state_dict(
        self, state_dict: Mapping[str, Any], *, allow_schedule_change: bool | None = None
    ) -> None:
        """Restore a :meth:`state_dict` and write the LRs of the restored step into the optimizer.

        The base LRs come from the state, so the optimizer needs no ``initial_lr``. Every value is
        checked (a step ``>= 0``; base LRs, multiplier and cuts finite and ``>= 0``, cuts ``<= 1``) before
        anything changes, so a corrupt state raises ``ValueError``/``TypeError`` and leaves the scheduler
        as it was.

        A state saved with another schedule (another curve, ``total_steps`` that moves it, ``relative``,
        scheduled hyperparameters or, with ``interval="epoch"``, ``steps_per_epoch``) raises
        :class:`ScheduleMismatchError` showing both. To switch schedules on purpose, pass
        ``allow_schedule_change=True`` (or set the attribute :attr:`allow_schedule_change` when a
        framework calls ``load_state_dict`` for you): the step, base LRs, cuts and plateau state are
        restored and this scheduler's schedule runs on from that step. A state written before lrkit
        named the schedule in it (format ``lrkit.torch/1``) cannot be checked; it is loaded with an
        :class:`UserWarning` saying so. A state from a newer lrkit (a later ``format``) raises
        ``ValueError`` naming both formats; one missing a key its format always holds (truncated or
        edited) raises ``MissingStateKeys`` (a ``KeyError`` and a ``ValueError``) naming the keys.
        """
        if not isinstance(state_dict, Mapping):
            raise TypeError(
                "load_state_dict: state_dict must be a dict from state_dict(), got "
                f"{type(state_dict).__name__}"
            )
        state = state_dict
        if is_torch_plateau_state(state):
            self._load_torch_plateau(state)
            return
        missing = {"last_epoch", "base_lrs", "multiplier"} - set(state)
        torch_keys = sorted({"_last_lr", "_step_count"} & set(state))
        if missing and torch_keys:
            raise MissingStateKeys(
                "load_state_dict: this is the state_dict() of a torch scheduler (it has torch's "
                f"{torch_keys}), not of an lrkit.torch scheduler (missing {sorted(missing)}); lrkit "
                "does not read torch's internals. To go on from where it stopped, build the lrkit "
                "scheduler with the schedule the torch one ran and call "
                "scheduler.set_step(state['last_epoch']): last_epoch counts that scheduler's step() "
                "calls, so if it was stepped once per epoch, build this one with interval='epoch' and "
                "steps_per_epoch=..., or call set_step(state['last_epoch'] * steps_per_epoch) on one "
                "stepped per batch. From then on save this scheduler's state_dict()"
            )
        version = _format_version(state)  # a newer lrkit's state, or another format, raises
        if missing:
            raise MissingStateKeys(
                f"load_state_dict: not an lrkit.torch scheduler state (missing {sorted(missing)}; "
                f"got keys {sorted(map(str, state))})"
            )
        if allow_schedule_change is None:
            allow_schedule_change = self.allow_schedule_change
        if not isinstance(allow_schedule_change, bool):
            raise TypeError(f"allow_schedule_change must be True or False, got {allow_schedule_change!r}")
        if state.get("interval", self.interval) != self.interval:
            raise ValueError(
                f"load_state_dict: the state has interval={state['interval']!r} but this scheduler has "
                f"interval={self.interval!r}"
            )
        n = len(self.schedules)
        base = _state_numbers(state, "base_lrs", n)
        k = _step_index("load_state_dict: last_epoch", state["last_epoch"])
        pending = state.get("epoch_pending", False)
        if not isinstance(pending, bool):
            raise TypeError(
                f"load_state_dict: epoch_pending must be True or False, got {type(pending).__name__} "
                f"{_short(pending)}"
            )
        if pending and self.interval != "epoch":
            raise ValueError("load_state_dict: epoch_pending=True is for interval='epoch' states only")
        if pending and self._fresh():  # a resume: the epoch's step(), which the resumed run does not make
            k += 1
        cuts = _state_numbers(state, "plateau_cuts", n, high=1.0) if "plateau_cuts" in state else [1.0] * n
        multiplier = _state_number("multiplier", state["multiplier"])
        plateau_state = state.get("plateau")
        if plateau_state is not None:
            if self.plateau is None:
                raise ValueError(
                    "load_state_dict: the state holds reduce-on-plateau state but this scheduler has no "
                    "plateau; pass plateau=Plateau(...) as when it was saved"
                )
            self.plateau.check_state(plateau_state)
        _check_keys(state, version)
        changed = False
        if "schedule" in state:
            if not allow_schedule_change:
                self._check_same_schedule(state)
            else:
                changed = bool(self._schedule_diffs(state)[2])
        else:
            warnings.warn(
                "load_state_dict: this state was saved by an older lrkit and does not name its schedule, "
                "so it cannot be checked against this scheduler's "
                f"({self.schedule_specs()['schedule'][0]!r}...); save it again to have it checked",
                UserWarning,
                stacklevel=2,
            )
        # everything checked: now change
        if plateau_state is not None and self.plateau is not None:
            self.plateau.load_state_dict(plateau_state)
        self.base_lrs = base
        self.plateau_cuts = cuts
        self._multiplier = multiplier
        before = self._saved_lrs(state, int(k)) if changed else None
        self._restore(int(k))
        self._used = True
        if before is not None:
            self._warn_jump(before, int(k))

    def _load_torch_plateau(self, state: Mapping[str, Any]) -> None:
        """Go on from a ``torch.optim.lr_scheduler.ReduceLROnPlateau`` state: its best metric, bad-epoch
        and cooldown counters go to :attr:`plateau` (:meth:`Plateau.load_state_dict`: this plateau's
        settings stay), and its cuts to :attr:`plateau_cuts`: per group, ``_last_lr`` over this
        scheduler's LR without cuts at its current step (for ``constant(...)``, the LR the torch run
        started from). The step counter stays (torch's ``last_epoch`` counts metrics, not steps);
        ``num_reductions``, which torch does not keep, is read from the cuts (``log(cut) / log(factor)``
        with the torch run's ``factor``, the most of any group; one at ``min_lr`` may have had more)."""
        p = self.plateau
        if p is None:
            raise ValueError(
                "load_state_dict: this is the state_dict() of torch's ReduceLROnPlateau, and this scheduler "
                "has no plateau to go on with it; build it with plateau=Plateau(mode=..., factor=..., "
                "patience=..., ...) as the torch scheduler was, then load the state"
            )
        n = len(self.schedules)
        last = _state_numbers(state, "_last_lr", n)
        plateau_state = {key: state[key] for key in ("mode", "best", "num_bad_epochs", "cooldown_counter")}
        plateau_state["last_epoch"] = state.get("last_epoch", 0)
        t = self._times(np.asarray([self._current_step()], dtype=np.float64))
        uncut = self._columns(self.schedules, t)[0]
        if self.relative:
            uncut = uncut * np.asarray(self.base_lrs, dtype=np.float64)
        uncut = uncut * self._multiplier
        cuts = []
        for i, (lr, full) in enumerate(zip(last, uncut.tolist(), strict=True)):
            if not full > 0.0 or lr > full * (1.0 + 1e-9):
                raise ValueError(
                    f"load_state_dict: the torch ReduceLROnPlateau left group {i} at lr={lr!r} (_last_lr), "
                    f"but this scheduler's LR there without cuts is {full!r}; a cut is a factor in (0, 1]: "
                    "build this scheduler with the LR the torch run started from (constant(lr=...))"
                )
            cuts.append(min(lr / full, 1.0))
        factor = _real(state.get("factor"))
        made = 0
        for c in cuts:
            if c < 1.0:
                n_cuts = 1 if factor is None or not 0.0 < factor < 1.0 else math.log(c) / math.log(factor)
                made = max(made, max(1, round(n_cuts)))
        plateau_state["num_reductions"] = made
        p.check_state(plateau_state)
        if state.get("mode", p.mode) != p.mode:
            p.load_state_dict(plateau_state)  # raises, naming both modes
        mine = {
            "factor": p.factor, "patience": p.patience, "threshold": p.threshold,
            "threshold_mode": p.threshold_mode, "cooldown": p.cooldown, "eps": p.eps,
        }  # fmt: skip
        differ = [f"{k}={state[k]!r} (this plateau: {v!r})" for k, v in mine.items() if state.get(k, v) != v]
        if state.get("min_lrs") is not None:  # the floor of the cuts, one per group (torch's min_lr)
            floors = _state_numbers(state, "min_lrs", n)
            try:
                ours = [p.floor(i) for i in range(n)]
            except ValueError:  # a min_lr list of another length: Plateau.floor says so at the first cut
                ours = None
            if ours is not None and floors != ours:
                shown = list(p.min_lr) if isinstance(p.min_lr, tuple) else p.min_lr
                differ.append(f"min_lrs={floors!r} (this plateau's min_lr: {shown!r})")
        if differ:
            warnings.warn(
                "load_state_dict: the torch ReduceLROnPlateau ran with " + ", ".join(differ) + "; its "
                "counters go on under this plateau's settings",
                UserWarning,
                stacklevel=3,
            )
        p.load_state_dict(plateau_state)
        self.plateau_cuts = cuts
        self._used = True
        self._multiplier_changed()

    def _schedule_diffs(self, state: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, Any], list[str]]:
        """(this scheduler's specs, the state's, the keys where they differ)."""
        mine = self.schedule_specs()
        theirs = {key: state.get(key) for key in mine}
        if theirs["hparams"] is None:
            theirs["hparams"] = {}
        return mine, theirs, [key for key in mine if not _same_spec(key, theirs[key], mine[key])]

    def _saved_lrs(self, state: Mapping[str, Any], k: int) -> list[float] | None:
        """The LRs the state's own schedule gives at step ``k`` (with the restored base LRs, cuts and
        the plateau's floor, as :meth:`values` computes them), or None when its specs cannot be read."""
        from ..spec import SpecError, parse

        specs = state["schedule"]
        if not isinstance(specs, (list, tuple)) or len(specs) != len(self.schedules):
            return None
        try:
            curves = [parse(str(spec)) for spec in specs]
        except (SpecError, ValueError, TypeError):
            return None
        spe = state.get("steps_per_epoch") if self.interval == "epoch" else None
        t = float(k) * (float(spe) if isinstance(spe, (int, float)) and spe else 1.0)
        try:
            b = self._columns(curves, np.asarray(t, dtype=np.float64))
        except (ValueError, TypeError):  # not resolved to steps (a hand-edited state)
            return None
        return [float(v) for v in self._controlled(b, bool(state.get("relative")))]

    def _warn_jump(self, before: list[float], k: int) -> None:
        """After a load with ``allow_schedule_change``: warn when the new schedule's LR at the resume step
        is more than 1% away from the saved schedule's (a longer cosine resumed late jumps back up)."""
        after = self.values([k])[0].tolist()
        for i, (b, a) in enumerate(zip(before, after, strict=True)):
            if abs(a - b) <= 0.01 * max(abs(a), abs(b)):
                continue
            unit = "epoch" if self.interval == "epoch" else "step"
            ratio = f" ({a / b:.3g}x)" if b else ""
            warnings.warn(
                f"load_state_dict(allow_schedule_change=True): at the resume {unit} {k}, param_groups[{i}]'s "
                f"LR jumps from {b:.4g} (the saved schedule's) to {a:.4g} (this scheduler's){ratio}: the "
                "step, base LRs and cuts are kept and the new schedule goes on from its own value at that "
                "step. To extend a run without a jump, plan the schedule so that its start does not move "
                "with the run's length (WSD's constant phase: resume before its decay), or give the new "
                "run the old schedule followed by a new piece (old >> new). (Warned at this load.)",
                UserWarning,
                stacklevel=3,
            )
            return

    def _check_same_schedule(self, state: Mapping[str, Any]) -> None:
        mine, theirs, diffs = self._schedule_diffs(state)
        if not diffs:
            return

        def show(specs: dict[str, Any], total: object) -> str:
            parts = [f"{key}={specs[key]!r}" for key in diffs]
            return ", ".join([*parts, f"total_steps={total!r}"])

        raise ScheduleMismatchError(
            "load_state_dict: the state was saved with another schedule\n"
            f"  saved:     {show(theirs, state.get('total_steps'))}\n"
            f"  this one:  {show(mine, self._total_steps)}\n"
            "Build the scheduler as when it was saved to resume, or, to switch schedules on purpose "
            "(keep the step, base LRs and cuts, go on with this schedule), call "
            "load_state_dict(state, allow_schedule_change=True) or set scheduler.allow_schedule_change = True"
        )

    def _restore(self, k: int) -> None:
        raise NotImplementedError

    def __repr__(self) -> str:
        sched = (
            str(self.schedules[0])
            if len(set(map(id, self.schedules))) == 1
            else [str(s) for s in self.schedules]
        )
        return (
            f"{type(self).__name__}({sched!r}, relative={self.relative}, interval={self.interval!r}, "
            f"step={self._current_step()}, multiplier={self._multiplier:g})"
        )


#: ``found_inf`` flags of fused steps kept before they are folded into one (a tensor op, no host sync)
_FOUND_KEPT = 64


class _StepFlag:
    """The optimizer step post-hook (a module-level class, so a scheduler pickles and copies): whether
    the optimizer stepped since the scheduler did, and whether a ``GradScaler`` skipped all those steps.

    ``GradScaler`` does not call ``step()`` of an optimizer it skips, except a fused one, which it calls
    with a ``found_inf`` tensor (inf/NaN gradients: > 0) that the optimizer then applies or not; those
    flags are kept (no host sync) and read once, by :meth:`all_skipped`.
    """

    __slots__ = ("count", "ever", "found", "past", "past_warned", "reported", "stepped", "taken")

    def __init__(self) -> None:
        self.stepped = False
        self.ever = False  # the optimizer has stepped since the scheduler was made
        self.count = 0  # optimizer steps since the scheduler's last step()
        self.taken = False  # one of them was surely taken (called without a found_inf)
        self.found: list[torch.Tensor] = []  # else the found_inf flags of those fused steps
        self.reported = False  # step(metric) gave the plateau a metric since the optimizer last stepped
        #: armed by the scheduler past its run's end: (the message up to the LR, the advice); the next
        #: optimizer step warns (:class:`PastTheRunWarning`) and sets ``past_warned``
        self.past: tuple[str, str] | None = None
        self.past_warned = False

    def __call__(self, opt: Optimizer, args: Any, kwargs: Any) -> None:
        if self.past is not None:
            self._warn_past(opt, self.past)
        self.stepped = self.ever = True
        self.reported = False
        self.count += 1
        found = getattr(opt, "found_inf", None)
        if not isinstance(found, torch.Tensor):
            self.taken = True
        elif not self.taken:
            self.found.append(found)
            if len(self.found) >= _FOUND_KEPT:  # an epoch of fused steps: fold them, keep memory flat
                self.found = [self._least_found()]

    def _warn_past(self, opt: Optimizer, past: tuple[str, str]) -> None:
        self.past, self.past_warned = None, True
        lrs = [_group_float(g, "lr") for g in opt.param_groups]
        shown = f"{lrs[0]:.3g}" if len(lrs) == 1 else "[" + ", ".join(f"{v:.3g}" for v in lrs) + "]"
        warnings.warn(f"{past[0]}, {shown}. {past[1]}", PastTheRunWarning, stacklevel=_user_stacklevel())

    def all_skipped(self) -> bool:
        """Whether a ``GradScaler`` skipped every optimizer step since :meth:`reset` (a host sync only
        when they were all fused steps)."""
        if self.taken or not self.found:
            return False
        return bool((self._least_found() > 0).item())

    def _least_found(self) -> torch.Tensor:
        """The smallest ``found_inf`` kept (> 0: every one of those steps was skipped), on the device."""
        return torch.stack([f.reshape(()).float() for f in self.found]).amin()

    def reset(self) -> None:
        self.stepped = self.taken = False
        self.count = 0
        if self.found:  # no new list on every step (the hot path): only after fused steps
            self.found = []

    def load(self, other: _StepFlag) -> None:
        """Take ``other``'s state (a :meth:`copy` taken earlier): the LR finder puts it back, so that its
        optimizer steps do not count as the run's."""
        for name in _StepFlag.__slots__:
            setattr(self, name, getattr(other, name))
        self.found = list(other.found)

    def copy(self) -> _StepFlag:
        new = _StepFlag()
        new.stepped, new.ever, new.count, new.taken = self.stepped, self.ever, self.count, self.taken
        new.reported = getattr(self, "reported", False)  # a flag pickled by an older lrkit has none
        new.found = list(self.found)
        new.past, new.past_warned = getattr(self, "past", None), getattr(self, "past_warned", False)
        return new


def _user_stacklevel() -> int:
    """The ``stacklevel`` of a warning that points at the first frame outside torch and lrkit (from an
    optimizer step hook: the user's ``optimizer.step()`` or ``scaler.step(optimizer)``)."""
    import os

    ours = (
        os.path.dirname(torch.__file__) + os.sep,
        os.path.dirname(os.path.dirname(os.path.abspath(__file__))) + os.sep,
    )
    level = 1
    frame = sys._getframe(1)
    while frame.f_back is not None and frame.f_code.co_filename.startswith(ours):
        level += 1
        frame = frame.f_back
    return level


def _step_flags(optimizer: Optimizer) -> list[_StepFlag]:
    """The step flags of the lrkit schedulers following ``optimizer`` (their optimizer step hooks)."""
    try:
        opt = _hookable(optimizer)
    except TypeError:
        return []
    return [h for h in opt._optimizer_step_post_hooks.values() if isinstance(h, _StepFlag)]


def _follow(optimizer: Optimizer, follow_optimizer: bool) -> tuple[_StepFlag, Any]:
    """A scheduler's :class:`_StepFlag` and, with ``follow_optimizer``, the optimizer step hook that sets
    it (None without)."""
    if not isinstance(follow_optimizer, bool):
        raise TypeError(f"follow_optimizer must be True or False, got {follow_optimizer!r}")
    flag = _StepFlag()
    return flag, (_hookable(optimizer).register_step_post_hook(flag) if follow_optimizer else None)


def _hookable(optimizer: Optimizer) -> Optimizer:
    """The optimizer whose step hooks fire: ``optimizer`` itself, or, for a wrapper that subclasses
    ``Optimizer`` without calling its ``__init__`` (accelerate's ``AcceleratedOptimizer``, which steps
    the one it wraps only when gradients are synced and the scaler did not skip; timm's ``Lookahead``),
    the wrapped one (under :data:`WRAPPED`)."""
    opt = optimizer
    for _ in range(8):  # wrappers of wrappers, but never a cycle
        if hasattr(opt, "_optimizer_step_post_hooks"):
            return opt
        inner = next(
            (o for o in (getattr(opt, name, None) for name in WRAPPED) if isinstance(o, Optimizer)), None
        )
        if inner is None:
            break
        opt = inner
    raise TypeError(
        f"optimizer: {type(optimizer).__name__} has no step hooks and wraps no optimizer that has; "
        "pass follow_optimizer=False (step() then advances on every call)"
    )


# -- the host scheduler -----------------------------------------------------------------------------
class Scheduler(_Base):
    """An lrkit schedule driving a torch optimizer; a real :class:`~torch.optim.lr_scheduler.LRScheduler`.

    Build it with :func:`scheduler`. ``step()`` advances one step (or one epoch with
    ``interval="epoch"``) and writes the LRs (and scheduled hyperparameters) of the new step.

    With ``follow_optimizer=True`` (the default) ``step()`` advances only if the optimizer stepped since
    the last ``step()``: a step that ``GradScaler`` skipped (inf/NaN gradients) leaves the schedule where
    it is, and no warning is raised; with ``interval="epoch"`` an epoch advances when at least one of its
    optimizer steps was taken. (A fused optimizer, which ``GradScaler`` steps anyway, is passed
    ``found_inf`` flags; ``step()`` reads them: one host sync per call.) ``follow_optimizer=False``
    advances on every call.

    Anything that takes a torch scheduler takes it: Lightning (``{"scheduler": s, "interval": "step"}``;
    with ``"reduce_on_plateau": True`` and a ``"monitor"`` it calls ``step(metric)``), transformers
    (``Trainer(optimizers=(opt, s))``), accelerate. accelerate calls ``step()`` once per process per
    optimizer step (unless ``split_batches=True``); with ``follow_optimizer=True`` only the first call
    after an optimizer step advances, so the schedule counts optimizer steps either way, and a
    ``step(metric)`` repeated so reports its metric once. Built on
    accelerate's ``AcceleratedOptimizer`` (as ``Trainer.create_scheduler`` does), it follows the optimizer
    that wrapper steps, so micro-batches of a gradient accumulation do not advance it.

    Stepped once per epoch with ``interval="step"`` (Lightning's default interval, and what
    ``LightningCLI``'s ``--lr_scheduler`` does), a step-based schedule would run ``steps_per_epoch`` times
    too slowly: the first ``step()`` that follows more than one optimizer step raises an
    :class:`EpochwiseSteppingWarning` (once per scheduler). Use ``"interval": "step"`` or
    ``interval="epoch"`` with ``steps_per_epoch``. For reduce-on-plateau on a validation metric in
    Lightning, see ``examples/lightning_plateau.py``.

    Each ``step()`` (and :meth:`set_step`) first checks that every group still holds the float LR this
    scheduler wrote there last: one set by something else (torch's ``ReduceLROnPlateau``, another
    scheduler, a hand edit) is about to be overwritten, and an :class:`OverwrittenLRWarning` says so
    (once per scheduler); so does another lrkit scheduler stepped on the same optimizer.
    """

    _k: int  # the step counter (last_epoch)

    def __init__(
        self,
        optimizer: Optimizer,
        schedule: ScheduleLike | Sequence[ScheduleLike],
        *,
        follow_optimizer: bool = True,
        **kwargs: Any,
    ) -> None:
        super().__init__(optimizer, schedule, **kwargs)
        self.follow_optimizer = follow_optimizer
        self._flag, self._hook = _follow(optimizer, follow_optimizer)
        self._warned_epochwise = False
        # the scheduler steps of the run (epochs with interval='epoch'), when total_steps is known: at
        # its end a plateau never given a metric warns, and with interval='epoch' a step() past
        # epochs + 1 (stepped after every optimizer step?) warns; each once. step() looks at k >= _watch.
        self._run_end: int | None = None
        if self._total_steps is not None:
            per = self.steps_per_epoch if self.interval == "epoch" and self.steps_per_epoch else 1.0
            self._run_end = max(1, math.ceil(self._total_steps / per - 1e-9))
        self._warned_unfed = self.plateau is None
        self._warned_stepwise = self.interval != "epoch"
        # past the run's end (a schedule that ends: not constant, periodic...), the optimizer step taken
        # at scheduler step _run_end + _past_margin or later warns (PastTheRunWarning); step() arms the
        # flag's hook at _past_at (without a hook, follow_optimizer=False, step() warns one step later)
        # a step loop often steps once more at its end (passed); an epoch past an epoch loop's end is not
        self._past_margin = 1 if self.interval == "step" else 0
        self._past_text: tuple[str, str] | None = None  # (what the schedule covers, advice): auto's own
        self._past_at = MAX_STEPS + 1
        self._watch = self._next_watch()
        #: a state was loaded or a step set: loading another one is a rollback, not a resume (``_fresh``)
        self._used = False
        #: step() calls in a row that did not advance (no optimizer step taken since the call before)
        self._idle_calls = 0
        self._warned_idle = False  # NoOptimizerStepWarning was given (once per scheduler)
        self._blk0 = _NO_BLOCK
        #: steps per block: at most BLOCK_VALUES values in all (above MIN_BLOCK columns: MIN_BLOCK steps)
        columns = len(self.schedules) * (1 + len(self.hparams))
        self._block = max(MIN_BLOCK, min(BLOCK, BLOCK_VALUES // max(columns, 1)))
        # one list of floats per group (and per scheduled hyperparameter): no per-step containers
        self._cols: list[list[float]] = []
        self._col0: list[float] = []
        self._hp_cols: dict[str, list[list[float]]] = {}
        self._groups: list[dict[str, Any]] = []
        self._n_groups = 0  # len(self._groups) when bound: optimizer.add_param_group appends to the list
        self._simple = True
        self._one = False
        #: an LR found changed by someone else was warned about (:class:`OverwrittenLRWarning`, once)
        self._warned_overwrite = False
        #: a set_step() came before: the first move of a scheduler still at step 0 is not checked (a
        #: resume that loaded the optimizer's state, its LRs included, then jumps to the saved step)
        self._jumped = False
        #: whether the second advancing step() looked for another lrkit scheduler stepped on the optimizer
        #: (until then _bind leaves the fast path off); _peer_wait: the advancing steps before that look
        self._peers_checked = False
        self._peer_wait = 2
        self._restore(0)

    def __del__(self) -> None:
        hook = getattr(self, "_hook", None)
        if hook is not None:
            hook.remove()

    def __getstate__(self) -> dict[str, Any]:
        """For ``copy.deepcopy`` and pickle (``torch.save(scheduler)``): all but the hook's handle (the
        optimizer drops its hooks when it is copied or pickled; :meth:`__setstate__` registers anew)."""
        state = self.__dict__.copy()
        state["_hook"] = None
        state["_groups"], state["_n_groups"] = [], 0  # bound again to the optimizer at the next step
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        """Restore a copy and hook it to its optimizer (the copied one), with its own step flag: a branch
        advances exactly as the original would have."""
        self.__dict__.update(state)
        if isinstance(self.__dict__.get("plateau"), Plateau):
            _claim_plateau(self.__dict__["plateau"], self, fresh=False)
        if "last_epoch" in self.__dict__:  # pickled by an older lrkit (a plain attribute then)
            self._k = self.__dict__.pop("last_epoch")
        for key, old in (
            ("_run_end", None),
            ("_warned_unfed", True),
            ("_warned_stepwise", True),
            ("_past_margin", 1),
            ("_past_text", None),
            ("_past_at", MAX_STEPS + 1),
            ("_block", BLOCK),
            ("_used", self._flag.ever),
            ("_warned_overwrite", False),
            ("_peers_checked", True),
            ("_peer_wait", 0),
        ):
            self.__dict__.setdefault(key, old)  # pickled by an older lrkit
        self.__dict__.setdefault("_warned_idle", self.__dict__.get("_idle_calls", 0) >= IDLE_WARN)
        self._watch = self._next_watch()
        self._lim = min(self._block, self._watch - self._blk0)
        self._flag = self._flag.copy()
        self._hook = None
        if self.follow_optimizer:
            self._hook = _hookable(self.optimizer).register_step_post_hook(self._flag)

    @property
    def last_epoch(self) -> int:
        """The step counter: scheduler steps taken (epochs with ``interval="epoch"``). Setting it is
        :meth:`set_step`."""
        return self._k

    @last_epoch.setter
    def last_epoch(self, k: int) -> None:
        _refuse_nesting(k)
        self.set_step(k)

    def _current_step(self) -> int:
        return self._k

    def _epoch_pending(self) -> bool:
        flag = self._flag
        if self.interval != "epoch" or not self.follow_optimizer or not flag.stepped:
            return False
        return flag.count == self._epoch_batches() and not flag.all_skipped()

    def _epoch_batches(self) -> int:
        """The optimizer steps of one epoch, a loader's ``len``: ``ceil(steps_per_epoch)`` (``floor`` with
        ``drop_last`` is not told apart from a checkpoint that many batches into a longer epoch)."""
        return math.ceil(self.steps_per_epoch or 1.0)

    def _fresh(self) -> bool:
        """Not yet at the end of its first epoch: never advanced or loaded into, and fewer than an epoch of
        optimizer steps since it was made (a step before the load, e.g. one that creates AdamW's state, or
        the LR finder's steps, which it puts back, leave a new scheduler fresh)."""
        return self.last_epoch == 0 and not self._used and self._flag.count < self._epoch_batches()

    # -- blocks ----------------------------------------------------------------------------------
    def _fill(self, k: int) -> None:
        """Evaluate the aligned block holding step ``k``."""
        k0 = k - k % self._block
        ks = np.arange(k0, k0 + self._block, dtype=np.float64)
        self._cols = self.values(ks).T.tolist()
        self._col0 = self._cols[0] if self._cols else []
        self._hp_cols = {key: v.T.tolist() for key, v in self._hparam_values(ks).items()}
        self._blk0 = k0
        self._lim = min(self._block, self._watch - k0)

    def _bind(self) -> None:
        """Look at the optimizer's groups: floats only and no hyperparameters take the fast path."""
        groups = self.optimizer.param_groups
        if len(groups) != len(self.schedules):
            raise _groups_changed(len(groups), len(self.schedules))
        self._groups = groups
        self._n_groups = len(groups) if self._peers_checked else -1  # -1: step() takes the slow path
        self._simple = not self.hparams and not any(isinstance(g["lr"], torch.Tensor) for g in groups)
        self._one = len(groups) == 1

    def _write(self, k: int) -> None:
        """Write the values of step ``k`` (any path: tensors, hyperparameters, a new block)."""
        if not 0 <= k - self._blk0 < self._block:
            self._fill(k)
        self._bind()
        i = k - self._blk0
        hp = [(key, [c[i] for c in cols]) for key, cols in self._hp_cols.items()]
        for gi, g in enumerate(self._groups):
            v = self._cols[gi][i]
            lr = g["lr"]
            if isinstance(lr, torch.Tensor):
                lr.fill_(v)
            else:
                g["lr"] = v
            for key, vals in hp:
                if key == "beta1":
                    g["betas"] = (vals[gi], g["betas"][1])
                elif key == "beta2":
                    g["betas"] = (g["betas"][0], vals[gi])
                else:
                    g[key] = vals[gi]

    def _restore(self, k: int) -> None:
        self._k = k
        self._blk0 = _NO_BLOCK
        self._flag.reset()
        self._rearm_past()
        self._write(k)

    def _ends(self) -> bool:
        """Whether the run has an end where a schedule stops and holds its last value (a constant or a
        periodic schedule, or no ``total_steps``, has none)."""
        return self._run_end is not None and any(s.length_steps is not None for s in self.schedules)

    def _rearm_past(self) -> None:
        """Watch for an optimizer step past the run from the current step on (a jump back disarms; a jump
        past the end warns only once stepping goes on there)."""
        self._flag.past = None
        self._past_at = MAX_STEPS + 1
        if self._ends() and not self._flag.past_warned:
            assert self._run_end is not None
            self._past_at = self._run_end + self._past_margin + (0 if self.follow_optimizer else 1)
        self._watch = self._next_watch()
        if self._blk0 != _NO_BLOCK:
            self._lim = min(self._block, self._watch - self._blk0)

    def _watch_past(self, margin: int, covers: str, advice: str) -> None:
        """Warn at an optimizer step ``margin`` steps or more past the run (0: the first one), saying
        ``covers`` and ``advice`` (:func:`lrkit.auto` names its ``remaining_steps``)."""
        self._past_margin = margin
        self._past_text = (covers, advice)
        self._rearm_past()

    def _multiplier_changed(self) -> None:
        self._blk0 = _NO_BLOCK
        self._write(self.last_epoch)

    # -- the public step -------------------------------------------------------------------------
    def step(self, metric: SupportsFloat | None = None, *, epoch: int | None = None) -> None:  # type: ignore[override]
        """Advance one step and write the new LRs.

        ``metric`` (as Lightning passes with ``reduce_on_plateau``) is given to the plateau first, see
        :meth:`report`. ``epoch=k`` jumps to step ``k`` instead (closed form, like :meth:`set_step`).
        With ``follow_optimizer=True``, as a repeated ``step()`` advances once per optimizer step, a
        repeated ``step(metric)`` reports once: a metric given since the optimizer last stepped was
        already this update's (accelerate's scheduler calls ``step(metric)`` once per process).
        """
        if metric is not None or epoch is not None:
            if epoch is not None:  # checked first, by its own name (set_step would say k)
                epoch = _step_index("step: epoch", epoch)
            if metric is not None and not (self.follow_optimizer and self._flag.reported):
                self._step_metric(metric)
                self._flag.reported = True
            if epoch is not None:
                self.set_step(epoch)
                return
        count = 1  # optimizer steps since the last step(): unknown unless the scheduler follows them
        if self.follow_optimizer:
            flag = self._flag
            count = flag.count
            if not flag.stepped:
                self._idle_calls += 1
                if self._idle_calls == IDLE_WARN:
                    self._warn_idle(flag.ever)
                return
            # more optimizer steps than the whole run before one step(): total_steps counts step() calls
            # (a cosine over EPOCHS stepped once an epoch, as torch's T_max=EPOCHS), not a slip
            if (
                count > 1
                and not self._warned_epochwise
                and self.interval == "step"
                and not (self._total_steps is not None and count > self._total_steps)
            ):
                self._warn_epochwise(count)
            skipped = flag.all_skipped()
            flag.reset()
            if skipped:  # a GradScaler skipped every optimizer step since the last call
                self._idle_calls += 1
                if self._idle_calls == IDLE_WARN:
                    self._warn_idle(True)
                return
            self._idle_calls = 0
        k = self._k + 1
        self._k = k
        i = k - self._blk0
        groups = self._groups
        if (
            i >= self._lim  # the block's end, or the step to look at (_watch)
            or not self._simple
            or self.optimizer.param_groups is not groups
            or len(groups) != self._n_groups
        ):
            if k >= self._watch:
                self._look(k, count)
            if not self._peers_checked:
                self._check_peers(count)
            self._check_lrs(k - 1)
            self._write(k)
        elif self._one:  # each group still holds what this scheduler wrote at step k - 1 (else: warn)
            g = groups[0]
            if g["lr"] != self._col0[i - 1]:
                self._overwritten(g, k - 1)
            g["lr"] = self._col0[i]
        else:
            j = i - 1
            for g, c in zip(groups, self._cols):  # zip(strict=False) costs ~0.1 us a call here
                if g["lr"] != c[j]:
                    self._overwritten(g, k - 1)
                g["lr"] = c[i]

    def _check_lrs(self, k: int, then: int | None = None) -> None:
        """Warn (:class:`OverwrittenLRWarning`) if a group's float LR is not the one this scheduler wrote
        there at step ``k`` (a tensor LR is not read: on a GPU that would be a host sync), before the
        LRs of step ``then`` (default ``k + 1``) are written."""
        i = k - self._blk0
        if self._warned_overwrite or not 0 <= i < self._block:
            return
        for g, c in zip(self.optimizer.param_groups, self._cols, strict=False):
            lr = g["lr"]
            if not isinstance(lr, torch.Tensor) and lr != c[i]:
                self._overwritten(g, k, then)
                return

    def _overwritten(self, g: Mapping[str, Any], k: int, then: int | None = None) -> None:
        """Group ``g`` holds an LR other than the one written at step ``k``, which is about to be
        overwritten by that of step ``then`` (default ``k + 1``): say so, once per scheduler."""
        if self._warned_overwrite:
            return
        self._warned_overwrite = True
        groups = self.optimizer.param_groups
        gi = next((j for j, h in enumerate(groups) if h is g), 0)
        wrote, found = self._cols[gi][k - self._blk0], _group_float(g, "lr")
        peers = len(self._peers())
        other = (
            f"{peers} other lrkit scheduler{'s' if peers > 1 else ''} follow{'' if peers > 1 else 's'} this "
            "optimizer and write their own LRs: keep one scheduler per optimizer. "
            if peers
            else ""
        )
        warnings.warn(
            f"lrkit.torch scheduler: param_groups[{gi}]['lr'] is {found:.6g}, not the {wrote:.6g} this "
            f"scheduler wrote there at its step {k}; "
            + ("step()" if then is None else "set_step()")
            + f" now writes the LR of its step {k + 1 if then is None else then} over it, "
            f"so whatever changed it is undone. {other}Likely causes: torch's ReduceLROnPlateau beside it "
            "(its cut lasts less than a step: use lrkit's Plateau, plateau=Plateau(...) and "
            "scheduler.report(metric)); a second scheduler on this optimizer, lrkit's or torch's (one "
            "scheduler per optimizer: compose schedules with >> and *, or give one schedule per group); a "
            "hand edit of the LR (for a manual drop, scheduler.scale(0.1): the cut then lasts); "
            "optimizer.load_state_dict without the scheduler's load_state_dict. (Warned once per "
            "scheduler.)",
            OverwrittenLRWarning,
            stacklevel=_user_stacklevel(),
        )

    def _peers(self) -> list[_StepFlag]:
        """The step flags of the other lrkit schedulers following this optimizer."""
        return [f for f in _step_flags(self.optimizer) if f is not self._flag]

    def _check_peers(self, count: int) -> None:
        """At the second advancing step(): another lrkit scheduler following this optimizer and stepped
        since this one's first step (its flag counts no more optimizer steps than this one's, ``count``)
        writes its LRs too, and the one stepped last wins (:class:`OverwrittenLRWarning`, once). One that
        is only still referenced (an old scheduler in a variable, in accelerate's list) has counted every
        optimizer step since: it is not warned about."""
        self._peer_wait -= 1
        if self._peer_wait > 0:
            return
        self._peers_checked = True
        peers = len([f for f in self._peers() if f.count <= count])
        if not peers or self._warned_overwrite:
            return
        self._warned_overwrite = True
        warnings.warn(
            f"lrkit.torch scheduler: {peers} other lrkit scheduler{'s' if peers > 1 else ''} also "
            f"step{'' if peers > 1 else 's'} this optimizer ({type(self.optimizer).__name__}); each writes "
            "its own LRs at every step, so the one stepped last wins and the other's schedule, cuts and "
            "plateau are lost. Keep one scheduler per optimizer: compose schedules with >> (one after "
            "another) and * (a product), or give one schedule per parameter group; to replace a scheduler, "
            "stop stepping the old one. (Warned once per scheduler.)",
            OverwrittenLRWarning,
            stacklevel=_user_stacklevel(),
        )

    def _warn_idle(self, stepped_before: bool) -> None:
        if self._warned_idle:
            return
        self._warned_idle = True
        if stepped_before:
            warnings.warn(
                f"lrkit.torch scheduler: step() was called {IDLE_WARN} times in a row with no optimizer step "
                f"taken in between, so the schedule stands at step {self._k}: the optimizer stepped before, "
                "and now every step is skipped or not made. With a GradScaler this is a scale collapsing on "
                "inf/NaN gradients (each skipped step halves it: see scaler.get_scale()); check the loss "
                "and gradients for inf/NaN. Otherwise optimizer.step() is no longer called before "
                "scheduler.step(). (Warned once per scheduler; harmless when step() follows each "
                f"micro-batch of a gradient accumulation over more than {IDLE_WARN}.)",
                NoOptimizerStepWarning,
                stacklevel=3,
            )
            return
        warnings.warn(
            f"lrkit.torch scheduler: step() was called {IDLE_WARN} times and the optimizer has not stepped "
            "once, so the schedule has not moved: it counts optimizer steps (follow_optimizer=True, so "
            "that steps a GradScaler skips do not count). Call optimizer.step() before scheduler.step(); "
            "to step it on its own (e.g. to preview the LRs), build it with follow_optimizer=False, or "
            "evaluate the schedule itself: schedule(numpy.arange(n)). (Warned once per scheduler; harmless "
            f"when step() follows each micro-batch of a gradient accumulation over more than {IDLE_WARN}.)",
            NoOptimizerStepWarning,
            stacklevel=3,
        )

    def _warn_epochwise(self, n: int) -> None:
        self._warned_epochwise = True
        warnings.warn(
            f"lrkit.torch scheduler: step() was called once for {n} optimizer steps, but interval='step' "
            "advances the schedule one optimizer step per call, so it runs "
            f"{n}x too slowly. Call step() after every optimizer step (Lightning: "
            '{"scheduler": s, "interval": "step"}; LightningCLI steps a scheduler once per epoch), or build '
            "it with interval='epoch' and steps_per_epoch=... . If total_steps counts your step() calls on "
            "purpose (an LR annealed once per PPO rollout, a discriminator's scheduler stepped once per "
            "generator step), build it with follow_optimizer=False: it then advances once per step() call, "
            "whatever the optimizer did, and this warning goes away. (Warned once per scheduler.)",
            EpochwiseSteppingWarning,
            stacklevel=3,
        )

    def _next_watch(self) -> int:
        """The next step at which :meth:`step` calls :meth:`_look`."""
        end = self._run_end
        if end is None:
            return MAX_STEPS + 1
        due = [end] if not self._warned_unfed else []
        if not self._warned_stepwise:
            due.append(end + 2)
        due.append(getattr(self, "_past_at", MAX_STEPS + 1))
        return min(due)

    def _look(self, k: int, count: int = 1) -> None:
        """At a step :meth:`_next_watch` named: the run's end (a plateau never fed) and two epochs past
        it (interval='epoch' stepped after every optimizer step: ``count`` below an epoch's)."""
        end = self._run_end
        if end is None:  # no end to look at (_watch is past any step)
            return
        if not self._warned_unfed and k >= end:
            self._warned_unfed = True
            if self.plateau is not None and self.plateau.last_epoch == 0:
                self._warn_unfed(k)
        if not self._warned_stepwise and k >= end + 2:
            self._warned_stepwise = True  # once an epoch's steps came between two step() calls: epoch-wise
            if count < self._epoch_batches():
                self._warn_stepwise(k, end)
                self._flag.past_warned = True  # the run is not too long: it is stepped too often
                self._past_at = MAX_STEPS + 1
        if k >= self._past_at:
            self._look_past(k, count, end)
        self._watch = self._next_watch()
        self._lim = min(self._block, self._watch - self._blk0)

    def _look_past(self, k: int, count: int, end: int) -> None:
        """At step ``k`` past the run's end: arm the optimizer step hook, whose next call warns
        (:class:`PastTheRunWarning`), or, without a hook (``follow_optimizer=False``), warn now."""
        self._past_at = MAX_STEPS + 1
        if self.interval == "epoch" and not self._warned_stepwise and count < self._epoch_batches():
            self._past_at = end + 2  # stepped after every optimizer step? the stepwise check there says
            return
        n = k + 1 if self.follow_optimizer else k  # the optimizer step (1-based) past the run
        total = f"total_steps={self._total_steps:g}"
        if self._past_text is not None:
            covers, advice = self._past_text
            where = "lrkit.auto"
        else:
            where = "lrkit.torch scheduler"
            covers = (
                f"its schedule covers {end} epochs ({total}, steps_per_epoch={self.steps_per_epoch:g})"
                if self.interval == "epoch"
                else f"its schedule covers {total} optimizer steps"
            )
            advice = (
                "The run is longer than the schedule: give lrkit.torch.scheduler the total_steps (or epochs "
                "and steps_per_epoch) of the optimizer steps the loop takes, e.g. "
                "steps_per_epoch=len(train_loader) rather than a number written down before the batch size "
                "changed (with gradient accumulation, the optimizer steps of one epoch). (Warned once per "
                "scheduler"
                + ("; the first step past the end passes unwarned.)" if self.interval == "step" else ".)")
            )
        this = f"epoch {n}" if self.interval == "epoch" else f"step {n}"
        head = (
            f"{where}: the optimizer stepped past the run: {covers}, this is {this}, and past them "
            "the LR stays at its last value"
        )
        if self.follow_optimizer:
            self._flag.past = (head, advice)
        else:
            self._flag.past_warned = True
            self._flag._warn_past(self.optimizer, (head, advice))

    def _warn_unfed(self, k: int) -> None:
        where = "epoch" if self.interval == "epoch" else "step"
        held = getattr(self.plateau, "skipped", 0)
        head = (
            f"lrkit.torch scheduler: the run has reached its last {where} ({k}, total_steps="
            f"{self._total_steps:g})"
        )
        if held:  # fed, but only during the warmup
            said = (
                f" and the plateau has not cut the LR: the {plural(held, 'metric')} given to it all came "
                f"during the schedule's warmup (before {where} {self._warmup_end():g}), and "
                "Plateau(start='warmup'), the default, skips those. Report metrics after the warmup too, or "
                f"count them: Plateau(start=0) counts every metric, start=k those from scheduler {where} k."
            )
        else:
            said = (
                " and the plateau has not been given a metric yet, so it has not cut the LR (a metric given "
                "only after the run's last step comes too late to cut it). Give it each evaluation's metric "
                "with scheduler.report(metric) (or step(metric)). transformers' Trainer feeds only torch's "
                "ReduceLROnPlateau: use lrkit.transformers.Trainer(schedule=..., plateau=...) or "
                "trainer.add_callback(lrkit.transformers.PlateauCallback(trainer)); accelerate: the lrkit "
                "scheduler inside the prepared one, prepared.scheduler.report(metric); Lightning: report() "
                "in on_validation_epoch_end (examples/lightning_plateau.py)."
            )
        warnings.warn(
            f"{head}{said} (Warned once per scheduler.)",
            UnfedPlateauWarning,
            stacklevel=4,  # step() -> _look() -> here
        )

    def _warn_stepwise(self, k: int, epochs: int) -> None:
        spe = self.steps_per_epoch or 1.0
        warnings.warn(
            f"lrkit.torch scheduler: interval='epoch' advances the schedule one epoch ({spe:g} optimizer "
            f"steps, steps_per_epoch) per step() call, and step() has advanced it {k} times, more than the "
            f"run's {epochs} epochs (total_steps={self._total_steps:g}) + 1: stepped after every optimizer "
            f"step, it runs {spe:g}x too fast. Call step() once per epoch (Lightning: "
            '{"scheduler": s, "interval": "epoch"}), or, where step() follows every optimizer step '
            '(transformers\' Trainer, accelerate, Lightning\'s "interval": "step"), build it with '
            "interval='step' (the default). (Warned once per scheduler.)",
            StepwiseSteppingWarning,
            stacklevel=4,  # step() -> _look() -> here
        )

    def set_step(self, k: int) -> None:
        """Jump to scheduler step ``k`` (closed form) and write its LRs."""
        k = _step_index("set_step: k", k)
        if self._jumped or self._k > 0:  # not the first move of a new scheduler (a resume's jump)
            self._check_lrs(self._k, k)
        self._jumped = True
        self._k = k
        self._rearm_past()
        if k >= self._past_at and self._run_end is not None:  # a set_step-driven loop past the run's
            # end: the next optimizer step warns (without a hook, this call), as a step() there would
            self._look_past(k, self._epoch_batches(), self._run_end)
            self._watch = self._next_watch()
        self._write(k)

    def get_last_lr(self) -> list[float]:  # type: ignore[override]
        """The LRs written by the last step (floats, one per group)."""
        i = self.last_epoch - self._blk0
        return [c[i] for c in self._cols]


# -- the in-graph scheduler -------------------------------------------------------------------------
class GraphScheduler(_Base):
    """The LR computed on the device from a step-counter tensor, for ``torch.compile`` and CUDA graphs.

    Every group's ``lr`` must be a tensor (``torch.optim.AdamW(params, lr=torch.tensor(1e-3,
    device=...), capturable=True)``). ``step()`` is ``counter += 1`` and ``lr.copy_(f(counter))`` in
    tensor operations: no host sync, nothing for ``torch.compile`` to specialise on, so one graph serves
    every LR, and inside a captured CUDA graph each replay advances the schedule.

    ``fuse=True`` (default on CUDA) compiles the update into one kernel when it runs outside a compiled
    region, e.g. while a CUDA graph is being captured; inside ``torch.compile`` it is traced as is. Run a
    few steps before capturing (compilation cannot happen during capture), then :meth:`set_step`.

    The counter is the truth: :attr:`last_epoch`, :meth:`state_dict` and :meth:`report` read it (one host
    sync each). By default every call advances, a step that ``GradScaler`` skipped included (unlike
    the host scheduler). ``follow_optimizer=True`` advances only over optimizer steps taken, as the host
    scheduler does: its optimizer step hook tells the host whether the optimizer stepped (GradScaler
    decides a skip on the host, with a sync of its own), and a fused optimizer's ``found_inf`` flags
    pick the increment on the device (no host sync). Under ``torch.compile`` that host flag is a guard
    (one graph for a taken step, one for a skipped one); a captured CUDA graph replays the increment of
    its capture, so there it is for graphs recaptured per step only. Stepping past ``total_steps`` does
    not warn (the counter is on the device). Call :meth:`step` after the optimizer step *or*
    :meth:`begin_step` before the forward, never both: the second kind of call raises ``RuntimeError``
    (checked outside a compiled region). Changing :attr:`multiplier` writes a device tensor; changing
    the base LRs (``load_state_dict``) rebuilds the update, so a captured CUDA graph must be re-captured.
    """

    def __init__(
        self,
        optimizer: Optimizer,
        schedule: ScheduleLike | Sequence[ScheduleLike],
        *,
        fuse: bool | None = None,
        follow_optimizer: bool = False,
        **kwargs: Any,
    ) -> None:
        if kwargs.get("hparams"):
            raise ValueError(
                "hparams: in_graph=True schedules the lr only; schedule other hyperparameters with the "
                "default (host) scheduler"
            )
        super().__init__(optimizer, schedule, **kwargs)
        lrs = [g["lr"] for g in optimizer.param_groups]
        for i, lr in enumerate(lrs):
            if not isinstance(lr, torch.Tensor):
                raise TypeError(
                    f"in_graph=True needs a tensor lr in every parameter group; param_groups[{i}]['lr'] is "
                    f"{type(lr).__name__} {lr!r}: build the optimizer with "
                    f"lr=torch.tensor({lr!r}, device=...)"
                )
        devices = {lr.device for lr in lrs}
        if len(devices) != 1:
            raise ValueError(
                f"in_graph=True needs every group's lr on one device, got {sorted(map(str, devices))}"
            )
        device = lrs[0].device
        if fuse is None:
            fuse = device.type == "cuda"
        if not isinstance(fuse, bool):
            raise TypeError(f"fuse must be True, False or None, got {fuse!r}")
        self.fuse = fuse
        #: the device step counter (int64, 0-d); ``step()`` adds 1 to it in place
        self.step_tensor = torch.zeros((), dtype=torch.int64, device=device)
        self._mult = torch.ones(len(lrs), dtype=torch.float64, device=device)
        self._inc = torch.ones((), dtype=torch.int64, device=device)  # step(): counter += 1
        self._no_inc = torch.zeros((), dtype=torch.int64, device=device)  # set_step(): rewrite only
        # which advancing call ran, step() or begin_step(): set (never read) inside a compiled region, so
        # dynamo adds no guard, and checked outside one (_check_one_kind)
        self._stepped = self._begun = False
        #: advance only over optimizer steps that were taken (the host scheduler's step hook flag)
        self.follow_optimizer = follow_optimizer
        self._flag, self._hook = _follow(optimizer, follow_optimizer)
        self._minus = torch.full((), -1, dtype=torch.int64, device=device)  # begin_step(): undo a skip
        self._restore(0)

    def __del__(self) -> None:
        hook = getattr(self, "_hook", None)
        if hook is not None:
            hook.remove()

    def _taken(self, yes: torch.Tensor, no: torch.Tensor) -> torch.Tensor | None:
        """With ``follow_optimizer``: ``yes`` when an optimizer step was taken since the last call, ``no``
        when a ``GradScaler`` skipped them all, None when the optimizer has not stepped; a fused
        optimizer's skips are its ``found_inf`` flags, read on the device (no host sync)."""
        flag = self._flag
        if not flag.stepped:
            return None
        out = yes
        if not flag.taken and flag.found:  # fused steps only: the choice is made on the device
            out = torch.where(flag._least_found() > 0, no, yes)
        flag.reset()
        return out

    # -- the update, built from constants --------------------------------------------------------
    def _build(self) -> None:
        from array_api_compat import array_namespace

        xp = array_namespace(self.step_tensor)
        uniq: list[Schedule] = []
        index: list[int] = []
        for s in self.schedules:
            j = next((j for j, u in enumerate(uniq) if u is s), -1)
            if j < 0:
                uniq.append(s)
                j = len(uniq) - 1
            index.append(j)
        scheds = tuple(uniq)
        idx = tuple(index)
        bases = tuple(self.base_lrs) if self.relative else (None,) * len(idx)
        floors = tuple(self._floors())
        spe = self.steps_per_epoch if self.interval == "epoch" else None

        def update(
            t: torch.Tensor,
            inc: torch.Tensor,
            post: torch.Tensor,
            mult: torch.Tensor,
            lrs: list[torch.Tensor],
        ) -> None:
            t.add_(inc)
            tf = t.to(torch.float64)
            if spe is not None:
                tf = tf * spe
            vals = [s(tf, xp=xp) for s in scheds]
            for i, (lr, j, base, floor) in enumerate(zip(lrs, idx, bases, floors, strict=False)):
                b = vals[j] if base is None else vals[j] * base
                out = b * mult[i]
                if floor > 0.0:
                    out = torch.maximum(out, torch.clamp(b, max=floor))
                lr.copy_(out)
            t.add_(post)

        self._update_raw: Callable[..., None] = update
        self._update_fused: Callable[..., None] | None = None

    def _update(self, inc: torch.Tensor, post: torch.Tensor) -> None:
        """``counter += inc``, write the LRs of the counter, ``counter += post``: traced as is inside a
        compiled region, else (``fuse``) one compiled kernel, compiled on first use (the increments are
        tensors, so step, begin_step and set_step share it)."""
        fn = self._update_raw
        if self.fuse and not torch.compiler.is_compiling():
            if self._update_fused is None:
                self._update_fused = torch.compile(self._update_raw, fullgraph=True, dynamic=False)
            fn = self._update_fused
        fn(self.step_tensor, inc, post, self._mult, self._lrs())

    def __getstate__(self) -> dict[str, Any]:
        """For ``copy.deepcopy`` and pickle: all but the update function (a closure, and its compiled
        kernel), which :meth:`__setstate__` builds again from the same constants."""
        state = self.__dict__.copy()
        state["_update_raw"] = state["_update_fused"] = None
        state["_hook"] = None
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        if isinstance(self.__dict__.get("plateau"), Plateau):
            _claim_plateau(self.__dict__["plateau"], self, fresh=False)
        for key, old in (("follow_optimizer", False), ("_flag", _StepFlag()), ("_stepped", False)):
            self.__dict__.setdefault(key, old)  # pickled by an older lrkit
        self.__dict__.setdefault("_begun", False)
        self.__dict__.setdefault("_minus", torch.full((), -1, dtype=torch.int64, device=self._inc.device))
        self._flag = self._flag.copy()
        self._hook = None
        if self.follow_optimizer:
            self._hook = _hookable(self.optimizer).register_step_post_hook(self._flag)
        self._build()

    def _lrs(self) -> list[torch.Tensor]:
        groups = self.optimizer.param_groups
        if len(groups) != len(self.schedules):
            raise _groups_changed(len(groups), len(self.schedules))
        return [g["lr"] for g in groups]

    # -- state -----------------------------------------------------------------------------------
    @property
    def last_epoch(self) -> int:
        """The step counter, read from the device (a host sync)."""
        return int(self.step_tensor.item())

    @last_epoch.setter
    def last_epoch(self, k: int) -> None:
        _refuse_nesting(k)
        self.set_step(k)

    def _current_step(self) -> int:
        return self.last_epoch

    def _restore(self, k: int) -> None:
        self._flag.reset()
        self._fill_mult()
        self._build()
        self.set_step(k)

    def _fill_mult(self) -> None:
        for i, f in enumerate(self.factors()):  # one fill per group: no host-to-device copy, no sync
            self._mult[i].fill_(f)

    def _multiplier_changed(self) -> None:
        self._fill_mult()
        self._update(self._no_inc, self._no_inc)

    # -- the public step -------------------------------------------------------------------------
    def step(self, metric: SupportsFloat | None = None, *, epoch: int | None = None) -> None:  # type: ignore[override]
        """``counter += 1`` and write ``f(counter)`` into every group's lr tensor, on the device."""
        if epoch is not None:  # checked first, by its own name (set_step would say k)
            epoch = _step_index("step: epoch", epoch)
        if metric is not None:
            self._step_metric(metric)
        if epoch is not None:
            self.set_step(epoch)
            return
        if not torch.compiler.is_compiling():
            self._check_one_kind("step", self.__dict__.get("_begun", False))
        self._stepped = True
        inc = self._taken(self._inc, self._no_inc) if self.follow_optimizer else self._inc
        if inc is None:  # no optimizer step since the last call: nothing moves
            return
        self._update(inc, self._no_inc)

    def _check_one_kind(self, call: str, other_ran: bool) -> None:
        if other_ran:
            other = "begin_step" if call == "step" else "step"
            raise RuntimeError(
                f"GraphScheduler.{call}() after {other}() on the same scheduler: each advances the step "
                f"counter, so calling both in an iteration runs the schedule twice as fast. Call step() "
                "after optimizer.step() or begin_step() before the forward, one of them in every iteration"
            )

    def begin_step(self) -> None:
        """The same LR sequence as :meth:`step`, for the *start* of a training step: write the LRs of the
        counter, then ``counter += 1``.

        Call it in a compiled step just before the forward (after ``optimizer.zero_grad()``, which
        graph-breaks) instead of ``step()`` after ``optimizer.step()``: the update then joins the
        forward's graph rather than adding a graph of its own after the optimizer's graph break.
        (During step ``k`` the groups hold the LR of step ``k`` either way; ``last_epoch`` reads
        ``k + 1`` from the moment ``begin_step()`` ran.) A scheduler advanced by ``begin_step()`` refuses
        ``step()``, and the other way round (``RuntimeError``): both in one iteration would advance twice.
        """
        if not torch.compiler.is_compiling():
            self._check_one_kind("begin_step", self.__dict__.get("_stepped", False))
        pre = self._no_inc
        if self.follow_optimizer and self._begun:  # the last iteration's step: taken, or undo its +1
            got = self._taken(self._no_inc, self._minus)
            pre = self._minus if got is None else got
        self._begun = True
        self._update(pre, self._inc)

    def set_step(self, k: int) -> None:
        """Set the counter to ``k`` in place (a captured graph sees it) and write the LRs of step ``k``."""
        k = _step_index("set_step: k", k)
        self.step_tensor.fill_(k)
        self._update(self._no_inc, self._no_inc)

    def get_last_lr(self) -> list[torch.Tensor]:  # type: ignore[override]
        """Copies of the groups' lr tensors (no host sync)."""
        return [lr.clone() for lr in self._lrs()]


def _mean_over_ranks(metric: SupportsFloat, sync: object) -> SupportsFloat:
    """``report``'s ``metric``, or under an initialized process group of more than one rank (``sync``
    True: the default group; a ``ProcessGroup``: that one; False: none) the mean of the ranks' metrics,
    as a float: one all-reduce (a sum, in float64) of the metric and a flag for a metric that is not a
    number, so that a bad one on one rank stops every rank (none is left waiting in a collective)."""
    if sync is False or not (torch.distributed.is_available() and torch.distributed.is_initialized()):
        return metric
    import torch.distributed as dist

    from ..control.guard import _collective_device

    group = sync if isinstance(sync, dist.ProcessGroup) else dist.group.WORLD
    world = dist.get_world_size(group)
    if world <= 1:
        return metric
    detach = getattr(metric, "detach", None)
    value = as_measured(detach() if callable(detach) else metric)  # Plateau.step's rule
    device = _collective_device(group, getattr(metric, "device", None))
    status = torch.tensor([0.0 if value is None else value, float(value is None)], dtype=torch.float64)
    status = status.to(device)
    dist.all_reduce(status, op=dist.ReduceOp.SUM, group=group)
    total, bad = status.tolist()
    if value is None:
        raise TypeError(
            f"report: metric must be a number or a one-element array or tensor, got "
            f"{type(metric).__name__} {_short(metric)} (every rank stops here)"
        )
    if bad:
        raise RuntimeError(
            f"report: {plural(int(bad), 'other rank')} got a metric that is not a number or a one-element "
            "tensor (see its TypeError); every rank stops here rather than wait for it in a collective"
        )
    return float(total) / world


def _refuse_nesting(k: object) -> None:
    """``last_epoch = -1``: what torch's ``SequentialLR`` does to the schedulers it is given (its undo of
    their first step). An lrkit scheduler writes each group's LR of its own step count, so inside
    ``SequentialLR`` it would restart at the milestones and resume wrong: refused, pointing to ``>>``."""
    if isinstance(k, int) and not isinstance(k, bool) and k < 0:
        raise ValueError(
            f"lrkit.torch scheduler: last_epoch set to {k}: torch's SequentialLR does this to the "
            "schedulers given to it, and an lrkit scheduler cannot run inside SequentialLR (it writes "
            "each group's LR from its own step count: restarted at a milestone, resumed from a checkpoint "
            "with the wrong LR). Compose the pieces in lrkit, one scheduler for the whole run: "
            "lrkit.torch.scheduler(optimizer, 'warmup(500) >> cosine(lr=3e-4)', total_steps=...), a >> b "
            "for two lrkit schedules one after the other (a * b multiplies them, where ChainedScheduler "
            "would)"
        )


def _groups_changed(now: int, built: int) -> RuntimeError:
    return RuntimeError(
        f"the optimizer has {now} parameter groups, the scheduler was built for {built}: a group added "
        "after the scheduler (optimizer.add_param_group) would not be scheduled. Build the scheduler "
        "after adding groups; to go on from here, build a new scheduler on the optimizer (all its "
        "groups) and call new.set_step(old.last_epoch), then drop the old one (a divergence guard holds "
        "the old one: give it the new one, guard.scheduler = new). To unfreeze layers during training, "
        "give the optimizer every group from the start and freeze with requires_grad_(False) (a "
        "parameter without a gradient is not updated)"
    )


# -- the factory -----------------------------------------------------------------------------------
# the type checker's view: in_graph=False (the default) gives a Scheduler, in_graph=True a GraphScheduler,
# a bool known only at run time either; one function at run time
@overload
def scheduler(
    optimizer: Optimizer,
    schedule: ScheduleLike | Sequence[ScheduleLike],
    *,
    total_steps: int | None = None,
    steps_per_epoch: int | None = None,
    epochs: float | None = None,
    relative: bool = False,
    interval: Interval = "step",
    plateau: Plateau | None = None,
    hparams: Mapping[str, ScheduleLike | Sequence[ScheduleLike]] | None = None,
    follow_optimizer: bool | None = None,
    in_graph: Literal[False] = False,
    fuse: bool | None = None,
    sync: bool | torch.distributed.ProcessGroup = True,
) -> Scheduler: ...


@overload
def scheduler(
    optimizer: Optimizer,
    schedule: ScheduleLike | Sequence[ScheduleLike],
    *,
    total_steps: int | None = None,
    steps_per_epoch: int | None = None,
    epochs: float | None = None,
    relative: bool = False,
    interval: Interval = "step",
    plateau: Plateau | None = None,
    hparams: Mapping[str, ScheduleLike | Sequence[ScheduleLike]] | None = None,
    follow_optimizer: bool | None = None,
    in_graph: Literal[True],
    fuse: bool | None = None,
    sync: bool | torch.distributed.ProcessGroup = True,
) -> GraphScheduler: ...


@overload
def scheduler(
    optimizer: Optimizer,
    schedule: ScheduleLike | Sequence[ScheduleLike],
    *,
    total_steps: int | None = None,
    steps_per_epoch: int | None = None,
    epochs: float | None = None,
    relative: bool = False,
    interval: Interval = "step",
    plateau: Plateau | None = None,
    hparams: Mapping[str, ScheduleLike | Sequence[ScheduleLike]] | None = None,
    follow_optimizer: bool | None = None,
    in_graph: bool = False,
    fuse: bool | None = None,
    sync: bool | torch.distributed.ProcessGroup = True,
) -> Scheduler | GraphScheduler: ...


def scheduler(
    optimizer: Optimizer,
    schedule: ScheduleLike | Sequence[ScheduleLike],
    *,
    total_steps: int | None = None,
    steps_per_epoch: int | None = None,
    epochs: float | None = None,
    relative: bool = False,
    interval: Interval = "step",
    plateau: Plateau | None = None,
    hparams: Mapping[str, ScheduleLike | Sequence[ScheduleLike]] | None = None,
    follow_optimizer: bool | None = None,
    in_graph: bool = False,
    fuse: bool | None = None,
    sync: bool | torch.distributed.ProcessGroup = True,
) -> Scheduler | GraphScheduler:
    """Drive ``optimizer`` with ``schedule``; returns a torch ``LRScheduler``.

    Args:
        optimizer: any ``torch.optim.Optimizer``.
        schedule: a :class:`~lrkit.Schedule` (or spec string/dict) for all groups, or one per group.
        total_steps, steps_per_epoch, epochs: resolve durations given as fractions, "rest" or epochs
            (``total_steps = epochs * steps_per_epoch`` when ``epochs`` is given).
        relative: False (default): the schedule gives LRs, written as they are. True: the schedule is a
            multiplier of each group's own lr (the lr the optimizer was built with), e.g.
            ``warmup(100) >> cosine(lr=1.0)`` for discriminative LRs.
        interval: ``"step"`` (call ``step()`` after every optimizer step) or ``"epoch"`` (once per epoch;
            the schedule is evaluated at ``epoch * steps_per_epoch``).
        plateau: a :class:`~lrkit.control.Plateau`; its cuts multiply the schedule. Feed it with
            ``scheduler.report(metric)`` (or ``step(metric)``).
        hparams: other group hyperparameters to schedule, as absolute values: ``{"momentum": s}``,
            ``{"beta1": s}`` (Adam's ``betas[0]``), ``{"weight_decay": s}``; one schedule or one per group.
        follow_optimizer: only advance when the optimizer stepped, so that a step ``GradScaler``
            skipped does not count (default True; with ``in_graph``, default False: every call advances).
        in_graph: compute the LR on the device from a counter tensor (:class:`GraphScheduler`).
        fuse: with ``in_graph``, compile the update into one kernel (default: on CUDA).
        sync: under an initialized ``torch.distributed`` process group of more than one rank, the
            plateau sees the mean of the ranks' metrics (True: the default group, or the
            ``ProcessGroup`` given), so that every rank cuts alike; every rank must report. False: each
            rank's plateau sees its own metric (ranks that train separate models).

    >>> import torch, lrkit
    >>> opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=0.1)
    >>> s = lrkit.Warmup(4) >> lrkit.Cosine(lr=1.0)
    >>> sch = lrkit.torch.scheduler(opt, s, total_steps=12, relative=True)
    >>> lrs = []
    >>> for _ in range(12):
    ...     lrs.append(round(opt.param_groups[0]["lr"], 4)); opt.step(); sch.step()
    >>> lrs
    [0.02, 0.04, 0.06, 0.08, 0.1, 0.0962, 0.0854, 0.0691, 0.05, 0.0309, 0.0146, 0.0038]
    """
    common: dict[str, Any] = dict(
        total_steps=total_steps,
        steps_per_epoch=steps_per_epoch,
        epochs=epochs,
        relative=relative,
        interval=interval,
        plateau=plateau,
        hparams=hparams,
        sync=sync,
    )
    if not isinstance(in_graph, bool):
        raise TypeError(f"in_graph must be True or False, got {in_graph!r}")
    if in_graph:
        return GraphScheduler(
            optimizer,
            schedule,
            fuse=fuse,
            follow_optimizer=False if follow_optimizer is None else follow_optimizer,
            **common,
        )
    if fuse is not None:
        raise ValueError(f"fuse={fuse!r} applies to in_graph=True only")
    return Scheduler(
        optimizer, schedule, follow_optimizer=True if follow_optimizer is None else follow_optimizer, **common
    )


def one_cycle_momentum(
    steps: float,
    pct_start: float = 0.3,
    base_momentum: float = 0.85,
    max_momentum: float = 0.95,
    anneal: str = "cos",
    three_phase: bool = False,
) -> Schedule:
    """The momentum (or Adam ``beta1``) of torch's ``OneCycleLR``, which moves against the LR.

    ``max_momentum -> base_momentum`` until step ``pct_start*steps - 1``, then back up to
    ``max_momentum`` at ``steps - 1`` (with ``three_phase``: back up by ``2*pct_start*steps - 2`` and
    held there). Use with ``hparams={"momentum": ...}`` or ``{"beta1": ...}`` next to
    :class:`~lrkit.OneCycle`.

    >>> m = one_cycle_momentum(100)
    >>> m(0), m(29), m(99)
    (0.95, 0.85, 0.95)
    """
    if anneal not in ("cos", "linear"):
        raise ValueError(f"one_cycle_momentum: anneal must be 'cos' or 'linear', got {anneal!r}")
    n = _positive("one_cycle_momentum: steps", steps)
    frac = _real(pct_start)  # lrkit._checks' rule: numpy's numbers and 0-d arrays or tensors too
    if frac is None or not 0 < frac < 1:
        raise ValueError(f"one_cycle_momentum: pct_start must be a number in (0, 1), got {_short(pct_start)}")
    pct_start = frac
    max_momentum = _momentum("max_momentum", max_momentum)
    base_momentum = _momentum("base_momentum", base_momentum)
    if not isinstance(three_phase, bool):
        raise TypeError(f"one_cycle_momentum: three_phase must be True or False, got {_short(three_phase)}")
    ends = (
        [pct_start * n - 1.0, 2.0 * pct_start * n - 2.0, n - 1.0]
        if three_phase
        else [pct_start * n - 1.0, n - 1.0]
    )
    levels = (
        [max_momentum, base_momentum, max_momentum, max_momentum]
        if three_phase
        else [max_momentum, base_momentum, max_momentum]
    )
    lengths = [b - a for a, b in zip([0.0, *ends], ends, strict=False)]
    if any(d <= 0 for d in lengths):
        raise ValueError(
            f"one_cycle_momentum: steps={steps!r} with pct_start={pct_start!r} leaves a phase with no steps"
        )

    def piece(a: float, b: float, d: float) -> Schedule:
        return Cosine(lr=a, steps=d, min_lr=b) if anneal == "cos" else Linear(lr=a, steps=d, end_lr=b)

    return Chain(tuple(piece(levels[i], levels[i + 1], d) for i, d in enumerate(lengths)))
