"""What the lrkit.auto tests share: a small separable problem, its model, and the guide's guarded loop."""

from __future__ import annotations

from collections.abc import Collection
from typing import Any

import torch


def blobs(n: int = 256, seed: int = 0) -> Any:
    """A shuffled loader (batches of 16) of ``n`` points in 8-d, labelled by the sign of a sum."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 8, generator=g)
    y = (x[:, :4].sum(dim=1) > 0).long()
    return torch.utils.data.DataLoader(
        torch.utils.data.TensorDataset(x, y), batch_size=16, shuffle=True, generator=g
    )


def mlp() -> Any:
    """The model for :func:`blobs`, initialised from seed 0."""
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Linear(8, 32), torch.nn.ReLU(), torch.nn.Linear(32, 2))


def guarded_steps(
    run: Any,
    model: Any,
    opt: Any,
    loader: Any,
    steps: int,
    nan_at: Collection[int] = (),
    losses: list[float] | None = None,
) -> int:
    """The guide's loop over ``steps`` optimizer steps with ``run``'s guard and scheduler: a NaN loss at
    each step of ``nan_at`` (once each); each applied step's loss appended to ``losses``."""
    step, seen = 0, set()
    while step < steps:
        for x, y in loader:
            loss = torch.nn.functional.cross_entropy(model(x), y)
            if step in nan_at and step not in seen:
                seen.add(step)
                loss = loss * float("nan")
            loss.backward()
            if run.guard.check(loss, step):
                opt.step()
                run.scheduler.step()
                step += 1
                if losses is not None:
                    losses.append(loss.item())
            else:
                step = run.guard.resume_step
            opt.zero_grad()
            if step >= steps:
                break
    return step
