"""Three findings of a review of the torch scheduler's new checks, and one of the recipes':

- a checkpoint taken floor(steps_per_epoch) batches into an epoch of ceil(steps_per_epoch) batches
  (``interval='epoch'``, a fractional steps_per_epoch) is not an epoch's end: resumed, it ran one epoch
  ahead;
- a loop that steps once per epoch and trains past the schedule's epochs is not 'stepped after every
  optimizer step': no StepwiseSteppingWarning;
- a plateau given its metric after the run's last step is warned of in words that are true;
- ``lrkit recipes ... --set warmup=0`` describes no warmup.
"""

from __future__ import annotations

import warnings

import pytest

torch = pytest.importorskip("torch")

import lrkit  # noqa: E402
from lrkit.adapters.torch import StepwiseSteppingWarning, UnfedPlateauWarning  # noqa: E402
from lrkit.control import Plateau  # noqa: E402


def _opt() -> torch.optim.Optimizer:
    return torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1.0)


def _epoch_sched(opt: torch.optim.Optimizer) -> lrkit.torch.LRScheduler:
    return lrkit.torch.scheduler(
        opt, "step(lr=1.0, step_size=1ep, gamma=0.5)", steps_per_epoch=2.5, interval="epoch", epochs=8
    )


def _lrs(batches_per_epoch: int, epochs: int, stop_after: tuple[int, int] | None = None) -> list[float]:
    """LRs of an epoch loop of ``batches_per_epoch`` batches; with ``stop_after=(e, b)`` the state is
    saved after batch b of epoch e, and a new scheduler loaded with it runs on from there."""
    opt = _opt()
    s = _epoch_sched(opt)
    out = []
    for e in range(epochs):
        for b in range(batches_per_epoch):
            opt.step()
            if stop_after == (e, b):
                state = s.state_dict()
                s = _epoch_sched(opt)
                s.load_state_dict(state)
        s.step()
        out.append(opt.param_groups[0]["lr"])
    return out


def test_a_checkpoint_inside_an_epoch_of_ceil_batches_resumes_on_schedule() -> None:
    whole = _lrs(3, 4)
    assert whole == [0.5, 0.25, 0.125, 0.0625]
    assert _lrs(3, 4, stop_after=(1, 1)) == whole  # 2 = floor(2.5) batches into epoch 1's 3
    assert _lrs(3, 4, stop_after=(1, 2)) == whole  # after the epoch's last batch, before step()


def test_an_epoch_loop_past_its_epochs_does_not_say_stepped_after_every_step() -> None:
    opt = _opt()
    s = lrkit.torch.scheduler(opt, "cosine(lr=1.0)", epochs=3, steps_per_epoch=100, interval="epoch")
    with warnings.catch_warnings():
        warnings.simplefilter("error", StepwiseSteppingWarning)
        for _ in range(6):
            for _ in range(100):
                opt.step()
            s.step()
    per_step = lrkit.torch.scheduler(
        _opt(), "cosine(lr=1.0)", epochs=3, steps_per_epoch=100, interval="epoch"
    )
    with pytest.warns(StepwiseSteppingWarning, match="runs 100x too fast"):
        for _ in range(6):
            per_step.optimizer.step()
            per_step.step()


def test_a_plateau_fed_after_the_last_step_is_told_the_truth() -> None:
    opt = _opt()
    s = lrkit.torch.scheduler(opt, "constant(lr=1.0)", total_steps=5, plateau=Plateau())
    with pytest.warns(UnfedPlateauWarning) as seen:
        for _ in range(5):
            opt.step()
            s.step()
    text = str(seen[0].message)
    assert "has not been given a metric yet" in text and "comes too late to cut it" in text
    assert "never given a metric" not in text


@pytest.mark.parametrize(("name", "says"), [
    ("bert_finetune", "no warmup: linear decay from 5e-05 to 0"),
    ("gpt_cosine", "no warmup: cosine from 0.0006 to 0.1 x the peak"),
])  # fmt: skip
@pytest.mark.parametrize("warmup", [0, "0%", "0ep", None])
def test_a_recipe_without_warmup_is_described_without_one(name: str, says: str, warmup: object) -> None:
    from lrkit.recipes import RECIPES

    assert RECIPES[name].describe(warmup=warmup) == says
    assert RECIPES[name].describe().startswith("warmup over")
