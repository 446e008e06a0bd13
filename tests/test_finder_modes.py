"""The LR search trains in the modes the user's loop would: submodules frozen with ``.eval()`` (a
BatchNorm when fine-tuning a backbone) stay frozen through find_lr, the in-run ramp and lrkit.auto; a
model handed over in eval mode is trained in train mode."""

from __future__ import annotations

from typing import Any

import pytest

torch = pytest.importorskip("torch")
pytestmark = pytest.mark.usefixtures("one_torch_thread")

from .test_grad_clip import _loader  # noqa: E402  (after the importorskip)


class _Backbone(torch.nn.Module):
    """Linear -> BatchNorm -> Dropout -> head; records every module's mode at each forward."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.body = torch.nn.Linear(8, 32)
        self.norm = torch.nn.BatchNorm1d(32)
        self.drop = torch.nn.Dropout(0.2)
        self.head = torch.nn.Linear(32, 2)
        self.seen: set[tuple[bool, bool, bool]] = set()

    def forward(self, x: Any) -> Any:
        if torch.is_grad_enabled():  # training forwards only (not a val_data evaluation)
            self.seen.add((self.training, self.norm.training, self.drop.training))
        return self.head(self.drop(torch.relu(self.norm(self.body(x)))))


def _frozen_norm() -> _Backbone:
    model = _Backbone()
    model.train()
    model.norm.eval()  # fine-tuning: the norm's running statistics are frozen
    for p in model.norm.parameters():
        p.requires_grad_(False)
    return model


def _search(name: str, model: _Backbone) -> None:
    loss = torch.nn.functional.cross_entropy
    opt = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=1e-3)
    if name == "find_lr":
        from lrkit.finder import find_lr

        val = [next(iter(_loader()))]
        find_lr(model, opt, _loader(), loss, num_steps=30, val_data=val)
    elif name == "in_run":
        from lrkit.finder.in_run import ramp_in_run

        ramp = ramp_in_run(model, opt, _loader(), loss)
        assert ramp.kept > 0  # the kept steps are training in the user's modes
    else:
        import lrkit

        run = lrkit.auto(model, opt, _loader(), loss, epochs=20, verbose=False)
        assert run.trained_steps > 0


@pytest.mark.parametrize("name", ["find_lr", "in_run", "auto"])
def test_a_norm_frozen_with_eval_stays_frozen_through_the_search(name: str) -> None:
    model = _frozen_norm()
    mean = model.norm.running_mean.clone()
    var = model.norm.running_var.clone()
    _search(name, model)
    assert model.seen == {(True, False, True)}  # the norm in eval mode at every training step
    assert torch.equal(model.norm.running_mean, mean) and torch.equal(model.norm.running_var, var)
    assert model.training and not model.norm.training and model.drop.training


@pytest.mark.parametrize("name", ["find_lr", "in_run", "auto"])
def test_a_model_handed_over_in_eval_mode_trains_in_train_mode(name: str) -> None:
    model = _Backbone()
    model.eval()  # after a validation pass
    _search(name, model)
    assert model.seen == {(True, True, True)}
