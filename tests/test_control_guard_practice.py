"""The divergence guard as a practitioner uses it: an MLP on scikit-learn's digits, trained at a
learning rate that makes it blow up, with dropout (so the RNG matters) and Adam or SGD with momentum (so
the optimizer's state matters).

References: the state recorded at the start of every step of the run itself (the model's and the
optimizer's ``state_dict`` and the torch RNG state): after a rollback to step ``s`` all three must equal
what they were when step ``s`` first began, exactly (``torch.equal``).
"""

from __future__ import annotations

import copy
import math
from typing import Any

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import lrkit
from lrkit.control import DivergenceError, DivergenceGuard

sklearn_datasets = pytest.importorskip("sklearn.datasets")

_d = sklearn_datasets.load_digits()
X = torch.tensor((_d.data - _d.data.mean(0)) / (_d.data.std(0) + 1e-8), dtype=torch.float32)
Y = torch.tensor(_d.target)
ORDER = np.random.default_rng(0).permutation(len(X))  # the data order: its own generator, by step
B = 64


def batch(step: int) -> tuple[torch.Tensor, torch.Tensor]:
    k = (step * B) % (len(X) - B)
    i = torch.as_tensor(ORDER[k : k + B])
    return X[i], Y[i]


def make(opt: str, lr: float) -> tuple[torch.nn.Module, torch.optim.Optimizer]:
    torch.manual_seed(0)
    model = torch.nn.Sequential(
        torch.nn.Linear(64, 128), torch.nn.ReLU(), torch.nn.Dropout(0.2), torch.nn.Linear(128, 10)
    )
    if opt == "adam":
        return model, torch.optim.Adam(model.parameters(), lr=lr)
    return model, torch.optim.SGD(model.parameters(), lr=lr, momentum=0.9)


def _state(model: torch.nn.Module, opt: torch.optim.Optimizer) -> dict[str, Any]:
    return {
        "model": copy.deepcopy(model.state_dict()),
        "optimizer": copy.deepcopy(opt.state_dict()),
        "rng": torch.get_rng_state(),
    }


def _assert_same(a: Any, b: Any, where: str = "") -> None:
    """Exact equality of nested state (tensors with torch.equal, floats with ==)."""
    if isinstance(a, torch.Tensor):
        assert isinstance(b, torch.Tensor) and a.dtype == b.dtype and torch.equal(a, b), where
    elif isinstance(a, dict):
        assert isinstance(b, dict) and a.keys() == b.keys(), where
        for k in a:
            _assert_same(a[k], b[k], f"{where}.{k}")
    elif isinstance(a, (list, tuple)):
        assert type(a) is type(b) and len(a) == len(b), where
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            _assert_same(x, y, f"{where}[{i}]")
    else:
        assert a == b, f"{where}: {a!r} != {b!r}"


def _without_lr(opt_state: dict[str, Any]) -> dict[str, Any]:
    return {
        **opt_state,
        "param_groups": [{k: v for k, v in g.items() if k != "lr"} for g in opt_state["param_groups"]],
    }


def _guarded_step(guard: DivergenceGuard, opt: torch.optim.Optimizer, loss: torch.Tensor, step: int) -> int:
    """The guard's documented loop body after ``loss.backward()``: step, or go back to the rollback's
    step; then zero the gradients. Returns the next step."""
    if guard.check(loss, step):
        opt.step()
        step += 1
    else:
        step = guard.resume_step  # type: ignore[assignment]
    opt.zero_grad()
    return step


def train(
    opt_name: str, lr: float, steps: int, scheduler: str | None = None, **guard_kwargs: Any
) -> tuple[torch.nn.Module, torch.optim.Optimizer, DivergenceGuard, int]:
    """Train with the guard, replaying from the snapshot after each rollback; after every rollback,
    check the model, the optimizer (all but the cut lr) and the RNG against the start of that step."""
    model, opt = make(opt_name, lr)
    sched = None if scheduler is None else lrkit.torch.scheduler(opt, scheduler, total_steps=steps)
    torch.manual_seed(1)
    guard = DivergenceGuard(model, opt, sched, **guard_kwargs)
    starts: list[dict[str, Any]] = []
    step = rollbacks = 0
    while step < steps:
        del starts[step:]
        starts.append({**_state(model, opt), "sched": None if sched is None else sched.state_dict()})
        x, y = batch(step)
        loss = F.cross_entropy(model(x), y)
        loss.backward()
        if guard.check(loss, step):
            opt.step()
            if sched is not None:
                sched.step()
            step += 1
        else:
            rollbacks += 1
            s = guard.resume_step
            assert s is not None and s <= step
            now = _state(model, opt)
            _assert_same(now["model"], starts[s]["model"], "model")
            _assert_same(_without_lr(now["optimizer"]), _without_lr(starts[s]["optimizer"]), "optimizer")
            _assert_same(now["rng"], starts[s]["rng"], "rng")
            if sched is not None:  # the scheduler too, but for the multiplier: the cuts are kept
                keep = {k: v for k, v in sched.state_dict().items() if k != "multiplier"}
                _assert_same(keep, {k: v for k, v in starts[s]["sched"].items() if k != "multiplier"})
            assert all(p.grad is None for p in model.parameters())
            step = s
        opt.zero_grad()
    return model, opt, guard, rollbacks


def accuracy(model: torch.nn.Module) -> float:
    model.eval()
    with torch.no_grad():
        return float((model(X).argmax(1) == Y).float().mean())


@pytest.mark.parametrize(
    ("opt_name", "lr", "threshold", "reasons"),
    [("adam", 1.0, 4.0, {"jump"}), ("sgd", 1.0, 4.0, {"jump"}), ("sgd", 3.0, None, {"nan", "inf"})],
    ids=["adam_jump", "sgd_momentum_slow_blowup", "sgd_momentum_inf"],
)
def test_a_too_large_lr_is_rolled_back_and_cut_until_the_digits_mlp_learns(
    opt_name: str, lr: float, threshold: float | None, reasons: set[str]
) -> None:
    # without the guard the run blows up (see the module's numbers in the report)
    model, opt, guard, rollbacks = train(
        opt_name, lr, 300, threshold=threshold, snapshot_every=20, window=20, max_recoveries=8
    )
    events = guard.events
    assert rollbacks == len(events) >= 1 and {e.reason for e in events} <= reasons
    assert all(bool(torch.isfinite(p).all()) for p in model.parameters())
    assert accuracy(model) > 0.9
    # every cut is on the LR in force when the step diverged
    for e in events:
        assert e.lr_after == pytest.approx(tuple(v * 0.5 for v in e.lr_before), rel=1e-15)
    assert opt.param_groups[0]["lr"] == lr * 0.5 ** len(events)


def test_with_a_scheduler_the_snapshot_is_restored_and_the_cut_kept() -> None:
    # the default window (100): with window=20, once the batch losses near 0 (a median of 0.000-0.1 over
    # the last 20), five hard batches in a row from step 179 on are a "jump" no cut cures (the run with
    # the reference that could rise rolled back 4 times there; with the one that cannot, the early
    # rollbacks differ and it ended there in DivergenceError after 8)
    model, _, guard, _ = train(
        "adam", 1.0, 300, "warmup(20) >> cosine(lr=1.0, min_lr=0.1)", snapshot_every=20, max_recoveries=8
    )
    events = guard.events
    assert events and accuracy(model) > 0.9
    s = lrkit.parse("warmup(20) >> cosine(lr=1.0, min_lr=0.1)").resolve(total_steps=300)
    for i, e in enumerate(events, 1):
        assert e.lr_after == pytest.approx((s(e.snapshot_step) * 0.5**i,), rel=1e-12)


def test_when_every_retry_diverges_the_error_is_clear_and_nothing_is_lost() -> None:
    """At an absurd LR every recovery fails: DivergenceError names the step and the LR; the model and
    the optimizer are left exactly at a snapshot the run had passed through, finite, and the events are
    all there; training can go on from there with a sane LR."""
    model, opt = make("sgd", 1e4)
    torch.manual_seed(1)
    guard = DivergenceGuard(model, opt, threshold=None, snapshot_every=5, max_recoveries=3)
    starts: list[dict[str, Any]] = []
    step = 0
    with pytest.raises(DivergenceError) as info:
        while step < 300:
            del starts[step:]
            starts.append(_state(model, opt))
            loss = F.cross_entropy(model(batch(step)[0]), batch(step)[1])
            loss.backward()
            step = _guarded_step(guard, opt, loss, step)
    err = info.value
    assert err.event is not None and err.event.action == "stop"
    assert f"at step {err.event.step} " in str(err) and "after 3 recoveries in a row" in str(err)
    assert f"lr={err.event.lr_before[0]:.4g}" in str(err) and "Lower the learning rate" in str(err)
    assert [e.action for e in err.events] == ["rollback"] * 3 + ["stop"] and guard.events == err.events
    # three cuts, kept
    assert opt.param_groups[0]["lr"] == pytest.approx(1e4 * 0.5**3, rel=1e-15)
    snap = err.event.snapshot_step
    now = _state(model, opt)
    _assert_same(now["model"], starts[snap]["model"], "model")
    _assert_same(_without_lr(now["optimizer"]), _without_lr(starts[snap]["optimizer"]), "optimizer")
    _assert_same(now["rng"], starts[snap]["rng"], "rng")
    assert all(bool(torch.isfinite(p).all()) for p in model.parameters())
    # the model is usable: go on from the snapshot with a sane LR
    for g in opt.param_groups:
        g["lr"] = 0.05
    for k in range(snap, snap + 100):
        x, y = batch(k)
        F.cross_entropy(model.train()(x), y).backward()
        opt.step()
        opt.zero_grad()
    assert accuracy(model) > 0.8


@pytest.mark.parametrize(("opt_name", "lr"), [("adam", 1e-3), ("sgd", 0.05)])
def test_a_healthy_run_with_the_default_settings_is_left_alone(opt_name: str, lr: float) -> None:
    """Usual LRs, 1,500 steps (the MLP fits the digits: batch losses from 2.3 down to ~0.01, where one
    batch at 5x the median is noise). Measured against the lowest recent loss on one step, as before,
    the guard saw a divergence here 6-7 times and stopped both runs with DivergenceError, the LR cut 8x
    (with Adam at 3e-3 and SGD at 0.1 too); against the median for 5 steps in a row it sees none."""
    model, _, guard, rollbacks = train(opt_name, lr, 1500)
    assert guard.events == [] and rollbacks == 0
    assert accuracy(model) > 0.97


def _embedding_model() -> tuple[torch.nn.Module, torch.nn.Embedding, torch.optim.Optimizer]:
    torch.manual_seed(0)
    emb = torch.nn.Embedding(10, 4)
    model = torch.nn.Sequential(emb, torch.nn.Flatten(), torch.nn.Linear(4, 1))
    return model, emb, torch.optim.Adam(model.parameters(), lr=0.01)


def _token(step: int) -> torch.Tensor:
    return torch.tensor([[5]]) if step % 10 == 0 else torch.tensor([[step % 5]])  # token 5: every 10th


def test_nan_in_the_parameters_behind_a_finite_loss_is_rolled_back() -> None:
    """One NaN gradient on an embedding row that the next batches do not use: the loss stays finite
    until that row comes back, so snapshots would be taken of a broken model and every rollback would
    restore the NaN (it stopped with DivergenceError, the NaN still in the model). The snapshot that is
    due finds it: roll back to the one before, finite, and cut."""
    model, emb, opt = _embedding_model()
    guard = DivergenceGuard(model, opt, threshold=None, snapshot_every=3, max_recoveries=2)
    step, poisoned = 0, False
    while step < 60:
        loss = model(_token(step)).pow(2).mean()
        loss.backward()
        if step == 10 and not poisoned:  # e.g. the gradient of a norm at 0, once
            assert emb.weight.grad is not None
            emb.weight.grad[5] = float("nan")
            poisoned = True
        step = _guarded_step(guard, opt, loss, step)
    (e,) = guard.events
    assert (e.reason, e.step, e.snapshot_step) == ("params", 12, 9) and math.isfinite(e.loss)
    assert all(bool(torch.isfinite(p).all()) for p in model.parameters())


def test_a_model_broken_before_the_first_snapshot_is_an_error_naming_it() -> None:
    model, emb, opt = _embedding_model()
    with torch.no_grad():
        emb.weight[7] = float("nan")  # e.g. from a broken checkpoint; this batch does not use it
    guard = DivergenceGuard(model, opt)
    with pytest.raises(DivergenceError, match=r"at step 0 the model's parameters or buffers hold NaN/inf"):
        guard.check(model(_token(1)).sum(), 0)
    # a buffer too (BatchNorm's running statistics)
    bn = torch.nn.BatchNorm1d(3)
    bn.running_var.fill_(float("inf"))
    guard = DivergenceGuard(bn, torch.optim.SGD(bn.parameters(), lr=0.1))
    with pytest.raises(DivergenceError, match="parameters or buffers hold NaN/inf"):
        guard.check(1.0, 0)


def test_the_loss_as_a_float_a_0d_tensor_a_tensor_with_grad_or_numpy_gives_the_same_run() -> None:
    losses = [1.0, 0.9, 0.8, 0.85, float("nan"), 0.8, 0.7, float("inf"), 0.7, 0.6]
    forms: dict[str, Any] = {
        "float": lambda v: v,
        "0-d tensor": lambda v: torch.tensor(v),
        "with grad": lambda v: torch.tensor(v, requires_grad=True) * 1.0,
        "one-element": lambda v: torch.tensor([v], dtype=torch.float64),
        "numpy": lambda v: np.float32(v),
    }
    runs = {}
    for name, form in forms.items():
        model = torch.nn.Linear(1, 1)
        guard = DivergenceGuard(model, torch.optim.SGD(model.parameters(), lr=0.1), snapshot_every=2)
        oks = [guard.check(form(v), i) for i, v in enumerate(losses)]
        runs[name] = (oks, [(e.step, e.reason, e.snapshot_step, e.lr_after) for e in guard.events])
    assert all(r == runs["float"] for r in runs.values()), runs
    assert runs["float"][0] == [True, True, True, True, False, True, True, False, True, True]


#: the bound DivergenceGuard names for its counts (sys.maxsize)
_GUARD_MAX = r" and <= 2\*\*63 - 1"


@pytest.mark.parametrize(
    ("kwargs", "exc", "match"),
    [
        ({"factor": "0.5"}, TypeError, r"factor must be a number, got str '0.5'"),
        ({"factor": math.nan}, ValueError, r"factor must be a finite number > 0 and < 1, got nan"),
        ({"factor": -0.5}, ValueError, r"factor must be a finite number > 0 and < 1, got -0.5"),
        ({"threshold": math.inf}, ValueError, r"threshold must be a finite number > 1, got inf"),
        ({"threshold": 0.5}, ValueError, r"threshold must be a finite number > 1, got 0.5"),
        ({"window": 10**30}, ValueError, r"window must be an integer >= 1 and <= 2\*\*63 - 1, got 10+$"),
        ({"keep": 10**30}, ValueError, r"keep must be an integer >= 1 and <= 2\*\*63 - 1, got 10+$"),
        (
            {"snapshot_every": True},
            TypeError,
            rf"snapshot_every must be an integer >= 1{_GUARD_MAX}, got bool True",
        ),
        (
            {"max_recoveries": "3"},
            TypeError,
            rf"max_recoveries must be an integer >= 0{_GUARD_MAX}, got str '3'",
        ),
        ({"jump_steps": 1.5}, ValueError, rf"jump_steps must be an integer >= 1{_GUARD_MAX}, got float 1.5"),
        ({"restore_rng": 1}, TypeError, r"restore_rng must be True or False, got 1"),
    ],
)
def test_bad_arguments_name_the_argument_and_the_value(kwargs: dict[str, Any], exc: type, match: str) -> None:
    model = torch.nn.Linear(1, 1)
    with pytest.raises(exc, match=match):
        DivergenceGuard(model, torch.optim.SGD(model.parameters(), lr=0.1), **kwargs)


def test_numpy_numbers_are_accepted_and_bad_checks_refused() -> None:
    model = torch.nn.Linear(1, 1)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    g = DivergenceGuard(model, opt, factor=np.float32(0.5), window=np.int64(10), snapshot_every=np.int32(2))
    assert (g.factor, g.window, g.snapshot_every) == (0.5, 10, 2) and type(g.window) is int
    assert g.check(1.0, np.int64(0))  # a step from numpy
    for bad in ("1.0", b"1", True, None, torch.ones(2)):
        with pytest.raises(TypeError, match="loss must be a number or a one-element tensor"):
            g.check(bad, 1)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="step must be an int, got bool True"):
        g.check(1.0, True)


def test_a_scheduler_of_another_optimizer_is_refused() -> None:
    """Its cuts would go to an optimizer the guard does not roll back."""
    model = torch.nn.Linear(1, 1)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    other = lrkit.torch.scheduler(torch.optim.SGD(model.parameters(), lr=0.1), "constant(0.1)")
    with pytest.raises(ValueError, match="the scheduler drives another optimizer"):
        DivergenceGuard(model, opt, other)
    DivergenceGuard(model, opt, lrkit.torch.scheduler(opt, "constant(0.1)"))  # its own: fine
