"""lrkit's scheduler given to transformers' Trainer: ``optimizers=(optimizer, scheduler)`` next to
``schedule=``, and a plateau that transformers does not feed (it feeds only torch's ReduceLROnPlateau)."""

from __future__ import annotations

import os
import warnings
from pathlib import Path
from typing import Any

import pytest
import torch

os.environ.setdefault("HF_HUB_OFFLINE", "1")
transformers = pytest.importorskip("transformers")

import lrkit  # noqa: E402
from lrkit.adapters.torch import UnfedPlateauWarning  # noqa: E402
from lrkit.control import Plateau  # noqa: E402

pytestmark = [
    pytest.mark.usefixtures("one_torch_thread"),
    pytest.mark.filterwarnings("ignore::FutureWarning"),
]


class Tiny(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.net = torch.nn.Linear(4, 1)

    def forward(self, x: torch.Tensor, labels: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        out = self.net(x)
        assert labels is not None
        return {"loss": torch.nn.functional.mse_loss(out, labels), "logits": out}


class Data(torch.utils.data.Dataset[dict[str, torch.Tensor]]):
    def __init__(self, n: int = 40) -> None:
        self.n = n

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        g = torch.Generator().manual_seed(i)
        return {"x": torch.randn(4, generator=g), "labels": torch.randn(1, generator=g)}


def _args(out: Path) -> Any:
    """20 updates, an evaluation every 4; the eval loss falls, so Plateau(mode="max") never sees a gain."""
    return transformers.TrainingArguments(
        output_dir=str(out),
        per_device_train_batch_size=4,
        learning_rate=1e-3,
        report_to=[],
        save_strategy="no",
        use_cpu=True,
        disable_tqdm=True,
        seed=0,
        max_steps=20,
        eval_strategy="steps",
        eval_steps=4,
        metric_for_best_model="loss",
        greater_is_better=True,
        logging_steps=1,
    )


def _parts() -> tuple[torch.nn.Module, torch.optim.Optimizer, Any]:
    model = Tiny()
    opt = torch.optim.SGD(model.parameters(), lr=1e-3)
    sched = lrkit.torch.scheduler(
        opt, "constant(lr=1e-3)", total_steps=20, plateau=Plateau(mode="max", patience=0, factor=0.5)
    )
    return model, opt, sched


def test_schedule_and_a_scheduler_in_optimizers_are_refused_naming_both(tmp_path: Path) -> None:
    model, opt, sched = _parts()
    with pytest.raises(ValueError) as info:
        lrkit.transformers.Trainer(
            model=model,
            args=_args(tmp_path),
            train_dataset=Data(),
            eval_dataset=Data(8),
            optimizers=(opt, sched),
            schedule="linear(lr=1e-3, end_lr=0)",
            plateau=Plateau(mode="max"),
        )
    msg = str(info.value)
    assert msg.startswith(
        "Trainer: got schedule= and plateau= together with a scheduler in optimizers=(optimizer, Scheduler)"
    )
    assert "ignore schedule= and plateau=" in msg and "optimizers=(optimizer, None)" in msg
    with pytest.raises(ValueError, match=r"got schedule= together with a scheduler"):
        lrkit.transformers.Trainer(
            model=model,
            args=_args(tmp_path),
            train_dataset=Data(),
            eval_dataset=Data(8),
            optimizers=(opt, sched),
            schedule="constant(lr=1e-3)",
        )


def test_a_plain_trainer_does_not_feed_the_plateau_and_it_says_so_at_the_end(tmp_path: Path) -> None:
    model, opt, sched = _parts()
    trainer = transformers.Trainer(
        model=model, args=_args(tmp_path), train_dataset=Data(), eval_dataset=Data(8), optimizers=(opt, sched)
    )
    with pytest.warns(UnfedPlateauWarning) as record:
        trainer.train()
    unfed = [w for w in record if issubclass(w.category, UnfedPlateauWarning)]
    assert len(unfed) == 1
    msg = str(unfed[0].message)
    assert (
        "the run has reached its last step (20, total_steps=20) and the plateau has not been given a "
        "metric yet" in msg
    )
    assert "lrkit.transformers.PlateauCallback(trainer)" in msg
    assert sched.plateau_cuts == [1.0]


def test_the_plateau_callback_feeds_a_plain_trainers_lrkit_scheduler(tmp_path: Path) -> None:
    """Evaluations at updates 4, 8, 12, 16, 20 (patience 0, never better): cuts after the 2nd, 3rd, 4th
    (the 5th comes after the last update), as lrkit.transformers.Trainer(plateau=...) does."""
    model, opt, sched = _parts()
    trainer = transformers.Trainer(
        model=model, args=_args(tmp_path), train_dataset=Data(), eval_dataset=Data(8), optimizers=(opt, sched)
    )
    trainer.add_callback(lrkit.transformers.PlateauCallback(trainer))
    with warnings.catch_warnings():
        warnings.simplefilter("error", UnfedPlateauWarning)
        trainer.train()
    assert sched.plateau is not None and sched.plateau.state_dict()["last_epoch"] == 5
    assert sched.plateau_cuts == [pytest.approx(0.5**4)]
    logged = {h["step"]: h["learning_rate"] for h in trainer.state.log_history if "learning_rate" in h}
    assert [logged[s] for s in (8, 12, 16, 20)] == pytest.approx([1e-3, 5e-4, 2.5e-4, 1.25e-4])

    mine = lrkit.transformers.Trainer(
        model=Tiny(),
        args=_args(tmp_path / "lrkit"),
        train_dataset=Data(),
        eval_dataset=Data(8),
        schedule="constant(lr=1e-3)",
        plateau=Plateau(mode="max", patience=0, factor=0.5),
    )
    mine.train()
    theirs = {h["step"]: h["learning_rate"] for h in mine.state.log_history if "learning_rate" in h}
    assert theirs == pytest.approx(logged)


def test_the_plateau_callback_refuses_a_trainer_without_an_lrkit_plateau(tmp_path: Path) -> None:
    model = Tiny()
    opt = torch.optim.SGD(model.parameters(), lr=1e-3)
    plain = lrkit.torch.scheduler(opt, "constant(lr=1e-3)", total_steps=20)
    trainer = transformers.Trainer(
        model=model, args=_args(tmp_path), train_dataset=Data(), eval_dataset=Data(8), optimizers=(opt, plain)
    )
    with pytest.raises(ValueError, match=r"PlateauCallback: the Trainer's scheduler is Scheduler .* not an "):
        lrkit.transformers.PlateauCallback(trainer)
    _, opt2, sched = _parts()
    wrong = transformers.Trainer(
        model=model,
        args=transformers.TrainingArguments(
            output_dir=str(tmp_path),
            use_cpu=True,
            report_to=[],
            eval_strategy="steps",
            eval_steps=4,
            metric_for_best_model="loss",
            greater_is_better=False,
        ),
        train_dataset=Data(),
        eval_dataset=Data(8),
        optimizers=(opt2, sched),
    )
    with pytest.raises(
        ValueError, match=r"Plateau\(mode='max'\) watches 'eval_loss', but args.greater_is_better=False"
    ):
        lrkit.transformers.PlateauCallback(wrong)
