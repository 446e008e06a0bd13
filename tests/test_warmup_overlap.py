"""``warmup(..., overlap=True)``: the next piece starts with the warmup (timm's ``warmup_prefix=False``).

The timm references below are timm's ``_get_lr`` (``timm/scheduler/{cosine,step,multistep,poly}_lr.py``)
written out by hand for one parameter group; timm itself is not installed.
"""

from __future__ import annotations

import bisect
import math
from dataclasses import replace
from functools import partial

import numpy as np
import pytest

import lrkit
from lrkit.schedules import (
    Constant,
    Cosine,
    CosineRestarts,
    Linear,
    MultiStep,
    Polynomial,
    Repeat,
    StepDecay,
    Warmup,
)


# -- timm's formulas, by hand ------------------------------------------------------------------------
def _timm_warmup(t: float, b: float, w: float, i: float) -> float:
    return i + t * ((b - i) / w)


def timm_cosine(
    t: float,
    b: float,
    *,
    t_initial: float,
    warmup_t: float,
    warmup_lr_init: float,
    warmup_prefix: bool,
    lr_min: float = 0.0,
    cycle_mul: float = 1.0,
    cycle_decay: float = 1.0,
    cycle_limit: int = 1,
) -> float:
    if t < warmup_t:
        return _timm_warmup(t, b, warmup_t, warmup_lr_init)
    if warmup_prefix:
        t = t - warmup_t
    if cycle_mul != 1:
        k = math.floor(math.log(1 - t / t_initial * (1 - cycle_mul), cycle_mul))
        t_i = cycle_mul**k * t_initial
        t_curr = t - (1 - cycle_mul**k) / (1 - cycle_mul) * t_initial
    else:
        k = t // t_initial
        t_i = t_initial
        t_curr = t - t_initial * k
    if k >= cycle_limit:
        return lr_min
    lr_max = b * cycle_decay**k
    return lr_min + 0.5 * (lr_max - lr_min) * (1 + math.cos(math.pi * t_curr / t_i))


def timm_cycle_length(t_initial: float, cycle_mul: float, cycles: int) -> float:
    """timm's ``get_cycle_length()`` with ``warmup_prefix=False``."""
    if cycle_mul == 1.0:
        return t_initial * cycles
    return math.floor(-t_initial * (cycle_mul**cycles - 1) / (1 - cycle_mul))


def timm_step(
    t: float,
    b: float,
    *,
    decay_t: float,
    decay_rate: float,
    warmup_t: float,
    warmup_lr_init: float,
    prefix: bool,
) -> float:
    if t < warmup_t:
        return _timm_warmup(t, b, warmup_t, warmup_lr_init)
    if prefix:
        t = t - warmup_t
    return b * decay_rate ** (t // decay_t)


def timm_multistep(
    t: float, b: float, *, decay_t: list[int], decay_rate: float, warmup_t: float, warmup_lr_init: float
) -> float:
    if t < warmup_t:
        return _timm_warmup(t, b, warmup_t, warmup_lr_init)
    return b * decay_rate ** bisect.bisect_right(decay_t, t + 1)  # warmup_prefix=False; timm's t + 1


def timm_poly(
    t: float,
    b: float,
    *,
    t_initial: float,
    power: float,
    lr_min: float,
    warmup_t: float,
    warmup_lr_init: float,
) -> float:
    if t < warmup_t:
        return _timm_warmup(t, b, warmup_t, warmup_lr_init)
    if t // t_initial >= 1:  # cycle_limit=1, warmup_prefix=False
        return lr_min
    return lr_min + (b - lr_min) * (1 - t / t_initial) ** power


def _check(s: lrkit.Schedule, ref: object, steps: range) -> None:
    got = s(np.arange(steps.start, steps.stop, dtype=np.float64))
    want = np.array([ref(t) for t in steps])  # type: ignore[operator]
    np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-15)
    assert [s(t) for t in steps] == got.tolist()  # scalar == vectorised, bit for bit


# -- the timm default and its neighbours ------------------------------------------------------------
@pytest.mark.parametrize(
    ("b", "T", "w", "i", "m"),
    [(0.1, 100, 10, 1e-5, 0.0), (5e-4, 300, 5, 1e-6, 1e-5), (1.0, 20, 7, 0.0, 0.05), (0.3, 50, 1, 0.01, 0.0)],
)
def test_timm_cosine_default_warmup_prefix_false_is_an_overlapping_warmup(
    b: float, T: int, w: int, i: float, m: float
) -> None:
    s = lrkit.parse(
        f"warmup({w}, start={i / b!r}, overlap=true) >> cosine(lr={b!r}, min_lr={m!r}, steps={T})"
    )
    assert s.length_steps == T  # timm's get_cycle_length(): the warmup lies inside t_initial
    ref = partial(timm_cosine, b=b, t_initial=T, warmup_t=w, warmup_lr_init=i, warmup_prefix=False, lr_min=m)
    _check(s, ref, range(0, T + 20))


@pytest.mark.parametrize(("b", "T", "w", "i", "m"), [(0.1, 100, 10, 1e-5, 0.0), (5e-4, 300, 5, 1e-6, 1e-5)])
def test_timm_cosine_warmup_prefix_true_is_the_plain_chain(
    b: float, T: int, w: int, i: float, m: float
) -> None:
    s = Warmup(w, start=i / b) >> Cosine(lr=b, min_lr=m, steps=T)
    ref = partial(timm_cosine, b=b, t_initial=T, warmup_t=w, warmup_lr_init=i, warmup_prefix=True, lr_min=m)
    _check(s, ref, range(0, T + w + 20))


@pytest.mark.parametrize(
    ("mult", "decay", "m", "n"),
    [(1.0, 1.0, 1e-4, 3), (1.0, 0.5, 0.0, 3), (2.0, 1.0, 1e-4, 3), (2.0, 0.7, 0.0, 2)],
)
def test_timm_cosine_cycles_with_an_overlapping_warmup(mult: float, decay: float, m: float, n: int) -> None:
    """cycle_limit > 1: timm counts the cycles from t = 0 under the warmup, and is lr_min after the last
    (``decay`` matches timm's cycle_decay exactly where lr_min = 0 or decay = 1)."""
    b, T, w, i = 0.1, 40, 6, 1e-4
    L = timm_cycle_length(T, mult, n)
    s = (
        Warmup(w, start=i / b, overlap=True)
        >> CosineRestarts(lr=b, period=T, mult=mult, decay=decay, min_lr=m, steps=L)
        >> Constant(lr=m)
    )
    cycles = {"cycle_mul": mult, "cycle_decay": decay, "cycle_limit": n}
    ref = partial(
        timm_cosine, b=b, t_initial=T, warmup_t=w, warmup_lr_init=i, warmup_prefix=False, lr_min=m, **cycles
    )
    _check(s, ref, range(0, int(L) + 30))
    assert s(w) == CosineRestarts(lr=b, period=T, mult=mult, decay=decay, min_lr=m)(w)  # not at w - w


@pytest.mark.parametrize("prefix", [False, True])
def test_timm_step_decay_with_either_warmup(prefix: bool) -> None:
    """StepLRScheduler (create_scheduler_v2 passes warmup_prefix=False; the class default is True)."""
    b, D, r, w, i = 0.1, 30, 0.5, 5, 1e-3
    s = Warmup(w, start=i / b, overlap=not prefix) >> StepDecay(lr=b, step_size=D, gamma=r)
    ref = partial(timm_step, b=b, decay_t=D, decay_rate=r, warmup_t=w, warmup_lr_init=i, prefix=prefix)
    _check(s, ref, range(0, 200))


def test_timm_multistep_and_poly_with_the_default_warmup() -> None:
    b, w, i = 0.2, 8, 1e-3
    ms = [30, 60, 90]  # timm applies milestone m at t = m - 1 (bisect_right(decay_t, t + 1))
    s = Warmup(w, start=i / b, overlap=True) >> MultiStep(lr=b, milestones=[x - 1 for x in ms], gamma=0.1)
    _check(
        s,
        partial(timm_multistep, b=b, decay_t=ms, decay_rate=0.1, warmup_t=w, warmup_lr_init=i),
        range(120),
    )
    p = Warmup(w, start=i / b, overlap=True) >> Polynomial(lr=b, steps=100, power=0.5, end_lr=1e-4)
    ref = partial(timm_poly, b=b, t_initial=100, power=0.5, lr_min=1e-4, warmup_t=w, warmup_lr_init=i)
    _check(p, ref, range(130))


def test_timm_adapter_in_epochs_and_in_updates_follows_timm_default() -> None:
    """create_scheduler_v2(sched='cosine', num_epochs=E, warmup_epochs=W, warmup_lr=i, min_lr=m), both as
    timm's default step_on_epochs=True (t = the epoch) and with sched_on_updates (t = the update)."""
    torch = pytest.importorskip("torch")
    b, E, W, i, m, upe = 0.1, 12, 3, 1e-4, 1e-5, 7
    spec = f"warmup({W}ep, start={i / b!r}, overlap=true) >> cosine(lr={b!r}, min_lr={m!r}, steps={E}ep)"

    def opt() -> torch.optim.Optimizer:
        return torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=b)

    o = opt()
    per_epoch = lrkit.timm.scheduler(o, spec, epochs=E, updates_per_epoch=upe, t_in_epochs=True)
    o2 = opt()
    per_update = lrkit.timm.scheduler(o2, spec, epochs=E, updates_per_epoch=upe)
    for e in range(E + 3):
        per_epoch.step(e)
        want = timm_cosine(e, b, t_initial=E, warmup_t=W, warmup_lr_init=i, warmup_prefix=False, lr_min=m)
        assert o.param_groups[0]["lr"] == pytest.approx(want, rel=1e-12, abs=1e-18), e
    for n in range((E + 1) * upe):
        per_update.step_update(num_updates=n)
        want = timm_cosine(
            n, b, t_initial=E * upe, warmup_t=W * upe, warmup_lr_init=i, warmup_prefix=False, lr_min=m
        )
        assert o2.param_groups[0]["lr"] == pytest.approx(want, rel=1e-12, abs=1e-18), n


# -- the chain -------------------------------------------------------------------------------------
def test_overlapping_warmup_stands_in_for_the_first_steps_of_the_next_piece() -> None:
    w, c = Warmup(4, start=0.0, lr=2.0, overlap=True), Linear(lr=1.0, end_lr=0.0, steps=10)
    s = w >> c
    t = np.arange(-3.0, 16.0, 0.5)
    assert np.array_equal(s(t), np.where(t < 4, w(t), c(t)))
    assert s.length_steps == 10 and s.offsets == (0.0, 0.0)
    # a lr=None warmup ramps to the next piece's first value, as without overlap
    assert (Warmup(4, start=0.0, overlap=True) >> c)(2) == 0.5


def test_overlap_inside_a_longer_chain_and_a_repeat_and_with_percent_lengths() -> None:
    head, w, body = Constant(0.5, steps=10), Warmup(4, start=0.0, overlap=True), Cosine(lr=1.0, steps=20)
    s = head >> w >> body >> Constant(0.25)
    t = np.arange(0.0, 40.0)
    want = np.where(t < 10, 0.5, np.where(t < 14, (t - 10) / 4, np.where(t < 30, body(t - 10), 0.25)))
    assert np.array_equal(s(t), want)
    r = Repeat(w >> body, times=2)
    assert r.length_steps == 40 and r(21) == r(1) == 0.25 and r(30) == body(10)
    p = lrkit.parse("warmup(10%, overlap=true) >> cosine(lr=1.0)").resolve(total_steps=200)
    assert str(p) == "warmup(steps=20, overlap=true) >> cosine(lr=1.0, steps=200)"
    assert p(20) == Cosine(lr=1.0, steps=200)(20) and p(200) == 0.0


def test_without_overlap_text_dict_and_values_are_as_before() -> None:
    text = "warmup(steps=500) >> cosine(lr=0.0003, min_lr=3e-05)"
    s = lrkit.parse(text)
    assert str(s) == text and "overlap" not in s.to_dict()["pieces"][0]
    assert s.to_dict() == {
        "type": "chain",
        "pieces": [{"type": "warmup", "steps": 500}, {"type": "cosine", "lr": 0.0003, "min_lr": 3e-05}],
    }
    r, t = s.resolve(total_steps=5000), np.arange(0.0, 5001.0)
    w, c = Warmup(500), Cosine(lr=3e-4, min_lr=3e-5, steps=4500)
    assert np.array_equal(r(t), np.where(t < 500, w(t) * c(0), c(t - 500)))


def test_overlap_spec_round_trips() -> None:
    s = Warmup(5, start=0.01, mode="exponential", overlap=True) >> Cosine(lr=0.1, steps="90%")
    text = str(s)
    assert text == "warmup(steps=5, start=0.01, mode=exponential, overlap=true) >> cosine(lr=0.1, steps=90%)"
    assert lrkit.parse(text) == s and lrkit.from_dict(s.to_dict()) == s
    assert s.to_dict()["pieces"][0]["overlap"] is True
    for fmt in ("json", "yaml", "toml"):
        assert lrkit.loads(lrkit.dumps(s, fmt), fmt) == s


@pytest.mark.parametrize("bad", ["yes", 1, 0, None, 1.0])
def test_overlap_must_be_a_bool(bad: object) -> None:
    with pytest.raises(TypeError, match=rf"warmup: overlap must be true or false, got {bad!r}"):
        Warmup(5, overlap=bad)  # type: ignore[arg-type]


def test_overlap_in_a_spec_must_be_a_bool() -> None:
    with pytest.raises(lrkit.SpecError, match=r"warmup: overlap must be true or false, got 'yes'"):
        lrkit.parse("warmup(5, overlap=yes) >> cosine(lr=0.1)")


def test_an_overlapping_warmup_with_nothing_after_it_is_a_plain_warmup() -> None:
    """So that ``a >> warmup(..., overlap=True) >> b``, built left to right, passes through it."""
    c, w = Cosine(lr=1.0, steps=10), Warmup(5, start=0.0, lr=2.0)
    trailing, plain = c >> replace(w, overlap=True), c >> w
    t = np.arange(-2.0, 20.0, 0.5)
    assert trailing.length_steps == plain.length_steps == 15 and np.array_equal(trailing(t), plain(t))


def test_an_overlapping_warmup_needs_a_next_piece_that_outlasts_it() -> None:
    msg = (
        r"chain: piece 1 \(cosine, steps=5\) starts with the overlapping warmup .* steps > 5; it would never"
    )
    with pytest.raises(ValueError, match=msg):
        Warmup(5, overlap=True) >> Cosine(lr=1.0, steps=5)
    s = lrkit.parse("warmup(10%, overlap=true) >> cosine(lr=1.0, steps=5)")  # known once resolved
    assert s.resolve(total_steps=20)(2) == Cosine(lr=1.0, steps=5)(2)
    with pytest.raises(ValueError, match=r"piece 1 \(cosine, steps=5\) .* steps > 10;"):
        s.resolve(total_steps=100)


# -- backends --------------------------------------------------------------------------------------
def _timm_default(
    b: float = 0.1, T: int = 100, w: int = 10, i: float = 1e-4, m: float = 1e-5
) -> lrkit.Schedule:
    return Warmup(w, start=i / b, overlap=True) >> Cosine(lr=b, min_lr=m, steps=T)


def test_torch_float32_int_steps_and_exact_ends() -> None:
    torch = pytest.importorskip("torch")
    s, w = _timm_default(), 10
    out = s(torch.arange(0, 120))  # int64 steps
    assert out.dtype == torch.float32
    np.testing.assert_allclose(out.numpy(), s(np.arange(0, 120)), rtol=1e-5, atol=1e-9)
    ends = s(torch.tensor([0, w, 100, 119]))
    alone = Cosine(lr=0.1, min_lr=1e-5, steps=100)(torch.tensor([w, 100]))
    assert ends[0] == Warmup(w, start=1e-3, lr=0.1)(torch.tensor(0))
    assert ends[1] == alone[0] and ends[2] == alone[1] == torch.tensor(1e-5) and ends[3] == ends[2]


def test_jax_under_jit_and_exact_ends() -> None:
    jax = pytest.importorskip("jax")
    jnp = jax.numpy
    s = _timm_default()
    f = jax.jit(lambda t: s(t))
    np.testing.assert_allclose(np.asarray(f(jnp.arange(120))), s(np.arange(120)), rtol=1e-5, atol=1e-9)
    ends = np.asarray(f(jnp.asarray([0.0, 10.0, 100.0])))
    assert ends[1] == np.asarray(Cosine(lr=0.1, min_lr=1e-5, steps=100)(jnp.asarray(10.0)))
    assert ends[2] == np.float32(1e-5) and ends[0] == np.asarray(
        Warmup(10, start=1e-3, lr=0.1)(jnp.asarray(0.0))
    )
