"""Figures: schedules overlaid, and the gallery of every strategy. Needs matplotlib (the ``lab`` extra)."""

from __future__ import annotations

import functools
import logging
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np

from .schedules import Schedule
from .schedules.warmup import refuse_bare_warmup
from .spec import load, to_string

__all__ = [
    "GALLERY",
    "HANGUL_FONTS",
    "MAX_POINTS",
    "MAX_STEPS",
    "gallery",
    "hangul_fallback",
    "hangul_font",
    "minmax_thin",
    "new_figure",
    "plot_schedules",
    "pyplot",
]


#: the most steps a figure covers: every step is evaluated (in chunks), each curve drawn with at most
#: about :data:`MAX_POINTS` points (10**9 steps: about a minute per schedule)
MAX_STEPS = 1_000_000_000
#: the most points a curve is drawn with: a longer one keeps the lowest and highest value of each run of
#: steps (:func:`minmax_thin`)
MAX_POINTS = 4000
#: steps evaluated at once when a figure covers a long run
_CHUNK = 1 << 20


def thin_stride(n: int) -> int:
    """The steps of each run :func:`minmax_thin` keeps 2 points of, for a curve of ``n`` steps drawn with
    at most about :data:`MAX_POINTS` points (1: every step, for a curve that short)."""
    return 1 if n <= MAX_POINTS else -(-n // (MAX_POINTS // 2))


def runs_of(y: np.ndarray, stride: int, fill: float | bool = np.nan) -> np.ndarray:
    """``y`` as rows of ``stride`` values, the last row padded with ``fill``."""
    return np.concatenate([y, np.full(-len(y) % stride, fill)]).reshape(-1, stride)


def minmax_thin(y: np.ndarray, stride: int, offset: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """``(x, y)`` of a curve thinned for drawing: in each run of ``stride`` values of ``y`` (the last may be
    shorter), its lowest and its highest, in step order, at their steps (``offset`` + index); values that
    are not finite are left out. Every ``stride``-th value alone aliases a curve that moves faster than
    the stride (a cyclical LR of period ``stride`` is drawn flat); this keeps its range.

    >>> minmax_thin(np.array([0.0, 5.0, 1.0, 4.0, 2.0]), 2)
    (array([0., 1., 2., 3., 4.]), array([0., 5., 1., 4., 2.]))
    >>> minmax_thin(np.array([1.0, 3.0, 2.0, 0.0, 9.0, 8.0]), 3, offset=10)
    (array([10., 11., 13., 14.]), array([1., 3., 0., 9.]))
    """
    y = np.asarray(y, dtype=float)
    if stride <= 1:
        keep = np.flatnonzero(np.isfinite(y))
        return (keep + offset).astype(float), y[keep]
    grid = runs_of(y, stride)
    ok = np.isfinite(grid)
    lo = np.where(ok, grid, np.inf).argmin(axis=1)
    hi = np.where(ok, grid, -np.inf).argmax(axis=1)
    rows = np.flatnonzero(ok.any(axis=1))
    first, last = np.minimum(lo, hi)[rows], np.maximum(lo, hi)[rows]
    idx = np.stack([rows * stride + first, rows * stride + last], axis=1).ravel()
    if len(idx):
        idx = idx[np.r_[True, np.diff(idx) != 0]]  # one point where the lowest is the highest
    return (idx + offset).astype(float), y[idx]


def _curve(sched: Schedule, total_steps: int) -> tuple[np.ndarray, np.ndarray, list[int]]:
    """``sched`` over steps 0 .. ``total_steps``, thinned to about :data:`MAX_POINTS` points
    (:func:`minmax_thin`), evaluated :data:`_CHUNK` steps at a time; and the steps a run trains with
    (0 .. ``total_steps`` - 1; the last point drawn, where a decay ends at 0, is none of them) where its LR
    is not above 0, which a log scale leaves out: ``[count, first, last]``, ``[0, -1, -1]`` for none."""
    n = total_steps + 1
    stride = thin_stride(n)
    chunk = max(stride, _CHUNK // stride * stride)  # whole runs of stride steps per chunk
    xs, ys = [], []
    below = [0, -1, -1]
    for start in range(0, n, chunk):
        t = np.arange(start, min(n, start + chunk), dtype=np.float64)
        with np.errstate(over="ignore", invalid="ignore"):
            lrs = np.asarray(sched(t), dtype=float)
            x, y = minmax_thin(lrs, stride, start)
        at = np.flatnonzero(lrs[: total_steps - start] <= 0)  # the steps a run trains with
        if len(at):
            below = [below[0] + len(at), below[1] if below[0] else start + int(at[0]), start + int(at[-1])]
        xs.append(x)
        ys.append(y)
    x, y = np.concatenate(xs), np.concatenate(ys)
    if stride > 1:  # the run's first and last step too, where a warmup starts and a decay ends
        ends = np.array([0.0, float(total_steps)])
        with np.errstate(over="ignore", invalid="ignore"):
            at = np.asarray(sched(ends), dtype=float)
        keep = np.isfinite(at) & ~np.isin(ends, x)
        order = np.argsort(np.concatenate([x, ends[keep]]), kind="stable")
        x, y = np.concatenate([x, ends[keep]])[order], np.concatenate([y, at[keep]])[order]
    return x, y, below


def _matplotlib() -> Any:
    """matplotlib, or an ImportError that says how to get it (missing) or that it is broken."""
    try:
        import matplotlib
    except ImportError as exc:
        if isinstance(exc, ModuleNotFoundError) and exc.name == "matplotlib":
            raise ImportError("plotting needs matplotlib: pip install 'lrkit[lab]'") from exc
        # installed but broken: built for numpy 1.x under numpy 2, or a module it needs is missing
        raise ImportError(f"matplotlib is installed but cannot be imported: {exc}") from exc
    return matplotlib


def new_figure(**kwargs: Any) -> Any:
    """``matplotlib.figure.Figure(**kwargs)`` on its own Agg canvas: the figures lrkit makes need no
    display, draw and save (.png, .svg, .pdf) whatever the backend, and leave pyplot alone: its backend
    (a notebook's inline, ipympl, TkAgg, ``MPLBACKEND=pdf``) and its list of open figures (there is
    nothing to close)."""
    _matplotlib()
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(**kwargs)
    FigureCanvasAgg(fig)
    return fig


#: fonts that draw Hangul, in the order lrkit's figures prefer them; any other installed font with Hangul
#: comes after these
HANGUL_FONTS = (
    "NanumGothic",
    "NanumBarunGothic",
    "Noto Sans CJK KR",
    "Noto Sans KR",
    "Source Han Sans KR",
    "Malgun Gothic",
    "Apple SD Gothic Neo",
    "AppleGothic",
    "UnDotum",
    "Baekmuk Gulim",
)
#: syllables a font must draw, each its own glyph, to count as one with Hangul
HANGUL_PROBE = "학습률손실"


@functools.lru_cache(maxsize=1)
def hangul_font() -> str | None:
    """The family name of an installed font that draws Hangul (:data:`HANGUL_FONTS` first), or None. A font
    draws Hangul when each syllable of :data:`HANGUL_PROBE` has a glyph of its own: matplotlib's Last
    Resort font has a glyph for every character, one box per Unicode block."""
    _matplotlib()
    from matplotlib import font_manager
    from matplotlib.ft2font import FT2Font

    rank = {name: i for i, name in enumerate(HANGUL_FONTS)}
    for entry in sorted(font_manager.fontManager.ttflist, key=lambda f: rank.get(f.name, len(rank))):
        try:
            font = FT2Font(entry.fname)
        except (OSError, RuntimeError):  # a font file matplotlib listed but cannot open now
            continue
        glyphs = {font.get_char_index(ord(c)) for c in HANGUL_PROBE}
        if 0 not in glyphs and len(glyphs) == len(HANGUL_PROBE):
            return str(entry.name)
    return None


def with_fallback(font: str | None) -> list[str] | None:
    """matplotlib's ``font.family`` with ``font`` after it (glyphs the first lacks, Hangul, come from the
    next; numbers keep the minus sign U+2212, which NanumGothic lacks); None for no ``font``."""
    if font is None:
        return None
    return [*_matplotlib().rcParams["font.family"], font]


@contextmanager
def hangul_fallback() -> Iterator[None]:
    """Text made inside draws Hangul (a name, a title: shown as written) with an installed font that has
    it (:func:`hangul_font`), after matplotlib's ``font.family`` (:func:`with_fallback`); where none is
    installed, nothing changes."""
    family = with_fallback(hangul_font())
    if family is None:
        yield
        return
    with _quiet_weight_fallback(), _matplotlib().rc_context({"font.family": family}):
        yield


@contextmanager
def _quiet_weight_fallback() -> Iterator[None]:
    """:func:`not_a_weight_fallback` on matplotlib's font logger inside; removed on leaving only by the
    context that added it (these nest: a lab figure's Hangul fallback inside the report's)."""
    fonts = logging.getLogger("matplotlib.font_manager")
    added = not_a_weight_fallback not in fonts.filters
    if added:
        fonts.addFilter(not_a_weight_fallback)
    try:
        yield
    finally:
        if added:
            fonts.removeFilter(not_a_weight_fallback)


def not_a_weight_fallback(record: logging.LogRecord) -> bool:
    """False for matplotlib's "findfont: Failed to find font weight bold for NanumGothic, now using 600"
    (a logging filter): a Hangul font whose bold is not 700 (NanumGothic's is 600) draws bold text as it
    should."""
    return not record.getMessage().startswith("findfont: Failed to find font weight")


def pyplot() -> Any:
    """matplotlib.pyplot, its backend as it is (lrkit's own figures do not use it: :func:`new_figure`)."""
    _matplotlib()
    import matplotlib.pyplot as plt

    return plt


def _resolved(s: Schedule | str, total: int, steps_per_epoch: float | None) -> tuple[Schedule, str]:
    sched = load(s) if isinstance(s, str) else s
    label = s if isinstance(s, str) else to_string(s)
    return sched.resolve(total_steps=total, steps_per_epoch=steps_per_epoch), label


def is_multiplier(s: Schedule) -> bool:
    """Whether ``s`` gives multipliers rather than LRs: it ends in a warmup with no ``lr``, a ramp to 1
    (``warmup(10)``), which every adapter and the lab refuse as LRs."""
    try:
        refuse_bare_warmup(s)
    except ValueError:
        return True
    return False


def _left_out(count: int, first: int, last: int) -> str:
    """What a schedule's legend entry says on a log scale about the ``count`` steps it trains with, ``first``
    to ``last``, whose LR is not above 0 (a log axis has no place for them: they are not drawn; a warmup
    from 0 trains its first step with LR 0)."""
    if count <= 2:
        where = f"step {first:,}" if count == 1 else f"steps {first:,} and {last:,}"
    else:
        where = f"{count:,} steps from {first:,} to {last:,}"
    return f" (LR ≤ 0 at {where}: not drawn on a log scale)"


def plot_schedules(
    schedules: Sequence[Schedule | str],
    total_steps: int,
    out: str | Path | None = None,
    *,
    log: bool = False,
    steps_per_epoch: float | None = None,
    title: str | None = None,
    ax: Any = None,
) -> Any:
    """Overlay ``schedules`` (objects or spec strings) over ``total_steps`` steps; save to ``out``.

    Returns the matplotlib figure. Axes are labelled; ``log`` puts the LR on a log scale, and a legend
    entry says at which steps a run trains with (0 .. ``total_steps`` - 1) the schedule's LR is not above
    0 (those steps are not drawn there). The legend sits
    where it covers the fewest points; Hangul in a spec or title is drawn with an installed font that has
    it (:func:`hangul_fallback`).
    """
    if not schedules:
        raise ValueError("schedules: expected at least one schedule, got none")
    if isinstance(total_steps, bool) or not isinstance(total_steps, int) or not 1 <= total_steps <= MAX_STEPS:
        raise ValueError(
            f"total_steps: expected an integer from 1 to {MAX_STEPS:,} (every step is evaluated), "
            f"got {total_steps!r}"
        )
    curves = []
    for s in schedules:
        sched, label = _resolved(s, total_steps, steps_per_epoch)
        if is_multiplier(sched):
            label += " (a multiplier, not an LR)"
        t, y, (count, first, last) = _curve(sched, total_steps)
        if log:
            y = np.where(y > 0, y, np.nan)
            if np.isnan(y).all():
                label += " (never > 0: nothing to draw on a log scale)"
            elif count:
                label += _left_out(count, first, last)
        curves.append((t, y, label))
    if log and all(np.isnan(y).all() for _, y, _ in curves):
        raise ValueError(
            "log scale (--log): no schedule has an LR > 0 to draw: "
            + ", ".join(label.split(" (never")[0] for _, _, label in curves)
        )
    fig = None
    with hangul_fallback():  # a spec, a label or a title in Korean is drawn as written
        if ax is None:  # lrkit's own figure; on your ``ax``, nothing else is touched
            fig = new_figure(figsize=(9, 4.8), layout="constrained")
            ax = fig.subplots()
            ax.xaxis.get_major_locator().set_params(integer=True)  # steps: 0, 1, 2, not 0.25
        for t, y, label in curves:
            ax.plot(t, y, lw=1.8, label=label)
        ax.set_xlabel("step" if steps_per_epoch is None else f"step ({steps_per_epoch:g} steps per epoch)")
        ax.set_ylabel("learning rate")
        if log:
            ax.set_yscale("log")
        ax.grid(True, alpha=0.3, which="both")
        ax.set_title(
            title
            or f"learning-rate schedule{'s' if len(schedules) > 1 else ''} over {total_steps:,} "
            + ("step" if total_steps == 1 else "steps")
        )
        ax.legend(fontsize=8, loc="best")  # where it covers the fewest points of the curves
        if out is not None:
            _save(ax.figure, out)
    return fig or ax.figure


def _save(fig: Any, out: str | Path) -> None:
    p = Path(out)
    if p.suffix.lower() not in (".png", ".svg", ".pdf"):
        raise ValueError(f"out: expected a .png, .svg or .pdf file name, got {str(out)!r}")
    from ._paths import save_figure

    save_figure(fig, p, dpi=130, flag="out")


#: the strategy gallery: (panel title, [spec, ...], log scale), over 10,000 steps, 100 steps per epoch
GALLERY: list[tuple[str, list[str], bool]] = [
    (
        "fixed, step and multistep",
        [
            "constant(lr=0.1)",
            "step(lr=0.1, step_size=25ep, gamma=0.5)",
            "multistep(lr=0.1, milestones=[30ep, 60ep, 90ep], gamma=0.1)",
        ],
        True,
    ),
    (
        "exponential and time-based",
        [
            "exponential(lr=0.1, gamma=0.9995)",
            "exp_decay(lr=0.1, k=3e-4)",
            "inverse_time(lr=0.1, k=1e-3)",
            "warmup(4%) >> inverse_sqrt(lr=0.1, timescale=400)",
        ],
        True,
    ),
    (
        "polynomial, linear, cosine",
        ["polynomial(lr=0.1, power=2.0)", "linear(lr=0.1, end_lr=0)", "cosine(lr=0.1, min_lr=1e-3)"],
        False,
    ),
    (
        "cosine with warm restarts",
        [
            "cosine_restarts(lr=0.1, period=10ep, mult=2, min_lr=1e-3)",
            "cosine_restarts(lr=0.1, period=20ep, decay=0.6)",
        ],
        False,
    ),
    (
        "cyclical LR",
        [
            "cyclic(lr=0.01, max_lr=0.1, step_size_up=10ep, mode=triangular)",
            "cyclic(lr=0.01, max_lr=0.1, step_size_up=10ep, mode=triangular2)",
            "cyclic(lr=0.01, max_lr=0.1, step_size_up=10ep, mode=exp_range, gamma=0.9998)",
            "cyclic(lr=0.01, max_lr=0.1, step_size_up=10ep, mode=sine)",
        ],
        False,
    ),
    ("one-cycle", ["one_cycle(max_lr=0.1)", "one_cycle(max_lr=0.1, anneal=linear, three_phase=true)"], True),
    (
        "warmup in front of any decay",
        [
            "warmup(10%) >> cosine(lr=0.1)",
            "warmup(10%, mode=exponential) >> linear(lr=0.1)",
            "warmup(5%) >> step(lr=0.1, step_size=30ep, gamma=0.3)",
        ],
        False,
    ),
    (
        "warmup-stable-decay",
        [
            "wsd(lr=0.1, warmup=5%, decay=20%, cooldown=linear)",
            "wsd(lr=0.1, warmup=5%, decay=20%, cooldown=cosine)",
            "wsd(lr=0.1, warmup=5%, decay=20%, cooldown=1-sqrt)",
        ],
        False,
    ),
    (
        "recipes: ResNet and BERT fine-tuning",
        [
            "multistep(lr=0.1, milestones=[30%, 60%, 90%], gamma=0.1)",
            "warmup(10%, start=0) >> linear(lr=5e-5, end_lr=0)",
        ],
        True,
    ),
]


def gallery(out: str | Path, total_steps: int = 10_000, steps_per_epoch: float = 100) -> Path:
    """Every strategy on one page (a 3x3 grid), saved to ``out``."""
    fig = new_figure(figsize=(18, 15), layout="constrained")
    axes = fig.subplots(3, 3)
    for ax, (title, specs, log) in zip(axes.flat, GALLERY):
        try:
            plot_schedules(specs, total_steps, log=log, steps_per_epoch=steps_per_epoch, title=title, ax=ax)
        except ValueError as exc:  # too few steps for a panel's schedule (a one-cycle needs 4)
            raise ValueError(
                f"gallery: the {title!r} panel cannot be drawn over {total_steps:,} steps: {exc}"
            ) from None
        # below the axes, outside them: a legend inside covers some panel's curves (the cyclical ones fill it)
        ax.legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.13), ncols=1, frameon=False)
    fig.suptitle(
        f"lrkit: every learning-rate strategy over {total_steps:,} steps ({steps_per_epoch:g} steps/epoch)",
        fontsize=15,
    )
    p = Path(out)
    _save(fig, p)
    return p
