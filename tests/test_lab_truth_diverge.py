"""A run diverges when its loss grows to ``diverge_factor`` times its first, whatever the loss's sign: a loss
that can be negative (a shifted MSE, a Gaussian NLL, an ELBO) did not "diverge" at its first step because
-7 > 10 x -7, and the report's diverged-runs table says the threshold the loss passed."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from lrkit.lab import report
from lrkit.lab.runner import LabResult
from lrkit.tasks.base import TaskParts, diverge_threshold, train_loop
from tests.test_report import make_run

pytest.importorskip("matplotlib")


def _shifted(shift: float) -> TaskParts:
    """Linear regression whose loss is MSE + ``shift``: the same gradients for any shift."""
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(64, 4, generator=gen)
    y = x @ torch.tensor([[1.0], [-2.0], [0.5], [3.0]])
    data = torch.utils.data.TensorDataset(x, y)
    loader = torch.utils.data.DataLoader(data, batch_size=16)
    torch.manual_seed(0)
    model = torch.nn.Linear(4, 1)

    def loss(out: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return torch.nn.functional.mse_loss(out, target) + shift

    return TaskParts(model, loader, loader, loss, metric="loss", epochs=3, optimizer="sgd")


def test_the_threshold_is_factor_times_a_positive_first_loss_and_grows_a_negative_one_as_far() -> None:
    assert diverge_threshold(2.5, 10.0) == pytest.approx(25.0)
    assert diverge_threshold(-7.0, 10.0) == pytest.approx(56.0)  # -7 + 9 x 7: it grew by 63, as 7 -> 70
    assert diverge_threshold(0.0, 10.0) == 0.0


@pytest.mark.parametrize("shift", [0.0, -40.0])
def test_a_loss_that_is_negative_learns_as_the_same_loss_shifted_up(shift: float) -> None:
    """MSE - 40 is negative from the first step: the run trained the same steps as MSE (it stopped at step 0,
    'diverged', though its loss fell)."""
    plain = _shifted(0.0)
    base = train_loop(plain, torch.optim.SGD(plain.model.parameters(), lr=0.01), 3)
    parts = _shifted(shift)
    run = train_loop(parts, torch.optim.SGD(parts.model.parameters(), lr=0.01), 3, diverge_factor=10.0)
    assert not run.diverged and run.diverged_step is None and run.steps == base.steps == 12
    assert run.losses[0] < 0 if shift else run.losses[0] > 0
    assert run.losses == pytest.approx([v + shift for v in base.losses], abs=1e-4)


def test_a_negative_loss_that_blows_up_still_diverges() -> None:
    parts = _shifted(-40.0)
    run = train_loop(parts, torch.optim.SGD(parts.model.parameters(), lr=3.0), 3, diverge_factor=10.0)
    assert run.diverged and run.diverged_step is not None and run.diverged_step > 0
    last = run.losses[-1]
    assert last != last or last > diverge_threshold(run.losses[0], 10.0)  # NaN, or past the threshold


def test_the_diverged_runs_table_prints_the_threshold_the_loss_passed() -> None:
    ok = make_run("a", 0, 0.5, higher_is_better=False)
    bad = make_run("a", 1, None, diverge_at=7, higher_is_better=False)
    bad = dataclasses.replace(bad, losses=[-7.064, *bad.losses[1:-1], 60.2], config={"diverge_factor": 10.0})
    result = LabResult("toy", 1, [ok, bad], ":memory:", "t", "val loss", False, 5)
    page = report.render_html(result)
    assert "60.2 &gt; -7.064 + 9 × 7.064 = 56.51 (step 0: -7.064)" in page
    assert "10 × -7.064" not in page  # the old "60.2 > 10 x -7.064": -70.64 was no threshold at all
    ko = report.render_html(result, lang="ko")
    assert "60.2 &gt; -7.064 + 9 × 7.064 = 56.51 (스텝 0: -7.064)" in ko
    # a positive first loss keeps "factor x first"
    pos = dataclasses.replace(bad, losses=[2.0, *bad.losses[1:-1], 25.0])
    page = report.render_html(dataclasses.replace(result, runs=[ok, pos]))
    assert "25 &gt; 10 × 2 (step 0)" in page
