"""``lrkit.auto``: the LR finder, a schedule from its result and the divergence guard, in one call.

::

    run = lrkit.auto(model, optimizer, train_loader, loss_fn, epochs=10)
    step = 0
    for epoch in range(10):
        for x, y in train_loader:
            loss = loss_fn(model(x), y)
            loss.backward()
            if run.guard.check(loss, step):          # a blow-up rolls back and cuts the LR
                optimizer.step(); run.scheduler.step(); step += 1
            optimizer.zero_grad()

What it does:

1. :func:`lrkit.finder.find_lr` (3 repeats of 100 rungs unless ``finder_options`` say otherwise) with
   escalation: a test without signal is retried within ``budget`` extra optimizer steps (default 0.1
   of the planned ones); model, optimizer and RNG are restored afterwards. The finder's compute is
   its first test (about 300 optimizer steps: 3% of a 10,000-step run, but more than half of a
   300-step toy run) plus at most ``budget``; :attr:`AutoResult.compute` says what it was;
2. a schedule whose peak is ``peak_factor`` (default 2) times the finder's suggestion: one-cycle for
   SGD (``torch.optim.SGD``: the super-convergence recipe of Smith & Topin 2019), else 5% linear
   warmup + cosine to 1% of the peak. The suggestion is a good *constant* LR; a schedule that spends
   most of the run below its peak wants a higher peak. Factor 2 was chosen on the public benchmark
   (``bench/finder_tasks.py --peak``, leave-one-task-out: chosen in 7 of 10 folds; on the tasks with a
   trusted suggestion it lifts the score from 0.97-0.98 to 0.99-1.00 on 5 of 7, and loses 2% on one);
3. :func:`lrkit.torch.scheduler` on the optimizer with that schedule over ``epochs * len(train_loader)``
   steps, and a :class:`lrkit.control.DivergenceGuard` attached to both. By default it acts on NaN/inf
   losses only (``guard_threshold=None``): its relative test (a loss above 4x the recent best) fired
   26 times in 9 healthy runs of the benchmark's digits tasks, where the batch loss nears 0 and a
   batch at 5x the best is noise, and each rollback halved the LR (up to 1.7% of the final metric).

When the finder finds no usable signal within the budget, :class:`lrkit.finder.NoSuggestionError` is
raised (with the reason and advice) and the model and optimizer are as they were. torch is imported
when :func:`auto` is called, not when this module is imported.
"""

from __future__ import annotations

import sys
import types
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import torch

    from lrkit.control.guard import DivergenceGuard
    from lrkit.finder.result import FinderResult
    from lrkit.schedules.base import Schedule

__all__ = ["AutoResult", "auto", "train_task"]

KINDS = ("auto", "cosine", "one_cycle")


@dataclass(frozen=True, eq=False)
class AutoResult:
    """What :func:`auto` set up: the ``scheduler`` (already driving the optimizer), the ``guard`` to call
    with each step's loss, the finder's ``finder`` result, the resolved ``schedule``, its ``kind``,
    ``peak_lr``, ``total_steps`` and a one-paragraph ``summary`` of what was chosen and why."""

    scheduler: Any
    guard: DivergenceGuard | None
    finder: FinderResult
    schedule: Schedule
    kind: str
    peak_lr: float
    total_steps: int
    summary: str

    @property
    def finder_steps(self) -> int:
        """Optimizer steps the finder spent (its compute, in training steps)."""
        return self.finder.steps

    @property
    def compute(self) -> float:
        """(finder steps + planned training steps) / planned training steps."""
        return (self.finder.steps + self.total_steps) / self.total_steps


def _is_sgd(optimizer: Any) -> bool:
    import torch

    return type(optimizer) is torch.optim.SGD


def auto(
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    train_loader: Iterable[Any],
    loss_fn: Callable[..., Any] | None = None,
    *,
    epochs: int,
    steps_per_epoch: int | None = None,
    kind: str = "auto",
    budget: float | int = 0.1,
    warmup: float = 0.05,
    peak_factor: float = 2.0,
    guard: bool = True,
    guard_threshold: float | None = None,
    verbose: bool = True,
    **finder_options: Any,
) -> AutoResult:
    """Find the LR, build warmup + cosine (one-cycle for SGD) from it, attach the scheduler and guard.

    Args:
        model, optimizer, train_loader, loss_fn: as for :func:`lrkit.finder.find_lr`.
        epochs: the planned training length; with ``steps_per_epoch`` (default ``len(train_loader)``)
            it gives ``total_steps = epochs * steps_per_epoch``, the scheduler's length.
        kind: ``"auto"`` (one-cycle for ``torch.optim.SGD``, else cosine), ``"cosine"`` (linear warmup
            over ``warmup`` of the run, then cosine from the suggestion to 1% of it) or ``"one_cycle"``
            (``OneCycle(max_lr=suggestion)``).
        peak_factor: the schedule's peak (one-cycle's ``max_lr``) is this times the suggestion.
        budget: the finder's escalation budget, the extra steps a retry may add to its first test: a
            fraction of ``total_steps`` (float) or optimizer steps (int).
        guard: attach a :class:`~lrkit.control.DivergenceGuard` (``factor=0.5``, snapshot every
            ``max(10, steps_per_epoch)`` steps).
        guard_threshold: the guard's ``threshold`` (a loss above this times the recent best is a
            blow-up); None (default): NaN/inf only.
        verbose: print the summary.
        finder_options: passed to :func:`lrkit.finder.find_lr` (``repeats``, ``seed``, ``val_data``...).

    Raises :class:`lrkit.finder.NoSuggestionError` when the range test found no usable signal; the
    model and optimizer are then unchanged (and on any other error too).
    """
    from lrkit.adapters.torch import scheduler as make_scheduler
    from lrkit.control.guard import DivergenceGuard
    from lrkit.finder import find_lr
    from lrkit.schedules import Cosine, OneCycle, Warmup

    if isinstance(epochs, bool) or not isinstance(epochs, int) or epochs < 1:
        raise ValueError(f"epochs must be an int >= 1, got {epochs!r}")
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {KINDS}, got {kind!r}")
    if (
        isinstance(peak_factor, bool)
        or not isinstance(peak_factor, (int, float))
        or not (0.0 < peak_factor < float("inf"))
    ):
        raise ValueError(f"peak_factor must be a finite number > 0, got {peak_factor!r}")
    if isinstance(warmup, bool) or not isinstance(warmup, (int, float)) or not 0.0 <= warmup < 1.0:
        raise ValueError(f"warmup must be a fraction of the run in [0, 1), got {warmup!r}")
    if steps_per_epoch is None:
        try:
            steps_per_epoch = len(train_loader)  # type: ignore[arg-type]
        except TypeError:
            raise TypeError("train_loader has no len(); pass steps_per_epoch") from None
    if isinstance(steps_per_epoch, bool) or not isinstance(steps_per_epoch, int) or steps_per_epoch < 1:
        raise ValueError(f"steps_per_epoch must be an int >= 1, got {steps_per_epoch!r}")
    total = epochs * steps_per_epoch
    finder_options.setdefault("repeats", 3)
    found = find_lr(
        model, optimizer, train_loader, loss_fn, planned_steps=total, budget=budget, **finder_options
    )
    peak = peak_factor * found.require()  # NoSuggestionError: nothing changed yet
    chosen = ("one_cycle" if _is_sgd(optimizer) else "cosine") if kind == "auto" else kind
    saved = [dict(g) for g in optimizer.param_groups]
    try:
        if chosen == "one_cycle":
            sched: Schedule = OneCycle(max_lr=peak)
            why = "one-cycle (SGD: warm up to the peak, anneal to ~0)"
        else:
            sched = Warmup(float(warmup)) >> Cosine(lr=peak, min_lr=peak * 0.01)
            why = f"{warmup:.0%} linear warmup to the peak, then cosine to 1% of it"
        resolved = sched.resolve(total_steps=total, steps_per_epoch=steps_per_epoch)
        scheduler = make_scheduler(optimizer, resolved, total_steps=total)
        watch = (
            DivergenceGuard(
                model,
                optimizer,
                scheduler,
                threshold=guard_threshold,
                snapshot_every=max(10, steps_per_epoch),
            )
            if guard
            else None
        )
    except BaseException:
        for group, old in zip(optimizer.param_groups, saved, strict=True):
            group.clear()
            group.update(old)
        raise
    escalated = f"; escalated: {'; '.join(found.escalation)}" if found.escalation else ""
    lo, hi = found.interval
    summary = (
        f"lrkit.auto: peak LR {peak:.3g} = {peak_factor:g} x the finder's {found.require():.3g} "
        f"(rule {found.rule!r}, {found.repeats} repeats, interval "
        f"{lo:.3g} .. {hi:.3g}; finder {found.steps} optimizer steps = "
        f"{found.steps / total:.1%} of the {total} planned{escalated}); schedule: {why}, over {total} steps"
        f" ({epochs} epochs x {steps_per_epoch}); "
        + (
            "divergence guard on (roll back and halve the LR on a "
            + ("NaN/inf loss)" if guard_threshold is None else f"loss above {guard_threshold:g}x the best)")
            if watch
            else "no guard"
        )
    )
    if verbose:
        print(summary)
    return AutoResult(
        scheduler=scheduler,
        guard=watch,
        finder=found,
        schedule=resolved,
        kind=chosen,
        peak_lr=peak,
        total_steps=total,
        summary=summary,
    )


def train_task(
    parts: Any, *, seed: int = 0, budget: float | int = 0.1, verbose: bool = False
) -> dict[str, Any]:
    """Run :func:`auto` on an :class:`lrkit.tasks.TaskParts` and train it with the scheduler and guard.

    Returns ``{"metric", "peak_lr", "kind", "finder_steps", "train_steps", "compute", "events",
    "summary"}`` (``metric``: the task's validation metric at the end).
    """
    from lrkit.tasks import eval_mode, train_mode

    optimizer = parts.make_optimizer(1e-3)
    run = auto(
        parts.model, optimizer, parts.train_loader, parts.loss_fn,
        epochs=parts.epochs, budget=budget, seed=seed, verbose=verbose,
    )  # fmt: skip
    model, loss_fn = parts.model, parts.loss_fn
    step = 0
    train_mode(optimizer)
    model.train()
    for _ in range(parts.epochs):
        for x, y in parts.train_loader:
            optimizer.zero_grad(set_to_none=True)
            loss = loss_fn(model(x), y)
            if not run.guard or run.guard.check(loss, step):
                loss.backward()
                optimizer.step()
                run.scheduler.step()
                step += 1
    eval_mode(optimizer)
    metric = parts.evaluate()
    return {
        "metric": metric,
        "peak_lr": run.peak_lr,
        "kind": run.kind,
        "finder_steps": run.finder_steps,
        "train_steps": step,
        "compute": (run.finder_steps + step) / run.total_steps,
        "events": len(run.guard.events) if run.guard else 0,
        "summary": run.summary,
    }


class _CallableModule(types.ModuleType):
    """``lrkit.auto`` is both this module and the function: once the module is imported, Python binds
    the package attribute ``lrkit.auto`` to it, so calling the module calls :func:`auto`."""

    def __call__(self, *args: Any, **kwargs: Any) -> AutoResult:
        return auto(*args, **kwargs)


sys.modules[__name__].__class__ = _CallableModule
