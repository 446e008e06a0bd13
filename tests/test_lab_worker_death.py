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
import os, signal, threading, time
from pathlib import Path

import torch
from torch.utils.data import DataLoader, TensorDataset
from lrkit.tasks import TaskParts

# files next to this module, written by the test, not environment variables: a forkserver started by an
# earlier test keeps the environment it started with, and its workers inherit that one
HERE = Path(__file__).parent
ARRIVAL_SECONDS = 300  # a worker process starts in seconds; minutes only on a machine far overloaded


def dies_in_a_worker(seed):
    if (HERE / "kill").exists():
        if os.getpid() != int((HERE / "main_pid").read_text()):
            (HERE / "arrived").touch()
            os.kill(os.getpid(), signal.SIGKILL)  # a pool worker: killed as the OOM killer would
        elif threading.current_thread() is not threading.main_thread():
            # a run in the lab's own thread (the probe build is in the main thread) waits for a worker
            # process to take a run: else, on a busy machine, this thread ran all 8 before one started
            deadline = time.monotonic() + ARRIVAL_SECONDS
            while not (HERE / "arrived").exists():
                if time.monotonic() > deadline:
                    raise RuntimeError(f"no lab worker process took a run in {ARRIVAL_SECONDS} s")
                time.sleep(0.05)
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
    (d / "main_pid").write_text(str(os.getpid()))
    monkeypatch.syspath_prepend(str(d))
    yield d
    sys.modules.pop("dying_task", None)


def test_a_killed_worker_ends_the_lab_with_a_clear_line_and_a_rerun_finishes(
    tmp_path: Path, task_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from lrkit.cli import main

    out = tmp_path / "lab"
    argv = ["lab", "--task", "dying_task:dies_in_a_worker", "--strategy", "c=constant(0.1)"]
    argv += ["--seeds", "8", "--workers", "2", "--out", str(out)]
    flag = task_dir / "kill"
    flag.touch()
    rc = main(argv)
    err = capsys.readouterr().err
    assert rc == 1, err
    assert (task_dir / "arrived").exists()  # a worker process took a run, and was killed there
    assert "Traceback" not in err and "BrokenProcessPool" not in err
    died = "lrkit lab: error: a lab worker process died (killed by SIGKILL: from outside, or out of memory"
    assert died in err
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


def test_a_dead_labs_tmp_database_is_removed_on_the_next_open_and_nothing_else(tmp_path: Path) -> None:
    """A lab SIGKILLed while it creates its database leaves ``.NAME.PID-NS.tmp`` beside it; the next
    create or open removes such a file when its PID is dead, and keeps a live lab's and any other file."""
    import subprocess

    from lrkit.lab.store import ResultStore

    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    live = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        db = tmp_path / "lab.db"
        removed = [f".lab.db.{dead.pid}-123456789.tmp", f".lab.db.{dead.pid}-123456789.tmp-journal"]
        kept = [
            f".lab.db.{live.pid}-987654321.tmp",  # a lab creating it right now
            f".other.db.{dead.pid}-1.tmp",  # another database's
            f".lab.db.{dead.pid}-1.tmp.bak",  # not lrkit's exact name
            f"lab.db.{dead.pid}-1.tmp",
            f".lab.db.{dead.pid}.tmp",
            f".lab.db.x{dead.pid}-1.tmp",
            "notes.txt",
        ]
        for name in removed + kept:
            (tmp_path / name).write_bytes(b"x")
        ResultStore(db).close()  # creates the database
        assert set(os.listdir(tmp_path)) - {"lab.db", "lab.db-shm", "lab.db-wal"} == set(kept)
        for name in removed:  # and an open of an existing database removes them too
            (tmp_path / name).write_bytes(b"x")
        ResultStore(db).close()
        assert not any((tmp_path / name).exists() for name in removed)
        assert all((tmp_path / name).read_bytes() == b"x" for name in kept)
    finally:
        live.kill()
        live.wait()
