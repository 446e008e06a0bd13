"""lrkit in Lightning on real data (scikit-learn's digits): an MLP trained with accumulate_grad_batches=2
and lrkit's scheduler ends with the weights of a plain torch loop driven by torch's own ``LambdaLR`` over
the same schedule (the reference), and the LR of every update is ``schedule(k)``."""

from __future__ import annotations

from typing import Any

import pytest
import torch

pl = pytest.importorskip("lightning.pytorch")
datasets = pytest.importorskip("sklearn.datasets")

import lrkit  # noqa: E402

pytestmark = pytest.mark.usefixtures("one_torch_thread")
SPEC = lrkit.parse("warmup(3, start=0.1) >> cosine(lr=1.0, min_lr=0.05)")
LR, BATCH, ACCUMULATE, EPOCHS = 0.2, 100, 2, 3


def _data() -> torch.utils.data.TensorDataset:
    x, y = datasets.load_digits(return_X_y=True)
    x = torch.tensor(x[:1600] / 16.0, dtype=torch.float32)
    return torch.utils.data.TensorDataset(x, torch.tensor(y[:1600]))


def _net() -> torch.nn.Module:
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Linear(64, 32), torch.nn.ReLU(), torch.nn.Linear(32, 10))


class Digits(pl.LightningModule):  # type: ignore[misc]
    def __init__(self, total: int) -> None:
        super().__init__()
        self.net = _net()
        self.total = total
        self.used: list[float] = []

    def training_step(self, batch: Any, batch_idx: int) -> torch.Tensor:
        x, y = batch
        return torch.nn.functional.cross_entropy(self.net(x), y)

    def configure_optimizers(self) -> Any:
        opt = torch.optim.SGD(self.parameters(), lr=LR, momentum=0.9)
        opt.register_step_pre_hook(lambda o, a, k: self.used.append(o.param_groups[0]["lr"]))
        sched = lrkit.torch.scheduler(opt, SPEC, total_steps=self.total, relative=True)
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}


def test_lightning_on_digits_ends_where_a_torch_loop_with_lambda_lr_ends() -> None:
    loader = torch.utils.data.DataLoader(_data(), batch_size=BATCH)
    total = EPOCHS * len(loader) // ACCUMULATE  # 16 batches an epoch: 8 updates
    model = Digits(total)
    pl.Trainer(
        max_epochs=EPOCHS,
        accumulate_grad_batches=ACCUMULATE,
        accelerator="cpu",
        logger=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        enable_checkpointing=False,
    ).fit(model, loader)

    net = _net()
    opt = torch.optim.SGD(net.parameters(), lr=LR, momentum=0.9)
    s = SPEC.resolve(total_steps=total)
    ref = torch.optim.lr_scheduler.LambdaLR(opt, lambda k: float(s(k)))
    used = []
    for _ in range(EPOCHS):
        for i, (x, y) in enumerate(loader):
            (torch.nn.functional.cross_entropy(net(x), y) / ACCUMULATE).backward()
            if (i + 1) % ACCUMULATE == 0:
                used.append(opt.param_groups[0]["lr"])
                opt.step()
                opt.zero_grad()
                ref.step()

    assert len(model.used) == total == 24
    assert model.used == pytest.approx(used, rel=1e-12)
    assert model.used == pytest.approx([LR * float(s(k)) for k in range(total)], rel=1e-12)
    for a, b in zip(model.net.parameters(), net.parameters(), strict=True):
        torch.testing.assert_close(a.detach(), b.detach(), rtol=1e-5, atol=1e-6)
