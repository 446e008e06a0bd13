"""Schedules as torch and jax users call them: derivatives with respect to the step, dtypes of the step,
and backend arrays given as the run's length."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from lrkit.schedules import (
    WSD,
    Cosine,
    CosineRestarts,
    Cyclic,
    Linear,
    OneCycle,
    Polynomial,
    Repeat,
    Schedule,
    Warmup,
)
from lrkit.schedules.warmup import COOLDOWNS

from . import strategies as S
from ._jax import x64

torch = pytest.importorskip("torch")
jax = pytest.importorskip("jax")
jnp = jax.numpy

GRAD_SETTINGS = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _grid(s: Schedule) -> tuple[np.ndarray, float | None]:
    """Every whole step of ``[0, total]`` and the half steps between them, a few steps before 0 and past
    the end; ``total`` is the schedule's length (None: it runs forever, checked over 3000 steps)."""
    n = s.length_steps
    total = 3000.0 if n is None else n
    ts = np.concatenate([np.arange(0.0, total + 0.5, 0.5), [-3.0, -0.5, total + 0.5, total + 7.0]])
    return ts, n


def _jax_grads(s: Schedule, ts: np.ndarray) -> np.ndarray:
    return np.asarray(jax.vmap(jax.grad(lambda t: s(t)))(jnp.asarray(ts, dtype=jnp.float32)))


def _torch_grads(s: Schedule, ts: np.ndarray, dtype: object) -> np.ndarray:
    t = torch.tensor(ts, dtype=dtype, requires_grad=True)
    (g,) = torch.autograd.grad(s(t).sum(), t)
    return g.double().numpy()


def _check_grads(g: np.ndarray, ts: np.ndarray, n: float | None) -> None:
    bad = ts[~np.isfinite(g)]
    assert bad.size == 0, f"derivative not finite at steps {bad[:5].tolist()}"
    flat = (ts < 0) | ((ts > n) if n is not None else False)  # held before step 0 and past the end
    assert np.all(g[flat] == 0), f"non-zero derivative where the schedule is flat: {ts[flat & (g != 0)]}"


@GRAD_SETTINGS
@given(S.schedules)
def test_jax_derivative_in_the_step_is_finite_and_zero_where_flat(s: Schedule) -> None:
    ts, n = _grid(s)
    _check_grads(_jax_grads(s, ts), ts, n)


@GRAD_SETTINGS
@given(S.schedules)
def test_torch_derivative_in_the_step_is_finite_and_zero_where_flat(s: Schedule) -> None:
    ts, n = _grid(s)
    for dtype in (torch.float32, torch.float64):
        _check_grads(_torch_grads(s, ts, dtype), ts, n)


@pytest.mark.parametrize(
    ("s", "where"),
    [
        (WSD(lr=1.0, steps=100, decay=20), [10.0, 80.0, 85.0, 99.0, 120.0]),
        (Polynomial(lr=1.0, steps=100, power=0.5), [-1.0, 36.0, 99.0, 100.0, 150.0]),
        (Linear(lr=1.0, steps=100, end_lr=0.2), [-1.0, 50.0, 99.5, 150.0]),
    ],
)
def test_derivatives_match_the_formulas(s: Schedule, where: list[float]) -> None:
    """The derivative is the formula's inside the schedule, 0 where it is flat and at the corners
    where the formula's own is infinite (1-sqrt at the start of its cool-down, power < 1 at the end).
    Other corners are left out: there torch's clamp takes one side and jax's clip half of it."""

    def expected(t: float) -> float:
        if isinstance(s, WSD):  # d/dt [1 - sqrt((t - 80) / 20)] = -1 / (2 sqrt(20 (t - 80)))
            return 0.0 if not 80 < t < 100 else -1.0 / (2.0 * math.sqrt(20.0 * (t - 80.0)))
        if isinstance(s, Polynomial):
            return 0.0 if not 0 <= t < 100 else -0.5 / 100.0 * (1.0 - t / 100.0) ** -0.5
        assert isinstance(s, Linear)
        return 0.0 if not 0 <= t < 100 else -0.8 / 100.0

    ts = np.asarray(where)
    want = np.array([expected(t) for t in where])
    np.testing.assert_allclose(_torch_grads(s, ts, torch.float64), want, rtol=1e-12, atol=0)
    np.testing.assert_allclose(_jax_grads(s, ts), want, rtol=1e-5, atol=0)


def test_zero_safe_keeps_values_and_nan_steps() -> None:
    """The values of 1-sqrt and power < 1 are the formulas' (to float64 rounding: each half is computed
    from its nearer end) with the derivative fix, and a NaN step still gives NaN on torch (torch steps
    are not inspected)."""
    s = WSD(lr=1.0, steps=100, decay=20)
    p = Polynomial(lr=1.0, steps=100, power=0.3)
    t = np.arange(0, 101)
    np.testing.assert_allclose(s(t), 1.0 - np.sqrt(np.clip((t - 80) / 20, 0, 1)), rtol=0, atol=3e-16)
    np.testing.assert_allclose(p(t), ((100 - t) / 100) ** 0.3, rtol=0, atol=3e-16)
    assert math.isnan(float(Cosine(lr=1.0, steps=10)(torch.tensor(float("nan")))))
    assert math.isnan(float(WSD(lr=1.0, steps=100, decay=100)(torch.tensor(float("nan")))))


def _backend_ints(n: int) -> list[object]:
    return [np.array(n), np.int32(n), torch.tensor(n), torch.tensor(n, dtype=torch.int32), jnp.asarray(n)]


@pytest.mark.parametrize("k", range(5))
def test_resolve_takes_a_0d_integer_array_of_any_backend_as_a_number(k: int) -> None:
    s = Warmup("10%") >> Cosine(lr=1.0)
    want = s.resolve(total_steps=1000, steps_per_epoch=100)
    got = s.resolve(total_steps=_backend_ints(1000)[k], steps_per_epoch=_backend_ints(100)[k])
    assert got == want and got.length_steps == 1000.0
    assert (Cosine(lr=1.0, steps="2ep")).resolve(steps_per_epoch=_backend_ints(50)[k]).length_steps == 100.0


@pytest.mark.parametrize(
    ("value", "message"),
    [
        (
            lambda: torch.tensor(1000.0),
            r"total_steps must be a number or a 0-d integer array, got Tensor of dtype torch.float32",
        ),
        (
            lambda: jnp.asarray(1000.0),
            r"total_steps must be a number or a 0-d integer array, got ArrayImpl of dtype float32",
        ),
        (lambda: torch.tensor(True), r"got Tensor of dtype torch.bool"),
        (lambda: jnp.asarray(True), r"got ArrayImpl of dtype bool"),
        (lambda: np.array(True), r"got ndarray of dtype bool"),
        (lambda: np.array([1000]), r"got ndarray of shape \(1,\)"),
        (lambda: torch.tensor([1000, 2000]), r"got Tensor of shape \(2,\)"),
        (lambda: jnp.zeros((2, 2), dtype=jnp.int32), r"got ArrayImpl of shape \(2, 2\)"),
        (lambda: torch.tensor(0), r"total_steps must be > 0 and <= 2\*\*53, got 0"),
    ],
)
def test_resolve_refuses_other_arrays_by_name(value: object, message: str) -> None:
    with pytest.raises((TypeError, ValueError), match=message):
        Cosine(lr=1.0).resolve(total_steps=value())  # type: ignore[operator]


def test_resolve_inside_jit_says_to_resolve_outside() -> None:
    with pytest.raises(TypeError, match=r"total_steps .* no concrete value .* outside jax.jit"):
        jax.jit(lambda n: Cosine(lr=1.0).resolve(total_steps=n)(3))(jnp.asarray(100))


# a length a bfloat16 cannot hold (1001 rounds to 1000) and every kind of piece
NARROW = (Warmup(10) >> WSD(lr=1.0, steps=991, decay=200, min_lr=0.01)) * 0.5


@pytest.mark.parametrize("backend", ["torch", "jax"])
@pytest.mark.parametrize("dtype", ["float16", "bfloat16"])
def test_half_precision_steps_are_evaluated_in_float32(backend: str, dtype: str) -> None:
    """A float16 or bfloat16 step gives the float32 LR at that (rounded) step, within float32's
    precision of numpy's float64 value: the formula does not run in 8 bits of mantissa."""
    ks = np.arange(0, 1100)
    if backend == "torch":
        t = torch.as_tensor(ks).to(getattr(torch, dtype))
        out, at = NARROW(t), t.double().numpy()
        assert out.dtype == torch.float32
        assert torch.equal(out, NARROW(t.float()))
        got = out.double().numpy()
    else:
        t = jnp.asarray(ks).astype(getattr(jnp, dtype))
        out, at = NARROW(t), np.asarray(t, dtype=np.float64)
        assert out.dtype == jnp.float32
        np.testing.assert_array_equal(np.asarray(out), np.asarray(NARROW(t.astype(jnp.float32))))
        got = np.asarray(out, dtype=np.float64)
    np.testing.assert_allclose(got, NARROW(at), rtol=2e-6, atol=1e-9)


def test_integer_steps_take_the_default_float_of_their_backend() -> None:
    """Integer tensors are evaluated in the backend's default float: float32 (steps past 2**24 are
    rounded), float64 under torch.set_default_dtype(torch.float64) or jax_enable_x64, exactly."""
    from lrkit.schedules import Cyclic

    s = Cyclic(lr=0.1, max_lr=1.0, step_size_up=3)
    k = 2**24 + 1  # odd: float32 holds it as 2**24, a step earlier in the cycle
    assert s(torch.tensor(k)).dtype == torch.float32 and s(jnp.asarray(k)).dtype == jnp.float32
    before = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    try:
        out = s(torch.tensor([k, 2**53]))
    finally:
        torch.set_default_dtype(before)
    assert out.dtype == torch.float64 and out.tolist() == [s(k), s(2**53)]
    with x64():
        f = jax.jit(lambda t: s(t))
        out_j = f(jnp.asarray([k, 2**53], dtype=jnp.int64))
        assert out_j.dtype == jnp.float64  # XLA may round t / c as t * (1 / c): to the last digit
        np.testing.assert_allclose(np.asarray(out_j), [s(k), s(2**53)], rtol=1e-12)


@GRAD_SETTINGS
@given(S.schedules)
# in float32, 1 + (1.2e-4 - 1) rounded to an ulp of 1: step 0 gave 2**-13, 2.4e-4 off (now exact: see
# test_schedules_are_exact_at_their_ends_in_float32_on_every_backend)
@example(Repeat(Linear(lr=0.0001221001148223877, steps=1, end_lr=1.0), None))
def test_batched_steps_under_jit_vmap_and_torch_at_step_0_and_2_53(s: Schedule) -> None:
    """A 2-D batch of steps, step 0, the end, 2**53 and below 0: torch (float32, float64, int64) and
    jax (jit, vmap over rows) give numpy's values (float32 ones to float32 precision away from 2**53,
    where float32 arithmetic on the step loses the phase) and keep the batch's shape. Float32 precision
    is that of the schedule's largest value (on its whole grid, half steps included), not only of the
    values at these steps: a value between ``lr=1e-4`` and 1 is computed from operands as large as 1 (the
    ends themselves are exact: test_schedules_are_exact_at_their_ends_in_float32_on_every_backend)."""
    n = s.length_steps or 3000.0
    ks = np.array([[0, 1, 7, int(n) // 2], [int(n), int(n) + 1, -5, 2**53]])
    want = s(ks)
    scale = max(float(want.max()), float(np.max(s(_grid(s)[0]))))
    near = np.abs(ks) < 2**20
    t64 = s(torch.tensor(ks, dtype=torch.float64))
    assert t64.shape == (2, 4) and t64.dtype == torch.float64
    np.testing.assert_allclose(t64.numpy(), want, rtol=1e-12, atol=0)
    for got in (
        s(torch.tensor(ks, dtype=torch.float32)).double().numpy(),
        s(torch.tensor(ks)).double().numpy(),
        np.asarray(
            jax.jit(jax.vmap(lambda row: s(row)))(jnp.asarray(ks, dtype=jnp.float32)), dtype=np.float64
        ),
    ):
        assert got.shape == (2, 4) and np.all(np.isfinite(got)) and np.all(got >= 0)
        np.testing.assert_allclose(got[near], want[near], rtol=1e-4, atol=1e-6 * scale)


# -- both ends exact in float32: every interpolating schedule, every backend -----------------------
#: A case: (a, b, n, p) -> (schedule, [(step, exact value)], the formula in float64 over steps, steps
#: to check it on). ``a`` and ``b`` are the values it goes between (either may be the larger, or 0), ``n``
#: a length, ``p`` a power (polynomial) or a ratio of lengths.
Case = Callable[[float, float, int, float], Any]


def _half_cos(x: Any) -> Any:
    return (1.0 + np.cos(np.pi * x)) / 2.0  # 1 at 0, 0 at 1


def _linear(a: float, b: float, n: int, p: float) -> Any:
    return Linear(lr=a, steps=n, end_lr=b), [(0, a), (n, b)], lambda t: a + (b - a) * t / n, n


def _polynomial(a: float, b: float, n: int, p: float) -> Any:
    s = Polynomial(lr=a, steps=n, power=p, end_lr=b)
    return s, [(0, a), (n, b)], lambda t: (a - b) * (1.0 - t / n) ** p + b, n


def _cosine(a: float, b: float, n: int, p: float) -> Any:
    return Cosine(lr=a, steps=n, min_lr=b), [(0, a), (n, b)], lambda t: b + (a - b) * _half_cos(t / n), n


def _restarts(mult: float, decay: float) -> Case:
    """SGDR from a (each cycle's start when decay is 1) to b, period n: cycle i starts at n*(m**i-1)/(m-1)."""

    def case(a: float, b: float, n: int, p: float) -> Any:
        s = CosineRestarts(lr=a, period=n, mult=mult, min_lr=b, decay=decay)
        starts = [n * (mult**i - 1) / (mult - 1) if mult != 1 else i * n for i in range(4)]

        def formula(t: Any) -> Any:
            i = np.searchsorted(starts, t, side="right") - 1
            length = n * mult ** i.astype(float)
            return b + (a - b) * decay**i * _half_cos((t - np.asarray(starts)[i]) / length)

        return s, [(k, a) for k in starts[: 3 if decay == 1 else 1]], formula, starts[3] - 0.5

    return case


def _one_cycle(anneal: str, three_phase: bool) -> Case:
    """From initial = max_lr / div_factor (a; 1e-4 of max_lr where a is 0) up to max_lr (b, or 1 where b
    is 0) and down to final = initial / 1e4, over 4k steps (pct_start 1/4: whole-step phase ends)."""

    def case(a: float, b: float, n: int, p: float) -> Any:
        top = b or 1.0
        div = top / a if a and top / a < 1e300 else 1e4
        k = n + 2
        s = OneCycle(
            max_lr=top, steps=4 * k, pct_start=0.25, div_factor=div, anneal=anneal, three_phase=three_phase
        )
        initial = top / div
        final = initial / 1e4
        if three_phase:
            ends, levels = [k - 1.0, 2.0 * k - 2.0, 4.0 * k - 1.0], [initial, top, initial, final]
        else:
            ends, levels = [k - 1.0, 4.0 * k - 1.0], [initial, top, final]

        def formula(t: Any) -> Any:
            out = np.full_like(t, final)
            start = 0.0
            for i, end in reversed(list(enumerate(ends))):
                start = ends[i - 1] if i else 0.0
                q = np.clip((t - start) / (end - start), 0.0, 1.0)
                lo, hi = levels[i], levels[i + 1]
                v = hi + (lo - hi) * _half_cos(q) if anneal == "cos" else lo + (hi - lo) * q
                out = np.where(t <= end, v, out)
            return out

        return s, [(0, initial), *zip(ends, levels[1:])], formula, 4 * k

    return case


def _cyclic(mode: str) -> Case:
    """Between lo = min(a, b) and hi = max(a, b): up n steps, down about p * n; torch's formula."""

    def case(a: float, b: float, n: int, p: float) -> Any:
        lo, hi = min(a, b), max(a, b)
        down = max(1, round(p * n))
        s = Cyclic(lr=lo, max_lr=hi, step_size_up=n, step_size_down=down, mode=mode, gamma=0.999)
        c = n + down

        def formula(t: Any) -> Any:
            cycle = np.floor(1.0 + t / c)
            x = 1.0 + t / c - cycle
            r = n / c
            if mode == "sine":
                scale = np.where(x <= r, 1.0 - _half_cos(x / r), _half_cos((x - r) / (1.0 - r)))
            else:
                scale = np.where(x <= r, x / r, (x - 1.0) / (r - 1.0))
            amp = {"triangular2": 1.0 / 2.0 ** (cycle - 1.0), "exp_range": 0.999**t}.get(mode, 1.0)
            return lo + (hi - lo) * scale * amp

        ends = [(0, lo), (c, lo), (2 * c, lo)] + ([(n, hi)] if mode != "exp_range" else [])
        return s, ends, formula, 2 * c + n

    return case


def _wsd(cooldown: str) -> Case:
    """a for n steps, then down to b over n more (as linear, cosine or 1-sqrt)."""
    shape = {"linear": lambda x: 1.0 - x, "cosine": _half_cos, "1-sqrt": lambda x: 1.0 - np.sqrt(x)}[cooldown]

    def case(a: float, b: float, n: int, p: float) -> Any:
        s = WSD(lr=a, steps=2 * n, decay=n, cooldown=cooldown, min_lr=b)
        formula = lambda t: b + (a - b) * shape(np.clip((t - n) / n, 0.0, 1.0))  # noqa: E731
        return s, [(0, a), (n, a), (2 * n, b)], formula, 2 * n

    return case


def _warmup(mode: str) -> Case:
    """linear: from 0 to b (as lr); exponential: the multiplier from a / b (or 0.01) to 1."""

    def case(a: float, b: float, n: int, p: float) -> Any:
        if mode == "linear":
            return Warmup(steps=n, start=0.0, lr=b), [(0, 0.0), (n, b)], lambda t: b * t / n, n
        lo, hi = min(a, b), max(a, b)
        st = lo / hi if lo > 0 else 0.01
        w = Warmup(steps=n, start=st, mode="exponential")
        return w, [(0, st), (n, 1.0)], lambda t: st ** (1.0 - t / n), n

    return case


ENDS_CASES: dict[str, Case] = {
    "linear": _linear,
    "polynomial": _polynomial,
    "cosine": _cosine,
    "cosine_restarts": _restarts(1.0, 1.0),
    "cosine_restarts-mult2": _restarts(2.0, 1.0),
    "cosine_restarts-decay": _restarts(3.0, 0.5),
    "one_cycle": _one_cycle("cos", False),
    "one_cycle-3phase": _one_cycle("cos", True),
    "one_cycle-linear": _one_cycle("linear", False),
    **{f"cyclic-{m}": _cyclic(m) for m in Cyclic.MODES},
    **{f"wsd-{c}": _wsd(c) for c in COOLDOWNS},
    "warmup": _warmup("linear"),
    "warmup-exponential": _warmup("exponential"),
}


def _on_every_backend(s: Schedule, ks: np.ndarray, ts: np.ndarray) -> dict[str, np.ndarray]:
    """``s`` at the whole steps ``ks`` and then at ``ts``, in float64 (numpy) and float32 (torch, jax.jit),
    and at ``ks`` only as torch integers and in eager jax (which compiles each operation anew for each
    new shape)."""
    both = np.concatenate([ks, ts])
    return {
        "numpy": s(both),
        "torch float32": s(torch.tensor(both, dtype=torch.float32)).numpy(),
        "jax.jit": np.asarray(jax.jit(lambda t: s(t))(jnp.asarray(both, dtype=jnp.float32))),
        "torch int64": s(torch.tensor(ks.astype(np.int64))).numpy(),
        "jax": np.asarray(s(jnp.asarray(ks, dtype=jnp.float32))),
    }


ENDS_SETTINGS = settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@ENDS_SETTINGS
@pytest.mark.parametrize("case", list(ENDS_CASES))
@given(
    a=S.lrs | st.just(0.0),
    b=S.lrs | st.just(0.0),
    n=S.lengths,
    p=st.floats(min_value=0.25, max_value=4.0),
)
@example(a=0.0001221001148223877, b=1.0, n=1, p=1.0)  # linear: step 0 was 2**-13 in float32, 2.4e-4 off
@example(a=1.2e-4, b=1.0, n=41, p=1.0)  # XLA's t * (1/41) makes 41 / 41 an ulp below 1
@example(a=1.0, b=1.2e-4, n=47, p=2.0)  # linear, polynomial: jax gave 0.99999994 (0.99999988) at step 0
@example(a=0.0, b=1.0, n=3, p=1.0)  # linear: jax.jit gave -2.98e-8, a negative LR, at step 0
# rising polynomial, cosine, restarts, wsd; one_cycle with div_factor 8333: 1.3e-4 to 1.7e-4 off at step 0
@example(a=1.2e-4, b=1.0, n=1000, p=2.0)
@example(a=1.2e-4, b=1.0, n=47, p=0.5)  # polynomial power 0.5: 3.6e-4 off at step 0 in jax
@example(a=1e-4, b=1.0, n=1000, p=1.0)  # one_cycle with div_factor=1e4: the linear one ended at 0, not 1e-8
@example(a=1.0, b=0.0, n=41, p=1.0)  # cosine (and wsd's) to 0 ended at 8.8e-15 in jax
@example(a=1.0, b=1.2e-4, n=41, p=1.0)  # wsd: its end 5e-4 off in jax
def test_schedules_are_exact_at_their_ends_in_float32_on_every_backend(
    case: str, a: float, b: float, n: int, p: float
) -> None:
    """Each interpolating schedule gives exactly its end values at its ends (start, end, a one_cycle's
    phase ends, a cycle's base and peak, wsd's stable phase): the float64 values in numpy, their float32
    roundings on torch (float32 and integer steps) and jax (eager and jit), whatever their sizes.
    Computed from one end only, the other end came out to the precision of the larger value (1.3e-4 to
    5e-4 off for a small end next to a large one), or an ulp of the time off under XLA (a cosine to 0
    ending at 8.8e-15, a negative LR at step 0). In between, the formula to float rounding."""
    s, ends, formula, last = ENDS_CASES[case](a, b, n, p)
    ks = np.array([k for k, _ in ends], dtype=np.float64)
    want = np.array([v for _, v in ends])
    ts = np.arange(0.0, last + 0.5, 0.5)
    ref = formula(ts)
    scale = float(np.max(np.abs(ref)))
    for backend, got in _on_every_backend(s, ks, ts).items():
        exact = want if backend == "numpy" else want.astype(np.float32)
        assert got.dtype == exact.dtype and got[: ks.size].tolist() == exact.tolist(), (
            backend,
            ks,
            got,
            exact,
        )
        if got.size > ks.size:
            tol = (1e-14 if backend == "numpy" else 1e-6) * scale
            mid = np.asarray(got[ks.size :], dtype=np.float64)
            np.testing.assert_allclose(mid, ref, rtol=0, atol=tol, err_msg=f"{case} on {backend}")


@pytest.mark.parametrize(
    "spec",
    [
        "exponential(lr=1.0, gamma=0.99999)",
        "exponential(lr=1.0, gamma=0.9999, every=10, staircase=true)",
        "cyclic(lr=0.001, max_lr=0.1, step_size_up=7, mode=exp_range, gamma=0.99999)",
    ],
)
@pytest.mark.parametrize("backend", ["torch", "jax"])
def test_float32_steps_keep_gamma_to_the_t_accurate_over_a_million_steps(spec: str, backend: str) -> None:
    # gamma ** t in float32 rounds gamma first, an error t multiplies: 1.35% at 1e6 steps for 0.99999
    import lrkit

    s = lrkit.parse(spec)
    ts = np.array([0.0, 1.0, 1e3, 1e4, 1e5, 3e5, 1e6])  # exact in float32
    ref = s(ts)  # float64
    t32 = torch.tensor(ts, dtype=torch.float32) if backend == "torch" else jnp.asarray(ts, dtype=jnp.float32)
    got = np.asarray(s(t32), dtype=np.float64)
    np.testing.assert_allclose(got, ref, rtol=2e-6, atol=0)
