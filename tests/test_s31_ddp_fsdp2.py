"""The divergence guard under FSDP2 (``torch.distributed.fsdp.fully_shard``): two gloo processes on the CPU
(tester X1, s31).

The guard crashed at its first check with a bare AssertionError from DTensor's dispatch: its flags for
NaN/inf in the parameters were computed on the DTensors of ``model.state_dict()`` and added to a plain
tensor. Each rank now flags its own shard and the all-reduce combines them. A NaN loss on one rank, and
NaN in the shard one rank holds behind a finite loss, roll both ranks back to the same snapshot: the run
matches, bit for bit, a plain FSDP2 run with the LR the event says (AdamW, an lrkit scheduler, snapshots
on the model's device or on the CPU).
"""

from __future__ import annotations

import os
from typing import Any

import pytest

from .ddp import join, spawn, torch_with_gloo

torch, dist = torch_with_gloo()
fsdp = pytest.importorskip("torch.distributed.fsdp")
if not hasattr(fsdp, "fully_shard"):
    pytest.skip("torch.distributed.fsdp.fully_shard (FSDP2) is not available", allow_module_level=True)

N = 24  # steps
ITERS = 30
LR = 0.01
FACTOR = 0.5
#: the step poisoned on rank 1: its loss made NaN, or (a snapshot due: the parameters are checked) a NaN
#: put in its shard of the last layer; both roll back to the snapshot of step 10
AT = {"nan": 12, "params": 15}


def _model() -> tuple[Any, Any, Any]:
    import lrkit

    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(8, 32), torch.nn.ReLU(), torch.nn.Linear(32, 3))
    fsdp.fully_shard(net[0])
    fsdp.fully_shard(net[2])
    model = fsdp.fully_shard(net)
    opt = torch.optim.AdamW(model.parameters(), lr=LR)
    return model, opt, lrkit.torch.scheduler(opt, f"constant(lr={LR})", total_steps=N)


def _batch(rank: int, step: int) -> tuple[Any, Any]:
    g = torch.Generator().manual_seed(1000 * rank + step)
    x = torch.randn(16, 8, generator=g)
    return x, (x[:, 0] > 0).long()


def _full(model: Any) -> list[Any]:
    """The whole parameters (an all-gather each: every rank calls it)."""
    return [p.full_tensor().detach().clone() for p in model.parameters()]


def _guarded(rank: int, poison: str, snapshot_device: str | None) -> dict[str, Any]:
    import torch.nn.functional as F

    from lrkit.control import DivergenceGuard

    model, opt, sched = _model()
    guard = DivergenceGuard(
        model, opt, sched, factor=FACTOR, snapshot_every=5, snapshot_device=snapshot_device
    )
    step, at = 0, AT[poison]
    for _ in range(ITERS):
        if step >= N:
            continue
        x, y = _batch(rank, step)
        loss = F.cross_entropy(model(x), y)
        bad = rank == 1 and not guard.events and step == at
        if bad and poison == "nan":
            loss = loss * float("nan")
        loss.backward()
        if bad and poison == "params":  # rank 1's shard of the last layer, behind a finite loss
            with torch.no_grad():
                model[2].weight.to_local()[0, 0] = float("nan")
        if guard.check(loss, step):
            opt.step()
            sched.step()
            step += 1
        else:
            assert guard.resume_step is not None
            step = guard.resume_step
        opt.zero_grad()
    return {"events": guard.events, "params": _full(model), "lr": opt.param_groups[0]["lr"]}


def _reference(rank: int, snapshot_step: int) -> list[Any]:
    """No guard, no poison: LR ``LR`` up to ``snapshot_step``, ``LR * FACTOR`` from it on."""
    import torch.nn.functional as F

    model, opt, sched = _model()
    for step in range(N):
        sched.multiplier = 1.0 if step < snapshot_step else FACTOR
        x, y = _batch(rank, step)
        F.cross_entropy(model(x), y).backward()
        opt.step()
        sched.step()
        opt.zero_grad()
    return _full(model)


def _sync_false(rank: int) -> str:
    from lrkit.control import DivergenceGuard

    model, opt, _ = _model()
    try:
        DivergenceGuard(model, opt, sync=False)
    except ValueError as exc:
        return str(exc)
    return "accepted"


def _worker(rank: int, store: str, out: str) -> None:
    join(rank, store)
    try:
        results: dict[str, Any] = {
            (poison, device): _guarded(rank, poison, device)
            for poison in ("nan", "params")
            for device in (None, "cpu")
        }
        results["reference"] = _reference(rank, snapshot_step=10)
        results["sync_false"] = _sync_false(rank)
        torch.save(results, os.path.join(out, f"rank{rank}.pt"))
    finally:
        dist.destroy_process_group()


@pytest.fixture(scope="module")
def ranks(tmp_path_factory: pytest.TempPathFactory) -> list[dict[str, Any]]:
    return spawn(_worker, tmp_path_factory)


@pytest.mark.parametrize("device", [None, "cpu"])
@pytest.mark.parametrize("poison", ["nan", "params"])
def test_fsdp2_rolls_every_rank_back_to_the_same_snapshot(
    ranks: list[dict[str, Any]], poison: str, device: str | None
) -> None:
    for r in ranks:
        got = r[(poison, device)]
        assert [(e.step, e.reason, e.snapshot_step) for e in got["events"]] == [(AT[poison], poison, 10)]
        assert got["lr"] == pytest.approx(LR * FACTOR)
        for p, q in zip(got["params"], r["reference"], strict=True):
            assert torch.equal(p, q)  # bit for bit: the run that cut the LR at the snapshot step


def test_sync_false_with_fsdp2_is_refused_naming_it(ranks: list[dict[str, Any]]) -> None:
    for r in ranks:
        assert "sync=False with a model whose parameters are DTensors (FSDP2" in r["sync_false"]
