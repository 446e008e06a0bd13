"""The in-run ramp under DDP: two gloo processes on the CPU see one curve (each rung's loss averaged over
ranks), stop at the same rung, keep the same one, and their replicas stay one model; ``lrkit.auto``
takes the in-run search there."""

from __future__ import annotations

import contextlib
import io
import os
from typing import Any

import numpy as np
import pytest

from .ddp import WORLD, join, recording_forward, spawn, torch_with_gloo

torch, dist = torch_with_gloo()


def _worker(rank: int, store: str, out: str) -> None:
    join(rank, store)
    try:
        results: dict[str, Any] = {f"ramp{k}": _ramp(rank, k) for k in (1, 2)}  # accumulation_steps
        results["restored"] = _restored(rank)
        results["auto"] = _auto(rank)
        torch.save(results, os.path.join(out, f"rank{rank}.pt"))
    finally:
        dist.destroy_process_group()


def _setup(rank: int) -> tuple[Any, Any, Any]:
    from torch import nn
    from torch.nn.parallel import DistributedDataParallel
    from torch.utils.data import DataLoader, DistributedSampler, TensorDataset

    g = torch.Generator().manual_seed(0)
    x = torch.randn(512, 8, generator=g)
    y = (x[:, :4].sum(dim=1) > 0).long()
    ds = TensorDataset(x, y)
    sampler = DistributedSampler(ds, num_replicas=WORLD, rank=rank, shuffle=True, seed=0)
    loader = DataLoader(ds, batch_size=16, sampler=sampler)
    torch.manual_seed(0)
    model = DistributedDataParallel(nn.Sequential(nn.Linear(8, 32), nn.ReLU(), nn.Linear(32, 2)))
    return model, torch.optim.Adam(model.parameters(), lr=1e-3), loader


def _params(model: Any) -> list[Any]:
    return [p.detach().clone() for p in model.parameters()]


def _ramp(rank: int, accumulation_steps: int) -> dict[str, Any]:

    from lrkit.finder.in_run import ramp_in_run

    model, opt, loader = _setup(rank)
    local: list[float] = []
    forward = recording_forward(local)

    ramp = ramp_in_run(
        model, opt, loader, forward=forward, peak_factor=3.0, accumulation_steps=accumulation_steps
    )
    c = ramp.result.curves[0]
    return {
        "lrs": c.lrs, "losses": c.losses, "stopped_at": c.stopped_at, "kept": ramp.kept,
        "spent": ramp.spent, "peak": ramp.peak, "params": _params(model), "local": local,
        "step": int(next(iter(opt.state.values()))["step"]) if opt.state else 0,
    }  # fmt: skip


def _restored(rank: int) -> bool:
    import torch.nn.functional as F

    from lrkit.finder.in_run import ramp_in_run

    model, opt, loader = _setup(rank)
    before = _params(model)
    ramp = ramp_in_run(model, opt, loader, F.cross_entropy, max_kept=1)  # the peak comes later
    return (
        ramp.kept == 0
        and not opt.state
        and all(torch.equal(a, b) for a, b in zip(before, _params(model), strict=True))
    )


def _auto(rank: int) -> dict[str, Any]:
    import torch.nn.functional as F

    import lrkit

    model, opt, loader = _setup(rank)
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        run = lrkit.auto(model, opt, loader, F.cross_entropy, epochs=20, verbose=True)
    return {
        "search": run.search, "peak": run.peak_lr, "kept": run.trained_steps, "params": _params(model),
        "printed": printed.getvalue(),
    }  # fmt: skip


@pytest.fixture(scope="module")
def ranks(tmp_path_factory: pytest.TempPathFactory) -> list[dict[str, Any]]:
    return spawn(_worker, tmp_path_factory)


@pytest.mark.parametrize("accumulation_steps", [1, 2])
def test_ranks_ramp_on_one_averaged_curve_and_keep_one_model(
    ranks: list[dict[str, Any]], accumulation_steps: int
) -> None:
    r0, r1 = (r[f"ramp{accumulation_steps}"] for r in ranks)
    np.testing.assert_array_equal(r0["lrs"], r1["lrs"])
    np.testing.assert_array_equal(r0["losses"], r1["losses"])
    assert r0["stopped_at"] == r1["stopped_at"] is not None  # the rise stop fired, on both alike
    assert r0["kept"] == r1["kept"] > 0 and r0["peak"] == r1["peak"] and r0["spent"] == r1["spent"]
    assert r0["step"] == r0["kept"]  # the optimizer's state is that after the kept rung
    for a, b in zip(r0["params"], r1["params"], strict=True):
        assert torch.equal(a, b)  # the replicas are one model
    # the curve is the mean over ranks of each rank's loss (itself a mean over micro-batches)
    local0 = np.asarray(r0["local"]).reshape(-1, accumulation_steps).mean(axis=1)
    local1 = np.asarray(r1["local"]).reshape(-1, accumulation_steps).mean(axis=1)
    assert not np.array_equal(local0, local1)  # the ranks saw different data
    np.testing.assert_allclose(r0["losses"], (local0 + local1) / 2, rtol=1e-6)


def test_a_ramp_that_keeps_nothing_restores_every_rank(ranks: list[dict[str, Any]]) -> None:
    assert ranks[0]["restored"] and ranks[1]["restored"]


def test_auto_takes_the_in_run_search_under_ddp(ranks: list[dict[str, Any]]) -> None:
    a0, a1 = ranks[0]["auto"], ranks[1]["auto"]
    assert a0["search"] == a1["search"] == "in_run"  # a 320-step run: the separate test does not fit
    assert a0["peak"] == a1["peak"] and a0["kept"] == a1["kept"] > 0
    for a, b in zip(a0["params"], a1["params"], strict=True):
        assert torch.equal(a, b)
    assert a0["printed"].startswith("lrkit.auto:") and a1["printed"] == ""  # one summary, rank 0's
