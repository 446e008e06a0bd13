"""DDP: two gloo processes on the CPU record the same curve (the loss averaged over ranks), stop at the
same rung, return the same suggestion, and each restores its model and optimizer bit for bit."""

from __future__ import annotations

import os
from typing import Any

import numpy as np
import pytest

from .ddp import WORLD, join, recording_forward, spawn, torch_with_gloo

torch, dist = torch_with_gloo()


def _worker(rank: int, store: str, out: str) -> None:
    join(rank, store)
    try:
        results = {k: _run(rank, k) for k in (1, 2)}  # accumulation_steps
        torch.save(results, os.path.join(out, f"rank{rank}.pt"))
    finally:
        dist.destroy_process_group()


def _run(rank: int, accumulation_steps: int) -> dict[str, Any]:
    from torch import nn
    from torch.nn.parallel import DistributedDataParallel
    from torch.utils.data import DataLoader, DistributedSampler, TensorDataset

    from lrkit.finder import find_lr

    g = torch.Generator().manual_seed(0)
    x = torch.randn(256, 4, generator=g)
    y = (x[:, 0] - x[:, 1] > 0).long()
    ds = TensorDataset(x, y)
    sampler = DistributedSampler(ds, num_replicas=WORLD, rank=rank, shuffle=True, seed=0)
    loader = DataLoader(ds, batch_size=8, sampler=sampler)
    torch.manual_seed(0)
    model = DistributedDataParallel(
        nn.Sequential(nn.Linear(4, 16), nn.BatchNorm1d(16), nn.ReLU(), nn.Linear(16, 2))
    )
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    local: list[float] = []
    forward = recording_forward(local)

    res = find_lr(
        model,
        opt,
        loader,
        forward=forward,
        num_steps=30,
        end_lr=100.0,
        repeats=2,
        seed=0,
        accumulation_steps=accumulation_steps,
        smoothing=0.5,
    )
    after = model.state_dict()
    restored = all(torch.equal(before[k], after[k]) for k in before) and len(opt.state) == 0
    return {
        "curves": [(c.lrs, c.losses, c.stopped_at) for c in res.curves],
        "suggestions": res.suggestions,
        "local": local,
        "restored": restored,
        "epoch": sampler.epoch,
    }


@pytest.fixture(scope="module")
def ranks(tmp_path_factory: pytest.TempPathFactory) -> list[dict[int, dict[str, Any]]]:
    """Spawn the two processes once; each runs the test with accumulation_steps 1 and 2."""
    return spawn(_worker, tmp_path_factory)


@pytest.mark.parametrize("accumulation_steps", [1, 2])
def test_ranks_agree_and_losses_are_averaged(
    ranks: list[dict[int, dict[str, Any]]], accumulation_steps: int
) -> None:
    r0, r1 = (r[accumulation_steps] for r in ranks)
    assert r0["restored"] and r1["restored"]
    assert r0["epoch"] == r1["epoch"] == 0  # the sampler's epoch is put back
    assert r0["suggestions"] == r1["suggestions"]
    assert len(r0["curves"]) == len(r1["curves"]) == 2
    for (lrs0, loss0, stop0), (lrs1, loss1, stop1) in zip(r0["curves"], r1["curves"], strict=True):
        np.testing.assert_array_equal(lrs0, lrs1)
        np.testing.assert_array_equal(loss0, loss1)
        assert stop0 == stop1
    # every rank recorded the mean over ranks of the per-rank losses (each a mean over micro-batches)
    local0 = np.asarray(r0["local"]).reshape(-1, accumulation_steps).mean(axis=1)
    local1 = np.asarray(r1["local"]).reshape(-1, accumulation_steps).mean(axis=1)
    recorded = np.concatenate([c[1] for c in r0["curves"]])
    np.testing.assert_allclose(recorded, (local0 + local1) / 2, rtol=1e-6)
    assert not np.array_equal(local0, local1)  # the ranks saw different data
    assert any(c[2] is not None for c in r0["curves"])  # the stop fired, on both ranks alike
