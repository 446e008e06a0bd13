"""The divergence guard under DDP when the ranks fall out of step: two gloo processes on the CPU.

A rank that calls ``check`` once more or once less than the others pairs its all-reduce with another
call's on the other ranks; ranks that pass different steps, or whose optimizers have different param
groups, are no longer one run. Before, the guard combined the mismatched calls silently (and the ranks
went on apart, or waited in a collective until the timeout, or gloo aborted on a size mismatch). Now
every rank raises a ``RuntimeError`` at that check, naming what differs and this rank's value.

The cases run one after another in two processes, with a short collective timeout (a hang fails them);
after each, the ranks must still be in step.
"""

from __future__ import annotations

import os
import time
from typing import Any

import pytest

from .ddp import join, spawn, torch_with_gloo
from .test_guard_ddp import _batch, _model

torch, dist = torch_with_gloo()

TIMEOUT = 30  # the process group's: a rank left waiting in a collective fails after this long


CASES = ("extra", "skip", "steps", "groups", "groups_all")


def _worker(rank: int, store: str, out: str, cases: tuple[str, ...] = CASES) -> None:
    join(rank, store, timeout=TIMEOUT)
    try:
        results: dict[str, Any] = {}
        for case in cases:
            results[case] = _run(rank, case)
            t = torch.tensor([float(rank + 1)])
            dist.all_reduce(t)  # the ranks are still in step: this pairs with the same call on the other
            results[case]["after"] = float(t)
        torch.save(results, os.path.join(out, f"rank{rank}.pt"))
    finally:
        dist.destroy_process_group()


def _plain_model() -> Any:
    """The model of ``_model`` without DDP: the guard's all-reduces are the only collectives."""
    from torch import nn

    torch.manual_seed(0)
    net = nn.Sequential(nn.Embedding(10, 4), nn.Flatten(), nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 1))
    return net, torch.optim.SGD(net.parameters(), lr=0.05, momentum=0.9)


def _run(rank: int, case: str) -> dict[str, Any]:
    """Ten steps with the guard (a snapshot every 5); rank 1 goes out of step as ``case`` says:

    - ``extra``: calls ``check`` twice at step 7 (a plain model under the default group);
    - ``skip``: does not call ``check`` at step 7 (its last, uneven batch; a plain model);
    - ``steps``: passes ``step + 1`` from step 7 on (a DDP model);
    - ``groups``: adds a param group to its optimizer at step 7 (a DDP model);
    - ``groups_all``: every rank adds it at step 7 (in step: no error).

    The step where this rank's ``check`` raised, the error, and how long that ``check`` took."""
    import torch.nn.functional as F

    from lrkit.control import DivergenceGuard

    model, opt = _plain_model() if case in ("extra", "skip") else _model()
    guard = DivergenceGuard(model, opt, snapshot_every=5)
    for s in range(10):
        x, y = _batch(rank, s)
        loss = F.mse_loss(model(x), y)
        loss.backward()
        steps = [s]
        if rank == 1 and s == 7 and case in ("extra", "skip"):
            steps = [s, s] if case == "extra" else []
        if rank == 1 and s >= 7 and case == "steps":
            steps = [s + 1]
        if s == 7 and (case == "groups_all" or (case == "groups" and rank == 1)):
            opt.add_param_group({"params": [torch.nn.Parameter(torch.zeros(3))]})
        for arg in steps:
            start = time.monotonic()
            try:
                guard.check(loss, arg)
            except Exception as exc:
                seconds = time.monotonic() - start
                return {"step": s, "type": type(exc).__name__, "error": str(exc), "seconds": seconds}
        opt.step()
        opt.zero_grad()
    return {"step": None, "type": None, "error": None, "seconds": None, "events": guard.events}


@pytest.fixture(scope="module")
def ranks(tmp_path_factory: pytest.TempPathFactory) -> list[dict[str, Any]]:
    return spawn(_worker, tmp_path_factory)


STEPS = (
    "DivergenceGuard: the ranks passed different steps to check (this rank: step {}), so their check "
    "all-reduces do not belong together; every rank stops here. Call check once per optimizer step on "
    "every rank, with the same step"
)
GROUPS = (
    "DivergenceGuard: the ranks have different numbers of param groups in their optimizers (this rank: "
    "{}), so their check all-reduces do not belong together; every rank stops here."
)


def _stopped(r: dict[str, Any], step: int, message: str) -> None:
    """This rank raised the RuntimeError ``message`` in its check of ``step``, within seconds."""
    assert (r["step"], r["type"]) == (step, "RuntimeError"), r
    assert r["error"].startswith(message), r["error"]
    assert "(add_param_group on every rank at the same step)" in r["error"]
    assert r["seconds"] < TIMEOUT / 3, r  # not the timeout (well under it, even on a loaded machine)
    assert r["after"] == 3.0  # 1 + 2: both ranks made as many collectives


def test_a_rank_that_calls_check_twice_stops_every_rank(ranks: list[dict[str, Any]]) -> None:
    r0, r1 = (r["extra"] for r in ranks)
    # rank 1's second call of step 7 met rank 0's call of step 8
    _stopped(r0, 8, STEPS.format(8))
    _stopped(r1, 7, STEPS.format(7))


def test_a_rank_that_skips_a_check_stops_every_rank(ranks: list[dict[str, Any]]) -> None:
    r0, r1 = (r["skip"] for r in ranks)
    _stopped(r0, 7, STEPS.format(7))  # rank 0's call of step 7 met rank 1's call of step 8
    _stopped(r1, 8, STEPS.format(8))


def test_ranks_that_pass_different_steps_stop_together(ranks: list[dict[str, Any]]) -> None:
    r0, r1 = (r["steps"] for r in ranks)
    _stopped(r0, 7, STEPS.format(7))
    _stopped(r1, 7, STEPS.format(8))


def test_ranks_with_different_param_groups_stop_together(ranks: list[dict[str, Any]]) -> None:
    r0, r1 = (r["groups"] for r in ranks)
    _stopped(r0, 7, GROUPS.format(1))
    _stopped(r1, 7, GROUPS.format(2))
    assert "steps" not in r0["error"] and "steps" not in r1["error"]


def test_a_param_group_added_on_every_rank_is_in_step(ranks: list[dict[str, Any]]) -> None:
    r0, r1 = (r["groups_all"] for r in ranks)
    for r in (r0, r1):
        assert (r["step"], r["error"], r["events"], r["after"]) == (None, None, [], 3.0)
