"""An lrkit spec in Hugging Face ``Trainer`` in one line (``lrkit.transformers.Trainer(..., schedule=...)``),
run for a few steps on CPU with a tiny randomly initialised BERT (built from a config: no download).

Reference: the spec's closed form ``schedule(k)`` (times ``args.learning_rate`` when relative) at each
optimizer update ``k``, read from the optimizer by a callback just before each update and from the LRs
the Trainer logged; and for fractions, transformers' own ``get_linear_schedule_with_warmup``.
"""

from __future__ import annotations

import importlib.util
import os
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
LR = 1e-3


class Tokens(torch.utils.data.Dataset[dict[str, torch.Tensor]]):
    def __init__(self, n: int) -> None:
        g = torch.Generator().manual_seed(0)
        self.ids = torch.randint(1, 50, (n, 8), generator=g)
        self.labels = torch.randint(0, 2, (n,), generator=g)

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        return {
            "input_ids": self.ids[i],
            "attention_mask": torch.ones(8, dtype=torch.long),
            "labels": self.labels[i],
        }


def _model() -> Any:
    torch.manual_seed(0)
    config = transformers.BertConfig(
        vocab_size=50,
        hidden_size=16,
        num_hidden_layers=1,
        num_attention_heads=2,
        intermediate_size=32,
        max_position_embeddings=16,
        num_labels=2,
    )
    return transformers.BertForSequenceClassification(config)


class SeenLRs(transformers.TrainerCallback):  # type: ignore[misc]
    """The optimizer's LR just before each update (on_pre_optimizer_step)."""

    def __init__(self) -> None:
        self.lrs: list[float] = []

    def on_pre_optimizer_step(self, args: Any, state: Any, control: Any, **kw: Any) -> None:
        self.lrs.append(self.optimizer.param_groups[0]["lr"])

    def on_train_begin(self, args: Any, state: Any, control: Any, **kw: Any) -> None:
        self.optimizer = kw["optimizer"]


def _args(out: Path, **kw: Any) -> Any:
    base: dict[str, Any] = dict(
        output_dir=str(out),
        per_device_train_batch_size=2,
        learning_rate=LR,
        logging_steps=1,
        report_to=[],
        save_strategy="no",
        use_cpu=True,
        disable_tqdm=True,
        seed=0,
    )
    return transformers.TrainingArguments(**{**base, **kw})


def _train(out: Path, schedule: str, relative: bool, **kw: Any) -> tuple[Any, SeenLRs]:
    seen = SeenLRs()
    n = kw.pop("n", 24)
    trainer = lrkit.transformers.Trainer(
        model=_model(),
        args=_args(out, **kw),
        train_dataset=Tokens(n),
        callbacks=[seen],
        schedule=schedule,
        relative=relative,
    )
    trainer.train()
    return trainer, seen


def _logged(trainer: Any) -> list[float]:
    return [e["learning_rate"] for e in trainer.state.log_history if "learning_rate" in e]


@pytest.mark.parametrize(
    ("schedule", "relative", "kw"),
    [
        ("warmup(3, start=0.1) >> cosine(lr=1.0, min_lr=0.1)", True, {"max_steps": 10}),
        ("warmup(25%) >> linear(lr=2e-3, end_lr=0)", False, {"num_train_epochs": 2}),
        ("constant(lr=1.0, steps=1ep) >> exponential(lr=0.5, gamma=0.8)", True, {"num_train_epochs": 2}),
        ("one_cycle(max_lr=3e-3)", False, {"max_steps": 9, "gradient_accumulation_steps": 2}),
    ],
)
def test_trainer_applies_the_closed_form_at_every_update(
    tmp_path: Path, schedule: str, relative: bool, kw: dict[str, Any]
) -> None:
    trainer, seen = _train(tmp_path, schedule, relative, **kw)
    n = trainer.state.global_step
    assert isinstance(trainer.lr_scheduler, lrkit.torch.Scheduler) and trainer.lr_scheduler.last_epoch == n
    per_epoch = 24 // 2 // kw.get("gradient_accumulation_steps", 1)
    s = lrkit.parse(schedule).resolve(total_steps=n, steps_per_epoch=per_epoch)
    want = [float(s(k)) * (LR if relative else 1.0) for k in range(n)]
    assert len(seen.lrs) == n
    assert seen.lrs == pytest.approx(want, rel=1e-12, abs=1e-18)
    assert _logged(trainer) == pytest.approx(want, rel=1e-12, abs=1e-18)  # what Trainer logged


def test_a_fraction_warmup_matches_transformers_linear_schedule(tmp_path: Path) -> None:
    """``warmup(20%, start=0) >> linear(lr=1.0, end_lr=0)`` relative is transformers' linear schedule with
    warmup_ratio=0.2 where 20% of the run is a whole number of steps (10 steps: warmup 2)."""
    _, seen = _train(tmp_path, "warmup(20%, start=0) >> linear(lr=1.0, end_lr=0)", True, max_steps=10)
    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=LR)
    ref = transformers.get_linear_schedule_with_warmup(opt, num_warmup_steps=2, num_training_steps=10)
    want = []
    for _ in range(10):
        want.append(opt.param_groups[0]["lr"])
        opt.step()
        ref.step()
    assert seen.lrs == pytest.approx(want, rel=1e-12, abs=1e-18)


def test_resume_from_a_trainer_checkpoint_continues_and_refuses_another_schedule(tmp_path: Path) -> None:
    spec = "warmup(2) >> cosine(lr=1.0, min_lr=0.0)"
    kw: dict[str, Any] = dict(max_steps=8, save_strategy="steps", save_steps=4)
    whole, _ = _train(tmp_path / "a", spec, True, **kw)
    ckpt = tmp_path / "a" / "checkpoint-4"
    assert (ckpt / "scheduler.pt").is_file()

    seen = SeenLRs()
    resumed = lrkit.transformers.Trainer(
        model=_model(),
        args=_args(tmp_path / "b", **kw),
        train_dataset=Tokens(24),
        callbacks=[seen],
        schedule=spec,
        relative=True,
    )
    resumed.train(resume_from_checkpoint=str(ckpt))
    assert seen.lrs == pytest.approx(_logged(whole)[4:], rel=1e-12, abs=1e-18)

    other = lrkit.transformers.Trainer(
        model=_model(),
        args=_args(tmp_path / "c", **kw),
        train_dataset=Tokens(24),
        schedule="constant(lr=1.0)",
        relative=True,
    )
    with pytest.raises(ScheduleMismatchError, match="saved with another schedule"):
        other.train(resume_from_checkpoint=str(ckpt))


def test_with_schedule_for_another_trainer_class_and_the_warmup_args_warning(tmp_path: Path) -> None:
    class MyTrainer(transformers.Trainer):  # type: ignore[misc]
        pass

    cls = lrkit.transformers.with_schedule(MyTrainer)
    assert issubclass(cls, MyTrainer) and lrkit.transformers.with_schedule(MyTrainer) is cls
    seen = SeenLRs()
    trainer = cls(
        model=_model(),
        args=_args(tmp_path, max_steps=4, warmup_steps=2),
        train_dataset=Tokens(8),
        callbacks=[seen],
        schedule="linear(lr=1e-3, end_lr=0)",
    )
    with pytest.warns(UserWarning, match=r"warmup_steps=2.*not used"):
        trainer.train()
    assert seen.lrs == pytest.approx([1e-3, 7.5e-4, 5e-4, 2.5e-4], rel=1e-12)
    with pytest.raises(TypeError, match=r"transformers\.Trainer subclass"):
        lrkit.transformers.with_schedule(dict)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="allow_schedule_change must be True or False, got 'yes'"):
        lrkit.transformers.Trainer(
            model=_model(),
            args=_args(tmp_path),
            schedule="constant(lr=1e-3)",
            allow_schedule_change="yes",  # type: ignore[arg-type]
        )
    with pytest.raises(TypeError, match="schedule must be"):
        lrkit.transformers.Trainer(model=_model(), args=_args(tmp_path), schedule=0.1)  # type: ignore[arg-type]


def test_the_trainer_example_runs_and_logs_the_closed_form(tmp_path: Path) -> None:
    path = Path(__file__).resolve().parents[1] / "examples" / "transformers_trainer.py"
    spec = importlib.util.spec_from_file_location("transformers_trainer_example", path)
    assert spec is not None and spec.loader is not None
    example = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(example)
    trainer = example.main(max_steps=8, output_dir=str(tmp_path))
    s = lrkit.parse(example.SCHEDULE).resolve(total_steps=8)
    logged = [(e["step"], e["learning_rate"]) for e in trainer.state.log_history if "learning_rate" in e]
    assert [k for k, _ in logged] == list(range(1, 9))
    assert [lr for _, lr in logged] == pytest.approx([3e-3 * float(s(k - 1)) for k, _ in logged], rel=1e-12)


class EpochEnds(SeenLRs):
    """Also the update count at the end of every epoch: the Trainer's own updates per epoch."""

    def __init__(self) -> None:
        super().__init__()
        self.epoch_ends: list[int] = []

    def on_epoch_end(self, args: Any, state: Any, control: Any, **kw: Any) -> None:
        self.epoch_ends.append(state.global_step)


def test_an_epoch_is_the_updates_the_trainer_makes_in_one_epoch_with_a_short_last_accumulation(
    tmp_path: Path,
) -> None:
    """12 batches, accumulation 5: the Trainer makes 3 updates an epoch (5 + 5 + 2 micro-batches), so
    ``1ep`` is 3 updates (counted as ``12 // 5 = 2`` it ended an update early)."""
    seen = EpochEnds()
    trainer = lrkit.transformers.Trainer(
        model=_model(),
        args=_args(tmp_path, num_train_epochs=2, gradient_accumulation_steps=5),
        train_dataset=Tokens(24),
        callbacks=[seen],
        schedule="constant(lr=1.0, steps=1ep) >> exponential(lr=0.5, gamma=0.8)",
        relative=True,
    )
    trainer.train()
    assert seen.epoch_ends == [3, 6]
    assert seen.lrs == pytest.approx([LR, LR, LR, 0.5 * LR, 0.4 * LR, 0.32 * LR], rel=1e-12)


@pytest.mark.parametrize(
    ("kind", "warmup", "spec", "kw"),
    [
        ("linear", 0.1, "warmup(10%, start=0) >> linear(lr=1.0, end_lr=0)", {"max_steps": 13}),
        (
            "cosine",
            0.2,
            "warmup(20%, start=0) >> cosine(lr=1.0, min_lr=0)",
            {"num_train_epochs": 3, "gradient_accumulation_steps": 5},
        ),
        ("cosine", 2, "warmup(2, start=0) >> cosine(lr=1.0, min_lr=0)", {"num_train_epochs": 1.5}),
    ],
)
def test_the_spec_of_a_transformers_schedule_gives_the_lrs_of_transformers_own_trainer(
    tmp_path: Path, kind: str, warmup: float, spec: str, kw: dict[str, Any]
) -> None:
    """The reference is transformers' own Trainer (``lr_scheduler_type``, ``warmup_steps``: a count, or a
    fraction of the run rounded up) on the same data, model and arguments: same LR before every update."""
    ref_seen = SeenLRs()
    ref = transformers.Trainer(
        model=_model(),
        args=_args(tmp_path / "ref", lr_scheduler_type=kind, warmup_steps=warmup, **kw),
        train_dataset=Tokens(24),
        callbacks=[ref_seen],
    )
    ref.train()
    trainer, seen = _train(tmp_path / "lrkit", spec, True, **kw)
    assert trainer.state.global_step == ref.state.global_step
    assert seen.lrs == pytest.approx(ref_seen.lrs, rel=1e-12, abs=1e-18)
    assert _logged(trainer) == pytest.approx(_logged(ref), rel=1e-12, abs=1e-18)


def test_epochs_in_the_schedule_with_data_of_unknown_length_is_a_clear_error(tmp_path: Path) -> None:
    class Stream(torch.utils.data.IterableDataset[dict[str, torch.Tensor]]):
        def __iter__(self) -> Any:
            data = Tokens(24)
            return (data[i] for i in range(len(data)))

    trainer = lrkit.transformers.Trainer(
        model=_model(),
        args=_args(tmp_path, max_steps=6),
        train_dataset=Stream(),
        schedule="constant(lr=1e-3, steps=1ep) >> constant(lr=1e-4)",
    )
    with pytest.raises(ValueError, match=r"counts epochs.*no length"):
        trainer.train()


def test_a_plateau_is_fed_the_eval_metric_as_transformers_feeds_its_reduce_lr_on_plateau(
    tmp_path: Path,
) -> None:
    """``plateau=Plateau(...)`` on a constant schedule is transformers' own
    ``lr_scheduler_type="reduce_lr_on_plateau"`` with the same settings: the eval loss of every evaluation
    during training is reported, and the LRs before every update are equal (cuts included)."""
    from lrkit.control import Plateau

    rule = {"patience": 0, "factor": 0.5, "threshold": 0.002}
    kw: dict[str, Any] = dict(max_steps=12, eval_strategy="steps", eval_steps=2)
    ref_seen = SeenLRs()
    ref = transformers.Trainer(
        model=_model(),
        args=_args(
            tmp_path / "ref", lr_scheduler_type="reduce_lr_on_plateau", lr_scheduler_kwargs=rule, **kw
        ),
        train_dataset=Tokens(24),
        eval_dataset=Tokens(8),
        callbacks=[ref_seen],
    )
    ref.train()
    seen = SeenLRs()
    plateau = Plateau(**rule)
    trainer = lrkit.transformers.Trainer(
        model=_model(),
        args=_args(tmp_path / "lrkit", **kw),
        train_dataset=Tokens(24),
        eval_dataset=Tokens(8),
        callbacks=[seen],
        schedule="constant(lr=1.0)",
        relative=True,
        plateau=plateau,
    )
    trainer.train()
    assert plateau.last_epoch == 6 and plateau.num_reductions >= 2, plateau.num_reductions
    assert seen.lrs == pytest.approx(ref_seen.lrs, rel=1e-12)
    assert min(seen.lrs) < LR / 2  # cuts happened during the run


def test_a_plateau_without_evaluation_or_with_the_wrong_mode_is_refused(tmp_path: Path) -> None:
    from lrkit.control import Plateau

    common: dict[str, Any] = dict(model=_model(), train_dataset=Tokens(8), schedule="constant(lr=1e-3)")
    with pytest.raises(ValueError, match="eval_strategy='no'"):
        lrkit.transformers.Trainer(args=_args(tmp_path, max_steps=2), plateau=Plateau(), **common)
    args = _args(tmp_path, max_steps=2, eval_strategy="steps", metric_for_best_model="accuracy")
    with pytest.raises(ValueError, match=r"greater_is_better=True: pass Plateau\(mode='max'\)"):
        lrkit.transformers.Trainer(args=args, plateau=Plateau(), eval_dataset=Tokens(4), **common)
    trainer = lrkit.transformers.Trainer(
        args=args, plateau=Plateau(mode="max"), eval_dataset=Tokens(4), **common
    )
    with pytest.raises(ValueError, match=r"watches 'eval_accuracy'.*'eval_loss'"):
        trainer.train()
    with pytest.raises(TypeError, match=r"plateau must be an lrkit\.control\.Plateau"):
        lrkit.transformers.Trainer(args=_args(tmp_path), plateau="min", **common)  # type: ignore[arg-type]


def test_a_schedule_longer_than_the_run_is_warned_about_as_the_run_was_given(tmp_path: Path) -> None:
    """The Trainer's num_training_steps is the run: a schedule outlasting it warns (as lrkit.torch), naming
    num_training_steps (it said total_steps, which the user never gave)."""
    with pytest.warns(lrkit.schedules.ScheduleLongerThanRunWarning) as seen:
        _train(tmp_path, "cosine(lr=0.001, steps=100)", False, max_steps=4)
    (w,) = [w for w in seen if issubclass(w.category, lrkit.schedules.ScheduleLongerThanRunWarning)]
    assert str(w.message).startswith(
        "lrkit.transformers: 'cosine(lr=0.001, steps=100)' lasts 100 steps, more than num_training_steps=4: "
    )
    assert "total_steps" not in str(w.message)
