"""lrkit overwrites only the files it wrote: every output carries lrkit's mark, a re-run replaces its own
file, and a file without the mark (the user's) is refused before any work, named with its flag, and left
byte for byte as it was.

Each command that writes is driven with each kind of foreign file at the path it would write: empty,
random bytes, text mentioning lrkit, a real figure or JSON made without the mark, lrkit's mark in the
wrong place, and a symlink to an lrkit file.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from lrkit._paths import (
    check_output_dir,
    check_output_file,
    owned_by_lrkit,
    savefig_metadata,
    write_json,
    write_output,
)

from .test_cli_inputs import FUZZ, assert_one_error, invoke

pytest.importorskip("matplotlib")


def _figure_bytes(suffix: str, metadata: dict[str, str] | None = None) -> bytes:
    import io

    from matplotlib.figure import Figure

    fig = Figure(figsize=(2, 2))
    fig.add_subplot().plot([0, 1], [1, 0])
    buf = io.BytesIO()
    fig.savefig(buf, format=suffix[1:], metadata=metadata)
    return buf.getvalue()


def _foreign(suffix: str) -> dict[str, bytes]:
    """Files lrkit did not write, for a path ending in ``suffix``."""
    kinds = {
        "empty": b"",
        "random bytes": os.urandom(3000),
        "text naming lrkit": b"my notes on lrkit: Software lrkit Creator (lrkit\n",
    }
    if suffix in (".png", ".svg", ".pdf"):
        kinds["a figure without the mark"] = _figure_bytes(suffix)
        kinds["a figure by another tool"] = _figure_bytes(
            suffix, {"Software" if suffix == ".png" else "Creator": "gnuplot"}
        )
    if suffix == ".json":
        kinds["JSON without the mark"] = json.dumps({"suggestion": 0.1}).encode()
        kinds["the mark not first"] = json.dumps({"a": 1, "written_by": "lrkit"}).encode()
        kinds["another writer"] = json.dumps({"written_by": "someone"}).encode()
    if suffix == ".html":
        kinds["a page"] = b"<html><head><title>lrkit notes</title></head><body>lrkit</body></html>"
    if suffix == ".md":
        kinds["notes"] = b"# lrkit\n<!-- written by me, about lrkit -->\n"
    if suffix == ".csv":
        kinds["a table"] = b"label,spec\nmine,cosine\n"
    return kinds


FIND = ["find", "--task", "digits-mlp-adam", "--num-steps", "20", "--repeats", "1"]
#: (argv before the path, argv after it, the flag named, the file name written)
FILE_OUTPUTS = {
    "plot --out png": (["plot", "cosine(lr=0.1)", "--total", "50", "--out"], [], "--out", "x.png"),
    "plot --out svg": (["plot", "cosine(lr=0.1)", "--total", "50", "--out"], [], "--out", "x.svg"),
    "plot --out pdf": (["plot", "cosine(lr=0.1)", "--total", "50", "--out"], [], "--out", "x.pdf"),
    "gallery --out": (["gallery", "--total", "50", "--out"], [], "--out", "g.png"),
    "find --out": ([*FIND, "--out"], [], "--out", "lr.png"),
    "find --json": ([*FIND, "--json"], ["--out", "none"], "--json", "lr.json"),
    "auto --json": (["auto", "--task", "digits-mlp-adam", "--epochs", "1", "--json"], [], "--json", "a.json"),
    "auto --plot": (["auto", "--task", "digits-mlp-adam", "--epochs", "1", "--plot"], [], "--plot", "a.svg"),
}
LAB = ["lab", "--strategy", "constant(0.05)", "--epochs", "1", "--workers", "1", "--out"]
#: commands writing a folder: (argv before the folder, the files they write there)
DIR_OUTPUTS = {
    "lab --out": (LAB, ("report.html", "runs.csv", "epochs.csv", "lab.md", "lab.png")),
    "demo --out": (
        ["demo", "--quick", "--out"],
        ("gallery.png", "recipes.png", "lr_find.png", "report.html"),
    ),
    "tune --out": (
        ["tune", "--task", "digits-mlp-sgd", "--trials", "1", "--epochs", "1", "--storage", "t.db", "--out"],
        ("report.html", "runs.csv", "lab.md"),
    ),
}


@pytest.fixture
def here(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    monkeypatch.chdir(tmp_path)
    yield tmp_path


def _refuses_before_work(monkeypatch: pytest.MonkeyPatch) -> None:
    """Any training, range test or lab run fails the test: the refusal must come first."""
    import lrkit.auto
    import lrkit.lab.cli
    import lrkit.tasks.base

    def never(*args: object, **kwargs: object) -> None:
        raise AssertionError("work started before the output path was checked")

    monkeypatch.setattr(lrkit.auto, "train_task", never)
    monkeypatch.setattr(lrkit.tasks.base.Task, "find_lr", never)
    monkeypatch.setattr(lrkit.lab.cli, "run_and_report", never)


@pytest.mark.parametrize("name", list(FILE_OUTPUTS))
def test_a_file_lrkit_did_not_write_is_refused_and_kept(
    name: str, here: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    head, tail, flag, file = FILE_OUTPUTS[name]
    _refuses_before_work(monkeypatch)
    for kind, data in _foreign(Path(file).suffix).items():
        target = here / kind.replace(" ", "_") / file
        target.parent.mkdir()
        target.write_bytes(data)
        code, out, err = invoke(capsys, [*head, str(target), *tail])
        line = assert_one_error(code, out, err, flag, "lrkit did not write it")
        assert str(target) in line, (kind, line)
        assert target.read_bytes() == data, kind
        assert sorted(p.name for p in target.parent.iterdir()) == [file], kind  # no temporary left


def test_a_symlink_is_refused_even_to_lrkit_s_own_file(
    here: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    own = here / "own.png"
    assert invoke(capsys, ["plot", "cosine(lr=0.1)", "--total", "50", "--out", str(own)])[0] == 0
    link = here / "link.png"
    link.symlink_to(own)
    before = own.read_bytes()
    code, out, err = invoke(capsys, ["plot", "cosine(lr=0.2)", "--total", "50", "--out", str(link)])
    assert_one_error(code, out, err, "--out", "lrkit did not write it")
    assert own.read_bytes() == before and link.is_symlink()


@pytest.mark.parametrize(
    "name", ["plot --out png", "plot --out svg", "plot --out pdf", "find --json", "auto --plot"]
)
def test_a_re_run_replaces_lrkit_s_own_file(
    name: str, here: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    head, tail, _, file = FILE_OUTPUTS[name]
    target = here / file
    for _ in range(2):
        code, _, err = invoke(capsys, [*head, str(target), *tail])
        assert code == 0, err
        assert owned_by_lrkit(target)
    if file.endswith(".json"):
        assert next(iter(json.loads(target.read_text()))) == "written_by"


@pytest.mark.parametrize("name", list(DIR_OUTPUTS))
def test_a_folder_holding_a_file_lrkit_did_not_write_is_refused_before_work(
    name: str, here: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    head, files = DIR_OUTPUTS[name]
    _refuses_before_work(monkeypatch)

    def no_demo_work(*args: object, **kwargs: object) -> None:
        raise AssertionError("the demo wrote before its folder was checked")

    monkeypatch.setattr("lrkit.plot.gallery", no_demo_work)
    for file in files:
        folder = here / f"{name.split()[0]}-{file}"
        folder.mkdir()
        mine = folder / file
        mine.write_bytes(b"mine: " + file.encode())
        code, out, err = invoke(capsys, [*head, str(folder)])
        line = assert_one_error(code, out, err, "--out", "lrkit did not write it")
        assert str(mine) in line
        assert mine.read_bytes() == b"mine: " + file.encode()
        assert [p.name for p in folder.iterdir()] == [file]  # no lab.db, nothing else


def test_a_lab_re_run_and_lrkit_report_replace_their_own_files(
    here: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = here / "lab"
    assert invoke(capsys, [*LAB, str(out)])[0] == 0
    for file in DIR_OUTPUTS["lab --out"][1]:
        assert owned_by_lrkit(out / file), file
    assert (out / "lab.md").read_text().startswith("<!-- written by lrkit -->\n# ")
    assert invoke(capsys, ["report", str(out)])[0] == 0  # re-made over its own files
    (out / "runs.csv").write_text("label,spec\nmine,x\n")  # replaced by a user's table
    code, out_text, err = invoke(capsys, ["report", str(out)])
    assert_one_error(code, out_text, err, "--out", "runs.csv")
    assert (out / "runs.csv").read_text() == "label,spec\nmine,x\n"


def test_write_all_writes_nothing_when_one_file_is_foreign(
    here: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The library call, without the command line's check: all or nothing."""
    from lrkit.lab.report import load_result, write_all

    src = here / "src"
    assert invoke(capsys, [*LAB, str(src)])[0] == 0
    result, _ = load_result(src)
    dest = here / "dest"
    dest.mkdir()
    (dest / "lab.md").write_text("my notes")
    with pytest.raises(ValueError, match=r"out_dir: .*lab\.md.*lrkit did not write it"):
        write_all(result, dest)
    assert sorted(p.name for p in dest.iterdir()) == ["lab.md"]


@pytest.mark.parametrize("suffix", [".png", ".svg", ".pdf"])
def test_python_plots_refuse_a_foreign_file(suffix: str, here: Path) -> None:
    from lrkit.plot import plot_schedules

    target = here / f"mine{suffix}"
    data = _figure_bytes(suffix)
    target.write_bytes(data)
    with pytest.raises(ValueError, match="lrkit did not write it"):
        plot_schedules(["cosine(lr=0.1)"], 100, target)
    assert target.read_bytes() == data
    target.unlink()
    plot_schedules(["cosine(lr=0.1)"], 100, target)
    assert owned_by_lrkit(target) and target.read_bytes()[:4] in (b"\x89PNG", b"<?xm", b"%PDF")


@FUZZ
@given(
    data=st.binary(max_size=4000),
    suffix=st.sampled_from([".png", ".svg", ".pdf", ".json", ".html", ".md", ".csv", ".txt", ""]),
)
def test_no_bytes_without_the_mark_are_taken_for_lrkit_s(data: bytes, suffix: str, tmp_path: Path) -> None:
    path = tmp_path / f"f{suffix}"
    path.write_bytes(data.replace(b"lrkit", b"lrk1t"))
    assert not owned_by_lrkit(path)
    with pytest.raises(ValueError, match="--x"):
        check_output_file(path, "--x")
    with pytest.raises(ValueError, match="--x"):
        check_output_dir(tmp_path, "--x", [path.name])
    with pytest.raises(ValueError, match="lrkit did not write it"):
        write_output(path, b"new")
    assert path.read_bytes() == data.replace(b"lrkit", b"lrk1t")


@pytest.mark.parametrize("suffix", [".png", ".svg", ".pdf"])
def test_the_figure_mark_is_what_savefig_writes(suffix: str, tmp_path: Path) -> None:
    path = tmp_path / f"f{suffix}"
    path.write_bytes(_figure_bytes(suffix, savefig_metadata(path)))
    assert owned_by_lrkit(path)
    write_output(path, b"replaced")  # its own: replaced
    assert path.read_bytes() == b"replaced"


def test_write_json_marks_and_replaces_its_own(tmp_path: Path) -> None:
    path = tmp_path / "deep" / "r.json"
    write_json(path, {"x": 1})
    assert json.loads(path.read_text()) == {"written_by": "lrkit", "x": 1} and owned_by_lrkit(path)
    write_json(path, {"x": 2})
    assert json.loads(path.read_text())["x"] == 2
