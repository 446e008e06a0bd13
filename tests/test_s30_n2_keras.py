"""lrkit.keras under :mod:`lrkit._checks`' number rule: a schedule's ``multiplier``, ``floor`` and
``scale(factor)`` take a 0-d array or tensor as the number it holds (they took numpy's scalars, but
``scale(torch.tensor(0.5))`` was "scale: factor must be a finite number, got tensor(0.5)"), and a loaded
plateau state's cut takes any integer epoch (``np.int64(2)`` passed, a 0-d tensor did not); bools never."""

from __future__ import annotations

import os

os.environ.setdefault("KERAS_BACKEND", "torch")  # before the first `import keras` in this process

from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
from hypothesis import given

keras = pytest.importorskip("keras")
torch = pytest.importorskip("torch")

import lrkit  # noqa: E402
from lrkit.adapters.keras import ReduceOnPlateau  # noqa: E402

from .test_s30_n2_numbers import python_of  # noqa: E402
from .test_s30_numbers import BOOLS, SETTINGS, int_kinds, real_kinds  # noqa: E402

if keras.backend.backend() != "torch":  # pragma: no cover - keras imported earlier with another backend
    pytest.skip("needs Keras' torch backend in this process", allow_module_level=True)

pytestmark = pytest.mark.filterwarnings("ignore:__array__ implementation doesn't accept a copy keyword")


def _handles(factor: Any, floor: Any) -> tuple[float, float, float]:
    s = lrkit.keras.schedule("cosine(lr=0.1)", total_steps=100)
    s.multiplier = factor
    s.scale(factor)
    s.floor = floor
    t = lrkit.adapters.keras.KerasSchedule("cosine(lr=0.1)", total_steps=100, multiplier=factor, floor=floor)
    return s.multiplier, s.floor, t.multiplier


@SETTINGS
@given(real_kinds(0.01, 4.0), real_kinds(0.0, 0.01))
def test_schedule_handles_take_any_real_kind(factor: tuple[str, Any], floor: tuple[str, Any]) -> None:
    assert _handles(factor[1], floor[1]) == _handles(python_of(factor[1]), python_of(floor[1]))


@pytest.mark.parametrize("bad", BOOLS, ids=repr)
@pytest.mark.parametrize(
    "call",
    [
        lambda s, b: s.scale(b),
        lambda s, b: setattr(s, "multiplier", b),
        lambda s, b: setattr(s, "floor", b),
    ],
    ids=["scale", "multiplier", "floor"],
)
def test_schedule_handles_refuse_a_bool(call: Callable[[Any, Any], None], bad: Any) -> None:
    s = lrkit.keras.schedule("cosine(lr=0.1)", total_steps=100)
    with pytest.raises(ValueError, match=r"(factor|multiplier|floor) must be a finite number, got"):
        call(s, bad)


def _cuts(epoch: Any, metric: Any) -> list[Any]:
    cb = ReduceOnPlateau()
    state = cb.state_dict()
    cut = {"epoch": epoch, "metric": metric, "lr_before": 0.1, "lr_after": 0.01}
    cb.load_state_dict({**state, "cuts": [cut], "num_cuts": 1})
    return [(c.epoch, type(c.epoch), c.metric, type(c.metric)) for c in cb.cuts]


@SETTINGS
@given(int_kinds(0, 10_000), real_kinds(-10.0, 10.0))
def test_a_loaded_cut_takes_any_integer_epoch_and_any_real_metric(
    epoch: tuple[str, int, Any], metric: tuple[str, Any]
) -> None:
    assert _cuts(epoch[2], metric[1]) == _cuts(epoch[1], python_of(metric[1]))


def test_a_loaded_cut_keeps_an_infinite_or_nan_metric_of_any_kind() -> None:
    for v in (torch.tensor(float("nan")), np.float32("inf"), np.array(-np.inf)):
        (got,) = _cuts(torch.tensor(3), v)
        assert got[0] == 3 and type(got[0]) is int and str(got[2]) == str(float(v))


@pytest.mark.parametrize("bad", [*BOOLS, 2.0, torch.tensor(2.0), -1, "2"], ids=repr)
def test_a_loaded_cut_refuses_an_epoch_that_is_no_integer_by_name(bad: Any) -> None:
    with pytest.raises(ValueError, match=r"load_state_dict: plateau: a cut's epoch must be an integer >= 0"):
        _cuts(bad, 1.0)
