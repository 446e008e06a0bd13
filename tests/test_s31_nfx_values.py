"""Optimizer values: None where torch's default is None (tester NF, 5); the report's optimizer column in
the command line's syntax, so it can be copied back (tester NF, 6)."""

from __future__ import annotations

import inspect

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lrkit.lab.report import optimizer_text
from lrkit.lab.runner import Strategy
from lrkit.tasks.optimizers import OPTIMIZERS, check_optimizer, parse_optimizer


def _none_defaults(name: str) -> list[str]:
    args = inspect.signature(OPTIMIZERS[name].target()).parameters.values()
    return [a.name for a in args if a.default is None and a.name not in OPTIMIZERS[name].defaults]


TORCH = [n for n in OPTIMIZERS if OPTIMIZERS[n].module == "torch.optim"]


@pytest.mark.parametrize("name", TORCH)
def test_none_is_taken_where_torch_default_is_none(name: str) -> None:
    keys = _none_defaults(name)
    assert "foreach" in keys
    for key in keys:
        assert check_optimizer(*parse_optimizer(f"{name}({key}=none)")) == {key: None}


def test_adam_foreach_none_as_the_tester_wrote_it() -> None:
    assert check_optimizer(*parse_optimizer("adam(foreach=none)")) == {"foreach": None}
    s = Strategy.parse("f@adam(foreach=none, fused=none)=constant(1e-3)")
    assert s.optimizer_params == {"foreach": None, "fused": None}


def test_none_is_refused_where_the_default_is_a_value() -> None:
    with pytest.raises(ValueError, match=r"optimizer_params\.eps must not be none \(its default is 1e-08\)"):
        check_optimizer(*parse_optimizer("adam(eps=none)"))
    with pytest.raises(ValueError, match=r"optimizer_params\.betas must hold numbers, got \(0\.9, none\)"):
        check_optimizer(*parse_optimizer("adam(betas=(0.9, none))"))


@settings(max_examples=40, deadline=None)
@given(nesterov=st.booleans(), momentum=st.floats(0.01, 0.99), maximize=st.booleans())
def test_report_column_reads_back_as_the_same_optimizer(
    nesterov: bool, momentum: float, maximize: bool
) -> None:
    params = {"momentum": momentum, "nesterov": nesterov, "maximize": maximize}
    text = optimizer_text("sgd", params)
    assert "True" not in text and "False" not in text
    name, back = parse_optimizer(text)
    assert name == "sgd"
    assert {**{"nesterov": False, "maximize": False}, **back} == params
    assert Strategy.parse(f"x@{text}=constant(0.1)").optimizer_params == back


def test_report_column_writes_true_as_the_syntax_does() -> None:
    assert optimizer_text("sgd", {"momentum": 0.9, "nesterov": True}) == "sgd(momentum=0.9, nesterov=true)"
