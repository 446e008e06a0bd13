"""Gradient clipping (``max_grad_norm``): the LR finder, the in-run ramp, ``lrkit.auto`` and a task's
training loop step as a clipped training does. Checked at every ``optimizer.step()`` through a step
pre-hook that measures the global gradient norm the optimizer is about to use."""

from __future__ import annotations

import math
from typing import Any

import pytest

torch = pytest.importorskip("torch")
pytestmark = pytest.mark.usefixtures("one_torch_thread")

CLIP = 0.05  # small enough that the test's gradients are clipped from the first steps


def _loader() -> Any:
    x = torch.randn(256, 8, generator=torch.Generator().manual_seed(1))
    y = (x[:, :4].sum(dim=1) > 0).long()
    return torch.utils.data.DataLoader(
        torch.utils.data.TensorDataset(x, y),
        batch_size=16,
        shuffle=True,
        generator=torch.Generator().manual_seed(0),
    )


def _model() -> Any:
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Linear(8, 32), torch.nn.ReLU(), torch.nn.Linear(32, 2))


def _grad_norm(optimizer: Any) -> float:
    grads = [
        p.grad.detach().flatten() for g in optimizer.param_groups for p in g["params"] if p.grad is not None
    ]
    return float(torch.cat(grads).norm())


def _watch(optimizer: Any) -> list[float]:
    """The gradient norm seen by every optimizer.step() from now on."""
    norms: list[float] = []
    optimizer.register_step_pre_hook(lambda opt, args, kwargs: norms.append(_grad_norm(opt)))
    return norms


def _watch_every_optimizer(monkeypatch: Any) -> list[float]:
    """The gradient norm seen by every step of every optimizer created from now on (a task builds its
    own)."""
    norms: list[float] = []
    real = torch.optim.Optimizer.__init__

    def init(self: Any, *args: Any, **kwargs: Any) -> None:
        real(self, *args, **kwargs)
        self.register_step_pre_hook(lambda opt, a, k: norms.append(_grad_norm(opt)))

    monkeypatch.setattr(torch.optim.Optimizer, "__init__", init)
    return norms


def _clipped(norms: list[float], c: float) -> bool:
    return all(n <= c * (1 + 1e-5) for n in norms if math.isfinite(n))


@pytest.mark.parametrize("clip", [None, CLIP])
def test_find_lr_clips_every_step_of_the_test(clip: float | None) -> None:
    from lrkit.finder import find_lr

    model = _model()
    opt = torch.optim.SGD(model.parameters(), lr=1e-3)
    norms = _watch(opt)
    find_lr(model, opt, _loader(), torch.nn.functional.cross_entropy, num_steps=40, max_grad_norm=clip)
    assert len(norms) >= 20
    if clip is None:  # the control: these gradients are larger than CLIP, so the check below can fail
        assert max(norms) > 2 * CLIP
    else:
        assert _clipped(norms, clip)


def test_find_lr_clips_the_true_gradient_under_a_grad_scaler() -> None:
    """With AMP's scaler the gradients are unscaled before clipping (PyTorch's AMP recipe): the norm the
    optimizer steps with is at most CLIP, not CLIP x the loss scale."""
    from lrkit.finder import find_lr

    model = _model()
    opt = torch.optim.SGD(model.parameters(), lr=1e-3)
    norms = _watch(opt)
    scaler = torch.amp.GradScaler("cpu", init_scale=1024.0)
    find_lr(
        model, opt, _loader(), torch.nn.functional.cross_entropy,
        num_steps=30, grad_scaler=scaler, max_grad_norm=CLIP,
    )  # fmt: skip
    assert len(norms) >= 20 and _clipped(norms, CLIP)
    assert max(norms) > 0.5 * CLIP  # clipped to CLIP, not to CLIP / 1024


def test_a_clipped_step_equals_clip_grad_norm_by_hand() -> None:
    """One rung of the in-run ramp against a hand-written clipped SGD step from the same weights."""
    from lrkit.finder.in_run import ramp_in_run

    torch.manual_seed(0)
    model, ref = _model(), _model()
    x, y = next(iter(_loader()))
    batches = [(x, y)] * 200
    opt = torch.optim.SGD(model.parameters(), lr=1e-3)
    seen: list[list[Any]] = []
    opt.register_step_post_hook(
        lambda o, a, k: seen.append([p.detach().clone() for p in model.parameters()]) if not seen else None
    )
    ramp_in_run(model, opt, batches, torch.nn.functional.cross_entropy, max_grad_norm=CLIP, start_lr=0.5)
    ref_opt = torch.optim.SGD(ref.parameters(), lr=0.5)
    torch.nn.functional.cross_entropy(ref(x), y).backward()
    assert _grad_norm(ref_opt) > CLIP  # the clip is active on this step
    torch.nn.utils.clip_grad_norm_(ref.parameters(), CLIP)
    ref_opt.step()
    for got, want in zip(seen[0], ref.parameters(), strict=True):
        torch.testing.assert_close(got, want.detach())


def test_the_in_run_ramp_clips_every_step() -> None:
    from lrkit.finder.in_run import ramp_in_run

    model = _model()
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    norms = _watch(opt)
    ramp_in_run(model, opt, _loader(), torch.nn.functional.cross_entropy, max_grad_norm=CLIP)
    assert len(norms) >= 20 and _clipped(norms, CLIP)


@pytest.mark.parametrize("bad", [0, -1.0, math.nan, math.inf, "1.0", True, [1.0]])
def test_a_bad_max_grad_norm_is_named_before_any_step(bad: Any) -> None:
    from lrkit.finder import find_lr
    from lrkit.finder.in_run import ramp_in_run
    from lrkit.tasks import TaskParts

    model = _model()
    opt = torch.optim.SGD(model.parameters(), lr=1e-3)
    norms = _watch(opt)
    for call in (find_lr, ramp_in_run):
        with pytest.raises(ValueError, match="max_grad_norm must be a finite number > 0"):
            call(model, opt, _loader(), torch.nn.functional.cross_entropy, max_grad_norm=bad)
    with pytest.raises(ValueError, match="TaskParts: max_grad_norm"):
        TaskParts(model, _loader(), _loader(), torch.nn.functional.cross_entropy, max_grad_norm=bad)
    assert norms == []


def _clipping_task(seed: int = 0) -> Any:
    from lrkit.tasks import TaskParts

    torch.manual_seed(seed)
    return TaskParts(
        _model(), _loader(), _loader(), torch.nn.functional.cross_entropy,
        epochs=3, optimizer="adam", max_grad_norm=CLIP,
    )  # fmt: skip


def test_a_task_s_max_grad_norm_reaches_its_training_and_its_finder(monkeypatch: Any) -> None:
    """TaskParts(max_grad_norm=c): train_loop (the lab, tuning), Task.find_lr and lrkit.auto's
    train_task all clip at c."""
    from lrkit.auto import train_task
    from lrkit.tasks import Task

    norms = _watch_every_optimizer(monkeypatch)
    task = Task("clipped", _clipping_task)
    task.train_run(0.01, epochs=2)
    assert len(norms) == 2 * 16 and _clipped(norms, CLIP)
    norms.clear()
    task.find_lr(num_steps=30)
    assert len(norms) >= 20 and _clipped(norms, CLIP)
    norms.clear()
    out = train_task(_clipping_task(), search="in_run")
    assert len(norms) >= 3 * 16 and _clipped(norms, CLIP)
    assert out["train_steps"] == 3 * 16


def test_cli_find_max_grad_norm_is_passed_to_the_test(monkeypatch: Any, tmp_path: Any) -> None:
    import lrkit.finder.torch_driver as driver
    from lrkit.cli import main

    got: list[Any] = []
    real = driver.find_lr

    def spy(*args: Any, **kwargs: Any) -> Any:
        got.append(kwargs.get("max_grad_norm"))
        return real(*args, **{**kwargs, "num_steps": 20, "repeats": 1})

    monkeypatch.setattr(driver, "find_lr", spy)
    monkeypatch.setattr("lrkit.finder.find_lr", spy)
    main(["find", "--task", "digits-mlp-sgd", "--max-grad-norm", "0.5", "--out", "none", "--repeats", "1"])
    main(["find", "--task", "digits-mlp-sgd", "--out", "none", "--repeats", "1"])
    assert got == [0.5, None]
    # an argparse error, as for any bad number flag
    bad = main(["find", "--task", "digits-mlp-sgd", "--max-grad-norm", "-1", "--out", "none"])
    assert bad == 2


def test_the_in_run_ramp_goes_past_lr_10_when_a_clipped_loss_still_falls_there() -> None:
    """Clipped SGD moves at most lr x c per step: on a quadratic bowl at distance ~1 with c = 0.01 its
    loss falls until lr x c nears the distance, i.e. past LR 10 (the separate test's end). The in-run
    ramp ends at END_LR = 1e3, a bound only (it stops at the rise), so it finds the bottom; stopped at
    10 it would have seen a curve still falling."""
    from lrkit.finder.in_run import END_LR, ramp_in_run

    assert END_LR == 1e3
    target = torch.ones(64) / 8.0  # |target| = 1

    class Bowl(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.w = torch.nn.Parameter(torch.zeros(64))

        def forward(self, x: Any) -> Any:
            return ((self.w - target) ** 2).sum() + 0.0 * x.sum()

    batches = [(torch.zeros(1), torch.zeros(1))] * 400

    def ramp(**kw: Any) -> Any:
        model = Bowl()
        opt = torch.optim.SGD(model.parameters(), lr=1e-3)
        return ramp_in_run(model, opt, batches, forward=lambda m, b: m(b[0]), max_grad_norm=0.01, **kw)

    found = ramp()
    assert found.result.trusted and found.result.suggestion is not None and found.result.suggestion > 1.0
    assert found.result.curves[0].lrs[-1] > 10.0
    short = ramp(end_lr=10.0)
    assert not short.result.trusted and "still falling" in short.result.reason


def test_cli_auto_max_grad_norm_clips_the_search_and_the_training(tmp_path: Any, monkeypatch: Any) -> None:
    """lrkit auto --max-grad-norm C (as lrkit find's): every optimizer step of the ramp and of the
    training that follows sees a gradient norm of at most C."""
    import json

    from lrkit.cli import main

    norms = _watch_every_optimizer(monkeypatch)
    out = tmp_path / "auto.json"
    argv = ["auto", "--task", "digits-mlp-adam", "--epochs", "2", "--max-grad-norm", str(CLIP)]
    assert main([*argv, "--json", str(out)]) == 0
    steps = json.loads(out.read_text())["train_steps"]
    assert len(norms) >= steps and _clipped(norms, CLIP)
