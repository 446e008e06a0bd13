"""The lab: run learning-rate strategies side by side on a real task, and record everything.

A :class:`Strategy` is a label, a schedule (object or spec) and optionally an optimizer that replaces
the task's own (``sgd``, ``adagrad``, ``rmsprop``, ``adam``, ``adamw``), so adaptive optimizers can be
compared with schedules on the same model and data. Each run trains from the same initial weights
(per seed), drives the LR with :func:`lrkit.torch.scheduler`, records the LR and loss of every step and
the validation metric of every epoch, and is written to the :class:`~lrkit.lab.store.ResultStore` as
soon as it ends. A run *diverges* (and stops there, with final metric 0) when its loss is NaN/inf or
exceeds ``diverge_factor`` (default 10) times the loss of its first step.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ..schedules import Schedule
from ..spec import load, to_string
from .store import ResultStore, RunRecord

if TYPE_CHECKING:
    import torch

__all__ = ["OPTIMIZERS", "LabResult", "Strategy", "run_lab", "run_strategy"]

#: optimizers a strategy may choose instead of the task's own
OPTIMIZERS = ("sgd", "adagrad", "rmsprop", "adam", "adamw")


@dataclass(frozen=True)
class Strategy:
    """What to run: ``schedule`` (a Schedule or spec), under ``optimizer`` (None: the task's own)."""

    label: str
    schedule: Schedule | str
    optimizer: str | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.label, str) or not self.label:
            raise ValueError(f"strategy: label must be a non-empty string, got {self.label!r}")
        if self.optimizer is not None and self.optimizer not in OPTIMIZERS:
            raise ValueError(
                f"strategy {self.label!r}: optimizer must be one of {', '.join(OPTIMIZERS)} or None, "
                f"got {self.optimizer!r}"
            )
        if isinstance(self.schedule, str):
            object.__setattr__(self, "schedule", load(self.schedule))
        elif not isinstance(self.schedule, Schedule):
            raise TypeError(
                f"strategy {self.label!r}: schedule must be a Schedule or a spec string, "
                f"got {type(self.schedule).__name__}"
            )

    @classmethod
    def parse(cls, text: str) -> Strategy:
        """``"label=spec"``, ``"label@adam=spec"`` or just ``"spec"`` (the label is then the spec)."""
        head, sep, spec = text.partition("=")
        if not sep or "(" in head:
            return cls(text.strip(), text.strip())
        label, _, opt = head.partition("@")
        return cls(label.strip(), spec.strip(), opt.strip() or None)


def _make_optimizer(name: str, params: Any, lr: float) -> torch.optim.Optimizer:
    import torch

    if name == "sgd":
        return torch.optim.SGD(params, lr=lr, momentum=0.9)
    if name == "adagrad":
        return torch.optim.Adagrad(params, lr=lr)
    if name == "rmsprop":
        return torch.optim.RMSprop(params, lr=lr)
    if name == "adam":
        return torch.optim.Adam(params, lr=lr)
    return torch.optim.AdamW(params, lr=lr, weight_decay=0.01)


def run_strategy(
    task_name: str,
    strategy: Strategy,
    *,
    seed: int = 0,
    epochs: int | None = None,
    experiment_id: int = 0,
    diverge_factor: float = 10.0,
) -> RunRecord:
    """Train ``task_name`` with ``strategy`` from scratch; the record's status says how it ended.

    A KeyboardInterrupt is re-raised after the partial record is attached to it as ``exc.record``.
    """
    import torch

    from ..adapters.torch import scheduler as make_scheduler
    from .tasks import get_task

    task = get_task(task_name)
    n_epochs = task.epochs if epochs is None else epochs
    if isinstance(n_epochs, bool) or not isinstance(n_epochs, int) or n_epochs < 1:
        raise ValueError(f"epochs must be an integer >= 1, got {epochs!r}")
    if not (isinstance(diverge_factor, (int, float)) and diverge_factor > 1):
        raise ValueError(f"diverge_factor must be a number > 1, got {diverge_factor!r}")
    parts = task.build(seed)
    total = n_epochs * parts.steps_per_epoch
    sched = strategy.schedule
    assert isinstance(sched, Schedule)  # normalised by Strategy.__post_init__
    first = sched.resolve(total_steps=total, steps_per_epoch=parts.steps_per_epoch)
    if first.unresolved:
        raise ValueError(f"strategy {strategy.label!r}: {first.unresolved}")
    opt_name = strategy.optimizer or task.optimizer
    opt = (
        parts.make_optimizer(first(0))
        if strategy.optimizer is None
        else _make_optimizer(strategy.optimizer, parts.model.parameters(), first(0))
    )
    lr_sched = make_scheduler(opt, sched, total_steps=total, steps_per_epoch=parts.steps_per_epoch)
    rec = RunRecord(
        experiment_id, strategy.label, to_string(sched), opt_name, seed, "ok", None, None, None, 0, 0.0
    )
    model, loss_fn = parts.model, parts.loss_fn
    t0 = time.perf_counter()
    try:
        for _ in range(n_epochs):
            model.train()
            epoch_losses = []
            for x, y in parts.train_loader:
                rec.lrs.append(float(opt.param_groups[0]["lr"]))
                opt.zero_grad(set_to_none=True)
                loss = loss_fn(model(x), y)
                value = float(loss.detach())
                rec.losses.append(value)
                if not math.isfinite(value) or value > diverge_factor * rec.losses[0]:
                    rec.status, rec.diverged_step = "diverged", rec.steps
                    break
                loss.backward()  # type: ignore[no-untyped-call]
                opt.step()
                lr_sched.step()
                rec.steps += 1
                epoch_losses.append(value)
            if rec.status == "diverged":
                break
            model.eval()
            with torch.no_grad():
                m = float(parts.metric(model))
            rec.epoch_metrics.append(m if math.isfinite(m) else float("nan"))
            rec.epoch_losses.append(sum(epoch_losses) / max(1, len(epoch_losses)))
    except KeyboardInterrupt as exc:
        rec.status = "interrupted"
        rec.seconds = time.perf_counter() - t0
        _finish(rec)
        exc.record = rec  # type: ignore[attr-defined]
        raise
    rec.seconds = time.perf_counter() - t0
    _finish(rec)
    return rec


def _finish(rec: RunRecord) -> None:
    finite = [m for m in rec.epoch_metrics if math.isfinite(m)]
    if rec.status == "diverged":
        rec.final_metric = 0.0  # a diverged run ends with nothing usable
    else:
        rec.final_metric = rec.epoch_metrics[-1] if rec.epoch_metrics else None
    rec.best_metric = max(finite) if finite else None


@dataclass
class LabResult:
    """All runs of one lab experiment (also in ``store`` under ``experiment_id``)."""

    task: str
    experiment_id: int
    runs: list[RunRecord]
    store_path: str

    def labels(self) -> list[str]:
        return list(dict.fromkeys(r.label for r in self.runs))

    def by_label(self, label: str) -> list[RunRecord]:
        return [r for r in self.runs if r.label == label]


def run_lab(
    task: str,
    strategies: Sequence[Strategy],
    *,
    seeds: Sequence[int] = (0,),
    epochs: int | None = None,
    store: ResultStore | str = ":memory:",
    name: str = "lab",
    diverge_factor: float = 10.0,
    progress: Callable[[str], None] | None = print,
) -> LabResult:
    """Run every strategy for every seed on ``task``; record each run in ``store`` as it ends."""
    if not strategies:
        raise ValueError("strategies: expected at least one strategy, got none")
    labels = [s.label for s in strategies]
    if len(set(labels)) != len(labels):
        raise ValueError(f"strategies: labels must be unique, got {labels}")
    if not seeds:
        raise ValueError("seeds: expected at least one seed, got none")
    from .tasks import get_task

    get_task(task)  # unknown names fail before anything runs
    from ..adapters import torch as _needs_torch  # noqa: F401  (a missing torch too: nothing is written)

    db = store if isinstance(store, ResultStore) else ResultStore(store)
    exp = db.new_experiment(name, task)
    runs: list[RunRecord] = []
    for strategy in strategies:
        for seed in seeds:
            try:
                rec = run_strategy(
                    task, strategy, seed=seed, epochs=epochs, experiment_id=exp, diverge_factor=diverge_factor
                )
            except KeyboardInterrupt as exc:
                partial = getattr(exc, "record", None)
                if partial is not None:
                    db.add_run(partial)
                raise
            db.add_run(rec)
            runs.append(rec)
            if progress is not None:
                end = (
                    f"diverged at step {rec.diverged_step}"
                    if rec.status == "diverged"
                    else f"metric {rec.final_metric:.4f}"
                )
                progress(f"  {strategy.label:<28} seed {seed}: {end} ({rec.seconds:.1f} s)")
    return LabResult(task, exp, runs, db.path)
