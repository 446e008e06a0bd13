"""Hugging Face transformers: an lrkit schedule in ``Trainer``, in one line.

::

    import lrkit
    trainer = lrkit.transformers.Trainer(
        model=model, args=args, train_dataset=ds,
        schedule="warmup(10%) >> cosine(lr=1.0, min_lr=0.1)", relative=True,   # x args.learning_rate
    )
    trainer.train()

:class:`Trainer` is ``transformers.Trainer`` whose ``create_scheduler`` builds
:func:`lrkit.torch.scheduler` over the number of training steps the Trainer computed
(``num_training_steps``: ``max_steps``, or epochs x update steps per epoch), instead of
``args.lr_scheduler_type``. Fractions (``10%``), ``rest`` and epochs (``1ep``: one epoch of optimizer
updates) resolve against that run. For another Trainer class (TRL's ``SFTTrainer``...),
``lrkit.transformers.with_schedule(SFTTrainer)(..., schedule=...)``; in a subclass of your own, call
:func:`create_scheduler` from its ``create_scheduler``.

The schedule gives LRs (``relative=False``, lrkit's default, the schedule's ``lr`` is the LR) or, with
``relative=True``, multiplies ``args.learning_rate`` (the optimizer's lr), like transformers' own
schedules. ``args.warmup_steps``/``warmup_ratio`` are not used: put the warmup in the schedule (a
warning says so when they are set). The Trainer steps the scheduler once per optimizer update (not per
micro-batch), skips it when the optimizer step was skipped, logs ``learning_rate`` from
``get_last_lr()``, and saves/restores its ``state_dict`` with checkpoints: resuming with another schedule
raises :class:`lrkit.torch.ScheduleMismatchError` (set ``allow_schedule_change=True`` to switch on
purpose).

``plateau=Plateau(...)`` is fed, as transformers feeds its ``reduce_lr_on_plateau``, the metric of every
evaluation during training, ``"eval_" + args.metric_for_best_model`` (default ``eval_loss``); its cuts
multiply the schedule at once. It needs ``args.eval_strategy`` other than ``"no"``, and its ``mode`` must
agree with ``args.greater_is_better`` (``Plateau(mode="max")`` for an accuracy). transformers feeds no
other plateau: for a plain ``transformers.Trainer(optimizers=(optimizer, lrkit_scheduler))`` whose scheduler
has one, add :class:`PlateauCallback`. ``schedule=`` next to a scheduler in ``optimizers=`` is refused.
"""

from __future__ import annotations

import functools
import warnings
from collections.abc import Mapping
from typing import Any

import torch
import transformers

from ..control.plateau import Plateau
from ..schedules.base import run_named
from ..spec import ScheduleLike, as_schedule
from . import torch as lrkit_torch

__all__ = ["PlateauCallback", "ScheduleMixin", "Trainer", "create_scheduler", "with_schedule"]


def create_scheduler(
    trainer: transformers.Trainer,
    schedule: ScheduleLike,
    num_training_steps: int,
    optimizer: torch.optim.Optimizer | None = None,
    *,
    relative: bool = False,
    plateau: Plateau | None = None,
    allow_schedule_change: bool = False,
) -> lrkit_torch.Scheduler:
    """What ``Trainer.create_scheduler`` should do with an lrkit schedule; sets ``trainer.lr_scheduler``.

    For a Trainer subclass of your own::

        def create_scheduler(self, num_training_steps, optimizer=None):
            return lrkit.transformers.create_scheduler(self, "warmup(5%) >> cosine(lr=3e-4)",
                                                       num_training_steps, optimizer)
    """
    existing = trainer.lr_scheduler
    if existing is not None:  # given to the Trainer, or made before (transformers creates it once)
        if not isinstance(existing, lrkit_torch.Scheduler):
            raise TypeError(
                f"create_scheduler: the Trainer already has a {type(existing).__name__}; give the schedule "
                "to lrkit.transformers.Trainer(schedule=...) instead of optimizers=(opt, scheduler)"
            )
        return existing
    s = as_schedule(schedule, "schedule")
    opt = trainer.optimizer if optimizer is None else optimizer
    if opt is None:
        raise ValueError("create_scheduler: the Trainer has no optimizer yet; call create_optimizer() first")
    args = trainer.args
    unused = [
        f"args.{k}={getattr(args, k)!r}" for k in ("warmup_steps", "warmup_ratio") if getattr(args, k, 0)
    ]
    if unused:  # transformers 5 has no warmup_ratio: warmup_steps < 1 is the fraction
        warnings.warn(
            f"lrkit.transformers: {' and '.join(unused)} {'is' if len(unused) == 1 else 'are'} not used; the "
            f"lrkit schedule ({s}) is the whole curve: put the warmup in it, e.g. 'warmup(5%) >> ...'",
            UserWarning,
            stacklevel=3,
        )
    steps_per_epoch = None
    if s.resolve(total_steps=num_training_steps).unresolved:  # epochs: one epoch of optimizer updates
        steps_per_epoch = _updates_per_epoch(trainer, s)
    with run_named("lrkit.transformers", "num_training_steps"):  # the run as the Trainer gives it
        sched = _TrainerScheduler(
            opt,
            s,
            total_steps=num_training_steps,
            steps_per_epoch=steps_per_epoch,
            relative=relative,
            plateau=plateau,
        )
    sched.allow_schedule_change = allow_schedule_change
    sched.switch = (  # what the Trainer's user passes to switch schedules on resume
        f"{type(trainer).__name__}(..., allow_schedule_change=True)"
        if isinstance(trainer, ScheduleMixin)
        else "lrkit.transformers.create_scheduler(..., allow_schedule_change=True)"
    )
    # transformers annotates lr_scheduler as LambdaLR | None; any LRScheduler is used there
    trainer.lr_scheduler = sched  # type: ignore[assignment]
    trainer._created_lr_scheduler = True  # what transformers' own create_scheduler records
    return sched


class _TrainerScheduler(lrkit_torch.Scheduler):
    """The :func:`lrkit.torch.scheduler` a Trainer holds. The Trainer loads its state from a checkpoint for
    its user, who calls neither ``load_state_dict`` nor builds the scheduler: a schedule that does not
    match the checkpoint's (another schedule, or a longer run: ``num_train_epochs``, ``max_steps``) raises
    :class:`~lrkit.torch.ScheduleMismatchError` naming the argument that user passes, :attr:`switch`."""

    switch = "allow_schedule_change=True"

    def load_state_dict(
        self, state_dict: Mapping[str, Any], *, allow_schedule_change: bool | None = None
    ) -> None:
        try:
            super().load_state_dict(state_dict, allow_schedule_change=allow_schedule_change)
        except lrkit_torch.ScheduleMismatchError as e:
            head, *rest = str(e).splitlines()
            shown = [line for line in rest if line.startswith("  ")]  # the saved and this run's specs
            raise lrkit_torch.ScheduleMismatchError(
                "\n".join([head, *shown])
                + "\nThe checkpoint was saved with another schedule or run length (num_train_epochs, "
                "max_steps). To resume, give the schedule and the run length it was saved with; to switch "
                "on purpose (a longer run: keep the step, base LRs and cuts, go on with this schedule from "
                f"the saved step), pass {self.switch}"
            ) from None


def _updates_per_epoch(trainer: transformers.Trainer, s: Any) -> int:
    """The optimizer updates of one epoch, as the Trainer counts them: its ``set_initial_training_values``
    (transformers 5: ``ceil(batches / gradient_accumulation_steps)``, a short last accumulation is an
    update); in versions without it, ``batches // gradient_accumulation_steps``."""
    loader = trainer.get_train_dataloader()
    try:
        batches = len(loader)
    except TypeError:
        raise ValueError(
            f"create_scheduler: the schedule ({s}) counts epochs, but the training data has no length (an "
            "IterableDataset), so an epoch has no number of updates; give its durations in steps or fractions"
        ) from None
    count = getattr(trainer, "set_initial_training_values", None)
    if count is not None:
        return int(count(trainer.args, loader)[1])
    return max(batches // max(int(trainer.args.gradient_accumulation_steps), 1), 1)


def _lrkit_scheduler(sched: Any) -> Any:
    """``sched``, or the scheduler it wraps (accelerate's ``AcceleratedScheduler``, when the Trainer
    prepares it)."""
    inner = getattr(sched, "scheduler", None)
    return inner if isinstance(inner, lrkit_torch.Scheduler) else sched


class PlateauCallback(transformers.TrainerCallback):
    """Gives the plateau of the Trainer's lrkit scheduler the metric of each evaluation during training,
    as transformers steps its own ``ReduceLROnPlateau``: ``eval_`` + ``args.metric_for_best_model``
    (default ``eval_loss``).

    :class:`Trainer` adds it for ``plateau=...``. transformers feeds no other scheduler, so a plain
    ``transformers.Trainer(optimizers=(optimizer, lrkit_scheduler))`` whose scheduler has a plateau
    needs it: ``trainer.add_callback(lrkit.transformers.PlateauCallback(trainer))``.
    """

    def __init__(self, trainer: Any, plateau: Plateau | None = None) -> None:
        if not isinstance(trainer, transformers.Trainer):
            raise TypeError(
                f"PlateauCallback: trainer must be a transformers.Trainer, got {type(trainer).__name__}"
            )
        args = trainer.args
        if str(getattr(args.eval_strategy, "value", args.eval_strategy)) == "no":
            raise ValueError(
                "plateau=...: the plateau watches an evaluation metric, but args.eval_strategy='no'; set "
                "eval_strategy='steps' or 'epoch' (and an eval_dataset)"
            )
        key = args.metric_for_best_model or "loss"
        self.key = key if key.startswith("eval_") else f"eval_{key}"
        self.trainer = trainer
        self.training = False
        if plateau is None:  # the scheduler given to the Trainer
            sched = _lrkit_scheduler(trainer.lr_scheduler)
            if not isinstance(sched, lrkit_torch.Scheduler) or sched.plateau is None:
                raise ValueError(
                    "PlateauCallback: the Trainer's scheduler is "
                    f"{'None' if sched is None else type(sched).__name__ + ' ' + repr(sched)}, not an "
                    "lrkit.torch scheduler with a plateau; build it with "
                    "lrkit.torch.scheduler(..., plateau=Plateau(...)) and pass optimizers=(optimizer, "
                    "scheduler), or use lrkit.transformers.Trainer(schedule=..., plateau=...)"
                )
            plateau = sched.plateau
        higher = getattr(args, "greater_is_better", None)
        if (
            args.metric_for_best_model is not None
            and higher is not None
            and higher != (plateau.mode == "max")
        ):
            raise ValueError(
                f"plateau=Plateau(mode={plateau.mode!r}) watches {self.key!r}, but "
                f"args.greater_is_better={higher!r}: pass Plateau(mode={'max' if higher else 'min'!r})"
            )

    def on_train_begin(self, args: Any, state: Any, control: Any, **kw: Any) -> None:
        self.training = True

    def on_train_end(self, args: Any, state: Any, control: Any, **kw: Any) -> None:
        self.training = False

    def on_evaluate(self, args: Any, state: Any, control: Any, metrics: Any = None, **kw: Any) -> None:
        sched = _lrkit_scheduler(self.trainer.lr_scheduler)
        if not self.training or not isinstance(sched, lrkit_torch.Scheduler) or sched.plateau is None:
            return
        if self.key not in (metrics or {}):
            if isinstance(self.trainer.eval_dataset, dict):  # one of several eval sets: another has it
                return
            raise ValueError(
                f"plateau=...: the plateau watches {self.key!r} (args.metric_for_best_model="
                f"{args.metric_for_best_model!r}), but the evaluation gave {sorted(metrics or {})}"
            )
        sched.report(metrics[self.key])


class ScheduleMixin:
    """Adds ``schedule=``, ``relative=``, ``plateau=`` and ``allow_schedule_change=`` to a Trainer class
    (put it first: ``class T(ScheduleMixin, transformers.Trainer)``)."""

    lr_scheduler: Any

    def __init__(
        self,
        *args: Any,
        schedule: ScheduleLike,
        relative: bool = False,
        plateau: Plateau | None = None,
        allow_schedule_change: bool = False,
        **kwargs: Any,
    ) -> None:
        self.lrkit_schedule = as_schedule(schedule, "schedule")  # checked before the Trainer is built
        if not isinstance(relative, bool):
            raise TypeError(f"relative must be True or False, got {relative!r}")
        if not isinstance(allow_schedule_change, bool):
            raise TypeError(f"allow_schedule_change must be True or False, got {allow_schedule_change!r}")
        self.lrkit_relative = relative
        self.lrkit_plateau = plateau
        self.lrkit_allow_schedule_change = allow_schedule_change
        super().__init__(*args, **kwargs)
        given = self.lr_scheduler  # optimizers=(optimizer, scheduler)
        if given is not None:
            both = "schedule=" + ("" if plateau is None else " and plateau=")
            raise ValueError(
                f"{type(self).__name__}: got {both} together with a scheduler in optimizers=(optimizer, "
                f"{type(given).__name__}); the Trainer would train with that scheduler and ignore {both}. "
                "Give the schedule here with optimizers=(optimizer, None) (the lrkit scheduler is built on "
                "that optimizer), or pass your scheduler to transformers.Trainer (an lrkit scheduler's "
                "plateau is then fed by trainer.add_callback(lrkit.transformers.PlateauCallback(trainer)))"
            )
        if plateau is not None:
            if not isinstance(plateau, Plateau):
                raise TypeError(
                    f"plateau must be an lrkit.control.Plateau, got {type(plateau).__name__} {plateau!r}"
                )
            self.add_callback(PlateauCallback(self, plateau))  # type: ignore[attr-defined]

    def create_scheduler(
        self, num_training_steps: int, optimizer: torch.optim.Optimizer | None = None
    ) -> torch.optim.lr_scheduler.LRScheduler:
        """An :func:`lrkit.torch.scheduler` over ``num_training_steps`` (see :func:`create_scheduler`)."""
        if not isinstance(self, transformers.Trainer):
            raise TypeError(
                f"ScheduleMixin must come before a transformers.Trainer, in {type(self).__name__}"
            )
        return create_scheduler(
            self,
            self.lrkit_schedule,
            num_training_steps,
            optimizer,
            relative=self.lrkit_relative,
            plateau=self.lrkit_plateau,
            allow_schedule_change=self.lrkit_allow_schedule_change,
        )


class Trainer(ScheduleMixin, transformers.Trainer):
    """``transformers.Trainer`` driven by an lrkit schedule: ``Trainer(..., schedule=spec)``."""


@functools.cache
def with_schedule(trainer_class: type[transformers.Trainer]) -> type[transformers.Trainer]:
    """``trainer_class`` with :class:`ScheduleMixin`: ``with_schedule(SFTTrainer)(..., schedule=spec)``."""
    if not (isinstance(trainer_class, type) and issubclass(trainer_class, transformers.Trainer)):
        raise TypeError(f"with_schedule: expected a transformers.Trainer subclass, got {trainer_class!r}")
    if issubclass(trainer_class, ScheduleMixin):
        return trainer_class
    return type(f"Lrkit{trainer_class.__name__}", (ScheduleMixin, trainer_class), {})
