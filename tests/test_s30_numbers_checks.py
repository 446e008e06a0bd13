"""The shared number checks of :mod:`lrkit._checks` (see tests/test_s30_numbers.py for the entry points
that use them): every integer kind is a Python int, every real kind a Python float, a bool neither; a
measured value may be a 1-element array, an argument may not."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from hypothesis import given

from lrkit._checks import as_integer, as_measured, as_real, check_int, plain_number

from .test_s30_numbers import BOOLS, NOT_COUNTS, SETTINGS, held, int_kinds, real_kinds, torch

# -- the shared checks -------------------------------------------------------------------------------


@SETTINGS
@given(int_kinds(-(2**40), 2**40))
def test_as_integer_takes_every_integer_kind_as_its_python_int(case: tuple[str, int, Any]) -> None:
    _, n, v = case
    got = as_integer(v)
    assert got == n and type(got) is int
    assert plain_number(v) == n and type(plain_number(v)) is int
    assert as_real(v) == float(n)


@SETTINGS
@given(real_kinds(-6e4, 6e4))  # float16's range
def test_as_real_takes_every_real_kind_as_its_python_float(case: tuple[str, Any]) -> None:
    _, v = case
    got = as_real(v)
    assert type(got) is float and got == held(v)
    assert as_measured(v) == got


@pytest.mark.parametrize("v", [*BOOLS, "3", b"3", None, [3], torch.tensor(1 + 2j)], ids=repr)
def test_no_bool_or_text_or_list_is_a_number(v: Any) -> None:
    assert as_integer(v) is None and as_real(v) is None and as_measured(v) is None
    assert plain_number(v) is v


@pytest.mark.parametrize(
    "v",
    [np.array([1.5]), torch.tensor([1.5]), torch.tensor([[1.5]]), np.array([[1.5]], np.float32)],
    ids=repr,
)
def test_a_measured_value_may_be_one_element_but_a_hyperparameter_may_not(v: Any) -> None:
    """A loss or a metric comes from training: ``loss`` of shape (1,) is one number; an argument is not."""
    assert as_measured(v) == 1.5
    assert as_real(v) is None


@pytest.mark.parametrize("bad", NOT_COUNTS, ids=repr)
def test_check_int_refuses_what_is_no_integer_naming_its_type(bad: Any) -> None:
    with pytest.raises(ValueError, match=r"^f: n must be an integer >= 1, got (\w+) ") as exc:
        check_int(bad, "n", 1, where="f: ")
    assert type(bad).__name__ in str(exc.value)
