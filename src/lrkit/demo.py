"""``make demo`` / ``lrkit demo``: the main job, writing figures and tables into one folder."""

from __future__ import annotations

import time
from pathlib import Path


def run_demo(out: Path, *, quick: bool = False) -> int:
    """Write the strategy gallery and an overlay of common recipes into ``out``; print what was written."""
    from .plot import gallery, plot_schedules

    out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    written = [gallery(out / "gallery.png")]
    recipes = [
        "warmup(10%) >> cosine(lr=0.1, min_lr=1e-3)",
        "one_cycle(max_lr=0.1)",
        "multistep(lr=0.1, milestones=[30%, 60%, 90%], gamma=0.1)",
        "wsd(lr=0.1, warmup=5%, decay=20%, cooldown=1-sqrt)",
    ]
    plot_schedules(recipes, 10_000, out / "recipes.png", log=True, title="common recipes over 10,000 steps")
    written.append(out / "recipes.png")
    for p in written:
        print(f"wrote {p}")
    print(f"demo finished in {time.perf_counter() - t0:.1f} s; open {out}/ to look")
    return 0
