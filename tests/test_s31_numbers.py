"""The number rule of :mod:`lrkit._checks` (a count: any integer, numpy's and 0-d integer arrays or tensors
too; a rate: any real, ``Fraction`` and 0-d real arrays or tensors too; a bool never) in the arguments
that still read Python numbers only: ``one_cycle_momentum``'s ``pct_start`` (``np.float32(0.3)`` was
"pct_start must be in (0, 1), got np.float32(0.3)") and its momenta, the report's ``t_quantile(p, df)``,
``summarize(target)`` and ``load_result(experiment_id)``; and the guard's loss, whose path under a
process group took a bool tensor as 1.0 where the path without one refuses it."""

from __future__ import annotations

import math
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from .test_s30_n2_numbers import _typed, python_of
from .test_s30_numbers import BOOLS, int_kinds, real_kinds

torch = pytest.importorskip("torch")
pytest.importorskip("matplotlib")

from lrkit.adapters.torch import one_cycle_momentum  # noqa: E402
from lrkit.lab import report  # noqa: E402

from .test_report import make_result  # noqa: E402

#: name -> (the argument's name in a refusal; "int" or "real"; low, high; the call)
ENTRIES: dict[str, tuple[str, str, float, float, Any]] = {
    "one_cycle_momentum(pct_start)": (
        "pct_start",
        "real",
        0.05,
        0.95,
        lambda x: one_cycle_momentum(100, pct_start=x).to_dict(),
    ),
    "one_cycle_momentum(momenta)": (
        "max_momentum",
        "real",
        0.0,
        1.0,
        lambda x: one_cycle_momentum(100, max_momentum=x, base_momentum=x).to_dict(),
    ),
    "t_quantile(p)": ("p", "real", 0.5, 0.999, lambda x: report.t_quantile(x, 3)),
    "t_quantile(df)": ("df", "int", 1, 300, lambda k: report.t_quantile(0.975, k)),
    "summarize(target)": ("target", "real", 0.0, 1.0, lambda x: report.summarize(make_result(), x)),
}


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_each_entry_takes_any_number_kind_as_the_python_number(data: st.DataObject) -> None:
    name = data.draw(st.sampled_from(sorted(ENTRIES)), label="entry")
    _, kind, low, high, call = ENTRIES[name]
    if kind == "int":
        v = data.draw(int_kinds(int(low), int(high)), label="value")[2]
    else:
        v = data.draw(real_kinds(low, high), label="value")[1]
    assert _typed(call(v)) == _typed(call(python_of(v)))


@pytest.mark.parametrize("name", sorted(ENTRIES))
@pytest.mark.parametrize("bad", [*BOOLS, "0.5", math.nan], ids=repr)
def test_each_entry_refuses_what_is_no_number_by_name(name: str, bad: Any) -> None:
    said, *_, call = ENTRIES[name]
    with pytest.raises((TypeError, ValueError), match=rf"^(one_cycle_momentum: )?{said}(:| must) .*got "):
        call(bad)


def test_one_cycle_momentum_takes_the_example_of_the_report() -> None:
    assert one_cycle_momentum(100, pct_start=np.float32(0.3)) == one_cycle_momentum(
        100, pct_start=float(np.float32(0.3))
    )
    assert one_cycle_momentum(100, pct_start=Fraction(3, 10)) == one_cycle_momentum(100, pct_start=0.3)
    with pytest.raises(
        ValueError, match=r"^one_cycle_momentum: base_momentum must be a finite number >= 0, got -0\.1"
    ):
        one_cycle_momentum(100, base_momentum=-0.1)
    with pytest.raises(TypeError, match=r"^one_cycle_momentum: three_phase must be True or False, got 'yes'"):
        one_cycle_momentum(100, three_phase="yes")  # type: ignore[arg-type]


def test_load_result_takes_a_numpy_experiment_id(tmp_path: Path) -> None:
    from lrkit.lab.runner import Strategy, run_lab
    from lrkit.tasks import Task

    from .test_lab_truth_did_not_learn import _noisy

    db = tmp_path / "lab.db"
    run_lab(Task("noisy", _noisy), [Strategy("c", "constant(0.1)")], seeds=[0], store=str(db))
    first, _ = report.load_result(db)
    for kind in (np.int64, np.int32, torch.tensor):
        got, missing = report.load_result(db, kind(first.experiment_id))
        assert (got, missing) == (first, 0)
        assert type(got.experiment_id) is int
    for bad in (True, np.True_, 1.0, "1"):
        with pytest.raises(TypeError, match=r"^experiment_id: expected an int or None, got "):
            report.load_result(db, bad)  # type: ignore[arg-type]


# -- the guard's loss: the same rule with a process group as without -----------------------------------


@pytest.fixture(scope="module")
def group(tmp_path_factory: pytest.TempPathFactory) -> Any:
    """A one-process gloo group (its collectives' device is the CPU)."""
    dist = pytest.importorskip("torch.distributed")
    if not dist.is_available() or not dist.is_gloo_available():
        pytest.skip("torch.distributed with gloo is not available")
    assert not dist.is_initialized()
    store = tmp_path_factory.mktemp("gloo") / "store"
    dist.init_process_group("gloo", init_method=f"file://{store}", rank=0, world_size=1)
    try:
        yield dist.group.WORLD
    finally:
        dist.destroy_process_group()


def _taken(loss: Any, group: Any) -> float | str:
    """The float the guard takes ``loss`` as, with or without (None) a process group, or the refusal."""
    from lrkit.control.guard import _loss

    try:
        value = _loss(loss, group)
    except TypeError as exc:
        return str(exc)
    return float(value) if group is None else float(value.item())


LOSS_KINDS = {
    "bool tensor": lambda x: torch.tensor(x > 0),
    "(1,) bool tensor": lambda x: torch.tensor([x > 0]),
    "np.bool_": lambda x: np.bool_(x > 0),
    "(1,) bool array": lambda x: np.array([x > 0]),
    "complex tensor": lambda x: torch.tensor(complex(x, 0.0)),
    "str": lambda x: str(x),
    "(1,) float array": lambda x: np.array([x]),
    "(1, 1) tensor": lambda x: torch.tensor([[x]]),
    "(1,) int tensor": lambda x: torch.tensor([int(x)]),
    "bfloat16 tensor": lambda x: torch.tensor(x, dtype=torch.bfloat16),
    "(2,) tensor": lambda x: torch.tensor([x, x]),
}


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_the_loss_is_taken_alike_with_and_without_a_process_group(group: Any, data: st.DataObject) -> None:
    if data.draw(st.booleans(), label="other kind"):
        name = data.draw(st.sampled_from(sorted(LOSS_KINDS)), label="kind")
        loss = LOSS_KINDS[name](data.draw(st.floats(-1e3, 1e3), label="x"))
    else:
        loss = data.draw(real_kinds(-1e3, 1e3), label="value")[1]
    alone, grouped = _taken(loss, None), _taken(loss, group)
    if isinstance(alone, str):
        assert isinstance(grouped, str), (loss, grouped)
    else:
        assert grouped == alone


@pytest.mark.parametrize("bad", [*BOOLS, torch.tensor([True])], ids=repr)
def test_a_bool_loss_is_refused_with_a_process_group_too(group: Any, bad: Any) -> None:
    with pytest.raises(TypeError, match=r"^DivergenceGuard\.check: loss must be a number or a one-element"):
        _taken_or_raise(bad, group)


def _taken_or_raise(loss: Any, group: Any) -> Any:
    from lrkit.control.guard import _loss

    return _loss(loss, group)
