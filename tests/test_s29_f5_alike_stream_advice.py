"""Repeats that saw the same batches over an IterableDataset: the finder's advice is to shuffle inside the
stream, not ``shuffle=True``, which a DataLoader refuses for an IterableDataset (exC's auto_it.py). The
advice it gives works: a stream whose order comes from torch's random generator differs per repeat."""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from typing import Any

import pytest

import lrkit

torch = pytest.importorskip("torch")
pytestmark = pytest.mark.usefixtures("one_torch_thread")

X = torch.randn(256, 8, generator=torch.Generator().manual_seed(1))
Y = (X[:, :4].sum(dim=1) > 0).long()


class Stream(torch.utils.data.IterableDataset[Any]):
    """Endless samples; ``own_seed``: drawn from a generator of its own, seeded the same every pass
    (the same order for every repeat); else from torch's random generator."""

    def __init__(self, own_seed: bool) -> None:
        self.own_seed = own_seed

    def __iter__(self) -> Iterator[tuple[Any, Any]]:
        g = torch.Generator().manual_seed(0) if self.own_seed else None
        while True:
            i = int(torch.randint(0, len(Y), (1,), generator=g))
            yield X[i], Y[i]


def _find(loader: Any) -> tuple[Any, list[str]]:
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(8, 16), torch.nn.ReLU(), torch.nn.Linear(16, 2))
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        found = lrkit.find_lr(model, opt, loader, torch.nn.functional.cross_entropy, num_steps=30, repeats=2)
    return found, [str(w.message) for w in caught if "repeats" in str(w.message)]


def test_an_iterable_dataset_is_advised_to_shuffle_inside_its_stream() -> None:
    with pytest.raises(ValueError, match="shuffle"):  # what the old advice led to
        torch.utils.data.DataLoader(Stream(own_seed=True), batch_size=16, shuffle=True)
    found, said = _find(torch.utils.data.DataLoader(Stream(own_seed=True), batch_size=16))
    assert found.repeats_alike and found.stream
    (note,) = found.notes
    assert len(said) == 1 and said[0] == "find_lr: " + note.replace(
        " (repeats)", ""
    )  # the warning names no setting
    assert "shuffle inside the stream (a shuffle buffer, or an order drawn from torch's random" in note
    assert "shuffle them (shuffle=True)" not in note
    assert "or run 1 repeat (repeats) for 1/2 of the compute" in note
    # the advice works: the same stream drawing from torch's generator gives repeats that differ
    found, said = _find(torch.utils.data.DataLoader(Stream(own_seed=False), batch_size=16))
    assert not found.repeats_alike and found.distinct_repeats == 2 and not said


def test_a_dataloader_that_does_not_shuffle_keeps_the_shuffle_true_advice() -> None:
    dataset = torch.utils.data.TensorDataset(X, Y)
    found, said = _find(torch.utils.data.DataLoader(dataset, batch_size=16))
    assert found.repeats_alike and not found.stream
    assert "shuffle them (shuffle=True)" in found.notes[0]
    assert said == ["find_lr: " + found.notes[0].replace(" (repeats)", "")]
