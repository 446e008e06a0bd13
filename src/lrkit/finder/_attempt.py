"""The escalated range test that the Keras and optax drivers share (numpy only).

A driver gives :func:`run` how to train one rung and how to measure the loss on fixed batches; each
attempt of :func:`lrkit.finder.escalation.escalate` then runs the same way in both.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

from lrkit.finder._data import Batches
from lrkit.finder.escalation import FIXED_BATCHES, Plan, escalate
from lrkit.finder.result import FinderResult


def run(
    train: Callable[[float, int], float],
    evaluate: Callable[[list[Any]], float],
    reset: Callable[[int], None],
    batches: Batches,
    val: list[Any] | None,
    seed: int,
    first: Plan,
    budget: int | None,
    **options: Any,
) -> FinderResult:
    """:func:`escalate` from the plan ``first`` within ``budget`` (optimizer steps).

    A rung at ``lr`` records ``train(lr, plan.batches)`` (the mean loss of that many optimizer steps
    on batches from ``batches``) or, when that is finite and the loss is measured on fixed batches,
    ``evaluate`` of them: ``val`` (the user's val_data), else, once a plan asks for fixed batches, the
    first :data:`FIXED_BATCHES` batches of the pass with ``seed`` (:meth:`Batches.fixed`: the same at
    every later attempt). Repeat ``r`` calls ``reset(seed + r)`` (the model as given) and then begins
    the pass with ``seed + r``. ``options``: :func:`lrkit.finder.core.range_test`'s (mode, rule...).
    """

    def attempt(plan: Plan) -> FinderResult:
        measured = val
        if measured is None and plan.fixed:  # the first batches of the first repeat's pass
            measured = batches.fixed(FIXED_BATCHES, seed)

        def step(lr: float) -> float:
            value = train(lr, plan.batches)
            return evaluate(measured) if measured is not None and math.isfinite(value) else value

        def before_repeat(r: int) -> None:
            reset(seed + r)
            batches.restart(seed + r)

        return plan.range_test(step, before_repeat=before_repeat, **options)

    return escalate(attempt, first, budget)
