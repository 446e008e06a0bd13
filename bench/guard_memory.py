"""What the divergence guard's snapshots cost in memory, and where: ``snapshot_bytes`` against the bytes
of the parameters, for a few optimizers, with the snapshots on the model's device and in host memory.

A small transformer encoder (``--layers`` layers of width ``--width``) trained a few steps with the
guard's defaults (``keep=2``) and ``snapshot_every=5``: 12 steps, so that both kept snapshots hold the
optimizer's state; then a NaN loss and one rollback. On a GPU the peak of ``torch.cuda`` memory is
measured too: a run without the guard, with it, and with ``snapshot_device="cpu"``.

    python bench/guard_memory.py                  # the GPU if there is one, else the CPU
    python bench/guard_memory.py --width 256 --layers 2
"""

from __future__ import annotations

import argparse
from typing import Any

import torch
import torch.nn.functional as F

from lrkit.control import DivergenceGuard

OPTIMIZERS = {
    "Adam": lambda ps: torch.optim.Adam(ps, lr=1e-4),
    "AdamW": lambda ps: torch.optim.AdamW(ps, lr=1e-4),
    "SGD+momentum": lambda ps: torch.optim.SGD(ps, lr=1e-3, momentum=0.9),
    "SGD": lambda ps: torch.optim.SGD(ps, lr=1e-3),
}


def run(args: argparse.Namespace, opt_name: str, where: str | None, guard_on: bool = True) -> dict[str, Any]:
    device = torch.device(args.device)
    torch.manual_seed(0)
    layer = torch.nn.TransformerEncoderLayer(args.width, 8, 4 * args.width, batch_first=True)
    model = torch.nn.Sequential(
        torch.nn.TransformerEncoder(layer, args.layers), torch.nn.Linear(args.width, 1)
    )
    model = model.to(device)
    opt = OPTIMIZERS[opt_name](model.parameters())
    guard = DivergenceGuard(model, opt, snapshot_every=5, snapshot_device=where) if guard_on else None
    x = torch.randn(8, 32, args.width, device=device)
    y = torch.randn(8, 32, 1, device=device)
    if device.type == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    step = 0
    while step < 13:
        loss = F.mse_loss(model(x), y)
        if step == 12 and guard is not None and not guard.events:
            loss = loss * float("nan")  # one rollback, to the snapshot of step 10
        loss.backward()
        if guard is None or guard.check(loss, step):
            opt.step()
            step += 1
        else:
            step = guard.resume_step or 0
        opt.zero_grad(set_to_none=True)
    params = sum(p.numel() * p.element_size() for p in model.parameters())
    out: dict[str, Any] = {"params": params, "snapshots": guard.snapshot_bytes if guard else {}}
    if device.type == "cuda":
        out["peak"] = torch.cuda.max_memory_allocated()
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--width", type=int, default=512)
    ap.add_argument("--layers", type=int, default=4)
    args = ap.parse_args()
    print(f"device {args.device}, transformer encoder {args.layers} x {args.width}, keep=2 (the default)")
    print(
        f"{'optimizer':<14} {'snapshot_device':<16} {'parameters':>11}  snapshots (x parameters), by device"
    )
    for name in OPTIMIZERS:
        for where in (None, "cpu"):
            r = run(args, name, where)
            held = ", ".join(
                f"{d}: {b / 2**20:.1f} MiB ({b / r['params']:.2f}x)"
                for d, b in sorted(r["snapshots"].items())
            )
            print(f"{name:<14} {where or 'model device':<16} {r['params'] / 2**20:>7.1f} MiB  {held}")
    if args.device.startswith("cuda"):
        print("\npeak CUDA memory (Adam), training with one rollback:")
        base = run(args, "Adam", None, guard_on=False)["peak"]
        print(f"  {'no guard':<12} {base / 2**20:8.1f} MiB")
        for label, where in (("guard", None), ("guard, cpu", "cpu")):
            peak = run(args, "Adam", where)["peak"]
            print(f"  {label:<12} {peak / 2**20:8.1f} MiB  (+{(peak - base) / 2**20:.1f} MiB)")


if __name__ == "__main__":
    main()
