"""What identifies a lab run with reduce-on-plateau, and what a resumed lab does with a Prodigy run an
earlier lrkit stored.

A plateau's run key (and stored config) holds only the settings given that differ from the lab's
defaults (Plateau's, ``mode`` the task's direction), checked against a config written by hand; so a
setting Plateau gains later keys no stored run anew. The lab records Prodigy's LR as ``d * lr`` and marks
such runs ``lr_recorded: "d*lr"``; a Prodigy run stored without the marker (its curve is the multiplier
``lr``, 1.0) is run again, with a warning, while the other runs keep their keys and are reused."""

from __future__ import annotations

import json
import sqlite3
import warnings
from pathlib import Path
from typing import Any

import pytest

from lrkit.lab.report import plateau_text
from lrkit.lab.runner import Strategy, run_config, run_lab
from lrkit.lab.store import FINGERPRINT, ResultStore, run_key

TASK = "digits-mlp-sgd"  # accuracy: higher is better, so the lab's default mode is "max"
SPEC = "constant(lr=0.05)"


def _hand_config(plateau: dict[str, Any] | None, optimizer: str = "momentum") -> dict[str, Any]:
    """A run's config as the lab keys it, written out by hand (the task's momentum optimizer)."""
    cfg: dict[str, Any] = {
        "task": TASK,
        "spec": SPEC,
        "optimizer": optimizer,
        "optimizer_params": {},
        "seed": 0,
        "epochs": 3,
        "diverge_factor": 10.0,
    }
    if plateau is not None:
        cfg["plateau"] = plateau
    return cfg


@pytest.mark.parametrize(
    ("given", "higher_is_better", "held"),
    [
        ({}, True, {}),
        # every default spelled out, mode the task's direction: the same run as {}
        (
            {
                "mode": "max",
                "factor": 0.1,
                "patience": 10,
                "threshold": 1e-4,
                "threshold_mode": "rel",
                "cooldown": 0,
                "min_lr": 0,
                "eps": 1e-8,
                "start": "warmup",
            },
            True,
            {},
        ),
        ({"factor": 0.5, "patience": 10, "mode": "max"}, True, {"factor": 0.5}),
        ({"mode": "min"}, True, {"mode": "min"}),  # against the task's direction: kept
        ({"mode": "min"}, False, {}),
        ({"factor": 1 / 2, "min_lr": [0.001]}, False, {"factor": 0.5, "min_lr": 0.001}),
    ],
)
def test_a_plateau_run_is_keyed_by_the_settings_that_differ_from_the_lab_defaults(
    given: dict[str, Any], higher_is_better: bool, held: dict[str, Any]
) -> None:
    cfg = run_config(TASK, Strategy("p", SPEC, plateau=given), 0, 3, "momentum", 10.0, {}, higher_is_better)
    assert cfg["plateau"] == held
    assert run_key(cfg) == run_key(_hand_config(held))


def test_runs_without_a_plateau_keep_their_keys_and_differ_from_a_default_plateau() -> None:
    none = run_config(TASK, Strategy("n", SPEC), 0, 3, "momentum", 10.0, {}, True)
    assert run_key(none) == run_key(_hand_config(None))
    default = run_config(TASK, Strategy("d", SPEC, plateau=True), 0, 3, "momentum", 10.0, {}, True)
    assert run_key(default) != run_key(none)


def test_the_stored_plateau_and_its_report_text_in_a_lab(tmp_path: Path) -> None:
    db = str(tmp_path / "lab.db")
    given = {"factor": 0.5, "patience": 0, "threshold": 0.2, "mode": "max", "cooldown": 0}
    result = run_lab(TASK, [Strategy("cut", SPEC, plateau=given)], epochs=3, store=db)
    (run,) = result.runs
    held = {"factor": 0.5, "patience": 0, "threshold": 0.2}
    assert run.config["plateau"] == held
    assert run.key == run_key(_hand_config(held))
    assert plateau_text(run.config["plateau"], True) == "plateau(factor=0.5, patience=0, threshold=0.2)"


def _prodigy_lab(db: str) -> dict[str, Any]:
    strategies = [Strategy("prodigy", "constant(lr=1.0)", "prodigy"), Strategy("plain", SPEC)]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = run_lab(TASK, strategies, epochs=1, store=db)
    runs = {r.label: r for r in result.runs}
    return {"runs": runs, "warnings": [str(w.message) for w in caught]}


def test_a_prodigy_run_stored_by_an_earlier_lrkit_is_run_again(tmp_path: Path) -> None:
    pytest.importorskip("prodigyopt")
    db = str(tmp_path / "lab.db")
    first = _prodigy_lab(db)
    prodigy, plain = first["runs"]["prodigy"], first["runs"]["plain"]
    assert prodigy.config["lr_recorded"] == "d*lr"
    assert "lr_recorded" not in plain.config
    # the keys hash the config without the marker: the plain run's is the key an earlier lrkit gave it
    assert plain.key == run_key({**_hand_config(None), "epochs": 1})
    assert prodigy.key == run_key({**_hand_config(None, "prodigy"), "spec": "constant(lr=1.0)", "epochs": 1})
    d_lrs = prodigy.lrs
    assert d_lrs[0] == pytest.approx(1e-6)  # Prodigy's d0 times lr 1.0

    # the database as an lrkit before the marker left it: the Prodigy curve is the multiplier, 1.0
    con = sqlite3.connect(db)
    with con:
        (text,) = con.execute("SELECT config FROM runs WHERE key = ?", (prodigy.key,)).fetchone()
        old = {k: v for k, v in json.loads(text).items() if k != "lr_recorded"}
        assert FINGERPRINT in old  # only the marker is new
        con.execute("UPDATE runs SET config = ? WHERE key = ?", (json.dumps(old), prodigy.key))
        con.execute("UPDATE steps SET lr = 1.0 WHERE run_key = ?", (prodigy.key,))
        finished = dict(con.execute("SELECT key, finished FROM runs").fetchall())
    con.close()

    again = _prodigy_lab(db)
    notes = [w for w in again["warnings"] if "Prodigy" in w]
    assert notes == [
        "1 stored Prodigy run of this lab is run again: an earlier lrkit recorded Prodigy's lr multiplier "
        "as the LR curve, now its step size d*lr"
    ]
    p2, plain2 = again["runs"]["prodigy"], again["runs"]["plain"]
    assert p2.key == prodigy.key and plain2.key == plain.key
    assert p2.lrs == d_lrs and p2.config["lr_recorded"] == "d*lr"
    with ResultStore(db) as store:
        stored = store.run(prodigy.key)
    assert stored is not None and stored.lrs == d_lrs
    con = sqlite3.connect(db)
    now = dict(con.execute("SELECT key, finished FROM runs").fetchall())
    con.close()
    assert now[plain.key] == finished[plain.key]  # reused, not run again
    assert now[prodigy.key] != finished[prodigy.key]

    # a third lab reuses both, with no note
    third = _prodigy_lab(db)
    assert not [w for w in third["warnings"] if "Prodigy" in w]
    assert third["runs"]["prodigy"].lrs == d_lrs
