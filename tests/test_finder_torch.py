"""The PyTorch driver: exact restore, torch-lr-finder agreement, accumulation, GradScaler, batches."""

from __future__ import annotations

import random
import re
import subprocess
import sys
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest

torch = pytest.importorskip("torch")
nn = torch.nn
F = torch.nn.functional

from lrkit.finder import find_lr, lr_ramp  # noqa: E402
from lrkit.finder.torch_driver import default_forward  # noqa: E402

pytestmark = pytest.mark.usefixtures("one_torch_thread")


# --- fixtures -------------------------------------------------------------------------------------
def make_data(n: int = 64, seed: int = 0) -> tuple[Any, Any]:
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 4, generator=g)
    y = (x[:, 0] + 0.5 * x[:, 1] > 0).long() + (x[:, 2] > 1).long()
    return x, y


def make_loader(batch_size: int = 8, shuffle: bool = True, n: int = 64) -> Any:
    x, y = make_data(n)
    ds = torch.utils.data.TensorDataset(x, y)
    return torch.utils.data.DataLoader(
        ds, batch_size=batch_size, shuffle=shuffle, generator=torch.Generator().manual_seed(123)
    )


def make_model(bn: bool = True, dropout: bool = True) -> Any:
    torch.manual_seed(0)
    layers: list[Any] = [nn.Linear(4, 16)]
    if bn:
        layers.append(nn.BatchNorm1d(16))
    layers.append(nn.ReLU())
    if dropout:
        layers.append(nn.Dropout(0.2))
    layers.append(nn.Linear(16, 3))
    return nn.Sequential(*layers)


def trained_setup(opt_name: str = "adam") -> tuple[Any, Any, Any]:
    """A model and optimizer with non-trivial state: two param groups, a few steps taken, grads set."""
    model = make_model()
    groups = [
        {"params": model[0].parameters(), "lr": 1e-3},
        {"params": list(model[1].parameters()) + list(model[4].parameters()), "lr": 2.5e-4},
    ]
    opt = torch.optim.Adam(groups) if opt_name == "adam" else torch.optim.SGD(groups, momentum=0.9)
    loader = make_loader()
    for x, y in list(loader)[:3]:
        opt.zero_grad()
        F.cross_entropy(model(x), y).backward()
        opt.step()
    x, y = next(iter(loader))
    F.cross_entropy(model(x), y).backward()  # leave gradients behind
    model.eval()  # a non-default mode that must come back
    model[1].train()
    return model, opt, loader


def everything(model: Any, opt: Any, loader: Any, scaler: Any = None) -> dict[str, Any]:
    """Copies of every tensor and setting the range test could touch, by name."""
    out: dict[str, Any] = {}
    for name, p in model.named_parameters():
        out[f"param {name}"] = p.detach().clone()
        out[f"grad {name}"] = None if p.grad is None else p.grad.clone()
    for name, b in model.named_buffers():
        out[f"buffer {name}"] = b.clone()
    for name, m in model.named_modules():
        out[f"training {name}"] = m.training
    for i, (p, st) in enumerate(opt.state.items()):
        for k, v in st.items():
            out[f"opt state {i} {k} of {tuple(p.shape)}"] = v.clone() if torch.is_tensor(v) else v
    for i, g in enumerate(opt.param_groups):
        for k, v in g.items():
            if k != "params":
                out[f"group {i} {k}"] = v.clone() if torch.is_tensor(v) else v
    if scaler is not None:
        for k, v in scaler.state_dict().items():
            out[f"scaler {k}"] = v
        out["scaler _scale"] = None if scaler._scale is None else scaler._scale.clone()
    out["rng torch"] = torch.get_rng_state()
    out["rng numpy"] = np.random.get_state()[1].copy()
    out["rng python"] = random.getstate()
    out["rng loader"] = loader.generator.get_state()
    return out


def assert_identical(before: dict[str, Any], after: dict[str, Any]) -> None:
    assert before.keys() == after.keys()
    for k, v in before.items():
        w = after[k]
        if torch.is_tensor(v):
            assert torch.is_tensor(w) and v.dtype == w.dtype and torch.equal(v, w), k
        elif isinstance(v, np.ndarray):
            assert np.array_equal(v, w), k
        else:
            assert v == w, k


# --- exact restore ----------------------------------------------------------------------------------
@pytest.mark.parametrize("opt_name", ["adam", "sgd"])
@pytest.mark.parametrize("end_lr", [1e-2, 1e3])  # completes / diverges
def test_restores_everything_bit_for_bit(opt_name: str, end_lr: float) -> None:
    model, opt, loader = trained_setup(opt_name)
    random.seed(5)
    np.random.seed(5)
    before = everything(model, opt, loader)
    ids = [id(p) for p in model.parameters()], [id(p.grad) for p in model.parameters()]
    res = find_lr(model, opt, loader, F.cross_entropy, end_lr=end_lr, num_steps=40, repeats=2)
    assert_identical(before, everything(model, opt, loader))
    assert ids == ([id(p) for p in model.parameters()], [id(p.grad) for p in model.parameters()])
    assert (res.curves[0].diverged, len(res.lrs) == 40) == ((True, False) if end_lr > 1 else (False, True))
    # RNG continues as if nothing happened
    state = torch.get_rng_state()
    a = torch.rand(3)
    torch.set_rng_state(state)
    assert torch.equal(a, torch.rand(3))


@pytest.mark.parametrize("exc", [RuntimeError, KeyboardInterrupt])
def test_restores_when_the_loss_raises_or_is_interrupted(exc: type[BaseException]) -> None:
    model, opt, loader = trained_setup()
    before = everything(model, opt, loader)
    calls = [0]

    def loss_fn(out: Any, y: Any) -> Any:
        calls[0] += 1
        if calls[0] == 7:
            raise exc("stop")
        return F.cross_entropy(out, y)

    with pytest.raises(exc):
        find_lr(model, opt, loader, loss_fn, num_steps=20)
    assert calls[0] == 7
    assert_identical(before, everything(model, opt, loader))


def test_a_fresh_optimizer_gets_no_leftover_state() -> None:
    model = make_model()
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    loader = make_loader()
    find_lr(model, opt, loader, F.cross_entropy, num_steps=10)
    assert len(opt.state) == 0
    assert all(p.grad is None for p in model.parameters())


def test_tensor_lr_is_restored_in_place() -> None:
    model = make_model(bn=False, dropout=False)
    lr = torch.tensor(0.01)
    opt = torch.optim.SGD(model.parameters(), lr=lr)
    find_lr(model, opt, make_loader(), F.cross_entropy, num_steps=10)
    assert opt.param_groups[0]["lr"] is lr and float(lr) == pytest.approx(0.01)


# --- against torch-lr-finder ------------------------------------------------------------------------
@pytest.mark.parametrize("accumulation_steps", [1, 2])
def test_raw_losses_match_torch_lr_finder(accumulation_steps: int) -> None:
    """Same ramp, same batches, no smoothing and no stop: the raw losses agree with torch-lr-finder."""
    pytest.importorskip("torch_lr_finder")
    import contextlib
    import io

    from torch_lr_finder import LRFinder

    model = make_model(bn=False, dropout=False)
    opt = torch.optim.SGD(model.parameters(), lr=1e-5, momentum=0.9)
    loader = make_loader(n=96)
    ours = find_lr(
        model,
        opt,
        loader,
        F.cross_entropy,
        start_lr=1e-5,
        end_lr=1.0,
        num_steps=30,
        smoothing=0.0,
        diverge_factor=None,
        accumulation_steps=accumulation_steps,
        seed=0,
    )
    torch.manual_seed(0)
    loader.generator.manual_seed(0)
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        tlf = LRFinder(model, opt, F.cross_entropy)
        tlf.range_test(
            loader,
            start_lr=1e-5,
            end_lr=1.0,
            num_iter=30,
            smooth_f=0.0,
            diverge_th=1e30,
            accumulation_steps=accumulation_steps,
        )
    np.testing.assert_allclose(ours.lrs, tlf.history["lr"], rtol=1e-12)
    np.testing.assert_allclose(ours.losses, tlf.history["loss"], rtol=1e-5)


# --- rungs: accumulation, several batches, param groups -------------------------------------------
def count_steps(opt: Any) -> list[list[float]]:
    """Record every param group's LR at each optimizer.step()."""
    seen: list[list[float]] = []
    opt.register_step_pre_hook(lambda o, args, kwargs: seen.append([float(g["lr"]) for g in o.param_groups]))
    return seen


def test_accumulation_advances_the_lr_once_per_optimizer_step_and_matches_a_full_batch() -> None:
    results = []
    for bs, k in [(16, 1), (8, 2), (4, 4)]:
        model = make_model(bn=False, dropout=False)
        opt = torch.optim.SGD(model.parameters(), lr=1.0)
        seen = count_steps(opt)
        res = find_lr(
            model,
            opt,
            make_loader(batch_size=bs, shuffle=False),
            F.cross_entropy,
            start_lr=1e-3,
            end_lr=1.0,
            num_steps=12,
            repeats=1,
            accumulation_steps=k,
            diverge_factor=None,
        )
        assert len(seen) == 12
        np.testing.assert_allclose([s[0] for s in seen], lr_ramp(1e-3, 1.0, 12), rtol=1e-12)
        results.append(res.losses)
    np.testing.assert_allclose(results[1], results[0], rtol=1e-5)
    np.testing.assert_allclose(results[2], results[0], rtol=1e-5)


def test_several_batches_per_rung_record_their_mean() -> None:
    model = make_model(bn=False, dropout=False)
    opt = torch.optim.SGD(model.parameters(), lr=1.0)
    seen = count_steps(opt)
    losses: list[float] = []

    def forward(m: Any, batch: Any) -> Any:
        loss = F.cross_entropy(m(batch[0]), batch[1])
        losses.append(float(loss.detach()))
        return loss

    res = find_lr(
        model, opt, make_loader(), forward=forward, num_steps=10, batches_per_step=3, smoothing=0.0, repeats=1
    )
    assert len(seen) == 30 and len(losses) == 30
    np.testing.assert_allclose(res.losses, np.asarray(losses).reshape(10, 3).mean(axis=1), rtol=1e-12)
    rung_lrs = np.asarray([s[0] for s in seen]).reshape(10, 3)
    assert np.all(rung_lrs == rung_lrs[:, :1])


@pytest.mark.parametrize("mode", ["exp", "linear"])
def test_param_groups_keep_their_ratios(mode: str) -> None:
    model, opt, loader = trained_setup("sgd")
    seen = count_steps(opt)
    res = find_lr(model, opt, loader, F.cross_entropy, num_steps=15, end_lr=1e-2, mode=mode, repeats=1)
    got = np.asarray(seen)
    np.testing.assert_allclose(res.lrs, lr_ramp(1e-7, 1e-2, 15, mode=mode), rtol=1e-12)
    np.testing.assert_allclose(got[:, 0], res.lrs, rtol=1e-12)
    np.testing.assert_allclose(got[:, 1] / got[:, 0], 0.25, rtol=1e-12)
    assert res.group_ratios == (1.0, 0.25)
    assert res.group_lrs(1.0) == [1.0, 0.25]


def test_loader_is_cycled_and_repeats_restart_from_the_same_state() -> None:
    model = make_model(bn=False)
    opt = torch.optim.SGD(model.parameters(), lr=1.0)
    loader = make_loader(batch_size=32)  # 2 batches per pass
    two = find_lr(model, opt, loader, F.cross_entropy, num_steps=9, repeats=2, seed=3, diverge_factor=None)
    one = find_lr(model, opt, loader, F.cross_entropy, num_steps=9, repeats=1, seed=4, diverge_factor=None)
    assert len(two.curves[1].losses) == 9
    np.testing.assert_array_equal(two.curves[1].losses, one.curves[0].losses)
    assert not np.array_equal(two.curves[0].losses, two.curves[1].losses)


def test_validation_loss_matches_a_hand_written_loop() -> None:
    x, y = make_data(64, seed=1)
    val = [(x[:32], y[:32]), (x[32:], y[32:])]
    loader = make_loader(shuffle=False)
    model = make_model(bn=False, dropout=False)
    opt = torch.optim.SGD(model.parameters(), lr=1.0)
    kw: dict[str, Any] = {"num_steps": 6, "start_lr": 1e-2, "end_lr": 1.0, "smoothing": 0.0}
    res = find_lr(model, opt, loader, F.cross_entropy, val_data=val, **kw)
    ref_model = make_model(bn=False, dropout=False)
    ref_opt = torch.optim.SGD(ref_model.parameters(), lr=1.0)
    expected = []
    for lr, (bx, by) in zip(lr_ramp(1e-2, 1.0, 6), loader, strict=False):
        ref_opt.param_groups[0]["lr"] = lr
        ref_opt.zero_grad()
        F.cross_entropy(ref_model(bx), by).backward()
        ref_opt.step()
        with torch.no_grad():
            expected.append(np.mean([float(F.cross_entropy(ref_model(a), b)) for a, b in val]))
    np.testing.assert_allclose(res.losses, expected, rtol=1e-6)


# --- GradScaler and autocast --------------------------------------------------------------------
@pytest.mark.parametrize("used_before", [False, True])
def test_skipped_scaler_steps_are_not_rungs(used_before: bool) -> None:
    model = make_model(bn=False, dropout=False)
    opt = torch.optim.SGD(model.parameters(), lr=1.0, momentum=0.9)
    scaler = torch.amp.GradScaler("cpu", init_scale=2.0**10, growth_interval=3)
    loader = make_loader()
    if used_before:  # scale and growth tracker initialised by earlier training
        for x, y in list(loader)[:2]:
            opt.zero_grad()
            scaler.scale(F.cross_entropy(model(x), y)).backward()
            scaler.step(opt)
            scaler.update()
        assert scaler._scale is not None
    before = everything(model, opt, loader, scaler)
    lr_at_call: list[float] = []

    def forward(m: Any, batch: Any) -> Any:
        lr_at_call.append(float(opt.param_groups[0]["lr"]))
        loss = F.cross_entropy(m(batch[0]), batch[1])
        return loss * float("inf") if len(lr_at_call) in (4, 5) else loss

    seen = count_steps(opt)
    res = find_lr(
        model, opt, loader, forward=forward, grad_scaler=scaler, num_steps=10, diverge_factor=None, repeats=1
    )
    assert len(res.lrs) == 10 and len(lr_at_call) == 12
    assert lr_at_call[3] == lr_at_call[4] == lr_at_call[5] == res.lrs[3]  # rung 3 retried twice
    assert len(seen) == 10  # GradScaler.step skips optimizer.step on inf grads
    assert np.all(np.isfinite(res.losses))
    assert_identical(before, everything(model, opt, loader, scaler))


def test_scaler_that_never_succeeds_ends_the_test() -> None:
    model = make_model(bn=False, dropout=False)
    opt = torch.optim.SGD(model.parameters(), lr=1.0)
    scaler = torch.amp.GradScaler("cpu")
    res = find_lr(
        model,
        opt,
        make_loader(),
        forward=lambda m, b: F.cross_entropy(m(b[0]), b[1]) * float("inf"),
        grad_scaler=scaler,
        num_steps=10,
        max_skipped=3,
    )
    assert len(res.losses) == 1 and res.curves[0].diverged and np.isinf(res.losses[0])
    assert scaler._scale is None  # never used before: back to uninitialised


def test_autocast_wraps_the_forward_pass() -> None:
    model = make_model(bn=False, dropout=False)
    opt = torch.optim.SGD(model.parameters(), lr=1.0)
    flags: list[bool] = []

    def forward(m: Any, batch: Any) -> Any:
        flags.append(torch.is_autocast_enabled("cpu"))
        out = m(batch[0])
        assert out.dtype == torch.bfloat16
        return F.cross_entropy(out.float(), batch[1])

    find_lr(model, opt, make_loader(), forward=forward, amp_dtype=torch.bfloat16, num_steps=5, repeats=1)
    assert flags == [True] * 5
    assert all(p.dtype == torch.float32 for p in model.parameters())


# --- batch shapes ----------------------------------------------------------------------------------
class DictModel(nn.Module):  # type: ignore[misc]
    def __init__(self) -> None:
        super().__init__()
        self.lin = nn.Linear(4, 3)

    def forward(self, features: Any, labels: Any = None) -> Any:
        out = self.lin(features)
        return {"logits": out, "loss": F.cross_entropy(out, labels)} if labels is not None else out


class DictLoader:
    def __iter__(self) -> Any:
        x, y = make_data(32)
        for i in range(0, 32, 8):
            yield {"features": x[i : i + 8], "labels": y[i : i + 8]}


@pytest.mark.parametrize(
    ("model_fn", "loader_fn", "loss_fn"),
    [
        (lambda: DictModel(), DictLoader, None),  # the model returns {"loss": ...}
        (lambda: DictModel(), DictLoader, F.cross_entropy),  # target under "labels"
        (lambda: nn.Linear(4, 4), lambda: [make_data(8)[0]] * 3, F.mse_loss),  # tensor: reconstruct x
        (lambda: make_model(bn=False), lambda: [list(make_data(8))], F.cross_entropy),  # a list [x, y]
    ],
)
def test_batches_may_be_dicts_tensors_or_sequences(
    model_fn: Callable[[], Any], loader_fn: Callable[[], Any], loss_fn: Any
) -> None:
    model = model_fn()
    opt = torch.optim.SGD(model.parameters(), lr=1.0)
    res = find_lr(model, opt, loader_fn(), loss_fn, num_steps=8, end_lr=0.1)
    assert len(res.losses) == 8 and np.all(np.isfinite(res.losses))


def test_custom_forward_handles_any_batch() -> None:
    model = make_model(bn=False)
    opt = torch.optim.SGD(model.parameters(), lr=1.0)
    x, y = make_data(16)
    batches = [{"pair": (x[:8], y[:8])}, {"pair": (x[8:], y[8:])}]
    res = find_lr(
        model, opt, batches, forward=lambda m, b: F.cross_entropy(m(b["pair"][0]), b["pair"][1]), num_steps=5
    )
    assert len(res.losses) == 5


def test_default_forward_errors_are_clear() -> None:
    model = nn.Linear(4, 3)
    with pytest.raises(TypeError, match="forward="):
        default_forward(model, object(), F.cross_entropy)
    with pytest.raises(ValueError, match="labels"):
        default_forward(model, {"features": torch.zeros(2, 4)}, F.cross_entropy)
    with pytest.raises(TypeError, match="loss_fn"):
        default_forward(model, (torch.zeros(2, 4), torch.zeros(2)), None)


# --- validation ------------------------------------------------------------------------------------
def test_input_validation_names_the_argument() -> None:
    model = make_model()
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    loader = make_loader()
    with pytest.raises(TypeError, match="model"):
        find_lr("model", opt, loader, F.cross_entropy)
    with pytest.raises(TypeError, match="optimizer"):
        find_lr(model, "opt", loader, F.cross_entropy)
    with pytest.raises(ValueError, match="accumulation_steps"):
        find_lr(model, opt, loader, F.cross_entropy, accumulation_steps=0)
    with pytest.raises(ValueError, match="batches_per_step"):
        find_lr(model, opt, loader, F.cross_entropy, batches_per_step=0)
    with pytest.raises(ValueError, match="train_loader yielded no batches"):
        find_lr(model, opt, [], F.cross_entropy)
    with pytest.raises(TypeError, match="1-element tensor"):
        find_lr(model, opt, loader, lambda out, y: F.cross_entropy(out, y, reduction="none"))
    with pytest.raises(ValueError, match="rule"):
        find_lr(model, opt, loader, F.cross_entropy, rule="magic")
    zero = torch.optim.SGD(model.parameters(), lr=0.0)
    with pytest.raises(ValueError, match="param_groups"):
        find_lr(model, zero, loader, F.cross_entropy)


@pytest.mark.parametrize("bad", [None, 5, "data.pt"])
def test_a_loader_that_is_not_an_iterable_of_batches_is_named_before_any_step(bad: Any) -> None:
    """A train_loader or val_data that is not an iterable of batches is refused by name, with what was
    given, before the model is touched (not Python's "'NoneType' object is not iterable")."""
    model = make_model()
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    before = [p.detach().clone() for p in model.parameters()]
    with pytest.raises(
        TypeError, match=rf"train_loader must be an iterable of batches.*got {re.escape(repr(bad))}"
    ):
        find_lr(model, opt, bad, F.cross_entropy)
    if bad is not None:  # val_data=None: no validation set
        with pytest.raises(
            TypeError, match=rf"val_data must be an iterable of batches.*got {re.escape(repr(bad))}"
        ):
            find_lr(model, opt, make_loader(), F.cross_entropy, val_data=bad)
    assert all(torch.equal(a, b) for a, b in zip(before, model.parameters(), strict=True))


def test_a_loss_without_gradient_is_named_and_the_model_restored() -> None:
    """A detached loss (or one computed under no_grad) cannot train anything: a ValueError that says
    so, instead of torch's "element 0 of tensors does not require grad"; the model is as given."""
    model, opt, loader = trained_setup("sgd")
    before = everything(model, opt, loader)
    with pytest.raises(ValueError, match="the loss does not depend on the model's parameters"):
        find_lr(model, opt, loader, lambda out, y: F.cross_entropy(out, y).detach(), num_steps=10)
    assert_identical(before, everything(model, opt, loader))


def test_importing_the_finder_and_lab_does_not_import_torch_or_matplotlib() -> None:
    code = (
        "import sys, lrkit.finder, lrkit.finder.rules, lrkit.finder.result, lrkit.lab, lrkit.tasks, "
        "lrkit.finder.cli, lrkit.auto, lrkit.auto_cli; "
        "bad = [m for m in ('torch', 'matplotlib', 'sklearn') if m in sys.modules]; "
        "sys.exit(1 if bad else 0)"
    )
    import os

    env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in sys.path if p)}
    assert subprocess.run([sys.executable, "-c", code], env=env, check=False).returncode == 0


@pytest.mark.parametrize("name", ["start_lr", "end_lr"])
@pytest.mark.parametrize(
    ("value", "error", "message"),
    [
        ("big", TypeError, "must be a real number, got 'big' (str)"),
        (None, TypeError, "must be a real number, got None"),
        (True, TypeError, "must be a real number, got True (bool)"),
        ([1e-3], TypeError, "must be a real number, got [0.001] (list)"),
        (float("nan"), ValueError, "must be a finite number > 0, got nan"),
        (float("-inf"), ValueError, "must be a finite number > 0"),
        (0, ValueError, "must be a finite number > 0, got 0"),
    ],
)
def test_bad_ramp_ends_are_refused_before_any_step_naming_the_argument(
    name: str, value: Any, error: type, message: str
) -> None:
    model = torch.nn.Linear(1, 1)
    opt = torch.optim.SGD(model.parameters(), lr=0.5)
    seen = count_steps(opt)
    with pytest.raises(error, match=re.escape(f"{name} {message}")):
        find_lr(model, opt, [(torch.ones(4, 1), torch.ones(4, 1))] * 2, F.mse_loss, **{name: value})
    assert seen == []  # refused before the test stepped


def test_an_end_lr_the_parameters_dtype_cannot_hold_is_refused_and_numpy_scalars_are_taken() -> None:
    model = torch.nn.Linear(1, 1)
    opt = torch.optim.SGD(model.parameters(), lr=0.5)
    data = [(torch.ones(4, 1), torch.ones(4, 1))] * 2
    too_big = r"end_lr must be at most 3\.4e\+38, .*float32 parameters.* got 1e\+300"
    with pytest.raises(ValueError, match=too_big):
        find_lr(model, opt, data, F.mse_loss, end_lr=1e300)
    res = find_lr(model, opt, data, F.mse_loss, start_lr=np.float32(1e-4), end_lr=np.float64(1.0), repeats=1)
    assert res.lrs[0] == pytest.approx(1e-4) and res.lrs[-1] == 1.0
