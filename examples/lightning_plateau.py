"""Lightning: a per-step schedule with a per-epoch reduce-on-plateau on a validation metric.

The recipe (three lines in a LightningModule):

1. ``configure_optimizers`` returns one lrkit scheduler with ``plateau=Plateau(...)`` and
   ``"interval": "step"`` (and no ``"reduce_on_plateau"``/``"monitor"``): Lightning calls ``step()`` after
   every optimizer step, so the schedule runs per step.
2. ``on_validation_epoch_end`` gives the epoch's validation metric to the plateau:
   ``self.lr_schedulers().report(val_loss)`` (skipped during the sanity check). The cut applies at once,
   to the schedule's shape. Under ``strategy="ddp"`` each rank's ``val_loss`` is its own shard's:
   ``report`` averages it over the ranks (every rank calls it, as here), so every rank cuts alike and no
   ``sync_dist=True`` is needed for lrkit's sake (Lightning's own log of ``val_loss`` is rank 0's without it).

Why not Lightning's plateau path: ``{"reduce_on_plateau": True, "monitor": "val_loss", "interval": "step"}``
makes Lightning look for ``val_loss`` after every training step and raise ``MisconfigurationException``
(there is none yet), and ``"monitor": "train_loss"`` feeds a noisy per-step loss to a rule meant for epochs
(27 cuts in 32 steps). And with ``LightningCLI``'s ``--lr_scheduler`` the scheduler is stepped once per
epoch: lrkit warns (``EpochwiseSteppingWarning``) when a step-based schedule sees that.

Run: ``python examples/lightning_plateau.py``
"""

from __future__ import annotations

from typing import Any

import lightning.pytorch as pl
import torch

import lrkit
from lrkit.control import Plateau

SCHEDULE = "warmup(10%, start=0.1) >> cosine(lr=1.0, min_lr=0.01)"  # a multiplier of the optimizer's lr


class Regression(pl.LightningModule):  # type: ignore[misc]  # lightning is untyped here
    def __init__(self, lr: float = 0.05, **plateau: Any) -> None:
        super().__init__()
        self.net = torch.nn.Sequential(torch.nn.Linear(4, 16), torch.nn.Tanh(), torch.nn.Linear(16, 1))
        self.lr = lr
        self.plateau = Plateau(**{"patience": 1, "factor": 0.5, **plateau})
        self.val_losses: list[torch.Tensor] = []
        #: (global step, lr used) for every training step, and the metric reported after each epoch
        self.seen: list[tuple[int, float]] = []
        self.reported: list[float] = []

    def training_step(self, batch: Any, batch_idx: int) -> torch.Tensor:
        x, y = batch
        self.seen.append((self.global_step, self.optimizers().param_groups[0]["lr"]))
        return torch.nn.functional.mse_loss(self.net(x), y)

    def validation_step(self, batch: Any, batch_idx: int) -> None:
        x, y = batch
        loss = torch.nn.functional.mse_loss(self.net(x), y)
        self.val_losses.append(loss.detach())
        self.log("val_loss", loss)

    def on_validation_epoch_end(self) -> None:
        val_loss = torch.stack(self.val_losses).mean()
        self.val_losses.clear()
        if self.trainer.sanity_checking:
            return
        self.lr_schedulers().report(val_loss)  # (2) one plateau decision per epoch
        self.reported.append(float(val_loss))

    def configure_optimizers(self) -> Any:
        opt = torch.optim.SGD(self.parameters(), lr=self.lr, momentum=0.9)
        sched = lrkit.torch.scheduler(
            opt,
            SCHEDULE,
            total_steps=self.trainer.estimated_stepping_batches,
            relative=True,
            plateau=self.plateau,
        )
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}  # (1)


def loaders(n_train: int = 64, n_val: int = 32, batch_size: int = 8) -> tuple[Any, Any]:
    g = torch.Generator().manual_seed(0)
    w = torch.randn(4, 1, generator=g)

    def data(n: int) -> torch.utils.data.TensorDataset:
        x = torch.randn(n, 4, generator=g)
        return torch.utils.data.TensorDataset(x, torch.tanh(x @ w) + 0.3 * torch.randn(n, 1, generator=g))

    train = torch.utils.data.DataLoader(data(n_train), batch_size=batch_size, shuffle=False)
    return train, torch.utils.data.DataLoader(data(n_val), batch_size=batch_size)


def main(max_epochs: int = 8, root: str = "lightning_logs", **plateau: Any) -> Regression:
    torch.manual_seed(0)
    model = Regression(**plateau)
    trainer = pl.Trainer(
        max_epochs=max_epochs,
        accelerator="cpu",
        devices=1,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        default_root_dir=root,
    )
    train, val = loaders()
    trainer.fit(model, train, val)
    return model


if __name__ == "__main__":
    m = main()
    for epoch, metric in enumerate(m.reported):
        print(f"epoch {epoch}: val_loss {metric:.4f}")
    print(f"plateau cuts: {m.plateau.num_reductions}; last lr {m.seen[-1][1]:.5f}")
