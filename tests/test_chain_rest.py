"""A chain's "rest" piece anywhere, not only last: it takes what the other pieces leave of the run."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import lrkit
from lrkit.schedules import REST, Constant, Cosine, Linear, Schedule, Warmup, chain
from lrkit.spec import SpecError

from . import strategies as S

torch = pytest.importorskip("torch")


def test_a_middle_rest_piece_gets_what_the_others_leave_hand_computed() -> None:
    s = lrkit.parse("warmup(5%) >> cosine(lr=1) >> constant(lr=0.01, steps=100)")
    assert s.length == REST
    r = s.resolve(total_steps=1000)
    assert [p.length_steps for p in r.pieces] == [50.0, 850.0, 100.0]
    # the warmup: (t+1)/(n+1) of the peak; the cosine: 0.5 (1 + cos(pi t / 850)); the tail
    assert r(0) == pytest.approx(1 / 51)
    assert r(50) == 1.0
    assert r(50 + 425) == pytest.approx(0.5)
    assert r(899) == pytest.approx(0.5 * (1 + math.cos(math.pi * 849 / 850)))
    assert r(900) == r(999) == r(10**6) == 0.01


@settings(max_examples=120, deadline=None)
@given(
    head=st.lists(S.bounded_leaves, min_size=0, max_size=2),
    middle=st.sampled_from(["cosine", "linear"]),
    tail=st.lists(S.bounded_leaves, min_size=1, max_size=2),
    spare=st.integers(1, 500),
)
def test_a_middle_rest_piece_equals_the_chain_with_its_length_written_out(
    head: list[Schedule], middle: str, tail: list[Schedule], spare: int
) -> None:
    """Property: the rest piece resolved at total_steps = (the others' steps) + spare is the same
    schedule, value for value and as data, as the chain with steps=spare written in."""
    others = sum(float(p.length_steps or 0.0) for p in [*head, *tail])
    total = int(others) + spare
    rest_piece = Cosine(lr=0.7) if middle == "cosine" else Linear(lr=0.7, end_lr=0.1)
    written = Cosine(lr=0.7, steps=spare) if middle == "cosine" else Linear(lr=0.7, end_lr=0.1, steps=spare)
    got = chain(*head, rest_piece, *tail).resolve(total_steps=total)
    want = chain(*head, written, *tail)
    assert got.to_dict() == want.to_dict()
    t = np.arange(total + 5)
    np.testing.assert_array_equal(got(t), want(t))


def test_after_an_overlapping_warmup_the_rest_piece_starts_with_it() -> None:
    s = Warmup(10, start=0.1, overlap=True) >> Cosine(lr=1.0) >> Linear(lr=0.01, end_lr=0.0, steps=20)
    r = s.resolve(total_steps=100)
    assert r.pieces[1].length_steps == 80.0  # the warmup takes no time of its own
    want = (
        Warmup(10, start=0.1, overlap=True)
        >> Cosine(lr=1.0, steps=80)
        >> Linear(lr=0.01, end_lr=0.0, steps=20)
    )
    np.testing.assert_array_equal(r(np.arange(110)), want(np.arange(110)))


def test_the_torch_scheduler_resolves_a_middle_rest_against_its_total_steps() -> None:
    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
    s = lrkit.parse("warmup(10%) >> cosine(lr=0.5) >> constant(lr=0.005, steps=20%)")
    sched = lrkit.torch.scheduler(opt, s, total_steps=200)
    lrs = []
    for _ in range(200):
        lrs.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    want = lrkit.parse("warmup(20) >> cosine(lr=0.5, steps=140) >> constant(lr=0.005, steps=40)")
    np.testing.assert_allclose(lrs, want(np.arange(200)), rtol=1e-15)


def test_unresolved_it_says_what_is_missing_and_round_trips_as_text() -> None:
    s = lrkit.parse("warmup(100) >> cosine(lr=1) >> constant(lr=0.01, steps=100)")
    assert lrkit.parse(lrkit.to_string(s)) == s
    assert lrkit.from_dict(s.to_dict()) == s
    with pytest.raises(ValueError, match="total_steps"):
        s(0)


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("cosine(lr=1) >> cosine(lr=0.5)", r"pieces 0 \(cosine\), 1 \(cosine\) each take 'the rest'"),
        ("warmup(5) >> linear(lr=1) >> cosine(lr=1) >> constant(lr=1, steps=5)", r"pieces 1 \(linear\), 2"),
        (
            "cosine(lr=1) >> constant(lr=0.1)",
            r"piece 0 \(cosine\) takes 'the rest'.*last \(constant\) runs forever",
        ),
        ("constant(1) >> cosine(lr=1)", r"piece 0 \(constant\) has no length \(forever\)"),
    ],
)
def test_refused_where_the_rest_is_not_one_defined_length(spec: str, message: str) -> None:
    with pytest.raises(SpecError, match=message):
        lrkit.parse(spec)


@pytest.mark.parametrize("total", [1, 100, 150])
def test_refused_when_the_other_pieces_leave_nothing(total: int) -> None:
    s = Warmup(50) >> Cosine(lr=1.0) >> Constant(0.1, steps=100)
    with pytest.raises(
        ValueError, match=rf"around it take 150 steps, leaving nothing of total_steps={total}"
    ):
        s.resolve(total_steps=total)
    assert s.resolve(total_steps=151).pieces[1].length_steps == 1.0
