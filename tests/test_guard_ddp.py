"""The divergence guard under DDP: two gloo processes on the CPU, each passing its own (local) loss.

A poisoned batch on one rank only (a NaN loss, a loss that stays far above the others, NaN in one
replica's parameters behind a finite loss) must make every rank take the same decision: roll back to the
same snapshot together, and the replicas stay one model. Before, rank 1 rolled back alone while rank 0
applied the update (with the NaN gradients DDP had averaged in), and the run ended with a
DivergenceError on one rank and the other one left waiting in a collective.

The reference for the NaN case is a plain DDP loop without the guard that uses the LR the events say
(``lr0`` up to the snapshot step, ``lr0 * factor`` from it on) on the same batches: the guarded run must
match it bit for bit on both ranks.
"""

from __future__ import annotations

import contextlib
import io
import math
import os
import time
from typing import Any

import pytest

from .ddp import WORLD, join, spawn, torch_with_gloo

torch, dist = torch_with_gloo()

N = 30  # steps
ITERS = 40  # loop iterations: every rank runs as many (and as many collectives), whatever it decides
LR = 0.05
FACTOR = 0.5


def _worker(rank: int, store: str, out: str) -> None:
    join(rank, store)
    try:
        results: dict[str, Any] = {
            "nan": _guarded(rank, "nan"),
            "jump": _guarded(rank, "jump"),
            "params": _guarded(rank, "params"),
            "reference": _reference(rank, snapshot_step=10),
            "separate": _separate(rank),
            "plain_model": _separate(rank, sync=True),
            "auto": _auto(rank),
            "scaler": _scaler(rank),
            "scaler_device": _scaler(rank, device_path=True),
        }
        torch.save(results, os.path.join(out, f"rank{rank}.pt"))
    finally:
        dist.destroy_process_group()


def _model() -> Any:
    """An embedding (rows 0-4 used, 5-9 never) and an MLP, as a DDP model; SGD with momentum."""
    from torch import nn
    from torch.nn.parallel import DistributedDataParallel

    torch.manual_seed(0)
    net = nn.Sequential(nn.Embedding(10, 4), nn.Flatten(), nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 1))
    model = DistributedDataParallel(net)
    return model, torch.optim.SGD(model.parameters(), lr=LR, momentum=0.9)


def _batch(rank: int, step: int) -> tuple[Any, Any]:
    """Rank ``rank``'s batch of ``step`` (its own generator: independent of the torch RNG)."""
    g = torch.Generator().manual_seed(1000 * rank + step)
    return torch.randint(0, 5, (16, 2), generator=g), torch.randn(16, 1, generator=g)


def _params(model: Any) -> list[Any]:
    return [p.detach().clone() for p in model.parameters()]


def _guarded(rank: int, poison: str) -> dict[str, Any]:
    """Train to step N with the guard; rank 1 alone is poisoned at step 12 until the first event."""
    import torch.nn.functional as F

    from lrkit.control import DivergenceError, DivergenceGuard

    model, opt = _model()
    guard = DivergenceGuard(model, opt, factor=FACTOR, snapshot_every=5)
    step, local, error = 0, {}, None
    for _ in range(ITERS):
        if step >= N:  # done: the same number of (skipped) iterations on every rank
            continue
        x, y = _batch(rank, step)
        bad = rank == 1 and not guard.events and step >= 12
        if bad and poison == "jump":
            y = y + 30.0  # a batch far off: its loss stays ~1000x the others'
        loss = F.mse_loss(model(x), y)
        if bad and poison == "nan" and step == 12:
            loss = loss * float("nan")
        loss.backward()
        if bad and poison == "params" and step == 12:
            with torch.no_grad():  # one replica broken, behind a finite loss (a row no batch uses)
                model.module[0].weight[7] = float("nan")
        if not guard.events:  # each rank's own loss, up to the first event
            local[step] = float(loss.detach())
        try:
            ok = guard.check(loss, step)
        except DivergenceError as exc:
            error = str(exc)
            break
        if ok:
            opt.step()
            step += 1
        else:
            assert guard.resume_step is not None
            step = guard.resume_step
        opt.zero_grad()
    return {
        "events": guard.events, "step": step, "params": _params(model), "error": error, "local": local,
        "finite": all(bool(torch.isfinite(p).all()) for p in model.parameters()),
    }  # fmt: skip


def _reference(rank: int, snapshot_step: int) -> list[Any]:
    """No guard, no poison: LR ``LR`` up to ``snapshot_step``, ``LR * FACTOR`` from it on."""
    import torch.nn.functional as F

    model, opt = _model()
    for step in range(N):
        opt.param_groups[0]["lr"] = LR if step < snapshot_step else LR * FACTOR
        x, y = _batch(rank, step)
        F.mse_loss(model(x), y).backward()
        opt.step()
        opt.zero_grad()
    return _params(model)


def _separate(rank: int, sync: bool = False) -> dict[str, Any]:
    """Each rank trains its own model (no DDP) under the process group; rank 1's loss is NaN at step 12.
    Counts the all-reduces the guard makes, by their size."""
    import torch.nn.functional as F

    from lrkit.control import DivergenceGuard

    torch.manual_seed(rank)
    model = torch.nn.Linear(4, 1)
    opt = torch.optim.SGD(model.parameters(), lr=0.05)
    guard = DivergenceGuard(model, opt, snapshot_every=5, sync=sync)
    calls: dict[int, int] = {}
    real = dist.all_reduce

    def counting(t: Any, *args: Any, **kwargs: Any) -> Any:
        calls[t.numel()] = calls.get(t.numel(), 0) + 1
        return real(t, *args, **kwargs)

    dist.all_reduce = counting
    try:
        losses = []
        for step in range(20):
            loss = F.mse_loss(model(torch.ones(8, 4)), torch.zeros(8, 1))
            if rank == 1 and step == 12:
                loss = loss * float("nan")
            loss.backward()
            losses.append(float(loss.detach()))
            if guard.check(loss, step):
                opt.step()
            opt.zero_grad()
    finally:
        dist.all_reduce = real
    return {"events": guard.events, "calls": calls, "losses": losses}


def _scaler(rank: int, device_path: bool = False) -> dict[str, Any]:
    """Each rank its own model and GradScaler under the group (sync=True); from step 6 until the first
    event, rank 1's gradients alone are NaN behind a finite loss, so its scaler alone skips. Counts the
    all-reduces by size and the scalers' get_scale() calls (a host sync each). ``device_path``: the guard
    takes the CPU scale for a GPU's (compared as a tensor, its flag a tensor in the all-reduce)."""
    import torch.nn.functional as F

    import lrkit.control.guard as guard_module
    from lrkit.control import DivergenceGuard

    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.ReLU(), torch.nn.Linear(8, 1))
    opt = torch.optim.SGD(model.parameters(), lr=0.05)
    scaler = torch.amp.GradScaler("cpu", init_scale=256.0)  # low enough for these gradients: no skip
    guard = DivergenceGuard(model, opt, snapshot_every=5, sync=True, scaler=scaler, max_skipped=4)
    calls: dict[int, int] = {}
    reads = [0]
    real, get_scale = dist.all_reduce, scaler.get_scale

    def counting(t: Any, *args: Any, **kwargs: Any) -> Any:
        calls[t.numel()] = calls.get(t.numel(), 0) + 1
        return real(t, *args, **kwargs)

    def reading() -> float:
        reads[0] += 1
        return get_scale()

    dist.all_reduce, scaler.get_scale = counting, reading
    syncs = guard_module._syncs
    if device_path:
        guard_module._syncs = lambda device: True
    skips, step = 0, 0
    try:
        for _ in range(30):
            g = torch.Generator().manual_seed(step)
            x, y = torch.randn(8, 4, generator=g), torch.randn(8, 1, generator=g)
            with torch.autocast("cpu", dtype=torch.float16):
                out = model(x)
            loss = F.mse_loss(out.float(), y)
            if rank == 1 and step >= 6 and not guard.events:
                w = model[0].weight
                loss = loss + 0.0 * torch.sqrt(w - w.detach()).sum()  # finite, its gradient NaN
            scaler.scale(loss).backward()
            if guard.check(loss, step):
                before = float(scaler._scale)  # type: ignore[arg-type]
                scaler.step(opt)
                scaler.update()
                skips += float(scaler._scale) < before  # type: ignore[arg-type]
                step += 1
            else:
                step = guard.resume_step or 0
            opt.zero_grad()
    finally:
        dist.all_reduce, scaler.get_scale = real, get_scale
        guard_module._syncs = syncs
    return {"events": guard.events, "calls": calls, "reads": reads[0], "skips": skips, "step": step}


def _auto(rank: int) -> dict[str, Any]:
    """``lrkit.auto`` on a DDP model, then its training loop with the guard it attached; rank 1's
    loss is NaN once, 40 steps in."""
    import torch.nn.functional as F
    from torch import nn
    from torch.nn.parallel import DistributedDataParallel
    from torch.utils.data import DataLoader, DistributedSampler, TensorDataset

    import lrkit

    g = torch.Generator().manual_seed(0)
    x = torch.randn(512, 8, generator=g)
    y = (x[:, :4].sum(dim=1) > 0).long()
    ds = TensorDataset(x, y)
    sampler = DistributedSampler(ds, num_replicas=WORLD, rank=rank, shuffle=True, seed=0)
    loader = DataLoader(ds, batch_size=16, sampler=sampler)
    torch.manual_seed(0)
    model = DistributedDataParallel(nn.Sequential(nn.Linear(8, 32), nn.ReLU(), nn.Linear(32, 2)))
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    with contextlib.redirect_stdout(io.StringIO()):
        run = lrkit.auto(model, opt, loader, F.cross_entropy, epochs=20)
    assert run.guard is not None
    batches = [b for _ in range(20) for b in loader]
    step, poisoned = 0, False
    for _ in range(run.remaining_steps + 20):
        if step >= run.remaining_steps:
            continue
        xb, yb = batches[step]
        loss = F.cross_entropy(model(xb), yb)
        if rank == 1 and step == 40 and not poisoned:
            loss, poisoned = loss * float("nan"), True
        loss.backward()
        if run.guard.check(loss, step):
            opt.step()
            run.scheduler.step()
            step += 1
        else:
            step = run.guard.resume_step or 0
        opt.zero_grad()
    return {"events": run.guard.events, "step": step, "params": _params(model)}


@pytest.fixture(scope="module")
def ranks(tmp_path_factory: pytest.TempPathFactory) -> list[dict[str, Any]]:
    return spawn(_worker, tmp_path_factory)


def _same(a: list[Any], b: list[Any]) -> bool:
    """The same events (a NaN loss equals a NaN loss)."""
    return [repr(e) for e in a] == [repr(e) for e in b]


def _one_model(a: list[Any], b: list[Any]) -> None:
    for p, q in zip(a, b, strict=True):
        assert torch.equal(p, q)


def test_a_nan_on_one_rank_rolls_every_rank_back_to_a_legitimate_run(ranks: list[dict[str, Any]]) -> None:
    r0, r1 = (r["nan"] for r in ranks)
    assert r0["error"] is None and r1["error"] is None
    assert _same(r0["events"], r1["events"])  # one decision
    (e,) = r0["events"]
    assert (e.step, e.reason, e.snapshot_step, e.lr_after) == (12, "nan", 10, (LR * FACTOR,))
    assert math.isnan(e.loss)
    assert r0["step"] == r1["step"] == N and r0["finite"] and r1["finite"]
    _one_model(r0["params"], r1["params"])  # the replicas are one model
    # ... and that model is the one a run without the poison gets with the cut LR from step 10 on
    _one_model(r0["params"], ranks[0]["reference"])
    _one_model(r1["params"], ranks[1]["reference"])


def test_a_loss_that_stays_high_on_one_rank_is_one_jump_for_all(ranks: list[dict[str, Any]]) -> None:
    r0, r1 = (r["jump"] for r in ranks)
    assert r0["error"] is None and r1["error"] is None
    assert _same(r0["events"], r1["events"])
    (e,) = r0["events"]  # high from step 12 on: the 5th high step in a row, back to the snapshot before
    assert (e.reason, e.step, e.snapshot_step) == ("jump", 16, 10)
    # the loss the guard judged is the mean of the ranks' own losses (rank 1's is ~1000x rank 0's)
    assert e.loss == pytest.approx((r0["local"][e.step] + r1["local"][e.step]) / 2, rel=1e-12)
    assert r1["local"][12] > 100 * r0["local"][12]  # the poisoned batch: rank 1 alone
    assert r0["step"] == r1["step"] == N
    _one_model(r0["params"], r1["params"])


def test_nan_in_one_replica_behind_a_finite_loss_rolls_every_rank_back(ranks: list[dict[str, Any]]) -> None:
    r0, r1 = (r["params"] for r in ranks)
    assert _same(r0["events"], r1["events"])
    (e,) = r0["events"]
    assert (e.reason, e.step, e.snapshot_step) == ("params", 15, 10) and math.isfinite(e.loss)
    assert r0["finite"] and r1["finite"] and r0["step"] == r1["step"] == N
    _one_model(r0["params"], r1["params"])


def test_sync_false_lets_each_rank_decide_alone_without_a_collective(ranks: list[dict[str, Any]]) -> None:
    r0, r1 = (r["separate"] for r in ranks)
    assert r0["calls"] == r1["calls"] == {}
    assert r0["events"] == [] and [(e.step, e.reason) for e in r1["events"]] == [(12, "nan")]


def test_a_plain_model_under_the_group_shares_one_decision_over_the_default_group(
    ranks: list[dict[str, Any]],
) -> None:
    r0, r1 = (r["plain_model"] for r in ranks)
    # one all-reduce per check (the loss, the params' flag, the scaler's skip flag, the bad-argument
    # flag, the step and the number of param groups with their squares), and one of a flag
    # after each snapshot (steps 0, 5, 10, 18) and rollback (step 12), so that all ranks hear of a failure
    assert r0["calls"] == r1["calls"] == {8: 20, 1: 5}
    assert _same(r0["events"], r1["events"]) and [(e.step, e.reason) for e in r0["events"]] == [(12, "nan")]


@pytest.mark.parametrize("key", ["scaler", "scaler_device"])
def test_one_ranks_scaler_skipping_max_skipped_steps_is_one_decision_within_the_one_sync(
    ranks: list[dict[str, Any]], key: str
) -> None:
    """Rank 1's scaler alone skips from step 6 on: its skip flag rides in the check's one all-reduce
    (8 numbers; no get_scale() host sync in a check, no second collective), so both ranks count the same
    4 skips and roll back together at step 10 to the snapshot of step 5, taken before the skips."""
    r0, r1 = (r[key] for r in ranks)
    assert _same(r0["events"], r1["events"])
    (e,) = r0["events"]
    assert (e.reason, e.step, e.snapshot_step, e.action) == ("scale", 10, 5, "rollback")
    assert r0["skips"] == 0 and r1["skips"] == 4  # rank 1's scaler alone skipped
    assert r0["calls"] == r1["calls"] and set(r0["calls"]) == {8, 1} and r0["calls"][8] == 30
    # get_scale() only in the snapshots (scaler.state_dict() calls it): the flag all-reduces less the
    # one after the rollback; none in the 30 checks
    assert r0["reads"] == r1["reads"] == r0["calls"][1] - 1
    assert r0["step"] == r1["step"]


def test_auto_under_ddp_keeps_the_replicas_one_model_through_a_rollback(ranks: list[dict[str, Any]]) -> None:
    a0, a1 = (r["auto"] for r in ranks)
    assert _same(a0["events"], a1["events"]) and [(e.step, e.reason) for e in a0["events"]] == [(40, "nan")]
    assert a0["step"] == a1["step"]
    _one_model(a0["params"], a1["params"])


def test_without_a_process_group_nothing_is_communicated(monkeypatch: pytest.MonkeyPatch) -> None:
    from lrkit.control import DivergenceGuard

    assert not dist.is_initialized()

    def refuse(*args: Any, **kwargs: Any) -> None:
        raise AssertionError("all_reduce without a process group")

    monkeypatch.setattr(dist, "all_reduce", refuse)
    model = torch.nn.Linear(2, 1)
    guard = DivergenceGuard(model, torch.optim.SGD(model.parameters(), lr=0.1), snapshot_every=2)
    assert [guard.check(v, s) for s, v in enumerate([1.0, 0.9, float("nan")])] == [True, True, False]


def test_sync_must_be_a_bool_or_a_process_group() -> None:
    from lrkit.control import DivergenceGuard

    model = torch.nn.Linear(2, 1)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    with pytest.raises(TypeError, match=r"sync must be True .* got str 'yes'"):
        DivergenceGuard(model, opt, sync="yes")  # type: ignore[arg-type]


# -- a rank that fails alone: every rank raises at once, none waits for it until the timeout ----------
TIMEOUT = 60  # the process group's: a rank left waiting in a collective fails only after this long
BAD_LOSSES: dict[str, Any] = {
    "list": [1.0],
    "str": "1.0",
    "tensor2": torch.ones(2),
    "none": None,
}


def _failing_worker(rank: int, store: str, out: str) -> None:
    join(rank, store, timeout=TIMEOUT)
    try:
        results: dict[str, Any] = {name: _fails(rank, loss={1: bad}) for name, bad in BAD_LOSSES.items()}
        results["both"] = _fails(rank, loss={0: "1.0", 1: [1.0]})
        results["step"] = _fails(rank, step={1: 3.0})
        results["snapshot"] = _fails(rank, broken="state_dict")
        results["rollback"] = _fails(rank, broken="load_state_dict")
        # the ranks are still in step: the next collective pairs with the same one on the other rank
        t = torch.tensor([float(rank + 1)])
        dist.all_reduce(t)
        results["after"] = float(t)
        results["good"] = _guarded(rank, "nan")  # and the guard works as before
        torch.save(results, os.path.join(out, f"rank{rank}.pt"))
    finally:
        dist.destroy_process_group()


def _fails(
    rank: int, loss: dict[int, Any] | None = None, step: dict[int, Any] | None = None, broken: str = ""
) -> dict[str, Any]:
    """A DDP run with the guard (snapshot every 5 steps) where, at step 7, this rank's ``check`` gets
    ``loss[rank]`` or ``step[rank]`` (when given); ``broken``: rank 1's optimizer fails to give its state
    for the snapshot of step 5 (``state_dict``) or to load it in the rollback of step 7, where rank 0's
    loss is NaN (``load_state_dict``): out of memory on one GPU. The error each rank raises, and how
    long its ``check`` took."""
    import torch.nn.functional as F

    from lrkit.control import DivergenceGuard

    model, opt = _model()
    if rank == 1 and broken:
        real = getattr(opt, broken)
        calls, fail_at = [0], {"state_dict": 2, "load_state_dict": 1}[broken]

        def failing(*args: Any, **kwargs: Any) -> Any:
            calls[0] += 1
            if calls[0] == fail_at:  # the snapshot of step 5 (the one of step 0 is the first); the rollback
                raise RuntimeError("CUDA out of memory (simulated)")
            return real(*args, **kwargs)

        setattr(opt, broken, failing)
    guard = DivergenceGuard(model, opt, snapshot_every=5)
    for s in range(10):
        x, y = _batch(rank, s)
        value = F.mse_loss(model(x), y)
        value.backward()
        arg_loss: Any = value
        arg_step: Any = s
        if s == 7:
            arg_loss = (loss or {}).get(rank, value)
            arg_step = (step or {}).get(rank, s)
            if broken == "load_state_dict" and rank == 0:
                arg_loss = value * float("nan")
        start = time.monotonic()
        try:
            guard.check(arg_loss, arg_step)
        except Exception as exc:
            return {
                "step": s,
                "type": type(exc).__name__,
                "error": str(exc),
                "seconds": time.monotonic() - start,
            }
        opt.step()
        opt.zero_grad()
    return {"step": None, "type": None, "error": None, "seconds": None}


@pytest.fixture(scope="module")
def failing(tmp_path_factory: pytest.TempPathFactory) -> list[dict[str, Any]]:
    return spawn(_failing_worker, tmp_path_factory)


def _quick(*results: dict[str, Any]) -> None:
    """Both ranks stopped at step 7, within seconds (their collective timeout is TIMEOUT)."""
    for r in results:
        assert r["step"] == 7, r
        assert r["seconds"] < TIMEOUT / 6, r


@pytest.mark.parametrize("kind", list(BAD_LOSSES))
def test_a_bad_loss_on_one_rank_stops_every_rank_at_once(failing: list[dict[str, Any]], kind: str) -> None:
    r0, r1 = (r[kind] for r in failing)
    _quick(r0, r1)
    # the rank with the bad loss: the error it gets without a process group
    bad = BAD_LOSSES[kind]
    assert r1["type"] == "TypeError"
    got = f"a Tensor of shape {tuple(bad.shape)}" if isinstance(bad, torch.Tensor) else type(bad).__name__
    expected = f"DivergenceGuard.check: loss must be a number or a one-element tensor, got {got}"
    assert r1["error"].startswith(expected), r1["error"]
    assert isinstance(bad, torch.Tensor) or repr(bad) in r1["error"]
    # the other rank: which rank got what, rather than a collective timeout half an hour later
    assert r0["type"] == "RuntimeError"
    assert r0["error"].startswith("DivergenceGuard: rank 1 got a bad argument (TypeError: " + expected), r0
    assert "every rank stops here" in r0["error"]


def test_a_bad_loss_on_every_rank_raises_each_ranks_own_error(failing: list[dict[str, Any]]) -> None:
    r0, r1 = (r["both"] for r in failing)
    _quick(r0, r1)
    assert (r0["type"], r1["type"]) == ("TypeError", "TypeError")
    assert r0["error"].endswith("got str '1.0'") and r1["error"].endswith("got list [1.0]")


def test_a_bad_step_on_one_rank_stops_every_rank_at_once(failing: list[dict[str, Any]]) -> None:
    r0, r1 = (r["step"] for r in failing)
    _quick(r0, r1)
    assert (r1["type"], r1["error"]) == (
        "TypeError",
        "DivergenceGuard.check: step must be an int, got float 3.0",
    )
    assert r0["type"] == "RuntimeError"
    assert r0["error"].startswith(
        "DivergenceGuard: rank 1 got a bad argument (TypeError: DivergenceGuard.check: step must be an int"
    )


@pytest.mark.parametrize(
    ("case", "what"),
    [
        ("snapshot", "failed to take the snapshot of step 5"),
        ("rollback", "failed to roll back to the snapshot of step 5"),
    ],
)
def test_a_snapshot_or_rollback_failing_on_one_rank_stops_every_rank(
    failing: list[dict[str, Any]], case: str, what: str
) -> None:
    r0, r1 = (r[case] for r in failing)
    step = 5 if case == "snapshot" else 7
    for r in (r0, r1):
        assert r["step"] == step and r["seconds"] < TIMEOUT / 6, r
    assert (r1["type"], r1["error"]) == ("RuntimeError", "CUDA out of memory (simulated)")
    assert r0["type"] == "RuntimeError"
    assert r0["error"].startswith(
        f"DivergenceGuard: rank 1 {what} (RuntimeError: CUDA out of memory (simulated))"
    )


def test_after_a_rank_failed_alone_the_ranks_are_still_in_step(failing: list[dict[str, Any]]) -> None:
    assert [r["after"] for r in failing] == [3.0, 3.0]  # 1 + 2: the same all-reduce on both ranks
    g0, g1 = (r["good"] for r in failing)
    assert g0["error"] is None and _same(g0["events"], g1["events"]) and len(g0["events"]) == 1
    _one_model(g0["params"], g1["params"])
