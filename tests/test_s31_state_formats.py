"""State formats are versioned, and the versions moved with the strict JSON encoding: the guard writes
``lrkit.guard/2``, the torch scheduler ``lrkit.torch/3`` (its plateau state is strict JSON), a Plateau
``lrkit.plateau/2`` (its states had no format before). So the previous lrkit, whose check refuses a
later version ("written by a newer lrkit"), says that of a new checkpoint instead of failing on a
``best`` of None ("best must be a number, got NoneType"). States of every older version still load; a
state one version ahead is refused with "newer" and changes nothing.

The OLD_* states below are what lrkit 843df23 (the release before the bump) wrote, printed as they were.
"""

from __future__ import annotations

import copy
import json
import math
from typing import Any

import pytest

torch = pytest.importorskip("torch")

import lrkit  # noqa: E402
from lrkit.control import DivergenceGuard, Plateau  # noqa: E402

pytestmark = pytest.mark.usefixtures("one_torch_thread")

inf, nan = math.inf, math.nan

#: the formats the previous lrkit wrote and read (its guard refused any later "lrkit.guard/N", its torch
#: scheduler any later "lrkit.torch/N"; its Plateau read no format)
PREVIOUS = {"guard": "lrkit.guard/1", "torch": "lrkit.torch/2"}

OLD_GUARD = {  # after a NaN at step 3: one rollback, the LR halved
    "events": [
        {
            "action": "rollback",
            "loss": nan,
            "lr_after": [0.04980286753286195],
            "lr_before": [0.09911436253643444],
            "reason": "nan",
            "recovery": 1,
            "reference": 0.04324398189783096,
            "snapshot_step": 2,
            "step": 3,
        }
    ],
    "failed_at": 3,
    "format": "lrkit.guard/1",
    "good_since_rollback": 1,
    "high": 0,
    "history": [0.04324398189783096] * 4,
    "in_a_row": 1,
    "low": 0.04324398189783096,
    "multiplier": 0.5,
    "resume_step": 2,
    "scale": 0.0,
    "signed": False,
    "since_snapshot": 1,
    "snapshot_every": 2,
}
OLD_FRESH_GUARD = {
    "events": [],
    "failed_at": -1,
    "format": "lrkit.guard/1",
    "good_since_rollback": 0,
    "high": 0,
    "history": [],
    "in_a_row": 0,
    "low": inf,
    "multiplier": 1.0,
    "resume_step": None,
    "scale": 0.0,
    "signed": False,
    "since_snapshot": 0,
    "snapshot_every": 2,
}
OLD_SCHEDULER = {  # one step, a plateau with no metric yet
    "base_lrs": [0.1],
    "format": "lrkit.torch/2",
    "hparams": {},
    "interval": "step",
    "last_epoch": 1,
    "multiplier": 1.0,
    "plateau": {
        "best": inf,
        "cooldown_counter": 0,
        "last_epoch": 0,
        "mode": "min",
        "num_bad_epochs": 0,
        "num_reductions": 0,
    },
    "plateau_cuts": [1.0],
    "relative": False,
    "schedule": ["cosine(lr=0.1, steps=50)"],
    "steps_per_epoch": None,
    "total_steps": 50.0,
}
OLD_PLATEAU = {
    "best": -inf,
    "cooldown_counter": 0,
    "last_epoch": 0,
    "mode": "max",
    "num_bad_epochs": 0,
    "num_reductions": 0,
}


def _model() -> torch.nn.Module:
    torch.manual_seed(0)
    return torch.nn.Linear(2, 1)


def _guard(with_scheduler: bool = False) -> DivergenceGuard:
    model = _model()
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    return DivergenceGuard(model, opt, _sched(opt) if with_scheduler else None, snapshot_every=2)


def _sched(opt: torch.optim.Optimizer | None = None) -> Any:
    opt = opt or torch.optim.SGD(_model().parameters(), lr=0.1)
    plateau = Plateau(patience=0, start=0)
    return lrkit.torch.scheduler(
        opt, "cosine(lr=0.1)", total_steps=50, follow_optimizer=False, plateau=plateau
    )


def _previous_refuses(fmt: object, ours: str) -> bool:
    """The previous lrkit's check (guard.py's ``_newer_format``; torch.py's ``_format_version`` refuses the
    same): whether ``fmt`` is a later version of its format ``ours``."""
    name, _, version = ours.rpartition("/")
    if not isinstance(fmt, str) or not fmt.startswith(name + "/"):
        return False
    theirs = fmt[len(name) + 1 :]
    return theirs.isascii() and theirs.isdigit() and int(theirs) > int(version)


def _bump(fmt: str, by: int = 1) -> str:
    name, _, version = fmt.rpartition("/")
    return f"{name}/{int(version) + by}"


# -- what is written now ---------------------------------------------------------------------------------


def test_each_state_names_its_format() -> None:
    assert _guard().state_dict()["format"] == "lrkit.guard/2"
    state = _sched().state_dict()
    assert state["format"] == "lrkit.torch/3"
    assert state["plateau"]["format"] == "lrkit.plateau/2"
    assert Plateau().state_dict()["format"] == "lrkit.plateau/2"


def test_the_previous_lrkit_takes_a_state_written_now_for_a_newer_ones() -> None:
    assert _previous_refuses(_guard().state_dict()["format"], PREVIOUS["guard"])
    assert _previous_refuses(_sched().state_dict()["format"], PREVIOUS["torch"])


# -- older states load ------------------------------------------------------------------------------------


@pytest.mark.parametrize("state", [OLD_GUARD, OLD_FRESH_GUARD], ids=["after_a_rollback", "fresh"])
def test_a_guard_state_of_format_1_loads(state: dict[str, Any]) -> None:
    guard = _guard()
    guard.load_state_dict(copy.deepcopy(state))
    assert guard.multiplier == state["multiplier"]
    assert guard.resume_step == state["resume_step"]
    assert [math.isnan(e.loss) for e in guard.events] == [True] * len(state["events"])
    again = guard.state_dict()
    assert again["format"] == "lrkit.guard/2"
    json.dumps(again, allow_nan=False)  # written back as strict JSON
    assert again["low"] == (None if state["low"] == inf else state["low"])


def test_a_scheduler_state_of_format_2_loads() -> None:
    s = _sched()
    s.load_state_dict(copy.deepcopy(OLD_SCHEDULER))
    assert s.last_epoch == 1 and s.plateau is not None and s.plateau.best == inf
    assert s.state_dict()["plateau"]["best"] is None


def test_a_scheduler_state_of_format_1_loads() -> None:
    keep = ("format", "last_epoch", "interval", "base_lrs", "multiplier", "plateau", "plateau_cuts")
    old = {key: OLD_SCHEDULER[key] for key in keep} | {"format": "lrkit.torch/1"}
    s = _sched()
    with pytest.warns(UserWarning, match="older lrkit"):
        s.load_state_dict(copy.deepcopy(old))
    assert s.last_epoch == 1 and s.plateau is not None and s.plateau.best == inf


def test_a_plateau_state_without_a_format_loads() -> None:
    p = Plateau(mode="max")
    p.load_state_dict({**OLD_PLATEAU, "best": 0.5})
    assert p.best == 0.5
    p.load_state_dict(dict(OLD_PLATEAU))
    assert p.best == -inf


def test_states_written_now_round_trip_through_strict_json() -> None:
    s, p, g = _sched(), Plateau(mode="max"), _guard()
    for obj in (s, p, g):
        state = json.loads(json.dumps(obj.state_dict(), allow_nan=False))
        obj.load_state_dict(state)  # type: ignore[attr-defined]


# -- a newer state is refused, and changes nothing --------------------------------------------------------


def test_a_guard_state_one_version_ahead_is_refused() -> None:
    guard = _guard()
    ahead = {**OLD_GUARD, "format": _bump(guard.state_dict()["format"])}
    with pytest.raises(ValueError, match=r"newer lrkit \(format 'lrkit\.guard/3'; this lrkit reads "):
        guard.load_state_dict(ahead)
    assert guard.multiplier == 1.0 and guard.events == []


def test_a_scheduler_state_one_version_ahead_is_refused() -> None:
    s = _sched()
    ahead = {**s.state_dict(), "last_epoch": 7, "format": _bump(s.state_dict()["format"])}
    with pytest.raises(ValueError, match=r"newer lrkit \(format 'lrkit\.torch/4'"):
        s.load_state_dict(ahead)
    assert s.last_epoch == 0


def test_a_plateau_state_one_version_ahead_is_refused() -> None:
    p = Plateau()
    ahead = {**p.state_dict(), "num_bad_epochs": 3, "format": _bump(p.state_dict()["format"])}
    with pytest.raises(ValueError, match=r"newer lrkit \(format 'lrkit\.plateau/3'"):
        p.load_state_dict(ahead)
    assert p.num_bad_epochs == 0
    # also inside a scheduler's state: refused before anything changes
    s = _sched()
    state = s.state_dict()
    state["plateau"] = ahead
    with pytest.raises(ValueError, match=r"newer lrkit \(format 'lrkit\.plateau/3'"):
        s.load_state_dict(state)


@pytest.mark.parametrize("fmt", ["lrkit.guard/2", "lrkit.plateau/x", 2, "lrkit.plateau/1"])
def test_a_plateau_state_of_another_format_is_refused_naming_it(fmt: object) -> None:
    with pytest.raises(
        ValueError, match=rf"format must be 'lrkit\.plateau/2' \(or absent.*got {type(fmt).__name__}"
    ):
        Plateau().load_state_dict({**Plateau().state_dict(), "format": fmt})


def test_strict_json_states_written_under_the_old_format_names_load() -> None:
    """The lrkit between the encoding and the bump wrote strict JSON (``best`` None, ``low`` None) under
    ``lrkit.guard/1`` and ``lrkit.torch/2``, a Plateau's without a format: they load as they are."""
    g = _guard()
    state = json.loads(json.dumps(g.state_dict(), allow_nan=False))
    assert state["low"] is None
    _guard().load_state_dict({**state, "format": "lrkit.guard/1"})
    s = _sched()
    state = json.loads(json.dumps(s.state_dict(), allow_nan=False))
    plateau = {k: v for k, v in state["plateau"].items() if k != "format"}
    assert plateau["best"] is None
    t = _sched()
    t.load_state_dict({**state, "format": "lrkit.torch/2", "plateau": plateau})
    assert t.plateau is not None and t.plateau.best == inf
