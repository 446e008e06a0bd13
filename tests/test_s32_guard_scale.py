"""The guard and a GradScaler (reviewer RV's findings 2 and 3): a scale below 1 is not by itself a
divergence, ``max_skipped`` skipped steps in a row are; a check reads the scaler without a host sync of
its own.

Before, ``min_scale=1.0`` stopped healthy float16 runs: a sum-reduced loss whose scaler settles below 1
(rolled back three times, then a DivergenceError), and a ``GradScaler(init_scale=0.5)`` at step 0 ("after
0 skipped steps"). The explorer's collapse (every gradient NaN behind a finite loss) must still end in a
DivergenceError: tests/test_s32_amp.py::test_a_scaler_that_skips_every_step_is_a_divergence.
"""

from __future__ import annotations

import re
from typing import Any

import pytest

torch = pytest.importorskip("torch")
F = pytest.importorskip("torch.nn.functional")

import lrkit.control.guard as guard_module  # noqa: E402
from lrkit.control import DivergenceError, DivergenceGuard  # noqa: E402


@pytest.fixture(params=["host", "device"])
def path(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Both ways a check reads the scale: "host" (a CPU scale, read as a float) and "device" (the path
    for a GPU's scale: compared on its device and read with the loss in one tolist), run here on the
    CPU by telling the guard that a CPU tensor syncs."""
    if request.param == "device":
        monkeypatch.setattr(guard_module, "_syncs", lambda device: True)
    return str(request.param)


def _net(seed: int = 0) -> Any:
    torch.manual_seed(seed)
    return torch.nn.Sequential(torch.nn.Linear(10, 32), torch.nn.ReLU(), torch.nn.Linear(32, 1))


def _batch(step: int) -> tuple[Any, Any]:
    g = torch.Generator().manual_seed(step)
    x = torch.randn(32, 10, generator=g)
    return x, x[:, :3].sum(dim=1, keepdim=True) + 0.1 * torch.randn(32, 1, generator=g)


def test_a_sum_reduced_fp16_run_whose_scale_settles_below_1_trains() -> None:
    """RV's guard_sum.py, smaller: the weight gradients of a loss summed over 4000 samples pass float16's
    65504 at scale 1, so the scaler skips its way from 65536 down below 1 (about log2(65536 / needed)
    skips, fewer than 32) and then trains. The guard records nothing, and the loss falls as it does
    without the guard (the same run, bit for bit)."""

    def run(guarded: bool) -> tuple[list[float], float, list[Any]]:
        torch.manual_seed(0)
        model = torch.nn.Linear(16, 1)
        opt = torch.optim.SGD(model.parameters(), lr=5e-7)
        scaler = torch.amp.GradScaler("cpu")
        guard = DivergenceGuard(model, opt, scaler=scaler) if guarded else None
        g = torch.Generator().manual_seed(1)
        x = torch.randn(4000, 16, generator=g) * 3
        y = x @ torch.randn(16, 1, generator=g)
        losses = []
        for step in range(120):
            opt.zero_grad()
            with torch.autocast("cpu", dtype=torch.float16):
                out = model(x)
            loss = ((out.float() - y) ** 2).sum()
            losses.append(float(loss.detach()))
            scaler.scale(loss).backward()
            if guard is not None:
                assert guard.check(loss, step)
            scaler.step(opt)
            scaler.update()
        return losses, scaler.get_scale(), [] if guard is None else guard.events

    losses, scale, events = run(guarded=True)
    reference, ref_scale, _ = run(guarded=False)
    assert events == []
    assert scale == ref_scale < 1.0  # the scale this run needs is below 1
    assert losses == reference
    assert losses[-1] < 1e-3 * losses[0]


@pytest.mark.parametrize("init_scale", [0.5, 2.0**-10])
def test_a_scaler_that_starts_below_1_is_not_a_divergence(init_scale: float, path: str) -> None:
    """RV's guard_scale.py: GradScaler(init_scale=0.5), no skip at all; before, a DivergenceError at
    step 0 saying 'after 0 skipped steps'. So is a resume whose saved scale is below 1."""
    for resumed in (False, True):
        model = _net()
        opt = torch.optim.SGD(model.parameters(), lr=0.01)
        scaler = torch.amp.GradScaler("cpu", init_scale=1.0 if resumed else init_scale)
        if resumed:
            scaler.load_state_dict({**scaler.state_dict(), "scale": init_scale})
        guard = DivergenceGuard(model, opt, scaler=scaler)
        for step in range(30):
            x, y = _batch(step)
            loss = F.mse_loss(model(x), y)
            scaler.scale(loss).backward()
            assert guard.check(loss, step)
            scaler.step(opt)
            scaler.update()
            opt.zero_grad()
        assert guard.events == [] and scaler.get_scale() == init_scale


def _skipping_run(max_skipped: int, nan_steps: range, steps: int = 40) -> DivergenceGuard:
    """fp16 autocast; every gradient NaN behind a finite loss in the steps ``nan_steps`` (the first
    time each is run: a replay after a rollback is clean)."""
    model = _net(1)
    opt = torch.optim.SGD(model.parameters(), lr=0.02)
    scaler = torch.amp.GradScaler("cpu", init_scale=2.0**10)
    guard = DivergenceGuard(model, opt, scaler=scaler, snapshot_every=5, max_skipped=max_skipped)
    poisoned: set[int] = set()
    step = 0
    for _ in range(4 * steps):
        if step >= steps:
            break
        x, y = _batch(step)
        with torch.autocast("cpu", dtype=torch.float16):
            loss = F.mse_loss(model(x).float(), y)
        if step in nan_steps and step not in poisoned:
            poisoned.add(step)
            w = model[0].weight
            loss = loss + 0.0 * torch.sqrt(w - w.detach()).sum()
        scaler.scale(loss).backward()
        if guard.check(loss, step):
            scaler.step(opt)
            scaler.update()
            step += 1
        else:
            step = guard.resume_step
        opt.zero_grad()
    assert step == steps
    return guard


@pytest.mark.parametrize("k", [1, 3, 6])
def test_max_skipped_in_a_row_is_the_boundary(k: int, path: str) -> None:
    """A property of the rule: k - 1 skipped steps in a row are no divergence; k are one, seen at the
    check after the k-th skip (the scale fell at k checks in a row), rolled back to the snapshot before
    the skips; the replay steps again and the run ends."""
    start = 12
    assert _skipping_run(k, range(start, start + k - 1)).events == []
    guard = _skipping_run(k, range(start, start + k))
    (event,) = guard.events
    assert (event.reason, event.step, event.action) == ("scale", start + k, "rollback")
    assert event.snapshot_step <= start


def test_skips_that_are_not_in_a_row_do_not_add_up(path: str) -> None:
    """Three runs of 2 skips with applied steps between them: max_skipped=3 never fires."""
    nan = {12, 13, 16, 17, 20, 21}
    model = _net(1)
    opt = torch.optim.SGD(model.parameters(), lr=0.02)
    scaler = torch.amp.GradScaler("cpu", init_scale=2.0**10)
    guard = DivergenceGuard(model, opt, scaler=scaler, snapshot_every=5, max_skipped=3)
    for step in range(30):
        x, y = _batch(step)
        with torch.autocast("cpu", dtype=torch.float16):
            loss = F.mse_loss(model(x).float(), y)
        if step in nan:
            w = model[0].weight
            loss = loss + 0.0 * torch.sqrt(w - w.detach()).sum()
        scaler.scale(loss).backward()
        assert guard.check(loss, step)
        scaler.step(opt)
        scaler.update()
        opt.zero_grad()
    assert guard.events == [] and scaler.get_scale() == 2.0**10 / 2**6


def test_a_check_does_not_read_the_scale_with_a_host_sync_of_its_own(path: str) -> None:
    """The skip is compared on the scale's device and read with the loss (one ``tolist``): no
    ``get_scale()`` (an ``.item()``) in a check; only a snapshot's ``scaler.state_dict()`` calls it."""
    model = _net()
    opt = torch.optim.SGD(model.parameters(), lr=0.01)
    scaler = torch.amp.GradScaler("cpu", init_scale=2.0**10)
    guard = DivergenceGuard(model, opt, scaler=scaler, snapshot_every=1000)
    reads = [0]
    real = scaler.get_scale

    def counting() -> float:
        reads[0] += 1
        return real()

    scaler.get_scale = counting
    for step in range(20):
        x, y = _batch(step)
        with torch.autocast("cpu", dtype=torch.float16):
            loss = F.mse_loss(model(x).float(), y)
        if step in (5, 6):
            w = model[0].weight
            loss = loss + 0.0 * torch.sqrt(w - w.detach()).sum()
        scaler.scale(loss).backward()
        assert guard.check(loss, step)
        scaler.step(opt)
        scaler.update()
        opt.zero_grad()
    assert reads[0] == 1  # the one snapshot, at step 0
    assert guard.events == []


def test_the_message_states_the_skips_and_the_scale(path: str) -> None:
    """max_recoveries=0: the first run of max_skipped skips stops, naming their count and the scale the
    guard read (the scale before them halved once per skip), not a minimum scale."""
    model = _net(1)
    opt = torch.optim.SGD(model.parameters(), lr=0.02)
    scaler = torch.amp.GradScaler("cpu", init_scale=2.0**10)
    guard = DivergenceGuard(model, opt, scaler=scaler, snapshot_every=5, max_skipped=4, max_recoveries=0)
    with pytest.raises(DivergenceError) as info:
        for step in range(30):
            x, y = _batch(step)
            with torch.autocast("cpu", dtype=torch.float16):
                loss = F.mse_loss(model(x).float(), y)
            if step >= 10:
                w = model[0].weight
                loss = loss + 0.0 * torch.sqrt(w - w.detach()).sum()
            scaler.scale(loss).backward()
            guard.check(loss, step)
            scaler.step(opt)
            scaler.update()
            opt.zero_grad()
    message = str(info.value)
    found = re.search(r"GradScaler skipped (\d+) optimizer steps in a row, its scale fell to (\S+) ", message)
    assert found and int(found[1]) == 4 and float(found[2]) == 2.0**10 / 2**4
    assert guard.events[-1].step == 14 and "min_scale" not in message and "max_skipped=None" in message


def test_max_skipped_replaces_min_scale() -> None:
    model = _net()
    opt = torch.optim.SGD(model.parameters(), lr=0.01)
    with pytest.raises(TypeError, match="min_scale"):
        DivergenceGuard(model, opt, scaler=torch.amp.GradScaler("cpu"), min_scale=1.0)  # type: ignore[call-arg]
    assert DivergenceGuard(model, opt).max_skipped == 32
