"""``warmup(0)`` is no warmup, as transformers' ``num_warmup_steps=0`` (its default): in the constructor,
the spec string (``warmup(0)``, ``warmup(0%)``, ``warmup(0ep)``), ``with_warmup`` and the dict / JSON /
YAML forms, the schedule equals the one without the warmup at every step. Other zero-length pieces stay
refused: they would never be seen."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import lrkit
from lrkit.schedules import Schedule, Warmup, with_warmup

from .strategies import leaves, lr_schedules

ZEROS = [0, "0%", "0ep", 0.0]
_STEPS = np.arange(-5.0, 6000.0, 7.0)


def _same(a: Schedule, b: Schedule, total: int) -> None:
    ra, rb = (
        a.resolve(total_steps=total, steps_per_epoch=10),
        b.resolve(total_steps=total, steps_per_epoch=10),
    )
    np.testing.assert_array_equal(ra(_STEPS), rb(_STEPS))
    for t in (0, 1, total - 1, total):
        assert ra(t) == rb(t)


@settings(max_examples=80, deadline=None)
@given(s=lr_schedules, zero=st.sampled_from(ZEROS), total=st.integers(10, 6000))
def test_a_zero_warmup_is_the_schedule_without_it(s: Schedule, zero: object, total: int) -> None:
    """Built every way a user writes it, ``warmup(0) >> s`` is ``s`` at every step, and its string and
    dict forms (through JSON) read back as itself."""
    built = [
        Warmup(steps=zero) >> s,
        with_warmup(s, zero),
        lrkit.parse(f"warmup({json.dumps(zero)}) >> ({s})"),
    ]
    for c in built:
        _same(c, s, total)
        assert lrkit.parse(str(c)) == c
        assert lrkit.from_dict(json.loads(json.dumps(c.to_dict()))) == c


@settings(max_examples=40, deadline=None)
@given(s=leaves, start=st.none() | st.floats(0.0, 1.0), total=st.integers(10, 3000))
def test_overlapping_and_started_zero_warmups_are_none_too(
    s: Schedule, start: float | None, total: int
) -> None:
    for w in (Warmup(0, start=start), Warmup(0, start=start, overlap=True), Warmup("0%", lr=None)):
        _same(w >> s, s, total)


def test_the_reported_forms_are_accepted() -> None:
    """The three refusals the tester met ('steps must be > 0', 'piece 0 (warmup) has zero length',
    with_warmup's ValueError) and the f-string a sweep builds with n = 0."""
    cos = lrkit.parse("cosine(lr=0.1)")
    for spec in (
        "warmup(0) >> cosine(lr=0.1)",
        "warmup(0%) >> cosine(lr=0.1)",
        f"warmup({0}) >> cosine(lr=0.1)",
    ):
        _same(lrkit.parse(spec), cos, 1000)
    _same(lrkit.with_warmup(cos, 0), cos, 1000)
    assert str(lrkit.parse("warmup(0) >> cosine(lr=0.1)")) == "warmup(steps=0) >> cosine(lr=0.1)"


def test_yaml_round_trip() -> None:
    yaml = pytest.importorskip("yaml")
    c = lrkit.parse("warmup(0%) >> cosine(lr=0.1, min_lr=0.001)")
    assert lrkit.from_dict(yaml.safe_load(yaml.safe_dump(c.to_dict()))) == c


def test_a_lone_zero_warmup_is_its_peak() -> None:
    """Alone, a warmup of no length has warmed up already: its lr (or 1, as a multiplier)."""
    t = np.arange(-3.0, 10.0)
    for mode in ("linear", "exponential"):
        assert np.all(Warmup(0, lr=0.3, mode=mode)(t) == 0.3)
        assert np.all(Warmup(0, mode=mode)(t) == 1.0)
    assert np.all((lrkit.Cosine(lr=0.2, steps=50) * Warmup(0))(t) == lrkit.Cosine(lr=0.2, steps=50)(t))


@pytest.mark.parametrize("total", [1, 37, 1000])
def test_matches_transformers_without_warmup(total: int) -> None:
    """transformers' get_cosine/linear_schedule_with_warmup(num_warmup_steps=0) against lrkit's
    ``warmup(0) >> ...`` through lrkit.torch.scheduler, step by step."""
    tf = pytest.importorskip("transformers")
    cases = [
        (tf.get_cosine_schedule_with_warmup, "warmup(0) >> cosine(lr=0.1)"),
        (tf.get_linear_schedule_with_warmup, "warmup(0) >> linear(lr=0.1, end_lr=0)"),
    ]
    for make, spec in cases:
        p, q = torch.nn.Parameter(torch.zeros(1)), torch.nn.Parameter(torch.zeros(1))
        o1, o2 = torch.optim.SGD([p], lr=0.1), torch.optim.SGD([q], lr=0.1)
        theirs = make(o1, num_warmup_steps=0, num_training_steps=total)
        ours = lrkit.torch.scheduler(o2, spec, total_steps=total)
        for _ in range(total + 1):
            a, b = o1.param_groups[0]["lr"], o2.param_groups[0]["lr"]
            assert math.isclose(a, b, rel_tol=1e-12, abs_tol=1e-16), (spec, a, b)
            o1.step(), o2.step(), theirs.step(), ours.step()


@pytest.mark.parametrize(
    ("spec", "match"),
    [
        ("constant(lr=0.1, steps=0) >> cosine(lr=0.1)", r"constant: steps must be > 0 steps, got 0"),
        (
            "constant(lr=0.1, steps=0%) >> cosine(lr=0.1)",
            r"piece 0 \(constant\) has zero length.*only a warmup",
        ),
        (
            "warmup(10) >> cosine(lr=0.1, steps=0%) >> constant(lr=0.01)",
            r"piece 1 \(cosine\) has zero length",
        ),
        ("cosine(lr=1, steps=0)", r"steps must be > 0 steps, got 0"),
    ],
)
def test_other_zero_length_pieces_are_still_refused(spec: str, match: str) -> None:
    """A zero-length decay or hold would be silently skipped with its lr: still an error, which says
    only a warmup may be 0 long."""
    with pytest.raises(ValueError, match=match):
        lrkit.parse(spec).resolve(total_steps=1000)
