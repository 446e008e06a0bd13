"""Reduce-on-plateau under DDP: two gloo processes on the CPU, each reporting its own validation shard's
metric (tester X1, s31).

The scheduler's ``report(metric)`` / ``step(metric)`` sent nothing between the ranks, so each rank's
plateau cut on its own metric: the LRs differed and the replicas drifted apart. Now, under an initialized
process group of more than one rank, the plateau sees the mean of the ranks' metrics (as the divergence
guard sees the mean loss): every rank cuts alike, at the LR a single plateau fed those means gives.
``sync=False`` keeps each rank's own.
"""

from __future__ import annotations

import math
import os
import random
from typing import Any

import pytest

from .ddp import join, spawn, torch_with_gloo

torch, dist = torch_with_gloo()

EPOCHS = 8
SEQUENCES = 12  # random pairs of metric sequences (one per rank), the same on every rank


def _metrics(seed: int, rank: int) -> list[float]:
    """Rank ``rank``'s metrics of sequence ``seed``: random walks, sometimes flat, sometimes NaN."""
    rng = random.Random(seed * 7919 + rank)
    x, out = rng.uniform(0.5, 2.0), []
    for _ in range(EPOCHS):
        r = rng.random()
        x = x if r < 0.25 else math.nan if r < 0.3 else x * rng.uniform(0.8, 1.1)
        out.append(x)
        if math.isnan(x):
            x = rng.uniform(0.5, 2.0)
    return out


def _scheduler(in_graph: bool = False, **kw: Any) -> Any:
    import lrkit
    from lrkit.control import Plateau

    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(2))], lr=0.1)
    if in_graph:
        opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(2))], lr=torch.tensor(0.1))
    plateau = Plateau(mode="min", factor=0.5, patience=1, threshold=0.01)
    return lrkit.torch.scheduler(
        opt, "constant(lr=0.1)", total_steps=EPOCHS, plateau=plateau, in_graph=in_graph, **kw
    )


def _run(rank: int, seed: int, how: str, **kw: Any) -> list[tuple[float, bool]]:
    """(LR, cut) after each epoch's report of rank ``rank``'s metrics of sequence ``seed``."""
    s = _scheduler(in_graph=how == "graph", **kw)
    out = []
    for m in _metrics(seed, rank):
        s.optimizer.step()
        if how == "step":  # as Lightning and accelerate call it, with a tensor
            before = list(s.plateau_cuts)
            s.step(torch.tensor(m))
            cut = s.plateau_cuts != before
        else:
            cut = s.report(m)
            s.step()
        out.append((float(s.optimizer.param_groups[0]["lr"]), bool(cut)))
    return out


def _reference(seed: int) -> list[tuple[float, bool]]:
    """What one plateau fed the mean of the two ranks' metrics gives (no process group involved)."""
    s = _scheduler(sync=False)
    out = []
    for a, b in zip(_metrics(seed, 0), _metrics(seed, 1), strict=True):
        s.optimizer.step()
        cut = s.report((a + b) / 2)
        s.step()
        out.append((float(s.optimizer.param_groups[0]["lr"]), bool(cut)))
    return out


def _bad_metric(rank: int) -> str:
    """Rank 1 alone reports something that is not a number: what each rank raises."""
    s = _scheduler()
    try:
        s.report("0.5" if rank == 1 else 0.5)
    except (TypeError, RuntimeError) as exc:
        return f"{type(exc).__name__}: {exc}"
    return "nothing"


def _worker(rank: int, store: str, out: str) -> None:
    join(rank, store)
    try:
        results: dict[str, Any] = {
            how: [_run(rank, seed, how) for seed in range(SEQUENCES)] for how in ("report", "step", "graph")
        }
        results["separate"] = [_run(rank, seed, "report", sync=False) for seed in range(SEQUENCES)]
        results["world"] = [_run(rank, seed, "report", sync=dist.group.WORLD) for seed in range(3)]
        results["bad"] = _bad_metric(rank)
        results["after_bad"] = _run(rank, 0, "report")  # the ranks are still in step
        torch.save(results, os.path.join(out, f"rank{rank}.pt"))
    finally:
        dist.destroy_process_group()


@pytest.fixture(scope="module")
def ranks(tmp_path_factory: pytest.TempPathFactory) -> list[dict[str, Any]]:
    return spawn(_worker, tmp_path_factory)


@pytest.mark.parametrize("how", ["report", "step", "graph"])
def test_every_rank_cuts_as_one_plateau_fed_the_mean(ranks: list[dict[str, Any]], how: str) -> None:
    """Different metrics on the two ranks: identical LRs and cuts on both, those of the mean."""
    cuts = 0
    for seed in range(SEQUENCES):
        r0, r1 = ranks[0][how][seed], ranks[1][how][seed]
        assert r0 == r1, (how, seed, _metrics(seed, 0), _metrics(seed, 1))
        ref = _reference(seed)
        assert [c for _, c in r0] == [c for _, c in ref], (how, seed)
        assert [lr for lr, _ in r0] == pytest.approx([lr for lr, _ in ref], rel=1e-6), (how, seed)
        cuts += sum(c for _, c in r0)
    assert cuts > 0  # the sequences do make the plateau cut


def test_a_process_group_given_as_sync_is_used(ranks: list[dict[str, Any]]) -> None:
    for seed in range(3):
        assert ranks[0]["world"][seed] == ranks[1]["world"][seed] == _reference(seed)


def test_sync_false_lets_each_rank_cut_on_its_own_metric(ranks: list[dict[str, Any]]) -> None:
    apart = [s for s in range(SEQUENCES) if ranks[0]["separate"][s] != ranks[1]["separate"][s]]
    assert apart  # the ranks' own metrics do cut differently
    for seed in range(SEQUENCES):
        for rank in (0, 1):
            alone = _scheduler(sync=False)
            mine = []
            for m in _metrics(seed, rank):
                alone.optimizer.step()
                cut = alone.report(m)
                alone.step()
                mine.append((float(alone.optimizer.param_groups[0]["lr"]), bool(cut)))
            assert ranks[rank]["separate"][seed] == mine


def test_a_bad_metric_on_one_rank_stops_every_rank(ranks: list[dict[str, Any]]) -> None:
    assert ranks[1]["bad"].startswith("TypeError: report: metric must be a number"), ranks[1]["bad"]
    assert "'0.5'" in ranks[1]["bad"]
    assert ranks[0]["bad"].startswith("RuntimeError: report: 1 other rank got a metric"), ranks[0]["bad"]
    assert ranks[0]["after_bad"] == ranks[1]["after_bad"] == _reference(0)


def test_sync_must_be_a_bool_or_a_process_group() -> None:
    with pytest.raises(TypeError, match=r"sync must be True .* got str 'yes'"):
        _scheduler(sync="yes")


def test_without_a_process_group_nothing_changes() -> None:
    """No process group initialized here: the scheduler's own metric, as before."""
    assert not dist.is_initialized()
    for seed in range(3):
        s = _scheduler()
        cuts = []
        for m in _metrics(seed, 0):
            s.optimizer.step()
            cuts.append(s.report(m))
            s.step()
        t = _scheduler(sync=False)
        assert cuts == [(t.optimizer.step(), t.report(m), t.step())[1] for m in _metrics(seed, 0)]
