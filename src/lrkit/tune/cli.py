"""``lrkit tune``: search a task's LR schedule with Optuna, then compare the best with the finder's warmup +
cosine and a few recipes in a lab report.

``lrkit.cli`` calls :func:`register` with its subparsers; Optuna and torch are imported by the handler.
"""

from __future__ import annotations

import argparse
import math
import os
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .._cliargs import MAX_INT, OPTIMIZER_HELP, optimizer, positive_float, positive_int, seed, whole_number
from .._text import say_line
from ..scaling import LR_FREE
from ..tasks.optimizers import OPTIMIZERS

if TYPE_CHECKING:
    from ..lab._messages import Phrase

__all__ = [
    "EXIT_OUT_OF_TIME",
    "baseline_peak",
    "cmd_tune",
    "held_out_seeds",
    "register",
    "report_strategies",
]

#: the exit status of ``lrkit tune`` when its time budget (--timeout) ran out before any trial completed:
#: neither success (0) nor an error (1, 2), so that a script can rerun it with a larger budget (the study
#: keeps what it holds, and the rerun continues it)
EXIT_OUT_OF_TIME = 3

EXAMPLE = f"""\
examples:
  lrkit tune --task digits-mlp-sgd --trials 30              # SQLite file lrkit-tune.db, report in lrkit-tune/
  lrkit tune --task digits-mlp-sgd --trials 100 --timeout 2h   # at most 2 hours of search, then the report
  lrkit tune --task mypkg.tasks:cifar_small --trials 100 --workers 4
  # many machines, one study: run the same line on each (the first one runs the LR finder)
  lrkit tune --task mypkg.tasks:cifar_small --trials 200 --study cifar \\
      --storage postgresql://USER:PASSWORD@HOST:5432/DB --worker-id K --no-report
Each worker runs trials until the study has --trials finished ones; rerunning a finished study only
reports. A killed worker's trial is marked failed after --grace seconds and run again by another worker.
After --timeout no worker starts a trial (a running one finishes); the same line later continues the study.
The last line printed is the best spec, ready for `lrkit show` and lrkit.torch.scheduler.

exit status:
  0    a best spec is printed (and the report written)
  1    no trial completed, or every completed trial diverged or ended with a
       NaN/inf metric; your code
       (--task MODULE:FUNCTION) raised (its traceback is printed); or the system
       refused (a file, out of memory)
  2    bad input (a flag, a path, a task), refused before anything runs
  {EXIT_OUT_OF_TIME}    the --timeout ran out before any trial completed: no best spec; the
       study keeps what it holds, and a rerun with a larger --timeout goes on
  130  interrupted (Ctrl-C)
"""


def register(sub: Any) -> argparse.ArgumentParser:
    """Add the ``tune`` subcommand to an argparse ``_SubParsersAction``; its ``func`` is :func:`cmd_tune`."""
    from ..tasks import TASKS  # the registry only: no torch
    from .core import PRUNERS
    from .space import KINDS
    from .storage import DEFAULT_STORAGE

    p: argparse.ArgumentParser = sub.add_parser(
        "tune",
        help="search the LR schedule with Optuna (SQLite or PostgreSQL, many workers); report the best",
        description="Search a task's LR schedule (its kind, the peak LR around the LR finder's\n"
        "suggestion, the warmup and final fractions) with Optuna; print the best spec and compare\n"
        "it with the finder's warmup + cosine and a few recipes in a lab report.",
        epilog=EXAMPLE,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument(
        "--task",
        required=True,
        help=f"a built-in task ({', '.join(TASKS)}) or your own as MODULE:FUNCTION (a function f(seed) -> "
        "lrkit.tasks.TaskParts)",
    )
    p.add_argument(
        "--trials",
        type=positive_int,
        required=True,
        metavar="N",
        help="finished trials the study needs, over all its workers (not per worker)",
    )
    p.add_argument(
        "--timeout",
        metavar="S",
        help="time budget of the search, from the start of the command, for every worker it starts: "
        "after it no new trial starts (a running one finishes) and the report is written from the "
        "finished trials; seconds, or a number with a unit s, m or h: 5400, 90m, 1.5h (default: none)",
    )
    p.add_argument(
        "--storage",
        metavar="FILE_OR_URL",
        help=f"SQLite file or sqlite:///FILE or postgresql://... URL (default: {DEFAULT_STORAGE})",
    )
    p.add_argument("--study", metavar="NAME", help="study name (default: lrkit-TASK)")
    p.add_argument(
        "--workers",
        type=whole_number(1, MAX_INT),
        default=1,
        metavar="N",
        help="worker processes here (default 1)",
    )
    p.add_argument(
        "--worker-id",
        type=whole_number(0, MAX_INT),
        default=0,
        metavar="K",
        help="this machine's number among those started by hand (0, 1, ...); with --workers N its "
        "processes are workers K*N .. K*N+N-1, each sampler seeded apart (give each the same --workers)",
    )
    p.add_argument("--epochs", type=positive_int, metavar="E", help="epochs per trial (default: the task's)")
    p.add_argument(
        "--optimizer",
        type=optimizer,
        help="optimizer for every trial (default: the task's): "
        + ", ".join(n for n in OPTIMIZERS if n not in LR_FREE)
        + OPTIMIZER_HELP
        + " (kept with the study: a study continued with other ones is refused)",
    )
    p.add_argument("--kinds", help=f"comma-separated schedules to search (default: {','.join(KINDS)})")
    p.add_argument(
        "--lr-range",
        type=positive_float,
        nargs=2,
        metavar=("LOW", "HIGH"),
        help="peak-LR range (default: the finder's)",
    )
    p.add_argument("--no-finder", action="store_true", help="skip the LR finder; search the default range")
    p.add_argument(
        "--pruner",
        default="none",
        choices=PRUNERS,
        help="stop poor trials early on their per-epoch metric (default none: a decaying schedule gains "
        "most at its end, so an early ranking prunes the best)",
    )
    p.add_argument("--seed", type=seed, default=0, help="sampler and finder seed (default 0)")
    p.add_argument(
        "--heartbeat",
        type=whole_number(1, MAX_INT),
        default=10,
        metavar="S",
        help="seconds between the heartbeats a running trial records (default %(default)s)",
    )
    p.add_argument(
        "--grace",
        type=whole_number(1, MAX_INT),
        default=60,
        metavar="S",
        help="a trial without a heartbeat for this many seconds is marked failed and run again "
        "(default %(default)s)",
    )
    p.add_argument(
        "--max-retry",
        type=whole_number(0, MAX_INT),
        default=3,
        metavar="N",
        help="times a killed worker's trial is run again (default %(default)s)",
    )
    p.add_argument("--out", metavar="DIR", help="report directory (default: lrkit-tune)")
    p.add_argument(
        "--report-seeds",
        type=positive_int,
        default=3,
        metavar="K",
        help="seeds per strategy in the report (default 3)",
    )
    p.add_argument("--no-report", action="store_true", help="only tune; print the best spec")
    from ..lab.cli import add_lang

    add_lang(p)
    p.set_defaults(func=cmd_tune)
    return p


#: what ``lrkit tune`` writes beside the lab report (:func:`write_trials`)
TRIAL_FILES = ("trials.csv", "trials.png")
#: the report's strategy labels in Korean (``lrkit tune --lang ko``), by their English ones
LABELS_KO = {
    "tuned": "튜닝 결과",
    "finder: warmup 5% + cosine": "탐색기: 워밍업 5% + 코사인",
    "range centre: warmup 5% + cosine": "범위 중심: 워밍업 5% + 코사인",
    "tuned LR: warmup 5% + cosine": "튜닝한 학습률: 워밍업 5% + 코사인",
    "recipe: GPT cosine": "레시피: GPT 코사인",
    "recipe: fastai one-cycle": "레시피: fastai 원사이클",
    "recipe: WSD 1-sqrt": "레시피: WSD 1-sqrt",
}


def report_strategies(
    best_spec: str,
    peak: float,
    peak_source: str,
    optimizer: str | None = None,
    lang: str = "en",
    optimizer_params: Mapping[str, Any] | None = None,
) -> list[Any]:
    """The report's strategies: the tuned spec, warmup + cosine at ``peak`` (the finder's suggestion,
    ``peak_source`` "finder"; without the finder the tuned best's peak LR, "tuned LR", so that the recipes
    differ from the tuned schedule by their shape alone) and three recipes at ``peak``
    (GPT cosine, fastai one-cycle, WSD), all with ``optimizer`` (None: the task's) and
    ``optimizer_params``, as the study's trials; labelled in ``lang`` (``"en"`` or ``"ko"``:
    :data:`LABELS_KO`)."""
    from ..lab.runner import Strategy
    from ..recipes import fastai_one_cycle, gpt_cosine, llm_wsd
    from ..spec import to_string

    p = float(f"{peak:.3g}")
    words = LABELS_KO if lang == "ko" else {}
    rows = [
        ("tuned", best_spec),
        (f"{peak_source}: warmup 5% + cosine", f"warmup(5%) >> cosine(lr={p}, min_lr={p / 100:.3g})"),
        ("recipe: GPT cosine", to_string(gpt_cosine(lr=p))),
        ("recipe: fastai one-cycle", to_string(fastai_one_cycle(max_lr=p))),
        ("recipe: WSD 1-sqrt", to_string(llm_wsd(lr=p))),
    ]
    params = dict(optimizer_params or {})
    return [Strategy(words.get(label, label), spec, optimizer, params) for label, spec in rows]


def baseline_peak(result: Any) -> tuple[float, str]:
    """The peak LR of the report's baselines and where it comes from: the finder's suggestion
    (``"finder"``), or without the finder the tuned best's peak LR (``"tuned LR"``): no LR was picked
    apart from the search, and at the range's centre (an arbitrary LR) the tuned schedule won on its LR
    alone; at the same LR the baselines differ from it by their shape."""
    space = result.space
    if space.center is not None:
        return float(space.center), "finder"
    return float(result.best_params.get("lr", space.peak)), "tuned LR"


def _check_args(args: argparse.Namespace) -> None:
    """Every flag, named as on the command line, before anything is imported, built or run."""
    from ..cli import check_search_optimizer, check_task
    from .core import check_study_name, parse_duration
    from .space import _positive_pair, check_kinds

    check_task(args.task, "--task")  # each number was checked as it was parsed (lrkit._cliargs)
    if args.timeout is not None:
        parse_duration(args.timeout, "--timeout")
    if args.grace <= args.heartbeat:
        raise ValueError(f"--grace must be longer than --heartbeat ({args.heartbeat} s), got {args.grace}")
    if args.study is not None:
        check_study_name(args.study, "--study")
    if args.optimizer is not None:
        check_search_optimizer(args.optimizer, "lrkit tune")
    if args.kinds is not None:  # the search space's own checks, under the flags' names
        check_kinds(args.kinds, "--kinds")
    if args.lr_range is not None:
        _positive_pair("--lr-range", args.lr_range)
    _check_storage(args.storage)


def _check_storage(storage: str | None) -> None:
    """``--storage``: an SQLite file (a path or ``sqlite:///FILE``; a foreign file is refused, untouched)
    or a ``postgresql://`` URL whose server answers."""
    from .storage import check_storage_text, engine_options, mask_url, open_error, storage_url

    supported = "an SQLite file (FILE or sqlite:///FILE) or a postgresql://USER:PASSWORD@HOST:PORT/DB URL"
    if storage is not None and not storage.strip():
        raise ValueError(f"--storage must be {supported}, got ''")
    if storage is not None:
        check_storage_text(storage, "--storage")
    scheme = storage.split("://", 1)[0].split("+", 1)[0].lower() if storage and "://" in storage else "file"
    if scheme not in ("file", "sqlite", "postgresql", "postgres"):
        raise ValueError(
            f"--storage: only SQLite files and PostgreSQL servers are supported: expected {supported}, "
            f"got {mask_url(str(storage))!r}"
        )
    if scheme == "sqlite" and not str(storage).split("://", 1)[1].startswith("/"):
        raise ValueError(f"--storage: an SQLite URL is sqlite:///FILE (three slashes), got {storage!r}")
    url = storage_url(storage, "--storage")  # checks an SQLite file; picks the installed PostgreSQL driver
    if scheme in ("file", "sqlite"):
        return
    import sqlalchemy

    try:  # connect once, so that a wrong host or password is refused before the task is built
        engine = sqlalchemy.create_engine(url, **engine_options(url))
        try:
            with engine.connect():
                pass
        finally:
            engine.dispose()
    except (sqlalchemy.exc.SQLAlchemyError, ImportError, ValueError) as exc:
        raise open_error("--storage", str(storage), exc) or exc from None


def cmd_tune(args: argparse.Namespace) -> int:
    from .._paths import check_output_dir
    from ..lab.report import LAB_FILES
    from ..lab.store import check_db_path
    from ..tasks import get_task
    from . import core

    started = core._clock()  # --timeout counts from here, for every worker process
    _check_args(args)  # a foreign storage file, too, is refused before anything runs
    out = db = None
    if not args.no_report:
        out = check_output_dir(
            "lrkit-tune" if args.out is None else args.out, "--out", LAB_FILES + TRIAL_FILES
        )
        db = check_db_path(out / "lab.db", "--out")
    from .._usercode import user_code

    # an unknown task, a module that does not import, a broken factory, loss or metric: all fail here,
    # before the storage or the report directory is touched; an exception of your own code is shown as yours
    with user_code(f"--task {args.task!r}"):
        task = get_task(args.task)
        task.check(args.seed)
    if args.optimizer is None:  # the task's own optimizer, as --optimizer's, must have an LR to search
        from ..cli import refuse_lr_free

        refuse_lr_free(
            task.optimizer, "lrkit tune", f"the optimizer of --task {args.task!r}:", "give --optimizer one"
        )
    import optuna  # noqa: F401  (a missing Optuna fails here; core.tune keeps Optuna's INFO lines quiet)

    from ..adapters import torch as _needs_torch  # noqa: F401  (a missing torch fails here, not mid-way)

    if args.workers > 1:
        os.environ.setdefault("OMP_NUM_THREADS", "1")
        import torch

        torch.set_num_threads(1)
    timeout = None if args.timeout is None else core.parse_duration(args.timeout, "--timeout")
    result = core.tune(
        task,
        trials=args.trials,
        timeout=timeout,
        _deadline=None if timeout is None else started + timeout,
        storage=args.storage,
        study_name=args.study,
        seed=args.seed,
        epochs=args.epochs,
        optimizer=None if args.optimizer is None else args.optimizer.name,
        optimizer_params=None if args.optimizer is None else args.optimizer.params,
        kinds=args.kinds,
        finder=not args.no_finder,
        lr_range=tuple(args.lr_range) if args.lr_range else None,
        pruner=args.pruner,
        workers=args.workers,
        worker=args.worker_id,
        heartbeat=args.heartbeat,
        grace=args.grace,
        max_retry=args.max_retry,
        progress=say_line,  # one write a line: worker processes write to the same stdout
    )
    # without a best spec, stdout ends with no sentence a script could take for one (its last line)
    say_line(str(result), sys.stdout if result.best_spec is not None else sys.stderr)
    if out is not None and result.study is not None and result.finished + result.failed:
        write_trials(result, out, args.lang)  # also without a best spec: every trial diverged, out of time
    budget = None if timeout is None else f"--timeout {args.timeout.strip()} = {core.duration(timeout)}"
    why = result.no_best()
    if why is not None:
        hint = "search lower LRs (--lr-range LOW HIGH) or clip the gradients in the task"
        say_line(
            f"lrkit tune: error: {why}, so there is no best spec" + (f"; {hint}" if result.diverged else ""),
            sys.stderr,
        )
        return 1
    if result.best_spec is None and result.timed_out:
        say_line(
            f"lrkit tune: the time budget ({budget}) ran out before any trial completed, so there is no "
            f"best spec; the study keeps its search space and {result.finished + result.failed} recorded "
            f"trials: the same line with a larger --timeout continues it (exit status {EXIT_OUT_OF_TIME})",
            sys.stderr,
        )
        return EXIT_OUT_OF_TIME
    if result.best_spec is None:
        say_line("lrkit tune: error: no trial completed, so there is no best spec", sys.stderr)
        return 1
    code = 0
    if out is not None and db is not None:
        from ..lab._messages import Phrase

        stopped = None
        if result.timed_out:  # "The search stopped at its time budget (...) with 5 of the 50 trials ..."
            stopped = Phrase(
                "tune.stopped", {"budget": budget, "finished": result.finished, "trials": result.trials}
            )
        code = _report(result, task, out, db, args, stopped, lang=args.lang)
    value = (
        "nan" if result.best_value is None or math.isnan(result.best_value) else f"{result.best_value:.4g}"
    )
    so_far = " so far" if result.timed_out else ""
    say_line(
        f"best spec{so_far} ({result.metric_name} {value}{result.threads_note()} on the tuning seed "
        f"{result.train_seed}, trial "
        f"{result.best_trial} of study {result.study_name!r}); try: lrkit show SPEC --total "
        f"{result.epochs * task.steps_per_epoch}",
    )
    say_line(str(result.best_spec))
    return code


def write_trials(result: Any, out: Path, lang: str) -> None:
    """``trials.csv`` and ``trials.png`` (:mod:`lrkit.tune.trials`) in ``out``: what the search tried, beside
    the report of what it found; their paths said on stdout."""
    from .trials import plot_trials, write_trials_csv

    table = write_trials_csv(result.study, out / "trials.csv")
    figure = out / "trials.png"
    plot_trials(result, figure, lang=lang)
    say_line(f"the search's trials: {figure} (figure), {table} (one row per trial)")


def _report(
    result: Any,
    task: Any,
    out: Path,
    db: Path,
    args: argparse.Namespace,
    stopped: Phrase | None = None,
    lang: str = "en",
) -> int:
    """Run the lab comparison of the tuned schedule and write its report (in ``lang``); ``stopped`` (how
    the search stopped at its time budget) leads the report's note. The title and note are phrases of the
    report's catalogue (:mod:`lrkit.lab._messages`): ``lrkit report`` says them in any language."""
    from .._text import plural
    from ..lab._messages import Phrase
    from ..lab.cli import run_and_report
    from ..lab.experiment import Experiment
    from ..schedules import Schedule

    space = result.space
    peak, source = baseline_peak(result)
    spe = task.steps_per_epoch
    strategies = []
    for s in report_strategies(
        result.best_spec, peak, source, result.optimizer, lang, result.optimizer_params
    ):
        assert isinstance(s.schedule, Schedule)  # Strategy parses a spec string
        try:  # a recipe that cannot run this short (one-cycle's phases in 4 steps) is left out, said why
            s.schedule.resolve(total_steps=result.epochs * spe, steps_per_epoch=spe)
        except ValueError as exc:
            say_line(f"lab: {s.label!r} left out: {exc}")
            continue
        strategies.append(s)
    seeds = held_out_seeds(result.train_seed, args.report_seeds)
    exp = Experiment(
        name=f"tune {result.study_name}",
        task=task.name,
        strategies=strategies,
        seeds=seeds,
        epochs=result.epochs,
    )
    others = plural(len(strategies) - 2, "recipe")
    held_out = (
        f"seeds {', '.join(map(str, seeds))}, held out: every trial trained on seed {result.train_seed}, "
        "so the tuned schedule is judged on seeds it was not chosen on"
    )
    say_line(
        f"lab: the tuned schedule beside the {source}'s warmup + cosine and {others}, "
        f"{plural(args.report_seeds, 'seed')} x {plural(result.epochs, 'epoch')} ({held_out})",
    )
    held_out_note = Phrase(  # "The report's seeds 1, 2, 3, held out: every trial trained on seed 0, ..."
        "tune.held_out",
        {
            "seeds": ", ".join(map(str, seeds)),
            "train_seed": result.train_seed,
            "trial": result.best_trial,
            "m": result.metric_name,
            "value": f"{result.best_value:.4g}",
        },
    )
    return run_and_report(
        exp,
        out,
        db,
        workers=args.workers,
        title=Phrase(  # "tuned (STUDY) vs finder and recipes"
            "tune.title.finder" if space.center is not None else "tune.title.tuned_lr",
            {"study": result.study_name},
        ),
        note=[held_out_note] if stopped is None else [stopped, held_out_note],
        lang=lang,
    )


def held_out_seeds(train_seed: int, k: int) -> list[int]:
    """``k`` report seeds, none of them ``train_seed`` (the seed every trial trained on): the tuned
    best's score on its own seed is the maximum over the trials, an optimistic estimate."""
    return [s for s in range(k + 1) if s != train_seed][:k]
