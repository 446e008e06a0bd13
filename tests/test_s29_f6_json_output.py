"""``--json`` of lrkit find and lrkit auto: lrkit knows its own JSON by its mark whatever the file is
named (a rerun with ``--json result`` said "exists and lrkit did not write it"), and ``--json -`` writes
the JSON to stdout, alone (it wrote a file named "-"), the command's text going to stderr (a tester's
findings)."""

from __future__ import annotations

import json
import textwrap
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from lrkit._paths import check_output_file, owned_by_lrkit, write_json, write_output
from lrkit.cli import main

#: a user's task that learns: the class is the sign of the first input
TASK = textwrap.dedent(
    """
    import torch
    from torch.utils.data import DataLoader, TensorDataset
    from lrkit.tasks import TaskParts

    def learns(seed):
        torch.manual_seed(seed)
        g = torch.Generator().manual_seed(0)
        x = torch.randn(256, 8, generator=g)
        y = (x[:, 0] > 0).long()
        loader = DataLoader(TensorDataset(x, y), batch_size=16, shuffle=True, generator=g)
        return TaskParts(torch.nn.Linear(8, 2), loader, [(x, y)], torch.nn.functional.cross_entropy,
                         epochs=2, optimizer="sgd")
    """
)


@pytest.fixture
def task(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    name = f"s29_f6_task_{uuid.uuid4().hex[:8]}"
    (tmp_path / f"{name}.py").write_text(TASK)
    monkeypatch.syspath_prepend(str(tmp_path))
    yield f"{name}:learns"


@pytest.mark.parametrize("name", ["result", "out.txt", "run.JSON.bak", "-x"])
def test_lrkit_json_is_lrkit_s_whatever_its_name(tmp_path: Path, name: str) -> None:
    p = tmp_path / name
    write_json(p, {"suggestion": 0.1})
    assert owned_by_lrkit(p)
    assert check_output_file(p, "--json") == p  # a rerun may replace it
    write_json(p, {"suggestion": 0.2})  # and does
    assert json.loads(p.read_text())["suggestion"] == 0.2


def test_a_user_file_stays_refused_whatever_its_name(tmp_path: Path) -> None:
    for name, data in (("result", b'{"written_by": "me"}'), ("notes.txt", b"lrkit notes")):
        p = tmp_path / name
        p.write_bytes(data)
        assert not owned_by_lrkit(p)
        with pytest.raises(ValueError, match="exists and lrkit did not write it"):
            check_output_file(p, "--json")
        with pytest.raises(ValueError, match="exists and lrkit did not write it"):
            write_output(p, b"{}", "--json")


@pytest.mark.usefixtures("one_torch_thread")
def test_find_reruns_over_its_own_json_without_a_suffix(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    argv = ["find", "--task", "digits-mlp-sgd", "--out", "none", "--json", "result"]
    assert main(argv) == 0
    assert main(argv) == 0, capsys.readouterr().err
    assert json.loads((tmp_path / "result").read_text())["written_by"] == "lrkit"


@pytest.mark.usefixtures("one_torch_thread")
def test_find_json_dash_is_stdout_alone(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    code = main(["find", "--task", "digits-mlp-sgd", "--out", "none", "--json", "-"])
    out, err = capsys.readouterr()
    assert code == 0, err
    data = json.loads(out)  # stdout is the JSON and nothing else
    assert data["written_by"] == "lrkit" and data["suggestion"] > 0
    assert "suggested" in err  # the text result, on stderr
    assert not (tmp_path / "-").exists()


@pytest.mark.usefixtures("one_torch_thread")
def test_auto_json_dash_is_stdout_alone(
    task: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    code = main(["auto", "--task", task, "--json", "-"])
    out, err = capsys.readouterr()
    assert code == 0, err
    data = json.loads(out)
    assert data["written_by"] == "lrkit" and data["peak_lr"] > 0 and "metric" in data
    assert "after" in err and "steps" in err  # the summary line, on stderr
    assert not (tmp_path / "-").exists()


def test_help_says_json_dash(capsys: pytest.CaptureFixture[str]) -> None:
    for command in ("find", "auto"):
        assert main([command, "--help"]) == 0
        assert "'-': to stdout" in " ".join(capsys.readouterr().out.split())
