"""``lrkit report DB_OR_DIR`` names DB_OR_DIR when that path is wrong, before ``--out`` (which defaults
to the database's folder) is looked at: ``report lab/lab.db/x`` said "--out: 'lab/lab.db' is a file"
with no --out given, and a name over 255 bytes was Python's "File name too long", exit 1 (a tester's
findings)."""

from __future__ import annotations

from pathlib import Path

import pytest

from lrkit.cli import main


@pytest.mark.parametrize(
    ("source", "said"),
    [
        (
            "lab/lab.db/x",
            "DB_OR_DIR: 'lab/lab.db/x' does not exist; expected a lab database or its directory",
        ),
        ("h" * 300 + ".db", "DB_OR_DIR: '" + "h" * 300 + ".db' is not a valid path ("),
        ("nothing-here", "DB_OR_DIR: 'nothing-here' does not exist"),
    ],
)
def test_a_wrong_source_is_named_before_out(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    source: str,
    said: str,
) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "lab").mkdir()
    (tmp_path / "lab" / "lab.db").write_bytes(b"")  # a file where the source's folder would be
    assert main(["report", source]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"lrkit report: error: {said}"), err
    assert err.count("\n") == 1 and "--out" not in err
