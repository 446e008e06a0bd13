"""A loss that reaches exactly 0 (a margin, triplet or hinge loss at its best; a cross-entropy that underflows
on an easy batch) has no sign: one such loss switched the guard to its test for signed losses, whose scale
never falls, so a later 30x jump of a loss decayed to 0.01 went unseen. Only a negative loss switches."""

from __future__ import annotations

import warnings

import pytest

torch = pytest.importorskip("torch")

from lrkit.control import DivergenceGuard  # noqa: E402


def _events(losses: list[float]) -> list[int]:
    m = torch.nn.Linear(2, 1)
    o = torch.optim.SGD(m.parameters(), lr=0.1)
    g = DivergenceGuard(m, o)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for i, loss in enumerate(losses):
            g.check(loss, i)
    return [e.step for e in g.events]


DECAY = [0.95**i for i in range(90)] + [0.01] * 150 + [0.3] * 20  # to 0.01, then 30x up


@pytest.mark.parametrize("touch", [0.0, 0.001])
def test_a_loss_that_touches_zero_keeps_the_ratio_test(touch: float) -> None:
    events = _events([1.0] * 50 + [touch] + [1.0] * 50 + DECAY)
    assert events, "the 30x jump after the decay was not caught"
    assert min(events) >= 341  # the jump starts at step 341: nothing before it


def test_a_negative_loss_still_switches_to_the_signed_test() -> None:
    losses = [-1.0 + 0.01 * (i % 3) for i in range(200)] + [1e6] * 10
    assert _events(losses)  # the explosion from -1 is caught
