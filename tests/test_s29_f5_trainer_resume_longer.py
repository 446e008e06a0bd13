"""Resuming lrkit.transformers' Trainer into a longer run (2 epochs saved, 4 asked): the
ScheduleMismatchError raised inside ``train(resume_from_checkpoint=...)`` names the argument the Trainer's
user passes, ``Trainer(..., allow_schedule_change=True)``, not the scheduler API the Trainer calls for
them (``load_state_dict(..., allow_schedule_change=True)``, ``scheduler.allow_schedule_change``)."""

from __future__ import annotations

import os
import pickle
from pathlib import Path
from typing import Any

import pytest
import torch

os.environ.setdefault("HF_HUB_OFFLINE", "1")
transformers = pytest.importorskip("transformers")

import lrkit  # noqa: E402
from lrkit.adapters.torch import ScheduleMismatchError  # noqa: E402

pytestmark = [
    pytest.mark.usefixtures("one_torch_thread"),
    pytest.mark.filterwarnings("ignore::FutureWarning"),
]
SPEC = "warmup(10%) >> cosine(lr=1.0, min_lr=0.1)"


class Tiny(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.a = torch.nn.Linear(4, 8)
        self.b = torch.nn.Linear(8, 1)

    def forward(self, x: torch.Tensor, labels: torch.Tensor) -> dict[str, torch.Tensor]:
        out = self.b(torch.relu(self.a(x)))
        return {"loss": torch.nn.functional.mse_loss(out, labels), "logits": out}


class Data(torch.utils.data.Dataset[dict[str, torch.Tensor]]):
    def __len__(self) -> int:
        return 32

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        g = torch.Generator().manual_seed(i)
        return {"x": torch.randn(4, generator=g), "labels": torch.randn(1, generator=g)}


class MyTrainer(lrkit.transformers.Trainer):  # type: ignore[misc]
    pass


def _trainer(out: Path, epochs: int, allow: bool = False) -> Any:
    args = transformers.TrainingArguments(
        output_dir=str(out),
        num_train_epochs=epochs,
        per_device_train_batch_size=8,
        learning_rate=1e-3,
        report_to=[],
        save_strategy="epoch",
        use_cpu=True,
        disable_tqdm=True,
        logging_strategy="no",
    )
    return MyTrainer(
        model=Tiny(),
        args=args,
        train_dataset=Data(),
        schedule=SPEC,
        relative=True,
        allow_schedule_change=allow,
    )


def test_a_longer_resume_names_the_trainers_argument(tmp_path: Path) -> None:
    _trainer(tmp_path, 2).train()
    ckpt = tmp_path / "checkpoint-8"
    assert (ckpt / "scheduler.pt").is_file()
    with pytest.raises(ScheduleMismatchError) as info:
        _trainer(tmp_path, 4).train(resume_from_checkpoint=str(ckpt))
    text = str(info.value)
    assert text.startswith("load_state_dict: the state was saved with another schedule\n")
    assert "\n  saved: " in text and "total_steps=8" in text and "total_steps=16" in text  # both runs
    assert text.endswith("pass MyTrainer(..., allow_schedule_change=True)")
    assert "scheduler.allow_schedule_change" not in text
    assert "load_state_dict(state, allow_schedule_change=True)" not in text
    # the argument it names resumes the longer run from the saved step
    resumed = _trainer(tmp_path, 4, allow=True)
    resumed.train(resume_from_checkpoint=str(ckpt))
    assert resumed.state.global_step == 16 and resumed.lr_scheduler.last_epoch == 16


def test_the_trainers_scheduler_is_still_an_lrkit_scheduler_that_pickles(tmp_path: Path) -> None:
    trainer = _trainer(tmp_path, 1)
    trainer.create_optimizer_and_scheduler(num_training_steps=4)
    sched = trainer.lr_scheduler
    assert isinstance(sched, lrkit.torch.Scheduler)
    copy = pickle.loads(pickle.dumps(sched))
    assert copy.switch == "MyTrainer(..., allow_schedule_change=True)"
    state = sched.state_dict()
    copy.load_state_dict(state)  # the same schedule loads as before
    m = Tiny()
    groups = [{"params": m.a.parameters()}, {"params": m.b.parameters()}]  # as many as the Trainer's
    other = lrkit.torch.scheduler(torch.optim.SGD(groups, lr=1e-3), "constant(lr=1.0)", total_steps=4)
    with pytest.raises(ScheduleMismatchError, match=r"set scheduler\.allow_schedule_change"):
        other.load_state_dict(state)  # a scheduler of your own keeps its own advice
