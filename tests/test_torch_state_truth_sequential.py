"""An lrkit scheduler given to torch's SequentialLR is refused when SequentialLR is built (it sets the
schedulers' last_epoch to -1), pointing to lrkit's own ``>>``: nested, it restarted at the milestone and
resumed with the wrong LR (or could not resume at all)."""

from __future__ import annotations

import pickle
import warnings

import pytest
import torch
from torch.optim.lr_scheduler import ExponentialLR, LinearLR, SequentialLR

import lrkit


def _opt() -> torch.optim.Optimizer:
    return torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=0.1)


@pytest.mark.parametrize("position", [0, 1])
def test_sequential_lr_with_an_lrkit_scheduler_is_refused_when_built(position: int) -> None:
    o = _opt()
    ours = lrkit.torch.scheduler(o, "cosine(lr=0.1, steps=10)", total_steps=10)
    theirs = LinearLR(o, start_factor=0.1, total_iters=5) if position else ExponentialLR(o, gamma=0.9)
    pieces = [theirs, ours] if position else [ours, theirs]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch's own warnings about step order
        with pytest.raises(ValueError, match=r"cannot run inside SequentialLR.*a >> b"):
            SequentialLR(o, pieces, milestones=[5])


def test_setting_last_epoch_jumps_to_that_step() -> None:
    o = _opt()
    s = lrkit.torch.scheduler(o, "linear(lr=0.1, end_lr=0.0, steps=10)", total_steps=10)
    s.last_epoch = 4
    assert s.last_epoch == 4 and s.state_dict()["last_epoch"] == 4
    assert o.param_groups[0]["lr"] == pytest.approx(0.06) and s.get_last_lr() == [o.param_groups[0]["lr"]]
    with pytest.raises(ValueError, match="last_epoch set to -1"):
        s.last_epoch = -1
    assert s.last_epoch == 4


def test_a_scheduler_pickled_with_last_epoch_as_an_attribute_loads() -> None:
    o = _opt()
    s = lrkit.torch.scheduler(
        o, "linear(lr=0.1, end_lr=0.0, steps=10)", total_steps=10, follow_optimizer=False
    )
    for _ in range(3):
        s.step()
    state = s.__getstate__()
    state["last_epoch"] = state.pop("_k")  # as an older lrkit pickled it
    t = type(s).__new__(type(s))
    t.__setstate__(pickle.loads(pickle.dumps(state)))
    assert t.last_epoch == 3
    t.step()
    assert t.last_epoch == 4 and t.get_last_lr() == [pytest.approx(0.06)]
