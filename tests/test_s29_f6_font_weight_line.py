"""``lrkit demo --lang ko`` printed matplotlib's "findfont: Failed to find font weight bold for
NanumGothic, now using 600" (the range test's suggestion is drawn bold; NanumGothic's bold is 600): lrkit
leaves that line out while it draws its own Korean figures (a tester's finding). Run in a fresh process:
matplotlib logs a font lookup once per process."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

pytest.importorskip("torch")
pytest.importorskip("matplotlib")

SCRIPT = textwrap.dedent(
    """
    import sys
    from pathlib import Path
    import torch
    torch.set_num_threads(1)
    from lrkit.demo import finder_figure
    from lrkit.tasks import get_task
    found = get_task("digits-mlp-sgd").find_lr(seed=0, repeats=1)
    assert found.suggestion is not None  # its label is the bold text
    finder_figure(found, Path(sys.argv[1]), sys.argv[2])
    """
)


def test_the_demo_s_korean_finder_figure_logs_no_font_weight_line(tmp_path: Path) -> None:
    from lrkit.lab.report import _hangul_font

    if _hangul_font() is None:
        pytest.skip("no font with Hangul: the figure is drawn in English")
    out = tmp_path / "lr_find.png"
    done = subprocess.run(
        [sys.executable, "-c", SCRIPT, str(out), "ko"],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert "findfont" not in done.stderr, done.stderr
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
