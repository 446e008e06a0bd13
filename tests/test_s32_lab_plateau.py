"""The lab runs reduce-on-plateau (a strategy's ``plateau``) and records the step size an optimizer that
estimates its own (Prodigy) takes, ``d * lr``, not its multiplier ``lr``.

The plateau's LRs are checked against a hand loop with torch's own ``ReduceLROnPlateau`` (lrkit's
Plateau follows its rules; the relative threshold is torch's float for a metric >= 0, an accuracy here);
Prodigy's against ``d * lr`` read from its param group just before each of its steps."""

from __future__ import annotations

import math
import warnings
from pathlib import Path
from typing import Any

import pytest
import torch

from lrkit.control.plateau import Plateau
from lrkit.lab.experiment import load_experiment, parse_experiment
from lrkit.lab.runner import (
    PLATEAU_KEYS,
    Strategy,
    check_runs,
    check_schedules,
    run_config,
    run_lab,
    run_strategy,
)
from lrkit.lab.store import ResultStore, run_key
from lrkit.tasks import get_task
from lrkit.tasks.base import effective_lr, train_loop

TASK = "digits-mlp-sgd"  # accuracy: higher is better, so the plateau's mode is "max"
EPOCHS = 3
#: a relative threshold of 20% (torch's rel rule for a metric >= 0): epoch 2's accuracy (0.85 after 0.76)
#: is no improvement, so with patience 0 the LR is halved for epoch 3
PLATEAU = {"factor": 0.5, "patience": 0, "threshold": 0.2}


def _hand_loop(
    epochs: int, lr: float, factor: float, patience: int, threshold: float = 1e-4, threshold_mode: str = "rel"
) -> tuple[list[float], list[float]]:
    """The task trained at a constant ``lr`` cut by torch's ReduceLROnPlateau on the validation accuracy
    (mode max, torch's defaults otherwise), stepped after each epoch: (LR of each step, metrics)."""
    parts = get_task(TASK).build(0)
    opt = parts.make_optimizer(lr, parts.optimizer, parts.optimizer_params)
    sched = torch.optim.lr_scheduler.ReduceLROnPlateau(
        opt, mode="max", factor=factor, patience=patience, threshold=threshold, threshold_mode=threshold_mode
    )
    rec = train_loop(parts, opt, epochs, diverge_factor=10.0, on_epoch=lambda e, m: sched.step(m))
    return rec.lrs, rec.epoch_metrics


def test_lab_plateau_gives_torch_reduce_lr_on_plateau_lrs(tmp_path: Path) -> None:
    strategy = Strategy("plateau", "constant(lr=0.05)", plateau=PLATEAU)
    result = run_lab(TASK, [strategy], epochs=EPOCHS, store=str(tmp_path / "lab.db"))
    (run,) = result.runs
    lrs, metrics = _hand_loop(EPOCHS, 0.05, 0.5, 0, 0.2, "rel")
    assert len(run.lrs) == len(lrs) == EPOCHS * get_task(TASK).steps_per_epoch
    assert run.lrs == lrs  # factor 0.5: each cut is exact in both
    assert run.epoch_metrics == metrics
    assert min(lrs) < 0.05, "the hand loop never cut: the test would not tell a plateau from none"


def test_plateau_cuts_show_in_the_stored_lrs_and_config_round_trips(tmp_path: Path) -> None:
    db = str(tmp_path / "lab.db")
    with_p = Strategy("cut", "constant(lr=0.05)", plateau=PLATEAU)
    without = Strategy("flat", "constant(lr=0.05)")
    events: list[tuple[str, dict[str, Any]]] = []
    run_lab(TASK, [with_p, without], epochs=EPOCHS, store=db)
    with ResultStore(db) as store:
        (exp,) = store.experiments()
        runs = {r.label: r for r in store.runs(exp.id)}
    cfg = runs["cut"].config
    # the settings that differ from Plateau's defaults in the task's mode ("max"), which is left out
    given, defaults = Plateau(mode="max", **PLATEAU), Plateau(mode="max")
    differ = {k: getattr(given, k) for k in PLATEAU_KEYS if getattr(given, k) != getattr(defaults, k)}
    assert cfg["plateau"] == differ and "mode" not in cfg["plateau"]
    assert "plateau" not in runs["flat"].config
    # a run without a plateau keeps the key an lrkit before plateaus gave it (its config has no such key)
    old = {
        "task": TASK,
        "spec": "constant(lr=0.05)",
        "optimizer": "momentum",
        "optimizer_params": {},
        "seed": 0,
        "epochs": EPOCHS,
        "diverge_factor": 10.0,
    }
    assert runs["flat"].key == run_key(old)
    assert runs["cut"].key != runs["flat"].key
    assert set(runs["flat"].lrs) == {0.05} and min(runs["cut"].lrs) == 0.025
    # the experiment lists the plateau with its strategy (as given), the other without the key
    listed = {s["label"]: s for s in exp.config["strategies"]}
    assert listed["cut"]["plateau"] == PLATEAU
    assert "plateau" not in listed["flat"]
    # resuming runs nothing again, and keeps the two apart
    run_lab(TASK, [with_p, without], epochs=EPOCHS, store=db, progress=lambda e, i: events.append((e, i)))
    start = next(i for e, i in events if e == "start")
    assert start == {"total": 2, "done": 2}
    # a row rerun from its stored config gives its LRs again
    again = run_strategy(
        TASK,
        Strategy("cut", cfg["spec"], cfg["optimizer"], cfg["optimizer_params"], cfg["plateau"]),
        seed=cfg["seed"],
        epochs=cfg["epochs"],
        diverge_factor=cfg["diverge_factor"],
    )
    assert again.lrs == runs["cut"].lrs


def test_plateau_spellings_are_one_run_and_differ_from_none() -> None:
    t = get_task(TASK)
    a = Strategy("a", "constant(lr=0.05)", plateau={})
    b = Strategy("b", "constant(lr=0.05)", plateau={"factor": 0.1, "mode": "max", "patience": 10})
    c = Strategy("c", "constant(lr=0.05)", plateau=True)
    assert a.plateau == c.plateau == {}
    args = (TASK, 3, t.optimizer, t.optimizer_params)
    with pytest.raises(ValueError, match=r"strategies 'a' and 'b' are the same run .*plateau"):
        check_runs([a, b], *args, higher_is_better=True)
    check_runs([a, Strategy("d", "constant(lr=0.05)")], *args, higher_is_better=True)
    # the mode follows the task's direction, so a given mode="min" is another run on this task
    check_runs([a, Strategy("e", "constant(lr=0.05)", plateau={"mode": "min"})], *args, higher_is_better=True)
    cfg = run_config(TASK, a, 0, 3, "momentum", higher_is_better=False)
    assert cfg["plateau"] == {}  # the task's mode is the default: not held
    cfg = run_config(TASK, Strategy("m", "constant(lr=0.05)", plateau={"mode": "max"}), 0, 3, "momentum")
    assert cfg["plateau"] == {"mode": "max"}  # no direction given: the mode given is kept


@pytest.mark.parametrize(
    ("plateau", "message"),
    [
        (
            "{facter: 0.5}",
            r"experiment: strategies\[0\]\.plateau: unknown key 'facter'; expected mode, factor, patience, "
            r"threshold, threshold_mode, cooldown, min_lr, eps, start \(did you mean 'factor'\?\)",
        ),
        (
            "{factor: 2}",
            r"experiment: strategies\[0\]\.plateau\.factor must be a finite number >= 0 and < 1, got 2",
        ),
        ("{factor: '0.5'}", r"strategies\[0\]\.plateau\.factor must be a number, got the text '0\.5'"),
        ("{patience: 1.5}", r"strategies\[0\]\.plateau\.patience must be an integer >= 0, got float 1\.5"),
        ("{mode: up}", r"strategies\[0\]\.plateau\.mode must be 'min' or 'max', got 'up'"),
        (
            "{start: soon}",
            r"strategies\[0\]\.plateau\.start must be 'warmup' or an integer step >= 0, got 'soon'",
        ),
        ("{min_lr: [0.1, 0.2]}", r"strategies\[0\]\.plateau\.min_lr must be one number .*got \[0\.1, 0\.2\]"),
        ("", r"strategies\[0\]\.plateau is empty; give its settings"),
        ("yes", r"strategies\[0\]\.plateau must be a mapping of Plateau settings .*got str 'yes'"),
    ],
)
def test_bad_plateau_settings_are_refused_naming_key_and_value(
    tmp_path: Path, plateau: str, message: str
) -> None:
    path = tmp_path / "exp.yaml"
    path.write_text(
        f"task: {TASK}\nstrategies:\n  - {{label: p, spec: 'constant(lr=0.05)', plateau: {plateau}}}\n"
    )
    with pytest.raises(ValueError, match=message) as err:
        load_experiment(path)
    assert "\n" not in str(err.value)


def test_experiment_files_take_a_plateau(tmp_path: Path) -> None:
    yaml = tmp_path / "exp.yaml"
    yaml.write_text(
        f"task: {TASK}\nstrategies:\n"
        "  cut: {spec: 'constant(lr=0.05)', plateau: {factor: 0.5, patience: 2, min_lr: 0.001}}\n"
        "  defaults: {spec: 'constant(lr=0.05)', plateau: true}\n"
        "  none: {spec: 'constant(lr=0.05)', plateau: false}\n"
    )
    s = {x.label: x for x in load_experiment(yaml).strategies}
    assert s["cut"].plateau == {"factor": 0.5, "patience": 2, "min_lr": 0.001}
    assert s["defaults"].plateau == {} and s["none"].plateau is None
    toml = tmp_path / "exp.toml"
    toml.write_text(
        f'task = "{TASK}"\n[[strategies]]\nlabel = "p"\nspec = "constant(lr=0.05)"\n'
        '[strategies.plateau]\nfactor = 0.5\nthreshold_mode = "abs"\nthreshold = 0.01\n'
    )
    (p,) = load_experiment(toml).strategies
    assert p.plateau == {"factor": 0.5, "threshold_mode": "abs", "threshold": 0.01}
    exp = parse_experiment({"task": TASK, "strategies": [{"spec": "constant(0.05)", "plateau": {}}]})
    assert exp.strategies[0].plateau == {}


def test_python_strategy_refuses_a_plateau_object_and_bad_values() -> None:
    with pytest.raises(TypeError, match=r"strategy 'p': plateau must be the settings of a Plateau as a dict"):
        Strategy("p", "constant(lr=0.05)", plateau=Plateau())  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"strategy 'p': plateau\.cooldown must be an integer >= 0, got -1"):
        Strategy("p", "constant(lr=0.05)", plateau={"cooldown": -1})
    with pytest.raises(ValueError, match=r"strategy 'p': plateau: unknown key 'patiense'.*'patience'"):
        Strategy("p", "constant(lr=0.05)", plateau={"patiense": 2})


def test_a_plateau_that_gets_no_metric_is_refused_before_anything_runs(tmp_path: Path) -> None:
    db = tmp_path / "lab.db"
    s = Strategy("p", "constant(lr=0.05)", plateau=PLATEAU)
    with pytest.raises(ValueError, match=r"strategy 'p': its plateau would be given no metric"):
        run_lab(TASK, [s], epochs=1, store=str(db))
    assert not db.exists()
    warm = Strategy("w", "warmup(3ep) >> constant(lr=0.05)", plateau=PLATEAU)
    with pytest.raises(ValueError, match=r"its plateau would be given no metric"):
        check_schedules([warm], 3, 45)
    counted = Strategy("w0", "warmup(3ep) >> constant(lr=0.05)", plateau={"start": 0})  # from step 0
    with pytest.warns(UserWarning, match=r"'w0': its plateau can never cut .*only 2 metrics"):
        check_schedules([counted], 3, 45)  # not refused: 2 metrics, too few for patience 10


def test_a_plateau_that_cannot_cut_within_the_run_is_warned_about() -> None:
    s = Strategy("p", "constant(lr=0.05)", plateau={})  # patience 10
    with pytest.warns(UserWarning, match=r"strategy 'p': its plateau can never cut the LR: .*11 epochs"):
        check_schedules([s], 10, 45)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        check_schedules([Strategy("q", "constant(lr=0.05)", plateau={"patience": 2})], 10, 45)


def test_the_command_line_points_plateaus_to_experiment_files(capsys: pytest.CaptureFixture[str]) -> None:
    from lrkit.cli import main

    with pytest.raises(ValueError, match=r"reduce-on-plateau is not a schedule: .*experiment file"):
        Strategy.parse("p=plateau(patience=2)", "--strategy")
    assert main(["lab", "--help"]) == 0
    help_text = capsys.readouterr().out
    assert "is set in an experiment file (a strategy's plateau:" in " ".join(help_text.split())
    assert "plateau: {factor: 0.5, patience: 2}" in help_text


def test_lab_cli_runs_an_experiment_with_a_plateau(tmp_path: Path) -> None:
    from lrkit.cli import main

    path = tmp_path / "exp.yaml"
    path.write_text(
        f"task: {TASK}\nepochs: 3\nworkers: 1\noutput: out\nstrategies:\n"
        "  - label: cut\n    spec: 'constant(lr=0.05)'\n"  # an accuracy never 0.5 above its best: cut
        "    plateau: {factor: 0.5, patience: 0, threshold: 0.5, threshold_mode: abs}\n"
    )
    assert main(["lab", str(path)]) == 0
    with ResultStore(str(tmp_path / "out" / "lab.db")) as store:
        (run,) = store.runs(store.experiments()[0].id)
    lrs, _ = _hand_loop(3, 0.05, 0.5, 0, 0.5, "abs")
    assert run.lrs == lrs and min(lrs) < 0.05


# --- the effective LR of Prodigy -------------------------------------------------------------------------


def test_prodigy_runs_record_d_times_lr() -> None:
    pytest.importorskip("prodigyopt")
    parts = get_task(TASK).build(0)
    opt = parts.make_optimizer(1.0, "prodigy", {})
    seen: list[float] = []
    opt.register_step_pre_hook(lambda o, a, k: seen.append(o.param_groups[0]["d"] * o.param_groups[0]["lr"]))
    rec = train_loop(parts, opt, 1, diverge_factor=10.0)
    assert len(seen) == len(rec.lrs) == rec.steps
    assert rec.lrs == seen
    assert rec.lrs[0] == pytest.approx(1e-6)  # Prodigy's d0 times lr 1.0
    assert max(rec.lrs) < 1.0 and len(set(rec.lrs)) > 1  # its own estimate, not the multiplier
    lab = run_strategy(TASK, Strategy("prodigy", "constant(lr=1.0)", "prodigy"), epochs=1)
    assert lab.lrs == seen  # the lab's run is the same run


def test_effective_lr_of_plain_groups_is_their_lr() -> None:
    assert effective_lr({"lr": 0.1}) == 0.1
    assert effective_lr({"lr": 0.5, "d": 0.002}) == 0.5 * 0.002
    assert effective_lr({"lr": torch.tensor(0.25), "d": torch.tensor(0.5)}) == 0.125
    assert math.isclose(effective_lr({"lr": 1.0, "d": 3e-3}), 3e-3)
