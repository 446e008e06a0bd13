"""A compiled training step with a changing LR: graphs compiled and ms per step, lrkit against torch.

An MLP (4 hidden layers of ``--width``, batch ``--batch``) trained by AdamW with warmup(10%) + cosine
over ``--steps`` steps, the same LR sequence in every variant:

  (a) eager, torch's LambdaLR                      (b) torch.compile, float LR, torch's LambdaLR
  (c) torch.compile, tensor LR, torch's LambdaLR   (d) torch.compile, lrkit in-graph (GraphScheduler)
  (e) torch.compile, constant LR: the compiled floor
  (f) whole step in one CUDA graph, constant LR: the graph floor      (CUDA only)
  (g) whole step in one CUDA graph, lrkit in-graph schedule           (CUDA only)

Each variant first runs the schedule once (compiles or captures; records the LR of every step,
compared with eager), then ``--rounds`` timed passes (no host reads), interleaved round robin with
the other variants; ms/step is the median over the passes of (CUDA) the pass time / steps or (CPU,
often a shared machine) the median step. Graphs are dynamo's unique graphs over all passes. lrkit's
variants call ``begin_step()`` before the forward (same LR sequence as ``step()`` after the
optimizer, without a graph of its own after the optimizer's graph break).

    python bench/compiled_step.py            # GPU if there is one: width 1024, batch 256
    python bench/compiled_step.py --width 256 --batch 64   # the CPU default (1024 x 256 is ~0.7 s/step)
"""

from __future__ import annotations

import argparse
import math
import statistics
import sys
import time
import types
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from torch._dynamo.utils import counters
from torch.optim.lr_scheduler import LambdaLR

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
import lrkit

BASE_LR = 1e-3


def _mlp(width: int, device: torch.device) -> torch.nn.Module:
    torch.manual_seed(0)
    layers: list[torch.nn.Module] = []
    for _ in range(4):
        layers += [torch.nn.Linear(width, width), torch.nn.ReLU()]
    layers.append(torch.nn.Linear(width, 10))
    return torch.nn.Sequential(*layers).to(device)


def _lambda(steps: int) -> Callable[[int], float]:
    """warmup(10%) >> cosine(lr=1.0) written by hand, as a LambdaLR user would (lrkit's formulas)."""
    w = round(0.1 * steps)

    def lam(k: int) -> float:
        if k < w:
            return (k + 1) / (w + 1)
        return 0.5 * (1.0 + math.cos(math.pi * min(k - w, steps - w) / (steps - w)))

    return lam


SCHEDULE = lrkit.Warmup("10%") >> lrkit.Cosine(lr=1.0)


class Variant:
    """One way of running the step; ``run(record)`` runs the whole schedule once."""

    def __init__(self, key: str, args: argparse.Namespace, device: torch.device) -> None:
        self.key, self.steps, self.device = key, args.steps, device
        cuda = device.type == "cuda"
        self.model = _mlp(args.width, device)
        self.x = torch.randn(args.batch, args.width, device=device)
        self.y = torch.randint(0, 10, (args.batch,), device=device)
        tensor_lr = key in "cdfg"
        lr: float | torch.Tensor = torch.tensor(BASE_LR, device=device) if tensor_lr else BASE_LR
        kw: dict[str, Any] = {"capturable": True} if (tensor_lr and cuda) else {}
        self.opt = torch.optim.AdamW(self.model.parameters(), lr=lr, **kw)
        self.torch_sched: LambdaLR | None = LambdaLR(self.opt, _lambda(self.steps)) if key in "abc" else None
        self.lrkit_sched: Any = None
        if key in "dg":
            self.lrkit_sched = lrkit.torch.scheduler(
                self.opt, SCHEDULE, total_steps=self.steps, relative=True, in_graph=True
            )
        # each variant gets its own code object, so that dynamo's per-code cache (and its recompile
        # limit) is not shared between variants
        code = Variant._step.__code__.replace(co_name=f"train_step_{key}")
        step = types.MethodType(types.FunctionType(code, globals(), code.co_name), self)
        self.fn: Callable[[], Any] = torch.compile(step) if key in "bcde" else step
        self.graphs = 0
        self.graph: torch.cuda.CUDAGraph | None = None
        if key in "fg":
            self._capture()

    def _step(self) -> torch.Tensor:
        if self.key not in "fg":
            self.opt.zero_grad(set_to_none=True)
        if self.lrkit_sched is not None:
            # writes the LR of this step and advances: the same sequence as step() after opt.step(),
            # but inside the forward's graph instead of a graph of its own
            self.lrkit_sched.begin_step()
        loss = torch.nn.functional.cross_entropy(self.model(self.x), self.y)
        loss.backward()
        self.opt.step()
        return loss

    def _capture(self) -> None:
        side = torch.cuda.Stream()
        side.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(side):
            for _ in range(3):  # warm up: allocator, cuBLAS, and the fused (compiled) LR update
                self.opt.zero_grad(set_to_none=True)
                self._step()
        torch.cuda.current_stream().wait_stream(side)
        self.opt.zero_grad(set_to_none=True)
        self.graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(self.graph):
            self._step()

    def _reset(self) -> None:
        if self.torch_sched is not None:
            self.torch_sched = LambdaLR(
                self.opt, _lambda(self.steps)
            )  # back to step 0 (base from initial_lr)
        if self.lrkit_sched is not None:
            self.lrkit_sched.set_step(0)

    def run(self, record: bool) -> tuple[float, list[float]]:
        """Run the schedule once: (ms per step, the LR each step used if ``record``). On the CPU the
        ms are the median step (robust on a shared machine); on CUDA the whole pass over the steps."""
        before = counters["stats"]["unique_graphs"]
        try:
            return self._run(record)
        finally:
            self.graphs += counters["stats"]["unique_graphs"] - before

    def _run(self, record: bool) -> tuple[float, list[float]]:
        self._reset()
        lrs: list[float] = []
        times: list[float] = []
        after = self.lrkit_sched is not None  # begin_step() writes the LR inside the step
        self._sync()
        t0 = t = time.perf_counter()
        for _ in range(self.steps):
            if record and not after:
                lrs.append(float(self.opt.param_groups[0]["lr"]))
            if self.graph is not None:
                self.graph.replay()
            else:
                self.fn()
            if self.torch_sched is not None:
                self.torch_sched.step()
            if record and after:
                lrs.append(float(self.opt.param_groups[0]["lr"]))
            if self.device.type == "cpu":
                now = time.perf_counter()
                times.append(now - t)
                t = now
        self._sync()
        ms = statistics.median(times) if times else (time.perf_counter() - t0) / self.steps
        return ms * 1e3, lrs

    def _sync(self) -> None:
        if self.device.type == "cuda":
            torch.cuda.synchronize()


NAMES = {
    "a": "eager, float LR, torch LambdaLR",
    "b": "compiled, float LR, torch LambdaLR",
    "c": "compiled, tensor LR, torch LambdaLR",
    "d": "compiled, lrkit in-graph",
    "e": "compiled, constant LR (floor)",
    "f": "CUDA graph, constant LR (floor)",
    "g": "CUDA graph, lrkit in-graph",
}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    cuda = torch.cuda.is_available()
    ap.add_argument("--width", type=int, default=1024 if cuda else 256)
    ap.add_argument("--batch", type=int, default=256 if cuda else 64)
    ap.add_argument("--steps", type=int, default=300)
    ap.add_argument("--variants", default="abcdefg")
    ap.add_argument("--rounds", type=int, default=5, help="timed passes per variant (median reported)")
    ap.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's)")
    args = ap.parse_args()
    device = torch.device("cuda" if cuda else "cpu")
    if args.threads:
        torch.set_num_threads(args.threads)
    name = torch.cuda.get_device_name() if cuda else f"CPU ({torch.get_num_threads()} threads)"
    warnings.filterwarnings("ignore", category=UserWarning)
    torch.set_float32_matmul_precision("high")

    eager_lrs = [BASE_LR * _lambda(args.steps)(k) for k in range(args.steps)]
    results: dict[str, dict[str, Any]] = {}
    variants: dict[str, Variant] = {}
    torch._dynamo.reset()
    counters.clear()
    for key in args.variants:  # build, compile/capture, and record the LRs of a first pass
        if key in "fg" and not cuda:
            results[key] = {"skipped": "no CUDA device here"}
            continue
        t0 = time.perf_counter()
        v = variants[key] = Variant(key, args, device)
        _, lrs = v.run(record=True)
        diff = None if key in "ef" else max(abs(a - b) / b for a, b in zip(lrs, eager_lrs, strict=True))
        results[key] = {
            "first_s": time.perf_counter() - t0,
            "graphs_first": v.graphs,
            "lr_diff": diff,
            "ms": [],
        }
        print(f"  ({key}) built and run once in {results[key]['first_s']:.1f} s", file=sys.stderr, flush=True)
    keys = list(variants)
    for r in range(args.rounds):  # timed passes, interleaved (round robin, rotating) against drift
        for key in keys[r % len(keys) :] + keys[: r % len(keys)]:
            ms, _ = variants[key].run(record=False)
            results[key]["ms"].append(ms)
    for key, v in variants.items():
        results[key]["ms"] = statistics.median(results[key]["ms"])
        results[key]["graphs"] = v.graphs if key in "bcde" else None

    limit = getattr(torch._dynamo.config, "recompile_limit", None) or torch._dynamo.config.cache_size_limit
    print(
        f"\ncompiled_step: {name}, torch {torch.__version__}; MLP 4x{args.width}, batch {args.batch}, AdamW, "
        f"warmup(10%)+cosine over {args.steps} steps; dynamo recompile limit {limit}"
    )
    floor_c = results.get("e", {}).get("ms")
    floor_g = results.get("f", {}).get("ms")
    print(f"{'variant':42s} {'graphs':>6s} {'1st pass s':>10s} {'ms/step':>9s} {'/compiled floor':>15s} "
          f"{'/graph floor':>12s} {'max rel LR diff vs eager':>25s}")  # fmt: skip
    for key in args.variants:
        r = results[key]
        label = f"({key}) {NAMES[key]}"
        if "skipped" in r:
            print(f"{label:42s} skipped: {r['skipped']}")
            continue
        graphs = "-" if r["graphs"] is None else str(r["graphs"])
        rc = f"{r['ms'] / floor_c:.3f}x" if floor_c and key in "abcde" else "-"
        rg = f"{r['ms'] / floor_g:.3f}x" if floor_g and key in "fg" else "-"
        diff = "- (constant)" if r["lr_diff"] is None else f"{r['lr_diff']:.2e}"
        print(f"{label:42s} {graphs:>6s} {r['first_s']:10.1f} {r['ms']:9.3f} {rc:>15s} {rg:>12s} {diff:>25s}")
    if "d" in results and "graphs" in results["d"]:
        d = results["d"]
        extra = d["graphs"] - d["graphs_first"]
        print(
            f"lrkit in-graph: {d['graphs']} graphs ({extra} compiled after the first pass), vs the "
            f"constant-LR floor's {results.get('e', {}).get('graphs', '?')}; "
            "target: no extra graph when the LR changes"
        )
        if floor_c:
            verdict = "met" if d["ms"] <= floor_c else "MISSED"
            print(f"lrkit in-graph / compiled floor = {d['ms'] / floor_c:.3f}x (target <= 1.00x): {verdict}")
    if "g" in results and "ms" in results["g"] and floor_g:
        g = results["g"]
        verdict = "met" if g["ms"] <= 1.02 * floor_g else "MISSED"
        print(f"lrkit in CUDA graph / graph floor = {g['ms'] / floor_g:.3f}x (target <= 1.02x): {verdict}; "
              f"LR sequence vs eager: max rel diff {g['lr_diff']:.1e}")  # fmt: skip
    elif "g" in args.variants:
        print("CUDA-graph variants (f), (g) not run: no CUDA device")


if __name__ == "__main__":
    main()
