"""Stepping an lrkit torch scheduler past its ``total_steps`` (torch's OneCycleLR raises there; lrkit held
the last LR without a word): one PastTheRunWarning, at the second optimizer step past the end (the first,
an off-by-one loop, passes), naming total_steps, the step and the LR held; none for a schedule without an
end; one mechanism with lrkit.auto's."""

from __future__ import annotations

import pickle
import warnings
from pathlib import Path
from typing import Any

import pytest

torch = pytest.importorskip("torch")

import lrkit  # noqa: E402
from lrkit.adapters.torch import PastTheRunWarning, StepwiseSteppingWarning  # noqa: E402

N = 20


def _opt() -> torch.optim.Optimizer:
    return torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=0.1)


def _run(opt: Any, sched: Any, steps: int) -> list[tuple[int, warnings.WarningMessage]]:
    """``steps`` iterations of optimizer step then scheduler step; the warnings with the 1-based
    iteration each came in."""
    got: list[tuple[int, warnings.WarningMessage]] = []
    for i in range(1, steps + 1):
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            opt.step()  # the line the warning points at
            sched.step()
        got += [(i, w) for w in caught]
    return got


def _past(got: list[tuple[int, warnings.WarningMessage]]) -> list[tuple[int, warnings.WarningMessage]]:
    return [(i, w) for i, w in got if issubclass(w.category, PastTheRunWarning)]


def test_one_cycle_stepped_past_its_steps_warns_once_at_the_second_step_past() -> None:
    opt = _opt()
    sched = lrkit.torch.scheduler(opt, "one_cycle(max_lr=0.1)", steps_per_epoch=10, epochs=2)
    past = _past(_run(opt, sched, 3 * N))
    assert [i for i, _ in past] == [N + 2]
    w = past[0][1]
    text = str(w.message)
    assert "total_steps=20" in text and "step 22" in text and "4e-07" in text, text
    assert "steps_per_epoch=len(train_loader)" in text
    assert w.filename == __file__
    assert "opt.step()" in Path(__file__).read_text().splitlines()[w.lineno - 1]
    assert opt.param_groups[0]["lr"] == pytest.approx(4e-07)  # still held: a warning, not an error


def test_one_step_past_the_end_and_idle_step_calls_pass() -> None:
    opt = _opt()
    sched = lrkit.torch.scheduler(opt, "warmup(5) >> cosine(lr=0.1)", total_steps=N)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for _ in range(N + 1):  # an off-by-one loop
            opt.step()
            sched.step()
        for _ in range(3):  # step() without an optimizer step does not advance
            sched.step()


@pytest.mark.parametrize(
    ("spec", "total"),
    [
        ("constant(lr=0.1)", N),
        ("cosine_restarts(lr=0.1, period=10)", N),
        ("warmup(5) >> constant(lr=0.1)", N),
        ("cosine(lr=0.1, steps=20)", None),
    ],
)
def test_no_warning_for_a_schedule_without_an_end(spec: str, total: int | None) -> None:
    opt = _opt()
    sched = lrkit.torch.scheduler(opt, spec, total_steps=total)
    assert _past(_run(opt, sched, 3 * N)) == []


def test_without_the_optimizer_hook_step_warns_one_call_later() -> None:
    opt = _opt()
    sched = lrkit.torch.scheduler(opt, "cosine(lr=0.1)", total_steps=N, follow_optimizer=False)
    past = _past(_run(opt, sched, 3 * N))
    assert [i for i, _ in past] == [N + 2]
    assert "step 22" in str(past[0][1].message)


def test_a_jump_past_the_end_warns_only_when_stepping_goes_on() -> None:
    opt = _opt()
    sched = lrkit.torch.scheduler(opt, "cosine(lr=0.1)", total_steps=N)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        sched.set_step(N + 5)
        state = sched.state_dict()
        fresh = lrkit.torch.scheduler(opt, "cosine(lr=0.1)", total_steps=N)
        fresh.load_state_dict(state)
    del sched
    past = _past(_run(opt, fresh, 3))
    assert [i for i, _ in past] == [2]
    assert "step 27" in str(past[0][1].message)


def test_a_jump_back_before_the_end_disarms_and_a_copy_warns_on_its_own() -> None:
    opt = _opt()
    sched = lrkit.torch.scheduler(opt, "cosine(lr=0.1)", total_steps=N)
    assert _past(_run(opt, sched, N + 1)) == []  # armed: the next optimizer step would warn
    copy = pickle.loads(pickle.dumps(sched))  # a copy (its own optimizer) keeps the armed check
    sched.set_step(0)
    assert _past(_run(opt, sched, N + 1)) == []
    assert [i for i, _ in _past(_run(copy.optimizer, copy, 1))] == [1]


def test_epoch_interval_warns_in_the_first_epoch_past_the_run() -> None:
    """An epoch past an epoch loop's end is warned at once (a step loop's one extra final step() is let
    through; for interval='epoch' that allowance was a whole epoch trained unwarned)."""
    opt = _opt()
    sched = lrkit.torch.scheduler(opt, "cosine(lr=0.1)", steps_per_epoch=4, epochs=3, interval="epoch")
    got = []
    for epoch in range(1, 7):
        for _ in range(4):
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                opt.step()
            got += [(epoch, w) for w in caught]
        sched.step()
    past = _past(got)
    assert [e for e, _ in past] == [4]
    assert "covers 3 epochs" in str(past[0][1].message) and "epoch 4" in str(past[0][1].message)


def test_epoch_interval_stepped_every_optimizer_step_gets_only_the_stepwise_warning() -> None:
    opt = _opt()
    sched = lrkit.torch.scheduler(opt, "cosine(lr=0.1)", steps_per_epoch=4, epochs=3, interval="epoch")
    got = _run(opt, sched, 12)
    assert _past(got) == []
    assert [w.category for _, w in got] == [StepwiseSteppingWarning]


def test_auto_warns_through_the_same_class() -> None:
    import lrkit.auto

    assert lrkit.auto.PastTheRunWarning is lrkit.torch.PastTheRunWarning is PastTheRunWarning
