"""A process killed but not reaped by its parent (a zombie) counts as dead: its temporary files and its
tune claim are taken over, as for a process that is gone."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from lrkit.lab.store import _pid_alive, _remove_dead_tmp

pytestmark = pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="needs Linux's /proc")


def _zombie() -> subprocess.Popen[bytes]:
    """A child SIGKILLed and left unreaped (os.kill(pid, 0) still succeeds for it)."""
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    os.kill(child.pid, signal.SIGKILL)
    for _ in range(500):
        state = Path(f"/proc/{child.pid}/stat").read_text().rpartition(")")[2].split()[0]
        if state == "Z":
            break
        time.sleep(0.01)
    else:
        child.wait()
        pytest.fail("the killed child never became a zombie")
    os.kill(child.pid, 0)  # the premise: the kernel still has the pid
    return child


def test_zombie_is_not_alive_and_running_process_is() -> None:
    child = _zombie()
    try:
        assert not _pid_alive(child.pid)
        assert _pid_alive(os.getpid())
    finally:
        child.wait()
    assert not _pid_alive(child.pid)  # reaped: gone


def test_a_zombies_temporary_file_is_removed(tmp_path: Path) -> None:
    target = tmp_path / "runs.db"
    child = _zombie()
    try:
        dead = tmp_path / f".runs.db.{child.pid}-123.tmp"
        live = tmp_path / f".runs.db.{os.getpid()}-123.tmp"
        dead.write_text("x")
        live.write_text("x")
        _remove_dead_tmp(target)
        assert not dead.exists()
        assert live.exists()
    finally:
        child.wait()


def test_a_zombie_tune_workers_claim_is_free() -> None:
    import socket

    from lrkit.tune.core import _claim_live

    child = _zombie()
    try:
        host = socket.gethostname()
        assert not _claim_live(f"{host}:{child.pid}:n", {"at": time.time()}, time.time())
        assert _claim_live(f"{host}:{os.getpid()}:n", {"at": time.time()}, time.time())
    finally:
        child.wait()
