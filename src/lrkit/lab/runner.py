"""The lab: run learning-rate strategies side by side on a task, in parallel, resumably.

A :class:`Strategy` is a label, a schedule (object or spec) and optionally an optimizer (one of
:data:`lrkit.tasks.OPTIMIZERS`) with hyper-parameters that replace the task's own, so adaptive and
learning-rate-free optimizers are compared with schedules on the same model and data. Each run trains
from the same initial weights (per seed), drives the LR with :func:`lrkit.torch.scheduler`, records the LR
and loss of every step and the validation metric of every epoch. A run *diverges* (and stops there) when
its loss is NaN/inf or exceeds ``diverge_factor`` (default 10) times the loss of its first step.

:func:`run_lab` runs every (strategy, seed) in ``workers`` processes (one torch thread each) against a
:class:`~lrkit.lab.store.ResultStore`: finished runs are skipped, runs whose owner died are redone, and
each run is stored once, however many labs share the database.
"""

from __future__ import annotations

import functools
import inspect
import json
import math
import os
import re
import signal
import threading
import time
import warnings
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import (
    FIRST_COMPLETED,
    Executor,
    Future,
    ProcessPoolExecutor,
    ThreadPoolExecutor,
    wait,
)
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .._checks import as_real, check_int
from .._text import did_you_mean, plural
from .._usercode import user_code
from ..control.plateau import Plateau
from ..schedules import Schedule
from ..schedules.base import (
    peak_until,
    run_fit_messages,
)
from ..schedules.duration import _short as short
from ..schedules.warmup import refuse_bare_warmup
from ..spec import load, to_string
from ..tasks.optimizers import check_optimizer_name, check_params
from .store import (
    FINGERPRINT,
    LR_RECORDED,
    STEP_SIZE_LR,
    ResultStore,
    RunRecord,
    owner_token,
    run_key,
)

__all__ = [
    "ENV",
    "PLATEAU_KEYS",
    "START_LOSS",
    "LabResult",
    "Strategy",
    "check_plateau",
    "check_task_unchanged",
    "main_unimportable",
    "optimizer_of",
    "optimizer_settings",
    "plateau_identity",
    "plateau_settings",
    "run_config",
    "run_environment",
    "run_lab",
    "run_strategy",
    "shown_settings",
    "start_loss",
    "with_start_losses",
]

HEARTBEAT_SECONDS = 5.0
#: where a finished run keeps its untrained model's validation loss (:func:`run_strategy`): the key in its
#: record's ``config`` and in its ``progress`` in the database (:func:`with_start_losses`)
START_LOSS = "start_loss"
#: where a finished run keeps what it ran with (:func:`run_environment`), as :data:`START_LOSS` is kept
ENV = "env"
#: the settings a strategy's ``plateau`` may hold: the keyword arguments of :class:`lrkit.control.Plateau`
PLATEAU_KEYS: tuple[str, ...] = tuple(inspect.signature(Plateau).parameters)
#: the settings whose values are text (the others are numbers)
_PLATEAU_TEXT = ("mode", "threshold_mode", "start")


def check_plateau(value: object, where: str = "plateau") -> dict[str, Any] | None:
    """A strategy's ``plateau`` as the settings it gives :class:`~lrkit.control.Plateau`, each checked
    by building one (numbers as Plateau keeps them: ``factor: 1`` is 0.1's kind, a float): None (or
    False) is no plateau; True, Plateau's defaults (``{}``); a mapping, the keys of :data:`PLATEAU_KEYS`
    it gives. ``mode`` left out is the task's direction (:func:`plateau_settings`). Anything else raises a
    ValueError (TypeError for a value of the wrong type) naming ``where``, the key and the value."""
    if value is None or value is False:
        return None
    if value is True:
        return {}
    if isinstance(value, Plateau):
        raise TypeError(
            f"{where} must be the settings of a Plateau as a dict, plateau={{'factor': 0.5, 'patience': 2}} "
            "(each run builds its own Plateau; mode, left out, is the task's direction), got a Plateau"
        )
    if not isinstance(value, Mapping):
        raise TypeError(
            f"{where} must be a mapping of Plateau settings ({', '.join(PLATEAU_KEYS)}), true for the "
            f"defaults, or none, got {type(value).__name__} {short(value)}"
        )
    for key in value:
        if key not in PLATEAU_KEYS:
            raise ValueError(
                f"{where}: unknown key {short(key)}; expected {', '.join(PLATEAU_KEYS)}"
                f"{did_you_mean(str(key), PLATEAU_KEYS)}"
            )
    given = dict(value)
    min_lr = given.get("min_lr")
    if isinstance(min_lr, (list, tuple)) and len(min_lr) != 1:
        raise ValueError(
            f"{where}.min_lr must be one number (a lab run's optimizer has one parameter group), got "
            f"{short(min_lr)}"
        )
    try:
        built = Plateau(**{"mode": "min", **given})
    except (TypeError, ValueError) as exc:
        text = str(exc).removeprefix("Plateau: ")
        named = text.split(" ")[0] in PLATEAU_KEYS  # "factor must be ...": "plateau.factor must be ..."
        raise type(exc)(f"{where}.{text}" if named else f"{where}: {text}") from None
    out = {k: getattr(built, k) for k in given}
    if isinstance(out.get("min_lr"), tuple):
        out["min_lr"] = out["min_lr"][0]
    return out


def plateau_settings(plateau: Mapping[str, Any], higher_is_better: bool) -> dict[str, Any]:
    """Every keyword argument of the :class:`~lrkit.control.Plateau` a run builds from a strategy's
    checked ``plateau`` (:func:`check_plateau`): its settings over Plateau's defaults, ``mode`` the
    task's direction unless given (``"max"`` when ``higher_is_better``). A run's identity in the lab's
    database holds these (:func:`run_config`), so two spellings of one plateau are one run."""
    settings = {"mode": "max" if higher_is_better else "min", **plateau}
    built = Plateau(**settings)
    return {k: getattr(built, k) for k in PLATEAU_KEYS}


def plateau_identity(plateau: Mapping[str, Any], higher_is_better: bool) -> dict[str, Any]:
    """The settings of a strategy's checked ``plateau`` (:func:`check_plateau`) that differ from the
    lab's defaults (:func:`plateau_settings` of ``{}``: Plateau's defaults, ``mode`` the task's
    direction), as Plateau keeps them: what a run's config and key hold (:func:`run_config`), so ``{}``
    and Plateau's defaults spelled out are one run, and a setting Plateau gains later keys no run anew."""
    full = plateau_settings(plateau, higher_is_better)
    defaults = plateau_settings({}, higher_is_better)
    return {k: v for k, v in full.items() if k in plateau and v != defaults[k]}


def _try_optimizer(label: str, name: str, params: Mapping[str, Any]) -> None:
    """Build ``name`` with ``params`` on one dummy tensor and step it once
    (:func:`~lrkit.tasks.optimizers.check_optimizer`), so an unknown or invalid hyper-parameter is named
    with its strategy when the lab is set up, not when its first run starts."""
    from ..tasks.optimizers import check_optimizer

    try:
        check_optimizer(name, params)
    except (TypeError, ValueError, IndexError) as exc:
        raise ValueError(f"strategy {label!r}: optimizer_params {dict(params)} for {name!r}: {exc}") from None


@functools.cache
def _class_defaults(name: str) -> tuple[str, tuple[tuple[str, Any], ...]] | None:
    """Optimizer ``name``'s class (``'torch.optim.AdamW'``) and the defaults of its keyword arguments
    (``params`` and ``lr`` left out); None where this lrkit does not know the name or cannot import it."""
    from ..tasks.optimizers import OPTIMIZERS

    factory = OPTIMIZERS.get(name)
    if factory is None:
        return None
    try:
        target = factory.target()
    except ImportError:
        return None
    kinds = (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)
    defaults = tuple(
        (a.name, a.default)
        for a in inspect.signature(target).parameters.values()
        if a.kind in kinds
        and a.name not in ("self", "params", "lr")
        and a.default is not inspect.Parameter.empty
    )
    return f"{factory.module}.{factory.cls}", defaults


def _same_value(value: Any) -> Any:
    """``value`` in one spelling of what a hyper-parameter's value means: numbers (not bools) as floats,
    lists and tuples as tuples (JSON's ``[0.9, 0.999]`` is Python's ``(0.9, 0.999)``)."""
    if isinstance(value, bool) or value is None:
        return value
    if isinstance(value, (int, float)):
        return float(value) + 0.0  # -0.0 is 0.0
    if isinstance(value, (list, tuple)):
        return tuple(_same_value(v) for v in value)
    return value


def optimizer_settings(name: str, params: Mapping[str, Any]) -> tuple[str, dict[str, Any]]:
    """What optimizer ``name`` (of :data:`lrkit.tasks.OPTIMIZERS`) with hyper-parameters ``params``
    trains with: its class (``'torch.optim.SGD'``) and every keyword argument the class takes, its own
    default, the name's setting (``momentum``'s ``momentum=0.9``) or ``params``' value, each in one
    spelling (:func:`_same_value`). Two spellings of one optimizer, ``momentum`` and ``sgd`` with
    ``{momentum: 0.9}``, have the same settings. A name this lrkit does not know or cannot import: the
    name and ``params`` as they are."""
    from ..tasks.optimizers import OPTIMIZERS

    resolved = _class_defaults(name)
    if resolved is None:
        return name, {k: _same_value(v) for k, v in params.items()}
    cls, defaults = resolved
    given = {**dict(defaults), **OPTIMIZERS[name].defaults, **params}
    return cls, {k: _same_value(v) for k, v in sorted(given.items())}


def shown_settings(name: str, params: Mapping[str, Any]) -> dict[str, Any]:
    """The hyper-parameters of optimizer ``name`` with ``params`` a report shows: those that differ from
    its class's defaults and those the name sets itself (``momentum``: ``{"momentum": 0.9}``; ``adamw``:
    ``{"weight_decay": 0.01}``, torch's default too), in ``params``' spelling, sorted by name. A name this
    lrkit does not know or cannot import: all of ``params``."""
    from ..tasks.optimizers import OPTIMIZERS

    resolved = _class_defaults(name)
    if resolved is None:
        return dict(sorted(params.items()))
    own = OPTIMIZERS[name].defaults
    defaults = dict(resolved[1])
    given = {**own, **params}
    return {
        k: v
        for k, v in sorted(given.items())
        if k in own or k not in defaults or _same_value(v) != _same_value(defaults[k])
    }


@dataclass(frozen=True)
class Strategy:
    """What to run: ``schedule`` (a Schedule or spec) under ``optimizer`` (None: the task's own) with
    ``optimizer_params`` (e.g. ``{"weight_decay": 0.1}``; on top of the task's own hyper-parameters when
    ``optimizer`` is None, in their place otherwise: :func:`optimizer_of`) and optionally
    reduce-on-plateau: ``plateau`` holds the settings of an :class:`lrkit.control.Plateau` (``{"factor":
    0.5, "patience": 2}``; ``{}`` or True: its defaults), which is given the validation metric after each
    epoch and cuts the schedule's LR (:func:`check_plateau`; ``mode`` defaults to the task's direction)."""

    label: str
    schedule: Schedule | str
    optimizer: str | None = None
    optimizer_params: Mapping[str, Any] = field(default_factory=dict)
    #: the given settings, checked (:func:`check_plateau`; True, also taken, is ``{}``); None: no plateau
    plateau: Mapping[str, Any] | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.label, str) or not self.label.strip():
            raise ValueError(f"strategy: label must be a non-empty string, got {short(self.label)}")
        if self.optimizer is not None:
            check_optimizer_name(self.optimizer, f"strategy {self.label!r}: optimizer")
        object.__setattr__(
            self,
            "optimizer_params",
            check_params(self.optimizer_params, f"strategy {self.label!r}: optimizer_params"),
        )
        if self.optimizer is not None and self.optimizer_params:
            _try_optimizer(self.label, self.optimizer, self.optimizer_params)
        object.__setattr__(self, "plateau", check_plateau(self.plateau, f"strategy {self.label!r}: plateau"))
        if isinstance(self.schedule, str):
            object.__setattr__(self, "schedule", load(self.schedule))
        elif not isinstance(self.schedule, Schedule):
            raise TypeError(
                f"strategy {self.label!r}: schedule must be a Schedule or a spec string, "
                f"got {type(self.schedule).__name__}"
            )
        try:  # the lab writes the schedule's values as LRs
            refuse_bare_warmup(self.schedule)  # type: ignore[arg-type]  # a Schedule by now
        except ValueError as exc:
            raise ValueError(f"strategy {self.label!r}: {exc}") from None

    @property
    def spec(self) -> str:
        """The schedule as a canonical spec string."""
        assert isinstance(self.schedule, Schedule)  # normalised in __post_init__
        return to_string(self.schedule)

    @classmethod
    def parse(
        cls,
        text: str,
        where: str = "strategy",
        default_optimizer: str | None = None,
        default_params: Mapping[str, Any] | None = None,
    ) -> Strategy:
        """A strategy from the command line's ``[LABEL[@OPT]=]SPEC`` form (``"cosine(lr=0.1)"``, whose
        label is the spec; ``"warm=warmup(5%) >> cosine(lr=0.1)"``; ``"adam@adam=constant(1e-3)"``);
        without ``@OPT`` it runs ``default_optimizer`` (None: the task's) with ``default_params``. OPT is a
        name or a name with
        hyper-parameters, as ``--optimizer`` takes it (:func:`~lrkit.tasks.optimizers.parse_optimizer`):
        ``"wd@adamw(weight_decay=0.1)=cosine(lr=1e-3)"`` is ``Strategy("wd", "cosine(lr=1e-3)", "adamw",
        {"weight_decay": 0.1})``. The SPEC follows the last ``=`` outside brackets (a spec's own ``=`` are
        inside its brackets) and OPT the last ``@`` before it, so a label may hold both: ``"Adam
        lr=1e-3@adam=constant(1e-3)"`` is label ``Adam lr=1e-3``. A ValueError names ``where``
        (``--strategy``, ``experiment: strategies[0]``) and the text: an empty label, optimizer or spec is
        refused, never dropped."""
        from ..tasks.optimizers import OPTIMIZERS, parse_optimizer

        form = (
            "expected [LABEL[@OPT]=]SPEC, where SPEC follows the last '=' outside brackets and OPT the last "
            "'@' before it (a label may hold '=' and '@': 'lr=1e-3@v2@adam=constant(1e-3)')"
        )
        if not isinstance(text, str) or not text.strip():
            raise ValueError(f"{where} is empty; {form}")
        cut = _label_end(text)
        optimizer = default_optimizer
        params = dict(default_params or {})
        if cut < 0:  # just a spec: 'cosine(lr=0.1)'
            label = spec = text.strip()
        else:
            head, spec = text[:cut], text[cut + 1 :].strip()
            label, at, opt = head.rpartition("@") if "@" in head else (head, "", "")
            label, opt = label.strip(), opt.strip()
            if not label:
                before = "the last '@'" if at else "'='"
                raise ValueError(f"{where} {text!r}: the LABEL before {before} is empty; {form}")
            if at and not opt:
                raise ValueError(
                    f"{where} {text!r}: no optimizer name after the last '@'; {form}, with OPT one of "
                    f"{', '.join(OPTIMIZERS)}"
                )
            if not spec:
                raise ValueError(f"{where} {text!r}: the SPEC after the last '=' is empty; {form}")
            if not at and "(" in label:  # 'adam(betas=(0.9, 0.99))=...': an optimizer, not a label
                try:
                    named = parse_optimizer(label)[0]
                except ValueError:
                    named = None
                if named in OPTIMIZERS:
                    raise ValueError(
                        f"{where} {text!r}: the LABEL {label!r} is an optimizer call; did you mean "
                        f"'{named}@{label}={spec}'? the optimizer goes after LABEL@ (without '@' the "
                        "text before '=' is only a label, and the run trains the default optimizer)"
                    )
            if opt:  # OPT, with its hyper-parameters (adamw(weight_decay=0.1)) or none
                try:
                    opt, params = parse_optimizer(opt) if "(" in opt else (opt, {})
                except ValueError as exc:
                    raise ValueError(f"{where} {text!r}: OPT {opt!r}: {exc}") from None
            if opt and opt not in OPTIMIZERS:
                try:
                    check_optimizer_name(opt, f"{where} {text!r}: OPT")
                except ValueError as exc:  # 'me@home=...': a label holding '@' takes an OPT after it
                    if did_you_mean(opt.lower().replace("-", "_"), OPTIMIZERS):
                        raise  # a misspelled optimizer ('a@AdamW=...')
                    raise ValueError(
                        f"{exc}; the text after the last '@' before '=' is OPT: a label that holds '@' names "
                        f"its optimizer after one more, '{label}@{opt}@OPT={spec}'"
                    ) from None
            optimizer = opt or optimizer
        try:
            return cls(label, spec, optimizer, params)
        except (ValueError, TypeError) as exc:
            before, at, after = spec.rpartition("@")
            if at and _is_spec(before):  # 'wd=cosine(lr=1e-3)@adamw': the optimizer after the spec
                head = "LABEL" if cut < 0 else label
                exc = ValueError(f"{exc}; OPT goes before the '=': '{head}@{after.strip()}={before.strip()}'")
            elif re.search(r"plateau", spec, re.I):  # 'p=plateau(patience=2)': not a schedule
                exc = ValueError(
                    f"{exc}; reduce-on-plateau is not a schedule: it is set on a strategy in an experiment "
                    "file (lrkit lab FILE.yaml), as {label: p, spec: 'constant(lr=0.05)', plateau: {factor: "
                    "0.5, patience: 2}}"
                )
            raise ValueError(f"{where} {text!r}: {exc}") from None


def _is_spec(text: str) -> bool:
    """Whether ``text`` reads as a schedule spec."""
    try:
        load(text)
    except (ValueError, TypeError):
        return False
    return True


def _label_end(text: str) -> int:
    """Where ``LABEL[@OPT]=SPEC`` ends its label: the index of the last ``=`` outside ``()``, ``[]`` and
    ``{}`` (a spec's ``=`` are its arguments', inside its brackets), -1 where there is none (a bare
    spec)."""
    depth, cut = 0, -1
    for i, ch in enumerate(text):
        if ch in "([{":
            depth += 1
        elif ch in ")]}":
            depth = max(0, depth - 1)
        elif ch == "=" and depth == 0:
            cut = i
    return cut


def optimizer_of(
    strategy: Strategy, task_optimizer: str, task_params: Mapping[str, Any] | None = None
) -> tuple[str, dict[str, Any]]:
    """The optimizer a run of ``strategy`` trains with and its hyper-parameters: the strategy's own with
    its ``optimizer_params`` alone, or (naming none) the task's with the task's ``optimizer_params`` and
    the strategy's on top."""
    if strategy.optimizer is not None:
        return strategy.optimizer, dict(strategy.optimizer_params)
    return task_optimizer, {**(task_params or {}), **strategy.optimizer_params}


def run_config(
    task: str,
    strategy: Strategy,
    seed: int,
    epochs: int,
    default_optimizer: str,
    diverge_factor: float = 10.0,
    default_params: Mapping[str, Any] | None = None,
    higher_is_better: bool | None = None,
) -> dict[str, Any]:
    """The content that identifies a run (its :func:`~lrkit.lab.store.run_key` is a hash of this): the
    optimizer and hyper-parameters it trains with (:func:`optimizer_of`; ``default_optimizer`` and
    ``default_params`` are the task's) and, for a strategy with a plateau, the settings of its Plateau
    that differ from the lab's defaults under ``"plateau"`` (:func:`plateau_identity`: ``{}`` for
    Plateau's defaults; ``mode`` only where it is not the task's direction, ``higher_is_better``); a run
    without one has no ``"plateau"`` key, as every run stored before the lab had plateaus, which keep
    their keys."""
    optimizer, params = optimizer_of(strategy, default_optimizer, default_params)
    config: dict[str, Any] = {
        "task": task,
        "spec": strategy.spec,
        "optimizer": optimizer,
        "optimizer_params": dict(sorted(params.items())),
        "seed": int(seed),
        "epochs": int(epochs),
        "diverge_factor": float(diverge_factor),
    }
    if strategy.plateau is not None:
        if higher_is_better is None and "mode" not in strategy.plateau:
            raise ValueError(
                f"run_config: strategy {strategy.label!r} has a plateau without a mode: give "
                "higher_is_better (the task's direction)"
            )
        config["plateau"] = plateau_identity(strategy.plateau, bool(higher_is_better))
        if higher_is_better is None:  # no direction to compare with: the mode given is kept
            config["plateau"]["mode"] = plateau_settings(strategy.plateau, False)["mode"]
    return config


def _diverge_factor(value: object) -> float:
    """``diverge_factor`` as a Python float > 1 (numpy's numbers too), else a ValueError naming it."""
    x = as_real(value)
    if x is None or not x > 1:
        raise ValueError(f"diverge_factor must be a number > 1, got {value!r}")
    return x


def run_strategy(
    task: Any,
    strategy: Strategy,
    *,
    seed: int = 0,
    epochs: int | None = None,
    diverge_factor: float = 10.0,
    on_epoch: Callable[[int, float], None] | None = None,
    stop: threading.Event | None = None,
) -> RunRecord:
    """Train ``task`` (a :class:`lrkit.tasks.Task` or its name) with ``strategy`` from scratch.

    ``on_epoch(epoch, metric)`` is called after each epoch's evaluation (raise from it to stop, e.g.
    ``optuna.TrialPruned``). A set ``stop`` event interrupts the run with KeyboardInterrupt. The record's
    ``config`` holds the untrained model's validation loss under :data:`START_LOSS` (:func:`start_loss`),
    the reference of :func:`lrkit.lab.report.did_not_learn`.

    A lab's run (a row of ``runs.csv``) is this call again: the row's ``key`` finds its config in the lab's
    database (``ResultStore.run(key).config``: ``spec``, ``optimizer``, all of ``optimizer_params``,
    ``seed``, ``epochs``, ``diverge_factor`` and, for a run with reduce-on-plateau, ``plateau``); give the
    same task, ``Strategy(label, spec, optimizer, optimizer_params, plateau)``, and as many torch threads
    as the run had (:data:`ENV`, which :func:`with_start_losses` reads).

    A strategy with a ``plateau`` gives its Plateau the validation metric of each epoch (the one the
    record keeps), before ``on_epoch``; a cut lowers the LR from the next step on, and the record's
    ``lrs`` show it.
    """
    from ..adapters.torch import scheduler as make_scheduler
    from ..tasks import get_task
    from ..tasks.base import TrainRun, train_loop

    t = get_task(task)
    parts = t.build(seed)
    n_epochs = check_int(parts.epochs if epochs is None else epochs, "epochs", 1)
    diverge_factor = _diverge_factor(diverge_factor)
    spe = parts.epoch_steps
    total = n_epochs * spe
    sched = strategy.schedule
    assert isinstance(sched, Schedule)  # normalised by Strategy.__post_init__
    first = sched.resolve(total_steps=total, steps_per_epoch=spe)
    if first.unresolved:
        raise ValueError(f"strategy {strategy.label!r}: {first.unresolved}")
    opt_name, params = optimizer_of(strategy, parts.optimizer, parts.optimizer_params)
    opt = parts.make_optimizer(first(0), opt_name, params)
    plateau = strategy_plateau(strategy, bool(parts.higher_is_better))
    lr_sched = make_scheduler(opt, sched, total_steps=total, steps_per_epoch=spe, plateau=plateau)

    def before(step: int) -> None:
        if stop is not None and stop.is_set():
            raise KeyboardInterrupt

    def epoch_end(epoch: int, metric: float) -> None:
        if plateau is not None:  # the metric the run records: a cut lowers the LR of the next step
            lr_sched.report(metric)
        if on_epoch is not None:
            on_epoch(epoch, metric)

    start = start_loss(parts)
    run = TrainRun(math.nan, [], False, 0)
    train_loop(
        parts,
        opt,
        n_epochs,
        before_step=before,
        after_step=lambda _: lr_sched.step(),
        diverge_factor=diverge_factor,
        on_epoch=epoch_end,
        run=run,
    )
    finite = [m for m in run.epoch_metrics if math.isfinite(m)]
    best = (max(finite) if parts.higher_is_better else min(finite)) if finite else None
    # the metric measured at the end: a finished run whose metric is NaN/inf has none (not the task's worst,
    # a made-up value: the report says why it is not counted)
    measured = run.epoch_metrics[-1] if run.epoch_metrics else run.metric
    return RunRecord(
        key="",
        spec=strategy.spec,
        optimizer=opt_name,
        seed=seed,
        status="diverged" if run.diverged else "ok",
        final_metric=None if run.diverged or not math.isfinite(measured) else measured,
        best_metric=best,
        diverged_step=run.diverged_step,
        steps=run.steps,
        seconds=run.seconds,
        lrs=run.lrs,
        losses=run.losses,
        epoch_metrics=run.epoch_metrics,
        epoch_losses=run.epoch_losses,
        epoch_seconds=run.epoch_seconds,
        label=strategy.label,
        config={} if start is None else {START_LOSS: start},
    )


def strategy_plateau(strategy: Strategy, higher_is_better: bool) -> Plateau | None:
    """A new :class:`~lrkit.control.Plateau` for a run of ``strategy`` on a task whose metric is better
    higher (``higher_is_better``) or lower; None for a strategy without ``plateau``."""
    if strategy.plateau is None:
        return None
    return Plateau(**plateau_settings(strategy.plateau, higher_is_better))


def run_environment() -> dict[str, Any]:
    """What a run in this thread runs with, which a lab keeps with each run under :data:`ENV`: the versions
    of lrkit, torch, Python and numpy, and torch's intra-op threads (a float sum over threads is split, and
    rounds, by their count)."""
    import platform

    import torch

    from .. import __version__

    return {
        "lrkit": __version__,
        "torch": torch.__version__,
        "python": platform.python_version(),
        "numpy": np.__version__,
        "torch_threads": torch.get_num_threads(),
    }


def start_loss(parts: Any) -> float | None:
    """The untrained model's mean loss over the validation batches (:meth:`lrkit.tasks.TaskParts.val_loss`,
    which leaves every random state as it was): before any step, the training loss has the same expectation,
    so a run whose last epoch's training loss is no lower did not learn. One batch's loss (the first step's)
    is too noisy for that: a slowly learning run was flagged or not by its luck. None where it cannot be
    measured (a validation loader of a callable metric that yields no ``(input, target)`` pairs, a loss
    that is not finite)."""
    try:
        value = float(parts.val_loss())
    except Exception:  # the metric's loader need not suit the loss: the report falls back to step 0's
        return None
    return value if math.isfinite(value) else None


def with_start_losses(store: ResultStore, runs: list[RunRecord]) -> list[RunRecord]:
    """``runs`` of ``store``, each with what the lab kept in its ``progress`` in its ``config``: the start
    loss (:func:`start_loss`) under :data:`START_LOSS` and the versions and threads it ran with
    (:func:`run_environment`) under :data:`ENV`; a run without them (from a lab before lrkit kept them)
    is left without."""
    status = store.status([r.key for r in runs])
    for r in runs:
        progress = status.get(r.key, ("", None))[1]
        progress = progress if isinstance(progress, dict) else {}
        value = progress.get(START_LOSS)
        if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value):
            r.config = {**r.config, START_LOSS: float(value)}
        if isinstance(progress.get(ENV), dict):
            r.config = {**r.config, ENV: progress[ENV]}
    return runs


def _records_step_size(config: Mapping[str, Any]) -> bool:
    """Whether a run of ``config`` (:func:`run_config`) records its optimizer's step size ``d * lr`` as its
    LR (:data:`lrkit.tasks.base.STEP_SIZE_OPTIMIZERS`: Prodigy), not the group's ``lr``."""
    from ..tasks.base import STEP_SIZE_OPTIMIZERS

    return str(config.get("optimizer", "")).lower() in STEP_SIZE_OPTIMIZERS


def forget_unmarked_step_size_runs(store: ResultStore, keys: list[str]) -> list[str]:
    """Forget the finished runs among ``keys`` (runs of an optimizer whose LR the lab records as ``d *
    lr``: Prodigy) stored without :data:`~lrkit.lab.store.LR_RECORDED`: an lrkit before it stored their
    ``lr`` multiplier (1.0) as the LR curve, which the report would label ``d*lr``. They are run again,
    with a one-line warning saying why; their keys are returned."""
    stale = [k for k, cfg in store.configs(keys).items() if cfg.get(LR_RECORDED) != STEP_SIZE_LR]
    if stale:
        store.forget(stale)
        warnings.warn(
            f"{plural(len(stale), 'stored Prodigy run')} of this lab {'is' if len(stale) == 1 else 'are'} "
            f"run again: an earlier lrkit recorded Prodigy's lr multiplier as the LR curve, now its step "
            f"size {STEP_SIZE_LR}",
            UserWarning,
            stacklevel=3,
        )
    return stale


def check_task_unchanged(
    store: ResultStore, keys: list[str], task: Any, fingerprint: Mapping[str, Any]
) -> None:
    """Refuse (a ValueError, before anything is trained) to reuse the finished runs among ``keys`` whose
    stored task fingerprint differs from ``fingerprint``, the task's as built now from seed 0
    (:func:`lrkit.tasks.base.task_fingerprint`): a task edited since (another width, batch size or data
    set) would mix its results with theirs under one name. The message names what changed and the ways
    out. An item that differs between two builds of the task now (a first batch drawn from an unseeded
    source) cannot tell a change: it is left out, with a warning. Runs stored without a fingerprint (by
    an lrkit before it) are reused, with a warning that they could not be checked."""
    from ..tasks.base import fingerprint_changes, task_fingerprint

    stored = store.fingerprints(keys)
    unchecked = sum(1 for fp in stored.values() if fp is None)
    if unchecked:
        warnings.warn(
            f"{plural(unchecked, 'stored run')} of this lab {'was' if unchecked == 1 else 'were'} "
            f"written by an lrkit that kept no fingerprint of the task, so lrkit cannot tell whether task "
            f"{task.name!r} changed since: {'it is' if unchecked == 1 else 'they are'} reused as before; if "
            "you edited the task, run with --fresh (fresh=True)",
            UserWarning,
            stacklevel=3,
        )
    changed = {k: fingerprint_changes(fp, fingerprint) for k, fp in stored.items() if fp is not None}
    if not any(changed.values()):
        return
    again = task_fingerprint(task.build(0))  # an item that is not reproducible cannot tell a change
    unstable = [item for item in fingerprint if again.get(item) != fingerprint.get(item)]
    if unstable:
        warnings.warn(
            f"task {task.name!r} gives another {', '.join(unstable)} each time it is built from seed 0 "
            "(drawn from an unseeded source?): lrkit cannot tell whether that changed since the stored runs",
            UserWarning,
            stacklevel=3,
        )
        now = {k: v for k, v in fingerprint.items() if k not in unstable}
        changed = {k: fingerprint_changes(fp, now) for k, fp in stored.items() if fp is not None}
    differing = [k for k, what in changed.items() if what]
    if not differing:
        return
    what = changed[differing[0]]
    raise ValueError(
        f"task {task.name!r} has changed since {plural(len(differing), 'stored run')} of this lab "
        f"{'was' if len(differing) == 1 else 'were'} trained on it in {store.path}: {'; '.join(what)}. "
        "Their results would be mixed with the new ones under one name: run with --fresh (fresh=True) to "
        "train them again on the task as it is now (the stored ones are forgotten), or give another --out "
        "or --db (store) to keep both"
    )


@dataclass
class LabResult:
    """All runs of one lab experiment (also in the database at ``store_path`` under ``experiment_id``)."""

    task: str
    experiment_id: int
    runs: list[RunRecord]
    store_path: str
    name: str = "lab"
    metric_name: str = "metric"
    higher_is_better: bool = True
    epochs: int = 0

    def labels(self) -> list[str]:
        return list(dict.fromkeys(r.label for r in self.runs))

    def by_label(self, label: str) -> list[RunRecord]:
        return [r for r in self.runs if r.label == label]


# --------------------------------------------------------------------------------------------------
# workers
# --------------------------------------------------------------------------------------------------
def _watch_parent(pid: int) -> None:
    while True:
        time.sleep(0.5)
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            os._exit(1)  # the lab was killed: stop now; its unfinished runs are redone on the next run
        except PermissionError:
            pass


def _worker_init(lab_pid: int) -> None:
    """One torch thread per worker; a worker exits when its lab dies (SIGKILL included), so a killed lab
    leaves no orphan training (and the forkserver then exits too)."""
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    threading.Thread(target=_watch_parent, args=(lab_pid,), daemon=True, name="lrkit-lab-watch").start()
    import torch

    torch.set_num_threads(1)


@dataclass(frozen=True)
class _Job:
    db: str
    key: str
    owner: str
    task: Any  # a task name (built-in or module:function), or a Task in a thread
    strategy: Strategy
    seed: int
    epochs: int
    diverge_factor: float


def _execute(job: _Job, store: ResultStore, stop: threading.Event | None, progress: bool) -> RunRecord | None:
    """Train one claimed run and write it to ``store``; None if another owner took the run over. A run
    that does not finish (an exception, Ctrl-C) is released, to be redone."""

    def on_epoch(epoch: int, metric: float) -> None:
        store.beat(job.owner, {"epoch": epoch, "epochs": job.epochs, "metric": metric}, job.key)

    task_name = getattr(job.task, "name", job.task)
    try:
        # an exception of the task's own code names the run (and survives the way back from a process)
        with user_code(f"task {task_name!r} (strategy {job.strategy.label!r}, seed {job.seed})"):
            rec = run_strategy(
                job.task,
                job.strategy,
                seed=job.seed,
                epochs=job.epochs,
                diverge_factor=job.diverge_factor,
                on_epoch=on_epoch if progress else None,
                stop=stop,
            )
    except BaseException:
        store.release(job.key, job.owner)
        raise
    rec.key = job.key
    rec.config = {**rec.config, ENV: run_environment()}  # measured where the run ran: its torch threads
    # kept in the finished run's progress, in finish's own transaction: read by with_start_losses
    keep = {k: rec.config[k] for k in (START_LOSS, ENV) if k in rec.config}
    if not store.finish(rec, job.owner, keep):
        return None
    return rec


def _run_job(job: _Job, stop: threading.Event | None = None) -> RunRecord | None:
    """A job in a worker (thread or process), on its own connection to the lab's database."""
    store = ResultStore(job.db, check=False)  # the lab checked it; a check now could race its writes
    try:
        return _execute(job, store, stop, progress=True)
    finally:
        store.close()


# --------------------------------------------------------------------------------------------------
# the lab
# --------------------------------------------------------------------------------------------------
Progress = Callable[[str, dict[str, Any]], None]
#: float32's largest number: an LR above it cannot multiply a float32 gradient (torch refuses)
FLOAT32_MAX = float(np.finfo(np.float32).max)


def check_labels(strategies: Sequence[Strategy], where: str = "strategies", fix: str = "label=...") -> None:
    """A ValueError naming ``where`` when two strategies share a label (the report's name of a
    strategy, and, unlabelled, its spec); ``fix`` says how to give one."""
    first: dict[str, int] = {}
    for i, s in enumerate(strategies):
        if s.label in first:
            raise ValueError(
                f"{where}: strategies {first[s.label] + 1} and {i + 1} have the same label {s.label!r}; "
                f"give each its own ({fix})"
            )
        first[s.label] = i


def check_runs(
    strategies: Sequence[Strategy],
    task: str,
    epochs: int,
    default_optimizer: str,
    default_params: Mapping[str, Any] | None = None,
    diverge_factor: float = 10.0,
    where: str = "strategies",
    device: Any = None,
    higher_is_better: bool | None = None,
) -> None:
    """A ValueError naming ``where`` and both labels when two strategies are the same run (one
    :func:`run_config` for a seed, so one stored run): ``a=cosine(lr=0.1)`` beside ``b=cosine(0.1)``, or
    beside ``b@momentum=cosine(lr=0.1)`` on a task trained with momentum, or ``c@momentum=...`` beside
    ``sgd`` with ``{momentum: 0.9}``: optimizers are compared by what they train with
    (:func:`optimizer_settings`: class and every hyper-parameter, defaults filled in). Each strategy's
    optimizer is also made and stepped once, on a stand-in parameter, so that torch refuses a bad
    ``optimizer_params`` value (``weight_decay: -1``, ``betas: [0.9]``) here, naming the strategy, before
    anything runs or is written; given the task's ``device`` (its parameters'), on that device, settings
    for a device included (``capturable=True`` is refused for a task on the CPU). Strategies
    with plateaus are told apart by the settings of their Plateau that differ from the lab's defaults
    (:func:`plateau_identity`; ``mode`` from ``higher_is_better``, the task's direction, where they give
    none)."""
    from ..tasks.optimizers import check_optimizer

    first: dict[str, tuple[Strategy, dict[str, Any]]] = {}
    for s in strategies:
        name, params = optimizer_of(s, default_optimizer, default_params)
        try:  # built on a stand-in on the task's device and stepped once, as Strategy checks its own
            check_optimizer(name, params, device=device)
        except ValueError as exc:
            raise ValueError(f"{where}: strategy {s.label!r}: {exc}") from None
        cfg = run_config(
            task, s, 0, epochs, default_optimizer, diverge_factor, default_params, higher_is_better
        )
        # the stored run key hashes the optimizer as spelled (an older database's runs keep theirs); two
        # spellings of one optimizer (adamw with and without its default weight_decay: 0.01) are one run
        cls, settings = optimizer_settings(name, params)
        key = json.dumps(
            {**cfg, "optimizer": cls, "optimizer_params": settings}, sort_keys=True, default=repr
        )
        if key in first:
            a, a_cfg = first[key]
            spelled = f"optimizer {a_cfg['optimizer']!r}, optimizer_params {a_cfg['optimizer_params']}"
            other = f"optimizer {cfg['optimizer']!r}, optimizer_params {cfg['optimizer_params']}"
            if "plateau" in cfg:
                other += f", plateau {cfg['plateau']}"
                spelled += f", plateau {a_cfg['plateau']}"
            if other != spelled:
                call = ", ".join(f"{k}={v!r}" for k, v in shown_settings(name, params).items())
                both = (
                    f"{cls}({call}) with torch's defaults for the rest"
                    if call
                    else f"{cls} with torch's defaults"
                )
                spelled += f" and {other}: both {both}"
            raise ValueError(
                f"{where}: strategies {a.label!r} and {s.label!r} are the same run (spec {cfg['spec']!r}, "
                f"{spelled}); give one of them another spec or optimizer, or leave it out"
            )
        first[key] = (s, cfg)


def check_schedules(strategies: Sequence[Strategy], epochs: int, steps_per_epoch: int) -> None:
    """Every strategy's schedule resolves for a run of ``epochs`` x ``steps_per_epoch`` steps; else a
    ValueError naming the strategy (a wsd whose warmup and decay outlast the run, ...). A strategy's
    plateau must be given a metric it counts before the run's last step (:func:`plateau_metrics`), and
    one that cannot cut within the run (fewer such metrics than ``patience + 1``) is warned about."""
    for s in strategies:
        try:
            resolved = s.schedule.resolve(  # type: ignore[union-attr]
                total_steps=epochs * steps_per_epoch, steps_per_epoch=steps_per_epoch
            )
        except ValueError as exc:
            raise ValueError(f"strategy {s.label!r}: {exc}") from None
        if resolved.unresolved:
            raise ValueError(f"strategy {s.label!r}: {resolved.unresolved}")
        total = epochs * steps_per_epoch
        peak = peak_until(resolved, total - 1)
        if peak > FLOAT32_MAX:  # torch cannot even multiply a float32 gradient by it
            raise ValueError(
                f"strategy {s.label!r}: its LR reaches {peak:.3g}, above float32's largest number "
                f"({FLOAT32_MAX:.3g}): a float32 model cannot take a step at it"
            )
        for category, text in run_fit_messages(
            resolved,
            total,
            shown=f"strategy {s.label!r}: its schedule",
            spec=s.spec,
            run=f"the run's {total:,} steps ({plural(epochs, 'epoch')} x {steps_per_epoch})",
            fix="give its lengths in epochs or as fractions of the run, '100%' or 'rest'",
            fix_short="If it should span the run, give its lengths in epochs or as fractions of it ('100%' "
            "or 'rest')",
        ):
            # stacklevel 1: the lab CLI checks before run_lab does, and one warning is shown
            warnings.warn(text, category, stacklevel=1)
        if s.plateau is not None:
            _check_plateau_fits(s, resolved, epochs, steps_per_epoch)


def plateau_metrics(plateau: Mapping[str, Any], warmup: float, epochs: int, steps_per_epoch: int) -> int:
    """How many of a run's epoch-end metrics a plateau with settings ``plateau`` counts before the run's
    last step (the last epoch's metric comes after it, too late to cut): those of epochs ``1 ..
    epochs - 1`` reported at step ``epoch * steps_per_epoch``, from the end of the schedule's ``warmup``
    steps (``start`` "warmup", the default) or from step ``start``."""
    start = plateau.get("start", "warmup")
    first = warmup if start == "warmup" else float(start)
    return sum(1 for e in range(1, epochs) if e * steps_per_epoch >= first)


def _check_plateau_fits(s: Strategy, resolved: Schedule, epochs: int, steps_per_epoch: int) -> None:
    from ..control.plateau import warmup_steps

    assert s.plateau is not None
    full = plateau_settings(s.plateau, False)  # Plateau's defaults filled in (the mode is not read)
    n = plateau_metrics(full, warmup_steps(resolved), epochs, steps_per_epoch)
    start = full["start"]
    since = "after the schedule's warmup" if start == "warmup" else f"from step {start} (plateau.start)"
    run = f"the run's {plural(epochs, 'epoch')} of {steps_per_epoch} steps"
    if n == 0:
        raise ValueError(
            f"strategy {s.label!r}: its plateau would be given no metric before the run ends: it is given "
            "the validation metric at the end of each epoch but the last (which comes after the last step), "
            f"counted {since}, and {run} have none; give more "
            "epochs"
            + (", or a shorter warmup or plateau.start: 0" if start == "warmup" else " or a smaller start")
        )
    patience = int(full["patience"])
    if n < patience + 1:
        warnings.warn(
            f"strategy {s.label!r}: its plateau can never cut the LR: it cuts after patience + 1 = "
            f"{patience + 1} epochs in a row without improvement, and it counts only "
            f"{plural(n, 'metric')} before the run ends ({run}, the last metric too late to cut, {since}); "
            "give a smaller plateau.patience or more epochs",
            UserWarning,
            stacklevel=1,
        )


def run_lab(
    task: Any,
    strategies: Sequence[Strategy],
    *,
    seeds: Sequence[int] = (0,),
    epochs: int | None = None,
    store: ResultStore | str = ":memory:",
    name: str = "lab",
    diverge_factor: float = 10.0,
    workers: int = 1,
    fresh: bool = False,
    progress: Progress | None = None,
    on_experiment: Callable[[ResultStore, int], None] | None = None,
) -> LabResult:
    """Run every strategy for every seed on ``task``; skip runs the database already holds.
    ``on_experiment(store, experiment_id)`` is called once the experiment is in the database, before
    any run (what a lab killed later should still find there: its report's language, title, note).

    ``progress(event, info)`` is called with ``"start"`` (``total``, ``done``), ``"tick"`` (``done``,
    ``active``: ``{label/seed: progress}``), ``"run"`` (a finished ``record``) and ``"end"``.
    ``workers`` > 1 runs in that many processes when the task is given by name and ``store`` is a file;
    else the runs go one at a time in this process, with a warning that says why.
    """
    from ..tasks import get_task
    from ..tasks.base import task_fingerprint

    if not strategies:
        raise ValueError("strategies: expected at least one strategy, got none")
    check_labels(strategies)
    if not seeds:
        raise ValueError("seeds: expected at least one seed, got none")
    seeds = [check_int(seed, f"seeds[{i}]", 0) for i, seed in enumerate(seeds)]  # numpy's as Python's
    if len(set(seeds)) != len(seeds):  # one seed twice would be each strategy's run twice
        raise ValueError(f"seeds must be distinct, got {list(seeds)}")
    workers = check_int(workers, "workers", 1)
    diverge_factor = _diverge_factor(diverge_factor)
    t = get_task(task)  # unknown names fail before anything runs
    probe = t.build(0)
    n_epochs = check_int(probe.epochs if epochs is None else epochs, "epochs", 1)
    check_schedules(strategies, n_epochs, probe.epoch_steps)  # before anything runs or is made
    check_runs(
        strategies, t.name, n_epochs, probe.optimizer, probe.optimizer_params, diverge_factor,
        device=next((p.device for p in probe.model.parameters()), None),  # where every run's model is
        higher_is_better=bool(probe.higher_is_better),
    )  # fmt: skip

    fingerprint = task_fingerprint(probe)  # what the task builds: an edited task is not the stored one

    db = store if isinstance(store, ResultStore) else ResultStore(store)
    jobs: list[tuple[str, str, dict[str, Any], Strategy, int]] = []
    for s in strategies:
        for seed in seeds:
            cfg = run_config(
                t.name, s, seed, n_epochs, probe.optimizer, diverge_factor, probe.optimizer_params,
                bool(probe.higher_is_better),
            )  # fmt: skip
            # the run's key hashes its config alone: a database from before the fingerprint keeps its keys
            marked = {LR_RECORDED: STEP_SIZE_LR} if _records_step_size(cfg) else {}
            jobs.append((s.label, run_key(cfg), {**cfg, FINGERPRINT: fingerprint, **marked}, s, seed))
    workers = min(workers, len(jobs))  # never more processes than runs (--workers 10000 starts 6)
    keys = [j[1] for j in jobs]
    if fresh:
        db.forget(keys)
    else:
        forget_unmarked_step_size_runs(db, [j[1] for j in jobs if LR_RECORDED in j[2]])
        check_task_unchanged(db, keys, t, fingerprint)
    exp_config = {
        "strategies": [
            {
                "label": s.label,
                "spec": s.spec,
                "optimizer": s.optimizer,
                "optimizer_params": dict(s.optimizer_params),
                # as given (mode, left out, follows the task); only where set: an experiment without
                # plateaus keeps the key it had before the lab had them
                **({} if s.plateau is None else {"plateau": dict(s.plateau)}),
            }
            for s in strategies
        ],
        "seeds": list(seeds),
        "epochs": n_epochs,
    }
    exp = db.experiment(
        name,
        t.name,
        str(probe.metric_name),
        bool(probe.higher_is_better),
        exp_config,
        [(j[0], j[1]) for j in jobs],
    )
    if on_experiment is not None:
        on_experiment(db, exp)
    emit = progress or (lambda event, info: None)
    owner = owner_token()
    by_name = t.name in _builtin() or ":" in t.name  # a worker process can rebuild it from its name
    use_processes = workers > 1 and db.path != ":memory:" and by_name
    context = _spawn() if use_processes else None
    # a forked worker has this process's __main__; a forkserver's or spawned one imports it from its file
    main_why = (
        main_unimportable(t.name) if context is not None and context.get_start_method() != "fork" else None
    )
    if main_why is not None:
        use_processes, context = False, None
    if workers > 1 and not use_processes:
        fix = "Give the task by name (built-in or 'module:function') and a database file to run in processes"
        if db.path == ":memory:":
            why = "the results go to ':memory:', one connection of this process"
        elif main_why is not None:
            why, fix = main_why, f"Put {t.name.partition(':')[2]!r} in a module file (task 'module:function')"
            fix += " or run your script from a file to run in processes"
        else:
            why = f"task {t.name!r} was given as an object, which a worker process cannot rebuild"
        warnings.warn(
            f"workers={workers}: runs one at a time in this process, as {why}; torch's random state is "
            f"one per process, so runs in threads would not be reproducible. {fix}",
            UserWarning,
            stacklevel=2,
        )
        workers = 1
    stop = threading.Event()
    # One worker is a thread of this process, which starts at once; the others are processes (one torch
    # thread each), which take a moment to start: the lab is under way before they are.
    local: Executor = ThreadPoolExecutor(1)
    pool: Executor | None = (
        ProcessPoolExecutor(
            workers - 1, initializer=_worker_init, initargs=(os.getpid(),), mp_context=context
        )
        if use_processes
        else None
    )
    torch_threads = _limit_torch_threads() if use_processes else None
    running: dict[Future[RunRecord | None], tuple[str, int, str]] = {}
    local_futures: set[Future[RunRecord | None]] = set()
    # Forked workers start now, before this process starts any thread. A forkserver's workers take seconds
    # (it imports torch): a thread starts them, and meanwhile this loop keeps the local worker busy.
    pool_ready = threading.Event()
    if pool is not None and context is not None and context.get_start_method() == "fork":
        _start_pool(pool, workers - 1, pool_ready)
    elif pool is not None:
        threading.Thread(target=_start_pool, args=(pool, workers - 1, pool_ready), daemon=True).start()
    last_beat = 0.0
    status = db.status(keys)
    emit(
        "start",
        {"total": len(jobs), "done": sum(1 for k in keys if k in status and status[k][0] != "running")},
    )
    ctrl_c = _CtrlC(stop)  # from here Ctrl-C asks the lab to stop; it stops at a point it chose
    try:
        pending = list(jobs)
        while True:
            for f in [f for f in running if f.done()]:  # collect first, so a freed worker gets a run now
                label, seed, key = running.pop(f)
                local_futures.discard(f)
                try:
                    rec = f.result()  # a worker's exception ends the lab (its run was released)
                except BrokenProcessPool as exc:  # a worker process was killed (the OOM killer, kill -9)
                    # the pool's runs are released, so a rerun (even in this process) runs them at once
                    for k in [key] + [k for g, (_, _, k) in running.items() if g not in local_futures]:
                        db.release(k, owner)
                    raise _worker_died(db.path, pool) from exc
                if rec is not None:
                    rec.label = label
                    emit("run", {"record": rec})
            # claim what we can while workers are free
            still: list[tuple[str, str, dict[str, Any], Strategy, int]] = []
            for label, key, cfg, s, seed in pending:
                local_busy = any(f in local_futures for f in running)
                if len(running) >= workers or (local_busy and not pool_ready.is_set()):
                    still.append((label, key, cfg, s, seed))
                    continue
                got = db.claim(key, cfg, owner)
                if got == "busy":
                    still.append((label, key, cfg, s, seed))
                elif got == "claimed":
                    local_free = not (use_processes and local_busy)
                    job = _Job(
                        db.path, key, owner, t if local_free else t.name, s, seed, n_epochs, diverge_factor
                    )
                    fut: Future[RunRecord | None]
                    if db.path == ":memory:":
                        fut = Future()
                        fut.set_result(_execute(job, db, stop, progress=False))  # one connection: here
                    elif local_free:
                        fut = local.submit(_run_job, job, stop)
                        local_futures.add(fut)
                    else:
                        assert pool is not None  # use_processes
                        try:
                            fut = pool.submit(_run_job, job)
                        except BrokenProcessPool as exc:  # a worker died before its future said so
                            db.release(key, owner)
                            raise _worker_died(db.path, pool) from exc
                    running[fut] = (label, seed, key)
            pending = still
            if not pending and not running:
                break
            now = time.monotonic()
            if now - last_beat > HEARTBEAT_SECONDS:
                db.beat(owner)
                last_beat = now
            status = db.status(keys)
            emit(
                "tick",
                {
                    "done": sum(1 for k in keys if k in status and status[k][0] != "running"),
                    "active": {
                        f"{lbl} / seed {sd}": status.get(k, ("running", None))[1]
                        for lbl, sd, k in running.values()
                    },
                },
            )
            if running:
                wait(list(running), timeout=0.5, return_when=FIRST_COMPLETED)
            else:
                time.sleep(1.0)  # every run left is busy in another lab: wait for it
            ctrl_c.check()
    except BaseException:
        stop.set()
        if pool is not None:
            pool.shutdown(wait=False, cancel_futures=True)
        local.shutdown(wait=True, cancel_futures=True)
        # a run claimed and handed to a worker that had not started it yet is cancelled here, never run
        # and never released by _execute: release it, or a rerun waits STALE_SECONDS for its claim
        for f, (_, _, key) in running.items():
            if f.cancelled():
                db.release(key, owner)
        raise
    finally:
        ctrl_c.restore()
        if torch_threads is not None:
            _restore_torch_threads(torch_threads)
    if pool is not None:
        pool.shutdown(wait=True)
    local.shutdown(wait=True)
    emit("end", {})
    runs = with_start_losses(db, db.runs(exp))
    result = LabResult(
        t.name, exp, runs, db.path, name, str(probe.metric_name), bool(probe.higher_is_better), n_epochs
    )
    if not isinstance(store, ResultStore):
        db.close()
    return result


class _CtrlC:
    """Ctrl-C (SIGINT) while the lab runs: the first one sets ``stop`` (a run in this process stops at
    its next step, releasing its claim) and the lab's loop raises KeyboardInterrupt at its next turn
    (:meth:`check`, within half a second), then shuts its workers down and waits for them. Python's own
    KeyboardInterrupt could land inside ``concurrent.futures.wait``'s lock and leave it broken
    ("RuntimeError: release unlocked lock", a traceback) or end the process with its worker thread still
    in torch ("terminate called without an active exception", SIGABRT). A second Ctrl-C is the
    KeyboardInterrupt at once. Only in the main thread (where Python delivers signals)."""

    def __init__(self, stop: threading.Event) -> None:
        self.stop = stop
        self.asked = threading.Event()
        self.installed = threading.current_thread() is threading.main_thread()
        self.old: Any = signal.signal(signal.SIGINT, self._on_sigint) if self.installed else None

    def _on_sigint(self, signum: int, frame: Any) -> None:
        if self.asked.is_set():
            raise KeyboardInterrupt
        self.asked.set()
        self.stop.set()

    def check(self) -> None:
        """Raise KeyboardInterrupt here if Ctrl-C was pressed."""
        if self.asked.is_set():
            raise KeyboardInterrupt

    def restore(self) -> None:
        """Give Ctrl-C back to the handler it had before the lab."""
        if self.installed:
            signal.signal(signal.SIGINT, self.old if self.old is not None else signal.SIG_DFL)
            self.installed = False


def main_unimportable(task: str) -> str | None:
    """Why a worker process that imports ``__main__`` afresh (spawned, or forked by a forkserver) cannot
    rebuild task ``task`` (``"__main__:make"``): this process's ``__main__`` has no file to import
    (``python -c``, a script read from stdin, a notebook); None where it can, or the task is not in
    ``__main__``. A worker started by ``python -m pkg.mod`` imports ``pkg.mod`` by its name."""
    import sys

    if not isinstance(task, str) or task.partition(":")[0] != "__main__":
        return None
    main = sys.modules.get("__main__")
    if getattr(getattr(main, "__spec__", None), "name", None):  # python -m: imported by name
        return None
    path = getattr(main, "__file__", None)
    if isinstance(path, str) and os.path.isfile(path):
        return None
    where = "no file" if path is None else f"no file ({path!r})"
    return (
        f"task {task!r} is defined in __main__, which has {where} that a worker process could import "
        "(python -c, a script read from stdin, a notebook)"
    )


def _worker_died(path: str, pool: Executor | None = None) -> ChildProcessError:
    """The error that ends a lab whose worker process died: one that exited with an error code (it could
    not start, e.g. its ``__main__`` failed to import) points at its own error, printed above; one killed
    by a signal (the OOM killer, kill -9) says so."""
    processes = list(dict(getattr(pool, "_processes", None) or {}).values())
    deadline = time.monotonic() + 2.0
    for p in processes:  # a dead worker's pipe closes a moment before its exit code can be read
        p.join(max(0.0, deadline - time.monotonic()))
        # the pool's own thread may reap the process at the same moment: our waitpid then finds no child
        # and the code shows only once that thread has stored it (a few microseconds later)
        while p.exitcode is None and time.monotonic() < deadline:
            time.sleep(0.001)
    # SIGTERM: a worker the broken pool stopped itself
    codes = [p.exitcode for p in processes if p.exitcode not in (None, 0, -signal.SIGTERM)]
    kept = f"the finished runs are kept in {path}: run the same command again to run the rest"
    if any(code > 0 for code in codes):
        code = next(code for code in codes if code > 0)
        return ChildProcessError(
            f"a lab worker process exited with code {code} (its own error, printed above on stderr, says "
            f"why; not a kill or a lack of memory); {kept} once it is fixed"
        )
    if codes:
        try:
            name = signal.Signals(-codes[0]).name
        except ValueError:
            name = f"signal {-codes[0]}"
        return ChildProcessError(
            f"a lab worker process died (killed by {name}: from outside, or out of memory: try fewer "
            f"--workers); {kept}"
        )
    return ChildProcessError(
        "a lab worker process died (killed from outside, or out of memory: try fewer --workers); " + kept
    )


def _noop() -> None:
    """Run in each new worker process to start it."""


def _start_pool(pool: Executor, n: int, ready: threading.Event) -> None:
    """Start ``n`` worker processes of ``pool``, then set ``ready``."""
    try:
        for f in [pool.submit(_noop) for _ in range(n)]:
            f.result()
    except Exception:
        pass
    ready.set()


def _limit_torch_threads() -> int:
    """One torch thread here too while worker processes share the cores; returns the old count."""
    import torch

    old = torch.get_num_threads()
    torch.set_num_threads(1)
    return old


def _restore_torch_threads(n: int) -> None:
    import torch

    torch.set_num_threads(n)


def _builtin() -> set[str]:
    from ..tasks import TASKS

    return set(TASKS)


def _spawn() -> Any:
    """How worker processes start. ``fork`` on Linux when this process runs no other Python thread
    (forking a process whose other threads may hold locks is unsafe): a worker then starts in
    milliseconds with torch already imported, as PyTorch's DataLoader workers do, and sets one torch
    thread first thing. Otherwise a forkserver that has imported torch and lrkit once."""
    import multiprocessing
    import sys

    methods = multiprocessing.get_all_start_methods()
    if sys.platform == "linux" and "fork" in methods and threading.active_count() == 1:
        return multiprocessing.get_context("fork")
    if "forkserver" not in methods:
        return multiprocessing.get_context("spawn")
    ctx = multiprocessing.get_context("forkserver")
    ctx.set_forkserver_preload(
        ["torch", "lrkit.tasks", "lrkit.lab.runner", "lrkit.adapters.torch", "sklearn"]
    )
    return ctx
