"""A chain built with ``>>`` one piece at a time (``s = s >> piece`` in a loop) is as deep as one built at
once: its pieces are flat, and its nesting (how many schedules deep, the limit that keeps evaluation off
Python's recursion limit) is counted on them. It counted the chain it flattened, one level more per
``>>``: the 65th piece was "chain: schedules nested 65 levels deep; at most 64 (fold repeated factors
...)" (tester E). And the hint for a length between 0 and 1 steps writes the fraction meant in full
(``'12.3456789%'``), not to 6 digits (``'12.3457%'``, another fraction)."""

from __future__ import annotations

import functools
import operator
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import lrkit
from lrkit.schedules.base import MAX_NESTING
from lrkit.schedules.duration import fraction

PIECE = "constant(lr=0.1, steps=10)"


def test_a_chain_of_1000_built_by_rshift_is_the_chain_built_at_once() -> None:
    piece = lrkit.parse(PIECE)
    built = functools.reduce(operator.rshift, [piece] * 1000)
    at_once = lrkit.chain(*[piece] * 1000)
    assert built == at_once and built.nesting == at_once.nesting == 2
    assert len(built.pieces) == 1000
    steps = np.arange(0, 10_001, 7)
    np.testing.assert_array_equal(built(steps), at_once(steps))
    assert str(built) == str(at_once) and lrkit.parse(str(built)) == built


def test_the_testers_loop_goes_past_64_pieces() -> None:
    piece = lrkit.parse(PIECE)
    s = piece
    for _ in range(100):
        s = s >> piece
    assert s.nesting == 2 and len(s.pieces) == 101


def _tree(pieces: list[Any], cuts: list[int]) -> Any:
    """The pieces joined by ``>>`` in the order the cuts pick: ``(a >> b) >> (c >> d)``, ``a >> (b >> c)``."""
    if len(pieces) == 1:
        return pieces[0]
    k = 1 + cuts[0] % (len(pieces) - 1) if cuts else 1
    rest = cuts[1:]
    return _tree(pieces[:k], rest) >> _tree(pieces[k:], rest)


LEAVES = [
    "constant(lr=0.1, steps=10)",
    "cosine(lr=0.1, steps=20)",
    "0.5 * linear(lr=0.2, steps=5)",  # a scale: 2 deep
    "(0.5 * (0.5 * cosine(lr=0.1, steps=8)))",  # 3 deep
    "warmup(4)",
]


@settings(max_examples=60, deadline=None)
@given(
    st.lists(st.sampled_from(LEAVES), min_size=2, max_size=120),
    st.lists(st.integers(0, 10**6), max_size=200),
)
def test_a_chain_is_as_deep_as_its_deepest_piece_plus_one_however_it_was_joined(
    specs: list[str], cuts: list[int]
) -> None:
    pieces = [lrkit.parse(s) for s in specs]
    pieces[-1] = lrkit.parse("constant(lr=0.1)")  # a warmup last would ramp to nothing
    built = _tree(pieces, cuts)
    at_once = lrkit.chain(*pieces)
    assert built == at_once
    assert built.nesting == 1 + max(p.nesting for p in pieces)
    assert lrkit.parse(str(built)) == built


def test_nesting_past_the_limit_is_still_refused() -> None:
    s = lrkit.parse("cosine(lr=0.1, steps=10)")
    for _ in range(MAX_NESTING - 1):
        s = s * lrkit.parse("constant(1.0)")
    assert s.nesting == MAX_NESTING
    with pytest.raises(ValueError, match=rf"^product: schedules nested {MAX_NESTING + 1} levels deep"):
        s * lrkit.parse("constant(1.0)")
    with pytest.raises(ValueError, match=rf"^chain: schedules nested {MAX_NESTING + 1} levels deep"):
        lrkit.parse(PIECE) >> s  # a chain holding it is one level more


@settings(max_examples=200, deadline=None)
@given(st.floats(1e-9, 1.0, exclude_max=True, allow_subnormal=False))
def test_the_hint_for_part_of_a_step_is_the_fraction_meant_exactly(v: float) -> None:
    """``Warmup(steps=0.123456789)`` suggested '12.3457%' or fraction(0.123457)."""
    with pytest.raises(ValueError) as exc:
        lrkit.Warmup(steps=v)
    said = str(exc.value)
    pct = said.split("write '", 1)[1].split("%'", 1)[0]
    frac = said.split("fraction(", 1)[1].split(")", 1)[0]
    assert lrkit.parse(f"warmup({pct}%)").steps == fraction(v)
    assert float(frac) == v and lrkit.Warmup(steps=fraction(float(frac))).steps == fraction(v)
    assert f"steps={v!r} is less than one step" in said
