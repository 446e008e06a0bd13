""" "Did not learn" compared the last epoch's mean training loss with the loss of the first batch alone, so a
slowly learning run was flagged or not by that batch's luck (digits at constant(1e-4): 3 of 5 seeds flagged
though their loss fell every epoch). The reference is now the untrained model's loss over the validation
set, measured before the first step without touching any random state (the runs train exactly as before),
kept with the run in the lab's database; an older database keeps the old rule."""

from __future__ import annotations

import dataclasses
import random
from pathlib import Path

import numpy as np
import pytest
import torch

from lrkit.lab import report, runner
from lrkit.lab.runner import START_LOSS, Strategy, run_lab, run_strategy
from lrkit.tasks import Task, TaskParts
from tests.test_report import make_run

pytest.importorskip("matplotlib")


def _noisy(seed: int) -> TaskParts:
    """A classifier with dropout whose loaders draw from torch's global RNG (shuffled, no generator), the
    validation loader too, and a second validation loader with a generator of its own."""
    gen = torch.Generator().manual_seed(1)
    x = torch.randn(96, 6, generator=gen)
    y = (x[:, 0] + x[:, 1] > 0).long()
    data = torch.utils.data.TensorDataset(x, y)
    train = torch.utils.data.DataLoader(data, batch_size=16, shuffle=True)
    val = torch.utils.data.DataLoader(data, batch_size=32, shuffle=True)
    model = torch.nn.Sequential(
        torch.nn.Linear(6, 16), torch.nn.ReLU(), torch.nn.Dropout(0.3), torch.nn.Linear(16, 2)
    )
    return TaskParts(model, train, val, torch.nn.functional.cross_entropy, epochs=2, optimizer="sgd")


def test_the_untrained_loss_leaves_every_random_state_as_it_was() -> None:
    parts = _noisy(0)
    x, y = parts.val_loader.dataset.tensors  # type: ignore[attr-defined]
    own = torch.Generator().manual_seed(7)
    parts.val_loader = torch.utils.data.DataLoader(parts.val_loader.dataset, 32, shuffle=True, generator=own)  # type: ignore[attr-defined]
    torch.manual_seed(3)
    random.seed(3)
    np.random.seed(3)
    before = (torch.get_rng_state(), random.getstate(), np.random.get_state()[1].copy(), own.get_state())
    loss = parts.val_loss()
    after = (torch.get_rng_state(), random.getstate(), np.random.get_state()[1], own.get_state())
    assert torch.equal(before[0], after[0]) and before[1] == after[1]
    assert np.array_equal(before[2], after[2]) and torch.equal(before[3], after[3])
    assert parts.model.training  # back in train mode
    with torch.no_grad():  # in eval mode (no dropout), over every sample
        by_hand = float(torch.nn.functional.cross_entropy(parts.model.eval()(x), y))
    assert loss == pytest.approx(by_hand, rel=1e-5)


def test_measuring_it_changes_no_training_run(monkeypatch: pytest.MonkeyPatch) -> None:
    task = Task("noisy", _noisy)
    strategy = Strategy("c", "constant(0.1)")
    measured = run_strategy(task, strategy, seed=0)
    monkeypatch.setattr(runner, "start_loss", lambda parts: None)  # as the lab trained before
    plain = run_strategy(task, strategy, seed=0)
    assert measured.losses == plain.losses and measured.epoch_metrics == plain.epoch_metrics
    assert isinstance(measured.config[START_LOSS], float) and plain.config == {}


def _crawl(start: float | None) -> report.RunRecord:
    """Digits at constant(1e-4), seed 4 (measured): a lucky first batch (2.2879) below the epochs' mean
    losses, which fall every epoch (2.3013, 2.3001, 2.2988), under the untrained model's 2.3015."""
    run = make_run("t10", 4, 0.11, epochs=3)
    return dataclasses.replace(
        run,
        losses=[2.2879, *run.losses[1:]],
        epoch_losses=[2.3013, 2.3001, 2.2988],
        config={} if start is None else {START_LOSS: start},
    )


def test_a_crawling_run_learned_whatever_its_first_batch() -> None:
    assert not report.did_not_learn(_crawl(2.3015))  # was flagged: 2.2988 >= 2.2879, one batch's loss
    assert report.start_of(_crawl(2.3015)) == 2.3015
    assert report.did_not_learn(_crawl(None))  # a database without it: the first step's loss, as before
    stuck = dataclasses.replace(_crawl(2.3073), epoch_losses=[2.35, 2.37, 2.3756])  # LR 1: at chance
    assert report.did_not_learn(stuck)


def test_the_lab_keeps_it_with_the_run_and_the_report_reads_it(tmp_path: Path) -> None:
    db = tmp_path / "lab.db"
    result = run_lab(Task("noisy", _noisy), [Strategy("c", "constant(0.1)")], seeds=[0, 1], store=str(db))
    starts = [r.config.get(START_LOSS) for r in result.runs]
    assert all(isinstance(s, float) for s in starts) and starts[0] != starts[1]  # the seeds' own models
    loaded, _ = report.load_result(db)
    assert [r.config.get(START_LOSS) for r in loaded.runs] == starts
    page = report.render_html(loaded)
    assert "untrained model" in page


def test_the_start_loss_is_written_with_the_finished_run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A process killed just after a run's ``finish`` keeps the start loss: it is written in finish's own
    transaction (it used to be a second write after it, lost to a kill in between)."""
    from lrkit.lab.store import ResultStore

    finish = ResultStore.finish

    def finish_then_die(self: ResultStore, *args: object, **kwargs: object) -> bool:
        finish(self, *args, **kwargs)  # type: ignore[arg-type]
        raise KeyboardInterrupt  # the kill: nothing after finish runs

    monkeypatch.setattr(ResultStore, "finish", finish_then_die)
    db = tmp_path / "lab.db"
    with pytest.raises(KeyboardInterrupt):
        run_lab(Task("noisy", _noisy), [Strategy("c", "constant(0.1)")], seeds=[0], store=str(db))
    monkeypatch.setattr(ResultStore, "finish", finish)
    loaded, _ = report.load_result(db)
    assert [r.status for r in loaded.runs] == ["ok"]
    assert isinstance(loaded.runs[0].config.get(START_LOSS), float)
