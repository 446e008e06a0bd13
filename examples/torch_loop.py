"""An ordinary PyTorch training loop driven by an lrkit schedule, with reduce-on-plateau on top and a
checkpoint/resume in the middle. Runs in a few seconds on a CPU.

    python examples/torch_loop.py
"""

from __future__ import annotations

import io

import torch

import lrkit
from lrkit.control import Plateau

EPOCHS, BATCH = 10, 32
torch.manual_seed(0)
x = torch.randn(1024, 8)
y = x @ torch.randn(8, 1) + 0.1 * torch.randn(1024, 1)
train = torch.utils.data.DataLoader(
    torch.utils.data.TensorDataset(x[:768], y[:768]), batch_size=BATCH, shuffle=True
)
x_val, y_val = x[768:], y[768:]


def build() -> tuple[torch.nn.Module, torch.optim.Optimizer, lrkit.torch.Scheduler]:
    model = torch.nn.Sequential(torch.nn.Linear(8, 32), torch.nn.ReLU(), torch.nn.Linear(32, 1))
    # discriminative LRs: the head learns 10x faster; the schedule is a multiplier of each group's lr
    optimizer = torch.optim.AdamW(
        [{"params": model[0].parameters(), "lr": 3e-3}, {"params": model[2].parameters(), "lr": 3e-2}]
    )
    schedule = lrkit.parse("warmup(10%) >> cosine(lr=1.0, min_lr=0.01)")
    scheduler = lrkit.torch.scheduler(
        optimizer,
        schedule,
        epochs=EPOCHS,
        steps_per_epoch=len(train),
        relative=True,
        plateau=Plateau(patience=1, factor=0.5),  # cuts on top of the cosine when validation stalls
    )
    return model, optimizer, scheduler


def train_epochs(
    model: torch.nn.Module, optimizer: torch.optim.Optimizer, scheduler: lrkit.torch.Scheduler, epochs: range
) -> None:
    for epoch in epochs:
        for xb, yb in train:
            loss = torch.nn.functional.mse_loss(model(xb), yb)
            loss.backward()
            optimizer.step()
            optimizer.zero_grad()
            scheduler.step()  # after optimizer.step(), as with any torch scheduler
        with torch.no_grad():
            val = torch.nn.functional.mse_loss(model(x_val), y_val).item()
        cut = scheduler.report(val)
        lrs = ", ".join(f"{lr:.2e}" for lr in scheduler.get_last_lr())
        note = "  (plateau cut)" if cut else ""
        print(f"epoch {epoch}  step {scheduler.last_epoch:4d}  val {val:.4f}  lr [{lrs}]{note}")


model, optimizer, scheduler = build()
train_epochs(model, optimizer, scheduler, range(5))

# checkpoint: the scheduler's state is a step counter, base LRs and controller state (a few numbers)
buf = io.BytesIO()
torch.save({"model": model.state_dict(), "opt": optimizer.state_dict(), "sched": scheduler.state_dict()}, buf)
print("scheduler state:", scheduler.state_dict())

# resume in a "new process": fresh objects, then the state; the LRs continue exactly
buf.seek(0)
ckpt = torch.load(buf, weights_only=True)
model, optimizer, scheduler = build()
model.load_state_dict(ckpt["model"])
optimizer.load_state_dict(ckpt["opt"])
scheduler.load_state_dict(ckpt["sched"])
train_epochs(model, optimizer, scheduler, range(5, EPOCHS))
