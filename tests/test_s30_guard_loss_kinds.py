"""DivergenceGuard.check takes a loss as the rest of lrkit takes a measured value (lrkit._checks'
rule): a number of any real kind, or a one-element array or tensor; a bool, text or several values
are refused naming the loss."""

from __future__ import annotations

from fractions import Fraction
from typing import Any

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from lrkit.control import DivergenceGuard  # noqa: E402


def _guard() -> Any:
    model = torch.nn.Linear(2, 1)
    return DivergenceGuard(model, torch.optim.SGD(model.parameters(), lr=0.1))


@pytest.mark.parametrize(
    "loss",
    [
        0.7,
        np.float32(0.7),
        np.float64(0.7),
        np.array(0.7),
        np.array([0.7]),
        np.array([[0.7]]),
        torch.tensor(0.7),
        torch.tensor([0.7]),
        Fraction(7, 10),
    ],
)
def test_every_kind_of_one_loss_is_taken_as_the_same_number(loss: Any) -> None:
    g = _guard()
    assert g.check(loss, 0)
    assert g.check(loss, 1)
    ref = _guard()
    ref.check(0.7, 0)
    ref.check(0.7, 1)
    assert g.state_dict()["history"] == pytest.approx(ref.state_dict()["history"], rel=1e-6)


@pytest.mark.parametrize("loss", [True, np.True_, "0.7", np.array([0.7, 0.8]), torch.tensor([0.7, 0.8])])
def test_what_is_not_one_loss_is_refused_naming_it(loss: Any) -> None:
    with pytest.raises(TypeError, match=r"DivergenceGuard\.check: loss must be"):
        _guard().check(loss, 0)


@pytest.mark.parametrize("kind", [float, np.float32, torch.tensor, np.array])
def test_factor_threshold_and_step_take_every_number_kind(kind: Any) -> None:
    model = torch.nn.Linear(2, 1)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    g = DivergenceGuard(model, opt, factor=kind(0.5), threshold=kind(3.0))
    assert (g.factor, g.threshold) == (0.5, 3.0)
    step = int if kind is float else (np.int64 if kind is np.float32 else kind)
    assert g.check(0.7, step(0))


@pytest.mark.parametrize("bad", [True, np.True_, torch.tensor(True), "0.5"])
def test_factor_refuses_what_is_not_a_number(bad: Any) -> None:
    model = torch.nn.Linear(2, 1)
    with pytest.raises(TypeError, match="DivergenceGuard: factor must be a number"):
        DivergenceGuard(model, torch.optim.SGD(model.parameters(), lr=0.1), factor=bad)
