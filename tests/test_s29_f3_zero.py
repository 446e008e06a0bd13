"""The guard with torch's ``ZeroRedundancyOptimizer``.

Its ``state_dict()`` is the whole state gathered onto one rank (``consolidate_state_dict``, a
collective): the guard's first snapshot raised torch's "Optimizer state has not been consolidated on
this rank". A snapshot now keeps each rank's own shard (the local optimizer's state) and the groups'
settings, and a rollback loads them back: the run is the one that trained to the snapshot and went on
with the cut LR, bit for bit, on one rank and on two.
"""

from __future__ import annotations

import os
from datetime import timedelta
from typing import Any

import pytest

from .ddp import WORLD, join, spawn, torch_with_gloo

torch, dist = torch_with_gloo()

N = 24
LR = 0.01
FACTOR = 0.5
NAN_AT = 12  # snapshots every 5 steps: rolled back to 10


def _zero(model: Any) -> Any:
    from torch.distributed.optim import ZeroRedundancyOptimizer

    return ZeroRedundancyOptimizer(model.parameters(), optimizer_class=torch.optim.AdamW, lr=LR)


def _model(ddp: bool) -> Any:
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(4, 16), torch.nn.ReLU(), torch.nn.Linear(16, 1))
    if ddp:
        from torch.nn.parallel import DistributedDataParallel

        return DistributedDataParallel(net)
    return net


def _batch(rank: int, step: int) -> tuple[Any, Any]:
    g = torch.Generator().manual_seed(1000 * rank + step)
    return torch.randn(8, 4, generator=g), torch.randn(8, 1, generator=g)


def _guarded(rank: int, ddp: bool, poison_rank: int) -> dict[str, Any]:
    """AdamW under ZeRO and an lrkit scheduler, with the guard; rank ``poison_rank``'s loss is NaN at
    step NAN_AT, once."""
    import lrkit
    from lrkit.control import DivergenceGuard

    model = _model(ddp)
    opt = _zero(model)
    sched = lrkit.torch.scheduler(opt, f"constant(lr={LR})", total_steps=N)
    guard = DivergenceGuard(model, opt, sched, factor=FACTOR, snapshot_every=5)
    step, poisoned = 0, False
    for _ in range(2 * N):
        if step >= N:
            continue
        x, y = _batch(rank, step)
        loss = torch.nn.functional.mse_loss(model(x), y)
        if step == NAN_AT and not poisoned:
            poisoned = True
            if rank == poison_rank:
                loss = loss * float("nan")
        loss.backward()
        if guard.check(loss, step):
            opt.step()
            sched.step()
            step += 1
        else:
            assert guard.resume_step is not None
            step = guard.resume_step
        opt.zero_grad()
    shard = opt.optim.state_dict()["state"]
    return {
        "events": guard.events,
        "params": [p.detach().clone() for p in model.parameters()],
        "steps": sorted(float(s["step"]) for s in shard.values()),
        "bytes": guard.snapshot_bytes,
    }


def _reference(rank: int, ddp: bool) -> list[Any]:
    """No guard, no NaN: LR ``LR`` up to step 10, ``LR * FACTOR`` from it on."""
    model = _model(ddp)
    opt = _zero(model)
    for step in range(N):
        opt.param_groups[0]["lr"] = LR if step < 10 else LR * FACTOR
        x, y = _batch(rank, step)
        torch.nn.functional.mse_loss(model(x), y).backward()
        opt.step()
        opt.zero_grad()
    return [p.detach().clone() for p in model.parameters()]


def _equal(a: list[Any], b: list[Any]) -> None:
    assert len(a) == len(b)
    for p, q in zip(a, b, strict=True):
        assert torch.equal(p, q)


def test_one_rank_rolls_back_to_a_legitimate_run(tmp_path: Any) -> None:
    """A 1-process gloo group (exA's t8.py): the first snapshot raised; now the NaN is rolled back."""
    dist.init_process_group(
        "gloo",
        init_method=f"file://{tmp_path / 'store'}",
        rank=0,
        world_size=1,
        timeout=timedelta(seconds=60),
    )
    try:
        got = _guarded(0, ddp=False, poison_rank=0)
        want = _reference(0, ddp=False)
    finally:
        dist.destroy_process_group()
    (e,) = got["events"]
    assert (e.step, e.reason, e.snapshot_step, e.lr_after) == (NAN_AT, "nan", 10, (LR * FACTOR,))
    assert got["steps"] == [float(N)] * 4  # AdamW's step count: the rolled-back steps are undone
    _equal(got["params"], want)
    assert sum(got["bytes"].values()) > 0


def _worker(rank: int, store: str, out: str) -> None:
    join(rank, store, timeout=60)
    try:
        results: dict[str, Any] = {"guarded": _guarded(rank, ddp=True, poison_rank=1)}
        results["reference"] = _reference(rank, ddp=True)
        from lrkit.control import DivergenceGuard

        model = _model(ddp=True)
        try:
            DivergenceGuard(model, _zero(model), sync=False)
        except ValueError as exc:
            results["sync_false"] = str(exc)
        torch.save(results, os.path.join(out, f"rank{rank}.pt"))
    finally:
        dist.destroy_process_group()


@pytest.fixture(scope="module")
def ranks(tmp_path_factory: pytest.TempPathFactory) -> list[dict[str, Any]]:
    return spawn(_worker, tmp_path_factory)


def test_two_ranks_each_restore_their_own_shard(ranks: list[dict[str, Any]]) -> None:
    """DDP over two gloo ranks, each holding half of AdamW's state; rank 1's loss is NaN once: both
    ranks roll back together, and each ends where a run without the NaN, its LR cut at step 10, ends."""
    assert len(ranks) == WORLD
    r0, r1 = (r["guarded"] for r in ranks)
    assert [repr(e) for e in r0["events"]] == [repr(e) for e in r1["events"]]
    (e,) = r0["events"]
    assert (e.step, e.reason, e.snapshot_step) == (NAN_AT, "nan", 10)
    assert r0["steps"] and r1["steps"]  # each rank holds a shard
    assert len(r0["steps"]) + len(r1["steps"]) == 4
    _equal(r0["params"], r1["params"])
    _equal(r0["params"], ranks[0]["reference"])


def test_sync_false_is_refused_over_several_ranks(ranks: list[dict[str, Any]]) -> None:
    for r in ranks:
        assert "sync=False with a ZeroRedundancyOptimizer over 2 ranks" in r["sync_false"]
        assert "leave sync=True" in r["sync_false"]
