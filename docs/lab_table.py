"""The tables of docs/choosing.md from a lab database: ``python docs/lab_table.py LAB.db [NAME]``.

The latest experiment (of that name). One row per strategy, in the experiment's order: optimizer,
final validation metric over the seeds (mean, sample standard deviation, worst seed), the mean epoch at
which a run first reached 99% of the best strategy's mean, and how many runs diverged. Reads the
database only (``lrkit.lab.store``).
"""

from __future__ import annotations

import statistics
import sys
from collections.abc import Sequence

from lrkit.lab.store import ResultStore, RunRecord


def rows(runs: Sequence[RunRecord]) -> list[tuple[str, str, list[RunRecord]]]:
    by: dict[str, list[RunRecord]] = {}
    for r in runs:
        by.setdefault(r.label, []).append(r)
    return [(label, rs[0].optimizer, rs) for label, rs in by.items()]


def table(db: str, name: str | None = None) -> str:
    with ResultStore(db) as store:
        exps = [e for e in store.experiments() if name is None or e.name == name]
        if not exps:
            raise SystemExit(f"{db}: no experiment named {name!r}")
        exp = max(exps, key=lambda e: e.created)  # the latest version of the experiment file
        runs = store.runs(exp.id)
    groups = rows(runs)

    def finals(rs: list[RunRecord]) -> list[float]:  # diverged runs have no final metric
        return [r.final_metric for r in rs if r.final_metric is not None]

    target = 0.99 * max(statistics.fmean(finals(rs)) for _, _, rs in groups if finals(rs))
    lines = [
        f"| strategy | optimizer | final {exp.metric_name}: mean ± sd (worst) | reached {target:.3f} "
        "(mean first epoch) | diverged |",
        "|---|---|---|---|---|",
    ]
    for label, opt, rs in groups:
        f = finals(rs)
        if f:
            final = (
                f"{statistics.fmean(f):.3f} ± {statistics.stdev(f):.3f} ({min(f):.3f})"
                if len(f) > 1
                else f"{f[0]:.3f} (n=1)"
            )
        else:
            final = "—"
        first = [next((i + 1 for i, m in enumerate(r.epoch_metrics) if m >= target), None) for r in rs]
        ok = [e for e in first if e is not None]
        reached = f"{len(ok)}/{len(rs)} runs" + (f" ({statistics.fmean(ok):.1f})" if ok else "")
        div = sum(r.status == "diverged" for r in rs)
        lines.append(f"| {label} | {opt} | {final} | {reached} | {div}/{len(rs)} |")
    return "\n".join(lines)


if __name__ == "__main__":
    print(table(sys.argv[1], sys.argv[2] if len(sys.argv) > 2 else None))
