"""DDP: a sample that is not finite on one rank stops the range test on every rank with a ValueError
(the rank that met it names it, the other points at it), none waiting for the other in a collective."""

from __future__ import annotations

import os
from typing import Any

import pytest

from .ddp import WORLD, join, spawn, torch_with_gloo

torch, dist = torch_with_gloo()


def _worker(rank: int, store: str, out: str) -> None:
    join(rank, store, timeout=60)  # a rank left waiting fails after 60 s instead of hanging
    try:
        torch.save({k: _run(rank, k) for k in (1, 2)}, os.path.join(out, f"rank{rank}.pt"))
    finally:
        dist.destroy_process_group()


def _run(rank: int, accumulation_steps: int) -> dict[str, Any]:
    from torch import nn
    from torch.nn.parallel import DistributedDataParallel
    from torch.utils.data import DataLoader, TensorDataset

    from lrkit.finder import find_lr

    g = torch.Generator().manual_seed(rank)
    x = torch.randn(128, 4, generator=g)
    y = (x[:, 0] - x[:, 1] > 0).long()
    if rank == 1:
        x[40, 2] = float("nan")  # batch 5 of 8 on this rank only
    torch.manual_seed(0)
    model = DistributedDataParallel(nn.Sequential(nn.Linear(4, 16), nn.ReLU(), nn.Linear(16, 2)))
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    loader = DataLoader(TensorDataset(x, y), batch_size=8)
    try:
        find_lr(
            model,
            opt,
            loader,
            nn.functional.cross_entropy,
            num_steps=30,
            repeats=2,
            accumulation_steps=accumulation_steps,
        )
        error = None
    except ValueError as exc:
        error = str(exc)
    after = model.state_dict()
    return {"error": error, "restored": all(torch.equal(before[k], after[k]) for k in before)}


def test_every_rank_stops_with_an_error_when_one_meets_data_that_is_not_finite(
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    ranks = spawn(_worker, tmp_path_factory)
    assert len(ranks) == WORLD
    for k in (1, 2):
        mine, other = ranks[1][k], ranks[0][k]
        assert mine["error"] is not None and mine["error"].startswith(
            "batch 5 (counting from 0) of a pass over train_loader holds nan at batch[0][0, 2]"
        )
        assert other["error"] is not None and other["error"].startswith(
            "1 other process met data that is not finite in train_loader (this one's was finite)"
        )
        assert mine["restored"] and other["restored"]
