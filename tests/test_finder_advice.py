"""The verdict's advice for a curve lowest at its first rung: a lower start_lr when the loss rose, the
advice that brings out a signal when the low first rung was noise."""

from __future__ import annotations

import numpy as np
import pytest

from lrkit.finder import range_test
from lrkit.finder.cli import FLAGS
from lrkit.finder.core import ema_debiased
from lrkit.finder.result import Curve, FinderResult

LRS = np.geomspace(1e-7, 10.0, 100)
NOISE_ADVICE = (
    "average more batches per step (batches_per_step), run a longer ramp (num_steps), use a validation set "
    "(val_data) or run more repeats (repeats)"
)


def _curve(losses: np.ndarray, lrs: np.ndarray = LRS) -> Curve:
    """A curve smoothed as the range test smooths it (EMA 0.9, debiased)."""
    return Curve(lrs[: losses.size], losses, ema_debiased(losses, 0.9))


def _noise(seed: int, n: int = 100) -> np.ndarray:
    """No signal: the loss is 1 plus batch noise (sd 0.05) whatever the LR."""
    return 1.0 + 0.05 * np.random.default_rng(seed).standard_normal(n)


def test_a_noise_only_curve_is_not_told_to_lower_start_lr() -> None:
    """Whenever a noise-only curve's low first rung makes it "early", the advice is that of no signal,
    and the verdict (kinds, trust, suggestion) is the one it was."""
    early = 0
    for seed in range(200):
        res = FinderResult.from_curves([_curve(_noise(seed))])
        assert not res.trusted and res.suggestion is None
        if "early" not in res.problem_kinds:
            continue
        early += 1
        assert "start_lr" not in res.reason, (seed, res.reason)
        (text,) = [p for p, kind in zip(res.problems, res.problem_kinds, strict=True) if kind == "early"]
        assert text.startswith("no LR signal: the loss was lowest at the first rung, but the first half")
        assert text.endswith(f"noise, not a starting LR too high; {NOISE_ADVICE}")
    assert early >= 30  # a third of such curves are lowest at the first rung (the debiased EMA starts raw)


def test_the_noise_verdict_gives_its_numbers() -> None:
    """Hand-computed: start = median(0.90, 1.00, 1.02) = 1.00; the first half's rungs 3..9 have median
    1.02, 0.02 above it; the first differences of rungs 0..9 have median 0.02 and median absolute
    deviation 0.02 about it, noise 0.02 / 0.6745 / sqrt(2) = 0.021; 0.02 < 3 x 0.021."""
    losses = np.array([0.90, 1.00, 1.02, 1.02, 0.98, 1.02, 0.98, 1.02, 1.06, 1.02] + [1.0] * 10)
    res = FinderResult.from_curves([_curve(losses)])
    assert "early" in res.problem_kinds
    assert res.problems[0] == (
        "no LR signal: the loss was lowest at the first rung, but the first half of the ramp rose only "
        "0.02 above its start, less than 3 x its noise (0.021): noise, not a starting LR too high; "
        + NOISE_ADVICE
    )
    below = losses.copy()
    below[[8, 9]] = 0.98  # rungs 3..9 now have median 0.98, under the start
    text = FinderResult.from_curves([_curve(below)]).problems[0]
    assert (
        "the first half of the ramp did not rise above its start: noise, not a starting LR too high" in text
    )


@pytest.mark.parametrize(
    "losses",
    [
        1.0 + 0.02 * np.arange(60),  # a clean rise
        np.exp(0.5 * np.arange(6)),  # a blow-up from the first rung, as a diverged test keeps it
        1.0 + 0.05 * np.arange(40) + 0.05 * np.random.default_rng(0).standard_normal(40),  # 1 noise sd a rung
    ],
    ids=["clean", "blow-up", "noisy"],
)
def test_a_rising_curve_is_still_told_to_lower_start_lr(losses: np.ndarray) -> None:
    """A loss that rises from the first rung (start_lr too high) keeps its advice, with the LR it had."""
    res = FinderResult.from_curves([_curve(losses, np.geomspace(1e-3, 10.0, losses.size))])
    assert "the loss rose from the first rung; lower start_lr (now 0.001)" in res.problems, res.problems
    assert "no LR signal" not in res.reason


def test_a_range_test_that_starts_too_high_is_told_to_lower_start_lr() -> None:
    """Through the range test: a bowl whose bottom lies below start_lr."""
    res = range_test(lambda lr: float((np.log10(lr) + 4.0) ** 2 + 1.0), start_lr=1e-2, num_steps=50)
    assert "the loss rose from the first rung; lower start_lr (now 0.01)" in res.problems, res.problems


def test_repeats_that_rose_and_repeats_that_were_noise_get_one_sentence_each() -> None:
    """One sentence per problem, not one per repeat: two noise-only repeats are one sentence "(2 of 3
    repeats)", and the repeat that rose keeps its own advice "(1 of 3 repeats)" instead of being counted
    with them."""
    seeds = [s for s in range(50) if "early" in FinderResult.from_curves([_curve(_noise(s))]).problem_kinds]
    rising = 1.0 + 0.02 * np.arange(100)
    res = FinderResult.from_curves([_curve(_noise(seeds[0])), _curve(rising), _curve(_noise(seeds[1]))])
    assert "the loss rose from the first rung; lower start_lr (now 1e-07) (1 of 3 repeats)" in res.problems
    (noise,) = [p for p in res.problems if p.startswith("no LR signal")]
    assert noise.endswith(f"{NOISE_ADVICE} (2 of 3 repeats)")
    assert res.reason.count("no LR signal") == 1 and not res.trusted


def test_the_command_line_advice_names_its_flags() -> None:
    """lrkit find's advice for a noise-only curve: its flags, and no validation set (it has no flag)."""
    seed = next(
        s for s in range(50) if "early" in FinderResult.from_curves([_curve(_noise(s))]).problem_kinds
    )
    res = FinderResult.from_curves([_curve(_noise(seed))]).phrased_for(FLAGS)
    (text,) = [p for p, kind in zip(res.problems, res.problem_kinds, strict=True) if kind == "early"]
    assert text.endswith(
        "average more batches per step (--batches-per-step N), run a longer ramp (--num-steps N) or run more "
        "repeats (--repeats N)"
    )


def test_a_retry_acts_on_the_advice_more_signal_for_noise_a_lower_start_for_a_rise() -> None:
    """Escalation follows the verdict: a curve lowest at its first rung only by its noise is retried as a
    noisy one (twice the batches per rung, loss on fixed batches, start_lr kept), not with a start_lr cut
    by 100 that the verdict says cannot help; a real rise still gets the cut."""
    from lrkit.finder.escalation import Plan, next_plan

    first = Plan(1e-7, 10.0, 100, 1, 3, False)
    noise = next(
        r
        for r in (FinderResult.from_curves([_curve(_noise(seed))]) for seed in range(50))
        if r.problem_kinds == ("early",)
    )
    plan, what = next_plan(first, noise, first)
    assert plan is not None and (plan.start, plan.batches, plan.fixed) == (1e-7, 2, True), what
    assert "start_lr" not in what
    rise = FinderResult.from_curves([_curve(1.0 + 0.02 * np.arange(60), np.geomspace(1e-3, 10.0, 60))])
    assert "early" in rise.problem_kinds
    plan, what = next_plan(first, rise, first)
    assert plan is not None and plan.start == pytest.approx(1e-9) and "start_lr 1e-07 -> 1e-09" in what
