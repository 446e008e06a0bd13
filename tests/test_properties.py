"""Properties every schedule keeps (hypothesis)."""

from __future__ import annotations

import json
import math

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import lrkit
from lrkit.schedules import (
    WSD,
    Chain,
    Cosine,
    CosineRestarts,
    Cyclic,
    Linear,
    OneCycle,
    Schedule,
    Warmup,
    chain,
)
from lrkit.spec import from_json, from_toml, from_yaml, to_json, to_toml, to_yaml

from . import strategies as S

SETTINGS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@SETTINGS
@given(S.schedules, st.lists(S.steps, min_size=1, max_size=20))
def test_vectorised_equals_scalar_loop(s: Schedule, ts: list[int]) -> None:
    vec = s(np.array(ts))
    assert vec.shape == (len(ts),) and vec.dtype == np.float64
    loop = [s(t) for t in ts]
    assert all(isinstance(v, float) for v in loop)
    assert vec.tolist() == loop


@SETTINGS
@given(S.schedules)
def test_spec_round_trips(s: Schedule) -> None:
    assert lrkit.from_dict(s.to_dict()) == s
    assert lrkit.from_dict(json.loads(json.dumps(s.to_dict()))) == s
    assert from_json(to_json(s)) == s
    assert from_yaml(to_yaml(s)) == s
    assert from_toml(to_toml(s)) == s
    assert lrkit.parse(lrkit.to_string(s)) == s


@SETTINGS
@given(S.schedules, st.lists(S.steps, min_size=1, max_size=10))
def test_values_are_finite_and_non_negative(s: Schedule, ts: list[int]) -> None:
    v = s(np.array(ts))
    assert np.all(np.isfinite(v)) and np.all(v >= 0)


@SETTINGS
@given(st.lists(S.bounded_leaves, min_size=1, max_size=4), S.leaves, st.data())
def test_every_piece_sees_local_time(head: list[Schedule], last: Schedule, data: st.DataObject) -> None:
    head = [p for p in head if not (isinstance(p, Warmup) and p.lr is None)]  # those borrow the next peak
    c = chain(*head, last)
    for piece, start in zip(c.pieces, c.offsets):
        n = piece.length_steps
        local = data.draw(st.integers(0, int(n) - 1 if n else 10_000))
        assert c(start + local) == piece(local)


@SETTINGS
@given(
    st.lists(st.tuples(st.sampled_from(["cosine", "linear"]), S.lengths, S.lrs), min_size=2, max_size=5),
    S.lrs,
)
def test_chain_is_continuous_where_matching_pieces_meet(
    parts: list[tuple[str, int, float]], lr0: float
) -> None:
    pieces: list[Schedule] = []
    level = lr0
    for kind, n, nxt in parts:  # each piece starts where the one before ended
        pieces.append(
            Cosine(lr=level, steps=n, min_lr=min(level, nxt))
            if kind == "cosine" and nxt <= level
            else Linear(lr=level, steps=n, end_lr=nxt)
        )
        level = pieces[-1](n)
    c = chain(*pieces)
    # 1e-12 steps before a junction a piece has moved by slope x 1e-12 (a slope up to the largest LR per
    # step): next to a tiny LR that is more than 1e-6 of it, so the absolute slack scales with the LRs
    scale = max(lr0, *(nxt for _, _, nxt in parts))
    for start in c.offsets[1:]:
        assert math.isclose(c(start - 1e-12), c(start), rel_tol=1e-6, abs_tol=1e-11 * scale)


@SETTINGS
@given(S.warmup(), S.bounded_leaves | S.unbounded_leaves)
def test_warmup_ends_where_the_next_piece_starts(w: Warmup, nxt: Schedule) -> None:
    c = Chain((Warmup(steps=w.steps, start=w.start, mode=w.mode), nxt))
    n = w.length_steps
    assert n is not None
    assert math.isclose(c(n - 1e-6), nxt(0), rel_tol=1e-5)
    assert c(n) == nxt(0)
    # and it starts above zero unless asked to
    if w.start is None or w.start > 0:
        assert c(0) > 0 or nxt(0) == 0


BOUNDS = {
    Cosine: lambda s: (s.min_lr, s.lr),
    Linear: lambda s: (min(s.lr, s.end_lr), max(s.lr, s.end_lr)),
    OneCycle: lambda s: (
        min(s.max_lr / s.div_factor / s.final_div_factor, s.max_lr / s.div_factor),
        s.max_lr,
    ),
    Cyclic: lambda s: (s.lr, s.max_lr),
    CosineRestarts: lambda s: (s.min_lr, s.lr),
    WSD: lambda s: (s.min_lr if s.length_steps and not s.warmup.value else 0.0, s.lr),  # warmup starts low
}


@SETTINGS
@given(
    st.one_of(S.cosine(), S.linear(), S.one_cycle(), S.cyclic(), S.restarts(), S.wsd()),
    st.lists(S.steps, min_size=1, max_size=30),
)
def test_values_stay_within_promised_bounds(s: Schedule, ts: list[int]) -> None:
    lo, hi = BOUNDS[type(s)](s)
    v = s(np.array(ts))
    assert np.all(v >= lo * (1 - 1e-12) - 1e-15) and np.all(v <= hi * (1 + 1e-12) + 1e-15)


@SETTINGS
@given(S.bounded_leaves | S.chains(), st.integers(0, 10**7))
def test_holds_final_value_past_the_end(s: Schedule, extra: int) -> None:
    n = s.length_steps
    if n is not None:
        assert s(n + extra) == s(n)
