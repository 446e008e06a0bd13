"""A scheduler state from a newer lrkit, or missing a key its format always holds (truncated, edited), is
refused naming the formats or the keys, and changes nothing; states written by older lrkit load."""

from __future__ import annotations

import warnings
from typing import Any

import pytest
import torch

import lrkit
from lrkit.control import Plateau
from lrkit.control.plateau import MissingStateKeys

V2_KEYS = [
    "format", "last_epoch", "interval", "base_lrs", "multiplier", "plateau_cuts", "plateau",
    "schedule", "relative", "hparams", "steps_per_epoch", "total_steps",
]  # fmt: skip


def _sched(**kw: Any) -> Any:
    p = torch.nn.Parameter(torch.zeros(1))
    opt = torch.optim.SGD([p], lr=0.1)
    return lrkit.torch.scheduler(
        opt, "cosine(lr=0.1)", total_steps=100, follow_optimizer=False, plateau=Plateau(patience=0), **kw
    )


def _cut_state() -> dict[str, Any]:
    """Ten steps and four plateau cuts: the LR is 1e-4 of the schedule's."""
    s = _sched()
    for _ in range(10):
        s.step()
    for _ in range(5):
        s.report(1.0)
    state = s.state_dict()
    assert state["plateau"]["num_reductions"] == 4 and state["plateau_cuts"][0] == pytest.approx(1e-4)
    return state


def test_the_state_holds_the_keys_of_its_format() -> None:
    assert sorted(_cut_state()) == sorted(V2_KEYS)


def test_a_state_from_a_newer_lrkit_is_refused_naming_both_formats() -> None:
    state = {**_cut_state(), "format": "lrkit.torch/4", "something_new": [1, 2]}
    s = _sched()
    with pytest.raises(ValueError, match=r"newer lrkit \(format 'lrkit\.torch/4'.*'lrkit\.torch/3'") as e:
        s.load_state_dict(state)
    assert not isinstance(e.value, lrkit.torch.ScheduleMismatchError)
    assert s.last_epoch == 0 and s.plateau_cuts == [1.0]


@pytest.mark.parametrize("key", V2_KEYS)
def test_a_truncated_state_is_refused_naming_the_missing_key(key: str) -> None:
    state = _cut_state()
    del state[key]
    s = _sched()
    with pytest.raises(MissingStateKeys, match=rf"missing \['{key}'\]"):
        s.load_state_dict(state)
    assert s.last_epoch == 0 and s.plateau_cuts == [1.0] and s.plateau.num_reductions == 0
    assert s.optimizer.param_groups[0]["lr"] == 0.1


def test_another_format_is_refused() -> None:
    with pytest.raises(
        ValueError,
        match=r"format must be 'lrkit.torch/1', 'lrkit.torch/2' or 'lrkit.torch/3', got 'lrkit.guard/1'",
    ):
        _sched().load_state_dict({**_cut_state(), "format": "lrkit.guard/1"})


@pytest.mark.parametrize("with_cuts", [False, True], ids=["before_plateau_cuts", "with_plateau_cuts"])
def test_a_state_of_format_1_still_loads(with_cuts: bool) -> None:
    """``lrkit.torch/1`` states named no schedule; the first ones kept no per-group cuts either."""
    full = _cut_state()
    keep = ["format", "last_epoch", "interval", "base_lrs", "multiplier", "plateau"] + (
        ["plateau_cuts"] if with_cuts else []
    )
    old = {key: full[key] for key in keep} | {"format": "lrkit.torch/1"}
    s = _sched()
    with pytest.warns(UserWarning, match="older lrkit"):
        s.load_state_dict(old)
    assert s.last_epoch == 10 and s.plateau.num_reductions == 4
    assert s.plateau_cuts == (full["plateau_cuts"] if with_cuts else [1.0])


def test_a_state_of_this_format_loads_silently() -> None:
    state = _cut_state()
    s = _sched()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        s.load_state_dict(state)
    assert s.last_epoch == 10 and s.plateau_cuts == state["plateau_cuts"]
