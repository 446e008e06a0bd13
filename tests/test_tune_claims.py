"""Workers that start a study together with different settings: the study's settings are stored after the
LR finder, so a second worker started while the first one's finder ran used to skip the check and train
its own configuration into the shared study (a worker's printed best could be the other's trial). Each
worker now writes its settings as a claim before its finder and refuses a study another worker claimed
differently."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

optuna = pytest.importorskip("optuna")
torch = pytest.importorskip("torch")


def _second_worker_during_the_finder(
    monkeypatch: pytest.MonkeyPatch, **second: Any
) -> tuple[list[BaseException], list[Any]]:
    """Make the first worker's finder start a second worker (same process) with ``second`` options:
    the second starts after the first's claim and before the first has stored the study's settings."""
    import lrkit.tune.core as core
    from lrkit.tune import SearchSpace, tune

    errors: list[BaseException] = []
    results: list[Any] = []
    calls: list[int] = []

    def finder_space(*args: Any, **kwargs: Any) -> SearchSpace:
        calls.append(1)
        if len(calls) == 1:
            try:
                results.append(tune("tiny_tune_task:tiny", **second))
            except ValueError as exc:
                errors.append(exc)
        return SearchSpace(lr_range=(1e-3, 1.0))

    monkeypatch.setattr(core, "_finder_space", finder_space)
    return errors, results


@pytest.mark.parametrize(
    ("differs", "said"),
    [({"epochs": 2}, "epochs=1, not 2"), ({"train_seed": 7}, "train_seed=0, not 7")],
)
def test_a_worker_started_during_another_s_finder_with_other_settings_is_refused(
    tmp_path: Path, tiny_task: Path, one_torch_thread: None, differs: dict[str, Any], said: str
) -> None:
    from lrkit.tune import open_storage, tune

    db = tmp_path / "s.db"
    mp = pytest.MonkeyPatch()
    try:
        errors, results = _second_worker_during_the_finder(
            mp, trials=2, storage=db, **{"epochs": 1, "train_seed": 0, **differs}
        )
        first = tune("tiny_tune_task:tiny", trials=2, storage=db, epochs=1, train_seed=0)
    finally:
        mp.undo()
    assert results == [] and len(errors) == 1
    assert "another worker" in str(errors[0]) and said in str(errors[0])
    study = optuna.load_study(study_name=first.study_name, storage=open_storage(db))
    trials = study.get_trials(deepcopy=False)
    assert len(trials) == 2 and all(len(t.intermediate_values) == 1 for t in trials)  # all 1-epoch trials
    # every claim was withdrawn at the end (the refused one at once): a later worker is checked against
    # the stored settings only
    claims = {k: v for k, v in study.user_attrs.items() if k.startswith("lrkit-worker:")}
    assert claims and all(v is None for v in claims.values())
    with pytest.raises(ValueError, match=r"was started with epochs=1, not 2"):
        tune("tiny_tune_task:tiny", trials=3, storage=db, epochs=2, train_seed=0, finder=False)
    again = tune("tiny_tune_task:tiny", trials=3, storage=db, epochs=1, train_seed=0, finder=False)
    assert again.finished == 3


def test_a_worker_with_the_same_settings_joins_and_a_refused_one_leaves_no_claim(
    tmp_path: Path, tiny_task: Path, one_torch_thread: None
) -> None:
    from lrkit.tune import tune

    db = tmp_path / "s.db"
    mp = pytest.MonkeyPatch()
    try:
        errors, results = _second_worker_during_the_finder(mp, trials=2, storage=db, epochs=1)
        first = tune("tiny_tune_task:tiny", trials=2, storage=db, epochs=1)
    finally:
        mp.undo()
    assert errors == [] and len(results) == 1 and results[0].finished == 2
    assert first.finished == 2 and first.best_trial == results[0].best_trial


def test_claims_compare_kinds_and_lr_range_only_where_both_workers_give_them() -> None:
    from lrkit.tune.core import _conflict

    base = {"task": "t", "epochs": 3, "kinds": None, "lr_range": None}
    assert _conflict(base, {**base, "kinds": ["cosine"], "lr_range": [1e-3, 1.0]}) is None
    assert _conflict({**base, "kinds": ["cosine"]}, {**base, "kinds": ["linear"]}) == (
        "kinds=['linear'], not ['cosine']"
    )
    assert _conflict({**base, "lr_range": [1e-3, 1.0]}, {**base, "lr_range": [1e-3, 1.0 + 1e-12]}) is None
    assert _conflict({**base, "lr_range": [1e-3, 1.0]}, {**base, "lr_range": [1e-3, 2.0]}) is not None
    assert _conflict({**base, "epochs": 3}, {"task": "t"}) is None  # a key the other did not give


def _study_with_claim(db: Path, owner: str, claim: dict[str, Any]) -> None:
    """A study whose only trace is a worker's claim: the worker died during its finder, before META."""
    from lrkit.tune import open_storage

    study = optuna.create_study(study_name="lrkit-tiny", storage=open_storage(db), direction="maximize")
    study.set_user_attr("lrkit-worker:" + owner, claim)


@pytest.mark.parametrize(
    ("owner", "age", "refused"),
    [
        ("{host}:999999999:dead", 0.0, False),  # this machine, its process gone: ignored at once
        ("{host}:{pid}:alive", 0.0, True),  # this machine, running (this test's own process)
        ("elsewhere.example:4242:x", 60.0, True),  # another machine, a minute ago: may be running
        ("elsewhere.example:4242:x", 120.0, True),  # another machine, renewed 2 minutes ago: may be running
        ("elsewhere.example:4242:x", 301.0, False),  # not renewed for CLAIM_TTL (5 minutes): gone
        ("elsewhere.example:4242:x", 901.0, False),
    ],
)
def test_a_claim_of_a_worker_that_has_gone_does_not_block_the_study(
    tmp_path: Path, tiny_task: Path, one_torch_thread: None, owner: str, age: float, refused: bool
) -> None:
    """A worker SIGKILLed during its finder left its claim (epochs=2) with no META: a corrected worker
    (epochs=1) was refused for good. A claim counts while its worker may be running."""
    import os
    import socket
    import time

    from lrkit.tune import tune

    db = tmp_path / "s.db"
    who = owner.format(host=socket.gethostname(), pid=os.getpid())
    _study_with_claim(db, who, {"task": "tiny_tune_task:tiny", "epochs": 2, "at": time.time() - age})
    if refused:
        with pytest.raises(ValueError, match=rf"another worker \({who}\) joined it with epochs=2, not 1"):
            tune("tiny_tune_task:tiny", trials=1, storage=db, epochs=1, finder=False, study_name="lrkit-tiny")
    else:
        res = tune(
            "tiny_tune_task:tiny", trials=1, storage=db, epochs=1, finder=False, study_name="lrkit-tiny"
        )
        assert res.finished == 1


def test_once_the_study_has_its_settings_claims_are_not_compared(
    tmp_path: Path, tiny_task: Path, one_torch_thread: None
) -> None:
    """The stored settings (META) are checked then; a claim that disagrees with them is a stale one."""
    import time

    from lrkit.tune import open_storage, tune

    db = tmp_path / "s.db"
    tune("tiny_tune_task:tiny", trials=1, storage=db, epochs=1, finder=False, study_name="lrkit-tiny")
    study = optuna.load_study(study_name="lrkit-tiny", storage=open_storage(db))
    study.set_user_attr(
        "lrkit-worker:elsewhere.example:1:x", {"task": "tiny", "epochs": 2, "at": time.time()}
    )
    res = tune("tiny_tune_task:tiny", trials=2, storage=db, epochs=1, finder=False, study_name="lrkit-tiny")
    assert res.finished == 2


def test_a_worker_renews_its_claim_while_its_finder_runs(tmp_path: Path) -> None:
    """A claim of a worker on another machine counted for 15 minutes after it was written, so a worker
    killed during its finder blocked a corrected one that long; now it counts for CLAIM_TTL (5 minutes) after
    its last renewal, and a live worker renews it while its finder runs, however long that takes."""
    import threading
    import time

    from lrkit.tune import open_storage
    from lrkit.tune.core import CLAIM_TTL, _renewed

    assert CLAIM_TTL <= 300
    db = tmp_path / "s.db"
    _study_with_claim(db, "me:1:x", {"task": "t", "at": 0.0})
    study = optuna.load_study(study_name="lrkit-tiny", storage=open_storage(db))
    start = time.time()
    with _renewed(study, "me:1:x", {"task": "t"}, every=0.05):
        time.sleep(0.5)
    first = study.user_attrs["lrkit-worker:me:1:x"]
    assert first["task"] == "t" and first["at"] >= start, first
    assert not any(t.name == "lrkit-tune-claim" for t in threading.enumerate())  # stopped with the block
    time.sleep(0.2)
    assert study.user_attrs["lrkit-worker:me:1:x"] == first  # no renewal after it


def test_tune_renews_the_claim_during_its_finder(
    tmp_path: Path, tiny_task: Path, one_torch_thread: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    import time

    from lrkit.tune import core, open_storage, tune
    from lrkit.tune.space import SearchSpace

    seen: dict[str, float] = {}
    db = tmp_path / "s.db"

    def slow_finder(*args: Any, **kwargs: Any) -> SearchSpace:
        seen["start"] = time.time()
        time.sleep(0.6)
        study = optuna.load_study(study_name="lrkit-tiny", storage=open_storage(db))
        (claim,) = [v for k, v in study.user_attrs.items() if k.startswith("lrkit-worker:")]
        seen["at"] = claim["at"]
        return SearchSpace()

    monkeypatch.setattr(core, "CLAIM_RENEW", 0.05)
    monkeypatch.setattr(core, "_finder_space", slow_finder)
    tune("tiny_tune_task:tiny", trials=1, storage=db, epochs=1, study_name="lrkit-tiny")
    assert seen["at"] >= seen["start"] + 0.3, seen  # renewed during the finder
