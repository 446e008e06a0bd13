"""Hugging Face ``Trainer`` with an lrkit schedule, in one line:
``lrkit.transformers.Trainer(..., schedule=...)``.

A tiny randomly initialised BERT (built from its config, no download) learns a toy task on the CPU. The
schedule is a multiplier of ``args.learning_rate`` (``relative=True``); fractions resolve against the
number of optimizer updates the Trainer computes. ``Trainer`` logs the LR of every update.

Run: ``HF_HUB_OFFLINE=1 python examples/transformers_trainer.py``
"""

from __future__ import annotations

import os
import tempfile
from typing import Any

import torch
import transformers

import lrkit

os.environ.setdefault("HF_HUB_OFFLINE", "1")
SCHEDULE = "warmup(10%, start=0) >> cosine(lr=1.0, min_lr=0.1)"


class Parity(torch.utils.data.Dataset[dict[str, torch.Tensor]]):
    """Label: whether token 7 occurs an odd number of times in 8 random tokens."""

    def __init__(self, n: int, seed: int = 0) -> None:
        g = torch.Generator().manual_seed(seed)
        self.ids = torch.randint(1, 10, (n, 8), generator=g)
        self.labels = ((self.ids == 7).sum(1) % 2).long()

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        return {
            "input_ids": self.ids[i],
            "attention_mask": torch.ones(8, dtype=torch.long),
            "labels": self.labels[i],
        }


def main(max_steps: int = 40, output_dir: str | None = None) -> Any:
    torch.manual_seed(0)
    config = transformers.BertConfig(
        vocab_size=16,
        hidden_size=32,
        num_hidden_layers=1,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=16,
        num_labels=2,
    )
    args = transformers.TrainingArguments(
        output_dir=output_dir or tempfile.mkdtemp(prefix="lrkit_trainer_"),
        max_steps=max_steps,
        per_device_train_batch_size=16,
        learning_rate=3e-3,
        logging_steps=max(max_steps // 8, 1),
        report_to=[],
        save_strategy="no",
        use_cpu=True,
        disable_tqdm=True,
    )
    trainer = lrkit.transformers.Trainer(  # the one line: schedule= instead of lr_scheduler_type
        model=transformers.BertForSequenceClassification(config),
        args=args,
        train_dataset=Parity(640),
        schedule=SCHEDULE,
        relative=True,
    )
    trainer.train()
    return trainer


if __name__ == "__main__":
    t = main()
    for entry in t.state.log_history:
        if "learning_rate" in entry:
            print(f"step {entry['step']:3d}: lr {entry['learning_rate']:.2e}  loss {entry['loss']:.4f}")
