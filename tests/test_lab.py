"""The lab: recorded LRs against the closed form, divergence, resumable and parallel runs that survive
SIGKILL, two labs on one database, experiment files, and never touching a file that is not ours."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lrkit.lab.experiment import STRATEGY_KEYS, TOP_KEYS, load_experiment, parse_experiment
from lrkit.lab.runner import Strategy, run_lab, run_strategy
from lrkit.lab.store import ResultStore, check_db_path
from lrkit.spec import parse

torch = pytest.importorskip("torch")
TASK = "digits-mlp-sgd"
pytestmark = pytest.mark.usefixtures("one_torch_thread")


def test_runs_record_the_scheduled_lr_and_land_in_sqlite(tmp_path: Path) -> None:
    strategies = [
        Strategy("cosine", "warmup(10%) >> cosine(lr=0.05)"),
        Strategy("adam", "constant(1e-3)", "adam"),
    ]
    db = tmp_path / "lab.db"
    res = run_lab(TASK, strategies, epochs=1, store=str(db))
    assert [r.label for r in res.runs] == ["cosine", "adam"]
    cos = res.runs[0]
    n = len(cos.lrs)
    assert n == cos.steps == 45  # 1437 digits / batch 32
    expected = parse("warmup(10%) >> cosine(lr=0.05)").resolve(total_steps=n, steps_per_epoch=n)(np.arange(n))
    np.testing.assert_allclose(cos.lrs, expected, rtol=1e-12)
    assert cos.status == "ok" and cos.final_metric is not None and cos.final_metric > 0.5
    assert res.runs[1].optimizer == "adam" and res.higher_is_better and res.metric_name == "val accuracy"
    with ResultStore(db) as again:  # read back from the file, as another process would
        assert [(r.label, r.final_metric) for r in again.runs(res.experiment_id)] == [
            (r.label, r.final_metric) for r in res.runs
        ]


def test_too_large_lr_diverges_and_too_small_crawls() -> None:
    big = run_strategy(TASK, Strategy("big", "constant(20.0)"), epochs=1)
    assert big.status == "diverged" and big.diverged_step is not None and big.final_metric is None
    small = run_strategy(TASK, Strategy("small", "constant(1e-5)"), epochs=1)
    good = run_strategy(TASK, Strategy("good", "constant(0.05)"), epochs=1)
    assert small.status == good.status == "ok"
    assert small.final_metric is not None and good.final_metric is not None
    assert small.final_metric < 0.5 < 0.7 < good.final_metric


def test_learning_rate_free_optimizers_run_and_schedule_free_evaluates_in_eval_mode() -> None:
    """Schedule-Free's eval weights differ from its train weights: the lab must call optimizer.eval()
    before measuring. Check the recorded metric equals a hand loop that does so, at a seed where the
    train-mode weights score differently (else this test could not fail). The accuracy on 360 digits
    moves in steps of 1/360, so at some seeds both weights score the same: which ones depends on the
    schedulefree version (seed 3 at 1.2, seed 2 at 1.4), hence the first seed where they differ."""
    from lrkit.tasks import get_task, make_optimizer

    def by_hand(seed: int) -> tuple[float, float]:
        """Accuracy at the eval-mode and at the train-mode weights after one epoch."""
        parts = get_task(TASK).build(seed)
        opt = make_optimizer("schedulefree_adamw", parts.model.parameters(), 0.0025)
        opt.train()
        for x, y in parts.train_loader:
            opt.zero_grad()
            parts.loss_fn(parts.model(x), y).backward()
            opt.step()
        opt.eval()
        at_eval = parts.evaluate()
        opt.train()
        return at_eval, parts.evaluate()

    seed, (at_eval, at_train) = next((s, acc) for s in range(5) if len(set(acc := by_hand(s))) == 2)
    rec = run_strategy(TASK, Strategy("sf", "constant(0.0025)", "schedulefree_adamw"), epochs=1, seed=seed)
    assert rec.final_metric == pytest.approx(at_eval, abs=1e-12) and rec.final_metric != at_train
    prodigy = run_strategy(TASK, Strategy("p", "constant(1.0)", "prodigy"), epochs=1)
    assert prodigy.status == "ok" and prodigy.final_metric is not None and prodigy.final_metric > 0.5


def test_rerun_skips_finished_runs_and_fresh_starts_over(tmp_path: Path) -> None:
    db = tmp_path / "lab.db"
    s = [Strategy("a", "constant(0.05)"), Strategy("b", "cosine(lr=0.05)")]
    events: list[str] = []
    first = run_lab(TASK, s, seeds=[0, 1], epochs=1, store=str(db), progress=lambda e, i: events.append(e))
    assert events.count("run") == 4
    events.clear()
    again = run_lab(TASK, s, seeds=[0, 1], epochs=1, store=str(db), progress=lambda e, i: events.append(e))
    assert events.count("run") == 0  # nothing trained again
    assert [(r.label, r.seed, r.final_metric) for r in again.runs] == [
        (r.label, r.seed, r.final_metric) for r in first.runs
    ]
    events.clear()
    run_lab(
        TASK, s, seeds=[0, 1], epochs=1, store=str(db), fresh=True, progress=lambda e, i: events.append(e)
    )
    assert events.count("run") == 4
    con = sqlite3.connect(db)
    assert con.execute("SELECT count(*) FROM runs").fetchone()[0] == 4
    assert con.execute("SELECT count(*) FROM experiments").fetchone()[0] == 1
    # a changed config (another epoch budget) is another run, not a stale hit
    run_lab(TASK, s[:1], seeds=[0], epochs=2, store=str(db))
    assert con.execute("SELECT count(*) FROM runs").fetchone()[0] == 5


def _lab_cmd(exp: Path, *extra: str) -> list[str]:
    return [sys.executable, "-m", "lrkit.cli", "lab", str(exp), *extra]


def _write_experiment(path: Path, out: Path, epochs: int = 2, seeds: int = 2) -> Path:
    path.write_text(
        f"task: {TASK}\nepochs: {epochs}\nseeds: {seeds}\noutput: {out}\n"
        "strategies:\n"
        "  - 'constant=constant(0.05)'\n"
        "  - label: cosine\n    spec: 'warmup(5%) >> cosine(lr=5e-2)'\n"
        "  - label: adam\n    spec: constant(1e-3)\n    optimizer: adam\n"
        "  - label: too large\n    spec: constant(30.0)\n"
    )
    return path


def _table(db: Path) -> list[tuple[str, int, str, float | None]]:
    con = sqlite3.connect(db)
    try:
        rows = con.execute(
            "SELECT m.label, r.seed, r.status, r.final_metric FROM members m "
            "JOIN runs r ON r.key = m.run_key ORDER BY m.label, r.seed"
        ).fetchall()
    finally:
        con.close()
    return [(a, b, c, d) for a, b, c, d in rows]


def _env() -> dict[str, str]:
    return {**os.environ, "OMP_NUM_THREADS": "1", "MPLBACKEND": "Agg"}


def _finished(db: Path) -> int:
    if not db.exists():
        return 0
    try:
        con = sqlite3.connect(db, timeout=10)
        try:
            return int(con.execute("SELECT count(*) FROM runs WHERE status != 'running'").fetchone()[0])
        finally:
            con.close()
    except sqlite3.OperationalError:
        return 0


@pytest.mark.parametrize("workers", [1, 2])
def test_sigkill_at_several_points_then_rerun_equals_an_uninterrupted_lab(
    tmp_path: Path, workers: int
) -> None:
    ref_out = tmp_path / "ref"
    ref = subprocess.run(
        _lab_cmd(_write_experiment(tmp_path / "ref.yaml", ref_out), "--workers", str(workers)),
        env=_env(),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert ref.returncode == 0, ref.stderr + ref.stdout
    expected = _table(ref_out / "lab.db")
    assert len(expected) == 8 and sum(1 for r in expected if r[2] == "diverged") == 2

    out = tmp_path / "killed"
    exp = _write_experiment(tmp_path / "k.yaml", out)
    db = out / "lab.db"
    for after in (0, 2, 5):  # kill once some runs are stored (0: while the first ones train)
        proc = subprocess.Popen(
            _lab_cmd(exp, "--workers", str(workers)),
            env=_env(),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and proc.poll() is None:
            if _finished(db) >= after and db.exists():
                break
            time.sleep(0.05)
        time.sleep(0.3)
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)  # the lab and its workers, mid-write or mid-run
        proc.wait()
        con = sqlite3.connect(db)
        assert con.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        con.close()
    final = subprocess.run(
        _lab_cmd(exp, "--workers", str(workers)), env=_env(), capture_output=True, text=True, timeout=300
    )
    assert final.returncode == 0, final.stderr + final.stdout
    con = sqlite3.connect(db)
    assert con.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    assert con.execute("SELECT count(*) FROM runs").fetchone()[0] == 8  # no run stored twice
    assert con.execute("SELECT count(*) FROM runs WHERE status = 'running'").fetchone()[0] == 0
    steps = con.execute("SELECT run_key, count(*), max(step) FROM steps GROUP BY run_key").fetchall()
    assert all(n == top + 1 for _, n, top in steps)  # no half-written curve
    con.close()
    assert _table(db) == expected


def test_two_labs_on_one_database_at_once_store_each_run_once(tmp_path: Path) -> None:
    out = tmp_path / "shared"
    exp = _write_experiment(tmp_path / "e.yaml", out, epochs=2, seeds=2)
    procs = [
        subprocess.Popen(
            _lab_cmd(exp, "--workers", "1"),
            env=_env(),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(2)
    ]
    outs = [p.communicate(timeout=300) for p in procs]
    assert all(p.returncode == 0 for p in procs), outs
    con = sqlite3.connect(out / "lab.db")
    assert con.execute("SELECT count(*) FROM runs").fetchone()[0] == 8
    assert con.execute("SELECT count(DISTINCT key) FROM runs").fetchone()[0] == 8
    trained = [o.count(" / seed ") for o, _ in outs]  # one line per run each lab trained itself
    assert sum(trained) == 8, outs


def test_db_that_is_not_ours_is_refused_and_left_untouched(tmp_path: Path) -> None:
    text = tmp_path / "notes.db"
    text.write_text("my notes, not a database\n")
    other = tmp_path / "other.sqlite"
    con = sqlite3.connect(other)
    con.execute("CREATE TABLE users (name TEXT)")
    con.commit()
    con.close()
    empty = tmp_path / "empty.db"
    empty.write_bytes(b"")
    for path, why in [
        (text, "not an lrkit database"),
        (other, "not an lrkit lab database"),
        (empty, "not an lrkit database"),
        (tmp_path, "is a directory"),
        (text / "x.db", "which is a file"),
    ]:
        before = path.read_bytes() if path.is_file() else None
        with pytest.raises(ValueError, match=why):
            check_db_path(path)
        with pytest.raises(ValueError, match=why):
            ResultStore(path)
        assert (path.read_bytes() if path.is_file() else None) == before


@pytest.mark.parametrize("keep", [4096, 8192, 20000])
def test_a_damaged_lab_database_is_named_damaged_not_foreign(tmp_path: Path, keep: int) -> None:
    """A lab.db cut short (a full disk, a partial copy) was called "not an lrkit lab database"; it is an
    SQLite file SQLite cannot read, said so, and left as it was."""
    whole = tmp_path / "lab.db"
    ResultStore(whole).close()
    cut = tmp_path / "cut.db"
    cut.write_bytes(whole.read_bytes()[:keep])
    before = cut.read_bytes()
    for call in (check_db_path, ResultStore):
        with pytest.raises(
            ValueError, match=r"SQLite cannot read \(database disk image is malformed\): damaged"
        ):
            call(cut)
    assert cut.read_bytes() == before


def test_lab_command_checks_every_path_before_training(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from lrkit.cli import main

    afile = tmp_path / "afile"
    afile.write_text("mine")
    notdb = tmp_path / "notdb.db"
    notdb.write_text("mine too")
    for args, flag in [
        (["--out", str(afile)], "--out"),
        (["--out", str(afile / "lab")], "--out"),
        (["--db", str(notdb)], "--db"),
        (["--db", str(tmp_path)], "--db"),
    ]:
        t0 = time.perf_counter()
        rc = main(["lab", "--strategy", "constant(0.05)", "--epochs", "1", *args])
        err = capsys.readouterr().err
        assert rc == 2 and flag in err and err.count("\n") == 1, err
        assert time.perf_counter() - t0 < 30  # refused before any training (a full lab takes longer)
    for argv in (["demo", "--out", str(afile / "d")], ["demo", "--out", str(afile)], ["report", str(notdb)]):
        assert main(argv) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and ("--out" in err or "DB_OR_DIR" in err), err
    assert afile.read_text() == "mine" and notdb.read_text() == "mine too"
    assert not (tmp_path / "lrkit-lab").exists()


def test_experiment_yaml_and_toml_numbers_and_strategies(tmp_path: Path) -> None:
    y = tmp_path / "e.yaml"
    y.write_text(
        "task: digits-mlp-adam\nseeds: [0, 7]\nepochs: 3\nworkers: 2\noutput: out\n"
        "strategies:\n  - label: adamw\n    spec: 'warmup(5%) >> cosine(lr=3e-4)'\n    optimizer: adamw\n"
        "    optimizer_params: {weight_decay: 1e-2, betas: [0.9, 0.95]}\n"
        "  - 'sf@schedulefree_adamw=constant(2.5e-3)'\n"
    )
    e = load_experiment(y)
    assert e.task == "digits-mlp-adam" and e.seeds == [0, 7] and e.epochs == 3 and e.workers == 2
    assert e.output == tmp_path / "out" and e.name == "e"
    assert e.strategies[0].optimizer_params == {"weight_decay": 0.01, "betas": (0.9, 0.95)}
    assert e.strategies[1].optimizer == "schedulefree_adamw" and e.strategies[1].label == "sf"
    t = tmp_path / "e.toml"
    t.write_text(
        'task = "digits-mlp-sgd"\nseeds = 3\n[[strategies]]\nlabel = "cos"\nspec = "cosine(lr=5e-2)"\n'
        '[[strategies]]\nlabel = "dict"\nspec = { type = "constant", lr = 0.05 }\n'
    )
    e2 = load_experiment(t)
    assert e2.seeds == [0, 1, 2] and [s.label for s in e2.strategies] == ["cos", "dict"]


KNOWN = TOP_KEYS


@settings(max_examples=60, deadline=None)
@given(key=st.text(min_size=1, max_size=20).filter(lambda k: k not in KNOWN))
def test_unknown_top_level_keys_are_errors_that_name_the_key(key: str) -> None:
    with pytest.raises(ValueError, match="unknown key") as info:
        parse_experiment({"task": TASK, "strategies": ["constant(0.1)"], key: 1})
    assert repr(key) in str(info.value)


@settings(max_examples=40, deadline=None)
@given(key=st.text(min_size=1, max_size=20).filter(lambda k: k not in STRATEGY_KEYS))
def test_unknown_strategy_keys_are_errors_that_name_the_key(key: str) -> None:
    with pytest.raises(ValueError, match=r"strategies\[0\]: unknown key") as info:
        parse_experiment({"task": TASK, "strategies": [{"spec": "constant(0.1)", key: 1}]})
    assert repr(key) in str(info.value)


@pytest.mark.parametrize(
    ("data", "msg"),
    [
        ({"strategies": ["constant(0.1)"]}, "missing key 'task'"),
        ({"task": TASK}, "missing key 'strategies'"),
        ({"task": TASK, "strategies": "constant(0.1)"}, "strategies must be a list"),
        ({"task": TASK, "strategies": [3]}, r"strategies\[0\] must be a string or a mapping"),
        ({"task": TASK, "strategies": [{"label": "x"}]}, "missing key 'spec'"),
        ({"task": TASK, "strategies": ["constant(0.1)"], "seeds": 0}, "seeds must be an integer >= 1"),
        ({"task": TASK, "strategies": ["constant(0.1)"], "seeds": [1, 1]}, "distinct"),
        ({"task": TASK, "strategies": ["constant(0.1)"], "epochs": "many"}, "epochs must be an integer"),
        ({"task": TASK, "strategies": ["constant(0.1)"], "workers": True}, "workers must be an integer"),
        (
            {"task": TASK, "strategies": [{"spec": "constant(0.1)", "optimizer": "lion"}]},
            "optimizer must be one of",
        ),
        (
            {"task": TASK, "strategies": ["constant(0.1)"], "diverge_factor": "nan"},
            "diverge_factor must be a finite",
        ),
    ],
)
def test_experiment_errors_name_the_key(data: dict[str, object], msg: str) -> None:
    with pytest.raises(ValueError, match=msg):
        parse_experiment(data)


def test_bad_experiment_files(tmp_path: Path) -> None:
    bad_utf8 = tmp_path / "b.yaml"
    bad_utf8.write_bytes(b"task: \xff\xfe\n")
    deep = tmp_path / "d.yaml"
    deep.write_text("task: " + "[" * 5000 + "]" * 5000 + "\n")
    for path, msg in [
        (tmp_path / "missing.yaml", "no such file"),
        (tmp_path, "is a directory"),
        (bad_utf8, "not UTF-8"),
        (deep, "nested too deeply|not valid YAML"),
        (tmp_path / "x.json", "expected a .yaml"),
    ]:
        if path.suffix == ".json":
            path.write_text("{}")
        with pytest.raises(ValueError, match=msg):
            load_experiment(path)


def test_report_failure_keeps_the_database_and_says_how_to_remake_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from lrkit.cli import main
    from lrkit.lab import cli as lab_cli

    def broken(*args: object, **kwargs: object) -> list[Path]:
        raise OSError("disk full")

    monkeypatch.setattr(lab_cli, "write_outputs", broken)
    out = tmp_path / "o"
    rc = main(["lab", "--strategy", "constant(0.05)", "--epochs", "1", "--workers", "1", "--out", str(out)])
    text = capsys.readouterr().err  # an error: on stderr
    assert rc == 1 and "disk full" in text and f"lrkit report {out / 'lab.db'}" in text
    with ResultStore(out / "lab.db") as store:
        (exp,) = store.experiments()
        assert len(store.runs(exp.id)) == 1
    monkeypatch.undo()
    assert main(["report", str(out)]) == 0
    assert (out / "report.html").exists()


def test_example_user_task_runs_through_find_and_lab(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """examples/my_task.py goes through the same path as the built-in tasks (finder CLI and lab)."""
    from lrkit.cli import main

    monkeypatch.syspath_prepend(str(Path(__file__).parent.parent / "examples"))
    assert main(["find", "--task", "my_task:wine_mlp", "--num-steps", "40", "--out", "none"]) == 0
    out = tmp_path / "lab"
    rc = main(
        [
            "lab",
            "--task",
            "my_task:wine_mlp",
            "--strategy",
            "cos=cosine(lr=0.05)",
            "--epochs",
            "3",
            "--workers",
            "1",
            "--out",
            str(out),
        ]
    )
    assert rc == 0, capsys.readouterr()
    with ResultStore(out / "lab.db") as store:
        (exp,) = store.experiments()
        (run,) = store.runs(exp.id)
    assert exp.task == "my_task:wine_mlp" and run.label == "cos" and run.status == "ok"
    assert run.final_metric is not None and run.final_metric > 0.6


def test_the_readme_experiment_file_parses(tmp_path: Path) -> None:
    readme = (Path(__file__).parent.parent / "README.md").read_text(encoding="utf-8")
    block = readme.split("```yaml\n", 1)[1].split("```", 1)[0]
    (tmp_path / "experiment.yaml").write_text(block)
    e = load_experiment(tmp_path / "experiment.yaml")
    assert [s.optimizer for s in e.strategies] == [None, "adamw", "schedulefree_adamw", None]
    assert (
        e.seeds == [0, 1, 2] and e.workers == 2 and e.strategies[1].optimizer_params == {"weight_decay": 0.05}
    )


def test_progress_bars_on_a_terminal_and_plain_lines_otherwise() -> None:
    import io

    from lrkit.lab.progress import SweepProgress
    from lrkit.lab.store import RunRecord

    rec = RunRecord("k", "constant(lr=0.1)", "sgd", 1, "ok", 0.91, 0.92, None, 90, 1.25, label="cos")
    bad = RunRecord("k2", "constant(lr=9.0)", "sgd", 0, "diverged", None, None, 7, 7, 0.1, label="big")
    plain = io.StringIO()
    p = SweepProgress(plain, bars=False)
    p("start", {"total": 4, "done": 2})
    p("tick", {"done": 2, "active": {"cos / seed 1": {"epoch": 3, "epochs": 10, "metric": 0.5}}})
    p("run", {"record": rec})
    p("run", {"record": bad})
    p("end", {})
    lines = plain.getvalue().splitlines()
    assert lines == [
        "lab: 4 runs (2 already in the database, skipped)",
        "  [3/4] cos / seed 1: metric 0.9100 (1.2 s)",
        "  [4/4] big / seed 0: diverged at step 7 (0.1 s)",
    ]
    named = io.StringIO()  # the task's metric by its name (it said "metric" whatever the task's was)
    p = SweepProgress(named, bars=False, metric_name="val accuracy")
    p("start", {"total": 1, "done": 0})
    p("run", {"record": rec})
    assert named.getvalue().splitlines()[-1] == "  [1/1] cos / seed 1: val accuracy 0.9100 (1.2 s)"
    term = io.StringIO()
    p = SweepProgress(term, bars=True, metric_name="acc")
    p("start", {"total": 4, "done": 0})
    p("tick", {"done": 1, "active": {"cos / seed 1": {"epoch": 3, "epochs": 10, "metric": 0.5}}})
    p("run", {"record": rec})
    p("end", {})
    out = term.getvalue()
    assert "sweep:" in out and "/4" in out  # tqdm's sweep bar: runs done of 4
    assert "3/10" in out and "acc 0.5000" in out  # the active run's epoch and metric


@pytest.mark.parametrize(
    ("optimizer", "params", "words"),
    [
        ("adamw", {"weight_decay": -1}, "weight_decay"),
        ("adamw", {"bogus": 1}, "bogus"),
        ("sgd", {"momentum": -0.5}, "momentum"),
        ("adam", {"betas": [0.9, 1.5]}, "betas"),
        ("rmsprop", {"eps": -1e-8}, "eps"),
    ],
)
def test_invalid_optimizer_params_are_named_before_the_lab_starts(
    optimizer: str, params: dict[str, Any], words: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """An experiment file's optimizer_params that the optimizer refuses used to fail inside the first
    run, after the lab had started and made its folder; now the strategy and the value are named first."""
    from lrkit.cli import main

    with pytest.raises(ValueError, match=rf"strategy 'x': optimizer_params .*{words}.* for '{optimizer}'"):
        Strategy("x", "constant(0.01)", optimizer, params)
    exp = tmp_path / "e.yaml"
    exp.write_text(
        "task: digits-mlp-adam\nepochs: 1\noutput: out\nstrategies:\n"
        "  - label: x\n    spec: 'constant(0.01)'\n"
        f"    optimizer: {optimizer}\n    optimizer_params: {json.dumps(params)}\n"
    )
    assert main(["lab", str(exp)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "strategy 'x'" in err and words in err, err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["e.yaml"]


@pytest.mark.parametrize("spec", ["warmup(10%)", "cosine(lr=0.1, steps=10) >> warmup(5)"])
def test_a_strategy_that_ends_in_a_bare_warmup_is_refused(spec: str) -> None:
    """The lab writes a schedule's values as LRs: alone, a warmup with no lr rises to LR 1.0."""
    with pytest.raises(ValueError, match=r"strategy 'w': .*ends in a warmup with no lr"):
        Strategy("w", spec)
    assert Strategy("w", "warmup(10%) >> cosine(lr=0.1)").label == "w"


def test_a_database_another_lab_is_creating_is_never_seen_half_made(tmp_path: Path) -> None:
    """Two labs started together on a new --db: the one that checked the path while the other was
    creating it found an empty file (or an SQLite file without lrkit's mark) and refused it as "not an
    lrkit database" (2 of 5 runs of the two-labs test on a loaded machine)."""
    import threading

    from lrkit.lab.store import ResultStore, check_db_path

    refused: list[str] = []
    for i in range(40):
        path = tmp_path / f"race{i}" / "lab.db"
        path.parent.mkdir()
        made = threading.Event()

        def check(path: Path = path, made: threading.Event = made) -> None:
            while not made.is_set():
                try:
                    check_db_path(path)
                except ValueError as exc:
                    refused.append(str(exc))
                    return

        checker = threading.Thread(target=check)
        checker.start()
        ResultStore(path).close()
        made.set()
        checker.join()
        assert sorted(p.name for p in path.parent.iterdir() if not p.name.startswith("lab.db-")) == ["lab.db"]
    assert not refused, refused[:3]
