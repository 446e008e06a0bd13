"""Hypothesis strategies for schedules: every leaf type with valid random parameters, and compositions."""

from __future__ import annotations

import math

from hypothesis import strategies as st

from lrkit.schedules import (
    WSD,
    Clamp,
    Constant,
    Cosine,
    CosineRestarts,
    Cyclic,
    ExpDecay,
    Exponential,
    InverseSqrt,
    InverseTime,
    Linear,
    MultiStep,
    OneCycle,
    Piecewise,
    Polynomial,
    Repeat,
    Schedule,
    StepDecay,
    Warmup,
    chain,
)

lrs = st.floats(min_value=1e-6, max_value=10.0, allow_nan=False, allow_infinity=False)
lengths = st.integers(min_value=1, max_value=5000)
gammas = st.floats(min_value=0.05, max_value=0.9999)
ks = st.floats(min_value=0.0, max_value=0.1)
fractions = st.floats(min_value=0.0, max_value=1.0)


@st.composite
def below(draw: st.DrawFn, lr: float) -> float:
    return draw(st.floats(min_value=0.0, max_value=lr))


@st.composite
def milestones(draw: st.DrawFn) -> list[int]:
    ms = draw(st.lists(st.integers(min_value=1, max_value=5000), min_size=1, max_size=5, unique=True))
    return sorted(ms)


@st.composite
def cosine(draw: st.DrawFn) -> Cosine:
    lr = draw(lrs)
    return Cosine(lr=lr, steps=draw(lengths), min_lr=draw(below(lr)))


@st.composite
def linear(draw: st.DrawFn) -> Linear:
    return Linear(lr=draw(lrs), steps=draw(lengths), end_lr=draw(lrs))


@st.composite
def polynomial(draw: st.DrawFn) -> Polynomial:
    lr = draw(lrs)
    return Polynomial(lr=lr, steps=draw(lengths), power=draw(st.floats(0.1, 4.0)), end_lr=draw(below(lr)))


@st.composite
def one_cycle(draw: st.DrawFn) -> OneCycle:
    n = draw(st.integers(min_value=20, max_value=5000))
    pct = draw(st.floats(min_value=0.1, max_value=0.45))
    return OneCycle(
        max_lr=draw(lrs),
        steps=n,
        pct_start=pct,
        anneal=draw(st.sampled_from(["cos", "linear"])),
        div_factor=draw(st.floats(1.0, 100.0)),
        final_div_factor=draw(st.floats(1.0, 1e4)),
        three_phase=draw(st.booleans()),
    )


@st.composite
def cyclic(draw: st.DrawFn) -> Cyclic:
    lr = draw(lrs)
    return Cyclic(
        lr=lr,
        max_lr=lr + draw(lrs),
        step_size_up=draw(lengths),
        step_size_down=draw(st.none() | lengths),
        mode=draw(st.sampled_from(Cyclic.MODES)),
        gamma=draw(st.floats(0.99, 1.0)),
    )


@st.composite
def restarts(draw: st.DrawFn) -> CosineRestarts:
    lr = draw(lrs)
    return CosineRestarts(
        lr=lr,
        period=draw(st.integers(1, 500)),
        mult=draw(st.sampled_from([1, 1.5, 2, 3])),
        min_lr=draw(below(lr)),
        decay=draw(st.floats(0.3, 1.0)),
    )


@st.composite
def wsd(draw: st.DrawFn) -> WSD:
    n = draw(st.integers(min_value=10, max_value=5000))
    w = draw(st.integers(0, n // 3))
    d = draw(st.integers(1, n - w))
    lr = draw(lrs)
    return WSD(
        lr=lr,
        steps=n,
        warmup=w,
        decay=d,
        cooldown=draw(st.sampled_from(["linear", "cosine", "1-sqrt"])),
        min_lr=draw(below(lr)),
    )


@st.composite
def warmup(
    draw: st.DrawFn,
    steps: st.SearchStrategy[int] = lengths,
    overlap: bool = False,
) -> Warmup:
    mode = draw(st.sampled_from(["linear", "exponential"]))
    start = draw(
        st.none() | st.floats(min_value=1e-4, max_value=1.0) | st.just(0.0 if mode == "linear" else 1e-4)
    )
    return Warmup(steps=draw(steps), start=start, mode=mode, lr=draw(st.none() | lrs), overlap=overlap)


@st.composite
def overlapped(draw: st.DrawFn, pieces: st.SearchStrategy[Schedule]) -> Schedule:
    """``warmup(..., overlap=True) >> piece``: a piece drawn from ``pieces`` and a warmup it outlasts
    (shorter than the piece's steps; any length before a piece that has none). A piece of 1 step,
    which nothing shorter can overlap, comes alone."""
    piece = draw(pieces)
    d = piece.length
    if d is None or d.unit == "rest":
        n = draw(lengths)
    else:
        longest = math.ceil(float(d.value)) - 1  # steps < the piece's
        if longest < 1:
            return piece
        n = draw(st.integers(1, min(longest, 5000)))
    return chain(draw(warmup(steps=st.just(n), overlap=True)), piece)


@st.composite
def piecewise(draw: st.DrawFn) -> Piecewise:
    xs = sorted(draw(st.lists(st.integers(0, 5000), min_size=2, max_size=6, unique=True)))
    return Piecewise(points=[(x, draw(lrs)) for x in xs])


#: every bounded leaf (it has a length, so it can stand anywhere in a chain)
bounded_leaves = st.one_of(
    cosine(),
    linear(),
    polynomial(),
    one_cycle(),
    wsd(),
    warmup(),
    piecewise(),
    st.builds(Constant, lr=lrs, steps=lengths),
    st.builds(
        Exponential, lr=lrs, gamma=gammas, every=st.integers(1, 100), staircase=st.booleans(), steps=lengths
    ),
)

#: leaves that run forever (allowed last in a chain)
unbounded_leaves = st.one_of(
    st.builds(Constant, lr=lrs),
    st.builds(StepDecay, lr=lrs, step_size=st.integers(1, 1000), gamma=gammas),
    st.builds(MultiStep, lr=lrs, milestones=milestones(), gamma=gammas),
    st.builds(Exponential, lr=lrs, gamma=gammas, every=st.integers(1, 100), staircase=st.booleans()),
    st.builds(ExpDecay, lr=lrs, k=ks),
    st.builds(InverseTime, lr=lrs, k=ks, every=st.integers(1, 100), staircase=st.booleans()),
    st.builds(InverseSqrt, lr=lrs, timescale=st.integers(1, 5000)),
    cyclic(),
    restarts(),
)

leaves = st.one_of(bounded_leaves, unbounded_leaves)


#: a chain's piece before the last: a bounded leaf, or an overlapping warmup and the bounded piece it starts
chain_heads = st.one_of(bounded_leaves, overlapped(bounded_leaves))
#: a chain's last piece: any leaf, an overlapping warmup and the leaf it starts, or an overlapping warmup
#: with no next piece (a plain warmup)
chain_tails = st.one_of(leaves, overlapped(leaves), warmup(overlap=True))


@st.composite
def chains(draw: st.DrawFn) -> Schedule:
    head = draw(st.lists(chain_heads, min_size=1, max_size=3))
    return chain(*head, draw(chain_tails))


def _compose(children: st.SearchStrategy[Schedule]) -> st.SearchStrategy[Schedule]:
    return st.one_of(
        st.builds(lambda s, f: s * f, children, st.floats(0.01, 10.0)),
        st.builds(lambda a, b: a * b, children, children),
        st.builds(Clamp, children, st.just(0.0), st.none() | st.floats(1.0, 100.0)),
        st.builds(Repeat, bounded_leaves, st.none() | st.integers(1, 5)),
    )


#: any schedule: leaves, chains (an overlapping warmup and the piece it starts, one that ends or one that
#: runs forever, drawn as often as a leaf type) and compositions of them
schedules = st.recursive(
    st.one_of(leaves, chains(), overlapped(bounded_leaves), overlapped(unbounded_leaves)),
    _compose,
    max_leaves=4,
)


def _accepted_as_lrs(s: Schedule) -> bool:
    """False for a schedule that is, or ends in, a warmup with no lr: a multiplier rising to 1, which
    the adapters refuse as LRs (``refuse_bare_warmup``; tested on its own)."""
    from lrkit.schedules.warmup import refuse_bare_warmup

    try:
        refuse_bare_warmup(s)
    except ValueError:
        return False
    return True


#: schedules the adapters take as LRs (every drawn schedule but those ending in a bare warmup)
lr_schedules = schedules.filter(_accepted_as_lrs)

steps = st.integers(min_value=-10, max_value=20_000)


# -- the whole range of values a schedule may be given (issue 9) --------------------------------------
#: any float, NaN and the infinities included: a constructor must reject it or give a valid schedule
any_floats = st.floats(allow_nan=True, allow_infinity=True) | st.sampled_from(
    [0.0, -0.0, 5e-324, 1e-320, 1e-300, 1 / 3, 0.1 + 0.2, 1.0 + 2**-52, 1e300, 1.7976931348623157e308]
)
#: non-negative finite floats over the whole range, subnormals included
wide_lrs = st.floats(min_value=0.0, max_value=1e308, allow_nan=False) | st.sampled_from(
    [5e-324, 1e-320, 1 / 3, 6e-4 * 0.1, 1e300]
)
#: fractions of the run as they arrive in specs: 1/3, 1e-322 (written 1e-320%), 0.1 + 0.2, ...
fractions_wide = st.floats(min_value=0.0, max_value=1.0) | st.sampled_from(
    [1 / 3, 2 / 3, 1e-322, 5e-324, 0.1 + 0.2, 1 - 2**-53, 0.07, 0.123456789]
)
#: a duration of any unit, of any size a schedule accepts (and some it refuses)
durations_wide = st.one_of(
    st.integers(min_value=0, max_value=2**53 + 1),
    st.floats(min_value=0.0, max_value=2.0**54, allow_nan=False),
    st.builds(lambda f: lrkit_fraction(f), fractions_wide),
    st.builds(lambda e: lrkit_epochs(e), st.floats(min_value=0.0, max_value=1e6, allow_nan=False)),
    st.just("rest"),
)


def lrkit_fraction(f: float) -> object:
    from lrkit.schedules import fraction

    return fraction(f)


def lrkit_epochs(e: float) -> object:
    from lrkit.schedules import epochs

    return epochs(e)


CHOICES = {"mode": ("linear", "exponential", *Cyclic.MODES), "anneal": ("cos", "linear"), "cooldown": None}


@st.composite
def wild_leaf(draw: st.DrawFn) -> Schedule | None:
    """A leaf schedule with every parameter drawn from the whole range its type allows (NaN, inf,
    negative, subnormal, 2**53 + 1, fractions like 1/3): the schedule if it constructs, else None."""
    from dataclasses import MISSING, fields

    from lrkit.schedules import REGISTRY
    from lrkit.schedules.warmup import COOLDOWNS

    leaf_names = sorted(n for n in REGISTRY if n not in ("chain", "scale", "product", "clamp", "repeat"))
    cls = REGISTRY[draw(st.sampled_from(leaf_names))]
    kwargs: dict[str, object] = {}
    for f in fields(cls):
        if f.default is not MISSING and draw(st.booleans()):
            continue  # leave it at its default
        kind = f.metadata.get("kind")
        if kind == "duration":
            kwargs[f.name] = draw(durations_wide | st.none()) if f.default is None else draw(durations_wide)
        elif kind == "durations":
            kwargs[f.name] = sorted(draw(st.lists(st.integers(0, 2**53), max_size=4, unique=True)))
        elif kind == "points":
            xs = sorted(draw(st.lists(st.integers(0, 2**53) | st.floats(0, 1e6), min_size=1, max_size=4)))
            kwargs[f.name] = [(x, draw(wide_lrs)) for x in xs]
        elif f.type == "bool":
            kwargs[f.name] = draw(st.booleans())
        elif f.type == "str":
            options = COOLDOWNS if f.name == "cooldown" else CHOICES[f.name]
            kwargs[f.name] = draw(st.sampled_from(options or ("",)))
        elif "lr" in f.name:
            kwargs[f.name] = (
                draw(wide_lrs | any_floats) if f.default is MISSING else draw(wide_lrs | st.none())
            )
        else:  # gamma, k, factors, pct_start, mult, decay, start, ...
            kwargs[f.name] = draw(any_floats | st.floats(0.0, 2.0) | st.none())
    try:
        return cls(**kwargs)
    except (ValueError, TypeError):
        return None


@st.composite
def wild_schedules(draw: st.DrawFn) -> Schedule:
    """Schedules that construct from :func:`wild_leaf` values, alone or composed (scale, product,
    chain, clamp, repeat), with the factor drawn from the whole float range too."""
    from lrkit.schedules import Scale

    leaf = draw(wild_leaf().filter(lambda s: s is not None))
    assert leaf is not None
    how = draw(st.sampled_from(["leaf", "scale", "product", "chain", "clamp", "repeat"]))
    try:
        if how == "scale":
            return Scale(leaf, draw(any_floats))
        if how == "product":
            return leaf * draw(st.builds(Constant, lr=wide_lrs))
        if how == "chain":
            return chain(draw(bounded_leaves), leaf)
        if how == "clamp":
            return Clamp(leaf, draw(wide_lrs), draw(st.none() | wide_lrs))
        if how == "repeat":
            return Repeat(leaf, draw(st.none() | st.integers(1, 2**60)))
    except (ValueError, TypeError):
        pass
    return leaf
