"""Malladi et al.'s square-root rule with Adam's ``beta1 = 0`` (no momentum): Adam is then RMSprop with
``alpha = beta2`` (plus bias correction), whose rule moves only that average and eps, so ``beta1`` stays 0
at every batch ratio (it raised "beta1 = 1 - k(1 - 0) <= 0" for every k >= 1)."""

from __future__ import annotations

import pytest

from lrkit.scaling import scale_lr


@pytest.mark.parametrize(("base", "batch"), [(256, 256), (256, 512), (32, 512), (256, 64), (8, 8192)])
@pytest.mark.parametrize("beta1", [0, 0.0])
def test_adam_without_momentum_is_rmsprop_under_the_rule(base: int, batch: int, beta1: float) -> None:
    adam = scale_lr(1e-3, base_batch=base, batch=batch, optimizer="adam").adam_hparams(beta1, 0.9999, 1e-8)
    rms = scale_lr(1e-3, base_batch=base, batch=batch, optimizer="rmsprop").rmsprop_hparams(0.9999, 1e-8)
    assert adam == (0.0, *rms)
    assert isinstance(adam[0], float)


def test_a_small_beta1_past_the_rule_still_names_it() -> None:
    s = scale_lr(1e-3, base_batch=256, batch=1024, optimizer="adam")  # k = 4: 1 - 4 x 0.5 < 0
    with pytest.raises(
        ValueError, match=r"adam_hparams: batch ratio k = 4 gives beta1 = .*holds only for k < 2"
    ):
        s.adam_hparams(beta1=0.5)
    assert s.adam_hparams(beta1=0.8)[0] == pytest.approx(0.2)
