"""A directory where lrkit writes a file (OUT/report.html a folder) passed the output check: the lab
trained in full and failed writing the report. It is refused before anything runs, naming the path."""

from __future__ import annotations

from pathlib import Path

import pytest

pytest.importorskip("torch")

from lrkit._paths import check_output_dir
from lrkit.cli import main


@pytest.mark.parametrize("name", ["report.html", "lab.md", "runs.csv"])
def test_a_directory_in_place_of_an_output_file_is_refused_first(
    tmp_path: Path, name: str, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "out"
    (out / name).mkdir(parents=True)
    argv = ["lab", "--task", "digits-mlp-sgd", "--epochs", "1", "--strategy", "c=constant(0.05)"]
    assert main([*argv, "--workers", "1", "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert f"{name}' is a directory where lrkit writes a file" in err, err
    assert not (out / "lab.db").exists()  # refused before the lab started


def test_the_check_names_the_flag(tmp_path: Path) -> None:
    (tmp_path / "lab.png").mkdir()
    with pytest.raises(ValueError, match=r"--out: .*lab\.png' is a directory where lrkit writes a file"):
        check_output_dir(tmp_path, "--out", ["lab.png"])
