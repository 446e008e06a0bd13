"""An experiment file's task module is looked for in the file's folder first, then in the current
directory; a path of the file written with backslashes (on Windows) is warned about."""

from __future__ import annotations

import os
import sys
import textwrap
import warnings
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lrkit.lab.experiment import load_experiment, parse_experiment

TASK = textwrap.dedent(
    """
    import torch
    from torch.utils.data import DataLoader, TensorDataset
    from lrkit.tasks import TaskParts

    WHERE = {where!r}

    def make(seed):
        g = torch.Generator().manual_seed(seed)
        x = torch.randn(64, 4, generator=g)
        y = (x.sum(1) > 0).long()
        dl = DataLoader(TensorDataset(x, y), batch_size=32)
        return TaskParts(torch.nn.Linear(4, 2), dl, dl, torch.nn.functional.cross_entropy,
                         metric="accuracy", epochs=1, optimizer="sgd")
    """
)


@pytest.fixture
def clean_imports(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setattr(sys, "path", list(sys.path))
    yield
    for name in [n for n in sys.modules if n.startswith("s31_")]:
        del sys.modules[name]


def _layout(tmp_path: Path, module: str, in_cwd: bool = False) -> tuple[Path, Path]:
    cfg, other = tmp_path / "cfg", tmp_path / "other"
    cfg.mkdir()
    other.mkdir()
    (cfg / f"{module}.py").write_text(TASK.format(where="cfg"))
    if in_cwd:
        (other / f"{module}.py").write_text(TASK.format(where="cwd"))
    exp = cfg / "exp.yaml"
    exp.write_text(
        f'task: {module}:make\nworkers: 2\nseeds: 2\noutput: out\nstrategies: ["c=cosine(lr=0.1)"]\n'
    )
    return exp, other


@pytest.mark.usefixtures("clean_imports")
def test_lab_finds_the_task_module_beside_the_experiment_file_from_another_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from lrkit.cli import main

    exp, other = _layout(tmp_path, "s31_beside_task")
    monkeypatch.chdir(other)
    assert main(["lab", os.path.relpath(exp, other)]) == 0, capsys.readouterr().err
    assert (exp.parent / "out" / "lab.db").is_file()  # the file's output, from its folder too


@pytest.mark.usefixtures("clean_imports")
def test_the_experiment_files_folder_comes_before_the_current_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from lrkit.lab.cli import experiment_task

    exp, other = _layout(tmp_path, "s31_both_task", in_cwd=True)
    monkeypatch.chdir(other)
    task = experiment_task(load_experiment(exp))
    assert sys.modules["s31_both_task"].WHERE == "cfg"
    assert task.epochs == 1


@pytest.mark.usefixtures("clean_imports")
def test_a_missing_module_names_both_places_searched(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from lrkit.cli import main

    exp, other = _layout(tmp_path, "s31_present_task")
    exp.write_text(exp.read_text().replace("s31_present_task:", "s31_absent_task:"))
    monkeypatch.chdir(other)
    assert main(["lab", str(exp)]) == 2
    err = capsys.readouterr().err
    assert "no module named 's31_absent_task'" in err
    assert f"searched the folder {str(exp.parent)!r}, then the current directory {str(other)!r}" in err


PART = st.text(st.sampled_from("abz09_-. "), min_size=1, max_size=8)


@pytest.mark.skipif(os.sep == "\\", reason="a backslash is a separator on Windows")
@settings(max_examples=40, deadline=None)
@given(st.lists(PART, min_size=1, max_size=4), st.sampled_from(["output", "db"]), st.booleans())
def test_a_path_with_a_backslash_is_warned_about(parts: list[str], key: str, backslash: bool) -> None:
    text = ("\\" if backslash else "/").join(parts)
    data = {"task": "digits-mlp-sgd", "strategies": ["cosine(lr=0.1)"], key: text}
    if not text.strip():
        return
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        exp = parse_experiment(data, base=Path("/base"))
    said = [str(w.message) for w in seen if "backslash" in str(w.message)]
    if "\\" in text.strip():
        assert len(said) == 1, said
        assert f"experiment: {key} '{text.strip()}' holds a backslash" in said[0]
        assert f"write '{text.strip().replace(chr(92), '/')}' instead" in said[0]
    else:
        assert not said
    assert getattr(exp, key) == Path("/base") / text.strip()  # the path is kept as written
