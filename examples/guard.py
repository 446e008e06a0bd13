"""The divergence guard: a learning rate that is too large for this model, caught and cut.

Without the guard the loss of this MLP goes to inf/NaN within a few dozen steps. With it, each blow-up
rolls the model, optimizer, scheduler and RNG back to the last good snapshot, halves the LR (on top of
the schedule) and replays the same batches; the run ends finite and is a legitimate run: it trained
normally to the snapshot and went on with the lower LR. Runs in a second or two on a CPU.

    python examples/guard.py
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F

import lrkit
from lrkit.control.guard import DivergenceGuard

STEPS, BATCH = 300, 32
gen = torch.Generator().manual_seed(0)
x = torch.randn(1024, 8, generator=gen)
y = torch.sin(x @ torch.randn(8, 1, generator=gen) / 3) + 0.1 * torch.randn(1024, 1, generator=gen)
order = np.random.default_rng(0).permutation(1024)  # the data order: by step, not from the torch RNG


def batch(step: int) -> tuple[torch.Tensor, torch.Tensor]:
    i = torch.as_tensor(order[(step * BATCH) % 1024 :][:BATCH])
    return x[i], y[i]


def build() -> tuple[torch.nn.Module, torch.optim.Optimizer, lrkit.torch.Scheduler]:
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(8, 64), torch.nn.ReLU(), torch.nn.Linear(64, 1))
    optimizer = torch.optim.SGD(model.parameters(), lr=0.8, momentum=0.9)  # 0.8 is far too much here
    schedule = lrkit.parse("warmup(20) >> cosine(lr=0.8, min_lr=0.01)")
    return model, optimizer, lrkit.torch.scheduler(optimizer, schedule, total_steps=STEPS)


# 1. no guard
model, optimizer, scheduler = build()
for step in range(STEPS):
    loss = F.mse_loss(model(batch(step)[0]), batch(step)[1])
    if not math.isfinite(loss.item()):
        print(f"without the guard: loss {loss.item()} at step {step}")
        break
    loss.backward()
    optimizer.step()
    scheduler.step()
    optimizer.zero_grad()

# 2. the same run, guarded: check the loss before optimizer.step(), replay from the snapshot
model, optimizer, scheduler = build()
guard = DivergenceGuard(model, optimizer, scheduler, factor=0.5, threshold=10.0, snapshot_every=10)
step = 0
while step < STEPS:
    xb, yb = batch(step)
    loss = F.mse_loss(model(xb), yb)
    loss.backward()
    if guard.check(loss, step):
        optimizer.step()
        scheduler.step()
        step += 1
    else:
        step = guard.resume_step or 0
    optimizer.zero_grad()

for k, e in enumerate(guard.events, start=1):  # each cut multiplies the schedule by factor once more
    print(
        f"step {e.step:3d}: loss {e.loss:.3g} ({e.reason}) at lr {e.lr_before[0]:.3g}; rolled back to step "
        f"{e.snapshot_step}, which resumes at lr {e.lr_after[0]:.3g} (the schedule's LR there x {0.5**k:g})"
    )
with torch.no_grad():
    final = F.mse_loss(model(x), y).item()
print(
    f"with the guard: finished {STEPS} steps, loss {final:.4f} (data variance {y.var().item():.4f}), "
    f"LR multiplier {scheduler.multiplier:g}"
)
