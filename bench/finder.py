"""Is the LR finder's suggestion good? Grid search vs. each rule's suggestion, on real tasks.

For each task (see :mod:`lrkit.tasks`):

1. grid-search the constant LR on a log grid (3 points per decade, 1e-4 .. 1: 13 points) with 3 seeds
   and the task's fixed epoch budget; the best grid LR is the one with the best mean final validation
   metric;
2. run lrkit's finder once with ``repeats=3`` (seeds 0, 1, 2) and ``num_steps = min(100, steps per
   epoch - 1)``, so each repeat costs less than one epoch, and take every rule's median suggestion;
3. run torch-lr-finder (its defaults: 100 iterations, 1e-7 .. 10, steepest gradient with
   skip_start=10, skip_end=5) once per seed, as a user would;
4. train at each suggestion with the same 3 seeds (torch-lr-finder: each seed at its own suggestion)
   and report ``metric(suggestion) / metric(best grid LR)`` (means over seeds);
5. with ``--schedules``, also train warmup (5%) + cosine from ``peak_lr`` and one-cycle at ``max_lr``.

Usage::

    python bench/finder.py                     # all tasks, a few minutes per task on 2 CPU cores
    python bench/finder.py --quick             # digits only, 2 seeds, coarse grid: a smoke test
    python bench/finder.py --tasks mnist1d-cnn --jobs 2 --cache /tmp/grid.json

``--cache`` stores every training run (task, epochs, LR, seed -> metric) so reruns skip finished runs.
``--dump DIR`` writes each task's finder curves (``.npz``) and plot (``.png``).

Last full run (2 CPU cores, torch 2.13, ``--schedules``), metric(suggestion) / metric(best grid LR)::

    task                best LR  best metric  lrkit  steepest  min/10  valley  torch-lr-finder
    digits-mlp-sgd       0.0464       0.9676  1.003     0.105   1.003   0.981            0.209
    digits-mlp-adam     0.00464       0.9620  1.002     0.988   1.002   0.996            0.996
    mnist1d-cnn          0.0464       0.9477  0.993     0.973   0.993   0.948            0.987
    tinylm-transformer     0.01       0.0894  1.007     0.985   1.000   0.774            0.944

lrkit's suggestions: 0.117, 0.00381, 0.0488, 0.00873 at 0.98-0.99 epochs per repeat (3 repeats).
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import math
import os
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from lrkit.finder import FinderResult
from lrkit.tasks import TASKS, get_task

RULE_COLUMNS = ("lrkit", "steepest", "minimum", "valley")


def _train(job: tuple[str, float, int, int] | tuple[str, float, int, int, str]) -> float:
    """Train one run: constant LR, or (5th field) "cosine"/"one_cycle" with that LR as the peak."""
    import torch

    torch.set_num_threads(1)
    name, lr, seed, epochs = job[:4]
    task = get_task(name)
    if len(job) == 4:
        return task.train(lr, seed=seed, epochs=epochs)
    from lrkit.schedules import Cosine, OneCycle, Warmup

    total = epochs * task.build(seed).epoch_steps
    kind = job[4]
    sched = Warmup("5%") >> Cosine(lr=lr, min_lr=lr / 100) if kind == "cosine" else OneCycle(max_lr=lr)
    resolved = sched.resolve(total_steps=total)
    return task.train(schedule=lambda step: float(resolved(step)), seed=seed, epochs=epochs)


class Runs:
    """Training runs, cached on disk by (task, epochs, lr, seed)."""

    def __init__(self, path: Path | None, jobs: int) -> None:
        self.path = path
        self.jobs = jobs
        self.data: dict[str, float] = {}
        if path is not None and path.exists():
            self.data = json.loads(path.read_text())

    @staticmethod
    def key(job: tuple[Any, ...]) -> str:
        name, lr, seed, epochs = job[:4]
        kind = f"|{job[4]}" if len(job) > 4 else ""
        return f"{name}|{epochs}|{lr:.6e}|{seed}{kind}"

    def metrics(self, wanted: list[Any]) -> list[float]:
        todo = [j for j in dict.fromkeys(wanted) if self.key(j) not in self.data]
        if todo:
            if self.jobs > 1:
                with ProcessPoolExecutor(self.jobs) as pool:
                    results = list(pool.map(_train, todo))
            else:
                results = [_train(j) for j in todo]
            for j, m in zip(todo, results, strict=True):
                self.data[self.key(j)] = m
            if self.path is not None:
                self.path.write_text(json.dumps(self.data, indent=0))
        return [self.data[self.key(j)] for j in wanted]


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        yield


def lrkit_find(name: str, repeats: int, num_steps: int | None) -> tuple[FinderResult, float, int]:
    import torch

    torch.set_num_threads(1)
    task = get_task(name)
    parts = task.build(0)
    steps = num_steps if num_steps is not None else min(100, parts.epoch_steps - 1)
    t0 = time.perf_counter()
    res = task.find_lr(seed=0, repeats=repeats, num_steps=steps)
    return res, time.perf_counter() - t0, steps


def tlf_find(name: str, seed: int) -> tuple[float, float]:
    """torch-lr-finder's steepest-gradient suggestion with its defaults, for one seed."""
    import torch
    from torch_lr_finder import LRFinder

    torch.set_num_threads(1)
    parts = get_task(name).build(seed)
    opt = parts.make_optimizer(1e-7)
    t0 = time.perf_counter()
    with _quiet():
        finder = LRFinder(parts.model, opt, parts.loss_fn)
        finder.range_test(parts.train_loader, end_lr=10, num_iter=100)
        import matplotlib

        matplotlib.use("Agg")
        _, lr = finder.plot(suggest_lr=True)
        finder.reset()
    return float(lr), time.perf_counter() - t0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--tasks", default=",".join(TASKS), help="comma-separated task names")
    ap.add_argument("--quick", action="store_true", help="digits only, 2 seeds, 2 points per decade")
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--jobs", type=int, default=min(2, os.cpu_count() or 1))
    ap.add_argument("--cache", type=Path, default=None, help="JSON file caching training runs")
    ap.add_argument("--dump", type=Path, default=None, help="directory for curves (.npz) and plots")
    ap.add_argument("--num-steps", type=int, default=None, help="finder rungs (default min(100, epoch-1))")
    ap.add_argument("--no-tlf", action="store_true", help="skip torch-lr-finder")
    ap.add_argument(
        "--schedules", action="store_true", help="also train warmup+cosine at peak_lr and one-cycle at max_lr"
    )
    args = ap.parse_args(argv)

    names = ["digits-mlp-sgd", "digits-mlp-adam"] if args.quick else args.tasks.split(",")
    for n in names:
        get_task(n)
    seeds = list(range(2 if args.quick else args.seeds))
    per_decade = 2 if args.quick else 3
    grid = [10.0 ** (k / per_decade) for k in range(-4 * per_decade, 1)]
    runs = Runs(args.cache, args.jobs)
    if args.dump:
        args.dump.mkdir(parents=True, exist_ok=True)

    rows = []
    for name in names:
        task = get_task(name)
        t0 = time.perf_counter()
        grid_metrics = runs.metrics([(name, lr, s, task.epochs) for lr in grid for s in seeds])
        grid_time = time.perf_counter() - t0
        means = np.asarray(grid_metrics).reshape(len(grid), len(seeds)).mean(axis=1)
        best_i = int(np.argmax(means))
        best_lr, best = grid[best_i], float(means[best_i])

        res, find_time, steps = lrkit_find(name, len(seeds), args.num_steps)
        if args.dump:
            res.plot(args.dump / f"{name}.png", title=f"{name}: lrkit range test")
            np.savez(
                args.dump / f"{name}.npz",
                **{f"{k}_{i}": getattr(c, k) for i, c in enumerate(res.curves) for k in ("lrs", "losses")},
            )
        sugg = res.suggestions
        ratios: dict[str, float] = {}
        for rule in RULE_COLUMNS:
            ms = runs.metrics([(name, sugg[rule], s, task.epochs) for s in seeds])
            ratios[rule] = float(np.mean(ms)) / best
        tlf_lrs: list[float] = []
        tlf_time = math.nan
        if not args.no_tlf:
            found = [tlf_find(name, s) for s in seeds]
            tlf_lrs = [f[0] for f in found]
            tlf_time = float(np.mean([f[1] for f in found]))
            ms = runs.metrics([(name, lr, s, task.epochs) for s, lr in zip(seeds, tlf_lrs, strict=True)])
            ratios["torch-lr-finder"] = float(np.mean(ms)) / best
        if args.schedules:
            for kind, lr in (("cosine", res.peak_lr), ("one_cycle", res.max_lr)):
                ms = runs.metrics([(name, lr, s, task.epochs, kind) for s in seeds])
                ratios[kind] = float(np.mean(ms)) / best
        rows.append(
            {
                "task": name,
                "best_lr": best_lr,
                "best": best,
                "sugg": sugg,
                "interval": res.interval,
                "trusted": res.trusted,
                "reason": res.reason,
                "tlf": tlf_lrs,
                "ratios": ratios,
                "find_s": find_time / len(seeds),
                "tlf_s": tlf_time,
                "grid_s": grid_time,
                "cost_epochs": steps / task.build(0).epoch_steps,
            }
        )
        print(f"[{name}] done: best {best_lr:.3g} -> {best:.4f}; {res}", file=sys.stderr, flush=True)
        pairs = ", ".join(f"{lr:.2g}:{m:.3f}" for lr, m in zip(grid, means, strict=True))
        print(f"[{name}] grid means: {pairs}", file=sys.stderr, flush=True)

    cols = [*RULE_COLUMNS, "torch-lr-finder"]
    if args.schedules:
        cols += ["cosine", "one_cycle"]
    print()
    print("Suggestions (lrkit rules: median over 3 finder repeats; torch-lr-finder: one per seed)")
    print(f"{'task':20} {'best grid LR':>12} " + " ".join(f"{c:>16}" for c in cols[:5]))
    for r in rows:
        tlf = "/".join(f"{v:.2g}" for v in r["tlf"]) if r["tlf"] else "-"
        vals = [f"{r['sugg'][c]:.3g}" for c in RULE_COLUMNS] + [tlf]
        print(f"{r['task']:20} {r['best_lr']:>12.3g} " + " ".join(f"{v:>16}" for v in vals))
    print()
    print("metric(suggestion) / metric(best grid LR), mean over seeds")
    if args.schedules:
        print("(cosine: warmup 5% + cosine from peak_lr; one_cycle: OneCycle(max_lr); vs best constant LR)")
    print(f"{'task':20} {'best metric':>12} " + " ".join(f"{c:>16}" for c in cols))
    for r in rows:
        vals = [f"{r['ratios'][c]:.3f}" if c in r["ratios"] else "-" for c in cols]
        print(f"{r['task']:20} {r['best']:>12.4f} " + " ".join(f"{v:>16}" for v in vals))
    cols = [c for c in cols if any(c in r["ratios"] for r in rows)]
    means = {c: np.mean([r["ratios"][c] for r in rows if c in r["ratios"]]) for c in cols}
    mins = {c: np.min([r["ratios"][c] for r in rows if c in r["ratios"]]) for c in cols}
    print(f"{'mean':20} {'':>12} " + " ".join(f"{means[c]:>16.3f}" for c in cols))
    print(f"{'worst':20} {'':>12} " + " ".join(f"{mins[c]:>16.3f}" for c in cols))
    print()
    print("Cost: finder rungs per repeat in epochs, seconds per repeat; grid seconds (all runs)")
    for r in rows:
        lo, hi = r["interval"]
        verdict = "trusted" if r["trusted"] else f"NOT trusted ({r['reason']})"
        print(
            f"{r['task']:20} {r['cost_epochs']:.2f} ep, lrkit {r['find_s']:.2f} s/repeat, "
            f"torch-lr-finder {r['tlf_s']:.2f} s, grid {r['grid_s']:.0f} s; "
            f"lrkit interval {lo:.3g}..{hi:.3g}, {verdict}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
