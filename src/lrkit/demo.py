"""``make demo`` / ``lrkit demo``: the main job, writing figures, tables and a results database.

1. the gallery of every strategy and an overlay of common recipes;
2. the LR range test on a real task (scikit-learn digits, MLP, SGD+momentum), with its plot;
3. the lab: strategies side by side on that task, peak LRs from the finder, plus a too-large and a
   too-small LR and the adaptive optimizers; a figure, a Markdown table and a SQLite database.
"""

from __future__ import annotations

import time
from pathlib import Path

TASK = "digits-mlp-sgd"


def demo_strategies(peak: float) -> list[tuple[str, str, str | None]]:
    """(label, spec, optimizer) for the demo's lab, around the finder's suggestion ``peak``."""
    p = f"{peak:.3g}"
    return [
        (f"too large: constant {100 * peak:.3g}", f"constant({100 * peak:.3g})", None),
        (f"too small: constant {peak / 300:.2g}", f"constant({peak / 300:.2g})", None),
        (f"constant {p} (finder)", f"constant({p})", None),
        ("step decay x0.1 at 50%, 75%", f"multistep(lr={p}, milestones=[50%, 75%], gamma=0.1)", None),
        ("exponential", f"exponential(lr={p}, gamma=0.99)", None),
        ("warmup 5% + cosine", f"warmup(5%) >> cosine(lr={p}, min_lr={peak / 100:.3g})", None),
        ("one-cycle", f"one_cycle(max_lr={p})", None),
        (
            "cyclic triangular2",
            f"cyclic(lr={peak / 10:.3g}, max_lr={p}, step_size_up=1ep, mode=triangular2)",
            None,
        ),
        ("warmup-stable-decay", f"wsd(lr={p}, warmup=5%, decay=20%, cooldown=1-sqrt)", None),
        ("AdaGrad 1e-2", "constant(0.01)", "adagrad"),
        ("RMSprop 1e-3", "constant(0.001)", "rmsprop"),
        ("Adam 1e-3", "constant(0.001)", "adam"),
        ("AdamW 1e-3", "warmup(5%) >> cosine(lr=0.001)", "adamw"),
    ]


def run_demo(out: Path, *, quick: bool = False) -> int:
    """Write everything into ``out`` and print what was written, with the lab's table."""
    from .lab.report import plot_lab, table
    from .lab.runner import Strategy, run_lab
    from .lab.store import ResultStore
    from .tasks import get_task
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

    task = get_task(TASK)
    print(f"LR range test on {TASK} ({task.description}) ...")
    found = task.find_lr(seed=0, repeats=1 if quick else 3)
    print(found)
    found.plot(out / "lr_find.png", title=f"LR range test: {TASK}")
    written.append(out / "lr_find.png")

    strategies = [Strategy(label, spec, opt) for label, spec, opt in demo_strategies(found.suggestion)]
    db_path = out / "lab.db"
    seeds = (0,) if quick else (0, 1)
    epochs = 4 if quick else task.epochs
    print(f"lab: {len(strategies)} strategies x {len(seeds)} seed(s), {epochs} epochs each, on {TASK} ...")
    with ResultStore(db_path) as store:
        result = run_lab(TASK, strategies, seeds=seeds, epochs=epochs, store=store, name="demo")
    plot_lab(
        result,
        out / "lab.png",
        metric_name=task.metric_name,
        title=f"lrkit lab: {TASK}, {epochs} epochs, {len(seeds)} seed(s) per strategy",
    )
    md = table(result, task.metric_name)
    (out / "lab.md").write_text(f"# lrkit lab: {TASK}\n\n{md}\n")
    written += [out / "lab.png", out / "lab.md", db_path]
    print()
    print(md)
    print()
    for p in written:
        print(f"wrote {p}")
    print(f"demo finished in {time.perf_counter() - t0:.0f} s; open {out}/ to look")
    return 0
