"""Score stored finder runs on the stored LR grid: per task x rule, leave-one-task-out, calibration, compute.

    python bench/results/finder_report.py [bench/results/finder_runs_v2.json]

Scores: the grid's 3-seed mean metric interpolated on log(LR) at the finder's LR, divided by the grid's
best mean (0 outside the grid); per task the MIN over the 3 finder seeds.
"""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from finder_tasks import FINDER_FILE, FINDER_SEEDS, _summary, grid_score, load_grid


def main(path: Path) -> None:
    grid = load_grid()
    runs = json.loads(path.read_text())
    names = [n for n in grid if all(f"{n}|{s}" in runs for s in FINDER_SEEDS)]
    print(f"runs: {path.name}")
    for n in names:
        _summary(n, grid[n])
    rules = list(next(iter(runs.values()))["rules"])
    S = {
        n: {r: [grid_score(grid[n], runs[f"{n}|{s}"]["rules"][r]) for s in FINDER_SEEDS] for r in rules}
        for n in names
    }
    print("\nper task x rule: min over 3 finder seeds (rules applied to the final curves of each run)")
    print(f"{'task':24}" + "".join(f"{r:>11}" for r in rules))
    for n in names:
        print(f"{n:24}" + "".join(f"{min(S[n][r]):11.3f}" for r in rules))
    print(f"{'mean':24}" + "".join(f"{np.mean([min(S[n][r]) for n in names]):11.3f}" for r in rules))
    print(f"{'tasks >= 0.98':24}" + "".join(f"{sum(min(S[n][r]) >= 0.98 for n in names):11d}" for r in rules))

    print("\nLOO: the rule chosen on the other tasks (most tasks >= 0.98, then mean), scored on this one")
    hits = 0
    for n in names:
        others = [m for m in names if m != n]

        def key(r: str, others: list[str] = others) -> tuple[int, float]:
            mins = [min(S[m][r]) for m in others]
            return sum(v >= 0.98 for v in mins), float(np.mean(mins))

        best = max(rules, key=key)
        v = min(S[n][best])
        hits += v >= 0.98
        print(f"  {n:24} rule {best:11} LOO score {v:.3f}")
    print(f"  tasks >= 0.98 (LOO): {hits} of {len(names)}")

    print("\nshipped default (rule lrkit = lrkit/10): the result's candidate, T/U = trusted or not")
    print(f"  {'task':24} {'seed 0':>14} {'seed 1':>14} {'seed 2':>14} {'min':>7}  first+extra/budget steps")
    cell: dict[tuple[str, bool], int] = {}
    shipped_hits = 0
    for n in names:
        cols, vals, cost = [], [], []
        for s in FINDER_SEEDS:
            r = runs[f"{n}|{s}"]
            sc = grid_score(grid[n], r["candidate"]) if r["candidate"] is not None else 0.0
            if not (isinstance(sc, float) and math.isfinite(sc)):
                sc = 0.0
            mark = "T" if r["trusted"] else "U"
            cols.append(f"{mark} {sc:.3f}")
            vals.append(sc if r["trusted"] else 0.0)
            k = ("trusted" if r["trusted"] else "untrusted", sc >= 0.98)
            cell[k] = cell.get(k, 0) + 1
            first = r.get("first_steps", r["steps"])
            cost.append(f"{first}+{r['steps'] - first}/{r['budget']}")
        shipped_hits += min(vals) >= 0.98
        print(f"  {n:24} " + " ".join(f"{c:>14}" for c in cols) + f" {min(vals):7.3f}  " + ", ".join(cost))
    print(f"  tasks whose 3 seeds give a trusted LR scoring >= 0.98: {shipped_hits} of {len(names)}")
    print("  (T/U: trusted or not; the score is that of the candidate LR, trusted or not; 'min' counts an")
    print("   untrusted seed as 0 since it hands out no LR)")

    print("\ncalibration over tasks x seeds (candidate LR scored whether trusted or not)")
    print(f"  {'':10} {'>= 0.98':>8} {'0.95-0.98':>10} {'< 0.95':>8}")
    for t in ("trusted", "untrusted"):
        sc = []
        for n in names:
            for s in FINDER_SEEDS:
                r = runs[f"{n}|{s}"]
                if r["trusted"] == (t == "trusted"):
                    sc.append(grid_score(grid[n], r["candidate"]) if r["candidate"] is not None else 0.0)
        a = sum(v >= 0.98 for v in sc)
        b = sum(0.95 <= v < 0.98 for v in sc)
        c = sum(v < 0.95 for v in sc)
        print(f"  {t:10} {a:8d} {b:10d} {c:8d}")

    verdict_loo(grid, runs, names)


def verdict_loo(grid: dict[str, Any], runs: dict[str, Any], names: list[str]) -> None:
    """The trust thresholds (noise ratio, flat drop) chosen leave-one-task-out on the stored curves.

    The verdict of each run is recomputed from its stored curves (the first test where no retry ran)
    for each pair of thresholds; a pair's errors on a task are its trusted runs scoring < 0.95 plus
    its untrusted runs scoring >= 0.98. The pair with the fewest errors on the other tasks (ties: the
    shipped one, then the first) is scored on the held-out task.
    """
    from lrkit.finder import result as R
    from lrkit.finder.core import ema_debiased

    pairs = [(nr, fd) for nr in (2.0, 3.0, 4.0, 6.0) for fd in (0.005, 0.01, 0.02)]
    shipped = (R.NOISE_RATIO, R.FLAT_DROP)
    errors: dict[tuple[float, float], dict[str, int]] = {}
    saved = shipped
    try:
        for nr, fd in pairs:
            R.NOISE_RATIO, R.FLAT_DROP = nr, fd
            errors[(nr, fd)] = {}
            for n in names:
                e = 0
                for s in FINDER_SEEDS:
                    r = runs[f"{n}|{s}"]
                    curves = [
                        R.Curve(
                            np.asarray(c["lrs"]),
                            np.asarray(c["losses"]),
                            ema_debiased(c["losses"], 0.9),
                            c["stopped_at"],
                        )
                        for c in r["curves"]
                    ]
                    res = R.FinderResult.from_curves(curves)
                    sc = grid_score(grid[n], res.candidate) if math.isfinite(res.candidate) else 0.0
                    e += int(res.trusted and sc < 0.95) + int(not res.trusted and sc >= 0.98)
                errors[(nr, fd)][n] = e
    finally:
        R.NOISE_RATIO, R.FLAT_DROP = saved
    print("\nverdict thresholds (NOISE_RATIO, FLAT_DROP) by leave-one-task-out on the stored curves")
    print("  errors per pair over all tasks: " + ", ".join(f"{p}: {sum(errors[p].values())}" for p in pairs))
    total = 0
    for n in names:
        others = [m for m in names if m != n]
        best = min(pairs, key=lambda p: (sum(errors[p][m] for m in others), p != shipped))
        total += errors[best][n]
        print(f"  {n:24} chosen {best}: {errors[best][n]} errors of 3 on this task")
    print(f"  LOO errors: {total} of {3 * len(names)} runs (shipped {shipped})")


def auto_report(path: Path) -> None:
    """lrkit.auto vs the best constant LR of the grid vs Schedule-Free AdamW / Prodigy at defaults."""
    from finder_tasks import AUTO_METHODS, SEEDS, grid_means

    grid = load_grid()
    runs = json.loads(path.read_text())
    print(f"\nauto benchmark ({path.name}): mean metric over seeds 0-2 / best constant LR of the grid")
    head = f"  {'task':24} {'grid best':>10} {'auto':>7} {'sf-adamw':>9} {'prodigy':>8} {'compute':>8}"
    print(head + "  auto notes")
    for n, entry in grid.items():
        if not all(f"{n}|{s}|{m}" in runs for s in SEEDS for m in AUTO_METHODS):
            continue
        _, means = grid_means(entry)
        hib = entry["higher_is_better"]
        best = max(means) if hib else min(means)
        cols = []
        for m in AUTO_METHODS:
            vals = [runs[f"{n}|{s}|{m}"]["metric"] for s in SEEDS]
            if any(v is None for v in vals):
                cols.append(f"{sum(v is None for v in vals)}x none")
                continue
            mean = float(np.mean(vals))
            cols.append(f"{(mean / best if hib else best / mean):.3f}")
        auto = [runs[f"{n}|{s}|auto"] for s in SEEDS]
        comp = [a["compute"] for a in auto if a.get("compute") is not None]
        notes = sorted({a["summary"].split(":")[0] for a in auto if not a.get("compute")})
        events = sum(a.get("events", 0) or 0 for a in auto)
        print(
            f"  {n:24} {best:10.4f} {cols[0]:>7} {cols[1]:>9} {cols[2]:>8} "
            f"{(f'{np.mean(comp):.2f}x' if comp else '-'):>8}  "
            + (f"{events} guard rollbacks " if events else "")
            + "; ".join(notes)
        )
    print("  (compute: (finder optimizer steps + training steps) / training steps; 'none': no suggestion)")


def peak_report(path: Path) -> None:
    """auto's schedule at c x the finder's LR (no guard): per task and factor, and c chosen LOO."""
    from finder_tasks import PEAK_FACTORS, SEEDS, grid_means

    grid = load_grid()
    runs = json.loads(path.read_text())
    print(f"\nauto's schedule with peak = c x the finder's LR ({path.name}; no guard; '*': untrusted LR)")
    print(f"  {'task':24}" + "".join(f"{'c=' + format(c, 'g'):>8}" for c in PEAK_FACTORS))
    R: dict[str, dict[float, float]] = {}
    for n, entry in grid.items():
        if not all(f"{n}|{s}|{c:g}" in runs for s in SEEDS for c in PEAK_FACTORS):
            continue
        _, means = grid_means(entry)
        hib = entry["higher_is_better"]
        best = max(means) if hib else min(means)
        trusted = all(runs[f"{n}|{s}|1"]["trusted"] for s in SEEDS)
        R[n] = {}
        for c in PEAK_FACTORS:
            mean = float(np.mean([runs[f"{n}|{s}|{c:g}"]["metric"] for s in SEEDS]))
            R[n][c] = mean / best if hib else best / mean
        mark = "" if trusted else " *"
        print(f"  {n + mark:24}" + "".join(f"{R[n][c]:8.3f}" for c in PEAK_FACTORS))
    print("  LOO: c with the most tasks >= 0.99 on the other tasks (then the mean), scored on this one")
    hits = 0
    for n in R:
        others = [m for m in R if m != n]
        c = max(
            PEAK_FACTORS,
            key=lambda c: (sum(R[m][c] >= 0.99 for m in others), np.mean([R[m][c] for m in others])),
        )
        hits += R[n][c] >= 0.99
        print(f"    {n:24} c={c:g}: {R[n][c]:.3f}")
    print(f"  tasks >= 0.99 (LOO): {hits} of {len(R)}")


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else FINDER_FILE)
    auto_file = Path(sys.argv[2]) if len(sys.argv) > 2 else Path(__file__).with_name("auto_runs.json")
    if auto_file.exists():
        auto_report(auto_file)
    peak_file = Path(__file__).with_name("auto_peak.json")
    if peak_file.exists():
        peak_report(peak_file)
