"""``tune``: search the learning-rate schedule of a task with Optuna, on one machine or many.

Each trial draws a point of the :class:`~lrkit.tune.space.SearchSpace` (kind of schedule, peak LR, warmup
fraction, final fraction) with Optuna's TPE sampler (seeded), turns it into an lrkit spec (stored as the
trial's user attribute ``spec``), and trains the task from the same initial weights with
:func:`lrkit.lab.runner.run_strategy`. The validation metric of every epoch is reported to the pruner
(median or Hyperband), which stops poor trials early (never after the last epoch: that run is over,
and its value is the trial's); the direction is the task's metric's. A diverged
run scores the worst value there is, -inf for a metric where higher is better and +inf for one where lower
is (0 was not the worst of a metric that can be negative, such as -MSE), so it is never the best while a
trial finished; when every completed trial diverged there is no best spec.

Every worker (a process here, or on another machine, on the same storage and study) runs trials until
the study holds ``trials`` finished (COMPLETE or PRUNED) trials; while the last ones run in other workers
it waits, and takes over a trial whose worker died (its heartbeat went silent: Optuna marks it FAIL and
queues a retry). Workers that start a trial at the same instant may overshoot the budget by at most one
trial each; a worker that reaches the budget waits for the trials still running then, so that every
worker reports the same best. The search space is stored with the study, so that every trial of every
worker samples the same one: one worker computes it (runs the LR finder), claimed atomically in the
database, and the others wait for it while that worker lives (on another machine: while it renews its
claim, every 20 s), then search it; a worker that starts after it is stored runs no finder.

A worker that hangs while its process lives (its heartbeat and claim still renewed by their threads) is
indistinguishable from a slow one and is waited for: by the others at the end of the study for its
trial, and while it computes the search space. The time budget bounds both waits; without one, end the
hung worker (its trial is failed after ``grace`` seconds and run again, its finder taken over at once on
its machine, after :data:`CLAIM_TTL` seconds from another).

A time budget (``timeout``) bounds each worker's search as Optuna's ``study.optimize(timeout=)`` does:
once it has passed, the worker starts no new trial and waits for no other worker's trial; a trial
running at that moment finishes (a decaying schedule cut short scores nothing meaningful), so a worker
overruns it by at most one trial. Every finished trial stays in the study, and a later run continues it.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import math
import multiprocessing
import os
import re
import socket
import sys
import threading
import time
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, ParamSpec, TypeVar

from .._checks import as_real, check_int
from .._text import plural, say_line
from .._usercode import UserCodeError, user_code
from .space import DEFAULT_LR_RANGE, KINDS, SearchSpace, build_spec, check_kinds
from .storage import mask_url, open_storage, storage_url

__all__ = [
    "MAX_STUDY_NAME",
    "META",
    "PRUNERS",
    "TuneResult",
    "check_study_name",
    "check_timeout",
    "parse_duration",
    "tune",
]

P = ParamSpec("P")
R = TypeVar("R")

#: the study user attribute that holds the task, the settings and the search space
META = "lrkit"
#: the prefix of each worker's claim (its settings, written before its finder runs): workers that start
#: together find each other's before any of them has stored META
CLAIM = "lrkit-worker:"
#: seconds a claim of a worker on another machine counts after it was last renewed, unless withdrawn: a
#: worker renews its claim every :data:`CLAIM_RENEW` seconds until the study's settings (META) are stored,
#: so one killed during its finder stops blocking the study within 5 minutes (the margin is for machines
#: whose clocks differ: the writer's time is compared with the reader's); a worker on this machine counts
#: while its process lives
CLAIM_TTL = 300.0
#: seconds between a worker's renewals of its claim (while its finder runs)
CLAIM_RENEW = 20.0
#: the study user attribute naming the worker (``host:pid:nonce``) that computes the search space (runs
#: the LR finder): one worker takes it, by an INSERT under the table's unique key, and the others wait
#: for META while that worker's claim is live, then search the space it stored
FINDER = "lrkit-finder"
PRUNERS = ("median", "hyperband", "none")

Say = Callable[[str], None]

#: the clock of the time budget: monotonic (no jump when the system clock is set), and on Linux, macOS
#: and Windows one clock for every process of the machine, so a worker process gets its parent's deadline
_clock = time.monotonic


@dataclass
class TuneResult:
    """The outcome of :func:`tune`: the best trial's spec and value, and the study's counts.

    ``best_spec`` is ready for ``lrkit show``, :func:`lrkit.parse` and :func:`lrkit.torch.scheduler`
    (None when no trial completed). ``best_params`` is the best trial's point (Optuna's parameters:
    ``kind``, ``lr``, ``warmup``, ``final``, WSD's ``decay``) and ``total_steps`` the length of every
    trial's run (epochs x batches per epoch): ``build_spec(**best_params, total_steps=total_steps)`` is
    ``best_spec``; without ``total_steps`` a warmup under one step is kept and one-cycle's rise and WSD's
    cool-down are not raised to 2 steps (see :func:`~lrkit.tune.space.build_spec`). ``finished`` counts
    COMPLETE and PRUNED trials, ``failed`` FAIL ones
    (a killed worker's trial, retried as a new trial; one interrupted by Ctrl-C; one whose worker died
    before starting it). Every trial trained from ``train_seed``, so
    ``best_value`` is measured on the seed the schedule was chosen on (optimistic); judge it on other
    seeds (``lrkit tune``'s report does). ``trials`` is the number asked for; ``timed_out`` says that the
    search stopped at its time budget ``timeout`` (seconds) before the study held them, the best being
    then the best so far. ``study`` is the Optuna study.
    """

    task: str
    study_name: str
    storage: str
    direction: str
    metric_name: str
    epochs: int
    optimizer: str | None
    space: SearchSpace
    best_spec: str | None
    best_value: float | None
    best_trial: int | None
    best_params: dict[str, Any]
    complete: int
    pruned: int
    failed: int
    train_seed: int = 0
    diverged: int = 0
    trials: int = 0
    total_steps: int | None = None
    timeout: float | None = None
    timed_out: bool = False
    study: Any = field(default=None, repr=False, compare=False)
    #: the hyper-parameters every trial's ``optimizer`` was built with (on the task's own when it is None)
    optimizer_params: dict[str, Any] = field(default_factory=dict)
    #: the completed trials whose run ended with a NaN or infinite metric (status ``"no metric"``): failed
    #: runs, scored the direction's worst as a diverged one is
    no_metric: int = 0
    #: torch's intra-op threads the best trial trained with (its user attribute ``env``, as a lab run's
    #: :func:`~lrkit.lab.runner.run_environment`), the distinct counts of the study's trials, and this
    #: process's at the end: a float sum over threads is split, and rounds, by their count, so a trial's
    #: value is that of its count
    best_threads: int | None = None
    threads: tuple[int, ...] = ()
    torch_threads: int | None = None

    @property
    def finished(self) -> int:
        return self.complete + self.pruned

    def no_best(self) -> str | None:
        """Why there is no best spec although trials completed: every one diverged or ended with a NaN or
        infinite metric (None otherwise)."""
        if self.best_spec is not None or not self.complete or self.diverged + self.no_metric < self.complete:
            return None
        if not self.no_metric:
            return f"every completed trial ({self.complete}) diverged"
        if not self.diverged:
            return (
                f"every completed trial ({self.complete}) ended with a NaN or infinite {self.metric_name} "
                "(a failed run; check the task's metric)"
            )
        return (
            f"every completed trial ({self.complete}) diverged ({self.diverged}) or ended with a NaN or "
            f"infinite {self.metric_name} ({self.no_metric}; check the task's metric)"
        )

    def threads_note(self) -> str:
        """`` with N torch threads (...)`` after the best value when the study's trials ran with other
        thread counts than the best's, or than this process's; else ''."""
        if self.best_threads is None or set(self.threads) | {self.torch_threads} <= {self.best_threads}:
            return ""
        counts = ", ".join(map(str, self.threads))
        now = "" if self.torch_threads is None else f"; this process has {self.torch_threads}"
        return (
            f" with {plural(self.best_threads, 'torch thread')} (the trials ran with {counts}{now}: "
            "the value depends on the count)"
        )

    def __str__(self) -> str:
        diverged = f", {self.diverged} of them diverged" if self.diverged else ""
        if self.no_metric:
            of_them = "" if self.diverged else " of them"
            diverged += f", {self.no_metric}{of_them} with a NaN/inf metric"
        head = (
            f"study {self.study_name!r} on {self.task} ({self.storage}): "
            f"{plural(self.finished, 'finished trial')} "
            f"({self.complete} complete{diverged}, {self.pruned} pruned, {self.failed} failed)"
        )
        if self.timed_out and self.timeout is not None:
            head += (
                f"; the search stopped at its time budget ({duration(self.timeout)}) with "
                f"{self.finished} of the {self.trials} trials asked for"
            )
        why = self.no_best()
        if why is not None:
            return f"{head}; {why}, so there is no best spec"
        if self.best_spec is None:
            return head + "; no trial completed"
        return (
            f"{head}\nbest: trial {self.best_trial}, {self.metric_name} {self.best_value:.4g}"
            f"{self.threads_note()}\n  {self.best_spec}"
        )


#: the longest study name a database takes (Optuna's column; SQLite does not enforce it, PostgreSQL does)
MAX_STUDY_NAME = 512


def check_study_name(name: Any, flag: str = "study_name") -> str:
    """``name`` if it can name a study: a non-empty string of at most :data:`MAX_STUDY_NAME` characters."""
    if not isinstance(name, str) or not name.strip():
        raise ValueError(f"{flag} must be a non-empty string, got {name!r}")
    if name != name.strip():  # ' lrkit-x' would be a study of its own beside 'lrkit-x'
        raise ValueError(f"{flag}: remove the spaces around it, got {name!r}")
    if len(name) > MAX_STUDY_NAME:
        raise ValueError(
            f"{flag} must be at most {MAX_STUDY_NAME} characters (a database's limit), got "
            f"{len(name)}: {name[:40]!r}..."
        )
    return name


def check_timeout(value: Any, flag: str = "timeout") -> float:
    """``value`` in seconds if it can bound a search: a positive, finite number (not a bool)."""
    seconds = as_real(value)
    seconds = math.nan if seconds is None else seconds
    if not 0 < seconds < math.inf:
        raise ValueError(
            f"{flag} must be a positive, finite number of seconds (e.g. 7200 for 2 hours), got {value!r}"
        )
    return seconds


#: the units ``--timeout`` takes after its number, in seconds
UNITS = {"s": 1.0, "m": 60.0, "h": 3600.0}


def parse_duration(text: str, flag: str = "--timeout") -> float:
    """``text`` in seconds: a number of seconds (``5400``, ``90.5``) or a number with one unit of
    :data:`UNITS` (``90m`` = ``1.5h`` = 5400); positive and finite."""
    expected = "a positive number of seconds (3600) or a number with a unit s, m or h (90m, 2h)"
    number, factor = text.strip().lower(), 1.0
    if number[-1:] in UNITS:
        number, factor = number[:-1], UNITS[number[-1]]
    try:
        seconds = float(number) * factor
    except ValueError:
        seconds = math.nan
    if not 0 < seconds < math.inf:
        raise ValueError(f"{flag}: expected {expected}, got {text!r}")
    return seconds


def duration(seconds: float) -> str:
    """``seconds`` for a person: ``45 s``, ``0.5 s``, ``1 min 40 s``, ``2 h``, ``1 h 30 min``."""
    if seconds < 60:
        return f"{seconds:g} s"
    h, rest = divmod(round(seconds), 3600)
    m, s = divmod(rest, 60)
    return " ".join(part for part in (f"{h} h" * bool(h), f"{m} min" * bool(m), f"{s} s" * bool(s)) if part)


def _check_int(name: str, value: Any, low: int) -> int:
    return check_int(value, name, low)


def warmup_epochs(space: SearchSpace, epochs: int, epoch_steps: int) -> int:
    """The epochs after which every schedule of ``space`` has reached its peak LR, on a run of ``epochs``
    x ``epoch_steps`` steps: ``ceil(longest warmup fraction x epochs)`` (at least 1). The pruner judges
    no trial before that epoch's metric: a curve still warming up is low because its LR is, and it would be
    pruned for its warmup, the best trials among them (warmups of 27-29% pruned after epoch 1 or 2 of 10)."""
    fraction = space.longest_warmup(epochs * epoch_steps)
    return max(1, math.ceil(round(fraction * epochs, 9)))  # 0.3 x 10 is 3.0000000000000004


def _pruner(name: str, epochs: int, trials: int, warmup: int = 1) -> Any:
    """Optuna's pruner ``name`` for trials of ``epochs`` epochs (each reported as a step), judging none
    before epoch ``warmup`` (:func:`warmup_epochs`)."""
    import optuna

    if name == "median":
        # n_min_trials: judge an epoch against at least that many completed trials that reported it; Optuna's
        # n_startup_trials counts every completed trial, and one that diverged before its first epoch
        # reports none, so a trial was pruned against a single curve
        startup = max(2, min(5, trials // 4))
        return optuna.pruners.MedianPruner(
            n_startup_trials=startup, n_warmup_steps=warmup, n_min_trials=startup
        )
    if name == "hyperband":  # its first rung is at min_resource epochs
        top = max(epochs, 1)
        return optuna.pruners.HyperbandPruner(min_resource=min(max(warmup, 1), top), max_resource=top)
    return optuna.pruners.NopPruner()


def _counts(study: Any) -> dict[str, int]:
    from optuna.trial import TrialState

    out = {s.name: 0 for s in TrialState}
    for t in study.get_trials(deepcopy=False):
        out[t.state.name] += 1
    return out


def _fail_stale(study: Any) -> None:
    import optuna

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        optuna.storages.fail_stale_trials(study)


#: what a study started by an lrkit that did not store a setting ran with: no optimizer hyper-parameters
_BEFORE_STORED: dict[str, Any] = {"optimizer_params": {}}


def _conflict(mine: Mapping[str, Any], other: Mapping[str, Any]) -> str | None:
    """The first setting two workers' claims give differently (``kinds``/``lr_range``: where both give
    one), as ``key=other's, not mine``; None when they agree."""
    for key, value in mine.items():
        theirs = other.get(key)
        if key in ("kinds", "lr_range") and (value is None or theirs is None):
            continue
        same = (
            all(math.isclose(a, b, rel_tol=1e-9) for a, b in zip(value, theirs or (), strict=True))
            if key == "lr_range"
            else theirs == value
        )
        if key in other and not same:
            return f"{key}={theirs!r}, not {value!r}"
    return None


def _claim(study: Any, owner: str, mine: dict[str, Any], where: str) -> None:
    """Write this worker's settings as its claim, then refuse (withdrawing it) if another worker's claim
    differs. Each worker writes before it reads, so of two that start together with different settings
    at least one sees the other's claim, however their steps interleave; META, written after the finder,
    is too late for that."""
    now = time.time()
    study.set_user_attr(CLAIM + owner, {**mine, "at": now})
    attrs = study.user_attrs
    if META in attrs:  # a worker stored the study's settings: they are checked instead, stale claims aside
        return
    for key, other in attrs.items():
        if not key.startswith(CLAIM) or key == CLAIM + owner or not isinstance(other, dict):
            continue
        who = key[len(CLAIM) :]
        diff = _conflict(mine, other)
        if diff is not None and _claim_live(who, other, now):
            study.set_user_attr(CLAIM + owner, None)  # withdrawn: a corrected rerun is not refused by it
            raise ValueError(
                f"{where}: another worker ({who}) joined it with {diff} (this worker's); give every worker "
                f"the same settings or another study name (the claim of a worker that has gone counts "
                f"until its process has ended on this machine, or {CLAIM_TTL:.0f} s on another)"
            )


def _check_same_optimizer(
    meta: Mapping[str, Any], settings: Mapping[str, Any], task: tuple[str, dict[str, Any]], where: str
) -> None:
    """Refuse continuing a study whose stored optimizer trains otherwise than ``settings``' (both resolved
    as a run builds them, ``optimizer`` None as the task's own ``task``, and compared by class and every
    hyper-parameter, defaults filled: :func:`~lrkit.lab.runner.optimizer_settings`, the lab's duplicate
    check), so that ``adamw`` and ``adamw(weight_decay=0.01)`` are one study."""
    from ..lab.runner import optimizer_settings
    from ..tasks.optimizers import format_optimizer

    def trains(name: str | None, params: Mapping[str, Any]) -> tuple[str, dict[str, Any], str]:
        if name is None:  # the task's own, with the given hyper-parameters on top of its own
            name, params = task[0], {**task[1], **params}
            return name, dict(params), f"the task's own optimizer ({format_optimizer(name, params)})"
        return name, dict(params), repr(format_optimizer(name, params))

    stored = meta.get("optimizer"), meta.get("optimizer_params", _BEFORE_STORED["optimizer_params"]) or {}
    was, now = trains(*stored), trains(settings["optimizer"], settings["optimizer_params"])
    if optimizer_settings(was[0], was[1]) != optimizer_settings(now[0], now[1]):
        raise ValueError(
            f"{where} was started with {was[2]}, not {now[2]}; give the same optimizer or another study name"
        )


@contextlib.contextmanager
def _renewed(study: Any, owner: str, claim: dict[str, Any], every: float | None = None) -> Any:
    """Renew ``owner``'s claim (its ``"at"``) every ``every`` seconds in a daemon thread while the block
    runs (the finder, before META is stored): a live worker's claim never goes stale, however long its
    finder takes, and a killed one's does within :data:`CLAIM_TTL`. A renewal that fails (the database
    busy or gone for a moment) is skipped; the next one tries again."""
    done, wait = threading.Event(), CLAIM_RENEW if every is None else every

    def renew() -> None:
        while not done.wait(wait):
            with contextlib.suppress(Exception):
                study.set_user_attr(CLAIM + owner, {**claim, "at": time.time()})

    thread = threading.Thread(target=renew, name="lrkit-tune-claim", daemon=True)
    thread.start()
    try:
        yield
    finally:
        done.set()
        thread.join()


def _claim_live(owner: str, claim: Mapping[str, Any], now: float) -> bool:
    """Whether the worker ``owner`` (``host:pid:nonce``) that wrote ``claim`` may still be running: on this
    machine while its process lives; on another, for :data:`CLAIM_TTL` seconds after it last renewed it."""
    from ..lab.store import _pid_alive

    host, _, rest = owner.partition(":")
    pid = rest.partition(":")[0]
    if host == socket.gethostname() and pid.isdigit():
        return _pid_alive(int(pid))
    at = claim.get("at")
    return not isinstance(at, (int, float)) or now - float(at) < CLAIM_TTL


#: the workers of this process whose search space is being computed, with the thread computing it: a tune()
#: called from inside that computation (the same thread) cannot wait for it to end
_FINDING: dict[str, int] = {}


def _take_finder(study: Any, rdb: Any, owner: str) -> str | None:
    """Make ``owner`` the one worker that computes the study's search space: None when it is (it inserted
    :data:`FINDER`, or took it over from a worker whose claim is no longer live: a compare-and-swap on
    the value it read), else the token of the live worker that does. Atomic on SQLite and on a server:
    of workers that start together, exactly one runs the finder."""
    import json

    import sqlalchemy
    import sqlalchemy.exc

    attrs = sqlalchemy.table(
        "study_user_attributes",
        sqlalchemy.column("study_id"),
        sqlalchemy.column("key"),
        sqlalchemy.column("value_json"),
    )
    sid = rdb.get_study_id_from_name(study.study_name)
    where = (attrs.c.study_id == sid) & (attrs.c.key == FINDER)
    mine = json.dumps(owner)
    try:
        with rdb.engine.begin() as con:
            con.execute(sqlalchemy.insert(attrs).values(study_id=sid, key=FINDER, value_json=mine))
        return None
    except sqlalchemy.exc.IntegrityError:
        pass  # another worker inserted it first
    while True:
        with rdb.engine.begin() as con:
            seen = con.execute(sqlalchemy.select(attrs.c.value_json).where(where)).scalar()
        holder = json.loads(seen) if seen else None
        if holder == owner:
            return None
        if isinstance(holder, str) and _FINDING.get(holder) != threading.get_ident():
            claim = study.user_attrs.get(CLAIM + holder)
            if isinstance(claim, dict) and _claim_live(holder, claim, time.time()):
                return holder
        with rdb.engine.begin() as con:  # its worker has gone (or waits for this call): take it over
            swap = sqlalchemy.update(attrs).where(where & (attrs.c.value_json == seen))
            if con.execute(swap.values(value_json=mine)).rowcount == 1:
                return None


def _stored_space(study: Any) -> SearchSpace:
    """The search space stored with the study (by the one worker that computed it), read for every trial."""
    return SearchSpace.from_dict(study.user_attrs[META]["space"])


def _fail_orphans(study: Any, rdb: Any, grace: int, say: Say) -> None:
    """Fail the RUNNING trials that no worker is running and Optuna's heartbeat check cannot see: a worker
    killed after Optuna created its trial but before its heartbeat thread first wrote (a few ms; longer
    while another worker holds an SQLite lock, when the objective may have set its attributes and begun
    training meanwhile) leaves a trial with no heartbeat, which Optuna never marks stale, and every
    worker would wait for it for ever. Such a trial is failed once it is ``grace`` seconds old."""
    from datetime import datetime

    import optuna
    from optuna.trial import TrialState

    running = study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))
    _fail_killed(study, running, say)
    now = datetime.now()  # Optuna stamps datetime_start with the creating machine's local time
    old = [
        tr.number
        for tr in running
        if tr.datetime_start is not None and (now - tr.datetime_start).total_seconds() > grace
    ]
    if not old:
        return
    for number in sorted(set(old) - _beating(rdb, study.study_name)):
        try:
            study.tell(number, state=TrialState.FAIL)
        except (ValueError, RuntimeError, optuna.exceptions.UpdateFinishedTrialError):
            continue  # it ended meanwhile, or another worker failed it first
        say(f"trial {number} failed: its worker died before its first heartbeat (none for {grace} s)")


#: a trial's user attribute: its worker's PID namespace and boot (:func:`_pid_space`)
PID_SPACE = "worker_pid_space"


def _pid_space() -> str | None:
    """``inode:boot_id`` of this process's PID namespace (``/proc/self/ns/pid``) and of this boot: where a
    pid names this process. None where Linux's ``/proc`` does not say (macOS, Windows, a masked /proc).
    Two containers on one host with one hostname (docker ``--network=host``) have the same hostname and
    different PID namespaces: each one's pid means nothing to the other."""
    try:
        inode = os.stat("/proc/self/ns/pid").st_ino
        with open("/proc/sys/kernel/random/boot_id", encoding="ascii") as f:
            boot = f.read().strip()
    except (OSError, ValueError):
        return None
    return f"{inode}:{boot}" if inode and boot else None


def _fail_killed(study: Any, running: Sequence[Any], say: Say) -> None:
    """Fail at once, and queue the retry of, each RUNNING trial whose worker (its user attribute ``worker``,
    ``host:pid:nonce``) ran on this machine, in this PID namespace and boot (its :data:`PID_SPACE`), in a
    process that has ended: a run killed (SIGKILL, a crash) leaves its trial RUNNING until its heartbeat
    is ``grace`` seconds old, and a rerun at once would wait that long for a worker that is gone. The retry
    is Optuna's, as for a stale heartbeat. A trial of another PID namespace (a container with this host's
    name), or one whose namespace is not known (an earlier lrkit's trial, no Linux ``/proc``), is left to
    the heartbeat: its pid may be a live process this one cannot see."""
    import copy

    import optuna
    from optuna.storages._heartbeat import BaseHeartbeat
    from optuna.trial import TrialState

    storage = study._storage
    here = _pid_space()
    for tr in running:
        worker = tr.user_attrs.get("worker")
        if here is None or tr.user_attrs.get(PID_SPACE) != here or not isinstance(worker, str):
            continue  # another PID namespace's (or an unknown one's) pid: its heartbeat says
        if _claim_live(worker, {}, time.time()):  # another machine's counts as live: its heartbeat says
            continue
        try:
            if not storage.set_trial_state_values(tr._trial_id, state=TrialState.FAIL):
                continue
        except (ValueError, RuntimeError, optuna.exceptions.UpdateFinishedTrialError):
            continue  # it ended meanwhile, or another worker failed it first
        pid = worker.split(":")[1]
        say(
            f"trial {tr.number} failed: it was a killed run's trial (process {pid} on this machine has ended)"
        )
        retry = storage.get_heartbeat_stale_trial_callback() if isinstance(storage, BaseHeartbeat) else None
        if retry is not None:
            retry(study, copy.deepcopy(storage.get_trial(tr._trial_id)))


def _beating(rdb: Any, study_name: str) -> set[int]:
    """The numbers of the RUNNING trials of ``study_name`` that have a heartbeat in ``rdb`` (an Optuna
    ``RDBStorage``; its tables ``trial_heartbeats``, ``trials`` and ``studies``)."""
    import sqlalchemy

    query = sqlalchemy.text(
        "SELECT t.number FROM trial_heartbeats h JOIN trials t ON t.trial_id = h.trial_id "
        "JOIN studies s ON s.study_id = t.study_id WHERE s.study_name = :name AND t.state = 'RUNNING'"
    )
    with rdb.engine.connect() as con:
        return {int(row[0]) for row in con.execute(query, {"name": study_name})}


def _twin(trials: Sequence[Any], index: int, owner: str) -> str | None:
    """The ``host:pid:nonce`` of another live process that runs a trial as worker ``index`` (its sampler
    seeded as this one's), or None. On this host its pid must be alive (a restarted worker is no twin of
    its dead self)."""
    import socket

    for tr in trials:
        other = tr.user_attrs.get("worker")
        if tr.state.name != "RUNNING" or tr.user_attrs.get("worker_index") != index or other in (None, owner):
            continue
        host, _, rest = str(other).partition(":")
        pid = rest.partition(":")[0]
        if host == socket.gethostname() and pid.isdigit():
            try:
                os.kill(int(pid), 0)
            except ProcessLookupError:
                continue
            except PermissionError:  # alive, another user's
                pass
        return str(other)
    return None


def _best(study: Any) -> Any:
    try:
        return study.best_trial
    except ValueError:  # no COMPLETE trial yet
        return None


def _silent(_: str) -> None:
    pass


@dataclass(frozen=True)
class _Prefixed:
    """A line with a prefix, written whole (:func:`say_line`; picklable, for worker processes)."""

    prefix: str

    def __call__(self, text: str) -> None:
        say_line(self.prefix + text)


class _SaidByLrkit(logging.Filter):
    """Drops Optuna's two warnings on a trial that failed because the user's code raised or Ctrl-C was
    pressed ("Trial N failed with parameters ... because of ...", with the whole traceback, then "Trial N
    failed with value None."): lrkit reports both itself, the first with the traceback of the user's
    code only, so Optuna's 20 to 50 lines came before the one that says what happened."""

    def __init__(self) -> None:
        super().__init__()
        self._failed: set[str] = set()

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        message = record.getMessage()
        number = re.match(r"Trial (\d+) failed with ", message)
        if number is None:
            return True
        if isinstance(exc, (UserCodeError, KeyboardInterrupt)):
            self._failed.add(number.group(1))
            return False
        return not (number.group(1) in self._failed and message.endswith("with value None."))


def _optuna_quiet(f: Callable[P, R]) -> Callable[P, R]:
    """``f`` with Optuna's log level lowered to WARNING while it runs (a level the user set higher, such as
    ERROR, is kept) and given back afterwards, also when ``f`` raises: Optuna's INFO line per trial and
    per study are not printed, from Python as from ``lrkit tune``; ``progress`` says lrkit's own."""

    @functools.wraps(f)
    def quiet(*args: P.args, **kwargs: P.kwargs) -> R:
        import optuna

        level = optuna.logging.get_verbosity()
        optuna.logging.set_verbosity(max(level, optuna.logging.WARNING))
        try:
            return f(*args, **kwargs)
        finally:
            optuna.logging.set_verbosity(level)

    return quiet


@_optuna_quiet
def tune(
    task: Any,
    *,
    trials: int,
    timeout: float | None = None,
    storage: Any = None,
    study_name: str | None = None,
    seed: int = 0,
    epochs: int | None = None,
    optimizer: str | None = None,
    optimizer_params: Mapping[str, Any] | None = None,
    kinds: Sequence[str] | str | None = None,
    finder: bool = True,
    lr_range: tuple[float, float] | None = None,
    pruner: str = "none",
    workers: int = 1,
    worker: int = 0,
    heartbeat: int = 10,
    grace: int | None = 60,
    max_retry: int | None = 3,
    train_seed: int = 0,
    diverge_factor: float = 10.0,
    finder_repeats: int = 3,
    progress: Say | None = None,
    _deadline: float | None = None,
) -> TuneResult:
    """Tune the LR schedule of ``task`` (a name, ``"module:function"`` or a :class:`lrkit.tasks.Task`).

    Runs trials until the study (``study_name``, default ``lrkit-TASK``, in ``storage``: a path, default
    ``lrkit-tune.db``, or a ``sqlite:///``/``postgresql://`` URL) holds ``trials`` finished trials, counted
    across every worker sharing it; rerunning a finished study trains nothing. ``timeout`` (seconds) is a
    time budget: once that long has passed since the call, this worker starts no new trial (the one
    running finishes) and returns the best so far, ``timed_out`` set when the study holds fewer than
    ``trials``; the study keeps every finished trial, and a later call continues it. ``workers`` > 1
    starts that many processes here, each with the same deadline (the task must then be given by name);
    ``worker`` numbers this one among workers started by hand with the same ``workers``: its processes
    are workers ``worker * workers`` to ``worker * workers + workers - 1``, worker ``j``'s sampler seeded
    ``(seed + 7919 * j) mod 2**32`` (numpy's seeds are below 2**32), so that no two processes draw the
    same points.

    The peak LR is searched log-uniformly in ``lr_range``, else around the LR finder's suggestion
    (``finder=True``, on ``seed``; see :class:`~lrkit.tune.space.SearchSpace`), else in
    :data:`~lrkit.tune.space.DEFAULT_LR_RANGE`. ``kinds`` limits the schedules (default all of
    :data:`~lrkit.tune.space.KINDS`). Each trial trains from the initial weights of ``train_seed`` for
    ``epochs`` (default: the task's) with ``optimizer`` (default: the task's) and ``optimizer_params``
    (``{"weight_decay": 0.1}``: in place of the task's own hyper-parameters when ``optimizer`` is given, on
    top of them otherwise, as a lab strategy's; a study keeps them with its settings, so that a study
    continued with others is refused). ``pruner`` (default
    ``"none"``; ``"median"``, ``"hyperband"``) stops trials early on their per-epoch metric: off by
    default, because a decaying schedule gains most at its end, so its curve crosses the others' late and
    an early ranking prunes the best. Neither pruner judges a trial before the longest warmup the space
    can sample has ended (:func:`warmup_epochs`: epoch 3 of 10 for warmups up to 30%), but a WSD or a
    cosine still gains most late: on digits-mlp-sgd the median rule, so held back, still prunes most
    trials, the best among them (see the guide). ``heartbeat``, ``grace``
    and ``max_retry`` are the storage's (see :func:`~lrkit.tune.storage.open_storage`). ``progress``
    receives one line per event (e.g. ``print``): a finished trial's number, state, value, spec and the
    best so far. Optuna's own INFO lines ("Trial 3 finished with value ...") are not printed: its log
    level is WARNING during the call (or the quieter one you set) and yours again afterwards.
    """
    import optuna

    from ..lab.runner import ENV, Strategy, main_unimportable, run_environment, run_strategy
    from ..lab.store import owner_token
    from ..tasks import get_task
    from ..tasks.optimizers import check_optimizer, check_params

    started = _clock()
    say = progress or _silent
    trials = _check_int("trials", trials, 1)
    if timeout is not None:
        timeout = check_timeout(timeout)
    # the processes of workers=N share the deadline of the call that started them
    deadline = _deadline if _deadline is not None else None if timeout is None else started + timeout
    seed = _check_int("seed", seed, 0)
    workers = _check_int("workers", workers, 1)
    worker = _check_int("worker", worker, 0)
    train_seed = _check_int("train_seed", train_seed, 0)
    finder_repeats = _check_int("finder_repeats", finder_repeats, 1)
    if pruner not in PRUNERS:
        raise ValueError(f"pruner must be one of {', '.join(PRUNERS)}, got {pruner!r}")
    factor = as_real(diverge_factor)
    if factor is None or not factor > 1:
        raise ValueError(f"diverge_factor must be a number > 1, got {diverge_factor!r}")
    diverge_factor = factor
    if optimizer is not None:  # built and stepped once on a stand-in, as a lab strategy's optimizer is
        params = check_optimizer(optimizer, optimizer_params)
    else:
        params = check_params(optimizer_params)
    want_kinds = None if kinds is None else check_kinds(kinds)
    if lr_range is not None:
        lr_range = SearchSpace(lr_range=lr_range).lr_range
    if study_name is not None:
        check_study_name(study_name)

    t = get_task(task)
    if workers > 1 and not (":" in t.name or t.name in _builtin()):
        raise ValueError(f"workers > 1 needs the task by name (built-in or module:function), got {t.name!r}")
    # a worker process is spawned: it imports __main__ from its file, which python -c or stdin has not
    main_why = main_unimportable(t.name) if workers > 1 else None
    if main_why is not None:
        warnings.warn(
            f"workers={workers}: tunes in this process alone, as {main_why}. Put "
            f"{t.name.partition(':')[2]!r} in a module file (task 'module:function') or run your script "
            "from a file to tune in processes",
            UserWarning,
            stacklevel=2,
        )
    parts = t.build(train_seed)  # a broken factory fails before any storage is touched
    if optimizer is None:  # the task's own optimizer may set its own step size, as --optimizer may not
        from ..cli import refuse_lr_free

        refuse_lr_free(parts.optimizer, "tune", f"the optimizer of task {t.name!r}:", "give optimizer= one")
    n_epochs = parts.epochs if epochs is None else _check_int("epochs", epochs, 1)
    total_steps = n_epochs * parts.epoch_steps
    if total_steps < 3:  # one-cycle's and WSD's phases need steps of their own
        raise ValueError(
            f"epochs: a run of {n_epochs} x {parts.epoch_steps} = {total_steps} steps is too short to "
            "tune; give at least 3 steps (more epochs)"
        )
    metric_name = str(parts.metric_name)
    higher = bool(parts.higher_is_better)
    worst = -math.inf if higher else math.inf  # a diverged run: never the best while one finished
    task_optimizer = (str(parts.optimizer), dict(parts.optimizer_params or {}))
    del parts
    direction: Literal["maximize", "minimize"] = "maximize" if higher else "minimize"
    name = study_name or check_study_name(f"lrkit-{t.name}", "the default study name lrkit-TASK")
    url = storage_url(storage)
    shown = mask_url(url)
    if workers > 1 and (url.endswith(":memory:") or url.endswith("sqlite:///")):
        raise ValueError("workers > 1 needs a storage that processes share (a file or a server), not memory")

    rdb = open_storage(url, heartbeat=heartbeat, grace=grace, max_retry=max_retry)
    index = _worker_index(worker, workers, 0)
    study = optuna.create_study(
        storage=rdb,
        study_name=name,
        direction=direction,
        sampler=optuna.samplers.RandomSampler(seed=0),  # replaced below, once the trials held are known
        pruner=optuna.pruners.NopPruner(),  # replaced below, once the search space is known
        load_if_exists=True,
    )
    # a study continued (more --trials, a rerun after --timeout or Ctrl-C) must not draw its points again
    held = len(study.get_trials(deepcopy=False))
    with warnings.catch_warnings():  # constant_liar is "experimental" in some Optuna 4.x: not the user's news
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        study.sampler = optuna.samplers.TPESampler(
            seed=sampler_seed(seed, index, held),
            n_startup_trials=max(2, min(10, trials // 3)),
            constant_liar=True,
        )
    if study.direction.name.lower() != direction:
        raise ValueError(
            f"study {name!r} in {shown} is set to {study.direction.name.lower()}, but {t.name}'s "
            f"{metric_name} wants {direction}; use another study name"
        )
    settings = {
        "task": t.name,
        "epochs": n_epochs,
        "optimizer": optimizer,
        # as JSON stores them (tuples as lists), so that a study's stored settings compare equal
        "optimizer_params": {k: list(v) if isinstance(v, tuple) else v for k, v in sorted(params.items())},
        "metric": metric_name,
        "train_seed": train_seed,
        # the sampler's and the finder's: a rerun with another seed is another search, not this study
        "seed": seed,
        "diverge_factor": float(diverge_factor),
        # the task's batches per epoch: another batch size or data set is another problem (and LR)
        "steps_per_epoch": total_steps // n_epochs,
    }
    owner = owner_token()
    pid_space = _pid_space()
    claim = {
        **settings,
        "kinds": None if want_kinds is None else sorted(want_kinds),
        "lr_range": None if lr_range is None else [float(x) for x in lr_range],
    }
    _claim(study, owner, claim, f"study {name!r} in {shown}")
    try:
        meta = study.user_attrs.get(META)
        waiting_for = None
        while meta is None:  # one worker computes the search space (the finder); the others wait for it
            holder = _take_finder(study, rdb, owner)
            meta = study.user_attrs.get(META)  # stored meanwhile by the worker this one took over from
            if holder is None and meta is None:
                if waiting_for is not None:
                    say(f"worker {waiting_for} has gone: this worker computes the search space")
                _FINDING[owner] = threading.get_ident()
                try:
                    if lr_range is not None:
                        space = SearchSpace(lr_range=lr_range, kinds=want_kinds or SearchSpace().kinds)
                    elif finder:
                        with _renewed(study, owner, claim):  # the finder can take minutes on a large model
                            space = _finder_space(t, seed, optimizer, params, finder_repeats, want_kinds, say)
                    else:
                        space = SearchSpace(kinds=want_kinds or SearchSpace().kinds)
                finally:
                    del _FINDING[owner]
                study.set_user_attr(META, {**settings, "space": space.to_dict()})
                meta = study.user_attrs[META]
            elif meta is None:
                if holder != waiting_for:
                    say(
                        f"waiting for worker {holder}, which computes the study's search space (LR finder); "
                        "every worker searches the space it stores"
                    )
                    waiting_for = holder
                if deadline is not None and _clock() >= deadline:  # a bound: a worker that hangs in its
                    assert timeout is not None  # finder (its claim renewed) is waited for until then
                    say(
                        f"time budget of {duration(timeout)} reached while waiting for worker {holder}'s "
                        "search space: no trial starts"
                    )
                    space = SearchSpace(lr_range=lr_range or DEFAULT_LR_RANGE, kinds=want_kinds or KINDS)
                    res = _result(
                        study, t.name, name, shown, direction, metric_name, n_epochs, optimizer, space,
                        train_seed,
                    )  # fmt: skip
                    res.trials, res.timeout, res.timed_out = trials, timeout, True
                    res.optimizer_params = params
                    res.total_steps = total_steps
                    return res
                nap = min(1.0, heartbeat / 2)
                time.sleep(nap if deadline is None else max(0.0, min(nap, deadline - _clock())))
                meta = study.user_attrs.get(META)
        for key, value in settings.items():
            if key in ("optimizer", "optimizer_params"):
                continue  # compared by what trains, above
            # a key an older lrkit did not store is not checked, but for what it always ran with
            if meta.get(key, _BEFORE_STORED.get(key, value)) != value:
                if key == "seed":
                    raise ValueError(
                        f"study {name!r} in {shown} was started with seed={meta.get(key)!r}, not {value!r}; "
                        f"give seed {meta.get(key)!r} to continue it, or another study name (--study NAME / "
                        "study_name=) for an independent search"
                    )
                raise ValueError(
                    f"study {name!r} in {shown} was started with {key}={meta.get(key)!r}, not {value!r}; "
                    "give the same settings or another study name"
                )
        if "seed" not in meta:  # stored since the seed check: an older study's seed is not known
            say(
                f"note: study {name!r} in {shown} predates lrkit's seed check, so its seed is unknown and "
                f"seed {seed} is not checked against it: the stored search space is kept, and seed {seed} "
                "only seeds the sampler of the trials this run adds"
            )
        _check_same_optimizer(meta, settings, task_optimizer, f"study {name!r} in {shown}")
        space = SearchSpace.from_dict(meta["space"])
        if want_kinds is not None and set(want_kinds) != set(space.kinds):  # in any order
            raise ValueError(
                f"study {name!r} searches kinds {list(space.kinds)}, not {list(want_kinds)}; "
                "give the same kinds or another study name"
            )
        if lr_range is not None and not all(
            math.isclose(a, b, rel_tol=1e-9) for a, b in zip(lr_range, space.lr_range, strict=True)
        ):
            raise ValueError(
                f"study {name!r} searches lr_range {space.lr_range}, not {lr_range}; "
                "give the same range or another study name"
            )
        study.pruner = _pruner(
            pruner, n_epochs, trials, warmup_epochs(space, n_epochs, total_steps // n_epochs)
        )
        say(
            f"study {name!r} in {shown}: {metric_name} ({direction}), "
            f"{plural(n_epochs, 'epoch')} per trial, peak LR in "
            f"[{space.lr_range[0]:.3g}, {space.lr_range[1]:.3g}], kinds {', '.join(space.kinds)}"
        )

        before = _counts(study)
        done = before["COMPLETE"] + before["PRUNED"]
        if done >= trials:  # a re-run of a finished study: say so rather than print a report out of nowhere
            say(
                f"the study already has {plural(done, 'finished trial')} of the {trials} asked for: "
                "nothing to run (raise --trials / trials= to add more)"
            )
        children: list[Any] = []
        spent = deadline is not None and _clock() >= deadline  # e.g. by the finder: no process to start
        if workers > 1 and main_why is None and done < trials and not spent:  # nor does a finished study
            ctx = multiprocessing.get_context("spawn")
            for i in range(1, workers):
                j = _worker_index(worker, workers, i)
                kwargs = {
                    "task": t.name,
                    "trials": trials,
                    "timeout": timeout,
                    "_deadline": deadline,
                    "storage": url,
                    "study_name": name,
                    "seed": seed,
                    "epochs": n_epochs,
                    "optimizer": optimizer,
                    "optimizer_params": params,
                    "pruner": pruner,
                    "worker": j,
                    "heartbeat": heartbeat,
                    "grace": grace,
                    "max_retry": max_retry,
                    "train_seed": train_seed,
                    "diverge_factor": diverge_factor,
                    "progress": _Prefixed(f"worker {j}: ") if progress is not None else None,
                    "verbosity": optuna.logging.get_verbosity(),
                    "parent": os.getpid(),
                }
                p = ctx.Process(target=_child, args=(kwargs,), daemon=True, name=f"lrkit-tune-{i}")
                p.start()
                children.append(p)

        current: dict[str, Any] = {}

        def objective(trial: Any) -> float:
            current.clear()
            current["number"] = trial.number
            seen: list[float] = []  # the metric of each epoch, NaN included
            try:
                trial.set_user_attr("worker", owner)
                if pid_space is not None:  # where its pid means this process (see _fail_killed)
                    trial.set_user_attr(PID_SPACE, pid_space)
                trial.set_user_attr("worker_index", index)
                trial.set_user_attr(ENV, run_environment())  # its torch threads: its value is theirs
                point = _stored_space(study).sample(trial)
                spec = build_spec(**point, total_steps=total_steps)
                trial.set_user_attr("spec", spec)

                def on_epoch(epoch: int, metric: float) -> None:
                    seen.append(metric)
                    if not math.isfinite(metric):
                        return
                    trial.report(metric, epoch)
                    # after the last epoch the run is over and this is its value: nothing left to save
                    if epoch < n_epochs and trial.should_prune():
                        raise optuna.TrialPruned(f"pruned after epoch {epoch}: {metric_name} {metric:.4g}")

                with user_code(f"task {t.name!r} (trial {trial.number}: {spec})"):
                    rec = run_strategy(
                        t,
                        Strategy(f"trial {trial.number}", spec, optimizer, params),
                        seed=train_seed,
                        epochs=n_epochs,
                        diverge_factor=diverge_factor,
                        on_epoch=on_epoch,
                    )
                status = rec.status
                if rec.final_metric is None and status != "diverged":  # it ended with a NaN/inf metric
                    status = "no metric"  # a failed run (Optuna fails a NaN objective): scored the worst
                    trial.set_user_attr("metric", str(seen[-1]) if seen else "none")
                trial.set_user_attr("status", status)
                if rec.diverged_step is not None:
                    trial.set_user_attr("diverged_step", rec.diverged_step)
                return rec.final_metric if rec.final_metric is not None else worst
            except optuna.TrialPruned:
                raise
            except BaseException as exc:
                current["error"] = exc
                raise

        def on_trial(study: Any, frozen: Any) -> None:
            c = _counts(study)
            best = _best(study)
            status = frozen.user_attrs.get("status", "")
            diverged, failed = status == "diverged", status == "no metric"
            value = "" if frozen.value is None or diverged else f" {metric_name} {frozen.value:.4g}"
            if failed:  # not the worst value it is scored with: the metric the run ended with
                value = f" {metric_name} {frozen.user_attrs.get('metric', 'nan')}"
            if frozen.state.name == "PRUNED" and frozen.last_step is not None:  # its value: that epoch's
                value = f" after epoch {frozen.last_step}{value and ','}{value}"
            note = " (diverged)" if diverged else ""
            if failed:
                note = " (a failed run, scored the worst: check the task's metric)"
            retry = frozen.system_attrs.get("failed_trial")
            again = f" (retry of trial {retry})" if retry is not None else ""
            finite = best is not None and math.isfinite(best.value)
            best_text = f"; best {best.value:.4g} (trial {best.number})" if finite else ""
            say(
                f"[{c['COMPLETE'] + c['PRUNED']}/{trials}] trial {frozen.number}{again} "
                f"{frozen.state.name.lower()}{value}{note}{best_text}: {frozen.user_attrs.get('spec', '')}"
            )

        waiting_said = twin_said = timed_out = False
        began: float | None = None  # when this worker's last trial started (None: it has waited since)
        last: set[int] | None = None  # the trials other workers were running when the budget was reached
        quiet = _SaidByLrkit()
        optuna_log = logging.getLogger("optuna.study._optimize")
        optuna_log.addFilter(quiet)
        try:
            while True:
                _fail_stale(study)
                _fail_orphans(study, rdb, 2 * heartbeat if grace is None else grace, say)
                now = study.get_trials(deepcopy=False)
                twin = None if twin_said else _twin(now, index, owner)
                if twin is not None:
                    say(
                        f"another worker ({twin}) is worker {index} too: the two sample the same points; "
                        "give each machine its own --worker-id / worker= (and the same --workers)"
                    )
                    twin_said = True
                states = {tr.number: tr.state.name for tr in now}
                finished = sum(state in ("COMPLETE", "PRUNED") for state in states.values())
                running = {number for number, state in states.items() if state == "RUNNING"}
                if finished >= trials:  # wait for those (one trial at most), so every worker ends on one best
                    last = running if last is None else last & running
                    if not last:
                        break
                if deadline is not None and timeout is not None and _clock() >= deadline:
                    timed_out = finished < trials
                    say(
                        _out_of_time(
                            timeout, _clock() - (deadline - timeout), began, deadline, finished, trials
                        )
                    )
                    break
                if last or finished + len(running) >= trials:
                    if not waiting_said:
                        say(f"waiting for {plural(len(last or running), 'running trial')} of other workers")
                        waiting_said = True
                    began = None
                    nap = min(1.0, heartbeat / 2)
                    time.sleep(nap if deadline is None else max(0.0, min(nap, deadline - _clock())))
                    continue
                waiting_said = False
                began = _clock()
                try:
                    with warnings.catch_warnings():  # Optuna 4.3 calls its "experimental" fail_stale_trials
                        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
                        study.optimize(objective, n_trials=1, callbacks=[on_trial], gc_after_trial=False)
                except (ValueError, optuna.exceptions.UpdateFinishedTrialError) as exc:
                    if exc is current.get("error") or "number" not in current:
                        raise
                    number = current["number"]
                    state = next(
                        (tr.state.name for tr in study.get_trials(deepcopy=False) if tr.number == number), ""
                    )
                    if state != "FAIL":
                        raise
                    say(
                        f"trial {number} was failed by another worker (its heartbeat was late); "
                        "its retry counts instead"
                    )
        finally:
            optuna_log.removeFilter(quiet)
            for p in children:
                p.join()
        for i, p in enumerate(children, 1):  # the study is finished: a worker that died (OOM) is only news
            if p.exitcode:
                why = f"killed by signal {-p.exitcode}" if p.exitcode < 0 else f"exit code {p.exitcode}"
                news = (
                    f"worker {_worker_index(worker, workers, i)} ended early ({why}); the others finished "
                    "the study without it"
                )
                if progress is None:  # no lines asked for: still not a silent loss of a worker
                    warnings.warn(f"tune: {news}", UserWarning, stacklevel=2)
                else:
                    say(news)
        space = _stored_space(study)
        res = _result(
            study, t.name, name, shown, direction, metric_name, n_epochs, optimizer, space, train_seed
        )
        res.trials, res.timeout, res.timed_out = trials, timeout, timed_out and res.finished < trials
        res.optimizer_params = params
        res.total_steps = total_steps  # every trial's (the study's settings are checked to be the same)
        return res
    finally:  # a claim left by a killed worker agrees with META; one that failed must not block a rerun
        with contextlib.suppress(Exception):
            study.set_user_attr(CLAIM + owner, None)


def _out_of_time(
    timeout: float, elapsed: float, began: float | None, deadline: float, finished: int, trials: int
) -> str:
    """The line a worker says when its time budget has passed: how long it ran, how many of the trials
    asked for the study holds, and whether its last trial ran past the deadline (let finish)."""
    let = (
        " (the one running at the deadline was let finish)" if began is not None and began < deadline else ""
    )
    if finished >= trials:
        held = f"the study holds its {trials} trials{let}; not waiting for other workers' running ones"
    else:
        held = (
            f"{finished} of the {trials} trials asked for finished{let}; no new trial starts (a larger "
            "--timeout / timeout= continues the study)"
        )
    return f"time budget of {duration(timeout)} reached after {duration(round(elapsed, 1))}: {held}"


def _result(
    study: Any,
    task: str,
    name: str,
    shown: str,
    direction: str,
    metric_name: str,
    epochs: int,
    optimizer: str | None,
    space: SearchSpace,
    train_seed: int,
) -> TuneResult:
    import torch

    from ..lab.runner import ENV

    c = _counts(study)
    best = _best(study)
    if best is not None and not math.isfinite(best.value):  # the best of the completed trials diverged
        best = None
    done = [t for t in study.get_trials(deepcopy=False) if t.state.name == "COMPLETE"]
    diverged = sum(t.user_attrs.get("status") == "diverged" for t in done)
    threads = {
        t.number: env["torch_threads"]
        for t in study.get_trials(deepcopy=False)
        if t.state.name in ("COMPLETE", "PRUNED")
        and isinstance(env := t.user_attrs.get(ENV), dict)
        and isinstance(env.get("torch_threads"), int)
    }
    return TuneResult(
        task=task,
        study_name=name,
        storage=shown,
        direction=direction,
        metric_name=metric_name,
        epochs=epochs,
        optimizer=optimizer,
        space=space,
        best_spec=None if best is None else best.user_attrs.get("spec"),
        best_value=None if best is None else float(best.value),
        best_trial=None if best is None else best.number,
        best_params={} if best is None else dict(best.params),
        complete=c["COMPLETE"],
        pruned=c["PRUNED"],
        failed=c["FAIL"],
        train_seed=train_seed,
        diverged=diverged,
        study=study,
        no_metric=sum(t.user_attrs.get("status") == "no metric" for t in done),
        best_threads=None if best is None else threads.get(best.number),
        threads=tuple(sorted(set(threads.values()))),
        torch_threads=torch.get_num_threads(),
    )


def _finder_space(
    t: Any,
    seed: int,
    optimizer: str | None,
    params: Mapping[str, Any],
    repeats: int,
    kinds: tuple[str, ...] | None,
    say: Say,
) -> SearchSpace:
    from ..finder.cli import find_on_task

    say(f"LR range test on {t.name} ({repeats} repeats) to centre the search ...")
    found = find_on_task(t, optimizer, params, seed=seed, repeats=repeats)
    s = found.suggestion
    use_kinds = kinds or SearchSpace().kinds
    if not (isinstance(s, float) and math.isfinite(s) and s > 0):
        say(f"the finder gave no suggestion; searching the default range {DEFAULT_LR_RANGE}")
        return SearchSpace(kinds=use_kinds)
    lo, hi = found.interval
    say(f"finder: {s:.3g} (interval {lo:.3g} .. {hi:.3g})")
    return SearchSpace.from_finder(s, found.interval, kinds=use_kinds)


def _worker_index(worker: int, workers: int, process: int) -> int:
    """The index of process ``process`` (0: the one started by hand) of ``worker`` running ``workers``
    processes: ``worker * workers + process``, so that machines started with ``--worker-id 0, 1, ...``
    and the same ``--workers N`` number their processes 0 .. N-1, N .. 2N-1, ... without a repeat.
    The sampler of index ``j`` is seeded :func:`sampler_seed` ``(seed, j, trials the study holds)``."""
    return worker * workers + process


def sampler_seed(seed: int, index: int, held: int = 0) -> int:
    """The seed of worker ``index``'s sampler on a study holding ``held`` trials when it starts:
    ``(seed + 7919 * index + 1000003 * held) mod 2**32``, apart for every worker, new when a study is
    continued (the same seed would draw the trials it holds again: TPE's start-up points are random),
    and within numpy's seeds (below 2**32) for any ``seed``, ``--seed 4294967295`` included."""
    return (seed + 7919 * index + 1000003 * held) % 2**32


def _builtin() -> set[str]:
    from ..tasks import TASKS

    return set(TASKS)


def _watch_parent(parent: int) -> None:
    while os.getppid() == parent:
        time.sleep(0.5)
    os._exit(1)  # the tune was killed: stop now; this worker's trial goes silent, is failed and retried


def _child(kwargs: dict[str, Any]) -> None:
    """A worker process started by ``tune(workers=N)``: one torch thread, the parent's Optuna log level,
    then the same loop. It exits when the ``lrkit tune`` that started it dies (SIGKILL included), so a
    killed tune leaves no orphan training on; on Ctrl-C (SIGINT, sent to the whole process group) it
    exits with code 130 and leaves the one line to ``lrkit tune`` (its trial is FAIL, as Optuna marks an
    interrupted trial, and the study's budget is met by later trials). When the user's code raises, it
    says so as ``lrkit tune`` does (one line, naming the worker, then the traceback of the user's code)
    and exits with code 1, instead of multiprocessing's traceback through lrkit and Optuna."""
    parent = kwargs.pop("parent")
    threading.Thread(target=_watch_parent, args=(parent,), daemon=True, name="lrkit-tune-watch").start()
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    import optuna
    import torch

    torch.set_num_threads(1)
    optuna.logging.set_verbosity(kwargs.pop("verbosity"))
    try:
        tune(**kwargs, finder=False)
    except KeyboardInterrupt:
        raise SystemExit(130) from None
    except UserCodeError as exc:  # as `lrkit tune` says it: one line, then the user's code's traceback
        sys.stderr.write(f"lrkit tune: error: worker {kwargs['worker']}: {exc}\n{exc.user_traceback()}")
        raise SystemExit(1) from None
