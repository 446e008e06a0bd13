"""``lrkit lab`` and ``lrkit report``: run an experiment (a YAML/TOML file or flags) and report it."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .._cliargs import MAX_INT, positive_int, whole_number
from .._paths import check_output_dir, require_matplotlib
from .._usercode import user_code
from ..tasks.optimizers import OPTIMIZERS
from ._messages import Text, dump_phrases, messages, phrases
from .experiment import Experiment, load_experiment
from .report import LAB_FILES, LANGS
from .store import ResultStore, check_db_path

if TYPE_CHECKING:
    from ..tasks.base import Task

__all__ = ["add_lang", "experiment_task", "register", "run_and_report"]

EXAMPLE = """\
examples:
  lrkit lab experiment.yaml                      # task, strategies, seeds, workers, output from a file
  lrkit lab --task digits-mlp-sgd --seeds 2 \\
      --strategy "cosine=warmup(5%) >> cosine(lr=0.05)" --strategy "adam@adam=constant(1e-3)"
  lrkit lab --strategy "wd@adamw(weight_decay=0.1)=cosine(lr=1e-3)" --strategy "adamw@adamw=cosine(lr=1e-3)"
  lrkit lab --task mypkg.tasks:cifar_small --strategy "one_cycle(max_lr=0.1)"   # your own task
  lrkit report lrkit-lab/                        # re-make the report from the database
  lrkit report lrkit-lab/ --lang ko              # ... in Korean (default: the lab's language)
Rerunning an experiment skips the runs the database already holds and redoes interrupted ones;
--fresh starts over. A strategy with reduce-on-plateau goes in an experiment file:
  strategies:
    - {label: plateau, spec: "constant(lr=0.05)", plateau: {factor: 0.5, patience: 2}}
"""


def _cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def add_lang(parser: argparse.ArgumentParser, *, kept: bool = False) -> None:
    """The ``--lang`` flag of a command that writes a lab report; ``kept``: by default the language the
    lab wrote its report in (``lrkit report``), else English."""
    default = "the lab's language, English for a database from before lrkit kept it" if kept else "en"
    parser.add_argument(
        "--lang",
        choices=LANGS,
        default=None if kept else "en",
        help=f"the report's language: en or ko (Korean); default: {default}; the CSV files stay English",
    )


def register(sub: Any) -> None:
    lp = sub.add_parser(
        "lab",
        help="run strategies side by side on a task (yours or built-in); HTML report, CSV, SQLite",
        epilog=EXAMPLE,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    lp.add_argument("experiment", nargs="?", metavar="EXPERIMENT", help="an experiment file (.yaml/.toml)")
    lp.add_argument("--task", help="a built-in task or MODULE:FUNCTION (default: digits-mlp-sgd)")
    lp.add_argument(
        "--strategy",
        action="append",
        metavar="[LABEL[@OPT]=]SPEC",
        help=f"repeatable; OPT replaces the task's optimizer: {', '.join(OPTIMIZERS)}, with hyper-parameters "
        "in call syntax: 'wd@adamw(weight_decay=0.1)=cosine(lr=1e-3)'. Reduce-on-plateau is set in an "
        "experiment file (a strategy's plateau: {factor: 0.5, patience: 2})",
    )
    lp.add_argument("--seeds", type=positive_int, metavar="K", help="seeds per strategy (default: 1)")
    lp.add_argument("--epochs", type=positive_int, metavar="E", help="epochs per run (default: the task's)")
    lp.add_argument(
        "--workers",
        type=whole_number(1, MAX_INT),
        metavar="N",
        help=f"parallel processes (default: the cores, {_cores()})",
    )
    lp.add_argument("--out", metavar="DIR", help="output directory (default: lrkit-lab)")
    lp.add_argument("--db", metavar="FILE", help="SQLite results file (default: OUT/lab.db)")
    lp.add_argument("--name", help="experiment name stored with the runs (default: lab)")
    lp.add_argument(
        "--fresh", action="store_true", help="forget this experiment's stored runs and run them again"
    )
    add_lang(lp)
    lp.set_defaults(func=cmd_lab)

    rp = sub.add_parser("report", help="re-make the HTML report, CSV files and figure from a lab database")
    rp.add_argument(
        "source", metavar="DB_OR_DIR", help="a lab database, or a lab's output directory (DIR/lab.db)"
    )
    rp.add_argument("--out", metavar="DIR", help="output directory (default: the database's directory)")
    rp.add_argument(
        "--experiment",
        type=whole_number(None, None),
        metavar="ID",
        help="which experiment (default: the latest)",
    )
    add_lang(rp, kept=True)
    rp.set_defaults(func=cmd_report)


def experiment_from_args(args: argparse.Namespace) -> Experiment:
    """The experiment a ``lrkit lab`` command line describes (a file, overridden by flags)."""
    from .runner import Strategy, check_labels

    if args.experiment is not None:
        if args.strategy or args.task:
            raise ValueError("give strategies and the task in the experiment file or as flags, not both")
        exp = load_experiment(args.experiment)
        if args.seeds is not None:
            exp.seeds = list(range(args.seeds))
    else:
        if not args.strategy:
            raise ValueError("give an experiment file or at least one --strategy")
        exp = Experiment(
            name="lab",
            task=args.task or "digits-mlp-sgd",
            strategies=[Strategy.parse(s, "--strategy") for s in args.strategy],
            seeds=list(range(args.seeds or 1)),
        )
        check_labels(exp.strategies, "--strategy", "--strategy LABEL=SPEC")
    if args.epochs is not None:
        exp.epochs = args.epochs
    if args.workers is not None:
        exp.workers = args.workers
    if args.out is not None:  # checked as given: Path('') is the current directory
        exp.output = check_output_dir(args.out, "--out", LAB_FILES)
    if args.db is not None:
        exp.db = Path(args.db)
    if args.name is not None:  # as an experiment file's name: a title, so not empty
        if not args.name.strip():
            raise ValueError(f"--name must be a non-empty string, got {args.name!r}")
        exp.name = args.name.strip()
    return exp


def cmd_lab(args: argparse.Namespace) -> int:
    from .._text import plural
    from ..cli import check_task
    from .runner import check_runs, check_schedules

    exp = experiment_from_args(args)
    flag = "--task" if args.experiment is None else f"experiment {args.experiment!r}: task"
    check_task(exp.task, flag)
    out = check_output_dir(exp.output or Path("lrkit-lab"), "--out", LAB_FILES)
    require_matplotlib()  # the report's figure: before the runs, not after them
    db = check_db_path(exp.db or out / "lab.db", "--db", write=True)
    from ..adapters import torch as _needs_torch  # noqa: F401  (a missing torch, too)

    # an unknown task, a module that does not import, a broken factory, loss or metric: all fail here,
    # before anything is written; an exception of your own code is shown as yours
    with user_code(f"{flag} {exp.task!r}"):
        task = experiment_task(exp)
        task.check(0)

    runs = len(exp.strategies) * len(exp.seeds)
    workers = min(exp.workers or _cores(), runs)  # a process more than the runs would idle
    epochs = exp.epochs or task.epochs
    check_schedules(exp.strategies, epochs, task.steps_per_epoch)
    check_runs(  # two strategies that are one run (a=cosine(0.1) and b=cosine(lr=0.1)), as run_lab would
        exp.strategies,
        task.name,
        epochs,
        task.optimizer,
        task.optimizer_params,
        exp.diverge_factor,
        "--strategy" if args.experiment is None else "experiment",
        higher_is_better=task.higher_is_better,
    )
    print(
        f"lab {exp.name!r}: {plural(len(exp.strategies), 'strategy', 'strategies')} x "
        f"{plural(len(exp.seeds), 'seed')} x {plural(epochs, 'epoch')} on {task.name}, "
        f"{plural(workers, 'worker')}"
    )
    return run_and_report(exp, out, db, workers=workers, fresh=args.fresh, lang=args.lang, task=task)


def experiment_task(exp: Experiment) -> Task:
    """The task ``exp`` names: a built-in one, or ``module:function`` whose module is looked for in the
    experiment file's folder first, then in the current directory
    (:func:`~lrkit.tasks.base.load_factory`)."""
    from ..tasks import TASKS, get_task
    from ..tasks.base import Task, load_factory

    if exp.folder is None or exp.task in TASKS or ":" not in exp.task:
        return get_task(exp.task)
    return Task(exp.task, load_factory(exp.task, exp.folder), f"your task {exp.task}")


def run_and_report(
    exp: Experiment,
    out: Path,
    db: Path,
    *,
    workers: int,
    fresh: bool = False,
    title: Text | None = None,
    note: Text | None = None,
    lang: str = "en",
    task: Task | None = None,
) -> int:
    """Run ``exp`` into ``db``, then write the report into ``out`` (``note`` at its top) in ``lang``; 1 if
    the report failed (said on stderr under the command that ran; the results stay in the database, and
    the message says how to re-make the report). ``title`` and ``note``: text shown as it is, or phrases
    said in ``lang``; both, and ``lang``, are kept in ``db``, so that ``lrkit report`` re-makes the
    report as it was (phrases in any language). ``task``: the one ``exp`` names, already built and
    checked (:func:`experiment_task`), which its probe build serves again."""
    from .progress import SweepProgress
    from .runner import run_lab

    if task is None:
        task = experiment_task(exp)
    t = messages(lang)
    title_text, note_text = t.text(title), t.text(note)
    title_phrases, note_phrases = phrases(title), phrases(note)

    def keep_report_text(store: ResultStore, experiment_id: int) -> None:
        """`lrkit report` re-makes this report with its title, note and language, also after a kill."""
        store.set_report_text(
            experiment_id,
            title_text,
            note_text,
            lang=lang,
            title_phrases=None if title_phrases is None else dump_phrases(title_phrases),
            note_phrases=None if note_phrases is None else dump_phrases(note_phrases),
        )

    # a path, not an open store: run_lab makes the database once every strategy has resolved for the task
    result = run_lab(
        task,
        exp.strategies,
        seeds=exp.seeds,
        epochs=exp.epochs,
        store=str(db),
        name=exp.name,
        diverge_factor=exp.diverge_factor,
        workers=workers,
        fresh=fresh,
        progress=SweepProgress(metric_name=task.metric_name),
        on_experiment=keep_report_text,
    )
    out.mkdir(parents=True, exist_ok=True)
    try:
        written = write_outputs(result, out, title=title_text, note=note_text, lang=lang)
    except Exception as exc:  # on stderr, under the command that ran (lab, tune, demo)
        from ..cli import running_command

        again = "" if lang == "en" else f" --lang {lang}"
        print(
            f"{running_command('lab')}: error: writing the report failed: {exc}\n"
            f"  the results are safe in {db}; re-make the report with: lrkit report {db} --out DIR{again}",
            file=sys.stderr,
        )
        return 1
    for p in written:
        print(f"wrote {p}")
    print(f"results in {db} (experiment {result.experiment_id})")
    print(f"report: {written[0].resolve()}")
    return 0


def write_outputs(
    result: Any, out: Path, title: str | None = None, note: str | None = None, lang: str = "en"
) -> list[Path]:
    """The HTML report first, then the CSV files, the Markdown table and the PNG figure, in ``lang``;
    prints the table (lab.md's, without lrkit's mark and Markdown's escapes)."""
    from .report import plain_markdown, write_all

    written = write_all(result, out, title=title, note=note, lang=lang)
    print(plain_markdown(written[3].read_text(encoding="utf-8")))
    return written


def cmd_report(args: argparse.Namespace) -> int:
    from .report import plain_markdown, report_from_db, source_db

    db = source_db(args.source, "DB_OR_DIR")  # before --out, which defaults to the database's folder
    out = check_output_dir(db.parent if args.out is None else args.out, "--out", LAB_FILES)
    # the database (one of lrkit's, holding experiments) and --experiment are checked as they are read,
    # under the command line's names, before anything is written
    written = report_from_db(db, out, args.experiment, names=("DB_OR_DIR", "--experiment"), lang=args.lang)
    # the table, as lrkit lab prints it (and the runs still missing)
    print(plain_markdown(written[3].read_text(encoding="utf-8")))
    for p in written:
        print(f"wrote {p}")
    print(f"report: {written[0].resolve()}")
    return 0
