"""Every figure of the guide, made from lrkit itself: ``python docs/make_figures.py`` (``make docs`` runs it).

Writes ``docs/figures/*.png`` (one or more per page) and ``docs/gallery.png`` (the README's picture).
Strategy figures have two panels: the learning rate of each schedule, and the training loss it gives on
the built-in ``digits-mlp-sgd`` task (scikit-learn digits, MLP, SGD with momentum 0.9, 10 epochs of 45
steps, seed 0); the adaptive page's is an LR sweep of six optimizers (132 short runs). About two minutes
on one CPU core, most of it the sweep.

    python docs/make_figures.py [--out docs] [--only NAME ...]
"""

from __future__ import annotations

import argparse
import functools
import itertools
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

import lrkit
from lrkit.plot import gallery, plot_schedules, pyplot

TASK = "digits-mlp-sgd"
EPOCHS = 10
STEPS_PER_EPOCH = 45  # 1437 training images in batches of 32
TOTAL = EPOCHS * STEPS_PER_EPOCH
PEAK = 0.046  # what `lrkit find --task digits-mlp-sgd` suggests
DPI = 100


def _ema(x: Sequence[float], beta: float = 0.9) -> np.ndarray:
    out, m = [], 0.0
    for i, v in enumerate(x, 1):
        m = beta * m + (1 - beta) * v
        out.append(m / (1 - beta**i))
    return np.asarray(out)


def _train(spec: str, optimizer: str | None = None) -> tuple[list[float], float, bool]:
    """Training losses, final validation accuracy and whether the run diverged, for one schedule."""
    import torch

    torch.set_num_threads(1)
    from lrkit.tasks import get_task

    task = get_task(TASK)
    sched = lrkit.load(spec).resolve(total_steps=TOTAL, steps_per_epoch=STEPS_PER_EPOCH)
    run = task.train_run(schedule=lambda step: sched(step), epochs=EPOCHS, seed=0, optimizer=optimizer)
    return run.losses, run.metric, run.diverged


def strategy_figure(
    out: Path,
    title: str,
    specs: Sequence[tuple[str, str] | tuple[str, str, str]],
    *,
    log: bool = True,
) -> Path:
    """Left: each schedule's LR over the run; right: the training loss it gives on digits."""
    plt = pyplot()
    fig, (ax_lr, ax_loss) = plt.subplots(1, 2, figsize=(12, 4.6), constrained_layout=True)
    t = np.arange(TOTAL)
    for i, item in enumerate(specs):
        label, spec = item[0], item[1]
        optimizer = item[2] if len(item) > 2 else None
        color = f"C{i}"
        sched = lrkit.load(spec).resolve(total_steps=TOTAL, steps_per_epoch=STEPS_PER_EPOCH)
        y = sched(t)
        ax_lr.plot(t, np.where(y > 0, y, np.nan) if log else y, color=color, lw=1.8, label=label)
        losses, metric, diverged = _train(spec, optimizer)
        tag = f"diverged at step {len(losses) - 1}" if diverged else f"val acc {metric:.3f}"
        ax_loss.plot(np.arange(len(losses)), _ema(losses), color=color, lw=1.5, label=f"{label} ({tag})")
    fig.suptitle(title, fontsize=13)
    ax_lr.set(xlabel="step (45 steps per epoch)", ylabel="learning rate", title="the schedules")
    if log:
        ax_lr.set_yscale("log")
    ax_loss.set(
        xlabel="step",
        ylabel="training loss (EMA 0.9)",
        yscale="log",
        title=f"training loss on {TASK}, seed 0",
    )
    for ax in (ax_lr, ax_loss):
        ax.grid(True, alpha=0.3, which="both")
        ax.legend(fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.14), frameon=False)
    return _save(fig, out)


def _save(fig: Any, out: Path) -> Path:
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=DPI)
    pyplot().close(fig)
    return out


P = f"{PEAK:g}"

STRATEGIES: dict[str, tuple[str, list[Any], bool]] = {
    "fixed": (
        "fixed LR",
        [
            ("constant 0.002 (too small)", "constant(0.002)"),
            (f"constant {P} (the finder's)", f"constant({P})"),
            ("constant 0.5 (too large)", "constant(0.5)"),
        ],
        True,
    ),
    "step-decay": (
        "step decay",
        [
            (f"constant {P}", f"constant({P})"),
            ("step: x0.3 every 3 epochs", f"step(lr={P}, step_size=3ep, gamma=0.3)"),
            ("multistep: x0.1 at 50% and 75%", f"multistep(lr={P}, milestones=[50%, 75%], gamma=0.1)"),
        ],
        True,
    ),
    "exponential": (
        "exponential and time-based",
        [
            ("exponential gamma=0.995", f"exponential(lr={P}, gamma=0.995)"),
            ("exp_decay k=0.005", f"exp_decay(lr={P}, k=0.005)"),
            ("time-based k=0.02", f"inverse_time(lr={P}, k=0.02)"),
            ("warmup + inverse sqrt", f"warmup(5%) >> inverse_sqrt(lr={P}, timescale=5%)"),
        ],
        True,
    ),
    "cosine": (
        "polynomial, linear, cosine",
        [
            ("polynomial power=2", f"polynomial(lr={P}, power=2)"),
            ("linear to 0", f"linear(lr={P}, end_lr=0)"),
            ("cosine", f"cosine(lr={P}, min_lr={PEAK / 100:g})"),
            ("cosine restarts 1ep x2", f"cosine_restarts(lr={P}, period=1ep, mult=2, min_lr={PEAK / 100:g})"),
        ],
        False,
    ),
    "cyclical": (
        "cyclical LR",
        [
            ("triangular", f"cyclic(lr={PEAK / 10:g}, max_lr={P}, step_size_up=1ep, mode=triangular)"),
            ("triangular2", f"cyclic(lr={PEAK / 10:g}, max_lr={P}, step_size_up=1ep, mode=triangular2)"),
            (
                "exp_range gamma=0.998",
                f"cyclic(lr={PEAK / 10:g}, max_lr={P}, step_size_up=1ep, mode=exp_range, gamma=0.998)",
            ),
            ("sine", f"cyclic(lr={PEAK / 10:g}, max_lr={P}, step_size_up=1ep, mode=sine)"),
        ],
        False,
    ),
    "warmup": (
        "warmup and warmup-stable-decay",
        [
            ("cosine, no warmup", f"cosine(lr={P})"),
            ("linear warmup 10% + cosine", f"warmup(10%) >> cosine(lr={P})"),
            ("exponential warmup 10% + cosine", f"warmup(10%, mode=exponential) >> cosine(lr={P})"),
            ("WSD, 1-sqrt cool-down", f"wsd(lr={P}, warmup=5%, decay=20%, cooldown=1-sqrt)"),
        ],
        False,
    ),
    "one-cycle": (
        "one-cycle",
        [
            (f"constant {P}", f"constant({P})"),
            ("one-cycle (cos)", f"one_cycle(max_lr={P})"),
            ("one-cycle 3x the peak", f"one_cycle(max_lr={3 * PEAK:g})"),
            ("one-cycle linear, three-phase", f"one_cycle(max_lr={P}, anneal=linear, three_phase=true)"),
        ],
        True,
    ),
}


#: the adaptive page's optimizers (SGD and momentum for reference), each at ADAPTIVE_LRS
ADAPTIVE = ("sgd", "momentum", "adagrad", "rmsprop", "adam", "adamw")
ADAPTIVE_LRS = tuple(float(f"{10**e:.3g}") for e in np.arange(-5.0, 0.01, 0.5))  # 1e-5 ... 1
ADAPTIVE_SEEDS = (0, 1)


def adaptive_figure(out: Path) -> Path:
    """Each optimizer at 11 constant LRs, 1e-5 to 1 half a decade apart, on digits (10 epochs, seeds 0
    and 1). Left: the final validation accuracy (mean of the seeds) against the LR, the usual LR
    (:data:`lrkit.tasks.DEFAULT_LR`) circled. Right: the training loss at each optimizer's best LR of the
    grid, seed 0. Prints each one's best LR and the LRs within 0.01 of its best accuracy."""
    import torch

    from lrkit.tasks import DEFAULT_LR, get_task

    torch.set_num_threads(1)
    task = get_task(TASK)
    plt = pyplot()
    fig, (ax_acc, ax_loss) = plt.subplots(1, 2, figsize=(12, 4.8), constrained_layout=True)
    lrs = np.asarray(ADAPTIVE_LRS)
    for i, name in enumerate(ADAPTIVE):
        runs = {
            (lr, seed): task.train_run(
                schedule=lambda step, lr=lr: lr, epochs=EPOCHS, seed=seed, optimizer=name
            )
            for lr in ADAPTIVE_LRS
            for seed in ADAPTIVE_SEEDS
        }
        acc = np.array(
            [
                np.mean([np.nan if runs[lr, s].diverged else runs[lr, s].metric for s in ADAPTIVE_SEEDS])
                for lr in ADAPTIVE_LRS
            ]
        )
        best = int(np.nanargmax(acc))
        good = lrs[acc >= acc[best] - 0.01]
        print(
            f"{name:9s} best lr {lrs[best]:g} (val acc {acc[best]:.3f}); within 0.01 of it: "
            f"{good.min():g} to {good.max():g}; at its usual lr {DEFAULT_LR[name]:g}: "
            f"{acc[ADAPTIVE_LRS.index(DEFAULT_LR[name])]:.3f}"
        )
        color, ls = f"C{i}", "--" if name == "adamw" else "-"  # AdamW dashed: it is on Adam's line up to 1e-2
        ax_acc.plot(
            lrs,
            acc,
            marker=".",
            color=color,
            ls=ls,
            lw=1.6,
            label=f"{name} (best {lrs[best]:g}: {acc[best]:.3f})",
        )
        ax_acc.plot(
            DEFAULT_LR[name], acc[ADAPTIVE_LRS.index(DEFAULT_LR[name])], "o", ms=10, mfc="none", color=color
        )
        losses = runs[ADAPTIVE_LRS[best], 0].losses
        ax_loss.plot(
            np.arange(len(losses)), _ema(losses), color=color, ls=ls, lw=1.5, label=f"{name} at {lrs[best]:g}"
        )
    fig.suptitle(
        f"optimizers at constant LRs on {TASK}, {EPOCHS} epochs: how wide is the good range?", fontsize=13
    )
    ax_acc.set(
        xscale="log",
        xlabel="learning rate (constant)",
        ylabel=f"final val accuracy (mean of {len(ADAPTIVE_SEEDS)} seeds)",
        title="accuracy against the LR (circle: the usual LR)",
    )
    ax_loss.set(
        xlabel="step (45 steps per epoch)",
        ylabel="training loss (EMA 0.9)",
        yscale="log",
        title="training loss at each optimizer's best LR, seed 0",
    )
    for ax in (ax_acc, ax_loss):
        ax.grid(True, alpha=0.3, which="both")
        ax.legend(fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.14), frameon=False, ncols=2)
    return _save(fig, out)


def finder_figure(out: Path) -> Path:
    """The LR range test on digits (3 repeats) with the suggestion and the interval."""
    import torch

    from lrkit.tasks import get_task

    torch.set_num_threads(1)
    found = get_task(TASK).find_lr(seed=0, repeats=3)
    ax = found.plot(title=f"LR range test on {TASK}, 3 repeats")
    return _save(ax.figure, out)


def auto_figure(out: Path) -> Path:
    """lrkit.auto on digits: the in-run ramp's curve, the LR at every step and the training loss."""
    import torch

    from lrkit.auto import train_task
    from lrkit.tasks import get_task

    torch.set_num_threads(1)
    torch.manual_seed(0)
    train_task(get_task(TASK).build(0), seed=0, plot=out)
    return out


def plateau_figure(out: Path) -> Path:
    """Reduce-on-plateau on top of a cosine: a validation loss that stalls, and the cuts it causes."""
    from lrkit.control import Plateau

    plt = pyplot()
    epochs, spe = 60, 100
    sched = lrkit.parse("warmup(3ep) >> cosine(lr=0.1, min_lr=1e-3)").resolve(
        total_steps=epochs * spe, steps_per_epoch=spe
    )
    rng = np.random.default_rng(0)
    plateau = Plateau(mode="min", factor=0.5, patience=3)
    cut, level, val, mult = 1.0, 1.0, [], []
    for e in range(epochs):
        # a synthetic validation loss: falls for 12 epochs, then stalls; each cut buys a small drop
        level *= 0.9 if e < 12 else 1.0
        v = level + 0.01 * rng.standard_normal()
        val.append(v)
        if plateau.step(v):
            cut *= plateau.factor
            level *= 0.93
        mult.append(cut)
    steps = np.arange(epochs * spe)
    base = sched(steps)
    with_cuts = base * np.repeat(np.concatenate([[1.0], mult[:-1]]), spe)
    fig, (ax_m, ax_lr) = plt.subplots(1, 2, figsize=(12, 4.4), constrained_layout=True)
    ax_m.plot(np.arange(1, epochs + 1), val, marker=".", color="C0")
    for e, (a, b) in enumerate(itertools.pairwise(mult), 2):
        if b < a:
            ax_m.axvline(e, color="C3", ls=":", lw=1)
    ax_m.set(
        xlabel="epoch",
        ylabel="validation loss (synthetic)",
        title="the metric Plateau watches (dotted: a cut)",
    )
    ax_lr.plot(steps / spe, base, color="C1", lw=1.5, label="warmup(3ep) >> cosine(lr=0.1, min_lr=1e-3)")
    ax_lr.plot(steps / spe, with_cuts, color="C3", lw=1.8, label="with Plateau(factor=0.5, patience=3)")
    ax_lr.set(
        xlabel="epoch", ylabel="learning rate", yscale="log", title="plateau cuts multiply the schedule"
    )
    for ax in (ax_m, ax_lr):
        ax.grid(True, alpha=0.3, which="both")
    ax_lr.legend(fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.14), frameon=False)
    return _save(fig, out)


def recipes_figure(out: Path) -> Path:
    """The recipes of ``lrkit recipes`` over 100 epochs of 100 steps, each divided by its own peak."""
    from lrkit.recipes import RECIPES

    plt = pyplot()
    fig, ax = plt.subplots(figsize=(11, 5.2), constrained_layout=True)
    total, spe = 10_000, 100
    t = np.arange(total + 1)
    for name, recipe in RECIPES.items():
        s = recipe.build().resolve(total_steps=total, steps_per_epoch=spe)
        y = s(t)
        ax.plot(t / spe, np.where(y > 0, y / y.max(), np.nan), lw=1.6, label=f"{name}: {recipe.summary}")
    ax.set(
        xlabel="epoch (100 steps per epoch)",
        ylabel="learning rate / its peak",
        yscale="log",
        ylim=(1e-4, 2),
        title="lrkit recipes over 100 epochs, each relative to its own peak",
    )
    ax.grid(True, alpha=0.3, which="both")
    ax.legend(fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.13), frameon=False, ncols=2)
    return _save(fig, out)


def scaling_figure(out: Path) -> Path:
    """lrkit.scaling.scale_lr: the linear rule (SGD) and the square-root rule (Adam) against the batch."""
    from lrkit.scaling import scale_lr

    plt = pyplot()
    batches = [2**k for k in range(5, 15)]
    fig, ax = plt.subplots(figsize=(9, 4.8), constrained_layout=True)
    lin = [scale_lr(0.1, base_batch=256, batch=b).lr for b in batches]
    sq = [scale_lr(1e-3, base_batch=256, batch=b, optimizer="adam").lr for b in batches]
    ax.plot(batches, np.asarray(lin) / 0.1, marker="o", label="linear rule (SGD): 0.1 at 256")
    ax.plot(batches, np.asarray(sq) / 1e-3, marker="s", label="square-root rule (Adam): 1e-3 at 256")
    # scale_lr advises Goyal et al.'s 5-epoch warmup whenever the LR grows: every batch above 256
    assert all((scale_lr(0.1, base_batch=256, batch=b).warmup_epochs > 0) == (b > 256) for b in batches)
    ax.axvspan(256, max(batches), color="C2", alpha=0.08, label="warmup advised (any batch above 256)")
    ax.axvline(8192, color="C3", ls=":", label="~8k: the linear rule stops holding (Goyal et al.)")
    ax.set(
        xscale="log",
        yscale="log",
        xlabel="batch size",
        ylabel="learning rate / its value at batch 256",
        title="batch-size scaling with lrkit.scaling.scale_lr",
    )
    ax.set_xticks(batches, [str(b) for b in batches])
    ax.grid(True, alpha=0.3, which="both")
    ax.legend(fontsize=8, loc="upper left")
    return _save(fig, out)


def quick_figure(out: Path) -> Path:
    """The index page's picture: one warmup + cosine over 1,000 steps."""
    fig = plot_schedules(
        ["warmup(5%) >> cosine(lr=3e-4, min_lr=3e-5)", "one_cycle(max_lr=3e-4)"],
        1000,
        title="warmup(5%) >> cosine(lr=3e-4, min_lr=3e-5) and one_cycle(max_lr=3e-4), 1,000 steps",
    )
    fig.set_size_inches(9, 4)
    return _save(fig, out)


def all_figures(docs: Path) -> dict[str, Callable[[], Path]]:
    figs = docs / "figures"
    jobs: dict[str, Callable[[], Path]] = {
        name: functools.partial(strategy_figure, figs / f"{name}.png", title, specs, log=log)
        for name, (title, specs, log) in STRATEGIES.items()
    }
    jobs["adaptive"] = lambda: adaptive_figure(figs / "adaptive.png")
    jobs["finder"] = lambda: finder_figure(figs / "finder.png")
    jobs["auto"] = lambda: auto_figure(figs / "auto.png")
    jobs["plateau"] = lambda: plateau_figure(figs / "plateau.png")
    jobs["recipes"] = lambda: recipes_figure(figs / "recipes.png")
    jobs["scaling"] = lambda: scaling_figure(figs / "scaling.png")
    jobs["quick"] = lambda: quick_figure(figs / "quick.png")
    jobs["gallery"] = lambda: gallery(docs / "gallery.png")
    return jobs


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    ap.add_argument("--out", type=Path, default=Path(__file__).resolve().parent, help="the docs folder")
    ap.add_argument("--only", nargs="*", default=None, help="figure names (default: all)")
    args = ap.parse_args(argv)
    jobs = all_figures(args.out)
    names = args.only or list(jobs)
    unknown = [n for n in names if n not in jobs]
    if unknown:
        ap.error(f"--only: unknown figure(s) {', '.join(unknown)}; known: {', '.join(jobs)}")
    for name in names:
        print(f"wrote {jobs[name]()}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
