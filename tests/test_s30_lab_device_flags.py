"""The lab's set-up check steps each strategy's optimizer once on CPU stand-ins (a bad ``betas`` fails
there); a setting that holds for the model's device (``capturable=True`` for CUDA) must not be refused
by that CPU step; ``differentiable=True``, which never trains, is."""

from __future__ import annotations

import pytest

pytest.importorskip("torch")

from lrkit.lab.runner import Strategy


@pytest.mark.parametrize("params", [{"capturable": True}, {"fused": True}])
def test_device_settings_pass_the_set_up_check(params: dict[str, bool]) -> None:
    s = Strategy("x", "constant(1e-3)", "adam", params)
    assert s.optimizer_params == params


def test_differentiable_never_trains_and_is_refused_at_set_up() -> None:
    # its step is for a graph through the update; a training step's in-place update fails under it
    with pytest.raises(ValueError, match=r"strategy 'x'.*differentiable must be false for training"):
        Strategy("x", "constant(1e-3)", "adam", {"differentiable": True})


def test_a_bad_betas_is_still_refused_naming_the_strategy() -> None:
    with pytest.raises(ValueError, match="'x'"):
        Strategy("x", "constant(1e-3)", "adam", {"betas": [0.9, 0.99, 0.5]})
