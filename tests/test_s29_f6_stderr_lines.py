"""Error and no-result lines go to stderr, under the name of the command that ran: a lab report that
could not be written was said on stdout as "lrkit lab: error: ..." also under lrkit tune and lrkit demo,
and lrkit find's "no learning rate suggested" and lrkit auto's "nothing trained" lines were on stdout (a
tester's findings; tests/test_cli_exit.py checks the find and auto lines)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from lrkit.cli import main

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture
def blocked(monkeypatch: pytest.MonkeyPatch) -> None:
    """Writing report.html fails (a full disk): the lab runs, then its report cannot be written. (A
    directory in its place is now refused before the lab runs.)"""
    import lrkit.lab.report as report

    real = report.write_output

    def failing(path: Any, data: bytes, *args: Any, **kwargs: Any) -> Any:
        if Path(path).name == "report.html":
            raise OSError(28, "No space left on device", str(path))
        return real(path, data, *args, **kwargs)

    monkeypatch.setattr(report, "write_output", failing)


@pytest.mark.usefixtures("blocked")
def test_a_failed_lab_report_is_an_error_on_stderr(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "lab"
    argv = ["lab", "--task", "digits-mlp-sgd", "--epochs", "1", "--strategy", "c=constant(0.05)"]
    code = main([*argv, "--workers", "1", "--out", str(out)])
    stdout, err = capsys.readouterr()
    assert code == 1, err
    assert "error" not in stdout and "writing the report failed" not in stdout
    first, second = err.splitlines()[-2:]
    assert first.startswith("lrkit lab: error: writing the report failed: ") and "report.html" in first
    assert second == f"  the results are safe in {out / 'lab.db'}; re-make the report with: lrkit report " + (
        f"{out / 'lab.db'} --out DIR"
    )
    assert (out / "lab.db").exists()


@pytest.mark.usefixtures("tiny_task", "blocked")
def test_a_failed_tune_report_is_tune_s_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    pytest.importorskip("optuna")
    out = tmp_path / "tune"
    argv = ["tune", "--task", "tiny_tune_task:tiny", "--epochs", "2", "--trials", "2", "--no-finder"]
    argv += ["--lr-range", "0.01", "0.3", "--report-seeds", "1", "--storage", str(tmp_path / "t.db")]
    code = main([*argv, "--out", str(out)])
    stdout, err = capsys.readouterr()
    assert code == 1, err
    assert "writing the report failed" not in stdout
    assert "lrkit tune: error: writing the report failed: " in err and "lrkit lab:" not in err
    said, spec = stdout.splitlines()[-2:]  # stdout still ends with the best spec, as documented
    assert said.startswith("best spec (") and spec.startswith(("warmup(", "wsd(", "one_cycle(", "cosine("))
