"""A lab worker process killed from outside (the OOM killer, kill -9) ends the lab with one clear line
saying the finished runs are kept and a rerun runs the rest, not a BrokenProcessPool traceback; and the
rerun does."""

from __future__ import annotations

import os
import sqlite3
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

pytest.importorskip("torch")

from lrkit.lab.store import STALE_SECONDS

TASK_MODULE = """
import os, signal, time
import torch
from torch.utils.data import DataLoader, TensorDataset
from lrkit.tasks import TaskParts


def dies_in_a_worker(seed):
    # a file, not an environment variable: a forkserver keeps the environment it started with
    in_worker = os.getpid() != int(os.environ["LRKIT_TEST_MAIN_PID"])
    if in_worker and os.path.exists(os.environ["LRKIT_TEST_KILL_FLAG"]):
        os.kill(os.getpid(), signal.SIGKILL)  # a pool worker: killed as the OOM killer would
    if seed:
        time.sleep(0.5)  # the lab's own thread stays busy while the worker processes start
    torch.manual_seed(seed)
    x = torch.randn(64, 4)
    y = (x[:, 0] > 0).long()
    data = DataLoader(TensorDataset(x, y), batch_size=32)
    model = torch.nn.Linear(4, 2)
    return TaskParts(model, data, data, torch.nn.functional.cross_entropy, metric="accuracy", epochs=1)
"""


@pytest.fixture
def task_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    d = tmp_path / "task"
    d.mkdir()
    (d / "dying_task.py").write_text(TASK_MODULE)
    monkeypatch.syspath_prepend(str(d))
    monkeypatch.setenv("LRKIT_TEST_MAIN_PID", str(os.getpid()))
    monkeypatch.setenv("LRKIT_TEST_KILL_FLAG", str(d / "kill"))
    yield d
    sys.modules.pop("dying_task", None)


@pytest.mark.usefixtures("task_dir")
def test_a_killed_worker_ends_the_lab_with_a_clear_line_and_a_rerun_finishes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from lrkit.cli import main

    out = tmp_path / "lab"
    argv = ["lab", "--task", "dying_task:dies_in_a_worker", "--strategy", "c=constant(0.1)"]
    argv += ["--seeds", "8", "--workers", "2", "--out", str(out)]
    flag = Path(os.environ["LRKIT_TEST_KILL_FLAG"])
    flag.touch()
    assert main(argv) == 1
    err = capsys.readouterr().err
    assert "Traceback" not in err and "BrokenProcessPool" not in err
    assert "lrkit lab: error: a lab worker process died (killed from outside, or out of memory" in err
    assert f"the finished runs are kept in {out / 'lab.db'}: run the same command again" in err
    con = sqlite3.connect(out / "lab.db")
    kept = con.execute("SELECT count(*) FROM runs WHERE status = 'ok'").fetchone()[0]
    con.close()
    assert kept < 8
    flag.unlink()
    start = time.monotonic()
    assert main(argv) == 0
    # the dead worker's runs were released: the rerun (in this same, live process) did not wait for
    # their claims to go stale (STALE_SECONDS)
    assert time.monotonic() - start < STALE_SECONDS / 2
    text = capsys.readouterr().out
    assert f"({kept} already in the database, skipped)" in text if kept else "lab: 8 runs\n" in text
    con = sqlite3.connect(out / "lab.db")
    assert con.execute("SELECT count(*) FROM runs WHERE status = 'ok'").fetchone()[0] == 8
    con.close()
