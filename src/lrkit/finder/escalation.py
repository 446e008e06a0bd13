"""Escalation: a range test without usable signal retries by itself within a compute budget.

One mechanism for every driver (PyTorch, Keras, optax): a driver hands :func:`escalate` its
``attempt(plan) -> FinderResult``, which runs one range test as the :class:`Plan` says (ramp, rungs,
optimizer steps per rung, repeats, and whether the loss is measured on :data:`FIXED_BATCHES` fixed
batches), each ramp starting from the user's model. The first test runs as asked; while the result is
not trusted and the budget allows, :func:`next_plan` picks the retry for its problems and
:meth:`Plan.fit` sizes it to the budget left.

The budget counts optimizer steps: a plan costs ``ceil(rungs_run x (batches + FIXED_BATCHES / 3 if
fixed))`` (a forward pass on a fixed batch counts as 1/3 of a step). Only numpy is imported here.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from typing import Any

import numpy as np

from lrkit._checks import as_integer, as_real
from lrkit._text import plural
from lrkit.finder import core
from lrkit.finder.result import LOWER_START, FinderResult

__all__ = [
    "FIXED_BATCHES",
    "MAX_RETRIES",
    "MAX_START_CUTS",
    "MIN_RUNGS",
    "Plan",
    "budget_steps",
    "epoch_steps",
    "escalate",
    "next_plan",
]

#: fewest rungs an escalation attempt may have; fixed batches of the escalated loss
MIN_RUNGS = 16
FIXED_BATCHES = 2
#: most retries after the first test; how many times start_lr may be divided by 100
MAX_RETRIES = 4
MAX_START_CUTS = 2


def epoch_steps(batches: int, accumulation_steps: int) -> int:
    """Optimizer steps in an epoch of ``batches`` micro-batches: ``ceil(batches / accumulation_steps)``
    (``accumulation_steps`` micro-batches make one step)."""
    return -(-batches // accumulation_steps)


def budget_steps(budget: float | int | None, planned: int | None, epoch: int | None) -> int | None:
    """The escalation budget in optimizer steps (None: no budget): ``budget`` an integer is that many
    steps, another real in (0, 1] is ``max(1, int(budget * planned))`` (numpy's numbers and 0-d arrays
    or tensors too, never a bool: :mod:`lrkit._checks`); by default, with ``planned``,
    ``max(int(0.1 * planned), epoch)`` (``epoch``: the optimizer steps of one epoch, None when unknown)."""
    if planned is not None:
        planned = core._check_int("planned_steps", planned, 1)
    if budget is None:
        if planned is None:
            return None
        return max(int(0.1 * planned), epoch or 0)
    steps, share = as_integer(budget), as_real(budget)  # numpy's and 0-d tensors too (lrkit._checks)
    if steps is not None:
        return core._check_int("budget", budget, 1)
    if share is None:
        raise TypeError(f"budget must be an int (optimizer steps) or a float in (0, 1], got {budget!r}")
    if not (0.0 < share <= 1.0):
        raise ValueError(f"budget as a float is a fraction of planned_steps in (0, 1], got {budget!r}")
    if planned is None:
        raise ValueError(f"budget={budget!r} is a fraction of planned_steps; pass planned_steps too")
    return max(1, int(share * planned))


@dataclasses.dataclass(frozen=True)
class Plan:
    """One attempt of the range test: the ramp ``start`` -> ``end`` over ``rungs`` rungs, ``batches``
    optimizer steps per rung, ``repeats`` ramps, and ``fixed``: the loss of each rung measured on
    :data:`FIXED_BATCHES` fixed batches (without training on them) instead of the training batches;
    ``val``: it is measured on the user's ``val_data``, a fixed set already, so no retry adds them."""

    start: float
    end: float
    rungs: int
    batches: int
    repeats: int
    fixed: bool
    val: bool = False  # the loss is measured on the user's val_data, a fixed set already

    def per_rung(self) -> float:
        return self.batches + (FIXED_BATCHES / 3 if self.fixed else 0.0)

    def range_test(self, step: Callable[[float], float], **options: Any) -> FinderResult:
        """:func:`lrkit.finder.core.range_test` of ``step`` over this plan's ramp and repeats;
        ``options`` are the driver's own (mode, smoothing, divergence, ``before_repeat``, rule...)."""
        return core.range_test(
            step, start_lr=self.start, end_lr=self.end, num_steps=self.rungs, repeats=self.repeats, **options
        )

    def cost(self, result: FinderResult) -> int:
        return math.ceil(result.steps * self.per_rung())

    def fit(self, steps: int) -> Plan:
        """Fewer rungs (not below MIN_RUNGS), then fewer repeats but not below two (a retry must be
        able to see its repeats disagree), so the plan costs at most ``steps``; the caller gives up
        when even that leaves fewer than MIN_RUNGS rungs."""
        rungs = min(self.rungs, int(steps / (self.per_rung() * self.repeats)))
        repeats = self.repeats
        while rungs < MIN_RUNGS and repeats > min(2, self.repeats):
            repeats -= 1
            rungs = min(self.rungs, int(steps / (self.per_rung() * repeats)))
        return dataclasses.replace(self, rungs=max(rungs, 2), repeats=repeats)  # a ramp has >= 2 rungs


def _acted_on(result: FinderResult) -> set[str]:
    """The problems' kinds as a retry treats them: an ``"early"`` curve whose low first rung was only
    noise (its advice is more signal, not a lower start_lr) is retried as a ``"noisy"`` one."""
    return {
        "noisy" if p.kind == "early" and not any(r.startswith(LOWER_START) for r in p.remedies) else p.kind
        for p in result.findings
    }


def next_plan(plan: Plan, result: FinderResult, first: Plan) -> tuple[Plan | None, str]:
    """The next attempt for the problems of ``result``, and what it changes (None: nothing left).

    ``first`` is the first test's plan: ``start_lr`` is cut by 100 at most :data:`MAX_START_CUTS`
    times below it (a loss that is not finite even then is not a matter of the LR)."""
    kinds = _acted_on(result)
    changes: dict[str, Any] = {}
    what: list[str] = []
    if "broken" in kinds:  # the untrained model's loss is not finite: no ramp can change that
        return None, "the loss was not finite at the first rung, before the LR could matter"
    if kinds & {"short", "early"}:
        if plan.start < first.start / 100**MAX_START_CUTS * 1.0001:
            # "short": finite at the first rung (else "broken"), not at the second
            worst = "not finite from the second rung" if "short" in kinds else "rising from the first rung"
            return None, (
                f"the loss was {worst} even at start_lr={plan.start:.3g}; check the "
                "loss function, the data and the model's initial loss"
            )
        changes["start"] = plan.start / 100
        what.append(f"start_lr {plan.start:.3g} -> {plan.start / 100:.3g}")
    if "falling" in kinds:
        changes["end"] = plan.end * 100
        what.append(f"end_lr {plan.end:.3g} -> {plan.end * 100:.3g}")
    if kinds & {"flat", "noisy", "disagree"}:
        stops = [float(c.lrs[c.stopped_at]) for c in result.curves if c.stopped_at is not None]
        if stops:
            end = 2.0 * float(np.median(stops))
            if end < plan.end / 2:
                start = max(changes.get("start", plan.start), end * 1e-5)  # keeps a start_lr cut above
                changes.update(start=start, end=end)
                what.append(f"ramp narrowed to {start:.3g} .. {end:.3g} (blew up near {end / 2:.3g})")
        changes["batches"] = plan.batches * 2
        what.append(f"{plan.batches * 2} batches per rung")
        if kinds & {"noisy", "disagree"} and not (plan.fixed or plan.val):
            changes["fixed"] = True
            what.append(f"loss measured on {FIXED_BATCHES} fixed batches")
        if "disagree" in kinds:
            changes["repeats"] = plan.repeats + 2
            what.append(f"{plan.repeats + 2} repeats")
    if not changes:
        return None, "no escalation step for these problems"
    if plan.repeats < 2:  # a trusted retry must have been able to see its repeats disagree
        changes["repeats"] = 2
        what.append("2 repeats")
    # spend the budget on batches and a narrower ramp, not on more rungs than the first try
    return dataclasses.replace(plan, **changes), ", ".join(what)


def escalate(attempt: Callable[[Plan], FinderResult], first: Plan, budget: int | None) -> FinderResult:
    """Run ``attempt(first)``; without a trusted result and with a ``budget`` (optimizer steps beyond the
    first test), retry with :func:`next_plan` sized to the budget left, at most :data:`MAX_RETRIES`
    times. The last attempt's result, with ``escalation`` (what each retry changed and how it ended,
    or why it stopped), ``steps`` (in all), ``first_steps`` and ``budget``.

    ``attempt`` must start every ramp (a retry's too) from the user's model; the caller restores it
    afterwards, also when an attempt raises."""
    result = attempt(first)
    first_cost = first.cost(result)
    extra = 0
    log: list[str] = []
    current = first
    while budget is not None and not result.trusted:
        if len(log) >= MAX_RETRIES:
            log.append(f"stopped after {MAX_RETRIES} retries")
            break
        nxt, what = next_plan(current, result, first)
        if nxt is None:
            log.append(f"stopped: {what}")
            break
        nxt = nxt.fit(budget - extra)
        if nxt.rungs < MIN_RUNGS:
            left = budget - extra
            log.append(f"stopped: {plural(left, 'step')} of the budget left, too few for another try")
            break
        result = attempt(nxt)
        extra += nxt.cost(result)
        log.append(f"{what} ({result.steps} rungs, {'trusted' if result.trusted else 'still no signal'})")
        current = nxt
    return dataclasses.replace(
        result, escalation=tuple(log), steps=first_cost + extra, first_steps=first_cost, budget=budget
    )
