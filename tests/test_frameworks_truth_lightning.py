"""Lightning's ``{"interval": "epoch", "monitor": ..., "reduce_on_plateau": True}`` with an lrkit scheduler
(``interval="epoch"``, a plateau), resumed with ``trainer.fit(ckpt_path=...)``.

Lightning saves an epoch's checkpoint during its validation, before it steps a plateau scheduler with
the validation metric, and, resuming, skips that epoch's step (the metric is not in the checkpoint). lrkit's
schedule advances in that step, so the resumed run was one epoch behind for the rest of training: the
state saved then says the epoch is done (``epoch_pending``), and a resume starts one epoch on."""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import pytest
import torch

pl = pytest.importorskip("lightning.pytorch")

import lrkit  # noqa: E402

pytestmark = pytest.mark.usefixtures("one_torch_thread")

VALS = [1.0, 0.9, 0.95, 0.95, 0.95, 0.8, 0.85, 0.85]
EPOCHS = 8
PER_EPOCH = 4


class Model(pl.LightningModule):  # type: ignore[misc]
    def __init__(self, plateau: bool) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.net = torch.nn.Linear(4, 1)
        self.plateau = plateau
        self.seen: dict[int, tuple[int, float]] = {}  # epoch -> (scheduler step, lr) at its first batch

    def training_step(self, batch: Any, batch_idx: int) -> torch.Tensor:
        if batch_idx == 0:
            sched = self.lr_schedulers()
            self.seen[self.current_epoch] = (sched.last_epoch, self.optimizers().param_groups[0]["lr"])
        x, y = batch
        return torch.nn.functional.mse_loss(self.net(x), y)

    def validation_step(self, batch: Any, batch_idx: int) -> None:
        self.log("val_loss", torch.tensor(VALS[self.current_epoch]))

    def configure_optimizers(self) -> Any:
        opt = torch.optim.SGD(self.parameters(), lr=0.1)
        plateau = lrkit.control.Plateau(patience=1, factor=0.5) if self.plateau else None
        sched = lrkit.torch.scheduler(
            opt,
            "cosine(lr=0.1, min_lr=0.01)",
            steps_per_epoch=PER_EPOCH,
            epochs=EPOCHS,
            interval="epoch",
            plateau=plateau,
        )
        config: dict[str, Any] = {"scheduler": sched, "interval": "epoch"}
        if self.plateau:
            config.update(monitor="val_loss", reduce_on_plateau=True)
        return {"optimizer": opt, "lr_scheduler": config}


def _loader() -> torch.utils.data.DataLoader[Any]:
    g = torch.Generator().manual_seed(0)
    data = torch.utils.data.TensorDataset(torch.randn(32, 4, generator=g), torch.randn(32, 1, generator=g))
    return torch.utils.data.DataLoader(data, batch_size=8)


def _fit(root: Path, plateau: bool, ckpt: Path | None = None, **checkpointing: Any) -> Model:
    model = Model(plateau)
    callbacks = (
        [pl.callbacks.ModelCheckpoint(dirpath=root, save_top_k=-1, **checkpointing)] if checkpointing else []
    )
    trainer = pl.Trainer(
        max_epochs=EPOCHS,
        accelerator="cpu",
        devices=1,
        logger=False,
        enable_checkpointing=bool(checkpointing),
        callbacks=callbacks,
        enable_progress_bar=False,
        enable_model_summary=False,
        num_sanity_val_steps=0,
        default_root_dir=str(root),
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # Lightning's notes on workers and the like
        trainer.fit(model, _loader(), _loader(), ckpt_path=None if ckpt is None else str(ckpt))
    return model


def test_epoch_plateau_scheduler_resumed_from_an_epoch_checkpoint_is_not_an_epoch_behind(
    tmp_path: Path,
) -> None:
    full = _fit(tmp_path, True, every_n_epochs=1)
    assert [full.seen[e][0] for e in range(EPOCHS)] == list(range(EPOCHS))
    ckpt = next(tmp_path.glob("epoch=3-*.ckpt"))
    state = torch.load(ckpt, weights_only=False)["lr_schedulers"][0]
    assert state["last_epoch"] == 3 and state["epoch_pending"] is True  # saved before epoch 3's step
    resumed = _fit(tmp_path / "resumed", True, ckpt)
    # the schedule goes on where the full run's did (it was at 3, 4, 5, 6: one epoch behind)
    assert {e: s for e, (s, _) in resumed.seen.items()} == {e: e for e in range(4, EPOCHS)}
    # epoch 3's metric is lost (as torch's ReduceLROnPlateau loses it): its cut comes one epoch later,
    # and from then on the LRs are the full run's
    cosine = lrkit.parse("cosine(lr=0.1, min_lr=0.01)").resolve(total_steps=EPOCHS * PER_EPOCH)
    assert resumed.seen[4][1] == pytest.approx(cosine(4 * PER_EPOCH), rel=1e-12)
    assert full.seen[4][1] == pytest.approx(cosine(4 * PER_EPOCH) / 2, rel=1e-12)
    assert [resumed.seen[e][1] for e in range(5, EPOCHS)] == pytest.approx(
        [full.seen[e][1] for e in range(5, EPOCHS)], rel=1e-12
    )


def test_checkpoints_inside_an_epoch_and_on_its_last_batch(tmp_path: Path) -> None:
    """Every 3 training steps (4 an epoch). Without a plateau, Lightning steps an epoch scheduler right
    after an epoch's last batch, before any checkpoint: all resume exactly. With one, Lightning skips the
    first epoch-end update after a restart: resumed inside an epoch (steps 6, 15), the schedule stays one
    epoch behind (as documented); resumed from the last batch of epoch 2 (step 12, saved before the
    epoch's update, ``epoch_pending``), epoch 3 is where it should be and then one behind (it was 2
    epochs behind)."""
    exact = _fit(tmp_path / "no-plateau", False, every_n_train_steps=3)
    for steps in (6, 12, 15):
        ckpt = next((tmp_path / "no-plateau").glob(f"*-step={steps}.ckpt"))
        resumed = _fit(tmp_path / f"no-plateau-{steps}", False, ckpt)
        assert resumed.seen and resumed.seen == {e: exact.seen[e] for e in resumed.seen}, steps

    def steps_of(model: Model) -> dict[int, int]:
        return {e: s for e, (s, _) in model.seen.items()}

    assert steps_of(_fit(tmp_path / "plateau", True, every_n_train_steps=3)) == {e: e for e in range(EPOCHS)}
    lags = {}
    for steps in (6, 12, 15):
        ckpt = next((tmp_path / "plateau").glob(f"*-step={steps}.ckpt"))
        lags[steps] = {e: e - s for e, s in steps_of(_fit(tmp_path / f"plateau-{steps}", True, ckpt)).items()}
    assert lags == {
        6: {2: 1, 3: 1, 4: 1, 5: 1, 6: 1, 7: 1},
        12: {3: 0, 4: 1, 5: 1, 6: 1, 7: 1},
        15: {4: 1, 5: 1, 6: 1, 7: 1},
    }


def test_without_a_plateau_epoch_checkpoints_resume_exactly(tmp_path: Path) -> None:
    full = _fit(tmp_path, False, every_n_epochs=1)
    state = torch.load(next(tmp_path.glob("epoch=3-*.ckpt")), weights_only=False)["lr_schedulers"][0]
    assert state["last_epoch"] == 4 and "epoch_pending" not in state
    resumed = _fit(tmp_path / "resumed", False, next(tmp_path.glob("epoch=3-*.ckpt")))
    assert resumed.seen == {e: full.seen[e] for e in range(4, EPOCHS)}


class Recipe(pl.LightningModule):  # type: ignore[misc]
    """examples/lightning_plateau.py's recipe: ``"interval": "step"`` and ``report()`` after validation."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.net = torch.nn.Linear(4, 1)
        self.seen: dict[int, float] = {}  # global step -> lr

    def training_step(self, batch: Any, batch_idx: int) -> torch.Tensor:
        self.seen[self.global_step] = self.optimizers().param_groups[0]["lr"]
        x, y = batch
        return torch.nn.functional.mse_loss(self.net(x), y)

    def validation_step(self, batch: Any, batch_idx: int) -> None:
        self.log("val_loss", torch.tensor(VALS[self.current_epoch]))

    def on_validation_epoch_end(self) -> None:
        if not self.trainer.sanity_checking:
            self.lr_schedulers().report(self.trainer.callback_metrics["val_loss"])

    def configure_optimizers(self) -> Any:
        opt = torch.optim.SGD(self.parameters(), lr=0.1)
        sched = lrkit.torch.scheduler(
            opt,
            "cosine(lr=0.1, min_lr=0.01)",
            total_steps=EPOCHS * PER_EPOCH,
            plateau=lrkit.control.Plateau(patience=1, factor=0.5),
        )
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}


def test_the_recipe_resumes_exactly_from_epoch_and_mid_epoch_checkpoints(tmp_path: Path) -> None:
    """What the guide says of the recipe: from an epoch's checkpoint or one inside an epoch, every LR of
    the uninterrupted run. From one on an epoch's last batch (step 12, before that epoch's validation,
    which Lightning does not run again), the schedule is on its steps but that validation's metric is
    lost: a cut comes one epoch later (LRs 2x the full run's in epoch 4, steps 16-19), then the LRs are
    the full run's."""

    def fit(root: Path, ckpt: Path | None = None, **checkpointing: Any) -> Recipe:
        model = Recipe()
        trainer = pl.Trainer(
            max_epochs=EPOCHS,
            accelerator="cpu",
            devices=1,
            logger=False,
            enable_checkpointing=bool(checkpointing),
            callbacks=[pl.callbacks.ModelCheckpoint(dirpath=root, save_top_k=-1, **checkpointing)]
            if checkpointing
            else [],
            enable_progress_bar=False,
            enable_model_summary=False,
            num_sanity_val_steps=0,
            default_root_dir=str(root),
        )
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            trainer.fit(model, _loader(), _loader(), ckpt_path=None if ckpt is None else str(ckpt))
        return model

    full = fit(tmp_path / "epochs", every_n_epochs=1)
    fit(tmp_path / "steps", every_n_train_steps=3)
    assert len(full.seen) == EPOCHS * PER_EPOCH and min(full.seen.values()) < 0.02  # cut, and decayed
    for ckpt in [next((tmp_path / "epochs").glob("epoch=3-*.ckpt"))] + [
        next((tmp_path / "steps").glob(f"*-step={n}.ckpt")) for n in (6, 15)
    ]:
        resumed = fit(tmp_path / f"resumed-{ckpt.parent.name}-{ckpt.stem}", ckpt)
        assert resumed.seen and resumed.seen == {k: full.seen[k] for k in resumed.seen}, ckpt.name
    last_batch = fit(tmp_path / "resumed-12", next((tmp_path / "steps").glob("*-step=12.ckpt")))
    ratios = {k: round(v / full.seen[k], 12) for k, v in last_batch.seen.items()}
    assert ratios == {k: 2.0 if 16 <= k < 20 else 1.0 for k in range(12, EPOCHS * PER_EPOCH)}
