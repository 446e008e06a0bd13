"""The guard's jump test on a loss that can be zero or negative (GAN, WGAN, ELBO/NLL losses).

A jump was ``loss > threshold * reference``, tested only when the reference (the median of the recent
good losses) was > 0: a loss crossing zero had false jumps whenever its median came near zero (19
rollbacks on a healthy loss oscillating around 0.02, 4 on a healthy hinge-loss GAN), and a loss at -1
that exploded to 1e6 was never a jump (the exploded losses joined the history as good ones). Now, once a
good loss <= 0 has been seen, a jump is a loss above ``reference + (threshold - 1) * scale``, ``scale``
being the largest median of |loss| over a full window so far. A history of positive losses keeps the
ratio test as it was.
"""

from __future__ import annotations

import math
import random
from typing import Any

import pytest

torch = pytest.importorskip("torch")

import lrkit  # noqa: E402
from lrkit.control import DivergenceError, DivergenceGuard  # noqa: E402


def _guard(**kw: Any) -> tuple[DivergenceGuard, Any]:
    model = torch.nn.Linear(1, 1)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    sched = lrkit.torch.scheduler(opt, "constant(lr=0.1)", total_steps=10_000)
    kw.setdefault("snapshot_every", 10)
    return DivergenceGuard(model, opt, sched, **kw), sched


def _feed(guard: DivergenceGuard, losses: list[float]) -> list[int]:
    """Check ``losses`` in order (a loop that does not replay); the steps rolled back."""
    return [step for step, x in enumerate(losses) if not guard.check(x, step)]


def test_a_healthy_loss_oscillating_across_zero_has_no_jump_once_it_has_been_negative() -> None:
    """exC's guard_zero.py: 0.02 + 0.2 sin(t/20) + noise. Its first 13 losses are positive and climb
    8x: the ratio test of a positive loss (unchanged) sees a jump at step 13. Every later one was false:
    18 more rollbacks before, none now."""
    rng = random.Random(0)
    losses = [0.02 + 0.2 * math.sin(t / 20) + rng.gauss(0, 0.02) for t in range(2000)]
    guard, sched = _guard(max_recoveries=100)
    _feed(guard, losses)
    first_signed = next(t for t, x in enumerate(losses) if x <= 0)
    assert [(e.step, e.reason) for e in guard.events] == [(13, "jump")]
    assert first_signed > 13
    assert sched.multiplier == 0.5


def test_a_healthy_loss_that_starts_below_zero_has_no_event() -> None:
    """The same loss from a phase where it is negative: not one event in 2,000 steps."""
    rng = random.Random(1)
    losses = [0.02 + 0.2 * math.sin((t + 80) / 20) + rng.gauss(0, 0.02) for t in range(2000)]
    assert losses[0] < 0
    guard, _ = _guard()
    assert _feed(guard, losses) == []
    assert guard.scale > 0.1  # the size of its swings


@pytest.mark.parametrize("noise", [0.01, 0.0], ids=["noisy", "constant"])
def test_a_negative_loss_that_explodes_is_a_jump(noise: float) -> None:
    """A loss at -1 exploding to 1e4..1e6 (exC's guard_neg.py, and its constant variant): rolled back
    at the 5th high step, as the same losses shifted to +1 are; the exploded losses never join the
    history."""
    healthy = [-1.0 + noise * (i % 3) for i in range(200)]
    guard, sched = _guard()
    rolled = _feed(guard, healthy + [1e6] * 5)
    assert rolled == [204]
    (e,) = guard.events
    assert (e.step, e.reason, e.loss, e.snapshot_step) == (204, "jump", 1e6, 190)
    assert e.reference == pytest.approx(-1.0, abs=0.02)
    assert guard.scale == pytest.approx(1.0, abs=0.02)
    assert max(guard.state_dict()["history"]) <= 0.0
    assert sched.multiplier == 0.5


def test_a_rise_within_the_size_of_the_losses_is_not_a_jump_but_one_past_it_is() -> None:
    """At -1 (scale 1, threshold 4) the bar is -1 + 3 x 1 = 2: a loss at 1.9 for 50 steps is no jump, a
    loss at 2.1 for 5 steps is one."""
    guard, _ = _guard()
    assert _feed(guard, [-1.0] * 100 + [1.9] * 50) == []
    guard, _ = _guard()
    assert _feed(guard, [-1.0] * 100 + [2.1] * 5) == [104]


def test_the_scale_cannot_fall_when_the_loss_sits_near_zero_for_a_while() -> None:
    """A GAN-like loss: healthy swings of +-0.5 for 300 steps, then 200 quiet steps at -0.01 +- 0.005
    (its median <= 0: the old test was off there), then healthy swings again, which are no jump; an
    explosion to 50 after the quiet phase is one."""
    rng = random.Random(2)
    swings = [0.5 * math.sin(t / 7) + rng.gauss(0, 0.1) for t in range(300)]
    quiet = [-0.01 + rng.gauss(0, 0.005) for _ in range(200)]
    again = [0.3 + 0.2 * math.sin(t / 7) for t in range(100)]
    guard, _ = _guard()
    assert _feed(guard, swings + quiet + again) == []
    assert guard.scale > 0.2
    guard, _ = _guard()
    assert _feed(guard, swings + quiet + [50.0] * 5) == [504]
    assert guard.events[0].reason == "jump"


def test_no_jump_test_until_a_full_window_gives_the_losses_a_size() -> None:
    """A GAN's losses start near 0 and grow as the critic learns: the size of a few says little. With
    fewer than ``window`` losses, only NaN/inf are caught: 49 losses of 0.001, then 200x that for 9
    steps, are no jump; the 50th loss fills the window and gives the scale."""
    guard, _ = _guard(window=50)
    assert _feed(guard, [0.001 * (-1) ** t for t in range(40)] + [0.2] * 9) == []
    assert guard.scale == 0.0
    assert guard.check(0.2, 49) and guard.scale == 0.001


def test_the_error_after_failed_recoveries_names_the_scale() -> None:
    guard, _ = _guard(max_recoveries=0)
    with pytest.raises(DivergenceError, match=r"by more than 4 - 1 times the size of the losses \(scale 1\)"):
        _feed(guard, [-1.0] * 100 + [1e3] * 5)


def test_a_rollback_restores_the_scale_of_its_snapshot() -> None:
    guard, _ = _guard(window=20, snapshot_every=10)
    _feed(guard, [-1.0] * 30)  # scale 1 from step 19; snapshots at 0, 10, 20
    scale_at_snapshot = guard.scale
    for step, x in enumerate([-3.0] * 9, start=30):  # 9 good steps: scale 3 after the 10th in the window
        guard.check(x, step)
    assert guard.scale == scale_at_snapshot == 1.0
    for step, x in enumerate([-3.0] * 12, start=39):
        guard.check(x, step)
    assert guard.scale == 3.0
    assert not guard.check(float("nan"), 51)
    assert guard.resume_step == 50 and guard.scale == 3.0
    guard2, _ = _guard(window=20, snapshot_every=10)
    _feed(guard2, [-1.0] * 30 + [-3.0] * 5)
    assert not guard2.check(float("nan"), 35)
    assert guard2.resume_step == 30 and guard2.scale == 1.0


def test_a_resumed_guard_measures_jumps_as_the_run_that_never_stopped() -> None:
    """``state_dict`` carries whether a loss <= 0 was seen and the scale: a guard that loads it catches
    the explosion at the step the unbroken run does."""
    healthy = [-1.0 + 0.01 * (i % 3) for i in range(150)]
    whole, _ = _guard()
    assert _feed(whole, healthy + [1e6] * 5) == [154]
    first, _ = _guard()
    _feed(first, healthy[:120])
    state = first.state_dict()
    assert state["signed"] is True and state["scale"] == pytest.approx(0.99)
    resumed, _ = _guard()
    resumed.load_state_dict(state)
    rolled = [s for s, x in enumerate(healthy[120:] + [1e6] * 5, start=120) if not resumed.check(x, s)]
    assert rolled == [154]


def test_a_state_without_the_new_keys_is_read_from_its_history() -> None:
    """A state written before ``signed`` and ``scale`` existed: signed where its history holds a loss
    <= 0, scale 0 (no jump test until the next full window)."""
    guard, _ = _guard()
    _feed(guard, [-1.0] * 120)
    state = guard.state_dict()
    del state["signed"], state["scale"]
    other, _ = _guard()
    other.load_state_dict(state)
    assert other.scale == 0.0 and other.state_dict()["signed"] is True
    for bad, match in (({"signed": 1}, "signed must be True or False"), ({"scale": -1.0}, "scale must be")):
        with pytest.raises(ValueError, match=match):
            other.load_state_dict({**guard.state_dict(), **bad})
