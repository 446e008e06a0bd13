"""``lrkit tune`` continues a study whose optimizer is spelled otherwise but trains the same (tester NF,
2): compared as the lab's duplicate check compares them (class and every setting, defaults filled)."""

from __future__ import annotations

from pathlib import Path

import pytest

pytest.importorskip("optuna")


def test_a_study_continues_under_another_spelling_of_its_optimizer(
    tmp_path: Path, tiny_task: Path, one_torch_thread: None
) -> None:
    from lrkit.tune import tune

    db = f"sqlite:///{tmp_path / 'a.db'}"
    kw = {"storage": db, "epochs": 1, "train_seed": 0, "finder": False}
    tune("tiny_tune_task:tiny", trials=1, optimizer="adamw", **kw)
    again = tune(
        "tiny_tune_task:tiny", trials=2, optimizer="adamw", optimizer_params={"weight_decay": 0.01}, **kw
    )
    assert again.finished == 2
    with pytest.raises(ValueError, match=r"was started with 'adamw', not 'adamw\(weight_decay=0\.1\)'; give"):
        tune("tiny_tune_task:tiny", trials=3, optimizer="adamw", optimizer_params={"weight_decay": 0.1}, **kw)


def test_the_task_s_own_optimizer_is_named_and_matches_its_spelling(
    tmp_path: Path, tiny_task: Path, one_torch_thread: None
) -> None:
    from lrkit.tune import tune

    db = f"sqlite:///{tmp_path / 'b.db'}"
    kw = {"storage": db, "epochs": 1, "train_seed": 0, "finder": False}
    tune("tiny_tune_task:tiny", trials=1, **kw)  # the task trains sgd
    assert tune("tiny_tune_task:tiny", trials=2, optimizer="sgd", **kw).finished == 2
    with pytest.raises(ValueError, match=r"was started with the task's own optimizer \(sgd\), not 'adam'"):
        tune("tiny_tune_task:tiny", trials=3, optimizer="adam", **kw)
