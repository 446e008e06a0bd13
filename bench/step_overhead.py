"""The cost of one ``scheduler.step()``: lrkit against torch's schedulers, with 1 and 8 param groups.

Every number is measured in this run, on this machine. The floor is writing a precomputed value into
every group (what any scheduler must at least do). Torch's equivalents: SequentialLR(LinearLR +
CosineAnnealingLR), OneCycleLR, CosineAnnealingWarmRestarts, LambdaLR with the BERT warmup+linear
lambda, and ExponentialLR (torch's fastest). lrkit runs the same schedules.

"median" is the median over batches of calls; "mean" includes everything, for lrkit the refill of a
block of ``BLOCK`` precomputed steps (amortised). lrkit is timed with ``follow_optimizer=False`` (it
advances on every call, as torch's do) and, on the default ``follow_optimizer=True`` path, with the
optimizer's step hook set before each call (the cost of setting the flag subtracted).

    python bench/step_overhead.py [--quick]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import timeit
import warnings
from collections.abc import Callable
from pathlib import Path

import torch
from torch.optim.lr_scheduler import (
    CosineAnnealingLR,
    CosineAnnealingWarmRestarts,
    ExponentialLR,
    LambdaLR,
    LinearLR,
    OneCycleLR,
    SequentialLR,
)

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
import lrkit
from lrkit.adapters.torch import BLOCK

HUGE = 10**8  # long enough that no schedule ends while it is timed
WARM = 100


def _opt(groups: int) -> torch.optim.Optimizer:
    ps = [torch.nn.Parameter(torch.zeros(1)) for _ in range(groups)]
    return torch.optim.SGD([{"params": [p]} for p in ps], lr=0.1, momentum=0.9)


def _bert(k: int) -> float:
    return k / WARM if k < WARM else max(0.0, (HUGE - k) / (HUGE - WARM))


TORCH: dict[str, Callable[[torch.optim.Optimizer], object]] = {
    "ExponentialLR": lambda o: ExponentialLR(o, gamma=0.9999999),
    "SequentialLR(Linear+Cosine)": lambda o: SequentialLR(
        o,
        [LinearLR(o, start_factor=0.01, total_iters=WARM), CosineAnnealingLR(o, T_max=HUGE)],
        milestones=[WARM],
    ),
    "OneCycleLR": lambda o: OneCycleLR(o, max_lr=0.1, total_steps=HUGE, cycle_momentum=False),
    "CosineAnnealingWarmRestarts": lambda o: CosineAnnealingWarmRestarts(o, T_0=1000, T_mult=2),
    "LambdaLR(BERT)": lambda o: LambdaLR(o, _bert),
}

LRKIT: dict[str, lrkit.Schedule] = {
    "SequentialLR(Linear+Cosine)": lrkit.Warmup(WARM, start=0.01) >> lrkit.Cosine(lr=1.0, steps=HUGE),
    "OneCycleLR": lrkit.OneCycle(max_lr=1.0, steps=HUGE),
    "CosineAnnealingWarmRestarts": lrkit.CosineRestarts(lr=1.0, period=1000, mult=2),
    "LambdaLR(BERT)": lrkit.Warmup(WARM, start=0.0) >> lrkit.Linear(lr=1.0, end_lr=0.0, steps=HUGE - WARM),
}


def _time(stmt: Callable[[], object], number: int, repeat: int) -> tuple[float, float]:
    """(median, mean) microseconds per call."""
    ts = [t / number * 1e6 for t in timeit.repeat(stmt, number=number, repeat=repeat)]
    return statistics.median(ts), statistics.fmean(ts)


def _time_followed(sched: object, number: int, repeat: int) -> tuple[float, float]:
    """The default path: the optimizer's step hook has set the flag before each ``step()``."""
    flag = sched._flag  # type: ignore[attr-defined]
    step = sched.step  # type: ignore[attr-defined]
    env = {"flag": flag, "step": step}
    with_step = [t / number * 1e6 for t in timeit.repeat("flag.stepped = True; step()", number=number,
                                                         repeat=repeat, globals=env)]  # fmt: skip
    flag_only = [t / number * 1e6 for t in timeit.repeat("flag.stepped = True", number=number, repeat=repeat,
                                                         globals=env)]  # fmt: skip
    base = statistics.median(flag_only)
    return statistics.median(with_step) - base, statistics.fmean(with_step) - base


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="fewer repeats (a smoke run)")
    args = ap.parse_args()
    number, repeat = (500, 40) if args.quick else (1000, 400)
    warnings.filterwarnings("ignore", category=UserWarning)  # torch: "step() before optimizer.step()"

    rows: list[tuple[str, dict[int, tuple[float, float]]]] = []
    for_groups = (1, 8)

    floor: dict[int, tuple[float, float]] = {}
    for g in for_groups:
        groups = _opt(g).param_groups
        values = [0.1] * 4096

        def write(groups: list[dict[str, object]] = groups, values: list[float] = values) -> None:
            for grp in groups:
                grp["lr"] = values[7]

        floor[g] = _time(write, number, repeat)
    rows.append(("floor: write a precomputed value", floor))

    for name, make in TORCH.items():
        rows.append((f"torch {name}", {g: _time(make(_opt(g)).step, number, repeat) for g in for_groups}))  # type: ignore[attr-defined]
    for name, sched in LRKIT.items():
        res = {}
        for g in for_groups:
            s = lrkit.torch.scheduler(_opt(g), sched, relative=True, follow_optimizer=False)
            res[g] = _time(s.step, number, repeat)
        rows.append((f"lrkit {name}", res))
    followed = {}
    for g in for_groups:
        s = lrkit.torch.scheduler(_opt(g), LRKIT["SequentialLR(Linear+Cosine)"], relative=True)
        followed[g] = _time_followed(s, number, repeat)
    rows.append(("lrkit warmup+cosine, follow_optimizer=True", followed))

    torch_rows = [r for r in rows if r[0].startswith("torch")]
    fastest = {g: min(r[1][g][0] for r in torch_rows) for g in for_groups}
    fastest_name = {g: min(torch_rows, key=lambda r: r[1][g][0])[0] for g in for_groups}

    print(f"scheduler.step() cost, torch {torch.__version__}, {torch.get_num_threads()} threads, "
          f"{number} calls x {repeat} batches, lrkit BLOCK={BLOCK}")  # fmt: skip
    print(f"{'':48s} {'1 group (us)':>22s} {'8 groups (us)':>22s}   x floor      / torch fastest")
    print(f"{'':48s} {'median':>10s} {'mean':>11s} {'median':>10s} {'mean':>11s}   1g    8g     1g    8g")
    for name, res in rows:
        cells = "".join(f" {res[g][0]:10.3f} {res[g][1]:11.3f}" for g in for_groups)
        xf = "".join(f" {res[g][0] / floor[g][0]:5.1f}" for g in for_groups)
        xt = "".join(f" {res[g][0] / fastest[g]:5.2f}" for g in for_groups)
        print(f"{name:48s}{cells}  {xf}  {xt}")
    print(f"torch's fastest here: {fastest_name[1]} (1 group), {fastest_name[8]} (8 groups)")

    lrkit_rows = [r for r in rows if r[0].startswith("lrkit")]
    for g in for_groups:
        worst = max(lrkit_rows, key=lambda r: r[1][g][0])
        worst_mean = max(r[1][g][1] for r in lrkit_rows)
        ratio = worst[1][g][0] / fastest[g]
        verdict = "met" if ratio <= 1 / 3 else "MISSED"
        print(
            f"{g} group(s): slowest lrkit step {worst[1][g][0]:.3f} us median ({worst[0]}) = "
            f"{ratio:.2f}x torch's fastest, {worst[1][g][0] / floor[g][0]:.1f}x the floor; "
            f"target <= 0.33x: {verdict}; "
            f"with block refills (mean) at most {worst_mean / fastest[g]:.2f}x torch's fastest median"
        )
    for name in LRKIT:
        r_l = next(r for r in rows if r[0] == f"lrkit {name}")[1]
        r_t = next(r for r in rows if r[0] == f"torch {name}")[1]
        print(
            f"  {name}: lrkit is "
            + ", ".join(f"{r_t[g][0] / r_l[g][0]:.1f}x faster ({g}g)" for g in for_groups)
        )


if __name__ == "__main__":
    main()
