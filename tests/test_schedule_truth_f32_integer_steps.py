"""Periodic and stepped schedules at integer steps past 2**24, evaluated in float32 (a torch int tensor
with float32 the default dtype, a jax int32 count under jit: what the torch, optax and Keras adapters
pass), against lrkit's float64 numpy values. A float32 step past 2**24 is 1-2 steps off (past 2**31 up
to 128), so a step converted to float32 first put a restart or a cycle's turn a step or more away: at
50,000,999 ``cosine_restarts(period=1000)`` restarted a step early (0.1 for 1e-4), a 13-step cyclic at
2**31-1 gave its base LR at every step. The integer step is now reduced in integer arithmetic.
"""

from __future__ import annotations

from fractions import Fraction

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import lrkit
from lrkit.schedules import (
    CosineRestarts,
    Cyclic,
    Exponential,
    MultiStep,
    Repeat,
    Schedule,
    StepDecay,
    Warmup,
)

torch = pytest.importorskip("torch")
jax = pytest.importorskip("jax")
jnp = jax.numpy

BASES = [2**24 - 5, 50_000_000, 2**31 - 1]


def _peak(s: Schedule) -> float:
    p = s.peak()
    assert p is not None
    return p


def _check(s: Schedule, steps: np.ndarray, got: np.ndarray, what: str) -> None:
    want = s(steps.astype(np.float64))
    bad = np.flatnonzero(np.abs(got - want) > 1e-5 * _peak(s))
    assert bad.size == 0, (what, str(s), [(int(steps[i]), float(got[i]), float(want[i])) for i in bad[:4]])


def _window(base: int, width: int, top: int) -> np.ndarray:
    """``width`` steps from ``base``, shifted down to end by ``top``."""
    lo = max(0, min(base, top - width + 1))
    return np.arange(lo, lo + width, dtype=np.int64)


def _all_kinds(s: Schedule, steps: np.ndarray) -> None:
    """torch int64 and int32 tensors and a jax int32 count under jit (int32: steps within its range)."""
    _check(s, steps, s(torch.tensor(steps)).double().numpy(), "torch int64")
    if steps.max() <= 2**31 - 1:
        _check(s, steps, s(torch.tensor(steps, dtype=torch.int32)).double().numpy(), "torch int32")
        f = jax.jit(lambda k: s(k))
        _check(s, steps, np.asarray(f(jnp.asarray(steps, dtype=jnp.int32)), dtype=np.float64), "jax jit")


modes = st.sampled_from(Cyclic.MODES)


@settings(max_examples=30, deadline=None)
@given(
    up=st.integers(1, 2500),
    down=st.none() | st.integers(1, 2500),
    mode=modes,
    base=st.sampled_from(BASES),
    warm=st.sampled_from([0, 2000]),
)
def test_cyclic_at_integer_steps_past_2_24(
    up: int, down: int | None, mode: str, base: int, warm: int
) -> None:
    c = Cyclic(lr=1e-4, max_lr=1e-2, step_size_up=up, step_size_down=down, mode=mode, gamma=0.999999)
    s: Schedule = Warmup(warm) >> c if warm else c
    _all_kinds(s, _window(base, 2 * (up + (down or up)) + 8, 2**31 - 1))


@settings(max_examples=30, deadline=None)
@given(
    period=st.integers(1, 3000),
    decay=st.sampled_from([1.0, 0.7]),
    base=st.sampled_from(BASES),
)
def test_cosine_restarts_at_integer_steps_past_2_24(period: int, decay: float, base: int) -> None:
    s = CosineRestarts(lr=0.1, period=period, min_lr=1e-4, decay=decay)
    _all_kinds(s, _window(base, 2 * period + 8, 2**31 - 1))


def _first_steps(period: int, mult: Fraction, lo: int, hi: int) -> list[int]:
    """The first integer step of each cycle starting in ``[lo, hi]`` (exact starts, as fractions)."""
    out, start, k = [], Fraction(0), 0
    while start <= hi:
        if start >= lo:
            out.append(-(-start.numerator // start.denominator))
        start += period * mult**k
        k += 1
    return out


@settings(max_examples=30, deadline=None)
@given(
    period=st.integers(1, 3000),
    mult=st.integers(105, 300).map(lambda c: Fraction(c, 100)),
    decay=st.sampled_from([1.0, 0.8]),
)
def test_cosine_restarts_with_mult_restart_on_their_step(period: int, mult: Fraction, decay: float) -> None:
    """Every restart from 2**24 to 2**31 (each step around it), against exact starts: the cycle's peak
    on its first step, the last cycle's floor the step before."""
    s = CosineRestarts(lr=0.1, period=period, mult=float(mult), min_lr=1e-4, decay=decay)
    firsts = _first_steps(period, mult, 2**24, 2**31 - 8)
    steps = np.array([f + d for f in firsts for d in range(-3, 4)], dtype=np.int64)
    if steps.size:
        _all_kinds(s, steps)
        got = s(torch.tensor(firsts)).double().numpy()
        before = s(torch.tensor(firsts) - 1).double().numpy()
        assert np.all(got > before), (firsts, got, before)


@settings(max_examples=20, deadline=None)
@given(n=st.integers(1, 3000), base=st.sampled_from(BASES), times=st.none() | st.just(10**6))
def test_repeat_at_integer_steps_past_2_24(n: int, base: int, times: int | None) -> None:
    s = Repeat(lrkit.Linear(lr=0.1, steps=n, end_lr=1e-4), times=times)
    _all_kinds(s, _window(base, 2 * n + 8, 2**31 - 1))


@settings(max_examples=20, deadline=None)
@given(n=st.integers(1, 3000), base=st.sampled_from(BASES))
def test_step_decays_at_integer_steps_past_2_24(n: int, base: int) -> None:
    """Step decay, a staircase exponential and multistep milestones switch on their own step."""
    steps = _window(base, 2 * n + 8, 2**31 - 1)
    _all_kinds(StepDecay(lr=0.1, step_size=n, gamma=0.999999), steps)
    _all_kinds(Exponential(lr=0.1, gamma=0.999999, every=n, staircase=True), steps)
    ms = [int(steps[0]) + 3, int(steps[0]) + 4, int(steps[0]) + n + 5]
    _all_kinds(MultiStep(lr=0.1, milestones=ms, gamma=0.5), steps)


@pytest.mark.parametrize(
    ("s", "center"),
    [
        (Cyclic(lr=1e-4, max_lr=1e-2, step_size_up=6, step_size_down=7), 10**12),
        (CosineRestarts(lr=0.1, period=1000, min_lr=1e-4), 10**12),
        (CosineRestarts(lr=0.1, period=1000, mult=2.0, min_lr=1e-4), 1000 * (2**30 - 1)),  # a restart
        (Warmup(100) >> Repeat(lrkit.Cosine(lr=0.1, steps=997), times=None), 10**12),
    ],
    ids=["cyclic", "restarts", "restarts-mult", "warmup-repeat"],
)
def test_int64_steps_near_10_12(s: Schedule, center: int) -> None:
    """A torch int64 step near 10**12 (float32 steps 65,536 apart there)."""
    steps = np.arange(center - 2000, center + 2000, dtype=np.int64)
    got = s(torch.tensor(steps)).double().numpy()
    _check(s, steps, got, "torch int64")


def test_the_testers_repro() -> None:
    """``cosine_restarts(lr=0.1, period=1000, min_lr=1e-4)`` at 50,000,999: 1e-4, not 0.1."""
    s = lrkit.parse("cosine_restarts(lr=0.1, period=1000, min_lr=1e-4)")
    assert s(50_000_999) == pytest.approx(1.0024649e-4, rel=1e-7)
    assert float(s(torch.tensor(50_000_999))) == pytest.approx(s(50_000_999), rel=1e-5)
    f = jax.jit(lambda k: s(k))
    assert float(f(jnp.asarray(50_000_999, dtype=jnp.int32))) == pytest.approx(s(50_000_999), rel=1e-5)


def test_compiled_in_one_graph() -> None:
    """Under torch.compile(fullgraph=True) (no graph break, no host sync) at int64 steps past 2**24."""
    from array_api_compat import array_namespace
    from torch._dynamo.testing import CompileCounter

    xp = array_namespace(torch.zeros(()))
    steps = np.concatenate([np.arange(50_000_000 - 5, 50_000_000 + 5), np.arange(2**31 - 10, 2**31 + 10)])
    for s in (
        Cyclic(lr=1e-4, max_lr=1e-2, step_size_up=6, step_size_down=7, mode="triangular2"),
        CosineRestarts(lr=0.1, period=1000, min_lr=1e-4),
        CosineRestarts(lr=0.1, period=1000, mult=2.0, min_lr=1e-4),
        (Warmup(10) >> StepDecay(lr=0.1, step_size=1000, gamma=0.999)) * 0.5,
    ):
        cnt = CompileCounter()
        f = torch.compile(lambda k, s=s: s(k, xp=xp), backend=cnt, fullgraph=True)
        _check(s, steps, f(torch.tensor(steps)).double().numpy(), "compiled")
        assert cnt.frame_count == 1
