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
from finder_tasks import FINDER_FILE, FINDER_SEEDS, _summary, grid_means, grid_score, load_grid


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

    shipped_and_calibration(grid, runs, names)
    verdict_loo(grid, runs, names)


def shipped_and_calibration(grid: dict[str, Any], runs: dict[str, Any], names: list[str]) -> None:
    """The shipped rule's candidate per task x finder seed (trusted or not), and the calibration table."""
    print("\nshipped default (rule lrkit = lrkit/10): the result's candidate, T/U = trusted or not")
    print(f"  {'task':24} {'seed 0':>14} {'seed 1':>14} {'seed 2':>14} {'min':>7}  first+extra/budget steps")
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


#: (stored method, column label, whether lrkit.auto ran it: its compute is shown)
AUTO_COLUMNS = (
    ("auto", "auto", True),
    ("auto_separate", "separate", True),
    ("schedulefree_adamw", "sf-adamw", False),
    ("prodigy", "prodigy", False),
)
LONG_COLUMNS = (
    ("auto", "in-run", True),
    ("auto_default", "separate", True),
    ("schedulefree_adamw", "sf-adamw", False),
    ("prodigy", "prodigy", False),
)
AUTO_INTRO = (
    "  auto: lrkit.auto's default (search='auto': the in-run ramp on all of these short runs);",
    "  separate: search='separate' (the finder's 3 x 100-rung test, restored, then warmup + schedule)",
)


def auto_report(
    path: Path,
    grid_path: Path | None = None,
    columns: tuple[tuple[str, str, bool], ...] = AUTO_COLUMNS,
    intro: tuple[str, ...] = AUTO_INTRO,
    held_out: bool = True,
) -> None:
    """lrkit.auto vs the best constant LR of the grid vs Schedule-Free AdamW / Prodigy at defaults."""
    from finder_tasks import SEEDS, grid_best

    grid = load_grid(grid_path)
    runs = json.loads(path.read_text())
    print(f"\nauto benchmark ({path.name}): mean metric over seeds 0-2 / best constant LR of the grid")
    if grid_path is not None:
        never = "; tasks never used to choose a rule, threshold or factor" if held_out else ""
        print(f"  (grid: {grid_path.name}{never})")
    for line in intro:
        print(line)
    head = f"  {'task':28} {'grid best':>10}" + "".join(
        f" {label:>9}" + (f" {'compute':>8}" if ran else "") for _, label, ran in columns
    )
    print(head + "  notes")
    for n, entry in grid.items():
        if not all(f"{n}|{s}|{m}" in runs for s in SEEDS for m, _, _ in columns):
            continue
        best, hib = grid_best(entry)
        line = f"  {n:28} {best:10.4f}"
        for m, _, ran in columns:
            vals = [runs[f"{n}|{s}|{m}"]["metric"] for s in SEEDS]
            comp = [runs[f"{n}|{s}|{m}"].get("compute") for s in SEEDS]
            if any(v is None for v in vals):
                cell = f"{sum(v is None for v in vals)}x none"
            else:
                mean = float(np.mean(vals))
                cell = f"{(mean / best if hib else best / mean):.3f}"
            line += f" {cell:>9}"
            if ran:
                line += f" {(f'{max(comp):.2f}x' if all(c is not None for c in comp) else '-'):>8}"
        notes = sorted(
            {
                runs[f"{n}|{s}|{m}"]["summary"].split(":")[0]
                for s in SEEDS
                for m, _, ran in columns
                if ran and not runs[f"{n}|{s}|{m}"].get("compute")
            }
        )
        print(line + "  " + "; ".join(notes))
    print("  (compute: the most over the 3 seeds of (search steps not kept as training + planned steps) /")
    print("   planned steps; 'none': no suggestion, NoSuggestionError)")


def divisor_report(path: Path) -> None:
    """The lrkit rule with a finer set of divisors, on the stored curves: per task (min over finder
    seeds of the median over repeats) and the divisor chosen leave-one-task-out."""
    from lrkit.finder import rules
    from lrkit.finder.core import ema_debiased

    grid = load_grid()
    runs = json.loads(path.read_text())
    divs = (2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 10.0, 12.0, 15.0, 20.0)

    def med(v: list[float]) -> float:
        v = sorted(x for x in v if math.isfinite(x))
        n = len(v)
        return v[n // 2] if n % 2 else math.sqrt(v[n // 2 - 1] * v[n // 2])

    S: dict[str, dict[float, float]] = {}
    for n in grid:
        S[n] = {}
        for d in divs:
            sc = []
            for s in FINDER_SEEDS:
                sug = med(
                    [
                        rules.lrkit_rule(np.asarray(c["lrs"]), ema_debiased(c["losses"], 0.9), divisor=d)
                        for c in runs[f"{n}|{s}"]["curves"]
                    ]
                )
                sc.append(grid_score(grid[n], sug))
            S[n][d] = min(sc)
    print(f"\nthe lrkit rule with finer divisors ({path.name}; min over finder seeds, trusted or not)")
    print(f"  {'task':24}" + "".join(f"{'/' + format(d, 'g'):>7}" for d in divs))
    for n in grid:
        print(f"  {n:24}" + "".join(f"{S[n][d]:7.3f}" for d in divs))
    print(f"  {'tasks >= 0.98':24}" + "".join(f"{sum(S[n][d] >= 0.98 for n in grid):7d}" for d in divs))
    hits = 0
    for n in grid:
        others = [m for m in grid if m != n]
        best = max(
            divs, key=lambda d: (sum(S[m][d] >= 0.98 for m in others), np.mean([S[m][d] for m in others]))
        )
        hits += S[n][best] >= 0.98
        print(f"    {n:24} /{best:g}: {S[n][best]:.3f}")
    print(f"  tasks >= 0.98 (LOO): {hits} of {len(grid)}")


def _loo_099(R: dict[str, dict[str, float]], names: list[str], keys: list[str], label: str) -> None:
    """Print, per task, the setting chosen on the other tasks (most scores >= 0.99, then the mean; a
    task without a score for it counts 0) and its score on this task, then the count >= 0.99."""
    hits = 0
    for n in names:
        others = [m for m in names if m != n]

        def key(k: str, others: list[str] = others) -> tuple[int, float]:
            v = [R.get(m, {}).get(k, 0.0) for m in others]
            return sum(x >= 0.99 for x in v), float(np.mean(v))

        k = max(keys, key=key)
        v = R.get(n, {}).get(k, 0.0)
        hits += v >= 0.99
        print(f"    {n:24} {label}={k}: {v:.3f}")
    print(f"  tasks >= 0.99 (LOO): {hits} of {len(names)}")


def inrun_peak_report(path: Path) -> None:
    """The in-run ramp's peak factor c, chosen leave-one-task-out (a task absent: its ramp untrusted)."""
    from finder_tasks import INRUN_PEAK_FACTORS

    grid = load_grid()
    R = json.loads(path.read_text())
    cs = [f"{c:g}" for c in INRUN_PEAK_FACTORS]
    print(f"\nthe in-run ramp's peak = c x its suggestion, then cosine ({path.name}; score per task)")
    print(f"  {'task':24}" + "".join(f"{'c=' + c:>8}" for c in cs))
    for n in grid:
        row = R.get(n, {})
        print(f"  {n:24}" + "".join(f"{row.get(c, 0.0):8.3f}" for c in cs) + ("" if row else "  (untrusted)"))
    print("  LOO: c with the most tasks >= 0.99 on the other tasks (then the mean), scored on this one")
    _loo_099(R, list(grid), cs, "c")


def inrun_rewarm_report(path: Path) -> None:
    """The in-run ramp's peak factor c and re-warm fraction w, chosen jointly leave-one-task-out."""
    grid = load_grid()
    R = json.loads(path.read_text())
    keys = [k for row in R.values() for k in row if k != "compute"]
    keys = list(dict.fromkeys(keys))
    print("\nthe in-run ramp, then a linear re-warm from peak/10 over w of the steps left, then cosine from")
    print(f"peak = c x the suggestion ({path.name}; score per task, '-': a seed's ramp untrusted)")
    print(f"  {'task':24}" + "".join(f"{k:>8}" for k in keys) + f"{'compute':>9}")
    for n in grid:
        row = R.get(n, {})
        cells = "".join(f"{row[k]:8.3f}" if k in row else f"{'-':>8}" for k in keys)
        print(f"  {n:24}" + cells + (f"{row['compute']:8.3f}x" if row else ""))
    print("  LOO: (c, w) with the most tasks >= 0.99 on the other tasks (then the mean), scored on this one")
    _loo_099(R, list(grid), keys, "c|w")


def inrun_stride_report(path: Path) -> None:
    """The shipped in-run path with a ring snapshot every s rungs."""
    R = json.loads(path.read_text())
    strides = sorted({k for row in R.values() for k in row if not k.startswith("compute")}, key=int)
    print(f"\nthe shipped in-run path with a ring snapshot every s rungs ({path.name}; score, worst compute)")
    print(f"  {'task':24}" + "".join(f"{'s=' + s:>16}" for s in strides))
    for n in load_grid():
        row = R.get(n, {})
        cells = "".join(
            f"{row[s]:8.3f} {row['compute ' + s]:6.3f}x" if s in row else f"{'-':>16}" for s in strides
        )
        print(f"  {n:24}" + cells)


def inrun_kind_report(
    names: tuple[str, ...] = (
        "auto_inrun_kind.json",
        "auto_inrun_keep.json",
        "auto_inrun_wsd_rewarm.json",
        "auto_inrun_reset.json",
        "auto_inrun_reset_cosine.json",
    ),
) -> None:
    """The tail after the in-run ramp's re-warm: cosine or WSD at peak factor c (and WSD with the kept
    rung at K x the suggestion apart from the peak, and with other re-warm fractions), all chosen
    together leave-one-task-out on the public tasks
    (a run over 1.1x the compute counts as a miss); lrkit's built-in tasks (held out) scored with the
    setting chosen on all ten."""
    here = Path(__file__).parent
    R: dict[str, dict[str, float]] = {}
    H: dict[str, dict[str, float]] = {}
    for name in names:
        for store, path in ((R, here / name), (H, here / name.replace("auto_", "builtin_"))):
            if path.exists():
                for task, row in json.loads(path.read_text()).items():
                    store.setdefault(task, {}).update(row)
    if not R:
        return
    keys = list(dict.fromkeys(k for row in R.values() for k in row if not k.startswith("compute")))
    ok = {  # the score, 0 where the run cost more than 1.1x
        t: {k: (v if row.get(f"compute {k}", 1.0) <= 1.1 else 0.0) for k, v in row.items()}
        for t, row in {**R, **{f"builtin/{t}": row for t, row in H.items()}}.items()
    }
    print("\nthe tail after the in-run ramp's 10% re-warm: cosine to 1% or WSD (the peak held, 1-sqrt")
    print("cool-down to 0 over the last 20%) at peak = c x the suggestion; 'keepK': the ramp keeps its")
    print("state at K x the suggestion, the schedule peaks at c x it; 'wW': WSD, the rung kept at 3x, a")
    print("re-warm over the fraction W (auto_inrun_kind.json, auto_inrun_keep.json, auto_inrun_wsd_rewarm")
    print(".json; builtin/*: lrkit's built-in tasks, held out; '-': a seed's ramp untrusted)")
    short = {k: k.replace("cosine", "cos").replace("|keep", "k").replace("|w", "w") for k in keys}
    for title, cell in (
        ("score", lambda r, k: f"{r[k]:7.3f}"),
        ("worst compute", lambda r, k: f"{r['compute ' + k]:7.3f}"),
    ):
        for part in range(0, len(keys), 12):
            chunk = keys[part : part + 12]
            print(f"  {title}")
            print(f"  {'task':26}" + "".join(f"{short[k]:>8}" for k in chunk))
            for t in list(load_grid()) + [f"builtin/{t}" for t in H]:
                row = H.get(t[8:], {}) if t.startswith("builtin/") else R.get(t, {})
                print(f"  {t:26}" + "".join(f" {cell(row, k)}" if k in row else f"{'-':>8}" for k in chunk))
    print(
        "  LOO: the setting with the most other tasks >= 0.99 at <= 1.1x (then the mean), scored on this one"
    )
    _loo_099(ok, list(load_grid()), keys, "kind|c")
    public = list(load_grid())

    def key(k: str) -> tuple[int, float]:
        v = [ok.get(m, {}).get(k, 0.0) for m in public]
        return sum(x >= 0.99 for x in v), float(np.mean(v))

    best = max(keys, key=key)
    print(f"  held out, with {best} (chosen on the {len(public)} public tasks):")
    for t in H:
        v = ok[f"builtin/{t}"].get(best, 0.0)
        print(f"    {t:24} {v:.3f} at {H[t].get('compute ' + best, float('nan')):.3f}x")


def peak_kind_report(files: tuple[str, ...] = ("auto_peak.json", "auto_peak_wsd.json")) -> None:
    """The separate search's schedule and peak factor chosen together, leave-one-task-out: cosine (or
    one-cycle for SGD, auto_peak.json) or WSD (auto_peak_wsd.json) at each c, on the tasks whose LR is
    trusted on every seed."""
    R: dict[str, dict[str, float]] = {}
    trusted: set[str] = set()
    for name in files:
        path = Path(__file__).with_name(name)
        if not path.exists():
            return
        kind = "wsd" if "wsd" in name else "cos"
        scores, ok = _peak_scores(path)
        trusted |= ok
        for n, row in scores.items():
            R.setdefault(n, {}).update({f"{kind}|{c:g}": v for c, v in row.items()})
    keys = list(dict.fromkeys(k for row in R.values() for k in row))
    print("\nthe separate search's schedule (cos: cosine, one-cycle for SGD; wsd) and c chosen together")
    print("  LOO over the tasks whose LR is trusted on every seed, scored on this one")
    _loo_trusted(R, keys, trusted, str)


def sf_peak_report(path: Path) -> None:
    """auto's Schedule-Free peak factor c (in-run search, constant peak), chosen leave-one-task-out on
    the SF tasks that are not held out; the held-out ones scored with the c chosen on all the others."""
    from finder_tasks import SF_HELD_OUT, SF_PEAK_FACTORS

    R = json.loads(path.read_text())
    cs = [f"{c:g}" for c in SF_PEAK_FACTORS]
    print("\nSchedule-Free: auto's in-run path with peak = c x the suggestion, then the constant peak")
    print(f"({path.name}; score per task and worst compute, '-': a seed's ramp untrusted)")
    print(f"  {'task':28}" + "".join(f"{'c=' + c:>16}" for c in cs))
    for n, row in R.items():
        cells = "".join(
            f"{row[c]:8.3f} {row['compute ' + c]:6.3f}x" if c in row else f"{'-':>16}" for c in cs
        )
        print(f"  {n:28}" + cells + ("  (held out)" if n in SF_HELD_OUT else ""))
    names = [n for n in R if n not in SF_HELD_OUT]
    print("  LOO: c with the most tasks >= 0.99 on the other tasks (then the mean), scored on this one")
    _loo_099(R, names, cs, "c")
    for n in SF_HELD_OUT:
        if n in R:
            others = [R[m] for m in names]
            c = max(
                cs,
                key=lambda k: (
                    sum(r.get(k, 0.0) >= 0.99 for r in others),
                    np.mean([r.get(k, 0.0) for r in others]),
                ),
            )
            print(f"  held out: {n} with c={c} (chosen on the {len(names)} others): {R[n].get(c, 0.0):.3f}")


def _peak_scores(path: Path) -> tuple[dict[str, dict[float, float]], set[str]]:
    """From a ``--peak`` file: per task with every run, {c: 3-seed mean metric / grid best}, and the
    tasks whose finder LR is trusted on every seed."""
    from finder_tasks import PEAK_FACTORS, SEEDS, grid_best

    runs = json.loads(path.read_text())
    R: dict[str, dict[float, float]] = {}
    trusted: set[str] = set()
    for n, entry in load_grid().items():
        if not all(f"{n}|{s}|{c:g}" in runs for s in SEEDS for c in PEAK_FACTORS):
            continue
        best, hib = grid_best(entry)
        if all(runs[f"{n}|{s}|1"]["trusted"] for s in SEEDS):
            trusted.add(n)
        R[n] = {}
        for c in PEAK_FACTORS:
            mean = float(np.mean([runs[f"{n}|{s}|{c:g}"]["metric"] for s in SEEDS]))
            R[n][c] = mean / best if hib else best / mean
    return R, trusted


def _loo_trusted(R: dict[str, dict[Any, float]], keys: list[Any], trusted: set[str], label: Any) -> None:
    """Print, per task, the setting with the most other trusted tasks >= 0.99 (then the mean) and its
    score here (``label(setting)`` names it), then the count >= 0.99 among the trusted tasks."""
    hits = 0
    for n in R:
        others = [m for m in R if m != n and m in trusted]

        def key(k: Any, others: list[str] = others) -> tuple[int, float]:
            v = [R[m][k] for m in others]
            return sum(x >= 0.99 for x in v), float(np.mean(v))

        k = max(keys, key=key)
        hits += n in trusted and R[n][k] >= 0.99
        note = "" if n in trusted else "  (untrusted: auto gives no schedule)"
        print(f"    {n:24} {label(k)}: {R[n][k]:.3f}{note}")
    print(f"  tasks >= 0.99 (LOO, trusted): {hits} of {len(R)}")


def peak_report(path: Path) -> None:
    """auto's schedule at c x the finder's LR (no guard): per task and factor, and c chosen LOO."""
    from finder_tasks import PEAK_FACTORS

    R, trusted = _peak_scores(path)
    print(f"\nauto's schedule with peak = c x the finder's LR ({path.name}; no guard; '*': untrusted LR)")
    print(f"  {'task':24}" + "".join(f"{'c=' + format(c, 'g'):>8}" for c in PEAK_FACTORS))
    for n, row in R.items():
        mark = "" if n in trusted else " *"
        print(f"  {n + mark:24}" + "".join(f"{row[c]:8.3f}" for c in PEAK_FACTORS))
    print("  LOO: c with the most tasks >= 0.99 (then the mean) on the other tasks whose LR is trusted on")
    print("  every seed (auto raises on the others, so no schedule is built there), scored on this one")
    _loo_trusted(R, list(PEAK_FACTORS), trusted, lambda c: f"c={c:g}")


def clip_finder_report(path: Path) -> None:
    """The finder on tasks that clip their gradients, stepping as they train (clipped) or not."""
    from finder_tasks import CLIP_GRID_FILE, grid_best

    grid = load_grid(CLIP_GRID_FILE)
    runs = json.loads(path.read_text())
    print(f"\nthe finder on tasks that clip their gradients ({path.name}; grid: {CLIP_GRID_FILE.name}): the")
    print("  range test clipping as the task trains (max_grad_norm, as Task.find_lr and lrkit.auto do) or")
    print("  not; the candidate's score per finder seed (T/U: trusted or not), and its LR")
    print(f"  {'task':28} {'best LR':>8}  {'clipped test':>41}  {'unclipped test':>41}")
    for n, entry in grid.items():
        lrs, means = grid_means(entry)
        best_lr = lrs[means.index(grid_best(entry)[0])]
        cols = []
        for variant in ("clip", "none"):
            cells = []
            for fs in FINDER_SEEDS:
                r = runs.get(f"{n}|{fs}|{variant}")
                if r is None or r["candidate"] is None:
                    cells.append("-")
                    continue
                mark = "T" if r["trusted"] else "U"
                cells.append(f"{mark} {grid_score(entry, r['candidate']):.3f}@{r['candidate']:.2g}")
            cols.append(" ".join(f"{c:>13}" for c in cells))
        print(f"  {n:28} {best_lr:8.3g}  {cols[0]:>41}  {cols[1]:>41}")


def repeats_report() -> None:
    """find_lr's own default was one repeat until 2026-12-06: the same benchmark at repeats=1, before
    (finder_runs_r1.json) and after (finder_runs_r1_v2.json) a retry got at least two repeats."""
    grid = load_grid()
    for name, title in (
        ("finder_runs_r1.json", "repeats=1, a retry of one repeat (before 2026-12-06)"),
        ("finder_runs_r1_v2.json", "repeats=1, every retry with at least 2 repeats (since 2026-12-06)"),
    ):
        path = Path(__file__).with_name(name)
        if not path.exists():
            continue
        runs = json.loads(path.read_text())
        names = [n for n in grid if all(f"{n}|{s}" in runs for s in FINDER_SEEDS)]
        print(f"\nthe finder at {title} ({name}; python bench/finder_tasks.py --finder --repeats 1)")
        shipped_and_calibration(grid, runs, names)


def heldout_finder_report() -> None:
    """The finder's verdict on tasks where no rule or threshold was chosen: lrkit's built-in tasks and
    the four fresh ones (python bench/finder_tasks.py --heldout-finder), each on its own stored grid."""
    from finder_tasks import BUILTIN_FINDER_FILE, BUILTIN_GRID_FILE, FRESH_FINDER_FILE, FRESH_GRID_FILE

    for title, runs_file, grid_file in (
        ("lrkit's 4 built-in tasks", BUILTIN_FINDER_FILE, BUILTIN_GRID_FILE),
        ("the 4 fresh tasks", FRESH_FINDER_FILE, FRESH_GRID_FILE),
    ):
        if not (runs_file.exists() and grid_file.exists()):
            continue
        grid, runs = load_grid(grid_file), json.loads(runs_file.read_text())
        names = [n for n in grid if all(f"{n}|{s}" in runs for s in FINDER_SEEDS)]
        print(f"\nheld-out finder check: {title}, the finder at its defaults ({runs_file.name})")
        shipped_and_calibration(grid, runs, names)


def noise_report(n_seeds: int = 10) -> None:
    """The grids' own seed noise: each grid retrained with seeds 0..n-1 (python bench/finder_tasks.py
    --grid-seeds 10; *_grid10.json, the stored 3-seed runs reused), and the stored finder and auto runs
    scored against it. A 3-seed grid's best point is the largest of 16 noisy means, so it sits above
    the true best wherever the seeds disagree (the winner's curse), and every score is divided by it.
    lrkit.auto's runs are not rescored: they train seeds 0-2, the 3-seed grid's own seeds (a paired
    comparison), and against a grid of other seeds they would not be."""
    from finder_tasks import (
        BUILTIN_FINDER_FILE,
        BUILTIN_GRID_FILE,
        FRESH_FINDER_FILE,
        FRESH_GRID_FILE,
        GRID_FILE,
        grid_best,
    )

    sets = (
        ("the public benchmark", GRID_FILE, Path(__file__).with_name("finder_runs_v2.json")),
        ("the 4 fresh tasks", FRESH_GRID_FILE, FRESH_FINDER_FILE),
        ("lrkit's built-in tasks", BUILTIN_GRID_FILE, BUILTIN_FINDER_FILE),
    )
    for title, three_file, runs_file in sets:
        more_file = three_file.with_name(three_file.stem + f"{n_seeds}.json")
        if not more_file.exists():
            continue
        three, more = load_grid(three_file), load_grid(more_file)
        names = [
            n
            for n, e in more.items()
            if all(f"{lr:.6e}|{s}" in e["runs"] for lr in e["lrs"] for s in range(n_seeds))
        ]
        if not names:
            continue
        print(f"\nthe grid's seed noise: {title}, {n_seeds} training seeds ({more_file.name}) against 3")
        print(
            f"  {'task':28} {'3-seed best LR':>14} {'its 3-seed mean':>15} {f'{n_seeds}-seed mean':>13}"
            f" {f'{n_seeds}-seed best LR':>15} {'3-seed best scored':>18} {'1 seed sd':>9} {'3-seed se':>9}"
        )
        for n in names:
            lrs, m3 = grid_means(three[n])
            _, m10 = grid_means(more[n])
            b3, _ = grid_best(three[n])
            b10, _ = grid_best(more[n])
            i3, i10 = m3.index(b3), m10.index(b10)
            sd = float(np.std([more[n]["runs"][f"{lrs[i10]:.6e}|{s}"] for s in range(n_seeds)], ddof=1))
            print(
                f"  {n:28} {lrs[i3]:14.3g} {b3:15.4f} {m10[i3]:13.4f} {lrs[i10]:15.3g}"
                f" {grid_score(more[n], lrs[i3]):18.3f} {sd / abs(b10):9.3f} {sd / abs(b10) / 3**0.5:9.3f}"
            )
        print(
            f"  ('{n_seeds}-seed mean': the {n_seeds}-seed mean at the 3-seed best LR; '3-seed best scored': "
            f"that LR's score on the {n_seeds}-seed grid;\n   '1 seed sd', '3-seed se': at the {n_seeds}-seed"
            " best LR, relative to its mean)"
        )
        if runs_file.exists():
            runs = json.loads(runs_file.read_text())
            done = [n for n in names if all(f"{n}|{s}" in runs for s in FINDER_SEEDS)]
            if done:
                print(f"\n  the finder's stored runs ({runs_file.name}) scored on the {n_seeds}-seed grid:")
                shipped_and_calibration({n: more[n] for n in done}, runs, done)


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else FINDER_FILE)
    divisor_report(Path(sys.argv[1]) if len(sys.argv) > 1 else FINDER_FILE)
    repeats_report()
    heldout_finder_report()
    auto_file = Path(sys.argv[2]) if len(sys.argv) > 2 else Path(__file__).with_name("auto_runs_v4.json")
    if auto_file.exists():
        auto_report(auto_file)
    for title, auto_name in (
        ("lrkit's 4 built-in tasks", "builtin_auto_v3.json"),
        (
            "Schedule-Free AdamW on four public models and lrkit's tinylm ('sf-adamw': at its default LR\n"
            "0.0025); auto at the general peak factor 3, as shipped (the Schedule-Free sweep at the end\n"
            "found no factor that generalises)",
            "sf_auto.json",
        ),
        (
            "three tasks that clip their gradients (TaskParts.max_grad_norm: an SGD LSTM at 0.25, as\n"
            "AWD-LSTM; a momentum GRU and an AdamW transformer at 1); the search, the training and\n"
            "sf-adamw/prodigy all clip",
            "clip_auto_v2.json",
        ),
        (
            "four tasks written on 2026-12-06 after every rule, threshold and factor had been chosen\n"
            "(a BatchNorm CNN with SGD momentum and with AdamW, logistic regression with plain SGD, an\n"
            "Adam MLP on the 142 training samples of wine; python bench/finder_tasks.py --fresh)",
            "fresh_auto.json",
        ),
    ):
        grid_file = auto_name.split("_")[0] + "_grid.json"
        held = (Path(__file__).with_name(auto_name), Path(__file__).with_name(grid_file))
        if held[0].exists() and held[1].exists():
            print(f"\nheld-out check: {title}")
            auto_report(*held)
    for name, report in (
        ("auto_peak.json", peak_report),
        ("auto_peak_wsd.json", peak_report),
        ("auto_peak_wsd.json", lambda _path: peak_kind_report()),
        ("auto_inrun_peak.json", inrun_peak_report),
        ("auto_inrun_rewarm.json", inrun_rewarm_report),
        ("auto_inrun_stride.json", inrun_stride_report),
        ("sf_peak.json", sf_peak_report),
    ):
        if Path(__file__).with_name(name).exists():
            report(Path(__file__).with_name(name))
    inrun_kind_report()
    long_files = (Path(__file__).with_name("long_auto_v2.json"), Path(__file__).with_name("long_grid.json"))
    if all(f.exists() for f in long_files):
        print("\nseven public tasks trained for ~3,000 steps instead of 200-600 (the first four chose")
        print("search='auto' = in-run at every length, in every leave-one-task-out fold; the last three were")
        print("added to check it)")
        auto_report(
            *long_files,
            columns=LONG_COLUMNS,
            held_out=False,
            intro=(
                "  in-run: search='in_run', auto's default now; separate: search='auto' as it was then (the",
                "  separate test, since its ~300 steps fit in 10% of these runs, its retries limited to what",
                "  the first test left of that 10%)",
            ),
        )
    if Path(__file__).with_name("clip_finder.json").exists():
        clip_finder_report(Path(__file__).with_name("clip_finder.json"))
    noise_report()
