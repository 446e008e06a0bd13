"""``lrkit.torch.scheduler`` warns of a steps_per_epoch that is not whole (ImageNet's 1281167 / 1024 =
1251.14), as ``lrkit.keras.schedule`` does: a DataLoader's epoch is ceil(n / batch_size) batches (floor
with drop_last), so 'x0.1 at epoch 30' landed at step 37535, the end of no epoch (37530 or 37560)."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

torch = pytest.importorskip("torch")

import lrkit  # noqa: E402
from lrkit.recipes import resnet_imagenet  # noqa: E402


def _opt(tensor_lr: bool = False) -> torch.optim.Optimizer:
    lr = torch.tensor(0.1) if tensor_lr else 0.1  # in_graph=True writes the lr in place on the device
    return torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=lr)


@pytest.mark.parametrize("in_graph", [False, True])
def test_a_fractional_steps_per_epoch_is_warned_at_the_callers_line(in_graph: bool) -> None:
    spe = 1281167 / 1024
    with pytest.warns(UserWarning, match=r"steps_per_epoch=1251\.1396484375 is not a whole number") as got:
        lrkit.torch.scheduler(
            _opt(in_graph), resnet_imagenet(batch=1024), steps_per_epoch=spe, in_graph=in_graph
        )
    (w,) = [w for w in got if "whole number" in str(w.message)]
    assert w.filename == __file__, w.filename
    assert "1252 batches (1251 with drop_last=True)" in str(w.message)
    assert "steps_per_epoch=len(train_loader)" in str(w.message)


@pytest.mark.parametrize("spe", [1251, 1251.0, np.float64(1251.0), np.int64(1251), torch.tensor(1251)])
def test_a_whole_steps_per_epoch_is_not_warned(spe: object) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        sch = lrkit.torch.scheduler(_opt(), resnet_imagenet(batch=1024), steps_per_epoch=spe)  # type: ignore[arg-type]
    assert sch.steps_per_epoch == 1251.0


def test_epochwise_stepping_is_not_warned() -> None:
    """With interval='epoch' the schedule is read at epoch * steps_per_epoch: a fraction lands on the
    epochs' ends exactly (epoch 30 is step 30 x 1251.14, the milestone)."""
    opt = _opt()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        sch = lrkit.torch.scheduler(opt, resnet_imagenet(), steps_per_epoch=1281167 / 256, interval="epoch")
    for _ in range(30):
        assert opt.param_groups[0]["lr"] == pytest.approx(0.1)
        opt.step()
        sch.step()
    assert opt.param_groups[0]["lr"] == pytest.approx(0.01)
