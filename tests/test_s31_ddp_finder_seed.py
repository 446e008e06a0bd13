"""find_lr under DDP draws each rank's own batches and dropout (tester X1, s31).

Each repeat ``r`` seeded torch and the loader's generator with ``seed + r`` on every rank alike, so a
user whose ranks shuffle with per-rank seeds (``DataLoader(shuffle=True)``, no ``DistributedSampler``)
got the same batch on every rank during the test, and the same dropout masks. Now rank ``k`` seeds with
``seed + r + k * RANK_SEED_STRIDE`` (rank 0 as a single process), while a ``DistributedSampler``'s
``set_epoch(seed + r)`` stays common to every rank: its shards must not overlap.
"""

from __future__ import annotations

import os
from typing import Any

import pytest

from .ddp import WORLD, join, spawn, torch_with_gloo

torch, dist = torch_with_gloo()

N = 512
BATCH = 16
STEPS = 12  # rungs of each repeat (a whole pass over a DistributedSampler's shard: 256 / 16 = 16)


def _data() -> Any:
    from torch.utils.data import TensorDataset

    g = torch.Generator().manual_seed(0)
    x = torch.randn(N, 8, generator=g)
    return TensorDataset(x, (x[:, 0] > 0).long(), torch.arange(N))


def _model(dropout: float = 0.0) -> Any:
    from torch import nn
    from torch.nn.parallel import DistributedDataParallel

    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Dropout(dropout), nn.Linear(16, 2))
    return DistributedDataParallel(net)


def _find(loader: Any, dropout: float = 0.0) -> tuple[list[list[int]], list[float]]:
    """The indices of the first batch of each repeat (3), and this rank's own losses."""
    import torch.nn.functional as F

    from lrkit.finder import find_lr

    model = _model(dropout)
    opt = torch.optim.SGD(model.parameters(), lr=1e-3)
    seen: list[list[int]] = []
    losses: list[float] = []

    def forward(m: Any, batch: Any) -> Any:
        seen.append(batch[2].tolist())
        loss = F.cross_entropy(m(batch[0]), batch[1])
        losses.append(float(loss.detach()))
        return loss

    find_lr(model, opt, loader, forward=forward, num_steps=STEPS, repeats=3, seed=5, diverge_factor=None)
    return seen, losses


def _expected_first(loader: Any, seed: int) -> list[int]:
    """The first batch of a pass over ``loader`` that starts right after ``torch.manual_seed(seed)``."""
    torch.manual_seed(seed)
    return next(iter(loader))[2].tolist()


def _worker(rank: int, store: str, out: str) -> None:
    from torch.utils.data import DataLoader, DistributedSampler

    from lrkit.finder.torch_driver import RANK_SEED_STRIDE

    join(rank, store)
    try:
        ds = _data()
        results: dict[str, Any] = {}
        torch.manual_seed(1234 + rank)  # the user's per-rank seed
        shuffled = DataLoader(ds, batch_size=BATCH, shuffle=True)
        results["shuffled"] = _find(shuffled)
        results["expected"] = [_expected_first(shuffled, 5 + r + rank * RANK_SEED_STRIDE) for r in range(3)]
        own = DataLoader(ds, batch_size=BATCH, shuffle=True, generator=torch.Generator().manual_seed(rank))
        results["generator"] = _find(own)
        results["dropout"] = _find(DataLoader(ds, batch_size=BATCH), dropout=0.5)  # the same batches
        sampler = DistributedSampler(ds, num_replicas=WORLD, rank=rank, shuffle=True, seed=0)
        results["sharded"] = _find(DataLoader(ds, batch_size=BATCH, sampler=sampler))
        results["sharded_generator"] = _find(
            DataLoader(ds, batch_size=BATCH, sampler=sampler, generator=torch.Generator().manual_seed(rank))
        )
        torch.save(results, os.path.join(out, f"rank{rank}.pt"))
    finally:
        dist.destroy_process_group()


@pytest.fixture(scope="module")
def ranks(tmp_path_factory: pytest.TempPathFactory) -> list[dict[str, Any]]:
    return spawn(_worker, tmp_path_factory)


@pytest.mark.parametrize("case", ["shuffled", "generator"])
def test_each_rank_draws_its_own_batches(ranks: list[dict[str, Any]], case: str) -> None:
    seen0, seen1 = ranks[0][case][0], ranks[1][case][0]
    assert len(seen0) == len(seen1) >= 3 * STEPS
    same = sum(a == b for a, b in zip(seen0, seen1, strict=True))
    assert same == 0, f"{same} of {len(seen0)} batches were the same on both ranks"


def test_each_repeat_starts_from_the_seed_of_its_rank(ranks: list[dict[str, Any]]) -> None:
    """Rank 0 seeds as a single process does (seed + r), rank k by k strides more."""
    for r in ranks:
        seen = r["shuffled"][0]
        firsts = [seen[0], seen[STEPS], seen[2 * STEPS]]
        assert firsts == r["expected"]


def test_each_rank_draws_its_own_dropout(ranks: list[dict[str, Any]]) -> None:
    seen0, losses0 = ranks[0]["dropout"]
    seen1, losses1 = ranks[1]["dropout"]
    assert seen0 == seen1  # an unshuffled loader: the same batches on both ranks
    assert all(a != b for a, b in zip(losses0, losses1, strict=True))  # but not the same masks


@pytest.mark.parametrize("case", ["sharded", "sharded_generator"])
def test_a_distributed_sampler_keeps_disjoint_shards(ranks: list[dict[str, Any]], case: str) -> None:
    """set_epoch(seed + r) common to the ranks: in each repeat their batches never share an example."""
    seen0, seen1 = ranks[0][case][0], ranks[1][case][0]
    for r in range(3):
        a = {i for b in seen0[r * STEPS : (r + 1) * STEPS] for i in b}
        b = {i for b in seen1[r * STEPS : (r + 1) * STEPS] for i in b}
        assert len(a) == len(b) == STEPS * BATCH
        assert not a & b
