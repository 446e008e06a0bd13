import sys, json, math
sys.path.insert(0, "bench")
import numpy as np
from finder_tasks import load_grid, grid_score, _summary, FINDER_FILE, FINDER_SEEDS
grid = load_grid(); runs = json.loads(FINDER_FILE.read_text())
names = list(grid)
for n in names: _summary(n, grid[n])
rules = list(next(iter(runs.values()))["rules"])
S = {n: {r: [grid_score(grid[n], runs[f"{n}|{s}"]["rules"][r]) for s in FINDER_SEEDS] for r in rules} for n in names}
print("\nper task x rule: min over 3 finder seeds (score interpolated on the stored grid)")
print(f"{'task':24}" + "".join(f"{r:>12}" for r in rules))
for n in names: print(f"{n:24}" + "".join(f"{min(S[n][r]):12.3f}" for r in rules))
print("\nLOO: rule chosen on the other 9 tasks by the mean of the per-task min over seeds")
loo = {}
for n in names:
    others = [m for m in names if m != n]
    best = max(rules, key=lambda r: np.mean([min(S[m][r]) for m in others]))
    loo[n] = (best, min(S[n][best]))
    print(f"{n:24} rule {best:12} LOO score {loo[n][1]:.3f}")
print("tasks >= 0.98:", sum(v[1] >= 0.98 for v in loo.values()), "of", len(names))
print("\ncalibration (default rule lrkit/10, as shipped; candidate LR scored whether trusted or not)")
cell = {}
for n in names:
    for s in FINDER_SEEDS:
        r = runs[f"{n}|{s}"]; sc = grid_score(grid[n], r["candidate"])
        k = ("trusted" if r["trusted"] else "untrusted", sc >= 0.98)
        cell[k] = cell.get(k, 0) + 1
        print(f"  {n:24} seed {s}: {'T' if r['trusted'] else 'U'} score {sc:.3f} steps {r['steps']}/{r['budget']} "
              f"({r['steps']/r['planned_steps']:.1%} of plan) problems {r['problems']} esc {r['escalation']}")
print(cell)
