"""PyTorch Lightning accepts lrkit's scheduler as any torch LRScheduler (``interval="step"``), gives the
LR asked for at every step, and resumes it from a checkpoint exactly."""

from __future__ import annotations

import importlib.util
import warnings
from pathlib import Path
from typing import Any

import lightning.pytorch as pl
import pytest
import torch

import lrkit
from lrkit.adapters.torch import EpochwiseSteppingWarning

SCHEDULE = lrkit.Warmup(4, start=0.0) >> lrkit.Linear(lr=1.0, end_lr=0.0)  # BERT-style, as a multiplier
TOTAL = 16
BASE = 0.05


class Tiny(pl.LightningModule):  # type: ignore[misc]
    def __init__(self) -> None:
        super().__init__()
        self.net = torch.nn.Linear(3, 1)
        self.seen: list[tuple[int, float]] = []

    def training_step(self, batch: Any, batch_idx: int) -> torch.Tensor:
        x, y = batch
        self.seen.append((self.global_step, self.optimizers().param_groups[0]["lr"]))
        return torch.nn.functional.mse_loss(self.net(x), y)

    def configure_optimizers(self) -> Any:
        opt = torch.optim.SGD(self.parameters(), lr=BASE)
        sched = lrkit.torch.scheduler(opt, SCHEDULE, total_steps=TOTAL, relative=True)
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}


def _loader() -> torch.utils.data.DataLoader[Any]:
    g = torch.Generator().manual_seed(0)
    x = torch.randn(32, 3, generator=g)
    return torch.utils.data.DataLoader(
        torch.utils.data.TensorDataset(x, x.sum(1, keepdim=True)), batch_size=4
    )


def _trainer(max_steps: int, root: Path, **kw: Any) -> Any:
    return pl.Trainer(
        max_steps=max_steps,
        accelerator="cpu",
        devices=1,
        logger=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        default_root_dir=str(root),
        **kw,
    )


def _expected(k: int) -> float:
    return BASE * SCHEDULE.resolve(total_steps=TOTAL)(k)


def test_lightning_trains_with_the_schedule_at_every_step(tmp_path: Path) -> None:
    model = Tiny()
    with warnings.catch_warnings():
        warnings.filterwarnings("error", message=r".*lr_scheduler\.step\(\)")
        _trainer(TOTAL, tmp_path, enable_checkpointing=False).fit(model, _loader())
    assert [k for k, _ in model.seen] == list(range(TOTAL))
    for k, lr in model.seen:
        assert lr == pytest.approx(_expected(k), rel=1e-12, abs=1e-15), k


def test_lightning_resume_from_checkpoint_continues_exactly(tmp_path: Path) -> None:
    first = Tiny()
    ckpt = pl.callbacks.ModelCheckpoint(
        dirpath=tmp_path, save_top_k=-1, every_n_train_steps=6, save_last=False
    )
    _trainer(6, tmp_path, callbacks=[ckpt]).fit(first, _loader())
    path = next(tmp_path.glob("*step=6*.ckpt"))

    resumed = Tiny()
    _trainer(TOTAL, tmp_path, enable_checkpointing=False).fit(resumed, _loader(), ckpt_path=str(path))
    assert [k for k, _ in resumed.seen] == list(range(6, TOTAL))
    for k, lr in resumed.seen:
        assert lr == pytest.approx(_expected(k), rel=1e-12, abs=1e-15), k


# -- the plateau recipe (examples/lightning_plateau.py) and epoch-wise stepping -------------------------
def _example() -> Any:
    path = Path(__file__).resolve().parents[1] / "examples" / "lightning_plateau.py"
    spec = importlib.util.spec_from_file_location("lightning_plateau_example", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _torch_plateau(metrics: list[float], **kw: Any) -> list[float]:
    """torch's ReduceLROnPlateau fed ``metrics``: the multiplier (from 1.0) after each."""
    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
    ref = torch.optim.lr_scheduler.ReduceLROnPlateau(opt, **kw)
    out = []
    for m in metrics:
        ref.step(m)
        out.append(opt.param_groups[0]["lr"])
    return out


@pytest.mark.parametrize(
    "plateau", [{"patience": 0, "threshold": 0.2}, {"patience": 1, "factor": 0.3, "threshold": 0.05}, {}]
)
def test_plateau_recipe_steps_per_step_and_cuts_per_epoch_on_the_val_metric(
    tmp_path: Path, plateau: dict[str, Any]
) -> None:
    example = _example()
    epochs = 6
    model = example.main(max_epochs=epochs, root=str(tmp_path), **plateau)
    per_epoch = 8  # 64 samples, batch 8
    n = epochs * per_epoch
    assert [k for k, _ in model.seen] == list(range(n))
    assert len(model.reported) == epochs  # one plateau decision per epoch, not per step
    kw = {"patience": 1, "factor": 0.5, **plateau}
    cuts = [1.0, *_torch_plateau(model.reported, **kw)]
    s = lrkit.parse(example.SCHEDULE).resolve(total_steps=n)
    for k, lr in model.seen:
        assert lr == pytest.approx(model.lr * s(k) * cuts[k // per_epoch], rel=1e-12), k
    if plateau.get("threshold") == 0.2:  # no epoch improves by 20%: cuts do happen
        assert model.plateau.num_reductions >= 2


class EpochWise(Tiny):
    """What LightningCLI's default configure_optimizers returns: ([optimizer], [scheduler]), stepped once
    per epoch."""

    def configure_optimizers(self) -> Any:
        opt = torch.optim.SGD(self.parameters(), lr=BASE)
        return [opt], [lrkit.torch.scheduler(opt, SCHEDULE, total_steps=TOTAL, relative=True)]


def test_epoch_wise_stepping_of_a_step_schedule_warns_once(tmp_path: Path) -> None:
    with pytest.warns(EpochwiseSteppingWarning, match=r"once for 8 optimizer steps") as record:
        _trainer(3 * 8, tmp_path, enable_checkpointing=False).fit(EpochWise(), _loader())
    assert sum(issubclass(w.category, EpochwiseSteppingWarning) for w in record) == 1
    # stepped per step (interval="step"), it stays silent
    with warnings.catch_warnings():
        warnings.simplefilter("error", EpochwiseSteppingWarning)
        _trainer(TOTAL, tmp_path, enable_checkpointing=False).fit(Tiny(), _loader())


# -- gradient accumulation and interval="epoch" ---------------------------------------------------------
class Counted(Tiny):
    """The LR of every optimizer step (a step pre-hook), on a schedule over estimated_stepping_batches."""

    def __init__(self, interval: str = "step", steps_per_epoch: int = 8, total: int | None = None) -> None:
        super().__init__()
        self.interval = interval
        self.steps_per_epoch = steps_per_epoch
        self.given_total = total
        self.used: list[float] = []

    def configure_optimizers(self) -> Any:
        opt = torch.optim.SGD(self.parameters(), lr=BASE)
        opt.register_step_pre_hook(lambda o, a, k: self.used.append(o.param_groups[0]["lr"]))
        self.total = self.given_total or self.trainer.estimated_stepping_batches
        epochwise = (
            {"interval": "epoch", "steps_per_epoch": self.steps_per_epoch} if self.interval == "epoch" else {}
        )
        self.sched = lrkit.torch.scheduler(opt, SCHEDULE, total_steps=self.total, relative=True, **epochwise)
        return {"optimizer": opt, "lr_scheduler": {"scheduler": self.sched, "interval": self.interval}}


def test_accumulate_grad_batches_one_schedule_step_per_optimizer_step(tmp_path: Path) -> None:
    """8 batches an epoch, accumulation 3: Lightning makes 3 updates an epoch (3 + 3 + 2), 9 in 3 epochs,
    which is what estimated_stepping_batches says; the k-th update uses schedule(k)."""
    model = Counted()
    trainer = pl.Trainer(
        max_epochs=3,
        accumulate_grad_batches=3,
        accelerator="cpu",
        logger=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        enable_checkpointing=False,
        default_root_dir=str(tmp_path),
    )
    trainer.fit(model, _loader())
    assert model.total == 9 and len(model.used) == 9 and model.sched.last_epoch == 9
    s = SCHEDULE.resolve(total_steps=9)
    assert model.used == pytest.approx([BASE * s(k) for k in range(9)], rel=1e-12, abs=1e-15)


def test_interval_epoch_refreshes_the_lr_once_per_epoch_from_the_step_schedule(tmp_path: Path) -> None:
    """``interval="epoch"`` with ``steps_per_epoch``: every step of epoch e uses schedule(8 e), silently."""
    model = Counted("epoch")
    with warnings.catch_warnings():
        warnings.simplefilter("error", EpochwiseSteppingWarning)
        _trainer(3 * 8, tmp_path, enable_checkpointing=False).fit(model, _loader())
    s = SCHEDULE.resolve(total_steps=24)
    assert model.sched.last_epoch == 3
    assert model.used == pytest.approx([BASE * s(8 * (k // 8)) for k in range(24)], rel=1e-12, abs=1e-15)


def _accumulating(epochs: int, root: Path, **kw: Any) -> Any:
    return pl.Trainer(
        max_epochs=epochs,
        accumulate_grad_batches=3,
        accelerator="cpu",
        logger=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        default_root_dir=str(root),
        **kw,
    )


@pytest.mark.parametrize("interval", ["step", "epoch"])
def test_resume_with_accumulation_continues_exactly(tmp_path: Path, interval: str) -> None:
    """accumulate_grad_batches=3 (3 updates an epoch of 8 batches), a run of 4 epochs stopped after 2 and
    resumed from its checkpoint: the updates after the resume use the LRs of the uninterrupted run."""
    whole = Counted(interval, steps_per_epoch=3, total=12)
    _accumulating(4, tmp_path, enable_checkpointing=False).fit(whole, _loader())
    ckpt = pl.callbacks.ModelCheckpoint(dirpath=tmp_path / "ckpt", save_top_k=-1, every_n_epochs=1)
    first = Counted(interval, steps_per_epoch=3, total=12)
    _accumulating(2, tmp_path, callbacks=[ckpt]).fit(first, _loader())
    second = Counted(interval, steps_per_epoch=3, total=12)
    path = tmp_path / "ckpt" / "epoch=1-step=6.ckpt"
    _accumulating(4, tmp_path, enable_checkpointing=False).fit(second, _loader(), ckpt_path=str(path))
    assert (
        len(whole.used) == 12
        and len(first.used) == 6
        and second.sched.last_epoch == (4 if interval == "epoch" else 12)
    )
    assert first.used + second.used == whole.used
