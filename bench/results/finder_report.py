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


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else FINDER_FILE)
