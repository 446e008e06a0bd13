"""A spec path that is not a regular file says what it is: a FIFO, a link to /dev/zero and a link loop
were all "no such file" although they exist (a tester's finding)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

import lrkit
from lrkit.spec import SpecError


def _make(kind: str, d: Path) -> Path:
    p = d / "s.json"
    if kind == "missing":
        pass
    elif kind == "dangling":
        p.symlink_to(d / "gone.json")
    elif kind == "loop":
        p.symlink_to(d / "t.json")
        (d / "t.json").symlink_to(p)
    elif kind == "fifo":
        os.mkfifo(p)
    elif kind == "device":
        p.symlink_to("/dev/zero")
    return p


@pytest.mark.parametrize(
    ("kind", "said"),
    [
        ("missing", "no such file '"),
        ("dangling", "(a symbolic link to nothing)"),
        ("loop", "is a symbolic link in a loop, not a spec file"),
        ("fifo", "is not a regular file (a FIFO, a device, a socket...)"),
        ("device", "is not a regular file (a FIFO, a device, a socket...)"),
    ],
)
def test_a_path_that_is_not_a_regular_file_says_what_it_is(tmp_path: Path, kind: str, said: str) -> None:
    p = _make(kind, tmp_path)
    with pytest.raises(SpecError, match=r"^spec: ") as e:
        lrkit.load(p)
    assert said in str(e.value), str(e.value)


@pytest.mark.parametrize("kind", ["fifo", "device", "loop"])
def test_an_experiment_file_that_is_not_a_regular_file_says_what_it_is(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], kind: str
) -> None:
    from lrkit.cli import main

    p = _make(kind, tmp_path).rename(tmp_path / "exp.yaml") if kind == "fifo" else None
    if p is None:
        q = tmp_path / "exp.yaml"
        q.symlink_to("/dev/zero" if kind == "device" else tmp_path / "exp2.yaml")
        if kind == "loop":
            (tmp_path / "exp2.yaml").symlink_to(q)
        p = q
    assert main(["lab", str(p)]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"lrkit lab: error: experiment: {str(p)!r} is "), err
    assert "not a regular file" in err or "in a loop" in err, err
