"""The ``lrkit`` command line: ``schedules``, ``show``, ``plot``, ``recipes``, ``scale``, ``gallery``,
``lab``, ``demo`` and ``find``.

Errors print one line (``lrkit CMD: error: ...``) naming the flag and the value, and no traceback: status 2
for bad input, 1 when the system refuses (a file cannot be written, out of memory) or your own code
(``--model mod:factory``, ``--task mod:func``) raises; your code's traceback follows the lrkit line,
without lrkit's frames. Status 3: the LR range test found no usable signal, so no LR is suggested
(``find``, ``auto``, ``demo``); 130: interrupted (Ctrl-C). A warning the warnings filter turns into an
error (``-W error``, ``PYTHONWARNINGS=error``) is one such line too: 2 for lrkit's own (it says what the
input leads to), 1 for another library's. From Python, ``main([...])`` returns the status.
``lrkit --traceback COMMAND ...`` (or ``LRKIT_TRACEBACK=1``) shows Python's whole traceback instead of the
one line, lrkit's frames included, with the same exit status: for a bug report, or when an error looks
like lrkit's own fault rather than your input's.
"""

from __future__ import annotations

import argparse
import codecs
import json
import math
import os
import re
import sys
import traceback
import warnings
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, suppress
from contextvars import ContextVar
from dataclasses import MISSING, fields
from pathlib import Path
from typing import Any, NoReturn

import numpy as np

from . import __version__
from ._cliargs import (
    MAX_STEPS,
    PATH_METAVARS,
    OptimizerArg,
    positive_float,
    positive_int,
    short,
    steps_per_epoch,
    whole_number,
)
from ._cliargs import path as path_arg
from ._paths import check_output_dir, check_plot_file
from ._terminal import stdout
from ._text import did_you_mean
from ._usercode import UserCodeError
from .plot import MAX_STEPS as MAX_PLOT_STEPS  # matplotlib is imported only when drawing
from .plot import is_multiplier
from .schedules import REGISTRY, Schedule
from .schedules.base import run_fit_messages
from .schedules.duration import Duration
from .spec import load

EPILOG = """SPEC is a schedule in the compact form, e.g. "warmup(steps=500) >> cosine(lr=3e-4, min_lr=3e-5)",
or a .json/.yaml/.toml file. Durations: 500 (steps), 3ep (epochs), 10% (of --total), rest.
Run `lrkit schedules` for every schedule and its parameters."""


_plot_total = whole_number(1, MAX_PLOT_STEPS, " (every step is evaluated)")
#: the gallery draws about 30 schedules: at 10**6 steps each it takes about half a minute
GALLERY_STEPS = 1_000_000
_gallery_total = whole_number(1, GALLERY_STEPS, " (every step of about 30 schedules is evaluated)")


def _steps_list(text: str) -> list[float]:
    out = []
    for part in text.split(","):
        try:
            v = float(part)
        except ValueError:
            v = math.nan
        if not 0 <= v <= MAX_STEPS:  # also NaN
            raise argparse.ArgumentTypeError(
                f"expected comma-separated steps from 0 to 2**53 like 0,100,1000, got {short(part.strip())}"
                + (f" in {short(text)}" if part != text else "")
            )
        out.append(v)
    return out


def check_task(name: str, flag: str = "--task") -> str:
    """``name`` if it can name a task (a built-in one, or ``MODULE:FUNCTION``); else a ValueError that
    names ``flag``. Whether the module imports is found out when the task is loaded."""
    from .tasks import TASKS

    module, sep, function = name.partition(":")
    if name in TASKS or (sep and module and function and ":" not in function):
        return name
    raise ValueError(
        f"{flag} must be a built-in task ({', '.join(sorted(TASKS))}) or your own as MODULE:FUNCTION "
        f"(a factory f(seed) -> TaskParts), got {name!r}"
    )


def refuse_lr_free(
    optimizer: str, command: str, flag: str = "--optimizer", fix: str = "give an optimizer"
) -> None:
    """A ValueError naming ``flag`` when ``optimizer`` estimates its own step size (Prodigy): there is no
    learning rate for ``command`` to search; ``fix`` says how to give another."""
    from .scaling import LR_FREE
    from .tasks.optimizers import OPTIMIZERS

    if optimizer in LR_FREE:
        raise ValueError(
            f"{flag} {optimizer} estimates its own step size (its lr only multiplies it, 1.0 by default): "
            f"there is no learning rate for {command} to search; {fix} whose lr is the step "
            f"size ({', '.join(o for o in OPTIMIZERS if o not in LR_FREE)})"
        )


def check_search_optimizer(arg: OptimizerArg, command: str) -> None:
    """``--optimizer`` of a command that searches the LR (find, auto, tune): a name lrkit builds
    (:func:`~lrkit.tasks.optimizers.check_optimizer_name`), not one that sets its own step size
    (:func:`refuse_lr_free`), with hyper-parameters checked as the lab checks a strategy's
    (:func:`~lrkit.tasks.optimizers.check_optimizer`: names, kinds, one step on a stand-in tensor)."""
    from .tasks.optimizers import check_optimizer, check_optimizer_name

    check_optimizer_name(arg.name, "--optimizer")
    refuse_lr_free(arg.name, command)
    try:
        check_optimizer(arg.name, arg.params, arg.name)
    except ValueError as exc:
        raise ValueError(f"--optimizer {str(arg)!r}: {exc}") from None


def _resolve(spec: str, total: int | None, spe: float | None) -> Schedule:
    schedule = load(spec)
    s = schedule.resolve(total_steps=total, steps_per_epoch=spe)
    if s.unresolved:
        # which flag is missing: the one whose value (a stand-in) would resolve the schedule
        missing = []
        if total is None and schedule.resolve(steps_per_epoch=spe or 1.0).unresolved:
            missing.append("--total (for fractions and 'rest')")
        if spe is None and schedule.resolve(total_steps=total or MAX_STEPS).unresolved:
            missing.append("--steps-per-epoch (for durations in epochs)")
        problem = s.unresolved.split("; call")[0]
        raise ValueError(f"{spec!r}: {problem}" + (f"; pass {' and '.join(missing)}" if missing else ""))
    fits = (
        ()
        if total is None
        else run_fit_messages(
            s,
            total,
            shown=repr(spec),
            run=f"--total {total:,}",
            fix="give its lengths as fractions of the run, '100%' or 'rest', to fit any --total",
            fix_short="If it should span the run, give its lengths as fractions of it ('100%' or 'rest') "
            "to fit any --total; if they were counted in epochs, write them in epochs ('{ends}ep', with "
            "--steps-per-epoch)",
        )
    )
    for category, text in fits:
        warnings.warn(text, category, stacklevel=2)
    return s


def cmd_show(args: argparse.Namespace) -> int:
    s = _resolve(args.spec, args.total, args.steps_per_epoch)
    total = args.total
    if total is None and s.length_steps is not None:  # the schedule's own length: 'cosine(lr=0.1, steps=100)'
        total = max(1, round(s.length_steps))
    if args.at is not None:
        at = args.at
    elif total is not None:
        at = sorted({round(total * k / 10) for k in range(11)})
    else:
        raise ValueError(
            f"{args.spec!r} runs forever (it has no length in steps): give --total N (to show 11 points "
            "across the run) or --at 0,100,..."
        )
    with np.errstate(over="ignore", invalid="ignore"):  # a non-finite LR is reported below
        lrs = np.asarray(s(np.asarray(at, dtype=np.float64)), dtype=np.float64)
    bad = [(t, float(v)) for t, v in zip(at, lrs) if not math.isfinite(v)]
    if bad:
        raise ValueError(f"{s} gives lr = {bad[0][1]} at step {_num(bad[0][0])}; expected a finite number")
    # a bare warmup ramps a multiplier to 1, which the adapters and the lab refuse as LRs: say so
    column = "multiplier" if is_multiplier(s) else "lr"
    if args.json:
        print(
            json.dumps(
                {
                    "spec": str(s),
                    "total_steps": total,
                    "steps_per_epoch": args.steps_per_epoch,
                    "points": [{"step": _num(t), column: float(v)} for t, v in zip(at, lrs)],
                },
                indent=2,
            )
        )
        return 0
    print(f"# {s}")
    if column == "multiplier":
        print(
            "# a multiplier rising to 1, not an LR: follow it with the LR to reach "
            "(warmup(100) >> constant(3e-4)) or give it lr=..."
        )
    width = max(len(f"{_num(t)}") for t in at)
    print(f"{'step':>{max(width, 4)}}  {column}")
    for t, v in zip(at, lrs):
        print(f"{_num(t):>{max(width, 4)}}  {float(v):.6g}")
    return 0


def _num(t: float) -> int | float:
    return int(t) if float(t).is_integer() else t


def cmd_plot(args: argparse.Namespace) -> int:
    from .plot import plot_schedules

    check_plot_file(args.out, "--out")
    for spec in args.specs:  # every spec is checked before anything is drawn
        _resolve(spec, args.total, args.steps_per_epoch)
    _check_title(args.title)
    plot_schedules(  # on its own canvas, not pyplot's: nothing is left open where main runs in a notebook
        args.specs, args.total, args.out, log=args.log, steps_per_epoch=args.steps_per_epoch, title=args.title
    )
    print(f"wrote {args.out}")
    return 0


def _check_title(title: str | None) -> None:
    """``--title`` drawn once on its own: matplotlib reads ``$...$`` as math, and a title it cannot parse
    (``'$x^$'``) is a ValueError naming the flag, not matplotlib's parser error on four lines."""
    if title is None:
        return
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    from .plot import hangul_fallback

    try:
        with hangul_fallback():  # as the plot draws it: a Hangul title is no missing glyph
            fig = Figure()
            fig.suptitle(title)
            FigureCanvasAgg(fig).draw()  # type: ignore[no-untyped-call]
    except ValueError as exc:
        last = str(exc).strip().splitlines()[-1] if str(exc).strip() else type(exc).__name__
        found = re.search(r"found (.+?)\s*\(at char (\d+)\)", last)  # pyparsing's 40-alternative list
        detail = f"at character {found[2]}: found {found[1]}" if found else last[:160]
        raise ValueError(
            f"--title {title!r}: matplotlib cannot draw it ({detail}); it reads $...$ as math: write a "
            "dollar sign as \\$"
        ) from None


def cmd_schedules(args: argparse.Namespace) -> int:
    for name in sorted(REGISTRY):
        cls = REGISTRY[name]
        print(f"{name}: {cls.summary}")
        for f in fields(cls):
            if f.default is MISSING:
                default = "required"
            else:
                d = f.default
                default = "default " + (
                    repr(Duration.parse(d).to_data())
                    if f.metadata.get("kind") == "duration" and d is not None
                    else repr(d)
                )
            doc = f.metadata.get("doc", "")
            print(f"    {f.name:<16} {doc}" + ("" if "default" in doc else f" ({default})"))
        print(f"    e.g. {cls.example}")
    return 0


def _setting(text: str) -> tuple[str, object]:
    """``KEY=VALUE`` of ``lrkit recipes --set``: VALUE an int, a float, a comma list of them (a tuple)
    or else a string (a duration such as ``10%`` or ``5ep``)."""
    key, sep, raw = text.partition("=")
    if not sep or not key.strip() or not raw.strip():
        raise ValueError(f"--set: expected KEY=VALUE (e.g. batch=1024), got {text!r}")

    def number(v: str) -> object:
        for kind in (int, float):
            try:
                return kind(v)
            except ValueError:
                pass
        return v

    parts = [number(v.strip()) for v in raw.split(",")]
    return key.strip(), tuple(parts) if "," in raw else parts[0]


def cmd_recipes(args: argparse.Namespace) -> int:
    from .recipes import RECIPES, get_recipe

    settings: dict[str, object] = {}
    for key, value in (_setting(s) for s in args.set):
        if key in settings:
            raise ValueError(f"--set: {key} is given twice ({settings[key]!r} and {value!r}); give it once")
        settings[key] = value
    if settings and args.name is None:
        raise ValueError("--set needs one recipe NAME (the parameters are each recipe's own)")
    if args.name is not None:  # one value for a list parameter (milestones=80) is a list of one
        defaults = get_recipe(args.name).parameters()
        settings = {
            k: (v,) if isinstance(defaults.get(k), tuple) and not isinstance(v, tuple) else v
            for k, v in settings.items()
        }
    for name in list(RECIPES) if args.name is None else [args.name]:
        r = get_recipe(name)
        schedule = r(**settings)  # a bad setting is refused before anything is printed
        print(f"{r.name}: {r.describe(**settings)} ({r.reference})")
        if settings:
            print(f"    with {', '.join(f'{k}={v!r}' for k, v in settings.items())}:")
        print(f"    {schedule}")
    if args.name is not None and not settings:
        print(
            "    parameters (--set KEY=VALUE): "
            + ", ".join(f"{n}={d!r}" for n, d in get_recipe(args.name).parameters().items())
        )
    return 0


def cmd_scale(args: argparse.Namespace) -> int:
    from .scaling import LR_FREE, check_optimizer, scale_lr

    if args.rule is None or args.optimizer.lower() in LR_FREE:  # with --rule any name goes, as in scale_lr
        check_optimizer(args.optimizer, "--optimizer")
    try:
        scaled = scale_lr(
            args.lr,
            args.base_batch,
            args.batch,
            rule=args.rule,
            optimizer=args.optimizer,
            accumulation_steps=args.accumulation_steps,
            devices=args.devices,
        )
    except ValueError as exc:
        flags = f"--lr {args.lr!r} --base-batch {args.base_batch} --batch {args.batch}"
        flags += "".join(
            f" --{flag} {v}"
            for flag, v in (("accumulation-steps", args.accumulation_steps), ("devices", args.devices))
            if v != 1
        )
        raise ValueError(f"{flags}: {str(exc).removeprefix('scale_lr: ')}") from None
    print(scaled)
    return 0


def cmd_gallery(args: argparse.Namespace) -> int:
    from .plot import gallery

    check_plot_file(args.out, "--out")
    p = gallery(Path(args.out), total_steps=args.total)
    print(f"wrote {p}")
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from .demo import run_demo

    out = check_output_dir(args.out, "--out")  # '' refused, not the current dir
    return run_demo(out, quick=args.quick, lang=args.lang)


#: the command :func:`main` is running (``"lab"``, ``"tune"``, ...), for a step several commands share
_COMMAND: ContextVar[str | None] = ContextVar("lrkit_command", default=None)


def running_command(default: str) -> str:
    """The command :func:`main` is running, as its messages name it (``lrkit tune``, which runs a lab);
    ``lrkit {default}`` outside main."""
    return f"lrkit {_COMMAND.get() or default}"


class _Parser(argparse.ArgumentParser):
    """argparse's parser, whose errors are one line as lrkit's own are (``lrkit show: error: --total:
    expected ...``), not the usage block and then ``argument --total: ...``. A flag is read only as
    written: argparse's prefix matching would take ``--steps 0,250`` for ``--steps-per-epoch``."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("allow_abbrev", False)
        super().__init__(*args, **kwargs)

    def error(self, message: str) -> NoReturn:
        message = re.sub(r"^argument ([^:]+): ", r"\1: ", message)
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(
        prog="lrkit",
        description="Learning-rate schedules, an LR finder and a lab.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--version", action="version", version=f"lrkit {__version__}")
    p.add_argument(
        "--traceback",
        action="store_true",
        help="on an error, show Python's whole traceback instead of one line (also LRKIT_TRACEBACK=1);"
        " for a bug report",
    )
    sub = p.add_subparsers(dest="command", metavar="COMMAND")  # none: main prints the help

    common = _Parser(add_help=False)
    common.add_argument(
        "--steps-per-epoch",
        type=steps_per_epoch,
        metavar="M",
        help="steps per epoch, for durations given in epochs (3ep)",
    )

    sp = sub.add_parser(
        "show",
        parents=[common],
        help="print the LR at given steps",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sp.add_argument("spec", metavar="SPEC", help="a schedule spec or a .json/.yaml/.toml file")
    sp.add_argument("--total", type=positive_int, metavar="N", help="total steps of the run")
    sp.add_argument(
        "--at",
        "--steps",
        type=_steps_list,
        metavar="STEPS",
        help="comma-separated steps (default: 11 points)",
    )
    sp.add_argument("--json", action="store_true", help="print JSON")
    sp.set_defaults(func=cmd_show)

    pp = sub.add_parser(
        "plot",
        parents=[common],
        help="plot schedules overlaid into a PNG/SVG",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    pp.add_argument("specs", nargs="+", metavar="SPEC", help="one or more schedule specs")
    pp.add_argument("--total", type=_plot_total, required=True, metavar="N", help="total steps to plot")
    pp.add_argument("--out", required=True, metavar="FILE", help="output file (.png, .svg or .pdf)")
    pp.add_argument("--log", action="store_true", help="log scale for the LR axis")
    pp.add_argument("--title", help="figure title")
    pp.set_defaults(func=cmd_plot)

    sc = sub.add_parser("schedules", help="list every schedule with its parameters")
    sc.set_defaults(func=cmd_schedules)

    rp = sub.add_parser("recipes", help="well-known schedules from the literature, as specs")
    rp.add_argument("name", nargs="?", help="one recipe (default: all)")
    rp.add_argument(
        "--set",
        nargs="+",
        default=[],
        metavar="KEY=VALUE",
        help="the recipe's parameters instead of its defaults, e.g. resnet_imagenet --set batch=1024 "
        "milestones=30,60,80; bert_finetune --set lr=3e-5 warmup=6%%",
    )
    rp.set_defaults(func=cmd_recipes)

    from .scaling import _ADAPTIVE, _SGD

    bp = sub.add_parser("scale", help="scale a tuned LR to another batch size (linear or sqrt rule)")
    bp.add_argument("--lr", type=positive_float, required=True, help="the LR tuned at --base-batch")
    bp.add_argument(
        "--base-batch",
        type=positive_int,
        required=True,
        metavar="B",
        help="the effective batch it was tuned at (per device x accumulation steps x devices)",
    )
    bp.add_argument(
        "--batch", type=positive_int, required=True, metavar="B", help="the new batch, per device and pass"
    )
    bp.add_argument(
        "--accumulation-steps",
        type=positive_int,
        default=1,
        metavar="K",
        help="micro-batches per optimizer step (default: %(default)s)",
    )
    bp.add_argument(
        "--devices",
        type=positive_int,
        default=1,
        metavar="N",
        help="data-parallel devices (default: %(default)s)",
    )
    bp.add_argument("--rule", choices=("linear", "sqrt"), help="default: linear for SGD, sqrt for adaptive")
    bp.add_argument(
        "--optimizer",
        default="sgd",
        help=f"{', '.join(_SGD)} (linear rule); {', '.join(_ADAPTIVE)} (sqrt rule); with --rule, any name "
        "(default: %(default)s)",
    )
    bp.set_defaults(func=cmd_scale)

    gp = sub.add_parser("gallery", help="plot every strategy on one page")
    gp.add_argument(
        "--out", default="lrkit-gallery.png", metavar="FILE", help="output file (default: %(default)s)"
    )
    gp.add_argument(
        "--total", type=_gallery_total, default=10_000, metavar="N", help="steps (default: %(default)s)"
    )
    gp.set_defaults(func=cmd_gallery)

    from .lab import cli as lab_cli

    lab_cli.register(sub)

    dp = sub.add_parser(
        "demo", help="the main job: gallery, LR finder and strategies side by side on a real task"
    )
    dp.add_argument(
        "--out", default="lrkit-demo", metavar="DIR", help="output directory (default: %(default)s)"
    )
    dp.add_argument("--quick", action="store_true", help="fewer epochs, for a fast look")
    lab_cli.add_lang(dp)
    dp.set_defaults(func=cmd_demo)

    from .finder import cli as finder_cli

    finder_cli.register(sub)
    from . import auto_cli

    auto_cli.register(sub)
    from .tune import cli as tune_cli

    tune_cli.register(sub)
    _expand_paths(p)
    return p


def _expand_paths(parser: argparse.ArgumentParser) -> None:
    """Every argument of ``parser`` and its commands that names a path (its metavar is one of
    :data:`lrkit._cliargs.PATH_METAVARS`) takes the type :func:`lrkit._cliargs.path`: ``~`` expanded."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for command in action.choices.values():
                _expand_paths(command)
        elif action.metavar in PATH_METAVARS and action.type is None:
            action.type = path_arg


def _unrecognized(parser: argparse.ArgumentParser, command: str | None, unknown: list[str]) -> NoReturn:
    """Refuse arguments no parser took, naming the closest flag of ``command`` to the first of them."""
    subs = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    owner: argparse.ArgumentParser = subs[0].choices.get(command, parser) if subs and command else parser
    flag = next((u.split("=", 1)[0] for u in unknown if u.startswith("--")), None)
    known = [
        o
        for a in [*owner._actions, *parser._actions]
        for o in a.option_strings
        if o.startswith("--") and o not in ("--help", "--version")
    ]
    longer = [o for o in known if flag and o.startswith(flag)]  # what argparse's prefix matching took
    hint = (
        f" (did you mean {longer[0]!r}?)" if len(longer) == 1 else did_you_mean(flag, known) if flag else ""
    )
    owner.error(f"unrecognized arguments: {' '.join(unknown)}{hint}")


#: which extra brings a missing module
EXTRAS = {
    "torch": "lab",
    "sklearn": "lab",
    "matplotlib": "lab",
    "array_api_compat": "torch",
    "jax": "jax",
    "optax": "jax",
    "keras": "keras",
    "yaml": "spec",
    "tomli_w": "spec",
    "optuna": "lab",
    "mnist1d": "lab",
    "schedulefree": "lab",
    "prodigyopt": "lab",
    "tqdm": "lab",
}


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command ``argv`` (default: ``sys.argv[1:]``); return its exit status, argparse's errors
    (2), ``--help`` and ``--version`` (0) included: it does not raise SystemExit."""
    with _tolerant_output():
        return _main(argv)


def _escape_or_backslash(exc: UnicodeError) -> tuple[str | bytes, int]:
    """The error handler ``surrogateescape`` becomes while a command runs: the bytes a surrogate escape
    stands for (a file name read from the system), and any other character the encoding lacks as
    ``backslashreplace`` writes it."""
    try:
        return codecs.lookup_error("surrogateescape")(exc)
    except UnicodeError:
        return codecs.backslashreplace_errors(exc)


codecs.register_error("lrkit.surrogateescape", _escape_or_backslash)

#: the error handlers of a text stream that raise on a character its encoding lacks, and what each
#: becomes while a command runs: ``strict`` (a redirected stream, PYTHONIOENCODING=ascii) and
#: ``surrogateescape`` (Python's stdio under a C or POSIX locale without UTF-8 mode) included
_TOLERANT = {
    "strict": "backslashreplace",
    "surrogatepass": "backslashreplace",
    "surrogateescape": "lrkit.surrogateescape",
}


@contextmanager
def _tolerant_output() -> Iterator[None]:
    """While a command runs, stdout and stderr write a character their encoding lacks as an escape
    (``\\u2014``) instead of raising UnicodeEncodeError after the command's files are written: a
    console or a redirected stream in cp1252, cp949 or ASCII (``PYTHONIOENCODING=ascii``), or a C locale
    (``LC_ALL=C``: ``surrogateescape``, which raises too). Their error handling is put back afterwards
    (``main`` may be called from a notebook)."""
    changed = []
    for stream in (sys.stdout, sys.stderr):
        errors = getattr(stream, "errors", None)
        if errors in _TOLERANT and hasattr(stream, "reconfigure"):
            try:
                stream.reconfigure(errors=_TOLERANT[errors])
            except (OSError, ValueError):  # closed, or its buffered text cannot be flushed
                continue
            changed.append((stream, errors))
    try:
        yield
    finally:
        for stream, errors in changed:
            with suppress(OSError, ValueError):  # a reader that has gone: the stream stays as it is
                stream.reconfigure(errors=errors)


def _main(argv: Sequence[str] | None) -> int:
    parser = build_parser()
    try:  # argparse ends with SystemExit: its errors (2), --help and --version (0); returned, as lrkit's
        args, unknown = parser.parse_known_args(argv)
        if "--traceback" in unknown:  # also after the command, where people add it to a failed command line
            unknown = [u for u in unknown if u != "--traceback"]
            args.traceback = True
        if unknown:  # said by the command's own parser, with the flag it likely meant
            _unrecognized(parser, args.command, unknown)
    except SystemExit as exc:
        return exc.code if isinstance(exc.code, int) else 0 if exc.code is None else 2
    if args.command is None:  # plain `lrkit`: the commands, then the error
        parser.print_help(sys.stderr)
        print("lrkit: error: give a COMMAND (listed above)", file=sys.stderr)
        return 2
    where = f"lrkit {args.command}: error:"
    whole = args.traceback or os.environ.get("LRKIT_TRACEBACK", "") not in ("", "0")
    shown = warnings.showwarning
    warnings.showwarning = _lrkit_warning(f"lrkit {args.command}: warning:", shown)
    running = _COMMAND.set(args.command)
    try:
        code = int(args.func(args))
        stdout().flush()  # a closed pipe shows here, not at exit
        return code
    except BrokenPipeError:  # `lrkit schedules | head -1`: the reader has gone; stop quietly
        _silence_stdout()
        return 1
    except Warning as exc:  # a warning the warnings filter turned into an error (-W error, PYTHONWARNINGS)
        return _fail(where, _warning_line(exc), whole, 2 if _raised_in_lrkit(exc) else 1)
    except UnicodeEncodeError as exc:  # the system's encoding, not your input
        return _fail(where, _encoding_line(exc), whole, 1)
    except (ValueError, TypeError, FileNotFoundError, ImportError) as exc:
        from .finder.cli import EXIT_NO_SUGGESTION
        from .finder.result import NoSuggestionError

        if isinstance(exc, NoSuggestionError):  # the range test found no signal (lrkit demo): not bad input
            return _fail(where, str(exc), whole, EXIT_NO_SUGGESTION)
        missing = exc.name if isinstance(exc, ModuleNotFoundError) else None
        if missing in EXTRAS:
            exc = ImportError(
                f"this needs {missing}, which is not installed: pip install 'lrkit[{EXTRAS[missing]}]'"
            )
        return _fail(where, str(exc), whole, 2)
    except UserCodeError as exc:  # your code raised: one lrkit line, then your code's traceback
        code = _fail(where, str(exc), whole, 1)
        if not whole:
            sys.stderr.write(exc.user_traceback())
        return code
    except MemoryError:
        return _fail(where, "out of memory; try fewer steps or a smaller task", whole, 1)
    except OSError as exc:  # the system refused: a file that cannot be written, a full disk, ...
        if exc.strerror and exc.filename is not None:
            text = f"{exc.strerror}: {str(exc.filename)!r}"
        else:
            text = _one_line(exc) or type(exc).__name__
        return _fail(where, text, whole, 1)
    except KeyboardInterrupt:
        print(f"lrkit {args.command}: interrupted", file=sys.stderr)
        return 130
    finally:
        warnings.showwarning = shown
        _COMMAND.reset(running)


def _fail(where: str, text: str, whole: bool, code: int) -> int:
    """Say the error being handled: one line ``{where} {text}``, or with ``whole`` (``--traceback``,
    ``LRKIT_TRACEBACK=1``) Python's whole traceback, lrkit's frames included; the exit status ``code``
    is the same either way (a script that turns tracebacks on still tells bad input from a crash)."""
    if whole:
        traceback.print_exc(file=sys.stderr)
    else:
        print(f"{where} {text}", file=sys.stderr)
    return code


_LRKIT_DIR = str(Path(__file__).resolve().parent)


def _lrkit_warning(prefix: str, other: Any) -> Any:
    """``warnings.showwarning`` for a command: lrkit's own warnings as one line, ``{prefix} {message}``
    (the message's own ``lrkit.auto:`` dropped), instead of Python's ``/path/auto_cli.py:174: UserWarning:
    ...`` and the source line; other libraries' warnings as ``other`` shows them. A line already shown by
    this command is not shown again: the lab checks its strategies before its header and again in
    ``run_lab``, and Python's once-per-place rule forgets what it showed whenever a module that is
    imported in between changes the warning filters (torch's first optimizer imports sympy, which does)."""
    shown: set[str] = set()

    def show(
        message: Any, category: Any, filename: str, lineno: int, file: Any = None, line: Any = None
    ) -> None:
        if not str(Path(filename).resolve()).startswith(_LRKIT_DIR):
            other(message, category, filename, lineno, file, line)
            return
        text = re.sub(r"^lrkit(\.\w+)*: ", "", str(message))
        if text in shown:
            return
        shown.add(text)
        print(f"{prefix} {text}", file=sys.stderr if file is None else file)

    return show


def _raised_in_lrkit(exc: BaseException) -> bool:
    """Whether the innermost frame of ``exc``'s traceback (past the warnings module's) is lrkit's."""
    where = None
    tb = exc.__traceback__
    while tb is not None:
        name = tb.tb_frame.f_code.co_filename
        if Path(name).name != "warnings.py":
            where = name
        tb = tb.tb_next
    return where is not None and str(Path(where).resolve()).startswith(_LRKIT_DIR)


def _warning_line(exc: Warning) -> str:
    """A warning raised as an error, on one line: its text (lrkit's without its ``lrkit.auto:``), its
    category, and why it stopped the command. lrkit's own say what the command's input leads to (a
    schedule that does not fit --total, a search that costs more than the run, no font for --lang ko):
    :func:`main` gives them status 2, bad input; another library's warning 1."""
    text = re.sub(r"^lrkit(\.\w+)*: ", "", _one_line(exc)) or "(no message)"
    return (
        f"{text} ({type(exc).__name__}, a warning that the warnings filter turns into an error: "
        "-W error or PYTHONWARNINGS)"
    )


def _silence_stdout() -> None:
    """Point stdout at devnull, so that Python's flush at exit does not fail again on the closed pipe
    (the Python docs' "Note on SIGPIPE")."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError, AttributeError):  # stdout is not a file (captured, replaced)
        pass


def _encoding_line(exc: UnicodeEncodeError) -> str:
    """A character that could not be encoded, said with the fix: a surrogate escape (undecodable bytes of
    an argument or a file name in a non-UTF-8 locale, ``LC_ALL=C``: lrkit's database and files hold
    UTF-8) needs a UTF-8 locale; anything else an output that cannot show it."""
    if "surrogates not allowed" in str(exc.reason):
        return (
            f"{exc}: an argument or a file name holds bytes this locale's encoding "
            f"({sys.getfilesystemencoding()}) cannot read as text; use a UTF-8 locale (PYTHONUTF8=1)"
        )
    return f"{exc}; the output cannot show it (try PYTHONIOENCODING=utf-8)"


def _one_line(exc: BaseException) -> str:
    """The exception's message on one line (a multi-line message is joined with ' | ')."""
    return " | ".join(line.strip() for line in str(exc).strip().splitlines() if line.strip())


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
