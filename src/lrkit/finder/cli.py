"""``lrkit find``: run the LR range test on a built-in task or on your own model and data.

``lrkit.cli`` calls :func:`register` with its subparsers. torch and matplotlib are imported by the
handler, not when the parser is built.

Examples::

    lrkit find --task digits-mlp-adam --out lr_find.png
    lrkit find --model mypkg.models:make_model --data mypkg.data:make_loader --optimizer adamw --repeats 3

``--model MODULE:FACTORY`` names a function returning a ``torch.nn.Module``; ``--data MODULE:FACTORY``
a function returning the training loader (an iterable of batches, e.g. a ``DataLoader`` of ``(x, y)``).
The current directory is importable.
"""

from __future__ import annotations

import argparse
import importlib
import inspect
import math
import os
import sys
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager, redirect_stdout
from pathlib import Path
from typing import Any, TextIO

from lrkit._cliargs import (
    MAX_STEPS,
    OPTIMIZER_HELP,
    OptimizerArg,
    non_negative,
    number,
    positive_float,
    positive_int,
    seed,
    short,
    whole_number,
)
from lrkit._cliargs import optimizer as optimizer_arg
from lrkit._paths import check_output_file, check_plot_file, json_text, write_json
from lrkit._usercode import user_code, user_error
from lrkit.finder import core
from lrkit.finder.rules import RULES
from lrkit.scaling import LR_FREE
from lrkit.tasks.optimizers import OPTIMIZERS as _NAMED

__all__ = ["register", "run"]

LOSSES = ("cross_entropy", "mse", "l1", "nll")
#: ``--optimizer`` with ``--model``: the optimizers lrkit builds by name (lrkit.tasks.optimizers), less
#: those that set their own step size (there is no LR to search)
OPTIMIZERS = tuple(n for n in _NAMED if n not in LR_FREE)
#: what ``--model`` is tested with when the flag is not given (a ``--task`` brings its own)
MODEL_DEFAULTS: dict[str, Any] = {
    "loss": "cross_entropy",
    "optimizer": "sgd",
    "momentum": 0.9,
    "weight_decay": 0.0,
}


#: the exit status of ``lrkit find`` and ``lrkit auto`` when the range test found no usable signal:
#: neither success (0) nor an error (1: your code raised or the system refused; 2: bad input), so that a
#: script can retry with a larger budget or fall back to an LR grid
EXIT_NO_SUGGESTION = 3

#: how ``lrkit find`` sets what the finder's advice names (:meth:`FinderResult.phrased_for`); there is
#: no flag for a validation set, so the advice leaves it out. STEPS becomes the planned training steps
#: when they are known (PEAK is the suggestion)
FLAGS = {
    "start_lr": "--start-lr",
    "end_lr": "--end-lr",
    "num_steps": "--num-steps N",
    "batches_per_step": "--batches-per-step N",
    "repeats": "--repeats N",
    "budget": "--budget",
    "schedule": 'e.g. lrkit show "warmup(steps=5%) >> cosine(lr=PEAK)" --total STEPS',
}

#: what ``lrkit find --help`` says after the flags: the exit status, the output, examples
EPILOG = f"""\
exit status:
  0    a learning rate is suggested
  1    your code (--task MODULE:FUNCTION, --model, --data, --loss) raised (its
       traceback is printed), or the system refused (a file that cannot be
       written, out of memory)
  2    bad input (a flag, a path, a task), refused before the test runs;
       or data holding NaN or inf, met in the test (the batch is named)
  {EXIT_NO_SUGGESTION}    no suggestion: the curves show no usable signal; the reason and what
       to try (e.g. more --batches-per-step, a larger --budget) are printed,
       the last line on stderr, and the plot's title says it
  130  interrupted (Ctrl-C)

output: the result as text on stdout; --json PATH also writes it as JSON
(null for a number that is not finite); --json - writes the JSON to stdout
and the text to stderr. The plot (--out) shows the loss against the LR, each
rule's line and the suggestion, or why there is none. lrkit overwrites only
files it wrote.

examples:
  lrkit find --task digits-mlp-sgd --out lr_find.png --json lr_find.json
  lrkit find --task mypkg.tasks:my_task --repeats 3
  lrkit find --task digits-mlp-sgd --optimizer adam    # the task with Adam instead of its own
  lrkit find --task digits-mlp-sgd --optimizer 'adamw(weight_decay=0.1, betas=(0.9, 0.99))'
  lrkit find --model mypkg.models:make_model --data mypkg.data:make_loader --optimizer adamw
"""


def register(subparsers: Any) -> argparse.ArgumentParser:
    """Add the ``find`` subcommand to an argparse ``_SubParsersAction``; its ``func`` is :func:`run`."""
    from lrkit.tasks import TASKS  # the registry only: no torch

    p: argparse.ArgumentParser = subparsers.add_parser(
        "find",
        help="LR range test: suggest a learning rate from data",
        description="Run the LR range test and print the suggested learning rate (with the interval\n"
        "over repeats and every rule's suggestion); write the plot to --out.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    what = p.add_argument_group("what to test (--task, or --model with --data)")
    what.add_argument(
        "--task",
        help=f"a built-in task ({', '.join(TASKS)}) or your own as MODULE:FUNCTION (a function "
        "f(seed) -> lrkit.tasks.TaskParts)",
    )
    what.add_argument("--model", metavar="MODULE:FACTORY", help="function returning a torch.nn.Module")
    what.add_argument("--data", metavar="MODULE:FACTORY", help="function returning the train loader")
    # None: not given (a task brings its own loss and optimizer); MODEL_DEFAULTS resolves them for --model
    what.add_argument(
        "--loss",
        default=None,
        help=f"with --model: one of {', '.join(LOSSES)} or MODULE:FUNC (default {MODEL_DEFAULTS['loss']})",
    )
    what.add_argument(
        "--optimizer",
        type=optimizer_arg,
        default=None,
        help=f"one of {', '.join(OPTIMIZERS)}: replaces the task's optimizer (as in lrkit lab, tune and "
        f"auto){OPTIMIZER_HELP}; with --model, default {MODEL_DEFAULTS['optimizer']}",
    )
    what.add_argument(
        "--momentum",
        type=non_negative,
        default=None,
        help=f"with --model and --optimizer sgd: SGD momentum (default {MODEL_DEFAULTS['momentum']})",
    )
    what.add_argument(
        "--weight-decay",
        type=non_negative,
        default=None,
        help=f"with --model: weight decay (default {MODEL_DEFAULTS['weight_decay']})",
    )
    ramp = p.add_argument_group("the range test")
    ramp.add_argument(
        "--start-lr",
        type=positive_float,
        default=core.START_LR,
        help="first LR of the ramp (default %(default)g)",
    )
    ramp.add_argument(
        "--end-lr", type=positive_float, default=core.END_LR, help="last LR of the ramp (default %(default)g)"
    )
    ramp.add_argument(
        "--num-steps",
        type=whole_number(2, core.MAX_RUNGS),
        default=core.NUM_STEPS,
        metavar="N",
        help="rungs (LRs) per repeat; the test stops early when the loss blows up (default %(default)s)",
    )
    ramp.add_argument(
        "--mode",
        default="exp",
        metavar="{exp,linear}",
        help="how the LR grows from rung to rung: exp (geometric) or linear (default exp)",
    )
    ramp.add_argument(
        "--smoothing",
        type=number(0.0, inclusive=True, below=1.0),
        default=core.SMOOTHING,
        help="EMA factor of the smoothed loss, in [0, 1) (default %(default)g)",
    )
    ramp.add_argument(
        "--repeats",
        type=positive_int,
        default=3,
        metavar="N",
        help="repeats over seeds and batch orders; the suggestion is their median (default %(default)s)",
    )
    ramp.add_argument(
        "--seed",
        type=seed,
        default=0,
        help="seed of the model and the first repeat; repeat r seeds torch and the loader with seed + r "
        "(default 0)",
    )
    ramp.add_argument(
        "--rule",
        default="lrkit",
        metavar="{" + ",".join(RULES) + "}",
        help="the rule whose value is the suggestion (all are printed): lrkit (the centre of the curve's "
        "bottom / 10), steepest (steepest descent), minimum (LR at the lowest loss / 10) or valley "
        "(fastai's) (default lrkit)",
    )
    ramp.add_argument(
        "--batches-per-step",
        type=positive_int,
        default=1,
        metavar="N",
        help="optimizer steps per rung, their losses averaged: less noise for N times the steps (default 1)",
    )
    ramp.add_argument(
        "--accumulation-steps",
        type=positive_int,
        default=1,
        metavar="N",
        help="micro-batches per optimizer step (gradient accumulation), as your training does (default 1)",
    )
    ramp.add_argument(
        "--max-grad-norm",
        type=positive_float,
        default=None,
        metavar="C",
        help="clip the gradient norm to C at every step, as your training does (default: the task's; none)",
    )
    ramp.add_argument(
        "--budget",
        type=budget_type,
        default=None,
        help="escalation budget, the optimizer steps that retries of a test without signal may add: a "
        "fraction (<= 1) of the planned training steps, or a number of steps (default: 10%% of them or "
        "one epoch if larger; with --model, none unless --epochs is given)",
    )
    ramp.add_argument(
        "--epochs",
        type=positive_int,
        default=None,
        metavar="N",
        help="planned training epochs, which size the default --budget (default: the task's; with --model, "
        "none)",
    )
    out = p.add_argument_group("output")
    out.add_argument(
        "--out",
        "--plot",  # lrkit auto's name for its figure
        dest="out",
        default="lr_find.png",
        metavar="PATH",
        help="plot file, .png, .svg or .pdf (default lr_find.png; 'none' to skip); --plot is the same",
    )
    out.add_argument(
        "--json",
        default=None,
        metavar="PATH",
        help="also write the result (and every curve) as JSON; '-': to stdout (the text goes to stderr)",
    )
    p.set_defaults(func=run)
    return p


def _load(spec: str, flag: str) -> Callable[..., Any]:
    module, sep, attr = spec.partition(":")
    if not sep or not module or not attr:
        raise ValueError(f"{flag} must be MODULE:NAME, got {spec!r}")
    if module.endswith(".py") or module.startswith(".") or "/" in module or "\\" in module:
        stem = module.replace("\\", "/").rsplit("/", 1)[-1].removesuffix(".py").lstrip(".") or "MODULE"
        raise ValueError(  # as lrkit.tasks words it for --task
            f"{flag} {spec!r}: {module!r} is a file path; expected the module's import name, "
            f"'{stem}:{attr}', run from the file's directory or with that directory on PYTHONPATH"
        )
    if os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())
    try:
        obj = importlib.import_module(module)
    except ImportError as e:
        raise ValueError(f"{flag} {spec!r}: cannot import module {module!r} ({e})") from None
    except Exception as e:  # the module itself raised on import
        raise user_error(f"{flag} {spec!r}: importing {module!r}", e) from e
    for part in attr.split("."):
        if not hasattr(obj, part):
            raise ValueError(f"{flag} {spec!r}: module {module!r} has no attribute {attr!r}")
        obj = getattr(obj, part)
    if not callable(obj):
        raise ValueError(f"{flag} {spec!r}: {attr!r} is {type(obj).__name__}, not a function")
    return obj


def _call(spec: str, flag: str) -> Any:
    """Load the factory named by ``spec`` and call it with no arguments (its errors are the user's)."""
    factory = _load(spec, flag)
    try:
        inspect.signature(factory).bind()
    except TypeError:
        raise ValueError(
            f"{flag} {spec!r}: expected a function called with no arguments, got {inspect.signature(factory)}"
        ) from None
    except ValueError:  # no signature (some builtins): just call it
        pass
    with user_code(f"{flag} {spec!r}"):
        return factory()


def _check_factories(model: Any, loader: Any, args: argparse.Namespace) -> None:
    """What ``--model`` and ``--data`` returned: a torch module and a non-empty iterable of batches."""
    import torch

    if not isinstance(model, torch.nn.Module):
        raise TypeError(f"--model {args.model!r} returned {type(model).__name__}; expected a torch.nn.Module")
    if not any(p.requires_grad for p in model.parameters()):
        raise ValueError(
            f"--model {args.model!r} returned a {type(model).__name__} with no trainable parameters "
            f"({sum(1 for _ in model.parameters())} in all); expected a model with parameters to train"
        )
    if not isinstance(loader, Iterable) or isinstance(loader, (str, bytes, dict)):
        raise TypeError(
            f"--data {args.data!r} returned {type(loader).__name__}; expected the train loader "
            "(an iterable of batches, e.g. a torch DataLoader)"
        )
    from lrkit.finder._data import known_length

    if known_length(loader) == 0:
        raise ValueError(f"--data {args.data!r} returned an empty {type(loader).__name__}; expected batches")


def _check_first_loss(model: Any, loader: Any, loss_fn: Callable[..., Any], args: argparse.Namespace) -> Any:
    """The loader to test with, once the first batch is known to exist and the untrained model's loss on
    it to be finite, as ``--task`` checks it (:meth:`lrkit.tasks.Task.check`): a NaN there is bad input
    (status 2), which no learning rate fixes, not a curve without signal (3). One forward pass in eval
    mode under ``no_grad``: nothing the test starts from changes (each repeat reseeds the RNG). A
    one-shot iterator (a generator) is given back with its first batch in front: one-shot still."""
    import itertools

    import torch

    from lrkit.finder.torch_driver import default_forward

    it = iter(loader)
    batch = next(it, None)
    if batch is None:
        raise ValueError(f"--data {args.data!r} returned a {type(loader).__name__} that yielded no batches")
    if it is loader:  # its first batch is gone from it
        loader = (b for b in itertools.chain([batch], it))  # a generator, as the test's messages say
    mode = [(m, m.training) for m in model.modules()]
    model.eval()
    try:
        with torch.no_grad():
            loss = default_forward(model, batch, loss_fn)
    finally:
        for m, flag in mode:
            m.training = flag
    value = float(loss) if isinstance(loss, torch.Tensor) and loss.numel() == 1 else None
    if value is not None and not math.isfinite(value):  # a loss of another shape: find_lr names it
        raise ValueError(
            f"--loss {args.loss!r} gave {value} on the first batch of --data {args.data!r} with the "
            f"untrained --model {args.model!r}; expected a finite loss: check the data, the model and the "
            "loss (no learning rate fixes this)"
        )
    return loader


def _loss(name: str) -> Callable[..., Any]:
    import torch.nn.functional as F

    builtin: dict[str, Callable[..., Any]] = {
        "cross_entropy": F.cross_entropy,
        "mse": F.mse_loss,
        "l1": F.l1_loss,
        "nll": F.nll_loss,
    }
    if name in builtin:
        return builtin[name]
    if ":" in name:
        return _load(name, "--loss")
    raise ValueError(f"--loss must be one of {', '.join(LOSSES)} or MODULE:FUNC, got {name!r}")


def _optimizer(arg: OptimizerArg, params: Any, momentum: float, weight_decay: float) -> Any:
    """``arg`` built by lrkit.tasks.optimizers (torch's defaults, then its own keyword arguments), with
    ``--weight-decay`` and, for ``sgd``, ``--momentum`` (``momentum`` and ``nesterov`` bring their own
    0.9) where ``arg`` does not set them (:func:`_check_args` refuses both given)."""
    from lrkit.tasks.optimizers import make_optimizer

    return make_optimizer(
        arg.name, params, lr=1e-3, hyper_parameters=_built_params(arg, momentum, weight_decay)
    )


def _built_params(arg: OptimizerArg, momentum: float, weight_decay: float) -> dict[str, Any]:
    """The hyper-parameters :func:`_optimizer` builds ``arg`` with: ``--weight-decay`` and, for ``sgd``,
    ``--momentum``, under ``arg``'s own."""
    hp = {"weight_decay": weight_decay} | ({"momentum": momentum} if arg.name == "sgd" else {})
    return hp | arg.params


def find_on_task(
    task: Any,
    optimizer: str | None,
    params: Mapping[str, Any] | None = None,
    *,
    seed: int = 0,
    **options: Any,
) -> Any:
    """``task.find_lr`` with hyper-parameters: ``optimizer`` (None: the task's, ``params`` on top of its
    own) built with ``params`` (in place of the task's own, as the lab's ``optimizer_of``)."""
    return task.find_lr(seed=seed, optimizer=optimizer, optimizer_params=params, **options)


#: ``--json -``: the JSON on stdout, alone (what the command prints goes to stderr)
JSON_STDOUT = "-"


@contextmanager
def json_output(path: str | None) -> Iterator[TextIO | None]:
    """With ``--json -`` (``path`` :data:`JSON_STDOUT`), stdout, kept for the JSON alone: what the
    command prints goes to stderr meanwhile; else None (no JSON, or a file)."""
    if path != JSON_STDOUT:
        yield None
        return
    from .._terminal import stdout as _stdout

    out = _stdout()  # a closed stdout (>&-): the JSON is dropped, as print drops what it writes then
    with redirect_stdout(sys.stderr):
        yield out


def write_result(path: str, data: dict[str, Any], stdout: TextIO | None) -> None:
    """``data`` as lrkit's JSON (:func:`lrkit._paths.write_json`) to ``stdout`` (``--json -``,
    :func:`json_output`) or to the file ``path``, said on stdout."""
    if stdout is not None:
        stdout.write(json_text(data) + "\n")
        return
    write_json(path, data)
    print(f"result written to {path}")


def run(args: argparse.Namespace) -> int:
    """Handle ``lrkit find``: print the result, write the plot (and JSON); return the exit code."""
    with json_output(args.json) as stdout:
        return _run(args, stdout)


def _run(args: argparse.Namespace, stdout: TextIO | None) -> int:
    _check_args(args)  # every flag, before anything is imported, built or run
    plot = args.out.lower() != "none"  # '' is refused by the check, as every command's --out is
    if plot:  # output paths are checked before the test runs
        check_plot_file(args.out, "--out")
    if args.json is not None and stdout is None:
        check_output_file(args.json, "--json")
        if plot and Path(args.json).resolve() == Path(args.out).resolve():  # the JSON would replace the plot
            raise ValueError(
                f"--json {args.json!r} is the file --out writes the plot to; give the JSON its own name "
                "(e.g. lr_find.json)"
            )
    options: dict[str, Any] = {
        "start_lr": args.start_lr,
        "end_lr": args.end_lr,
        "num_steps": args.num_steps,
        "mode": args.mode,
        "smoothing": args.smoothing,
        "repeats": args.repeats,
        "seed": args.seed,
        "rule": args.rule,
        "accumulation_steps": args.accumulation_steps,
        "batches_per_step": args.batches_per_step,
    }
    if args.max_grad_norm is not None:  # else the task's own (Task.find_lr), or none
        options["max_grad_norm"] = args.max_grad_norm
    if args.task is not None:
        from lrkit.cli import check_task
        from lrkit.tasks import get_task

        check_task(args.task, "--task")
        with user_code(f"--task {args.task!r}"):  # imports your module, builds the task: your code
            task = get_task(args.task)
            task.check(args.seed)  # a NaN first loss, a loss without gradient, ...: named, not "no signal"
            title = f"LR range test on {task.name} ({args.optimizer or task.optimizer})"
            # the task's budget, read from the build check() made (no build more)
            epochs = task.epochs if args.epochs is None else args.epochs
            planned: int | None = epochs * task.steps_per_epoch
            name, params = (None, {}) if args.optimizer is None else args.optimizer
            result = find_on_task(task, name, params, **options, **_budget(args, planned))
    else:
        from lrkit.finder import find_lr
        from lrkit.finder._data import known_length

        loss_fn = _loss(args.loss)  # a bad MODULE:FUNC fails before your model is built
        model = _call(args.model, "--model")
        loader = _call(args.data, "--data")
        _check_factories(model, loader, args)
        opt = _optimizer(args.optimizer, model.parameters(), args.momentum, args.weight_decay)
        title = f"LR range test on {args.model} ({args.optimizer})"
        batches = known_length(loader)  # None: a loader without a length (a stream) plans no budget
        planned = None if args.epochs is None or batches is None else args.epochs * batches
        budget = _budget(args, planned)
        # the test runs your model, loader and loss: what they raise is yours (1, with your traceback),
        # not bad input (2); lrkit's own checks of what they give pass through
        custom_loss = f" and --loss {args.loss!r}" if ":" in args.loss else ""
        with user_code(f"--model {args.model!r} with --data {args.data!r}{custom_loss}"):
            loader = _check_first_loss(model, loader, loss_fn, args)
            result = find_lr(model, opt, loader, loss_fn, **options, **budget)
    # its advice names this command's flags, and the schedule the planned steps (optimizer steps: one per
    # batch unless gradients are accumulated)
    total = "STEPS" if planned is None or args.accumulation_steps > 1 else str(planned)
    result = result.phrased_for(FLAGS | {"schedule": FLAGS["schedule"].replace("STEPS", total)})
    print(result)
    if plot:
        result.plot(args.out, title=title)
        print(f"plot written to {args.out}")
    if args.json is not None:
        write_result(args.json, result.to_dict(), stdout)
    if result.suggestion is None:  # no usable signal: neither a success nor an error
        print(
            f"lrkit find: no learning rate suggested (exit status {EXIT_NO_SUGGESTION})"
            + (f"; {result.next_step}" if result.next_step else ""),
            file=sys.stderr,
        )
        return EXIT_NO_SUGGESTION
    return 0


#: flags that configure the loader, loss and optimizer of ``--model``; a ``--task`` brings its own (its
#: optimizer may be replaced by name, ``--optimizer``, with torch's defaults, as lab, tune and auto do)
MODEL_FLAGS = ("data", "loss", "momentum", "weight_decay")


def _check_args(args: argparse.Namespace) -> None:
    """Refuse bad flags, naming the flag, with the finder's own checks; resolve --model's defaults."""
    from lrkit.cli import check_search_optimizer

    if (args.task is None) == (args.model is None):
        raise ValueError("give either --task NAME or --model MODULE:FACTORY with --data, not both or neither")
    if args.task is not None:
        for name in MODEL_FLAGS:
            if getattr(args, name) is not None:
                flag = "--" + name.replace("_", "-")
                raise ValueError(
                    f"{flag} {getattr(args, name)!r} goes with --model, not with --task: a task brings its "
                    f"own optimizer and loss (drop {flag}, or test --model MODULE:FACTORY with --data)"
                )
        if args.optimizer is not None:
            check_search_optimizer(args.optimizer, "lrkit find")
    else:
        if args.data is None:
            raise ValueError("--model needs --data MODULE:FACTORY (a function returning the train loader)")
        given_momentum = args.momentum is not None
        for flag in ("momentum", "weight_decay"):  # a flag and --optimizer's keyword: one value each
            if (
                getattr(args, flag) is not None
                and args.optimizer is not None
                and flag in args.optimizer.params
            ):
                raise ValueError(
                    f"--{flag.replace('_', '-')} {getattr(args, flag)!r} and --optimizer "
                    f"{str(args.optimizer)!r} both set {flag}; give it once"
                )
        for name, default in MODEL_DEFAULTS.items():
            if getattr(args, name) is None:
                setattr(args, name, default)
        if isinstance(args.optimizer, str):
            args.optimizer = optimizer_arg(args.optimizer)
        # checked as it is built: 'sgd(nesterov=true)' takes --momentum's default 0.9
        built = OptimizerArg(
            args.optimizer.name, _built_params(args.optimizer, args.momentum, args.weight_decay)
        )
        try:
            check_search_optimizer(built, "lrkit find")
        except ValueError as exc:
            inner = str(exc).removeprefix(f"--optimizer {str(built)!r}: ")
            if inner == str(exc):  # not about the hyper-parameters (the name, an LR-free optimizer)
                raise
            flags = [
                f"--{k.replace('_', '-')} {v!r}"
                for k, v in built.params.items()
                if k not in args.optimizer.params
            ]
            raise ValueError(
                f"--optimizer {str(args.optimizer)!r}, built with {' and '.join(flags)}: {inner}"
            ) from None
        if given_momentum and args.optimizer.name != "sgd":
            raise ValueError(_momentum_elsewhere(args.optimizer, args.momentum))
        if args.loss not in LOSSES and ":" not in args.loss:
            raise ValueError(f"--loss must be one of {', '.join(LOSSES)} or MODULE:FUNC, got {args.loss!r}")
    if args.rule not in RULES:
        raise ValueError(f"--rule must be one of {', '.join(RULES)}, got {args.rule!r}")
    if args.mode not in ("exp", "linear"):
        raise ValueError(f"--mode must be 'exp' or 'linear', got {args.mode!r}")
    # each number was checked as it was parsed (lrkit._cliargs); what is left relates two flags
    if not args.end_lr > args.start_lr:
        raise ValueError(f"--end-lr must be greater than --start-lr ({args.start_lr!r}), got {args.end_lr!r}")
    if isinstance(args.budget, float) and args.model is not None and args.epochs is None:
        raise ValueError("--budget as a fraction needs the planned training: give --epochs")


def _momentum_elsewhere(arg: OptimizerArg, momentum: float) -> str:
    """Why ``--momentum`` is refused with ``--optimizer arg`` (not ``sgd``), and what to write instead."""
    from lrkit.tasks.optimizers import format_optimizer

    head = f"--momentum {momentum!r} is the flag of --optimizer sgd, not of {str(arg)!r}"
    factory = _NAMED[arg.name]  # a name check_search_optimizer took
    try:
        known = factory.hyper_parameters()
    except ImportError:
        known = []
    if known is None or "momentum" in known:  # rmsprop, momentum, nesterov: their own keyword
        fix = format_optimizer(arg.name, {**arg.params, "momentum": momentum})
        own = factory.defaults.get("momentum")
        sets = f" ({arg.name} sets momentum={own!r} itself)" if own is not None else ""
        return f"{head}{sets}; write --optimizer {fix!r}"
    return f"{head}: {arg.name} has no momentum setting (it takes {', '.join(known)}); drop --momentum"


def budget_type(text: str) -> float | int:
    """``--budget`` (lrkit find's and lrkit auto's), an argparse ``type=``: a fraction in (0, 1] of the
    planned steps, kept a float, or a whole number of steps > 1, made an int (as find_lr and lrkit.auto
    count it)."""
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if 0.0 < value <= 1.0:
        return value
    if 1.0 < value <= MAX_STEPS and value.is_integer():
        return int(value)
    raise argparse.ArgumentTypeError(
        f"expected a fraction in (0, 1] or a whole number of steps up to 2**53, got {short(text)}"
    )


def _budget(args: argparse.Namespace, planned: int | None) -> dict[str, Any]:
    """find_lr's planned_steps and budget from --epochs/--budget (a fraction <= 1, or steps)."""
    budget = args.budget  # a fraction (float) or steps (int): see budget_type
    if isinstance(budget, int):
        return {"planned_steps": planned, "budget": budget}
    if budget is not None and planned is None:
        raise ValueError("--budget as a fraction needs the planned training: give --epochs")
    return {"planned_steps": planned, "budget": budget}
