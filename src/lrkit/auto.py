"""``lrkit.auto``: the LR finder, a schedule from its result and the divergence guard, in one call.

::

    run = lrkit.auto(model, optimizer, train_loader, loss_fn, epochs=10)
    step = 0
    while step < run.remaining_steps:                # the in-run ramp may have trained some already
        for x, y in train_loader:
            optimizer.zero_grad()
            loss = loss_fn(model(x), y)
            if run.guard.check(loss, step):          # False: a blow-up was rolled back, the LR cut
                loss.backward(); optimizer.step(); run.scheduler.step(); step += 1
            else:
                step = run.guard.resume_step         # go on from the step it rolled back to
            if step >= run.remaining_steps:
                break

What it does:

1. **The LR search**, one of two (``search="auto"``: the in-run ramp, whatever the run's length; the
   separate test when an option only it takes is given, or when the ramp finds no signal):

   * ``"separate"``: :func:`lrkit.finder.find_lr` (3 repeats of 100 rungs) with escalation within
     ``budget`` extra steps; model, optimizer and RNG are restored afterwards;
   * ``"in_run"``: :func:`lrkit.finder.in_run.ramp_in_run`: one ramp from 1e-5 on the model itself,
     stopped once the curve's bottom is behind it; the state at a saved rung at or just below 3x its
     suggestion is kept, so the ramp was the run's warmup and only the 10-25 rungs past it are extra
     compute (1.03-1.10x one run on the public benchmark, where the separate test costs 1.6-2.3x).
     A ramp without signal is undone and the separate test runs.

   ``"auto"`` used to pick the separate test on runs of 3,000+ steps, where its ~300 steps fit in 10%
   of the run. Measured on seven public tasks trained for ~3,000 steps (``bench/finder_tasks.py
   --long``; each with its own grid), the in-run ramp scored at least as well on every one (text-lstm
   0.983 against 0.959, text-transformer 0.969 / 0.953, mnist1d-cnn 1.021 / 1.002) at 1.00-1.01x
   against 1.09-1.10x, so it is now the default at every length. Four of the seven were measured
   first and chose this, in every leave-one-task-out fold; the other three were added to check it.

   :attr:`AutoResult.compute` says what the search cost, :attr:`AutoResult.search` which search ran
   (:data:`SEARCH_OUTCOMES`: a ramp too late to keep on a short run is undone); above
   :data:`COMPUTE_TARGET` (1.1x) auto warns (:class:`SearchCostWarning`) with what would fix it.
2. **The schedule**: warmup-stable-decay by default (WSD: the peak held, then a 1-sqrt cool-down to 0
   over the last 20% of the run; Hägele et al. 2024), the constant peak for a Schedule-Free
   optimizer; ``kind`` picks cosine or one-cycle instead. Its peak is ``peak_factor`` times the
   suggestion, by default :data:`PEAK_FACTOR` (WSD: 1.5 after the separate test, 2.5 after the in-run
   ramp; cosine, one-cycle: 3), each chosen by leave-one-task-out on the public benchmark
   (``bench/finder_tasks.py --peak --kind wsd``, ``--inrun-kind``). The suggestion is a good
   *constant* LR; a schedule that spends part of the run below its peak wants a higher peak. After
   the separate test, a linear warmup over ``warmup`` (5%) of the run comes first
   (:func:`separate_schedule`). After the in-run ramp (:func:`in_run_schedule`), over the
   ``remaining_steps``: a linear re-warm from a tenth of the peak over :data:`REWARM` of them (5%
   before WSD, 10% before cosine or a constant; the kept exponential ramp is a poor warmup: most of its
   steps sit far below the peak), then the tail. The optimizer's running statistics restart with the re-warm
   (:func:`restart_statistics`): Adam's second moment, a ~1,000-step memory, would otherwise keep the
   ramp's initial-size gradients and damp the whole run (text-lstm 0.960 -> 1.002 of the best constant
   LR, text-transformer 0.991 -> 1.010; held-out tinylm-transformer 0.996 -> 1.029).
   WSD against the cosine (one-cycle for SGD) auto built before, each with its own peak factor, on the
   benchmark (``bench/results/finder_report.txt``): after the separate test, 6 of 10 tasks at 0.99 or
   more of the best constant LR, left out, against 3 (text-lstm 0.972 -> 0.995, text-transformer
   0.980 -> 1.014); after the in-run ramp 5 of 10 against 4 (text-transformer 0.970 -> 0.991 joins;
   left out, 4 of 10 as before) and on lrkit's held-out built-in tasks 4 of 4 against 3
   (tinylm-transformer 0.937 -> 0.996); cancer-mlp-adam, whose trusted LR is already 10-20x its best,
   loses 0.03.
3. :func:`lrkit.torch.scheduler` on the optimizer with that schedule, and a
   :class:`lrkit.control.DivergenceGuard` attached to both. By default it acts on NaN/inf
   losses only (``guard_threshold=None``): the guard's relative test in its first form (one loss above
   4x the recent best) fired 26 times in 9 healthy runs of the benchmark's digits tasks, where the
   batch loss nears 0 and a batch at 5x the best is noise, and each rollback halved the LR (up to 1.7%
   of the final metric). The guard's jump is now ``jump_steps`` (5) losses in a row above
   ``guard_threshold`` x the recent median, which saw nothing in healthy digits runs; auto's default
   was not re-chosen with it.

When the finder finds no usable signal within the budget, :class:`lrkit.finder.NoSuggestionError` is
raised (with the reason and advice) and the model and optimizer are as they were. torch is imported
when :func:`auto` is called, not when this module is imported.
"""

from __future__ import annotations

import contextlib
import dataclasses
import inspect
import math
import sys
import types
import warnings
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextvars import ContextVar
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from lrkit._text import plural
from lrkit.control.guard import DivergenceError

from ._checks import as_real, check_int, plain_number

if TYPE_CHECKING:
    import torch

    from lrkit.adapters.torch import PastTheRunWarning, Scheduler
    from lrkit.control.guard import DivergenceGuard
    from lrkit.finder.result import FinderResult
    from lrkit.schedules.base import Schedule

__all__ = ["AutoResult", "PastTheRunWarning", "SearchCostWarning", "TaskDivergedError", "auto", "train_task"]

KINDS = ("auto", "cosine", "one_cycle", "constant", "wsd")
#: auto's compute target: the LR search's steps not kept as training plus the planned run, over the
#: planned run (the public benchmark's target; in-run: 1.03-1.10x there). Above it auto warns.
COMPUTE_TARGET = 1.1
#: what :attr:`AutoResult.search` says ran: ``"in_run"`` (the ramp's steps up to ``trained_steps`` kept as
#: training), ``"in_run_restored"`` (the ramp's curve gave the LR, but its peak came past half the run:
#: every step undone, the schedule from scratch as after the separate test), ``"in_run_then_separate"``
#: (the ramp had no signal: undone, then the separate test gave the LR), ``"separate"`` (the separate
#: test alone)
SEARCH_OUTCOMES = ("in_run", "in_run_restored", "in_run_then_separate", "separate")


#: how :class:`SearchCostWarning` spells the settings it advises: as Python arguments, or (``lrkit auto``,
#: through :func:`spelled`) as its flags
PYTHON_SPELLING: Mapping[str, str] = {"epochs": "epochs={}", "search": 'search="{}"', "budget": "budget="}
_spelling: ContextVar[Mapping[str, str]] = ContextVar("lrkit_auto_spelling", default=PYTHON_SPELLING)


@contextlib.contextmanager
def spelled(spelling: Mapping[str, str]) -> Iterator[None]:
    """Within it, :class:`SearchCostWarning` names ``epochs``, ``search`` and ``budget`` as ``spelling``
    writes them (``lrkit auto``: ``--epochs {}``, ``--search {}``, ``--budget``)."""
    token = _spelling.set(spelling)
    try:
        yield
    finally:
        _spelling.reset(token)


class SearchCostWarning(UserWarning):
    """:func:`lrkit.auto` spent more on its LR search than :data:`COMPUTE_TARGET` (1.1x) one planned
    run allows: on a run this short the search is a large part of the compute. The message names the
    cost and what would bring it down (more epochs, ``search=``, ``budget=``)."""


@dataclass(frozen=True, eq=False, repr=False)
class AutoResult:
    """What :func:`auto` set up: the ``scheduler`` (already driving the optimizer), the ``guard`` to call
    with each step's loss, the finder's ``finder`` result, the resolved ``schedule`` and ``peak_lr`` (of
    the reference param group, the first with LR > 0: ``finder.reference_group``; the other groups keep
    their LR ratios to it, and a group at LR 0 stays frozen at 0), its ``kind``, ``total_steps``, what
    the LR search did (``search``, one of :data:`SEARCH_OUTCOMES`: ``"in_run"``, the ramp kept as the
    warmup; ``"in_run_restored"``, the ramp's LR with its steps undone; ``"in_run_then_separate"``, a
    ramp without signal undone, then the separate test; ``"separate"``), the ``trained_steps`` the
    in-run ramp already kept as training (0: none), the ``search_steps`` it spent that were not kept,
    and a one-paragraph ``summary`` of what was chosen and why; ``peak_factor`` is ``peak_lr`` over the
    suggestion. Train ``remaining_steps`` more optimizer
    steps: the schedule ends there, and past it the LR stays at the schedule's last value (0 for WSD,
    whose cool-down ends at 0: a step there trains nothing), and the first optimizer step past it
    warns (:class:`PastTheRunWarning`; not ``kind="constant"``, whose LR past the run is the run's)."""

    scheduler: Scheduler
    guard: DivergenceGuard | None
    finder: FinderResult
    schedule: Schedule
    kind: str
    peak_lr: float
    total_steps: int
    summary: str
    search: str = "separate"
    trained_steps: int = 0
    search_steps: int = 0
    peak_factor: float = math.nan

    def __repr__(self) -> str:
        """One line, as :class:`~lrkit.finder.FinderResult`'s (the dataclass's repr printed the scheduler,
        the guard, the schedule and the whole summary): what was chosen and what the search cost;
        :meth:`__str__` reads the summary."""
        return (
            f"AutoResult(kind={self.kind!r}, peak_lr={self.peak_lr:.4g}, search={self.search!r}, "
            f"total_steps={self.total_steps}, trained_steps={self.trained_steps}, "
            f"search_steps={self.search_steps}, guard={'on' if self.guard is not None else 'off'})"
        )

    def __str__(self) -> str:
        """``print(result)``: the :attr:`summary`."""
        return self.summary

    @property
    def finder_steps(self) -> int:
        """Optimizer steps of the LR search that were not kept as training (its extra compute)."""
        return self.search_steps

    @property
    def remaining_steps(self) -> int:
        """Optimizer steps left to train: ``total_steps - trained_steps``."""
        return self.total_steps - self.trained_steps

    @property
    def compute(self) -> float:
        """(search steps not kept + planned training steps) / planned training steps."""
        return (self.search_steps + self.total_steps) / self.total_steps

    def lrs(self) -> np.ndarray:
        """The reference param group's LR (``finder.reference_group``, the first with LR > 0) at each of
        the run's ``total_steps`` optimizer steps: the in-run ramp's
        ``trained_steps`` kept rungs, then :attr:`schedule` over the ``remaining_steps``."""
        ramp = self.finder.curves[0].lrs[: self.trained_steps] if self.trained_steps else np.empty(0)
        tail = self.schedule(np.arange(self.remaining_steps)) if self.remaining_steps else np.empty(0)
        return np.concatenate([np.asarray(ramp, dtype=float), np.asarray(tail, dtype=float)])

    def plot(
        self,
        path: str | Path | None = None,
        *,
        losses: Sequence[float] | None = None,
        title: str | None = None,
    ) -> Any:
        """The LR search's curve with the peak marked, beside the LR at every step of the run (the kept
        ramp shaded) and, if given, the training loss. ``losses``: one per optimizer step applied after
        the search, replays after a guard rollback included (``losses.append(loss.item())`` after each
        step; the guard's events say what each replay replaces); the kept ramp's own losses are drawn
        before them. Saves
        to ``path`` if given (PNG, SVG or PDF); returns the matplotlib ``Figure``. See
        :func:`lrkit.auto_plot.plot_auto`."""
        from lrkit.auto_plot import plot_auto

        return plot_auto(self, path, losses=losses, title=title)


SEARCHES = ("auto", "in_run", "separate")
#: the finder options the in-run ramp takes (``seed`` only seeds the separate test's repeats); any other
#: (``val_data``, ``repeats``, ``batches_per_step``, ``mode``...) changes what a curve is, which only the
#: separate test implements: ``search="auto"`` then picks it
IN_RUN_OPTIONS = frozenset(
    {
        "forward", "device", "rule", "smoothing", "start_lr", "end_lr", "seed",
        "accumulation_steps", "grad_scaler", "amp_dtype", "max_skipped", "max_grad_norm",
    }
)  # fmt: skip
#: default peak factors by (search, kind), chosen on the public benchmark by leave-one-task-out:
#: WSD 1.5 after the separate test (bench/results/auto_peak_wsd.json: in 9 of 10 folds), 2.5 after the
#: in-run ramp (with its re-warm; auto_inrun_kind/keep/wsd_rewarm.json); cosine and one-cycle 3
#: (auto_peak.json, auto_inrun_rewarm.json); constant (Schedule-Free) 3 (sf_peak.json: no better
#: factor generalised).
#: The suggestion is a good *constant* LR: a schedule that spends part of the run below its peak
#: wants a higher peak, cosine (below its peak most of the run) more than WSD.
PEAK_FACTOR: dict[tuple[str, str], float] = {
    ("separate", "wsd"): 1.5,
    ("separate", "cosine"): 3.0,
    ("separate", "one_cycle"): 3.0,
    ("separate", "constant"): 3.0,
    ("in_run", "wsd"): 2.5,
    ("in_run", "cosine"): 3.0,
    ("in_run", "constant"): 3.0,
}
#: the in-run ramp keeps the state of its last saved rung at or below KEEP_FACTOR x its suggestion,
#: whatever the schedule's peak (a lower keep throws more rungs away: 1.10-1.11x on the benchmark's
#: sequence models at 2, 1.08-1.10x at 3, with the same scores: auto_inrun_keep.json)
KEEP_FACTOR = 3.0
#: after the in-run ramp, a linear re-warm from REWARM_START x the peak over this fraction of the steps
#: left (by the tail that follows), then the tail. The kept ramp is an *exponential* warmup: it spends
#: most of its steps far below the peak and then jumps from peak/10 to the peak in ~12 steps, which the
#: Adam sequence models of the benchmark pay for (a linear warmup of the same length from scratch
#: scores ~5% better there). Chosen with the peak factor by leave-one-task-out: cosine 0.1
#: (bench/results/auto_inrun_rewarm.json: c=3, w=0.1 in 9 of 10 folds; text-lstm 0.936 -> 0.952,
#: text-transformer 0.937 -> 0.965); WSD 0.05 (auto_inrun_wsd_rewarm.json, with c=2.5 and the kind);
#: constant (Schedule-Free) as cosine.
REWARM = {"cosine": 0.1, "wsd": 0.05, "constant": 0.1}
REWARM_START = 0.1
#: the guard's snapshot cadence is one epoch, within these bounds (:func:`guard_snapshot_every`)
GUARD_SNAPSHOT_EVERY = (10, 100)


def guard_snapshot_every(steps_per_epoch: int) -> int:
    """How often auto's guard snapshots: every epoch, but at least every 100 steps (and at most every
    10). A rollback loses the steps since the snapshot (twice that when a failed recovery goes one
    snapshot further back), so a cap bounds the work lost whatever the epoch: with one snapshot an
    epoch, a 3,000-step epoch rolled a NaN at step 2,500 back to step 0, and one bad batch in 700 ended
    in ``DivergenceError``. A snapshot copies the model and optimizer state once (Adam: 3x the
    parameter bytes) and reads the parameters once, less than one training step: 7 ms against a
    200 ms step on a 6 MiB transformer on one CPU thread, 0.04% of the run at every 100 steps."""
    low, high = GUARD_SNAPSHOT_EVERY
    return min(high, max(low, steps_per_epoch))


def _warn_past_the_run(scheduler: Any, steps: int, trained: int, total: int) -> None:
    """Have ``scheduler`` warn (:class:`PastTheRunWarning`, once) at the first optimizer step past its
    ``steps``, the run's end, naming ``remaining_steps``: the scheduler's own check of its run's end,
    which otherwise lets one step pass and names ``total_steps``."""
    kept = (
        f", after the {trained} steps the in-run ramp kept as training, of the {total} planned"
        if trained
        else ""
    )
    scheduler._watch_past(
        0,
        f"its schedule covers the {steps} steps left (remaining_steps{kept})",
        "Train run.remaining_steps optimizer steps after lrkit.auto (a loop of epochs x steps_per_epoch "
        "steps trains the ramp's again); warned once",
    )


def _caller_level() -> int:
    """The ``stacklevel`` of a warning from :func:`auto` that points at its caller's line, whether it
    was called as ``lrkit.auto.auto(...)`` or as the module ``lrkit.auto(...)`` (one frame more)."""
    level = 1
    frame: types.FrameType | None = sys._getframe(1)
    while frame is not None and frame.f_code.co_filename == __file__:
        level += 1
        frame = frame.f_back
    return level


def _restartable(optimizer: Any) -> bool:
    """An instance of one of torch.optim's optimizers (a subclass of one too: ``class
    MyAdamW(torch.optim.AdamW)`` that logs), which build their state lazily at the first step: not
    LBFGS (its state is its line search's), not an optimizer from elsewhere (its state may be built
    once, in ``__init__``), not Schedule-Free nor one that estimates its own step size."""
    import torch

    from lrkit.finder.torch_driver import _adapts_own_step, _schedule_free

    known = tuple(
        c
        for c in vars(torch.optim).values()
        if isinstance(c, type)
        and issubclass(c, torch.optim.Optimizer)
        and c not in (torch.optim.Optimizer, torch.optim.LBFGS)
    )
    if not isinstance(optimizer, known) or isinstance(optimizer, torch.optim.LBFGS):
        return False
    return not (_schedule_free(optimizer) or _adapts_own_step(optimizer))


def _kept_note(optimizer: Any, schedule_free: bool) -> str:
    """What the summary says of an optimizer state that :func:`restart_statistics` kept ("" when there
    is none): a wrapper's (Lookahead's) inner optimizer's state counts."""
    from lrkit.finder.torch_driver import _optimizer_chain

    if not any(any(o.state.values()) for o in _optimizer_chain(optimizer)):
        return ""
    if schedule_free:
        return " (the Schedule-Free optimizer's state, its averaged weights, is kept)"
    import torch

    name = type(optimizer).__name__
    why = (
        "LBFGS's are not restarted"
        if isinstance(optimizer, torch.optim.LBFGS)
        else f"{name} wraps another optimizer, whose restart would also wipe {name}'s own state"
        if len(_optimizer_chain(optimizer)) > 1
        else f"{name} is not one of them"
    )
    return (
        " (the optimizer's running statistics, from the ramp's LRs far below the peak, are kept: lrkit "
        f"restarts those of torch.optim's optimizers and their subclasses only, and {why})"
    )


def restart_statistics(optimizer: Any) -> bool:
    """Clear the running statistics of a torch.optim optimizer, or of a subclass of one (Adam's moments,
    RMSprop's and Adagrad's squared-gradient sums, momentum buffers), as a fresh optimizer has them;
    True if cleared.

    Done after a kept in-run ramp, before its re-warm. Most of the ramp's steps sit decades below the
    peak, where the weights barely move and the gradients stay as large as at initialisation; Adam's
    second moment (beta2 = 0.999, a memory of ~1,000 steps, longer than many runs) keeps them, so
    every later step is damped. Measured on the public benchmark (bench/results/auto_inrun_reset.json,
    in-run WSD at the shipped c=2.5): text-lstm-adam 0.960 -> 1.002, text-transformer-adamw 0.991 ->
    1.010 of the best constant LR; the other tasks within 0.008 (cancer-mlp-adam, already 4x off,
    0.428 -> 0.355). Left alone: Schedule-Free optimizers (their state holds the weight sequences),
    Prodigy / D-Adaptation (their state is the step size they estimate), LBFGS and optimizers that
    derive from none of torch.optim's, whose state may not be rebuilt lazily (:func:`auto`'s summary
    says the statistics were kept).
    """
    if not _restartable(optimizer):
        return False
    optimizer.state.clear()
    return True


def _tail(kind: str, peak: float) -> Schedule:
    """The schedule after the warmup: ``"constant"``: the peak; ``"wsd"``: the peak, then a 1-sqrt
    cool-down to 0 over the last 20% (Hägele et al. 2024); otherwise cosine from the peak to 1% of it."""
    from lrkit.schedules import WSD, Constant, Cosine

    if kind == "constant":
        return Constant(peak)
    if kind == "wsd":
        return WSD(lr=peak, decay="20%", cooldown="1-sqrt")
    return Cosine(lr=peak, min_lr=peak * 0.01)


def in_run_schedule(peak: float, rewarm: float | None = None, kind: str = "cosine") -> Schedule:
    """What follows a kept in-run ramp: ``Warmup(rewarm, start=REWARM_START) >> tail``, to be resolved
    over the steps left (``rewarm`` is a fraction of them, default ``REWARM[kind]``; 0: the tail
    alone); the tail is cosine from ``peak`` to 1% of it, or for ``kind`` ``"constant"``
    (Schedule-Free optimizers) the constant peak, for ``"wsd"`` the peak with a 1-sqrt cool-down over
    the last 20%."""
    from lrkit.schedules import Warmup
    from lrkit.schedules.duration import fraction

    after = _tail(kind, peak)
    rewarm = REWARM[kind] if rewarm is None else rewarm
    return Warmup(fraction(float(rewarm)), start=REWARM_START) >> after if rewarm > 0 else after


def separate_schedule(kind: str, peak: float, warmup: float = 0.05) -> Schedule:
    """What follows the separate test, over the whole run: ``"one_cycle"``: ``OneCycle(max_lr=peak)``;
    else a linear warmup over the fraction ``warmup`` of the run, then ``"cosine"`` to 1% of the
    peak, ``"constant"``: the peak to the end, or ``"wsd"``: the peak with a 1-sqrt cool-down over
    the last 20%."""
    from lrkit.schedules import OneCycle, Warmup
    from lrkit.schedules.duration import fraction

    if kind == "one_cycle":
        return OneCycle(max_lr=peak)
    after = _tail(kind, peak)
    return Warmup(fraction(float(warmup))) >> after if warmup > 0 else after


def _cut(factor: float) -> str:
    """How the guard cuts the LR, in words: ``halve the LR``, ``multiply the LR by 0.3``."""
    return "halve the LR" if factor == 0.5 else f"multiply the LR by {factor:g}"


def _keyword_names(fn: Callable[..., Any]) -> set[str]:
    """The names of ``fn``'s keyword-only parameters."""
    return {p.name for p in inspect.signature(fn).parameters.values() if p.kind is p.KEYWORD_ONLY}


def _finder_option_names(find_lr: Callable[..., Any]) -> set[str]:
    """The keyword options of ``find_lr`` that auto passes on (auto sets the budget's own)."""
    return _keyword_names(find_lr) - {"planned_steps", "budget"}


def _count(value: object, name: str) -> int:
    """``epochs`` or ``steps_per_epoch`` as a Python int >= 1: numpy's integers and 0-d integer tensors
    too, as :func:`lrkit.torch.scheduler` takes them (``np.int64(10)``, ``len(ds) // batch`` on tensors)."""
    return check_int(value, name, 1)


def _guard_options(guard: object) -> dict[str, Any]:
    """``auto``'s ``guard``: True/False, or a mapping of :class:`DivergenceGuard`'s keyword options."""
    if isinstance(guard, bool):
        return {}
    if not isinstance(guard, Mapping):
        raise TypeError(
            f"guard must be True, False or a mapping of DivergenceGuard's options, got {type(guard).__name__}"
        )
    from lrkit.control.guard import DivergenceGuard

    names = _keyword_names(DivergenceGuard.__init__) - {"threshold"}
    if "threshold" in guard:
        raise ValueError("guard: give the guard's threshold as guard_threshold=, not in the guard mapping")
    unknown = sorted(str(k) for k in guard if k not in names)
    if unknown:
        raise TypeError(
            f"guard: unknown option(s) {', '.join(unknown)}; expected some of {', '.join(sorted(names))}"
        )
    return dict(guard)


def auto(
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    train_loader: Iterable[Any],
    loss_fn: Callable[..., Any] | None = None,
    *,
    epochs: int,
    steps_per_epoch: int | None = None,
    kind: str = "auto",
    search: str = "auto",
    budget: float | int = 0.1,
    warmup: float = 0.05,
    peak_factor: float | None = None,
    guard: bool | Mapping[str, Any] = True,
    guard_threshold: float | None = None,
    verbose: bool = True,
    **finder_options: Any,
) -> AutoResult:
    """Find the LR, build a schedule from it, attach the scheduler and the guard.

    Args:
        model, optimizer, train_loader, loss_fn: as for :func:`lrkit.finder.find_lr`.
        epochs: the planned training length; with ``steps_per_epoch``, the *optimizer* steps of one
            epoch, it gives ``total_steps = epochs * steps_per_epoch`` (the scheduler steps once per
            optimizer step). Default ``len(train_loader)``, or with ``accumulation_steps=k``
            ``ceil(len(train_loader) / k)``; pass it when your loop steps otherwise, or when the loader
            has no ``len()``.
        search: ``"separate"``: :func:`lrkit.finder.find_lr` (3 repeats of 100 rungs, restored
            afterwards, escalating within ``budget``), then ``kind`` over all the steps. ``"in_run"``:
            one LR ramp on the model whose steps up to 3x its suggestion are kept as the run's warmup
            (:func:`lrkit.finder.in_run.ramp_in_run`); then, over the ``remaining_steps``, a short
            linear re-warm from a tenth of the peak and ``kind``'s tail; the extra compute is only
            the rungs past the kept one (10 to 25). When that ramp shows no usable signal, everything
            is restored and the separate test runs. ``"auto"`` (default): in-run, or separate when
            ``finder_options`` hold one the ramp does not take.
        kind: ``"auto"`` (constant for a Schedule-Free optimizer, else WSD), ``"wsd"`` (linear
            warmup over ``warmup`` of the run, the peak held, then a 1-sqrt cool-down to 0 over the
            last 20%), ``"cosine"`` (the warmup, then cosine from the peak to 1% of it),
            ``"one_cycle"`` (``OneCycle(max_lr=peak)``) or ``"constant"`` (the warmup, then the peak
            to the end: Schedule-Free's averaging takes the place of the decay, Defazio et al. 2024).
            After the in-run search the re-warm is followed by the same tail (cosine for one-cycle).
        peak_factor: the schedule's peak (one-cycle's ``max_lr``) is this times the suggestion;
            default :data:`PEAK_FACTOR` of the search and kind (WSD 1.5 after the separate test, 2.5
            after the in-run ramp, the others 3). The in-run ramp keeps its state at the last saved
            rung at or below :data:`KEEP_FACTOR` (3) x its suggestion, whatever the peak.
        budget: the finder's escalation budget, the extra steps a retry may add to its first test: a
            fraction of ``total_steps`` (float) or optimizer steps (int).
        guard: attach a :class:`~lrkit.control.DivergenceGuard` (``factor=0.5``, a snapshot every
            epoch but at least every 100 steps and at most every 10, :func:`guard_snapshot_every`; the
            ``grad_scaler`` given for the search as its ``scaler``); a mapping of the guard's keyword
            options attaches one with those (e.g.
            ``{"snapshot_device": "cpu"}`` to keep its snapshots in host memory, ``{"keep": 1}``).
        guard_threshold: the guard's ``threshold`` (a loss above this times the recent median for
            5 steps in a row is a blow-up); None (default): NaN/inf only.
        verbose: print the summary (under ``torch.distributed``, on rank 0 only).
        finder_options: passed to :func:`lrkit.finder.find_lr` (``repeats``, ``seed``, ``val_data``,
            ``max_grad_norm`` when your loop clips gradients: the search then clips alike...).
            The in-run ramp takes only :data:`IN_RUN_OPTIONS`; with any other, ``search="auto"`` picks
            the separate test and ``search="in_run"`` raises ``ValueError``.

    A Schedule-Free optimizer (``schedulefree``) steps in train mode during the search, and its own
    ``warmup_steps`` is set to 0 (lrkit's schedule warms up, unless ``warmup=0``; the summary says
    which). Prodigy and D-Adaptation, which estimate their own step size, are refused (``ValueError``):
    there is no LR to search.

    Raises :class:`lrkit.finder.NoSuggestionError` when no usable signal was found; the model and
    optimizer are then as they were (and on any other error too).
    """
    from lrkit.adapters.torch import Scheduler
    from lrkit.adapters.torch import scheduler as make_scheduler
    from lrkit.control.guard import DivergenceGuard
    from lrkit.finder import core, find_lr
    from lrkit.finder._data import known_length
    from lrkit.finder.in_run import ramp_in_run
    from lrkit.finder.torch_driver import (
        _adapts_own_step,
        _budget,
        _check_callables,
        _check_loader,
        _check_model_and_optimizer,
        _rank,
        _schedule_free,
        epoch_steps,
    )

    _check_model_and_optimizer(model, optimizer)
    _check_callables(loss_fn, finder_options.get("forward"), finder_options.get("amp_dtype"))
    _check_loader(train_loader, "train_loader")
    unknown = sorted(set(finder_options) - _finder_option_names(find_lr))
    if unknown:
        raise TypeError(
            f"lrkit.auto() got unexpected keyword argument(s) {', '.join(map(repr, unknown))}; besides its "
            f"own, it takes the finder's options: {', '.join(sorted(_finder_option_names(find_lr)))}"
        )
    guard_options = _guard_options(guard)
    threshold = None if guard_threshold is None else as_real(guard_threshold)
    if guard_threshold is not None and (threshold is None or not 1.0 < threshold < float("inf")):
        raise ValueError(
            "guard_threshold must be None (act on NaN/inf losses only) or a finite number > 1 (also roll "
            f"back a loss above that many times the recent median), got {guard_threshold!r}"
        )
    guard_threshold = threshold  # numpy's numbers as Python's, as the guard and the summary keep them
    epochs = _count(epochs, "epochs")
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {KINDS}, got {kind!r}")
    if _adapts_own_step(optimizer):
        raise ValueError(
            f"optimizer {type(optimizer).__name__} estimates its own step size (its param groups hold "
            "'d'; lr only multiplies it): there is no learning rate for lrkit.auto to search. Keep its "
            "lr at 1.0 (with a schedule of your choice as the multiplier), or give lrkit.auto an "
            "optimizer whose lr is the step size (SGD, Adam, AdamW, ...)"
        )
    schedule_free = _schedule_free(optimizer)
    if kind == "auto":
        kind = "constant" if schedule_free else "wsd"
    if search not in SEARCHES:
        raise ValueError(f"search must be one of {SEARCHES}, got {search!r}")
    peak_value = None if peak_factor is None else as_real(peak_factor)
    if peak_factor is not None and (peak_value is None or not 0.0 < peak_value < float("inf")):
        raise ValueError(f"peak_factor must be a finite number > 0, got {peak_factor!r}")
    peak_factor = peak_value
    warmup_value = as_real(warmup)
    if warmup_value is None or not 0.0 <= warmup_value < 1.0:
        raise ValueError(f"warmup must be a fraction of the run in [0, 1), got {warmup!r}")
    warmup = warmup_value
    if steps_per_epoch is None:
        batches = known_length(train_loader)
        if batches is None:
            raise TypeError(
                f"train_loader ({type(train_loader).__name__}) has no len(); pass steps_per_epoch, "
                "the optimizer steps of one epoch"
            )
        if batches == 0:
            raise ValueError("train_loader is empty (len 0); expected at least one batch")
        # the schedule counts optimizer steps: with accumulation, one per accumulation_steps batches
        acc = core._check_int("accumulation_steps", finder_options.get("accumulation_steps", 1), 1)
        steps_per_epoch = epoch_steps(batches, acc)
    steps_per_epoch = _count(steps_per_epoch, "steps_per_epoch")
    total = epochs * steps_per_epoch
    try:  # a run too short for the schedule is refused before the search spends anything on it
        separate_schedule(kind, 1.0, warmup).resolve(total_steps=total, steps_per_epoch=steps_per_epoch)
    except ValueError as exc:
        raise ValueError(
            f"the run ({plural(epochs, 'epoch')} x {plural(steps_per_epoch, 'optimizer step')} = {total}) "
            f"is too short for kind {kind!r}: {exc}"
        ) from None
    if budget is None:  # find_lr's None (its default budget) is not one of auto's budgets
        raise TypeError(f"budget must be an int (optimizer steps) or a float in (0, 1], got {budget!r}")
    budget = plain_number(budget)  # numpy's int: steps; its float: a fraction
    _budget(budget, total, steps_per_epoch)  # checked here, whichever search runs
    only_separate = sorted(k for k in finder_options if k not in IN_RUN_OPTIONS)
    if search == "in_run" and only_separate:
        raise ValueError(
            f"search='in_run' does not take {', '.join(only_separate)} (the in-run ramp takes "
            f"{', '.join(sorted(IN_RUN_OPTIONS))}); use search='separate' or 'auto', which runs "
            "the separate test with them"
        )
    if search == "auto":  # in-run whatever the run's length (the module docstring says why)
        search = "separate" if only_separate else "in_run"
    saved = [dict(g) for g in optimizer.param_groups]
    trained, spent, note = 0, 0, ""
    ramp = None
    max_kept = max(1, total // 2)  # a 1-step run keeps nothing (the ring saves every 4th rung)
    if search == "in_run":
        ramp = ramp_in_run(
            model, optimizer, train_loader, loss_fn, peak_factor=KEEP_FACTOR, max_kept=max_kept,
            **{k: v for k, v in finder_options.items() if k != "seed"},
        )  # fmt: skip
    if ramp is not None and ramp.peak is not None:
        found = ramp.result
        trained, spent = ramp.kept, ramp.spent - ramp.kept
        outcome = "in_run" if trained else "in_run_restored"
        if not trained:
            upto = int(np.searchsorted(found.curves[0].lrs, ramp.peak, side="right"))  # rungs to keep
            where = (
                f"its rung at {KEEP_FACTOR:g}x its suggestion came at step {upto}, past half the "
                f"{total}-step run"
                if upto > max_kept
                else f"no saved rung at or below {KEEP_FACTOR:g}x its suggestion"
            )
            note = (
                f"the in-run ramp could not be kept as the warmup ({where}): its {ramp.spent} steps were "
                "undone and the schedule starts from scratch, as after the separate test; "
            )
    else:
        outcome = "separate"
        if ramp is not None:
            note = f"the in-run ramp ({ramp.spent} steps, restored) had no signal: {ramp.result.reason}; "
            spent = ramp.spent
            outcome = "in_run_then_separate"
        finder_options.setdefault("repeats", 3)
        found = find_lr(
            model, optimizer, train_loader, loss_fn, planned_steps=total, budget=budget, **finder_options
        )
        spent += found.steps
    # NoSuggestionError (no usable signal): nothing changed yet. One-cycle warms up from ~0 itself, so
    # after a kept ramp (an exponential warmup) cosine takes its place.
    chosen = kind if not trained or kind in ("constant", "wsd") else "cosine"
    factor = peak_factor or PEAK_FACTOR["in_run" if trained else "separate", chosen]
    peak = factor * found.require()
    try:
        after = {
            "constant": "the constant peak",
            "wsd": "the peak held, with a 1-sqrt cool-down to 0 over the last 20%",
        }.get(chosen, "cosine to 1% of it")
        if trained:
            sched: Schedule = in_run_schedule(peak, kind=chosen)
            restarted = restart_statistics(optimizer)
            why = (
                (
                    f"the in-run ramp's first {trained} steps were an exponential warmup; over "
                    f"the {total - trained} steps left, {REWARM[chosen]:.0%} linear re-warm from "
                    f"{REWARM_START:g}x the peak, then {after}"
                )
                + (
                    " (the optimizer's running statistics restart with the re-warm: the ramp's, from LRs "
                    "far below the peak, would damp the run)"
                    if restarted
                    else _kept_note(optimizer, schedule_free)
                )
                + (
                    " (one-cycle warms up from ~0 itself, so cosine follows the kept ramp)"
                    if kind != chosen
                    else ""
                )
            )
            length = total - trained
        else:
            length = total
            sched = separate_schedule(chosen, peak, warmup)
        resolved = sched.resolve(total_steps=length, steps_per_epoch=steps_per_epoch)
        # whether the run's LR starts below the peak: not after warmup=0 (nor a warmup under one step)
        warms_up = bool(float(np.asarray(resolved(np.arange(1)), dtype=float)[0]) < peak * (1 - 1e-9))
        if not trained:
            if chosen == "one_cycle":
                why = "one-cycle (warm up to the peak, anneal to ~0)"
            elif warms_up:
                why = f"{warmup:.0%} linear warmup to the peak, then {after}"
            else:
                why = f"no warmup (warmup={warmup:g}): the peak from the first step" + (
                    "" if chosen == "constant" else f", then {after}"
                )
        if schedule_free:
            own = sorted({g.get("warmup_steps", 0) for g in saved} - {0})  # the user's, before the search
            for g in optimizer.param_groups:
                if "warmup_steps" in g:
                    g["warmup_steps"] = 0
            mine = "this schedule warms up" if warms_up else "and this schedule has no warmup either"
            # a constant peak is Schedule-Free's own use, its averaging standing in for a decay; a
            # decaying kind (asked for) decays anyway
            sf = "Schedule-Free" + (": the averaging stands in for a decay" if chosen == "constant" else "")
            why += f" ({sf}" + (f"; its own warmup_steps={own[0]} set to 0, {mine})" if own else ")")
        ratios = found.group_ratios
        # param groups with their own LRs (discriminative fine-tuning) keep their ratios to the reference
        # group (the first with LR > 0); a group at LR 0 gets the schedule x 0 and stays frozen
        per_group = resolved if len(set(ratios)) <= 1 else [resolved * r for r in ratios]
        scheduler = make_scheduler(optimizer, per_group, total_steps=length)
        assert isinstance(scheduler, Scheduler)  # not in_graph: the eager scheduler
        _warn_past_the_run(scheduler, length, trained, total)
        watch = (
            DivergenceGuard(
                model,
                optimizer,
                scheduler,
                threshold=guard_threshold,
                **{
                    "snapshot_every": guard_snapshot_every(steps_per_epoch),
                    "scaler": finder_options.get("grad_scaler"),
                    **guard_options,
                },
            )
            if guard is not False
            else None
        )
    except BaseException:
        if trained and ramp is not None:  # the kept ramp trained the model: undo it too
            ramp.undo()
        for group, old in zip(optimizer.param_groups, saved, strict=True):
            group.clear()
            group.update(old)
        raise
    escalated = f"; escalated: {'; '.join(found.escalation)}" if found.escalation else ""
    lo, hi = found.interval
    if trained:
        how = f"one in-run ramp, {trained} of its {trained + spent} steps kept as training"
    elif ramp is not None and found is ramp.result:  # the ramp's own curve; its steps were undone
        how = f"one in-run ramp of {spent} steps, none kept"
    else:
        spread = (  # repeats over the same batches in the same order: one curve, no spread to show
            "all alike (the loader does not shuffle)"
            if found.repeats_alike
            else f"interval {lo:.3g} .. {hi:.3g}"
        )
        how = f"{plural(found.repeats, 'repeat')}, {spread}; finder {found.steps} optimizer steps"
    groups = f"; {found.groups_note}" if found.groups_note else ""
    whose = "the in-run ramp's" if ramp is not None and found is ramp.result else "the finder's"
    summary = (
        f"lrkit.auto: {note}peak LR {peak:.3g} = {factor:g} x {whose} {found.require():.3g} "
        f"(rule {found.rule!r}, {how}; {spent} extra steps = "
        f"{spent / total:.1%} of the {total} planned{escalated}){groups}; schedule: {why}"
        f" ({plural(epochs, 'epoch')} x {plural(steps_per_epoch, 'step')} planned); "
        + (
            f"divergence guard on (roll back and {_cut(watch.factor)} on a "
            + (
                "NaN/inf loss)"
                if watch.threshold is None
                else f"loss above {watch.threshold:g}x the recent median, "
                f"{plural(watch.jump_steps, 'step')} in a row)"
            )
            if watch is not None
            else "no guard"
        )
    )
    if verbose and _rank() == 0:  # under torch.distributed, one summary (rank 0's), not one per process
        print(summary)
    if (spent + total) / total > COMPUTE_TARGET:
        warnings.warn(
            _cost_warning(outcome, spent, total, steps_per_epoch, ramp, found, budget, only_separate),
            SearchCostWarning,
            stacklevel=_caller_level(),
        )
    return AutoResult(
        scheduler=scheduler,
        guard=watch,
        finder=found,
        schedule=resolved,
        kind=chosen,
        peak_lr=peak,
        total_steps=total,
        summary=summary,
        search=outcome,
        trained_steps=trained,
        search_steps=spent,
        peak_factor=factor,
    )


def _cost_warning(
    outcome: str,
    spent: int,
    total: int,
    steps_per_epoch: int,
    ramp: Any,
    found: FinderResult,
    budget: float | int,
    only_separate: Sequence[str],
) -> str:
    """:class:`SearchCostWarning`'s message: what the search cost against :data:`COMPUTE_TARGET`, why,
    and what would bring it within (more epochs, another ``search``, a smaller ``budget``)."""
    from lrkit.finder.in_run import SNAPSHOT_EVERY

    say = _spelling.get()

    def epochs_within(extra: int, kept: int = 0) -> int:
        """The fewest epochs of a run that keeps ``kept`` ramp steps (half the run at most) and that
        ``extra`` search steps fit within the target."""
        steps = max(2 * kept, math.ceil(extra / (COMPUTE_TARGET - 1.0) - 1e-9))
        return -(-steps // steps_per_epoch)

    head = (
        f"lrkit.auto: the LR search took {spent} optimizer steps not kept as training, {spent / total:.0%} "
        f"of the {total} planned: {(spent + total) / total:.2f}x the compute of one run, above auto's "
        f"{COMPUTE_TARGET:g}x target"
    )
    if outcome.startswith("in_run") and found is ramp.result:
        if outcome == "in_run":
            why = f" (the in-run ramp's {spent} rungs past the one kept as the warmup)"
            more = epochs_within(spent, ramp.kept)
        else:  # the rungs up to KEEP_FACTOR x its suggestion are kept once they fit in half the run
            upto = int(np.searchsorted(found.curves[0].lrs, ramp.peak, side="right"))
            kept = upto // SNAPSHOT_EVERY * SNAPSHOT_EVERY
            why = f" (the in-run ramp's {ramp.spent} steps, undone: the run is too short to keep them)"
            more = epochs_within(ramp.spent - kept, kept)
        fixes = [
            f"plan at least {plural(more, 'epoch')} ({say['epochs'].format(more)}; the ramp's first steps "
            "are then kept as the warmup)"
        ]
    else:
        retries = found.steps - (found.steps if found.first_steps is None else found.first_steps)
        why = (
            f" (an in-run ramp of {ramp.spent} steps without signal, then the separate test's {found.steps})"
            if outcome == "in_run_then_separate"
            else f" (the separate test's {found.steps} steps)"
        )
        more = epochs_within(spent)
        fixes = [f"plan at least {plural(more, 'epoch')} ({say['epochs'].format(more)})"]
        if outcome == "in_run_then_separate":
            fixes.append(f"{say['search'].format('separate')} (skips the ramp)")
        elif not only_separate:
            fixes.append(f"{say['search'].format('in_run')} (its first steps are kept as the warmup)")
        if retries > 0:
            fixes.append(f"a smaller {say['budget']} (now {budget!r}; its retries took {retries} steps)")
    fixes.append("or give the LR yourself (a recipe, or one range test on a longer run)")
    return f"{head}{why}; {', '.join(fixes)}"


def _event_json(event: Any) -> dict[str, Any]:
    """A :class:`~lrkit.control.DivergenceEvent` as a dict for strict JSON: a NaN/inf loss (or
    reference) as None (``null``), as ``lrkit find --json`` writes a number that is not finite."""

    def plain(v: Any) -> Any:
        return None if isinstance(v, float) and not math.isfinite(v) else v

    return {k: plain(v) for k, v in dataclasses.asdict(event).items()}


class TaskDivergedError(DivergenceError):
    """:func:`train_task`'s guard gave up (the :class:`~lrkit.control.DivergenceError` it is raised
    from, whose ``event``, ``events``, ``finding`` and ``remedies`` it has): ``outcome`` is what
    :func:`train_task` returns, as far as the run got (``"metric"`` None: not evaluated)."""

    def __init__(self, error: DivergenceError, outcome: dict[str, Any]) -> None:
        super().__init__(
            str(error), error.event, error.events, finding=error.finding, remedies=error.remedies
        )
        self.outcome = outcome


def train_task(
    parts: Any,
    *,
    seed: int = 0,
    budget: float | int = 0.1,
    search: str = "in_run",
    kind: str = "auto",
    verbose: bool = False,
    epochs: int | None = None,
    optimizer: str | None = None,
    plot: str | Path | None = None,
    peak_factor: float | None = None,
) -> dict[str, Any]:
    """Run :func:`auto` on an :class:`lrkit.tasks.TaskParts` and train it with the scheduler and guard
    for ``epochs`` (default: the task's; the in-run ramp's kept steps count towards them), with
    ``optimizer`` (a name in :data:`lrkit.tasks.OPTIMIZERS`; default: the task's). With ``plot`` (a
    PNG/SVG/PDF path), :meth:`AutoResult.plot` draws the run there, with its training loss per step.
    ``peak_factor``: :func:`auto`'s (default: :data:`PEAK_FACTOR`).

    Returns ``{"metric", "peak_lr", "peak_factor", "kind", "search", "optimizer", "epochs", "seed",
    "schedule", "finder_steps", "train_steps", "compute", "events", "guard_events", "diverged",
    "summary"}`` (``metric``: the task's validation metric at the end; ``schedule``: the resolved schedule
    the run trained with after the search, as a spec; ``train_steps``: the optimizer steps trained, the
    ramp's kept ones and the replays after a guard rollback included; ``events``: the guard's
    rollbacks, ``guard_events`` each as a dict of :class:`lrkit.control.DivergenceEvent`; ``diverged``:
    None). When the guard gives
    up, raises :class:`TaskDivergedError`, whose ``outcome`` is this dict as far as the run got
    (``metric`` None, ``diverged`` what happened).
    """
    from lrkit._forward import run_batch  # the batches tasks take (lrkit.tasks.train_loop's rules)
    from lrkit.finder.torch_driver import clip_gradients
    from lrkit.tasks import eval_mode, train_mode

    n_epochs = parts.epochs if epochs is None else epochs
    opt = parts.make_optimizer(1e-3, optimizer)  # an unknown name: ValueError listing the known ones
    run = auto(
        parts.model, opt, parts.train_loader, parts.loss_fn,
        epochs=n_epochs, steps_per_epoch=parts.epoch_steps, budget=budget, search=search, kind=kind,
        seed=seed, verbose=verbose, max_grad_norm=parts.max_grad_norm, peak_factor=peak_factor,
    )  # fmt: skip
    model, loss_fn = parts.model, parts.loss_fn
    step = updates = 0  # the schedule's step, and optimizer steps taken (replays after a rollback too)
    losses: list[float] = []  # the loss of each step applied, replays too (AutoResult.plot sorts them)

    def outcome(metric: float | None, diverged: str | None) -> dict[str, Any]:
        trained = updates + run.trained_steps
        events = run.guard.events if run.guard else []
        return {
            "metric": metric,
            "peak_lr": run.peak_lr,
            "peak_factor": run.peak_factor,
            "kind": run.kind,
            "search": run.search,
            "optimizer": optimizer or parts.optimizer,
            "epochs": n_epochs,
            "seed": seed,
            "schedule": str(run.schedule),
            "finder_steps": run.finder_steps,
            "train_steps": trained,
            "compute": (run.finder_steps + trained) / run.total_steps,
            "events": len(events),
            "guard_events": [_event_json(e) for e in events],
            "diverged": diverged,
            "summary": run.summary,
        }

    train_mode(opt)
    model.train()
    try:
        while step < run.remaining_steps:
            for batch in parts.epoch_batches():
                if step >= run.remaining_steps:
                    break
                opt.zero_grad(set_to_none=True)
                loss = run_batch(model, batch, loss_fn, task=True)[2]
                if not run.guard or run.guard.check(loss, step):
                    loss.backward()
                    if parts.max_grad_norm is not None:
                        clip_gradients(opt, parts.max_grad_norm)
                    opt.step()
                    run.scheduler.step()
                    if plot is not None:
                        losses.append(float(loss.detach()))
                    step += 1
                    updates += 1
                else:  # rolled back: the model, optimizer and scheduler are at resume_step again
                    step = run.guard.resume_step or 0
    except DivergenceError as exc:  # the guard gave up: say how far the run got
        raise TaskDivergedError(exc, outcome(None, exc.finding)) from exc
    eval_mode(opt)
    metric = parts.evaluate()
    if plot is not None:
        run.plot(plot, losses=losses)
    return outcome(metric, None)


def __getattr__(name: str) -> Any:
    """``PastTheRunWarning``: the torch scheduler's own (:class:`lrkit.torch.PastTheRunWarning`), which
    auto's scheduler raises at the first step past ``remaining_steps``; imported with torch, on use."""
    if name == "PastTheRunWarning":
        from lrkit.adapters.torch import PastTheRunWarning

        return PastTheRunWarning
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


class _CallableModule(types.ModuleType):
    """``lrkit.auto`` is both this module and the function: once the module is imported, Python binds
    the package attribute ``lrkit.auto`` to it, so calling the module calls :func:`auto`.

    ``__call__`` spells out :func:`auto`'s signature (tests/test_s32_typing.py checks that they agree), so
    that ``inspect.signature(lrkit.auto)`` (Jupyter's ``?``, IDE hovers) shows its parameters, and
    type checkers, to which ``lrkit.auto`` is this class (``lrkit/__init__.py``), check a call of it
    and type its result (``lrkit.auto.SearchCostWarning`` and the module's other names are Any to them,
    as on any module object; ``from lrkit.auto import ...`` types them).
    """

    def __call__(
        self,
        model: torch.nn.Module,
        optimizer: torch.optim.Optimizer,
        train_loader: Iterable[Any],
        loss_fn: Callable[..., Any] | None = None,
        *,
        epochs: int,
        steps_per_epoch: int | None = None,
        kind: str = "auto",
        search: str = "auto",
        budget: float | int = 0.1,
        warmup: float = 0.05,
        peak_factor: float | None = None,
        guard: bool | Mapping[str, Any] = True,
        guard_threshold: float | None = None,
        verbose: bool = True,
        **finder_options: Any,
    ) -> AutoResult:
        """:func:`auto`: find the LR, build a schedule from it, attach the scheduler and the guard."""
        return auto(
            model,
            optimizer,
            train_loader,
            loss_fn,
            epochs=epochs,
            steps_per_epoch=steps_per_epoch,
            kind=kind,
            search=search,
            budget=budget,
            warmup=warmup,
            peak_factor=peak_factor,
            guard=guard,
            guard_threshold=guard_threshold,
            verbose=verbose,
            **finder_options,
        )


sys.modules[__name__].__class__ = _CallableModule
