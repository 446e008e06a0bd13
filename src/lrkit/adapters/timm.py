"""timm's scheduler interface over an lrkit schedule, for timm's ``train.py`` and loops written like it.

timm's training loop tells the scheduler the time instead of asking it to count: after every optimizer
update ``lr_scheduler.step_update(num_updates=num_updates, metric=...)`` (``num_updates`` counts updates
from the start of the run), and after every epoch ``lr_scheduler.step(epoch + 1, eval_metric)``; on resume
``step_update(start_epoch * updates_per_epoch)`` or ``step(start_epoch)``. :func:`scheduler` returns a
:class:`TimmScheduler` that answers those calls from the closed form::

    sched = lrkit.timm.scheduler(optimizer, "warmup(1ep) >> cosine(lr=5e-4, min_lr=1e-6)",
                                 epochs=num_epochs, updates_per_epoch=updates_per_epoch)

- ``t_in_epochs=False`` (default): the LR follows the update count: ``step_update(n)`` writes
  ``schedule(n)``; ``step(epoch, metric)`` only feeds the plateau.
- ``t_in_epochs=True`` (timm's default for its epoch schedulers): ``step(e, metric)`` writes
  ``schedule(e * updates_per_epoch)``; ``step_update`` changes nothing.

With a :class:`~lrkit.control.Plateau`, the metric of ``step(epoch, metric)`` (timm passes the eval
metric) is reported once per epoch and its cuts multiply the schedule; the running training loss that
``step_update`` receives is ignored, as timm's own plateau scheduler does. (Pass ``Plateau(mode="max")`` for
an accuracy.) ``state_dict``/``load_state_dict`` are :mod:`lrkit.torch`'s, schedule check included.

timm's default warmup (``warmup_prefix=False``) runs the decay from ``t = 0`` under the warmup; in lrkit that
is the warmup's ``overlap=true``: ``CosineLRScheduler(t_initial=T, lr_min=m, warmup_t=w, warmup_lr_init=i)``
over the base LR ``b`` is ``warmup(w, start=i/b, overlap=true) >> cosine(lr=b, min_lr=m, steps=T)``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, SupportsFloat

import torch

from .._checks import check_int
from ..control.plateau import Plateau
from ..schedules.base import run_named
from ..spec import ScheduleLike
from . import torch as lrkit_torch

__all__ = ["TimmScheduler", "scheduler"]


def _time(where: str, v: object) -> int:
    return check_int(v, where, 0)


class TimmScheduler:
    """timm's ``Scheduler`` calls (``step(epoch, metric)``, ``step_update(num_updates, metric)``,
    ``state_dict``, ``load_state_dict``) on an lrkit schedule; build it with :func:`scheduler`.

    :attr:`scheduler` is the :class:`lrkit.torch.Scheduler` underneath (``multiplier``, ``report``,
    ``values``...); :attr:`optimizer` is the optimizer it drives.
    """

    def __init__(self, sched: lrkit_torch.Scheduler, *, t_in_epochs: bool) -> None:
        self.scheduler = sched
        self.optimizer = sched.optimizer
        self.t_in_epochs = t_in_epochs

    def step(self, epoch: int, metric: SupportsFloat | None = None) -> None:
        """End of an epoch (timm passes ``epoch + 1``, the epoch about to start): report ``metric`` to the
        plateau (when there is one and a metric is given); with ``t_in_epochs`` write the LR of ``epoch``."""
        e = _time("step: epoch", epoch)
        if metric is not None and self.scheduler.plateau is not None:
            self.scheduler.report(metric)
        if self.t_in_epochs:
            self.scheduler.set_step(e)

    def step_update(self, num_updates: int, metric: SupportsFloat | None = None) -> None:
        """After optimizer update number ``num_updates`` (counted from the start of the run): write the LR
        of update ``num_updates`` (unless ``t_in_epochs``). ``metric`` (timm's running training loss) is
        not used."""
        n = _time("step_update: num_updates", num_updates)
        if not self.t_in_epochs:
            self.scheduler.set_step(n)

    def get_last_lr(self) -> list[float]:
        """The LRs written last, one per parameter group."""
        return self.scheduler.get_last_lr()

    def state_dict(self) -> dict[str, Any]:
        """:meth:`lrkit.torch.Scheduler.state_dict` (step, base LRs, cuts, plateau state, schedule)."""
        return self.scheduler.state_dict()

    def load_state_dict(
        self, state_dict: Mapping[str, Any], *, allow_schedule_change: bool | None = None
    ) -> None:
        """:meth:`lrkit.torch.Scheduler.load_state_dict` (refuses a state saved with another schedule)."""
        self.scheduler.load_state_dict(state_dict, allow_schedule_change=allow_schedule_change)

    def __repr__(self) -> str:
        return f"TimmScheduler({self.scheduler!r}, t_in_epochs={self.t_in_epochs})"


def scheduler(
    optimizer: torch.optim.Optimizer,
    schedule: ScheduleLike | Sequence[ScheduleLike],
    *,
    epochs: float | None = None,
    updates_per_epoch: int | None = None,
    total_steps: int | None = None,
    t_in_epochs: bool = False,
    relative: bool = False,
    plateau: Plateau | None = None,
    hparams: Mapping[str, ScheduleLike | Sequence[ScheduleLike]] | None = None,
) -> TimmScheduler:
    """An lrkit schedule behind timm's scheduler calls (see the module docstring).

    Args:
        optimizer: the torch optimizer timm's loop steps.
        schedule: an lrkit schedule, spec string or dict (or one per parameter group); a function of the
            optimizer update, durations in updates, epochs (``1ep`` = ``updates_per_epoch``), fractions.
        epochs, updates_per_epoch, total_steps: the run, as timm's ``create_scheduler_v2`` takes it
            (``total_steps = epochs * updates_per_epoch``); ``updates_per_epoch`` is
            ``(len(loader) + grad_accum_steps - 1) // grad_accum_steps`` in timm's ``train.py``.
        t_in_epochs: write the LR once per epoch in :meth:`TimmScheduler.step` (needs
            ``updates_per_epoch``) instead of after every update.
        relative, plateau, hparams: as :func:`lrkit.torch.scheduler`.

    >>> import torch, lrkit
    >>> opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=0.1)
    >>> s = lrkit.timm.scheduler(opt, "linear(lr=0.1, end_lr=0.0)", epochs=2, updates_per_epoch=5)
    >>> s.step_update(num_updates=4); round(opt.param_groups[0]["lr"], 6)
    0.06
    """
    if not isinstance(t_in_epochs, bool):
        raise TypeError(f"t_in_epochs must be True or False, got {t_in_epochs!r}")
    if updates_per_epoch is not None:
        why = (
            " (the optimizer updates of an epoch, timm's"
            " (len(loader) + grad_accum_steps - 1) // grad_accum_steps)"
        )
        check_int(updates_per_epoch, "updates_per_epoch", 1, why=why)
    if epochs is not None and updates_per_epoch is None:
        raise ValueError(f"epochs={epochs!r} needs updates_per_epoch=... to count the updates")
    if t_in_epochs and updates_per_epoch is None:
        raise ValueError(
            "t_in_epochs=True needs updates_per_epoch=... (the schedule is a function of the update)"
        )
    # a schedule longer than the run is warned about with the run as given here (epochs or total_steps)
    with run_named("lrkit.timm.scheduler", "total_steps" if epochs is None else "epochs * updates_per_epoch"):
        sched = lrkit_torch.Scheduler(
            optimizer,
            schedule,
            follow_optimizer=False,  # timm gives the time itself
            total_steps=total_steps,
            steps_per_epoch=None if updates_per_epoch is None else int(updates_per_epoch),
            epochs=epochs,
            relative=relative,
            interval="epoch" if t_in_epochs else "step",
            plateau=plateau,
            hparams=hparams,
        )
    return TimmScheduler(sched, t_in_epochs=t_in_epochs)
