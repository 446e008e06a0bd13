"""``TaskParts(steps_per_epoch=N)``: a task whose training loader has no ``len()`` (a streaming
``IterableDataset``) could not be used at all ("train_loader must have a len()"), by the lab, the tuner,
``lrkit auto`` or ``lrkit find --task``. With N given, each epoch takes the next N batches of a running
pass, and a pass that ends starts a new one (Keras' ``steps_per_epoch``)."""

from __future__ import annotations

import sys
import textwrap
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")
pytestmark = pytest.mark.usefixtures("one_torch_thread")

from torch.utils.data import DataLoader, IterableDataset, TensorDataset  # noqa: E402

from lrkit.tasks import TaskParts  # noqa: E402
from lrkit.tasks.base import train_loop  # noqa: E402


class Stream(IterableDataset):  # type: ignore[type-arg]
    """``n`` samples ``(index, index % 2)``, in order, with no ``len()``."""

    def __init__(self, n: int) -> None:
        self.n = n

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        return ((torch.tensor([float(i)]), torch.tensor(i % 2)) for i in range(self.n))


class Seen(torch.nn.Module):
    """Records the first sample index of every training batch it is given."""

    def __init__(self) -> None:
        super().__init__()
        self.lin = torch.nn.Linear(1, 2)
        self.seen: list[int] = []

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.training:
            self.seen.append(int(x[0, 0]))
        return self.lin(x * 0.0)


def _parts(train: object, **kw: object) -> TaskParts:
    val = DataLoader(TensorDataset(torch.zeros(4, 1), torch.zeros(4, dtype=torch.long)), batch_size=4)
    return TaskParts(Seen(), train, val, torch.nn.functional.cross_entropy, optimizer="sgd", **kw)  # type: ignore[arg-type]


def test_a_loader_without_len_needs_steps_per_epoch_and_says_so() -> None:
    with pytest.raises(
        TypeError, match=r"train_loader \(DataLoader\) has no len\(\); give steps_per_epoch=N"
    ):
        _parts(DataLoader(Stream(40), batch_size=4))


@pytest.mark.parametrize("bad", [0, -1, 1.5, True, "3"])
def test_steps_per_epoch_must_be_a_whole_number(bad: object) -> None:
    with pytest.raises((TypeError, ValueError), match="steps_per_epoch"):
        _parts(DataLoader(Stream(40), batch_size=4), steps_per_epoch=bad)


@pytest.mark.parametrize(("samples", "spe", "epochs"), [(40, 3, 5), (40, 10, 3), (12, 7, 4), (40, 1, 2)])
def test_each_epoch_takes_the_next_batches_of_a_running_pass(samples: int, spe: int, epochs: int) -> None:
    """Epochs of ``spe`` batches read the passes back to back: batch k of the run is batch k mod (batches
    per pass) of a pass, whatever the epoch boundaries."""
    parts = _parts(DataLoader(Stream(samples), batch_size=4), steps_per_epoch=spe, epochs=epochs)
    opt = parts.make_optimizer(0.1)
    run = train_loop(parts, opt, epochs)
    per_pass = -(-samples // 4)
    assert run.steps == spe * epochs and len(run.epoch_losses) == epochs
    assert parts.model.seen == [4 * (k % per_pass) for k in range(spe * epochs)]  # type: ignore[union-attr]


def test_a_shorter_epoch_than_a_pass_of_a_sized_loader_goes_on_where_it_stopped() -> None:
    data = TensorDataset(torch.arange(40.0).unsqueeze(1), torch.zeros(40, dtype=torch.long))
    parts = _parts(DataLoader(data, batch_size=4), steps_per_epoch=3)
    run = train_loop(parts, parts.make_optimizer(0.1), 4)
    assert run.steps == 12
    assert parts.model.seen == [0, 4, 8, 12, 16, 20, 24, 28, 32, 36, 0, 4]  # type: ignore[union-attr]


def test_a_sized_loader_without_it_trains_one_pass_an_epoch_as_before() -> None:
    data = TensorDataset(torch.arange(24.0).unsqueeze(1), torch.zeros(24, dtype=torch.long))
    parts = _parts(DataLoader(data, batch_size=4))
    assert parts.steps_per_epoch is None and parts.epoch_steps == 6
    run = train_loop(parts, parts.make_optimizer(0.1), 2)
    assert parts.model.seen == [0, 4, 8, 12, 16, 20] * 2 and run.steps == 12  # type: ignore[union-attr]


def test_a_loader_replaced_after_the_parts_were_made_sets_the_epoch() -> None:
    """A task factory may swap the loader of parts it got from another (a shorter run for a test)."""
    data = TensorDataset(torch.arange(24.0).unsqueeze(1), torch.zeros(24, dtype=torch.long))
    parts = _parts(DataLoader(data, batch_size=4))
    parts.train_loader = DataLoader(data, batch_size=12)
    assert parts.epoch_steps == 2
    run = train_loop(parts, parts.make_optimizer(0.1), 2)
    assert parts.model.seen == [0, 12, 0, 12] and run.steps == 4  # type: ignore[union-attr]


TASK = textwrap.dedent(
    """
    import torch
    from torch.utils.data import DataLoader, IterableDataset, TensorDataset
    from lrkit.tasks import TaskParts

    class Stream(IterableDataset):
        def __init__(self, x, y):
            self.x, self.y = x, y
        def __iter__(self):
            return iter(zip(self.x, self.y))

    def task(seed):
        g = torch.Generator().manual_seed(seed)
        x = torch.randn(640, 10, generator=g)
        y = (x[:, 0] > 0).long()
        train = DataLoader(Stream(x[:512], y[:512]), batch_size=32)
        val = DataLoader(TensorDataset(x[512:], y[512:]), batch_size=128)
        torch.manual_seed(seed)
        model = torch.nn.Sequential(torch.nn.Linear(10, 32), torch.nn.ReLU(), torch.nn.Linear(32, 2))
        return TaskParts(model, train, val, torch.nn.functional.cross_entropy, epochs=8, optimizer="adam",
                         steps_per_epoch=16)
    """
)


@pytest.fixture
def stream_task(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    name = f"lrkit_stream_{uuid.uuid4().hex[:8]}"
    (tmp_path / f"{name}.py").write_text(TASK)
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    yield f"{name}:task"
    sys.modules.pop(name, None)


def test_the_commands_train_a_streaming_task(
    stream_task: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from lrkit.cli import main

    lab = ["lab", "--task", stream_task, "--strategy", "constant(1e-3)", "--seeds", "1", "--epochs", "2"]
    code = main([*lab, "--out", str(tmp_path / "lab")])
    assert code == 0, capsys.readouterr()
    code = main(["auto", "--task", stream_task, "--json", str(tmp_path / "auto.json")])
    out, err = capsys.readouterr()
    assert code == 0, (out, err)
    import json

    got = json.loads((tmp_path / "auto.json").read_text())
    assert got["train_steps"] == 8 * 16 and got["metric"] > 0.9, got
