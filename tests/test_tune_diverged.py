"""A diverged trial scores the worst value there is (-inf where higher is better, +inf where lower is):
with a metric that can be negative (-MSE, higher is better) it scored 0, above every trial that trained,
and was reported as the best. When every completed trial diverged there is no best spec: exit 1, said
so, where tune printed a diverged 'best spec' and exited 0. The summary counts the diverged trials."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("optuna")

from lrkit.tasks import Task, TaskParts  # noqa: E402
from lrkit.tune import tune  # noqa: E402


def _neg_mse(seed: int) -> TaskParts:
    from torch.utils.data import DataLoader, TensorDataset

    g = torch.Generator().manual_seed(123)
    x = torch.randn(256, 8, generator=g)
    y = x @ torch.randn(8, 1, generator=g) + 0.1 * torch.randn(256, 1, generator=g)
    train = DataLoader(
        TensorDataset(x[:192], y[:192]),
        batch_size=32,
        shuffle=True,
        generator=torch.Generator().manual_seed(seed),
    )
    xv, yv = x[192:], y[192:]

    def neg_mse(model: torch.nn.Module) -> float:
        with torch.no_grad():
            return -float(torch.nn.functional.mse_loss(model(xv), yv))

    model = torch.nn.Sequential(torch.nn.Linear(8, 16), torch.nn.ReLU(), torch.nn.Linear(16, 1))
    return TaskParts(
        model, train, DataLoader(TensorDataset(xv, yv), batch_size=64), torch.nn.functional.mse_loss,
        metric=neg_mse, higher_is_better=True, metric_name="neg val mse", epochs=2, optimizer="sgd",
    )  # fmt: skip


TASK = Task("neg-mse", _neg_mse)


def test_a_diverged_trial_is_never_the_best_of_a_metric_that_can_be_negative(tmp_path: Path) -> None:
    res = tune(TASK, trials=8, storage=tmp_path / "t.db", finder=False, lr_range=(0.003, 30.0), seed=0)
    values = {t.number: t.value for t in res.study.trials}
    status = {t.number: t.user_attrs.get("status") for t in res.study.trials}
    diverged = [n for n, s in status.items() if s == "diverged"]
    finished = [n for n, s in status.items() if s == "ok"]
    assert diverged and finished, status  # the range holds both
    assert all(values[n] == -math.inf for n in diverged)
    assert res.best_trial in finished and res.best_value == max(values[n] for n in finished) < 0
    assert res.diverged == len(diverged) and f"{len(diverged)} of them diverged" in str(res)


def test_every_trial_diverged_no_best_spec_exit_1(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from lrkit.cli import main

    argv = ["tune", "--task", "digits-mlp-sgd", "--trials", "2", "--epochs", "1", "--lr-range", "200", "2000"]
    code = main([*argv, "--no-report", "--storage", str(tmp_path / "t.db")])
    out, err = capsys.readouterr()
    assert code == 1, out + err
    # on stderr: stdout's last line, which scripts read as the best spec, is never this sentence
    assert (
        err.strip().splitlines()[-1].startswith("lrkit tune: error: every completed trial (2) diverged, so")
    )
    assert "no best spec" not in out  # the summary's sentence too goes to stderr


def test_a_pruned_trials_line_says_after_which_epoch(tmp_path: Path) -> None:
    """'trial 2 pruned val loss 4.095' showed the value of the epoch it was stopped at as if it were final."""
    said: list[str] = []
    res = tune(
        "digits-mlp-sgd", trials=8, epochs=3, storage=tmp_path / "p.db", finder=False, pruner="median",
        seed=0, progress=said.append,
    )  # fmt: skip
    pruned = [t for t in res.study.trials if t.state.name == "PRUNED"]
    assert pruned, said
    for t in pruned:
        (line,) = [s for s in said if f"] trial {t.number} pruned" in s]
        assert f"trial {t.number} pruned after epoch {t.last_step}, val accuracy {t.value:.4g}" in line
