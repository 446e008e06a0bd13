"""Benchmark the lab: the demo sweep's wall time with 1 and 2 workers (and the ratio), and, per built-in
task, the best strategy and how the learning-rate-free optimizers (Schedule-Free AdamW, Prodigy, untuned)
compare with the finder's warmup + cosine and with a tuned schedule (metric ratio to the best, 3 seeds).

    python bench/lab.py                    # the sweep timing (a few minutes on 2 cores)
    python bench/lab.py --compare --trials 12 --tasks digits-mlp-sgd mnist1d-cnn

Each sweep runs into a fresh database, so nothing is skipped. The ratio is measured in one run, on the
same machine; a 2-core machine can at best reach 0.5.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")


def sweep(workers: int, quick: bool, task: str | None = None) -> float:
    """Wall time of the demo's sweep (15 strategies x 3 seeds) on ``task`` (default: the demo's)."""
    from lrkit.demo import TASK, demo_strategies
    from lrkit.lab.runner import Strategy, run_lab
    from lrkit.tasks import get_task

    task = task or TASK
    peak = 0.05 if quick else get_task(task).find_lr(seed=0, repeats=3).suggestion or 0.05
    strategies = [Strategy(label, spec, opt) for label, spec, opt in demo_strategies(peak)]
    seeds = [0] if quick else [0, 1, 2]
    with tempfile.TemporaryDirectory() as d:
        t0 = time.perf_counter()
        run_lab(
            task,
            strategies,
            seeds=seeds,
            epochs=4 if quick else None,
            store=str(Path(d) / "lab.db"),
            workers=workers,
        )
        return time.perf_counter() - t0


def compare(tasks: list[str], trials: int, seeds: list[int]) -> None:
    from lrkit.lab.runner import Strategy, run_lab
    from lrkit.tasks import get_task

    print(f"{'task':<20} {'strategy':<34} {'mean':>8} {'ratio':>7}")
    for name in tasks:
        task = get_task(name)
        found = task.find_lr(seed=0, repeats=3)
        peak = found.suggestion
        strategies = []
        if peak is not None:
            strategies.append(Strategy("finder: warmup + cosine", f"warmup(5%) >> cosine(lr={peak:.3g})"))
        strategies += [
            Strategy("Schedule-Free AdamW (untuned)", "constant(0.0025)", "schedulefree_adamw"),
            Strategy("Prodigy (untuned)", "constant(1.0)", "prodigy"),
        ]
        if trials:
            from lrkit.tune import tune

            with tempfile.TemporaryDirectory() as d:
                tuned = tune(name, trials=trials, storage=f"sqlite:///{d}/tune.db", seed=0)
            strategies.append(Strategy("tuned", tuned.best_spec))
        with tempfile.TemporaryDirectory() as d:
            res = run_lab(name, strategies, seeds=seeds, store=str(Path(d) / "lab.db"), workers=2)
        means = {}
        for label in res.labels():
            vals = [r.final_metric if r.final_metric is not None else 0.0 for r in res.by_label(label)]
            means[label] = statistics.fmean(vals)
        best = max(means.values()) if res.higher_is_better else min(means.values())
        for label, m in means.items():
            ratio = m / best if res.higher_is_better else best / m
            print(f"{name:<20} {label:<34} {m:8.4f} {ratio:7.3f}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="1 seed, 4 epochs, no finder")
    ap.add_argument("--compare", action="store_true", help="the per-task comparison instead of the timing")
    ap.add_argument("--tasks", nargs="+", default=["digits-mlp-sgd", "digits-mlp-adam", "mnist1d-cnn"])
    ap.add_argument(
        "--heavy", action="store_true", help="also time the sweep on mnist1d-cnn (more work per run)"
    )
    ap.add_argument("--trials", type=int, default=12, help="tuning trials per task (0: no tuning)")
    args = ap.parse_args()
    if args.compare:
        compare(args.tasks, args.trials, [0, 1, 2])
        return
    one = sweep(1, args.quick)
    two = sweep(2, args.quick)
    print(f"demo sweep: 1 worker {one:.1f} s, 2 workers {two:.1f} s, ratio {two / one:.2f} (target <= 0.55)")
    if args.heavy:
        one = sweep(1, True, "mnist1d-cnn")
        two = sweep(2, True, "mnist1d-cnn")
        print(
            f"mnist1d-cnn sweep (15 strategies, 4 epochs): 1 worker {one:.1f} s, 2 workers {two:.1f} s, "
            f"ratio {two / one:.2f}"
        )


if __name__ == "__main__":
    main()
