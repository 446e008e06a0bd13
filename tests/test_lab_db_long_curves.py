"""A run's curves are read column by column when long (a 100,000-step lab's report spent most of its time
checking each step's values one by one): the values read are those written, and a damaged value in a long
curve is still refused naming the table, the column and the run, as in a short one."""

from __future__ import annotations

import math
import sqlite3
from pathlib import Path

import numpy as np
import pytest

from lrkit.lab.store import ResultStore, RunRecord, run_key


def _long_run(db: Path, n: int) -> tuple[str, list[float], list[float]]:
    store = ResultStore(str(db))
    cfg = {"task": "t", "spec": "constant(lr=0.1)", "optimizer": "sgd", "seed": 0}
    key = run_key(cfg)
    assert store.claim(key, cfg, owner="me") == "claimed"
    rng = np.random.default_rng(0)
    lrs = [float(v) for v in rng.uniform(1e-4, 1.0, n)]
    lrs[7] = 1  # SQLite gives an int back for a whole number stored as one
    losses = [float(v) for v in rng.normal(2.0, 0.5, n)]
    losses[3] = math.nan  # stored as NULL: a loss that was not finite
    rec = RunRecord(key, "constant(lr=0.1)", "sgd", 0, "ok", 0.9, 0.9, None, n, 1.0, lrs=lrs, losses=losses,
                    epoch_metrics=[0.9], epoch_losses=[2.2])  # fmt: skip
    assert store.finish(rec, "me")
    store.close()
    return key, lrs, losses


@pytest.mark.parametrize("n", [10, 5000])
def test_a_curve_reads_back_as_written(tmp_path: Path, n: int) -> None:
    key, lrs, losses = _long_run(tmp_path / "lab.db", n)
    got = ResultStore(str(tmp_path / "lab.db")).run(key)
    assert got is not None and got.lrs == lrs and got.losses[:3] == losses[:3] and math.isnan(got.losses[3])
    assert got.losses[4:] == losses[4:]


@pytest.mark.parametrize(
    ("sql", "said"),
    [
        (
            "UPDATE steps SET lr = 'big' WHERE step = 4000",
            "column lr ({who}): expected a finite number, got str 'big'",
        ),
        (
            "UPDATE steps SET loss = 1e999 WHERE step = 10",
            "column loss ({who}): expected a finite number, got float inf",
        ),
        (
            "UPDATE steps SET loss = x'00' WHERE step = 10",
            "column loss ({who}): expected a finite number, got bytes",
        ),
    ],
)
def test_a_damaged_value_in_a_long_curve_is_named(tmp_path: Path, sql: str, said: str) -> None:
    key, _, _ = _long_run(tmp_path / "lab.db", 5000)
    con = sqlite3.connect(tmp_path / "lab.db")
    con.execute(sql)
    con.commit()
    con.close()
    with pytest.raises(ValueError, match="is damaged or was not written by lrkit") as got:
        ResultStore(str(tmp_path / "lab.db")).run(key)
    assert f"table steps, {said.format(who=f'run {key!r}')}" in str(got.value), str(got.value)
