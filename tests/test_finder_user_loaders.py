"""The finder on loaders and data as users bring them: a stream without a length, a sample that is not
finite, a loader that does not shuffle, models whose outputs or inputs are not ``(x, y)``."""

from __future__ import annotations

import textwrap
from pathlib import Path
from typing import Any

import pytest

torch = pytest.importorskip("torch")

from torch.utils.data import DataLoader, IterableDataset  # noqa: E402

import lrkit  # noqa: E402
from lrkit.finder import find_lr  # noqa: E402

F = torch.nn.functional

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _data(n: int = 512) -> tuple[Any, Any]:
    g = torch.Generator().manual_seed(0)
    x = torch.randn(n, 10, generator=g)
    return x, (x[:, 0] > 0).long()


class Stream(IterableDataset):  # type: ignore[misc]
    """A streaming dataset: batches in a new random order each pass, and no ``__len__``, so that
    ``len(DataLoader(Stream()))`` raises TypeError (a DataLoader always has ``__len__``)."""

    def __init__(self, n: int = 512) -> None:
        self.x, self.y = _data(n)

    def __iter__(self) -> Any:
        p = torch.randperm(len(self.x))
        for i in range(0, len(self.x), 32):
            yield self.x[p[i : i + 32]], self.y[p[i : i + 32]]


def _model() -> tuple[Any, Any]:
    torch.manual_seed(0)
    m = torch.nn.Sequential(torch.nn.Linear(10, 32), torch.nn.ReLU(), torch.nn.Linear(32, 2))
    return m, torch.optim.SGD(m.parameters(), lr=0.1, momentum=0.9)


# --- 1. a loader without a length -----------------------------------------------------------------


def test_a_loader_over_an_iterable_dataset_without_a_length_is_tested_as_one_without_len() -> None:
    """It raised ``TypeError: object of type 'Stream' has no len()``: a DataLoader has ``__len__``,
    which raises for such a dataset. With planned_steps the budget is then 10% of them (no epoch)."""
    from lrkit.finder._data import known_length

    loader = DataLoader(Stream(), batch_size=None)
    with pytest.raises(TypeError):
        len(loader)
    assert known_length(loader) is None and known_length([1, 2]) == 2
    res = find_lr(*_model(), loader, F.cross_entropy, num_steps=30, repeats=2, planned_steps=500)
    assert res.repeats == 2 and res.budget == 50


@pytest.mark.filterwarnings("ignore:lrkit.auto. the LR search took")
def test_auto_on_a_stream_takes_steps_per_epoch_and_its_separate_test_runs() -> None:
    """auto's separate test (a fallback of the in-run ramp too) crashed on the same len()."""
    loader = DataLoader(Stream(), batch_size=None)
    with pytest.raises(TypeError, match=r"train_loader \(DataLoader\) has no len\(\); pass steps_per_epoch"):
        lrkit.auto(*_model(), loader, F.cross_entropy, epochs=3, verbose=False)
    res = lrkit.auto(
        *_model(), loader, F.cross_entropy, epochs=3, steps_per_epoch=16, search="separate", verbose=False
    )
    assert res.search == "separate" and res.peak_lr > 0


STREAM_SETUP = textwrap.dedent(
    """
    import torch
    from torch.utils.data import DataLoader, IterableDataset

    class Stream(IterableDataset):
        def __iter__(self):
            g = torch.Generator().manual_seed(0)
            x = torch.randn(512, 10, generator=g)
            y = (x[:, 0] > 0).long()
            p = torch.randperm(len(x))
            for i in range(0, len(x), 32):
                yield x[p[i : i + 32]], y[p[i : i + 32]]

    def model():
        torch.manual_seed(0)
        return torch.nn.Sequential(torch.nn.Linear(10, 32), torch.nn.ReLU(), torch.nn.Linear(32, 2))

    def data():
        return DataLoader(Stream(), batch_size=None)
    """
)


def test_lrkit_find_on_a_stream_is_not_bad_input(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """``lrkit find --data`` of a stream exited 2 ("bad input") on its len()."""
    from lrkit.cli import main

    (tmp_path / "stream_setup.py").write_text(STREAM_SETUP)
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    argv = ["find", "--model", "stream_setup:model", "--data", "stream_setup:data", "--loss", "cross_entropy"]
    code = main([*argv, "--num-steps", "40", "--repeats", "2", "--epochs", "3", "--out", "none"])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    assert captured.out.startswith("suggested LR")
