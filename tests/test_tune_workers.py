"""``lrkit tune`` across workers and machines: every worker ends on the study's final best, a database
server that never answers is given up after a timeout, and a storage folder that cannot be created is
refused by name."""

from __future__ import annotations

import math
import os
import socket
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

optuna = pytest.importorskip("optuna")
torch = pytest.importorskip("torch")


@pytest.mark.filterwarnings("ignore:Heartbeat of storage is supposed to be used with Study.optimize")
def test_a_worker_at_the_budget_waits_for_the_last_running_trial_and_reports_the_final_best(
    tmp_path: Path, tiny_task: Path, one_torch_thread: None
) -> None:
    """Two workers may each start a trial when one is left: the first to finish used to return (and print
    its best) while the other's trial still ran, so workers could print different bests. Here another
    worker's trial is running when the study is full; it ends, better than every other, 0.5 s after this
    worker says it waits (it used to return at once, without it)."""
    from lrkit.tune import build_spec, open_storage, tune

    db = tmp_path / "b.db"
    first = tune("tiny_tune_task:tiny", trials=2, storage=db, epochs=1, finder=False)
    assert first.best_value is not None
    other = optuna.load_study(study_name=first.study_name, storage=open_storage(db))
    straggler = other.ask()
    spec = build_spec("cosine", 0.1, 0.0, 0.01)
    straggler.set_user_attr("worker", "another-host:1:0")
    straggler.set_user_attr("spec", spec)
    value = math.nextafter(first.best_value, math.inf)
    said: list[str] = []
    timers: list[threading.Timer] = []

    def progress(line: str) -> None:
        said.append(line)
        if line.startswith("waiting") and not timers:
            timers.append(threading.Timer(0.5, lambda: other.tell(straggler, value)))
            timers[0].start()

    res = _in_thread(
        lambda: tune("tiny_tune_task:tiny", trials=2, storage=db, epochs=1, finder=False, progress=progress),
        60,
    )
    for timer in timers:
        timer.join()
    assert not isinstance(res, BaseException), res
    assert "waiting for 1 running trial of other workers" in said
    assert res.best_trial == straggler.number and res.best_spec == spec and res.best_value == value
    assert res.finished == 3


@pytest.fixture
def silent_server() -> Iterator[int]:
    """A port where a server accepts connections and never answers (a wrong service, a stuck proxy)."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(8)
    server.settimeout(0.2)
    held: list[socket.socket] = []
    stop = threading.Event()

    def serve() -> None:
        while not stop.is_set():
            try:
                held.append(server.accept()[0])
            except (TimeoutError, OSError):
                continue

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield server.getsockname()[1]
    stop.set()
    thread.join()
    for conn in held:  # a client still waiting gets end-of-file and gives up
        conn.close()
    server.close()


def _in_thread(fn: Any, seconds: float) -> Any:
    """``fn()``'s exception (or result), or a failure if it has not returned within ``seconds``."""
    box: list[Any] = []

    def run() -> None:
        try:
            box.append(fn())
        except BaseException as exc:  # handed to the test
            box.append(exc)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(seconds)
    if thread.is_alive():
        pytest.fail(f"still waiting after {seconds} s")
    return box[0]


def test_a_database_server_that_never_answers_is_given_up_after_connect_timeout(
    silent_server: int, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """lrkit tune used to wait for ever on a server that accepted the connection and said nothing (and
    for minutes on a host that drops packets)."""
    pytest.importorskip("psycopg2")
    from lrkit.cli import main
    from lrkit.tune import open_storage, storage

    monkeypatch.setattr(storage, "CONNECT_TIMEOUT", 2, raising=False)
    url = f"postgresql://u:secret@127.0.0.1:{silent_server}/db"
    exc = _in_thread(lambda: open_storage(url), 15)
    assert isinstance(exc, ValueError), exc
    assert f"storage: cannot open 'postgresql+psycopg2://u:***@127.0.0.1:{silent_server}/db'" in str(exc)
    assert "timeout expired" in str(exc) and "secret" not in str(exc)
    argv = ["tune", "--task", "digits-mlp-sgd", "--trials", "1", "--no-report", "--storage", url]
    assert _in_thread(lambda: main(argv), 15) == 2
    err = capsys.readouterr().err
    assert "--storage: cannot open" in err and "timeout expired" in err and len(err.strip().splitlines()) == 1


@pytest.mark.skipif(not Path("/proc/self").is_dir(), reason="needs Linux's /proc, where no file can be made")
def test_a_storage_folder_where_no_file_can_be_made_is_refused_before_the_task_is_built(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Such a folder (read-only, or /proc here, which even root cannot write) used to be found out after
    the task was built: '[Errno 2] No such file or directory: '/proc/nodir'' (no flag) for a missing
    folder, 'storage: ... unable to open database file' for an existing one."""
    from lrkit.cli import main
    from lrkit.tune import open_storage

    for path, folder in [("/proc/lrkit-nothing/t.db", "/proc"), ("/proc/self/t.db", "/proc/self")]:
        with pytest.raises(
            ValueError, match=f"cannot make files in {folder!r} .*, so {path!r} cannot hold a study"
        ):
            open_storage(path)
        assert (
            main(["tune", "--task", "digits-mlp-sgd", "--trials", "1", "--no-report", "--storage", path]) == 2
        )
        err = capsys.readouterr().err
        assert err.startswith(f"lrkit tune: error: --storage: cannot make files in {folder!r}"), err
        assert len(err.strip().splitlines()) == 1


def test_workers_that_start_together_all_search_the_space_stored_last(
    tmp_path: Path, tiny_task: Path, one_torch_thread: None
) -> None:
    """Two workers that start together both find no space stored, both run the finder and store theirs;
    the second write stays. The first used to search its own space, unlike the study's record, for good.
    Here the other worker stores its space just after this one stored its own."""
    from lrkit.tune import META, SearchSpace, open_storage, tune

    db = tmp_path / "r.db"
    theirs = SearchSpace(lr_range=(0.5, 0.9))
    written: list[str] = []

    def other_worker_writes(line: str) -> None:
        if line.startswith("study ") and not written:  # this worker has stored its space and read it back
            other = optuna.load_study(study_name="race", storage=open_storage(db))
            other.set_user_attr(META, {**other.user_attrs[META], "space": theirs.to_dict()})
            written.append(line)

    res = tune(
        "tiny_tune_task:tiny",
        trials=2,
        storage=db,
        study_name="race",
        epochs=1,
        lr_range=(0.001, 0.01),
        pruner="none",
        progress=other_worker_writes,
    )
    assert written and "peak LR in [0.001, 0.01]" in written[0]  # it had stored its own
    assert res.space == theirs
    for t in res.study.get_trials():
        assert 0.5 <= t.params["lr"] <= 0.9, t.params


CHILD_INTERRUPTED = """
import os, sys
from lrkit.tune.core import _child

def ctrl_c(line):
    raise KeyboardInterrupt

_child({
    "task": "tiny_tune_task:tiny", "trials": 1, "storage": sys.argv[1], "study_name": "ctrl-c",
    "epochs": 1, "lr_range": (0.01, 0.1), "progress": ctrl_c, "verbosity": 30, "parent": os.getppid(),
})
"""


def test_a_worker_process_interrupted_by_ctrl_c_exits_130_without_a_traceback(
    tmp_path: Path, tiny_task: Path
) -> None:
    """Ctrl-C reaches every process of `lrkit tune --workers N`: each child used to print a
    KeyboardInterrupt traceback of some 120 lines above the tune's own one-line 'interrupted'."""
    import subprocess

    done = subprocess.run(
        [sys.executable, "-c", CHILD_INTERRUPTED, str(tmp_path / "c.db")],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
    )
    assert done.returncode == 130, done.stderr
    assert "Traceback" not in done.stderr and "KeyboardInterrupt" not in done.stderr, done.stderr


@pytest.mark.filterwarnings("ignore:Heartbeat of storage is supposed to be used with Study.optimize")
@pytest.mark.parametrize("began", [False, True], ids=["before-the-objective", "in-the-objective"])
def test_a_trial_whose_worker_died_before_its_first_heartbeat_is_failed_after_grace(
    tmp_path: Path, tiny_task: Path, one_torch_thread: None, began: bool
) -> None:
    """A worker killed between Optuna creating its trial and the first heartbeat leaves a RUNNING trial
    without one, which Optuna never marks stale: every worker then waited for it for ever. The heartbeat
    thread may not have written yet when the objective has set the trial's attributes and begun training
    (seen with --workers 2 on SQLite: the child, killed in its task's build, left such a trial, and its
    parent waited for it for ever); that trial, too, is failed."""
    from lrkit.tune import open_storage, tune

    db = tmp_path / "o.db"
    kwargs: dict[str, Any] = {"storage": db, "epochs": 1, "lr_range": (0.01, 0.1), "pruner": "none"}
    first = tune("tiny_tune_task:tiny", trials=1, **kwargs)
    dead = optuna.load_study(study_name=first.study_name, storage=open_storage(db)).ask()  # then SIGKILL
    if began:  # as the objective does first thing
        dead.set_user_attr("worker", "another-host:4242:ab")
        dead.set_user_attr("worker_index", 1)
    said: list[str] = []
    res = _in_thread(
        lambda: tune("tiny_tune_task:tiny", trials=2, heartbeat=1, grace=2, progress=said.append, **kwargs),
        60,
    )
    assert not isinstance(res, BaseException), res
    states = {t.number: t.state.name for t in res.study.get_trials()}
    assert states[dead.number] == "FAIL" and res.finished == 2, states
    assert f"trial {dead.number} failed: its worker died before its first heartbeat (none for 2 s)" in said


def test_a_trial_is_never_pruned_after_its_last_epoch(
    tmp_path: Path, tiny_task: Path, one_torch_thread: None
) -> None:
    """The last epoch's metric is the trial's value: a trial judged then has run in full, so pruning it
    saves nothing and records a finished run as PRUNED (TPE ranks those below every complete trial).
    With 1 epoch per trial, every prune was of this kind."""
    from lrkit.tune import tune

    res = tune(
        "tiny_tune_task:tiny",
        trials=8,
        storage=tmp_path / "p.db",
        epochs=1,
        lr_range=(0.001, 1.0),
        pruner="median",
    )
    states = [t.state.name for t in res.study.get_trials()]
    assert states == ["COMPLETE"] * 8, states


OOM_TASK = """
import multiprocessing
import os
import signal
import time
from pathlib import Path

from tiny_tune_task import tiny

BUILDS = []
# files next to this module (the test's folder), seen alike by the test and worker 1
HERE = Path(__file__).parent
WAIT_SECONDS = 600  # worker 1 starts in seconds; minutes only on a machine far overloaded


def dies_in_child(seed):
    BUILDS.append(seed)
    if multiprocessing.current_process().name == "lrkit-tune-1":
        (HERE / "child-built").touch()  # its tune has started (before the study is opened)
        if len(BUILDS) == 2:  # its first trial's build: killed there, as by the OOM killer
            (HERE / "child-started").touch()
            os.kill(os.getpid(), signal.SIGKILL)
    elif len(BUILDS) > 1:
        # the parent's trials wait until the child is in its trial: one that finished the study first
        # (the child took long to start) would leave the child nothing to run, and nothing to test
        deadline = time.monotonic() + WAIT_SECONDS
        while not (HERE / "child-started").exists():
            if time.monotonic() > deadline:
                where = "built the task" if (HERE / "child-built").exists() else "not built the task yet"
                raise RuntimeError(f"worker 1 did not start a trial in {WAIT_SECONDS} s (it had {where})")
            time.sleep(0.05)
    return tiny(seed)
"""


def test_a_worker_process_killed_mid_trial_leaves_the_study_finished_and_the_best_reported(
    tmp_path: Path, tiny_task: Path, one_torch_thread: None
) -> None:
    """A child of --workers 2 killed (say by the OOM killer): the others finished the study and retried
    its trial, then the tune ended in RuntimeError('1 of 1 tune worker processes failed') and printed no
    best at all."""
    from lrkit.tune import tune

    (tiny_task / "oom_task.py").write_text(OOM_TASK)
    said: list[str] = []
    try:
        res = tune(
            "oom_task:dies_in_child",
            trials=3,
            storage=tmp_path / "k.db",
            epochs=1,
            lr_range=(0.01, 0.1),
            pruner="none",
            workers=2,
            heartbeat=1,
            grace=2,
            progress=said.append,
        )
    finally:
        sys.modules.pop("oom_task", None)
    assert (tiny_task / "child-started").exists()  # worker 1 was killed in its trial
    states = [t.state.name for t in res.study.get_trials()]
    assert states.count("COMPLETE") == 3 and states.count("FAIL") == 1, states
    assert res.best_spec is not None and res.finished == 3 and res.failed == 1
    assert "worker 1 ended early (killed by signal 9); the others finished the study without it" in said


@pytest.mark.filterwarnings("ignore:Heartbeat of storage is supposed to be used with Study.optimize")
def test_two_machines_given_the_same_worker_id_are_told_so(
    tmp_path: Path, tiny_task: Path, one_torch_thread: None
) -> None:
    """Two machines both left at --worker-id 0 seed their samplers alike and draw the same points; nothing
    said so. Here another host's process is running a trial as worker 0 when this worker 0 starts."""
    import subprocess

    from lrkit.tune import open_storage, tune
    from lrkit.tune.core import PID_SPACE, _pid_space

    db = tmp_path / "t.db"
    kwargs: dict[str, Any] = {"storage": db, "epochs": 1, "lr_range": (0.01, 0.1), "pruner": "none"}
    first = tune("tiny_tune_task:tiny", trials=1, **kwargs)
    other = optuna.load_study(study_name=first.study_name, storage=open_storage(db))
    gone = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True
    )
    dead = other.ask()  # a trial of a process of this host that died: a restart is no twin
    dead.set_user_attr("worker", f"{socket.gethostname()}:{gone.stdout.strip()}:00")
    dead.set_user_attr(PID_SPACE, _pid_space())  # of this PID namespace and boot
    dead.set_user_attr("worker_index", 0)
    twin = other.ask()
    twin.set_user_attr("worker", "other-host:4242:ab")
    twin.set_user_attr("worker_index", 0)
    said: list[str] = []

    def progress(line: str) -> None:
        said.append(line)
        if line.startswith("another worker"):  # let the study finish (the dead one's trial is failed)
            other.tell(twin, 0.5)

    res = _in_thread(lambda: tune("tiny_tune_task:tiny", trials=3, progress=progress, **kwargs), 60)
    assert not isinstance(res, BaseException), res
    warned = [line for line in said if line.startswith("another worker")]
    assert warned == [
        "another worker (other-host:4242:ab) is worker 0 too: the two sample the same points; give each "
        "machine its own --worker-id / worker= (and the same --workers)"
    ]
    # the dead process's trial is failed at once, not waited for (and run again)
    assert (
        f"trial {dead.number} failed: it was a killed run's trial (process {gone.stdout.strip()} on this "
        "machine has ended)" in said
    )
