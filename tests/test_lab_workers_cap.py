"""``--workers`` beyond the number of runs starts no idle processes: each imports torch (seconds, ~300 MB),
and ``--workers 100000`` on a 2-run lab would otherwise try to start 99,999 of them."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("torch")

from lrkit.cli import main
from lrkit.lab import runner

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.mark.parametrize(("asked", "started"), [(100_000, 2), (3, 2), (2, 2), (1, 1)])
def test_workers_never_exceed_the_runs(
    asked: int,
    started: int,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Two runs: at most two workers (this process's thread and one process), whatever was asked."""
    pools: list[int] = []
    real = runner.ProcessPoolExecutor

    def counting(max_workers: int, **kwargs: Any) -> Any:
        pools.append(max_workers)
        return real(max_workers, **kwargs)

    monkeypatch.setattr(runner, "ProcessPoolExecutor", counting)
    argv = ["lab", "--strategy", "constant(0.05)", "--strategy", "constant(0.1)", "--epochs", "1"]
    rc = main([*argv, "--workers", str(asked), "--out", str(tmp_path / "o")])
    out = capsys.readouterr().out
    assert rc == 0
    assert f"{started} worker" in out.splitlines()[0]
    assert pools == ([started - 1] if started > 1 else [])  # the processes beside this one's thread
