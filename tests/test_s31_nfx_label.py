"""A strategy whose label is an optimizer call (no ``LABEL@``) is refused with the fix (tester NF, 1)."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lrkit.lab.runner import Strategy
from lrkit.tasks.optimizers import OPTIMIZERS


def test_optimizer_call_as_label_is_refused_with_the_fix() -> None:
    text = "adam(betas=(0.9, 0.99))=constant(1e-3)"
    with pytest.raises(ValueError) as err:
        Strategy.parse(text, "--strategy")
    msg = str(err.value)
    assert "--strategy" in msg and "'adam(betas=(0.9, 0.99))'" in msg
    assert "did you mean 'adam@adam(betas=(0.9, 0.99))=constant(1e-3)'" in msg


@settings(max_examples=30, deadline=None)
@given(name=st.sampled_from(sorted(OPTIMIZERS)), wd=st.floats(0.0, 1.0))
def test_every_known_optimizer_call_as_label_is_refused(name: str, wd: float) -> None:
    with pytest.raises(ValueError, match=f"did you mean '{name}@{name}"):
        Strategy.parse(f"{name}(weight_decay={wd!r})=constant(0.1)", "--strategy")


@pytest.mark.parametrize("label", ["sgd", "adam", "my(run)", "Adam(x=1)", "adam lr=1e-3"])
def test_plain_labels_stay_labels(label: str) -> None:
    s = Strategy.parse(f"{label}=constant(0.1)", "--strategy")
    assert s.label == label and s.optimizer is None


def test_the_fix_it_suggests_parses() -> None:
    s = Strategy.parse("adam@adam(betas=(0.9, 0.99))=constant(1e-3)", "--strategy")
    assert (s.label, s.optimizer, s.optimizer_params) == ("adam", "adam", {"betas": (0.9, 0.99)})
