"""lrkit schedules as optax schedules, checked against optax's own schedules (jax on the CPU).

Both sides compute in float32 (jax's default), in different orders, so values are compared with a
relative tolerance of 2e-6 (a few float32 ulps) plus an absolute 1e-6 of the peak value for values that
cross zero (e.g. ``1 + cos(pi)``). Properties of the jax path itself are checked in float64
(``jax_enable_x64``) against lrkit's numpy evaluation, where the two must agree to 1e-12.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from hypothesis import HealthCheck, given, settings

import lrkit
from lrkit.schedules import (
    Clamp,
    Constant,
    Cosine,
    CosineRestarts,
    Exponential,
    Linear,
    MultiStep,
    OneCycle,
    Piecewise,
    Polynomial,
    Repeat,
    Schedule,
    StepDecay,
    Warmup,
)

from . import strategies as S
from ._jax import x64

RTOL = 2e-6  # float32: a few ulps (2**-23 ~ 1.2e-7 each)


def _values(f: Callable[[Any], Any], n: int) -> np.ndarray:
    """``f`` at the counts 0..n-1, each a scalar int32 inside jax.jit, as optax calls it (vmapped:
    optax's piecewise schedules accept only scalar counts)."""
    return np.asarray(jax.jit(jax.vmap(f))(jnp.arange(n, dtype=jnp.int32)))


def _same(ours: np.ndarray, theirs: np.ndarray, peak: float) -> None:
    np.testing.assert_allclose(ours, theirs, rtol=RTOL, atol=1e-6 * peak)


# (name, lrkit schedule, optax schedule, steps to compare, peak value)
CASES: list[tuple[str, Schedule, Callable[[Any], Any], int, float]] = [
    ("constant", Constant(0.3), optax.constant_schedule(0.3), 50, 0.3),
    ("linear", Linear(lr=0.5, steps=100, end_lr=0.01), optax.linear_schedule(0.5, 0.01, 100), 150, 0.5),
    (
        "linear_begin",
        Constant(0.5, steps=20) >> Linear(lr=0.5, steps=100, end_lr=0.01),
        optax.linear_schedule(0.5, 0.01, 100, transition_begin=20),
        150,
        0.5,
    ),
    (
        "polynomial",
        Polynomial(lr=1.0, steps=100, power=2.0, end_lr=0.01),
        optax.polynomial_schedule(1.0, 0.01, 2.0, 100),
        130,
        1.0,
    ),
    (
        # power 2, not 0.5: optax's float32 `1 - t/n` is ~1e-8 above 0 at the end, and sqrt(1e-8) shows
        # (lrkit gives exactly end_lr there; the power < 1 end is checked in test_polynomial_end_under_jit)
        "polynomial_begin",
        Constant(1.0, steps=5) >> Polynomial(lr=1.0, steps=100, power=2.0, end_lr=0.1),
        optax.polynomial_schedule(1.0, 0.1, 2.0, 100, transition_begin=5),
        130,
        1.0,
    ),
    ("cosine", Cosine(lr=0.1, steps=200), optax.cosine_decay_schedule(0.1, 200), 260, 0.1),
    (
        "cosine_alpha",
        Cosine(lr=0.1, steps=200, min_lr=0.1 * 0.05),
        optax.cosine_decay_schedule(0.1, 200, alpha=0.05),
        260,
        0.1,
    ),
    (
        "exponential",
        Exponential(lr=0.2, gamma=0.5, every=30),
        optax.exponential_decay(0.2, transition_steps=30, decay_rate=0.5),
        300,
        0.2,
    ),
    (
        "exponential_staircase",
        Exponential(lr=0.2, gamma=0.5, every=30, staircase=True),
        optax.exponential_decay(0.2, transition_steps=30, decay_rate=0.5, staircase=True),
        300,
        0.2,
    ),
    (
        "exponential_begin_end",
        Clamp(Constant(0.2, steps=40) >> Exponential(lr=0.2, gamma=0.9, every=7), min_lr=0.05),
        optax.exponential_decay(0.2, transition_steps=7, decay_rate=0.9, transition_begin=40, end_value=0.05),
        300,
        0.2,
    ),
    (
        "piecewise_constant",
        MultiStep(lr=0.1, milestones=[30, 60, 90], gamma=0.1),
        optax.piecewise_constant_schedule(0.1, {30: 0.1, 60: 0.1, 90: 0.1}),
        120,
        0.1,
    ),
    (
        "piecewise_constant_scales",
        Constant(0.1, steps=25) >> Constant(0.05, steps=50) >> Constant(0.05 * 0.2),
        optax.piecewise_constant_schedule(0.1, {25: 0.5, 75: 0.2}),
        120,
        0.1,
    ),
    (
        "warmup_cosine",  # optax's decay_steps (500) includes the warmup (50)
        Warmup(50, start=0.0, lr=3e-4) >> Cosine(lr=3e-4, steps=450, min_lr=3e-5),
        optax.warmup_cosine_decay_schedule(0.0, 3e-4, warmup_steps=50, decay_steps=500, end_value=3e-5),
        600,
        3e-4,
    ),
    (
        "warmup_cosine_init",
        Warmup(50, start=1e-5 / 3e-4, lr=3e-4) >> Cosine(lr=3e-4, steps=450),
        optax.warmup_cosine_decay_schedule(1e-5, 3e-4, warmup_steps=50, decay_steps=500),
        600,
        3e-4,
    ),
    (
        "warmup_exponential",
        Warmup(20, start=0.0, lr=0.1) >> Exponential(lr=0.1, gamma=0.5, every=40, staircase=True),
        optax.warmup_exponential_decay_schedule(
            0.0, 0.1, 20, transition_steps=40, decay_rate=0.5, staircase=True
        ),
        300,
        0.1,
    ),
    (
        "sgdr",
        CosineRestarts(lr=0.1, period=100, min_lr=0.001),
        optax.sgdr_schedule(
            [dict(init_value=0.0, peak_value=0.1, warmup_steps=0, decay_steps=100, end_value=0.001)] * 4
        ),
        400,
        0.1,
    ),
    (
        "sgdr_decay",  # each cycle's height above the floor shrinks by `decay`
        CosineRestarts(lr=0.1, period=60, min_lr=0.001, decay=0.5),
        optax.sgdr_schedule(
            [
                dict(
                    init_value=0.0,
                    peak_value=0.001 + 0.099 * 0.5**i,
                    warmup_steps=0,
                    decay_steps=60,
                    end_value=0.001,
                )
                for i in range(5)
            ]
        ),
        300,
        0.1,
    ),
    (
        "sgdr_warmup",
        Repeat(Warmup(10, start=0.0, lr=0.1) >> Cosine(lr=0.1, steps=90, min_lr=0.0), times=3),
        optax.sgdr_schedule([dict(init_value=0.0, peak_value=0.1, warmup_steps=10, decay_steps=100)] * 3),
        300,
        0.1,
    ),
    (
        # optax peaks at int(pct*n) and ends at n; torch's/lrkit's OneCycle at pct*steps-1 and steps-1
        "cosine_onecycle",
        OneCycle(
            max_lr=0.5, steps=201, pct_start=(int(0.3 * 200) + 1) / 201, div_factor=25.0, final_div_factor=1e4
        ),
        optax.cosine_onecycle_schedule(200, 0.5, pct_start=0.3, div_factor=25.0, final_div_factor=1e4),
        250,
        0.5,
    ),
    (
        "linear_onecycle",
        Piecewise(points=[(0, 0.5 / 25), (60, 0.5), (170, 0.5 / 25), (200, 0.5 / 25 / 1e4)]),
        optax.linear_onecycle_schedule(200, 0.5, pct_start=0.3, pct_final=0.85),
        250,
        0.5,
    ),
    (
        "linear_onecycle_symmetric",  # pct_final = 2 * pct_start: torch's three phases
        OneCycle(max_lr=0.5, steps=201, pct_start=61 / 201, anneal="linear", three_phase=True),
        optax.linear_onecycle_schedule(200, 0.5, pct_start=0.3, pct_final=0.6),
        250,
        0.5,
    ),
]


@pytest.mark.parametrize(("name", "ours", "theirs", "n", "peak"), CASES, ids=[c[0] for c in CASES])
def test_equals_optax_schedule(name: str, ours: Schedule, theirs: Any, n: int, peak: float) -> None:
    got = _values(lrkit.optax.schedule(ours), n)
    want = _values(theirs, n)
    assert got.dtype == np.float32 and got.shape == (n,)
    _same(got, want, peak)


def test_onecycle_conventions_differ_by_one_step() -> None:
    """The same arguments give torch's and optax's one-cycle shifted by a step: documented, not hidden."""
    n, peak = 200, 0.5
    torch_style = lrkit.optax.schedule(OneCycle(max_lr=peak, steps=n, pct_start=0.3))
    optax_style = optax.cosine_onecycle_schedule(n, peak, pct_start=0.3)
    ours, theirs = _values(torch_style, n + 1), _values(optax_style, n + 1)
    assert int(np.argmax(ours)) == 59 and int(np.argmax(theirs)) == 60
    assert not np.allclose(ours, theirs, rtol=1e-3)
    np.testing.assert_allclose(ours[-1], theirs[-1], rtol=RTOL)  # both end at peak / (25 * 1e4)


def test_jit_traces_once_and_takes_scalars_arrays_python_ints() -> None:
    traces = 0
    f = lrkit.optax.schedule(lrkit.parse("warmup(10, start=0) >> cosine(lr=0.1, steps=90)"))

    @jax.jit
    def g(count: jax.Array) -> jax.Array:
        nonlocal traces
        traces += 1
        return f(count)

    vals = [float(g(jnp.int32(t))) for t in range(0, 120, 7)]
    assert traces == 1
    want = [
        Warmup(10, start=0.0, lr=0.1)(t) if t < 10 else Cosine(0.1, steps=90)(t - 10)
        for t in range(0, 120, 7)
    ]
    np.testing.assert_allclose(vals, want, rtol=RTOL, atol=1e-7)
    # outside jit: a Python int, a float and a 2-d array, each a jax array of the count's shape
    assert isinstance(f(5), jax.Array) and f(5).shape == () and f(5).dtype == jnp.float32
    assert float(f(5)) == pytest.approx(0.05, rel=RTOL) and float(f(5.0)) == pytest.approx(0.05, rel=RTOL)
    grid = jnp.arange(12).reshape(3, 4)
    assert f(grid).shape == (3, 4)
    np.testing.assert_allclose(np.asarray(f(grid)).ravel(), [f(int(t)) for t in range(12)], rtol=RTOL)


def test_resolves_durations_once() -> None:
    s = lrkit.parse("warmup(1ep, start=0) >> cosine(lr=1.0, min_lr=0.0)")
    f = lrkit.optax.schedule(s, total_steps=1000, steps_per_epoch=100)
    want = optax.warmup_cosine_decay_schedule(0.0, 1.0, warmup_steps=100, decay_steps=1000)
    _same(_values(f, 1100), _values(want, 1100), 1.0)
    g = lrkit.optax.schedule(lrkit.parse("cosine(lr=1.0, steps=50%)"), total_steps=400)
    _same(_values(g, 300), _values(optax.cosine_decay_schedule(1.0, 200), 300), 1.0)


def test_unresolved_and_wrong_types_raise_clearly() -> None:
    with pytest.raises(ValueError, match=r"total_steps") as info:
        lrkit.optax.schedule(lrkit.parse("cosine(lr=1.0)"))
    assert "cosine" in str(info.value)
    with pytest.raises(ValueError, match=r"steps_per_epoch"):
        lrkit.optax.schedule(lrkit.parse("warmup(2ep) >> constant(lr=1.0)"), total_steps=100)
    with pytest.raises(
        TypeError, match=r"must be an lrkit Schedule, a spec string or a spec dict, got function"
    ):
        lrkit.optax.schedule(optax.constant_schedule(1.0))  # type: ignore[arg-type]
    assert float(lrkit.optax.schedule("cosine(lr=1.0)", total_steps=10)(5)) == pytest.approx(0.5)


def _fit(learning_rate: Any, steps: int) -> tuple[np.ndarray, list[float]]:
    """AdamW on a least-squares problem; returns the final weights and every update's size."""
    k1, k2 = jax.random.split(jax.random.PRNGKey(0))
    x = jax.random.normal(k1, (64, 8))
    y = x @ jax.random.normal(k2, (8,)) + 0.1
    params = {"w": jnp.zeros(8), "b": jnp.zeros(())}
    opt = optax.adamw(learning_rate=learning_rate, weight_decay=1e-2)
    state = opt.init(params)

    @jax.jit
    def step(params: Any, state: Any) -> tuple[Any, Any, jax.Array]:
        loss_grad = jax.grad(lambda p: jnp.mean((x @ p["w"] + p["b"] - y) ** 2))
        updates, state = opt.update(loss_grad(params), state, params)
        return optax.apply_updates(params, updates), state, jnp.abs(updates["b"])

    sizes = []
    for _ in range(steps):
        params, state, size = step(params, state)
        sizes.append(float(size))
    return np.asarray(params["w"]), sizes


def test_adamw_loop_matches_optax_schedule() -> None:
    ours = lrkit.optax.schedule(
        lrkit.parse("warmup(10, start=0) >> cosine(lr=0.05, min_lr=0.005)"), total_steps=60
    )
    theirs = optax.warmup_cosine_decay_schedule(0.0, 0.05, warmup_steps=10, decay_steps=60, end_value=0.005)
    w_ours, sizes = _fit(ours, 60)
    w_theirs, _ = _fit(theirs, 60)
    np.testing.assert_allclose(w_ours, w_theirs, rtol=1e-5, atol=1e-6)
    assert sizes[0] == 0.0  # count 0 is the first update: warmup from 0 moves nothing
    assert sizes[1] > 0.0
    # and it learned something: a constant tiny LR would leave the weights near 0
    assert np.linalg.norm(w_ours) > 0.5


def test_sgd_updates_use_the_schedule_at_each_count() -> None:
    """With a unit gradient SGD's update is exactly -lr(count): the optimizer reads count 0, 1, 2, ..."""
    s = lrkit.parse("warmup(4, start=0.5) >> exponential(lr=0.1, gamma=0.5, every=3)")
    opt = optax.sgd(lrkit.optax.schedule(s))
    params = jnp.zeros(())
    state = opt.init(params)
    update = jax.jit(opt.update)
    seen = []
    for _ in range(12):
        u, state = update(jnp.ones(()), state)
        seen.append(-float(u))
    np.testing.assert_allclose(seen, s(np.arange(12)), rtol=RTOL)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(S.lr_schedules)
def test_jax_float64_equals_numpy(s: Schedule) -> None:
    """Op by op (eager), the jax.numpy evaluation is lrkit's numpy formula: equal to 1e-12 in float64.
    (Under jit XLA rewrites ``t / n`` as ``t * (1 / n)``; see the strict xfails below.)"""
    ts = np.array([0, 1, 2, 7, 99, 100, 101, 499, 2500, 5000, 20_000, 10**6])
    with x64():
        got = np.asarray(lrkit.optax.schedule(s)(jnp.asarray(ts)))
        assert got.dtype == np.float64
    want = s(ts)
    np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-15 * float(np.max(np.abs(want))))


# Under jax.jit on the CPU, XLA turns `t / n` into `t * (1/n)` (fused into an FMA), which is not
# correctly rounded: `1 - t/n` can go slightly negative at t == n (NaN for a polynomial with power < 1)
# and `floor(t / n)` can land one low at exact multiples of n (a step decay switching a step late).
# optax's own schedules do both (checked below); lrkit's core writes (n - t)/n and an exact floor_div.
def _each_at_its_length(fs: list[Callable[[Any], Any]], ns: list[int]) -> np.ndarray:
    """``fs[i](ns[i])``, all in one jitted function (one compilation, not one per schedule: 15 s became
    4 s), each count a traced int32 scalar as optax passes it; XLA rewrites each ``t / n`` as it does
    alone (optax's polynomial gives NaN at the same ``n`` either way, checked for n < 60)."""
    counts = jnp.asarray(ns, dtype=jnp.int32)
    return np.asarray(jax.jit(lambda c: jnp.stack([f(c[i]) for i, f in enumerate(fs)]))(counts))


def test_polynomial_end_under_jit() -> None:
    assert math.isnan(float(jax.jit(optax.polynomial_schedule(1.0, 0.0, 0.5, 3))(jnp.int32(3))))  # optax
    # ... and so it does in one function (the rewrite is the same): this check can fail
    theirs = _each_at_its_length([optax.polynomial_schedule(1.0, 0.0, 0.5, n) for n in (3, 5, 6)], [3, 5, 6])
    assert np.isnan(theirs).all()
    ns = list(range(1, 400))
    ours = _each_at_its_length([lrkit.optax.schedule(Polynomial(lr=1.0, steps=n, power=0.5)) for n in ns], ns)
    assert [n for n, v in zip(ns, ours) if v != 0.0] == []


def test_staircase_boundaries_under_jit() -> None:
    assert (
        float(jax.jit(optax.exponential_decay(1.0, 41, 0.5, staircase=True))(jnp.int32(41))) == 1.0
    )  # optax
    ns = list(range(1, 400, 7))
    for make, at_n in [
        (lambda n: StepDecay(lr=1.0, step_size=n, gamma=0.5), 0.5),
        (lambda n: CosineRestarts(lr=1.0, period=n), 1.0),
        (lambda n: Exponential(lr=1.0, gamma=0.5, every=n, staircase=True), 0.5),
        (lambda n: Repeat(Linear(lr=1.0, steps=n, end_lr=0.0)), 1.0),
    ]:
        got = _each_at_its_length([lrkit.optax.schedule(make(n)) for n in ns], ns)
        # float32; a late switch is off by ~1
        assert got.tolist() == pytest.approx([at_n] * len(ns), rel=1e-6), make(1)


@pytest.mark.parametrize("spec", ["warmup(100)", "cosine(lr=0.1, steps=10) >> warmup(10)"])
def test_optax_refuses_a_schedule_ending_in_a_bare_warmup(spec: str) -> None:
    """Alone, a warmup with no lr is a multiplier rising to 1: as an optax LR schedule it would reach 1.0."""
    with pytest.raises(ValueError, match="ends in a warmup with no lr"):
        lrkit.optax.schedule(spec, total_steps=1000)
    f = lrkit.optax.schedule("warmup(100) >> constant(3e-4)", total_steps=1000)
    assert float(f(jnp.array(500))) == pytest.approx(3e-4)


@pytest.mark.parametrize(
    "count", [2**31, 2**31 + 1, 2**53, 2**63 - 1, 10**30, 10**400, np.int64(2**63 - 1), np.uint64(2**64 - 1)]
)
def test_a_huge_count_from_the_host_is_held_at_2_53(count: Any) -> None:
    """jax read np.int64(2**63 - 1) as int32 -1 (the schedule's *first* value, 0.1, at the end of the
    run) and refused a Python int >= 2**31 with an OverflowError."""
    s = lrkit.parse("warmup(10) >> cosine(lr=0.1, steps=90)")
    f = lrkit.optax.schedule(s)
    assert float(f(count)) == s(2**53) == 0.0
    if not isinstance(count, np.unsignedinteger):
        assert float(f(-count)) == pytest.approx(s(-(2**53)), rel=1e-6)
    arr = np.array([0, 5, count], dtype=object if isinstance(count, int) and count > 2**63 else None)
    np.testing.assert_allclose(np.asarray(f(arr)), s(np.array([0, 5, 2**53])), rtol=1e-6)


@pytest.mark.parametrize(
    ("count", "exc", "says"),
    [
        (float("nan"), ValueError, r"count: must be a finite number, got nan"),
        (float("inf"), ValueError, r"count: must be a finite number, got inf"),
        (np.array([1.0, np.nan]), ValueError, r"count: must hold finite numbers"),
        (True, TypeError, r"count: expected an int, a float or an array \(jax, numpy\), got bool"),
        ("5", TypeError, r"count: expected an int, a float or an array \(jax, numpy\), got str '5'"),
        (None, TypeError, r"count: expected an int, a float or an array \(jax, numpy\), got NoneType"),
        (np.array(["5"]), TypeError, r"step: expected an array of real numbers, got an array of dtype <U1"),
        ([[1], [1, 2]], TypeError, r"count: expected an array of numbers"),
    ],
)
def test_a_bad_count_from_the_host_names_it(count: Any, exc: type, says: str) -> None:
    f = lrkit.optax.schedule("cosine(lr=0.1, steps=10)")
    with pytest.raises(exc, match=says):
        f(count)


def test_counts_inside_jit_are_left_to_jax() -> None:
    f = lrkit.optax.schedule("cosine(lr=0.1, steps=10)")
    assert math.isnan(float(jax.jit(f)(jnp.float32(jnp.nan))))  # traced: not inspected (no host sync)
    assert float(jax.jit(f)(jnp.int32(2**31 - 1))) == pytest.approx(0.0, abs=1e-9)


@pytest.mark.parametrize("count", [jnp.array(True), jnp.array([1 + 0j, 2 + 0j])])
def test_a_bool_or_complex_jax_count_is_refused_as_in_lrkit(count: jax.Array) -> None:
    """A jax array was cast to float whatever its dtype (True read as step 1, a complex count lost its
    imaginary part); the dtype is known at trace time, so it is refused there too, as the core refuses
    such numpy arrays."""
    f = lrkit.optax.schedule("cosine(lr=0.1, steps=10)")
    says = rf"count: expected integer or real floating counts, got a jax array of dtype {count.dtype}"
    with pytest.raises(TypeError, match=says):
        f(count)
    with pytest.raises(TypeError, match=says):
        jax.jit(f)(count)
    for ok in (jnp.uint32(5), jnp.float16(5), jnp.int8(5)):  # other real dtypes are steps
        assert float(f(ok)) == pytest.approx(float(f(5)), rel=RTOL)


def test_inject_hyperparams_resumes_from_a_restored_state_like_optax() -> None:
    """A jitted train step with ``inject_hyperparams(adam)``, interrupted after 7 updates, its state
    brought to the host (numpy leaves, as a checkpoint restores them) and resumed: the LR recorded at
    every update is optax's own warmup-cosine's (update k uses s(k), optax counts from 0), and the run
    ends where an uninterrupted one does."""
    ours = lrkit.optax.schedule("warmup(5, start=0) >> cosine(lr=0.1, min_lr=0.01)", total_steps=20)
    theirs = optax.warmup_cosine_decay_schedule(0.0, 0.1, warmup_steps=5, decay_steps=20, end_value=0.01)
    x = jax.random.normal(jax.random.PRNGKey(1), (32, 4))
    y = x @ jnp.arange(1.0, 5.0)

    def run(sched: Any, stop: int | None) -> tuple[jax.Array, list[float]]:
        opt = optax.inject_hyperparams(optax.adam)(learning_rate=sched)
        params = jnp.zeros(4)
        state = opt.init(params)

        @jax.jit
        def step(params: jax.Array, state: Any) -> tuple[jax.Array, Any]:
            grads = jax.grad(lambda p: jnp.mean((x @ p - y) ** 2))(params)
            updates, state = opt.update(grads, state, params)
            return optax.apply_updates(params, updates), state

        lrs = []
        for k in range(20):
            if k == stop:  # a checkpoint: numpy arrays on the host, the count an int32 ndarray
                params, state = jax.device_get((params, state))
                assert isinstance(state.count, np.ndarray)
            params, state = step(params, state)
            lrs.append(float(state.hyperparams["learning_rate"]))
        return params, lrs

    p_ours, lrs_ours = run(ours, stop=7)
    p_whole, lrs_whole = run(ours, stop=None)
    p_theirs, lrs_theirs = run(theirs, stop=None)
    np.testing.assert_allclose(lrs_ours, lrs_theirs, rtol=RTOL, atol=1e-9)
    assert lrs_ours[0] == 0.0 and lrs_ours[5] == pytest.approx(0.1, rel=RTOL)  # s(0) = 0, s(5) the peak
    assert lrs_ours == lrs_whole and np.array_equal(np.asarray(p_ours), np.asarray(p_whole))
    np.testing.assert_allclose(np.asarray(p_ours), np.asarray(p_theirs), rtol=1e-5, atol=1e-6)


def test_x64_gives_float64_lrs_that_optax_casts_to_the_gradients() -> None:
    """Under jax_enable_x64 the schedule returns float64 (jax's default float; optax's own schedules
    return float32 for its int32 count); ``scale_by_schedule`` casts it to the gradients' dtype, so
    float32 parameters stay float32 and the updates equal optax's."""
    ours = lrkit.optax.schedule("warmup(5, start=0) >> cosine(lr=0.1)", total_steps=20)
    theirs = optax.warmup_cosine_decay_schedule(0.0, 0.1, warmup_steps=5, decay_steps=20)
    with x64():
        assert ours(jnp.int32(7)).dtype == jnp.float64
        got = []
        for sched in (ours, theirs):
            opt = optax.adam(sched)
            params = jnp.ones(3, jnp.float32)
            state = opt.init(params)
            update = jax.jit(opt.update)
            for _ in range(10):
                u, state = update(jnp.full(3, 0.5, jnp.float32), state, params)
                params = optax.apply_updates(params, u)
            assert params.dtype == jnp.float32
            got.append(np.asarray(params))
    np.testing.assert_allclose(got[0], got[1], rtol=1e-6)


def test_a_schedule_longer_than_total_steps_is_warned_about() -> None:
    """cosine(steps=10000) over 450 steps never decays: warned, as lrkit.torch.scheduler and the CLI do."""
    from lrkit.schedules.base import ScheduleLongerThanRunWarning

    with pytest.warns(
        ScheduleLongerThanRunWarning,
        match=r"lrkit\.optax\.schedule: 'cosine\(lr=0\.1, steps=10000\)' lasts 10,000 steps, more than "
        r"total_steps=450",
    ) as seen:
        lrkit.optax.schedule("cosine(lr=0.1, steps=10000)", total_steps=450)
    assert seen[0].filename == __file__
    with warnings.catch_warnings():
        warnings.simplefilter("error", ScheduleLongerThanRunWarning)
        lrkit.optax.schedule("cosine(lr=0.1, steps=450)", total_steps=450)
        lrkit.optax.schedule("cosine(lr=0.1, steps=10000)")
