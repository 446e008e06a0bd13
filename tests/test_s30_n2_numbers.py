"""The number rule of :mod:`lrkit._checks` (a count: any integer, Python's, numpy's, a 0-d integer array
or tensor; a rate or a factor: any real, ``Fraction`` and 0-d real arrays or tensors too; a bool never;
a measured value also a 1-element array), where 4c96f7c could not apply it: ``lrkit.steps`` and
``Duration.parse`` refused a 0-d tensor ("duration: expected a number, got Tensor tensor(5)"), the
escalation budget numpy's numbers ("budget must be an int (optimizer steps) or a float in (0, 1]"),
``Plateau.step`` ``np.array([1.5])`` while it took ``torch.tensor([1.5])``, ``Plateau(factor=...)`` and
``ramp_in_run(peak_factor=...)`` 0-d tensors, optimizer hyper-parameters kept numpy's numbers as given;
``lrkit.optax.find_lr`` kept ``seed=np.int64(3)`` as given. Each call here must give what the same call
with Python numbers gives, and refuse a bool by the argument's name."""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from fractions import Fraction
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import lrkit
from lrkit.control.plateau import Plateau
from lrkit.finder.escalation import budget_steps
from lrkit.schedules import Linear, Repeat
from lrkit.schedules.duration import Duration
from lrkit.tasks.optimizers import check_params

from .test_s30_numbers import BOOLS, held, int_kinds, real_kinds

torch = pytest.importorskip("torch")


def _plateau_run(metrics: list[Any]) -> dict[str, Any]:
    p = Plateau(mode="min", patience=1)
    cuts = [p.step(m) for m in metrics]
    return {"cuts": cuts, "state": p.state_dict(), "best": p.best}


def _plateau(x: Any) -> dict[str, Any]:
    p = Plateau(factor=x, threshold=x / 2, eps=x, min_lr=x)
    return {k: (v, type(v)) for k, v in vars(p).items() if k in ("factor", "threshold", "eps", "min_lr")}


def _typed(v: Any) -> Any:
    """``v`` with the type of each number in it, so that ``1 == 1.0 == np.int64(1)`` tell apart."""
    if isinstance(v, dict):
        return {k: _typed(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_typed(x) for x in v]
    return (v, type(v).__name__)


def python_of(v: Any) -> Any:
    """The Python number a value of any kind holds: an int for an integer kind, else a float."""
    if isinstance(v, (int, np.integer)):
        return int(v)
    if hasattr(v, "dtype") and not isinstance(v, np.generic):  # a 0-d array or tensor
        return v.item()
    return held(v)


#: name -> (the argument's name in a refusal, None where a bool is a value; "int" or "real"; low,
#: high; the call)
ENTRIES: dict[str, tuple[str | None, str, float, float, Callable[[Any], Any]]] = {
    "Repeat(times=)": (
        "times",
        "int",
        1,
        1000,
        lambda k: Repeat(Linear(lr=1.0, steps=10, end_lr=0.0), times=k).to_dict(),
    ),
    "lrkit.steps(n)": ("duration", "real", 0.0, 1e6, lambda x: lrkit.steps(x).to_data()),
    "Duration.parse(n)": ("duration", "real", 0.0, 1e6, lambda x: repr(Duration.parse(x))),
    "Warmup(steps=)": ("warmup: steps", "real", 1.0, 1e6, lambda x: lrkit.Warmup(steps=x).to_dict()),
    "budget_steps(steps)": ("budget", "int", 1, 10**6, lambda k: budget_steps(k, 1000, None)),
    "budget_steps(fraction)": ("budget", "real", 1e-3, 1.0, lambda x: budget_steps(x, 1000, None)),
    "budget_steps(planned_steps)": (
        "planned_steps",
        "int",
        1,
        10**6,
        lambda k: (budget_steps(None, k, 3), budget_steps(0.5, k, None)),
    ),
    "Plateau.step(metric)": ("metric", "real", -1e3, 1e3, lambda x: _plateau_run([1.0, x, x, 0.5])),
    "Plateau(factor, threshold, eps, min_lr)": ("factor", "real", 0.01, 0.99, _plateau),
    "optimizer hyper-parameters": (
        None,  # a hyper-parameter may be a bool (nesterov=True)
        "real",
        0.0,
        0.99,
        lambda x: check_params({"momentum": x, "betas": [x, x], "nesterov": True}),
    ),
}


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_each_entry_takes_any_number_kind_as_the_python_number(data: st.DataObject) -> None:
    name = data.draw(st.sampled_from(sorted(ENTRIES)), label="entry")
    _, kind, low, high, call = ENTRIES[name]
    if kind == "int":
        v = data.draw(int_kinds(int(low), int(high)), label="value")[2]
    else:
        v = data.draw(real_kinds(low, high), label="value")[1]
    assert _typed(call(v)) == _typed(call(python_of(v)))


@pytest.mark.parametrize("name", sorted(k for k, v in ENTRIES.items() if v[0] is not None))
@pytest.mark.parametrize("bad", BOOLS, ids=repr)
def test_each_entry_refuses_a_bool_by_name(name: str, bad: Any) -> None:
    said, _, _, _, call = ENTRIES[name]
    assert said is not None
    with pytest.raises((TypeError, ValueError), match=f"{said}.*(number|integer|duration|bool|True)"):
        call(bad)


@pytest.mark.parametrize(
    "metric",
    [np.array([1.5]), np.array([[1.5]]), torch.tensor([1.5]), torch.tensor([[1.5]]), np.float32(1.5)],
    ids=["np (1,)", "np (1, 1)", "torch (1,)", "torch (1, 1)", "np.float32"],
)
def test_plateau_takes_a_one_element_metric_as_a_loss_is_taken(metric: Any) -> None:
    """``Plateau.step(np.array([1.5]))`` was "metric must be a number", ``torch.tensor([1.5])`` taken."""
    assert _plateau_run([2.0, metric, metric]) == _plateau_run([2.0, 1.5, 1.5])


@pytest.mark.parametrize("bad", ["1.5", np.array([1.5, 2.0]), torch.tensor([True]), None], ids=repr)
def test_plateau_refuses_what_is_no_measured_number_by_name(bad: Any) -> None:
    with pytest.raises(TypeError, match=r"^Plateau\.step: metric must be a number or a one-element"):
        Plateau().step(bad)


def test_plateau_takes_a_metric_that_requires_grad_without_a_warning() -> None:
    import warnings

    x = torch.tensor(0.5, requires_grad=True) * 1.0
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert _plateau_run([1.0, x]) == _plateau_run([1.0, 0.5])


# -- ramp_in_run(peak_factor=) ----------------------------------------------------------------------


def _ramp(peak_factor: Any) -> Any:
    from lrkit.finder.in_run import ramp_in_run

    torch.manual_seed(0)
    x = torch.randn(256, 8, generator=torch.Generator().manual_seed(1))
    y = (x[:, :4].sum(dim=1) > 0).long()
    loader = torch.utils.data.DataLoader(
        torch.utils.data.TensorDataset(x, y), batch_size=16, shuffle=True, generator=torch.Generator()
    )
    model = torch.nn.Sequential(torch.nn.Linear(8, 16), torch.nn.ReLU(), torch.nn.Linear(16, 2))
    opt = torch.optim.SGD(model.parameters(), lr=0.01)
    return ramp_in_run(model, opt, loader, torch.nn.functional.cross_entropy, peak_factor=peak_factor)


@pytest.mark.usefixtures("one_torch_thread")
@pytest.mark.parametrize(
    "kind", [np.float32, lambda x: torch.tensor(x), Fraction], ids=["np.float32", "torch 0-d", "Fraction"]
)
def test_ramp_in_run_takes_any_real_peak_factor(kind: Callable[[float], Any]) -> None:
    """``peak_factor=np.float32(2.0)`` was "peak_factor must be a number > 0, got np.float32(2.0)"."""
    got, want = _ramp(kind(1.5)), _ramp(1.5)
    assert (got.peak, got.kept, got.spent) == (want.peak, want.kept, want.spent)
    assert got.peak is None or type(got.peak) is float


@pytest.mark.parametrize("bad", [True, np.True_, torch.tensor(True), "2", math.inf], ids=repr)
def test_ramp_in_run_refuses_a_peak_factor_that_is_no_finite_real(bad: Any) -> None:
    with pytest.raises((TypeError, ValueError), match=r"^peak_factor must be a (finite )?number > 0, got"):
        _ramp(bad)


# -- lrkit.optax.find_lr --------------------------------------------------------------------------


def _optax_find(**kw: Any) -> Any:
    jnp = pytest.importorskip("jax.numpy")
    optax = pytest.importorskip("optax")
    x = np.random.default_rng(0).normal(size=(64, 4)).astype("float32")
    y = x @ np.array([1.0, -2.0, 0.5, 0.0], "float32")

    def loss_fn(w: Any, batch: Any) -> Any:
        bx, by = batch
        return jnp.mean((bx @ w - by) ** 2)

    return lrkit.optax.find_lr(
        loss_fn, jnp.zeros(4), lambda lr: optax.sgd(lr), (x, y), batch_size=16, diverge_factor=None, **kw
    )


@pytest.mark.parametrize(
    "kind",
    [np.int64, lambda n: np.array(n), torch.tensor],
    ids=["numpy", "np 0-d", "torch 0-d"],
)
def test_optax_find_lr_takes_numpy_and_tensor_numbers(kind: Callable[[Any], Any]) -> None:
    """``seed``, ``num_steps``, ``start_lr``, ``end_lr``, ``budget``, ``planned_steps`` of any kind give the
    result the Python numbers give (``budget=np.int64(20)`` was "budget must be an int ... or a float")."""
    real = (lambda x: np.float64(x)) if kind is np.int64 else (lambda x: kind(np.float64(x)))
    got = _optax_find(
        seed=kind(3),
        num_steps=kind(20),
        repeats=kind(2),
        start_lr=real(1e-4),
        end_lr=real(1.0),
        planned_steps=kind(400),
        budget=kind(20),
    )
    want = _optax_find(
        seed=3, num_steps=20, repeats=2, start_lr=1e-4, end_lr=1.0, planned_steps=400, budget=20
    )
    assert json.dumps(got.to_dict()) == json.dumps(want.to_dict())
    share = _optax_find(num_steps=20, repeats=kind(1), planned_steps=kind(400), budget=real(0.05))
    assert json.dumps(share.to_dict()) == json.dumps(
        _optax_find(num_steps=20, repeats=1, planned_steps=400, budget=0.05).to_dict()
    )


@pytest.mark.parametrize("bad", [True, np.True_, torch.tensor(True)], ids=repr)
def test_optax_find_lr_refuses_a_bool_seed_and_budget_by_name(bad: Any) -> None:
    with pytest.raises(TypeError, match=r"^seed must be an integer >= 0, got bool|^seed must be an integer"):
        _optax_find(num_steps=20, seed=bad)
    with pytest.raises(TypeError, match=r"^budget must be an int \(optimizer steps\) or a float in \(0, 1\]"):
        _optax_find(num_steps=20, planned_steps=400, budget=bad)
