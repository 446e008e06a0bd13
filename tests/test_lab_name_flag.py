"""``lrkit lab --name`` is held to what an experiment file's ``name`` is: a non-empty string (``--name ""``
was taken, and the report's title read "lrkit lab ''"; a tester's finding), spaces around it dropped."""

from __future__ import annotations

from pathlib import Path

import pytest

from lrkit.cli import main


@pytest.mark.parametrize("name", ["", "   ", "\t"])
def test_an_empty_name_is_refused_before_anything_runs(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], name: str
) -> None:
    out = tmp_path / "lab"
    argv = ["lab", "--task", "digits-mlp-sgd", "--strategy", "c=constant(0.05)", "--epochs", "1"]
    assert main([*argv, "--out", str(out), "--name", name]) == 2
    err = capsys.readouterr().err
    assert err == f"lrkit lab: error: --name must be a non-empty string, got {name!r}\n"
    assert not out.exists()
