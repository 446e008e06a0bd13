"""``lrkit auto --task NAME``: find the LR, build the schedule, attach the guard, train and report.

``lrkit.cli`` calls :func:`register` with its subparsers; torch is imported by the handler.

Example::

    lrkit auto --task digits-mlp-adam
    lrkit auto --task mypkg.tasks:cifar_small --budget 0.05 --json auto.json
"""

from __future__ import annotations

import argparse
from typing import Any, TextIO

from lrkit._cliargs import OPTIMIZER_HELP, optimizer, positive_float, positive_int, seed
from lrkit.auto import KINDS, PEAK_FACTOR, SEARCHES
from lrkit.finder.cli import budget_type, json_output, write_result
from lrkit.scaling import LR_FREE
from lrkit.tasks import TASKS
from lrkit.tasks.optimizers import OPTIMIZERS

__all__ = ["register", "run"]

#: how ``lrkit auto`` sets what the finder's advice names (``FinderResult.phrased_for``): the budget
#: only (the search's ramp, repeats and batches are lrkit.auto's own)
FLAGS = {"budget": "--budget"}

#: how ``lrkit auto`` names what the divergence guard's advice needs (``DivergenceError.advice``): the
#: LR is set by --peak-factor (``{factor}``: the one the run used), gradient clipping by --max-grad-norm;
#: max_recoveries has no flag here
GUARD_FLAGS = {"lr": "the peak LR (--peak-factor below {factor:g})", "max_grad_norm": "--max-grad-norm C"}

#: the exit status when the divergence guard gave up: the loss blew up again after every rollback
EXIT_DIVERGED = 4

#: how the search's cost warning (lrkit.auto.SearchCostWarning) names what to change: by these flags
SPELLING = {"epochs": "--epochs {}", "search": "--search {}", "budget": "--budget"}

#: what ``lrkit auto --help`` says before the flags (kept as written: its lines are wrapped here)
DESCRIPTION = """\
Find the learning rate of a task, schedule it, guard it and train (lrkit.auto):

  search    an in-run LR ramp whose steps up to 3x its suggestion are kept as
            the warmup, then a short linear re-warm; without signal (or with
            --search separate) the separate finder, whose retries may add
            --budget of the planned steps, then a linear warmup
  schedule  warmup-stable-decay: the peak held, a 1-sqrt cool-down over the
            last 20% (the constant peak for Schedule-Free; --kind for another)
  guard     the divergence guard: a loss that blows up rolls the run back and
            halves the LR

then print the final validation metric.
"""

#: what ``lrkit auto --help`` says after the flags (3 is lrkit.finder.cli.EXIT_NO_SUGGESTION, 4
#: EXIT_DIVERGED)
EPILOG = """\
exit status:
  0    trained; the final metric is printed
  1    your task's code (--task MODULE:FUNCTION) raised (its traceback is
       printed), or the system refused (a file that cannot be written, out of
       memory)
  2    bad input (a flag, a path, a task), refused before anything trains;
       or data that is not finite (NaN/inf), found by the search
  3    no suggestion: the LR search found no usable signal, so nothing was
       trained; the reason and what to try (e.g. a larger --budget) are printed
       on stderr
  4    diverged: the loss blew up (NaN/inf) again after each of the divergence
       guard's rollbacks, so training stopped; where, and what to try, are
       printed, and --json is written with the guard's events
  130  interrupted (Ctrl-C)

examples:
  lrkit auto --task digits-mlp-adam
  lrkit auto --task digits-mlp-adam --optimizer 'adamw(weight_decay=0.1, betas=(0.9, 0.99))'
  lrkit auto --task mypkg.tasks:cifar_small --budget 0.05 --json auto.json --plot auto.png
"""


def peak_factor_defaults() -> str:
    """:data:`lrkit.auto.PEAK_FACTOR` in words, by search and kind: ``after the in-run ramp wsd 2.5,
    cosine/constant 3; ...``."""
    said = []
    for search, words in (("in_run", "after the in-run ramp"), ("separate", "after the separate test")):
        kinds: dict[float, list[str]] = {}
        for (where, kind), factor in PEAK_FACTOR.items():
            if where == search:
                kinds.setdefault(factor, []).append(kind)
        said.append(f"{words} " + ", ".join(f"{'/'.join(k)} {f:g}" for f, k in kinds.items()))
    return "; ".join(said)


def register(subparsers: Any) -> argparse.ArgumentParser:
    """Add the ``auto`` subcommand to an argparse ``_SubParsersAction``; its ``func`` is :func:`run`."""
    p: argparse.ArgumentParser = subparsers.add_parser(
        "auto",
        help="find the LR, schedule it (warmup-stable-decay) with a divergence guard, train",
        description=DESCRIPTION,
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument(
        "--task",
        required=True,
        help=f"a built-in task ({', '.join(TASKS)}) or your own as MODULE:FUNCTION (a function "
        "f(seed) -> lrkit.tasks.TaskParts)",
    )
    p.add_argument(
        "--seed",
        type=seed,
        default=0,
        help="seeds the model's initialisation, the batch order and the search (default %(default)s)",
    )
    p.add_argument(
        "--epochs", type=positive_int, default=None, metavar="E", help="epochs to train (default: the task's)"
    )
    p.add_argument(
        "--optimizer",
        type=optimizer,
        default=None,
        help=f"replaces the task's optimizer: one of {', '.join(o for o in OPTIMIZERS if o not in LR_FREE)} "
        f"(default: the task's){OPTIMIZER_HELP}",
    )
    p.add_argument(
        "--max-grad-norm",
        type=positive_float,
        default=None,
        metavar="C",
        help="clip the gradient norm to C in the search and the training (default: the task's; none)",
    )
    p.add_argument(
        "--peak-factor",
        type=positive_float,
        default=None,
        metavar="F",
        help=f"the schedule's peak LR is F times the search's suggestion (default: {peak_factor_defaults()});"
        " lower it when training diverges",
    )
    p.add_argument(
        "--budget",
        type=budget_type,
        default=0.1,
        help="finder escalation budget, the extra steps a retry may take: a fraction (<= 1) of the planned "
        "steps, or a whole number of steps (default 0.1)",
    )
    p.add_argument(
        "--search",
        choices=SEARCHES,
        default="auto",
        help="the LR search: in_run (the ramp's steps up to 3x its suggestion are kept as warmup: ~1.05x "
        "one run), "
        "separate (the 3 x 100-step finder, restored first), auto (in_run; separate when the ramp "
        "finds no signal)",
    )
    p.add_argument(
        "--kind",
        choices=KINDS,
        default="auto",
        help="the schedule after the search: auto (constant for Schedule-Free, else wsd), wsd "
        "(warmup-stable-decay), cosine, one_cycle (separate search only; cosine after an in-run ramp) or "
        "constant (the peak after the warmup)",
    )
    p.add_argument(
        "--json",
        default=None,
        metavar="PATH",
        help="also write the outcome as JSON; '-': to stdout (the text goes to stderr)",
    )
    p.add_argument(
        "--plot",
        default=None,
        metavar="PATH",
        help="also draw the run (.png, .svg or .pdf): the search's loss-against-LR curve with the peak, "
        "and the LR and training loss at every step",
    )
    p.set_defaults(func=run)
    return p


def run(args: argparse.Namespace) -> int:
    """Handle ``lrkit auto``: print the summary and the final metric; EXIT_NO_SUGGESTION (3) when the
    search found no usable signal, EXIT_DIVERGED (4) when the divergence guard gave up (the --json
    written all the same, with its events). ``--json -``: the JSON on stdout, the text on stderr."""
    with json_output(args.json) as stdout:
        return _run(args, stdout)


def _run(args: argparse.Namespace, stdout: TextIO | None) -> int:
    import sys

    import torch

    from lrkit._paths import check_output_file, check_plot_file
    from lrkit._text import plural
    from lrkit._usercode import user_code
    from lrkit.auto import TaskDivergedError, spelled, train_task
    from lrkit.cli import check_search_optimizer, check_task
    from lrkit.finder import NoSuggestionError
    from lrkit.finder.cli import EXIT_NO_SUGGESTION
    from lrkit.tasks import get_task

    check_task(args.task, "--task")
    budget = args.budget  # as lrkit find's: a fraction of the planned steps, or steps (budget_type)
    if args.optimizer is not None:
        check_search_optimizer(args.optimizer, "lrkit auto")
    if args.json is not None and stdout is None:  # before the training ('' is refused, not skipped)
        check_output_file(args.json, "--json")
    if args.plot is not None:
        check_plot_file(args.plot, "--plot")
    # an unknown task, a module that does not import, a broken factory, loss or metric: all fail here,
    # before any training; an exception of your own code is shown as yours
    with user_code(f"--task {args.task!r}"):
        task = get_task(args.task)
        task.check(args.seed)
        parts = task.build(args.seed)
    if args.max_grad_norm is not None:
        parts.max_grad_norm = args.max_grad_norm
    if args.optimizer is not None:  # the task's optimizer and its hyper-parameters replaced, as lab's OPT
        parts.optimizer, parts.optimizer_params = args.optimizer.name, dict(args.optimizer.params)
    torch.manual_seed(args.seed)
    try:  # the search and the training run your task's code: what it raises is yours (status 1)
        with user_code(f"--task {args.task!r}"), spelled(SPELLING):
            out = train_task(
                parts, seed=args.seed, budget=budget, search=args.search, kind=args.kind, verbose=True,
                epochs=args.epochs, plot=args.plot, peak_factor=args.peak_factor,
            )  # fmt: skip
        if args.optimizer is not None:  # as written: adamw(weight_decay=0.1)
            out["optimizer"] = str(args.optimizer)
    except NoSuggestionError as exc:  # nothing was trained; the advice names this command's flags
        why = str(exc) if exc.result is None else exc.result.phrased_for(FLAGS).why_none
        print(f"lrkit auto: {why}", file=sys.stderr)
        print(f"lrkit auto: nothing trained (exit status {EXIT_NO_SUGGESTION})", file=sys.stderr)
        return EXIT_NO_SUGGESTION
    except TaskDivergedError as exc:  # the guard gave up; the advice names this command's flags
        clip, factor = parts.max_grad_norm, exc.outcome["peak_factor"]
        flags = {
            "lr": GUARD_FLAGS["lr"].format(factor=factor),
            "max_grad_norm": GUARD_FLAGS["max_grad_norm"]
            if clip is None
            else f"--max-grad-norm below {clip:g}",
        }
        print(
            f"lrkit auto: error: {exc.finding}; {exc.advice(flags)}, or look for what makes the "
            f"loss NaN/inf in the task's data, model or loss (training stopped: exit status {EXIT_DIVERGED})",
            file=sys.stderr,
        )
        if args.json:
            if args.optimizer is not None:
                exc.outcome["optimizer"] = str(args.optimizer)
            write_result(args.json, exc.outcome, stdout)
        return EXIT_DIVERGED
    print(
        f"{task.name} ({out['optimizer']}, {plural(out['epochs'], 'epoch')}): {parts.metric_name} "
        f"{out['metric']:.4f} "
        f"after {out['train_steps']} steps "
        f"(compute {out['compute']:.2f}x one training run, {plural(out['events'], 'guard rollback')})"
    )
    if args.plot:
        print(f"plot written to {args.plot}")
    if args.json:
        write_result(args.json, out, stdout)
    return 0
