"""Ctrl-C during a lab stops it at a point the lab chooses: one line "lrkit lab: interrupted", exit 130,
every claim released. Python's own KeyboardInterrupt could land inside ``concurrent.futures.wait``'s lock
and leave it broken (a tester saw "RuntimeError: release unlocked lock" with a traceback), or end the
process with the worker thread still in torch ("terminate called without an active exception", exit
134): 2 of 17 tries."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("torch")

from lrkit.lab.runner import Strategy, run_lab


def _rows(db: Path) -> dict[str, int]:
    con = sqlite3.connect(db)
    try:
        return dict(con.execute("SELECT status, count(*) FROM runs GROUP BY status").fetchall())
    finally:
        con.close()


def test_ctrl_c_is_raised_at_the_labs_own_turn_and_releases_every_claim(tmp_path: Path) -> None:
    db = tmp_path / "lab.db"
    before = signal.getsignal(signal.SIGINT)
    timers: list[threading.Timer] = []

    def progress(event: str, info: dict[str, Any]) -> None:
        if event == "tick" and not timers:  # the lab's loop runs: Ctrl-C in a moment, while runs train
            timers.append(threading.Timer(0.3, signal.raise_signal, args=(signal.SIGINT,)))
            timers[0].start()

    strategies = [Strategy("a", "constant(0.05)"), Strategy("b", "cosine(lr=0.05)")]
    with pytest.raises(KeyboardInterrupt) as info:
        run_lab("digits-mlp-sgd", strategies, seeds=[0, 1], epochs=200, store=str(db), progress=progress)
    timers[0].join()
    assert info.traceback[-1].name == "check", info.traceback  # raised by the lab, not inside a lock
    assert signal.getsignal(signal.SIGINT) is before  # Ctrl-C is given back
    assert _rows(db).get("running", 0) == 0


@pytest.mark.parametrize("workers", ["1", "2"])
def test_ctrl_c_on_the_command_line_says_one_line_and_exits_130(tmp_path: Path, workers: str) -> None:
    """As a terminal sends it: SIGINT to the whole process group (the lab and its worker processes)."""
    out = tmp_path / "lab"
    argv = [sys.executable, "-m", "lrkit.cli", "lab", "--task", "digits-mlp-sgd", "--epochs", "400"]
    argv += ["--strategy", "a=constant(0.05)", "--strategy", "b=cosine(lr=0.05)", "--seeds", "2"]
    argv += ["--workers", workers, "--out", str(out)]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MPLBACKEND": "Agg"}
    lab = subprocess.Popen(
        argv,
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 120
        while not ((out / "lab.db").exists() and _rows(out / "lab.db").get("running")):
            assert lab.poll() is None and time.monotonic() < deadline, lab.communicate()
            time.sleep(0.1)
        time.sleep(1.0)  # runs under way
        os.killpg(lab.pid, signal.SIGINT)
        stdout, stderr = lab.communicate(timeout=120)
    finally:
        if lab.poll() is None:
            os.killpg(lab.pid, signal.SIGKILL)
    assert lab.returncode == 130, (stdout, stderr)
    assert stderr.strip().splitlines()[-1] == "lrkit lab: interrupted", stderr
    assert "Traceback" not in stderr and "terminate called" not in stderr, stderr
    assert _rows(out / "lab.db").get("running", 0) == 0
