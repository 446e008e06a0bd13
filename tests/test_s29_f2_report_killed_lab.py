"""``lrkit report`` on the database of a lab killed by SIGKILL (still in WAL mode, its latest results in
``lab.db-wal``) leaves the folder as it found it: no ``-shm``/``-wal`` file created, none changed (SQLite's
read-only reader created ``lab.db-shm`` beside a copied ``lab.db`` + ``lab.db-wal`` and rewrote an existing
one), and the report still holds every run the lab finished before it was killed."""

from __future__ import annotations

import csv
import hashlib
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytest.importorskip("torch")


def _files(folder: Path) -> dict[str, str]:
    """Each file of ``folder`` whose name starts with ``lab.db``, with a hash of its bytes."""
    return {
        f.name: hashlib.sha256(f.read_bytes()).hexdigest()
        for f in sorted(folder.iterdir())
        if f.name.startswith("lab.db")
    }


@pytest.fixture(scope="module")
def killed(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, int]:
    """The output folder of a lab SIGKILLed after it finished at least 2 runs, and how many it said."""
    out = tmp_path_factory.mktemp("killed") / "lab"
    argv = [sys.executable, "-m", "lrkit.cli", "lab", "--task", "digits-mlp-sgd", "--seeds", "40"]
    argv += ["--strategy", "c=cosine(lr=0.05)", "--workers", "1", "--out", str(out)]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MPLBACKEND": "Agg"}
    lab = subprocess.Popen(argv, env=env, stdout=subprocess.PIPE, text=True, start_new_session=True)
    said: list[str] = []
    try:
        assert lab.stdout is not None
        deadline = time.monotonic() + 180
        while sum(bool(re.match(r"\s*\[\d+/40\]", line)) for line in said) < 2:
            assert time.monotonic() < deadline and lab.poll() is None, said
            said.append(lab.stdout.readline())
        os.killpg(lab.pid, signal.SIGKILL)
        lab.wait(timeout=60)
    finally:
        if lab.poll() is None:
            os.killpg(lab.pid, signal.SIGKILL)
    finished = sum(bool(re.match(r"\s*\[\d+/40\]", line)) for line in said)
    assert {"lab.db", "lab.db-wal", "lab.db-shm"} <= set(_files(out)), list(out.iterdir())
    assert not (out / "runs.csv").exists()  # killed before its report
    return out, finished


@pytest.mark.parametrize("shm", [True, False], ids=["as-killed", "copied-without-shm"])
def test_report_of_a_killed_labs_database_leaves_its_files_as_it_found_them(
    killed: tuple[Path, int], tmp_path: Path, shm: bool
) -> None:
    source, finished = killed
    folder = tmp_path / "lab"
    folder.mkdir()
    for name in ("lab.db", "lab.db-wal") + (("lab.db-shm",) if shm else ()):
        (folder / name).write_bytes((source / name).read_bytes())
    before = _files(folder)
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MPLBACKEND": "Agg"}
    done = subprocess.run(
        [sys.executable, "-m", "lrkit.cli", "report", str(folder), "--out", str(tmp_path / "report")],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    assert _files(folder) == before  # no file created beside lab.db, none changed
    with open(tmp_path / "report" / "runs.csv", newline="") as f:
        ok = [row for row in csv.DictReader(f) if row["status"] == "ok"]
    assert len(ok) >= finished >= 2  # the runs committed only to lab.db-wal are read
