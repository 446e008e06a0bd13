"""The lab's results database (SQLite): experiments, runs, per-step LR and loss, per-epoch metrics.

Every run is written in its own transaction as soon as it ends (finished, diverged or interrupted), so
a crash or Ctrl-C loses at most the run in progress, and never what was already recorded.

>>> store = ResultStore(":memory:")
>>> exp = store.new_experiment("demo", task="digits-mlp-sgd")
>>> rid = store.add_run(RunRecord(exp, "constant", "constant(lr=0.1)", "sgd", 0, "ok", 0.9, 0.95, None,
...                               2, 0.1, [0.1, 0.1], [2.3, 2.1], [0.8, 0.9], [2.2, 2.0]))
>>> [r.label for r in store.runs(exp)], store.runs(exp)[0].epoch_metrics
(['constant'], [0.8, 0.9])
"""

from __future__ import annotations

import sqlite3
import time
from dataclasses import dataclass, field
from pathlib import Path

__all__ = ["Experiment", "ResultStore", "RunRecord"]

SCHEMA = """
CREATE TABLE IF NOT EXISTS experiments (
    id INTEGER PRIMARY KEY, name TEXT NOT NULL, task TEXT NOT NULL, created REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS runs (
    id INTEGER PRIMARY KEY,
    experiment_id INTEGER NOT NULL REFERENCES experiments(id),
    label TEXT NOT NULL, spec TEXT NOT NULL, optimizer TEXT NOT NULL, seed INTEGER NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('ok', 'diverged', 'interrupted')),
    final_metric REAL, best_metric REAL, diverged_step INTEGER, steps INTEGER NOT NULL, seconds REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS steps (
    run_id INTEGER NOT NULL REFERENCES runs(id), step INTEGER NOT NULL, lr REAL NOT NULL, loss REAL,
    PRIMARY KEY (run_id, step)
);
CREATE TABLE IF NOT EXISTS epochs (
    run_id INTEGER NOT NULL REFERENCES runs(id), epoch INTEGER NOT NULL, metric REAL, train_loss REAL,
    PRIMARY KEY (run_id, epoch)
);
"""


@dataclass(frozen=True)
class Experiment:
    id: int
    name: str
    task: str
    created: float


@dataclass
class RunRecord:
    """One training run: what ran, how it ended, and its curves (``lrs``/``losses`` per step,
    ``epoch_metrics``/``epoch_losses`` per epoch)."""

    experiment_id: int
    label: str
    spec: str
    optimizer: str
    seed: int
    status: str
    final_metric: float | None
    best_metric: float | None
    diverged_step: int | None
    steps: int
    seconds: float
    lrs: list[float] = field(default_factory=list)
    losses: list[float] = field(default_factory=list)
    epoch_metrics: list[float] = field(default_factory=list)
    epoch_losses: list[float] = field(default_factory=list)
    id: int | None = None


def _nan_to_none(v: float | None) -> float | None:
    return None if v is None or v != v else float(v)


class ResultStore:
    """A SQLite file (or ``":memory:"``) holding lab results."""

    def __init__(self, path: str | Path) -> None:
        if str(path) != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        self.path = str(path)
        self.db = sqlite3.connect(self.path)
        self.db.execute("PRAGMA foreign_keys = ON")
        self.db.executescript(SCHEMA)

    def close(self) -> None:
        self.db.close()

    def __enter__(self) -> ResultStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def new_experiment(self, name: str, task: str) -> int:
        with self.db:
            cur = self.db.execute(
                "INSERT INTO experiments (name, task, created) VALUES (?, ?, ?)", (name, task, time.time())
            )
        return int(cur.lastrowid or 0)

    def experiments(self) -> list[Experiment]:
        rows = self.db.execute("SELECT id, name, task, created FROM experiments ORDER BY id").fetchall()
        return [Experiment(*r) for r in rows]

    def add_run(self, run: RunRecord) -> int:
        """Write ``run`` and its curves in one transaction; returns its id."""
        with self.db:
            cur = self.db.execute(
                "INSERT INTO runs (experiment_id, label, spec, optimizer, seed, status, final_metric, "
                "best_metric, diverged_step, steps, seconds) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    run.experiment_id,
                    run.label,
                    run.spec,
                    run.optimizer,
                    run.seed,
                    run.status,
                    _nan_to_none(run.final_metric),
                    _nan_to_none(run.best_metric),
                    run.diverged_step,
                    run.steps,
                    run.seconds,
                ),
            )
            rid = int(cur.lastrowid or 0)
            self.db.executemany(
                "INSERT INTO steps (run_id, step, lr, loss) VALUES (?, ?, ?, ?)",
                # an interrupted step has its LR but no loss yet
                [
                    (rid, i, float(lr), _nan_to_none(run.losses[i]) if i < len(run.losses) else None)
                    for i, lr in enumerate(run.lrs)
                ],
            )
            self.db.executemany(
                "INSERT INTO epochs (run_id, epoch, metric, train_loss) VALUES (?, ?, ?, ?)",
                [
                    (rid, i + 1, _nan_to_none(m), _nan_to_none(lo))
                    for i, (m, lo) in enumerate(zip(run.epoch_metrics, run.epoch_losses))
                ],
            )
        run.id = rid
        return rid

    def runs(self, experiment_id: int | None = None) -> list[RunRecord]:
        """The runs of one experiment (or all), with their curves, in the order they were added."""
        q = (
            "SELECT id, experiment_id, label, spec, optimizer, seed, status, final_metric, best_metric, "
            "diverged_step, steps, seconds FROM runs"
        )
        args: tuple[int, ...] = ()
        if experiment_id is not None:
            q += " WHERE experiment_id = ?"
            args = (experiment_id,)
        out = []
        for row in self.db.execute(q + " ORDER BY id", args).fetchall():
            rid = row[0]
            steps = self.db.execute(
                "SELECT lr, loss FROM steps WHERE run_id = ? ORDER BY step", (rid,)
            ).fetchall()
            epochs = self.db.execute(
                "SELECT metric, train_loss FROM epochs WHERE run_id = ? ORDER BY epoch", (rid,)
            ).fetchall()
            out.append(
                RunRecord(
                    experiment_id=row[1],
                    label=row[2],
                    spec=row[3],
                    optimizer=row[4],
                    seed=row[5],
                    status=row[6],
                    final_metric=row[7],
                    best_metric=row[8],
                    diverged_step=row[9],
                    steps=row[10],
                    seconds=row[11],
                    lrs=[s[0] for s in steps],
                    losses=[float("nan") if s[1] is None else s[1] for s in steps],
                    epoch_metrics=[float("nan") if e[0] is None else e[0] for e in epochs],
                    epoch_losses=[float("nan") if e[1] is None else e[1] for e in epochs],
                    id=rid,
                )
            )
        return out
