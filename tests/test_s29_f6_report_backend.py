"""lrkit's lab report draws on its own Agg canvas: under MPLBACKEND=pdf or svg (or matplotlib.use("svg")
in a notebook) every lab report crashed, its legend asking the backend's canvas for a renderer, which
only Agg's has (a tester's finding)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest


@pytest.mark.parametrize("backend", ["pdf", "svg"])
def test_report_under_a_non_agg_backend(lab_db: Path, tmp_path: Path, backend: str) -> None:
    shutil.copy(lab_db, tmp_path / "lab.db")
    env = {**os.environ, "MPLBACKEND": backend}
    done = subprocess.run(
        [sys.executable, "-m", "lrkit", "report", str(tmp_path / "lab.db"), "--out", str(tmp_path / "r")],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "r" / "lab.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "data:image/png;base64," in (tmp_path / "r" / "report.html").read_text(encoding="utf-8")
