"""What a tuning search tried, as a table (trials.csv) and a figure (trials.png): every trial's point,
state and value, pruned trials at their last epoch's value, diverged ones at the worst edge, the best so
far by trial; checked against a study whose trials are written by hand."""

from __future__ import annotations

import csv
import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest

optuna = pytest.importorskip("optuna")
pytest.importorskip("matplotlib")

from lrkit._paths import owned_by_lrkit  # noqa: E402
from lrkit.tune import SearchSpace, TuneResult  # noqa: E402
from lrkit.tune.trials import TRIALS_COLUMNS, plot_trials, trial_rows, write_trials_csv  # noqa: E402

D = optuna.distributions
DISTS = {
    "kind": D.CategoricalDistribution(["cosine", "linear", "one_cycle", "wsd"]),
    "lr": D.FloatDistribution(1e-3, 1.0, log=True),
    "warmup": D.FloatDistribution(0.0, 0.3),
    "final": D.FloatDistribution(1e-4, 0.5, log=True),
}
S = optuna.trial.TrialState


def _trial(kind: str, lr: float, state: Any = S.COMPLETE, value: float | None = None, **kw: Any) -> Any:
    params = {"kind": kind, "lr": lr, "warmup": 0.05, "final": 0.01}
    return optuna.trial.create_trial(
        state=state,
        value=value,
        params=params,
        distributions={k: DISTS[k] for k in params},
        user_attrs={"status": kw.pop("status", "ok"), "spec": f"{kind}@{lr}", **kw.pop("attrs", {})},
        intermediate_values=kw.pop("steps", None),
    )


def _result(direction: str = "maximize") -> TuneResult:
    worst = -math.inf if direction == "maximize" else math.inf
    study = optuna.create_study(direction=direction)
    study.add_trial(_trial("cosine", 0.01, value=0.80, steps={1: 0.6, 2: 0.7, 3: 0.80}))
    study.add_trial(_trial("wsd", 0.1, value=0.95, steps={1: 0.8, 2: 0.9, 3: 0.95}))
    study.add_trial(_trial("cosine", 0.5, value=worst, status="diverged", attrs={"diverged_step": 17}))
    study.add_trial(_trial("linear", 0.003, state=S.PRUNED, steps={1: 0.3, 2: 0.4}))
    study.add_trial(_trial("one_cycle", 0.05, value=0.90, steps={1: 0.7, 2: 0.85, 3: 0.90}))
    best = study.best_trial
    return TuneResult(task="my-task", study_name="s", storage="memory", direction=direction,
                      metric_name="val accuracy", epochs=3, optimizer=None,
                      space=SearchSpace(lr_range=(1e-3, 1.0)), best_spec=best.user_attrs["spec"],
                      best_value=best.value, best_trial=best.number, best_params=best.params, complete=4,
                      pruned=1, failed=0, diverged=1, trials=5, study=study)  # fmt: skip


def test_rows_give_each_trials_point_state_and_value() -> None:
    rows = trial_rows(_result().study)
    assert [r["trial"] for r in rows] == [0, 1, 2, 3, 4]
    assert [r["state"] for r in rows] == ["complete", "complete", "complete", "pruned", "complete"]
    assert [r["value"] for r in rows] == [0.80, 0.95, None, 0.4, 0.90]  # pruned: its last epoch's
    assert rows[2]["status"] == "diverged" and rows[2]["diverged_step"] == 17
    assert rows[3]["last_epoch"] == 2 and rows[1]["kind"] == "wsd" and rows[1]["lr"] == 0.1
    assert all(set(r) == set(TRIALS_COLUMNS) for r in rows)


def test_the_csv_holds_the_rows_and_is_lrkits_to_replace(tmp_path: Path) -> None:
    result = _result()
    path = write_trials_csv(result.study, tmp_path / "trials.csv")
    with open(path, newline="") as f:
        table = list(csv.reader(f))
    assert tuple(table[0]) == TRIALS_COLUMNS
    assert [row[0] for row in table[1:]] == ["0", "1", "2", "3", "4"]
    assert table[3][TRIALS_COLUMNS.index("value")] == ""  # the diverged trial: no metric
    assert owned_by_lrkit(path)
    write_trials_csv(result.study, path)  # lrkit's own file: replaced
    foreign = tmp_path / "mine.csv"
    foreign.write_text("trial,notes\n1,keep me\n")
    with pytest.raises(ValueError, match="lrkit did not write it"):
        write_trials_csv(result.study, foreign)
    assert foreign.read_text() == "trial,notes\n1,keep me\n"


def _points(ax: Any) -> list[tuple[float, float]]:
    return [tuple(map(float, p)) for c in ax.collections for p in c.get_offsets()]


@pytest.mark.parametrize("direction", ["maximize", "minimize"])
def test_the_figure_draws_every_trial_where_its_values_say(direction: str, tmp_path: Path) -> None:
    result = _result(direction)
    fig = plot_trials(result, tmp_path / "trials.png")
    assert (tmp_path / "trials.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    left, right = fig.axes
    pts = _points(left)
    for lr, v in [(0.01, 0.80), (0.1, 0.95), (0.003, 0.4), (0.05, 0.90)]:
        assert (lr, v) in pts
    (cross,) = [p for p in pts if p[0] == 0.5]  # the diverged trial: on the worst edge, past every value
    assert cross[1] < 0.4 if direction == "maximize" else cross[1] > 0.95
    lo, hi = left.get_ylim()
    assert lo < cross[1] < hi and lo < 0.4 and hi > 0.95
    (best_line,) = [ln for ln in right.get_lines() if ln.get_label() == "best so far"]
    pick = np.maximum.accumulate if direction == "maximize" else np.minimum.accumulate
    np.testing.assert_allclose(best_line.get_ydata(), pick([0.80, 0.95, 0.90]))
    np.testing.assert_array_equal(best_line.get_xdata(), [0, 1, 4])
    labels = [t.get_text() for t in left.get_legend().get_texts()]
    assert {"cosine", "wsd", "linear", "one_cycle", "diverged"} <= set(labels)
    best = result.best_trial
    assert any(label.startswith(f"trial {best}:") for label in labels)


def test_the_figure_speaks_korean() -> None:
    fig = plot_trials(_result(), lang="ko")
    assert fig.axes[0].get_xlabel() == "최대 학습률 (로그 스케일)"
    # lrkit's own metric name in Korean too (the catalogue's, as the report says it), a user's as given
    assert fig.axes[0].get_title() == "최대 학습률에 따른 검증 정확도"
    assert fig.axes[1].get_title() == "시도별 검증 정확도"
    assert plot_trials(_result(), lang="en").axes[1].get_title() == "val accuracy by trial"
    with pytest.raises(ValueError, match="lang: expected one of 'en', 'ko', got 'fr'"):
        plot_trials(_result(), lang="fr")


@pytest.mark.usefixtures("tiny_task")
def test_lrkit_tune_writes_the_trials_beside_its_report(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from lrkit.cli import main

    out = tmp_path / "rep"
    argv = ["tune", "--task", "tiny_tune_task:tiny", "--epochs", "2", "--trials", "3", "--no-finder",
            "--lr-range", "0.01", "0.3", "--report-seeds", "1", "--storage", str(tmp_path / "t.db"),
            "--out", str(out)]  # fmt: skip
    assert main(argv) == 0
    said = capsys.readouterr().out
    assert f"the search's trials: {out / 'trials.png'} (figure), {out / 'trials.csv'}" in said
    with open(out / "trials.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert [r["trial"] for r in rows] == ["0", "1", "2"] and all(r["spec"] for r in rows)
    assert (out / "trials.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert main([*argv, "--trials", "4"]) == 0  # lrkit's own files: replaced on a second run
    with open(out / "trials.csv", newline="") as f:
        assert len(list(csv.DictReader(f))) == 4

    other = tmp_path / "other"
    other.mkdir()
    (other / "trials.csv").write_text("my,own\n")
    argv[argv.index(str(out))] = str(other)
    assert main([*argv, "--study", "fresh"]) == 2  # refused before any trial runs
    assert (other / "trials.csv").read_text() == "my,own\n"
    assert "trials.csv" in capsys.readouterr().err


def test_a_study_whose_every_trial_diverged_is_drawn_and_tabled(tmp_path: Path) -> None:
    study = optuna.create_study(direction="maximize")
    for lr in (0.5, 0.9):
        study.add_trial(_trial("cosine", lr, value=-math.inf, status="diverged", attrs={"diverged_step": 3}))
    result = TuneResult(task="t", study_name="s", storage="memory", direction="maximize",
                        metric_name="val accuracy", epochs=3, optimizer=None,
                        space=SearchSpace(lr_range=(1e-3, 1.0)), best_spec=None, best_value=None,
                        best_trial=None, best_params={}, complete=2, pruned=0, failed=0, diverged=2,
                        trials=2, study=study)  # fmt: skip
    fig = plot_trials(result, tmp_path / "trials.png")
    assert sorted(p[0] for p in _points(fig.axes[0])) == [0.5, 0.9]
    write_trials_csv(study, tmp_path / "trials.csv")
    with open(tmp_path / "trials.csv", newline="") as f:
        assert [r["status"] for r in csv.DictReader(f)] == ["diverged", "diverged"]
