"""What the divergence guard's snapshots hold, and where: ``snapshot_device`` and ``snapshot_bytes``.

References: the bytes of the tensors in ``model.state_dict()`` and in the optimizer's state, counted
here (numel x element size), and the state recorded at the start of every step of the run itself: after
a rollback to step ``s`` the model and the optimizer equal what they were when step ``s`` first began,
exactly (``torch.equal``). There is no GPU here: "on the asked device" is checked with ``"cpu"`` for a
model on the CPU (the copies must still be copies, and come back on the devices the state was on).
"""

from __future__ import annotations

import copy
from typing import Any

import pytest
import torch
import torch.nn.functional as F

from lrkit.control import DivergenceGuard


def _make(opt: str = "adam") -> tuple[torch.nn.Module, torch.optim.Optimizer]:
    torch.manual_seed(0)
    model = torch.nn.Sequential(
        torch.nn.Linear(8, 256), torch.nn.BatchNorm1d(256), torch.nn.ReLU(), torch.nn.Linear(256, 256),
        torch.nn.ReLU(), torch.nn.Linear(256, 1),
    )  # fmt: skip
    if opt == "adam":
        return model, torch.optim.Adam(model.parameters(), lr=1e-2)
    return model, torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)


def _batch(step: int) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(step)
    return torch.randn(32, 8, generator=g), torch.randn(32, 1, generator=g)


def _nbytes(obj: Any) -> int:
    if isinstance(obj, torch.Tensor):
        return obj.numel() * obj.element_size()
    if isinstance(obj, dict):
        return sum(_nbytes(v) for v in obj.values())
    return 0


def _train(
    guard: DivergenceGuard, model: torch.nn.Module, opt: torch.optim.Optimizer, n: int, nan_at: int | None
) -> dict[int, dict[str, Any]]:
    """Train ``n`` steps (a NaN loss once at ``nan_at``), asserting after each rollback that the model
    and the optimizer are what they were when the resumed step first began; returns those states."""
    starts: dict[int, dict[str, Any]] = {}
    step, poisoned = 0, False
    while step < n:
        starts[step] = {"model": copy.deepcopy(model.state_dict()), "opt": copy.deepcopy(opt.state_dict())}
        x, y = _batch(step)
        loss = F.mse_loss(model(x), y)
        if step == nan_at and not poisoned:
            loss, poisoned = loss * float("nan"), True
        loss.backward()
        if guard.check(loss, step):
            opt.step()
            step += 1
        else:
            assert guard.resume_step is not None
            step = guard.resume_step
            _equal(model.state_dict(), starts[step]["model"])
            _equal(opt.state_dict()["state"], starts[step]["opt"]["state"])
        opt.zero_grad()
    return starts


def _equal(a: Any, b: Any) -> None:
    if isinstance(a, torch.Tensor):
        assert isinstance(b, torch.Tensor) and a.device == b.device and a.dtype == b.dtype
        assert torch.equal(a, b)
    elif isinstance(a, dict):
        assert a.keys() == b.keys()
        for k in a:
            _equal(a[k], b[k])
    else:
        assert a == b


def _snapshot_tensors(guard: DivergenceGuard) -> list[torch.Tensor]:
    out: list[torch.Tensor] = []

    def walk(o: Any) -> None:
        if isinstance(o, torch.Tensor):
            out.append(o)
        elif hasattr(o, "tensor") and isinstance(o.tensor, torch.Tensor):
            out.append(o.tensor)
        elif isinstance(o, dict):
            for v in o.values():
                walk(v)
        elif isinstance(o, (list, tuple)):
            for v in o:
                walk(v)

    for snap in guard._snapshots:
        walk([snap.model, snap.optimizer])
    return out


@pytest.mark.parametrize("opt_name, per_param", [("adam", 3), ("sgd", 2)])
def test_snapshot_bytes_are_keep_copies_of_the_model_and_the_optimizer_state(
    opt_name: str, per_param: int
) -> None:
    """Each snapshot holds the model's state and the optimizer's: for Adam (exp_avg, exp_avg_sq) 3x the
    parameter bytes, for SGD with momentum 2x, plus the buffers and the small ones (Adam's ``step``, the
    RNG state); ``keep`` (2) of them are kept."""
    model, opt = _make(opt_name)
    guard = DivergenceGuard(model, opt, snapshot_every=5)
    _train(guard, model, opt, 12, None)  # snapshots at steps 0, 5, 10: those of 5 and 10 are kept
    params = sum(p.numel() * p.element_size() for p in model.parameters())
    one = _nbytes(model.state_dict()) + sum(_nbytes(s) for s in opt.state.values())
    rng = torch.get_rng_state().numel()
    assert guard.snapshot_bytes == {"cpu": 2 * (one + rng)}
    small = one - per_param * params  # buffers (BatchNorm) and Adam's steps
    assert 0 < small < 0.02 * params
    assert guard.snapshot_bytes["cpu"] == pytest.approx(2 * per_param * params, rel=0.02)


def test_before_any_snapshot_nothing_is_held() -> None:
    model, opt = _make()
    assert DivergenceGuard(model, opt).snapshot_bytes == {}


@pytest.mark.parametrize("device", [None, "cpu", torch.device("cpu")])
def test_snapshots_on_the_asked_device_are_copies_and_a_rollback_restores_bit_for_bit(device: Any) -> None:
    model, opt = _make()
    # NaN/inf only: the snapshot steps do not depend on the jump test (with it, step 2's loss of 7.0, over
    # 4x the first, 0.83, is a high step, applied but not counted, and the snapshots move one step later)
    guard = DivergenceGuard(model, opt, threshold=None, snapshot_every=5, snapshot_device=device)
    assert guard.snapshot_device == (None if device is None else torch.device("cpu"))
    _train(guard, model, opt, 20, nan_at=12)  # asserts that the rollback restored bit for bit
    assert [(e.step, e.snapshot_step) for e in guard.events] == [(12, 10)]
    held = _snapshot_tensors(guard)  # those of steps 10 (restored, then trained on) and 15
    assert len(held) > 2 * len(model.state_dict()) and all(t.device == torch.device("cpu") for t in held)
    live = {t.untyped_storage().data_ptr() for t in model.state_dict().values()} | {
        t.untyped_storage().data_ptr() for s in opt.state.values() for t in s.values()
    }
    assert not live & {t.untyped_storage().data_ptr() for t in held}  # copies, not aliases
    # the optimizer's state is back where it was: on the parameters' device, Adam's step as a tensor
    for p, s in opt.state.items():
        assert s["exp_avg"].device == p.device and s["step"].device == torch.device("cpu")


def test_a_rollback_leaves_the_snapshot_intact_for_the_next_one() -> None:
    """The restored state is a new copy: the steps after the first rollback do not write into the
    snapshot, so a second rollback to it finds it as it was taken (keep=1: one snapshot to go back to).
    The BatchNorm's running statistics are those from before the snapshot step's forward, too."""
    model, opt = _make()
    guard = DivergenceGuard(
        model, opt, threshold=None, snapshot_every=3, keep=1, snapshot_device="cpu", max_recoveries=5
    )  # NaN/inf only, as above
    starts = _train(guard, model, opt, 4, None)  # snapshots at steps 0 and 3; 3 is kept
    for nan_at in (4, 5):
        _train_from(guard, model, opt, 3, nan_at)
        _equal(model.state_dict(), starts[3]["model"])
        _equal(opt.state_dict()["state"], starts[3]["opt"]["state"])
    assert [(e.step, e.snapshot_step) for e in guard.events] == [(4, 3), (5, 3)]


def _train_from(
    guard: DivergenceGuard, model: torch.nn.Module, opt: torch.optim.Optimizer, start: int, nan_at: int
) -> None:
    """Steps ``start``.. up to a NaN at ``nan_at`` (rolled back)."""
    for step in range(start, nan_at + 1):
        x, y = _batch(step)
        loss = F.mse_loss(model(x), y)
        loss.backward()
        if step == nan_at:
            assert not guard.check(loss * float("nan"), step)
        else:
            assert guard.check(loss, step)
            opt.step()
        opt.zero_grad()


@pytest.mark.parametrize(
    "device, exc, match",
    [
        ("gpu", ValueError, r"snapshot_device must be a device that can hold the snapshots .* got 'gpu'"),
        ("meta", ValueError, r"snapshot_device must be .* got 'meta': a meta tensor holds no data"),
        (
            3,
            TypeError,
            r"snapshot_device must be None, a device name .* or a torch.device, got int 3",
        ),
    ],
)
def test_a_bad_snapshot_device_is_named(device: Any, exc: type, match: str) -> None:
    model, opt = _make()
    with pytest.raises(exc, match=match):
        DivergenceGuard(model, opt, snapshot_device=device)


@pytest.mark.skipif(torch.cuda.is_available(), reason="CUDA is available here")
def test_a_device_torch_was_built_without_is_refused_when_the_guard_is_built() -> None:
    model, opt = _make()
    with pytest.raises(
        ValueError, match=r"snapshot_device must be .* got 'cuda': Torch not compiled with CUDA"
    ):
        DivergenceGuard(model, opt, snapshot_device="cuda")


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA: snapshots in host memory")
def test_snapshots_of_a_cuda_model_in_host_memory() -> None:  # pragma: no cover - no GPU in CI
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(8, 64), torch.nn.ReLU(), torch.nn.Linear(64, 1)).cuda()
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    guard = DivergenceGuard(model, opt, snapshot_every=5, snapshot_device="cpu")
    x, y = torch.randn(32, 8, device="cuda"), torch.randn(32, 1, device="cuda")
    for step in range(12):
        loss = F.mse_loss(model(x), y) * (float("nan") if step == 11 else 1.0)
        loss.backward()
        if guard.check(loss, step):
            opt.step()
        opt.zero_grad()
    assert set(guard.snapshot_bytes) == {"cpu"}
    params = sum(p.numel() * p.element_size() for p in model.parameters())
    assert guard.snapshot_bytes["cpu"] == pytest.approx(2 * 3 * params, rel=0.02)
    for p, s in opt.state.items():
        assert s["exp_avg"].device == p.device and s["step"].device == torch.device("cpu")
