"""The ``lrkit`` command line: ``schedules``, ``show``, ``plot``, ``recipes``, ``scale``, ``gallery``,
``lab``, ``demo`` and ``find``.

Errors print one line (``lrkit: error: ...``) and exit with status 2; no traceback.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from dataclasses import MISSING, fields
from pathlib import Path

import numpy as np

from . import __version__
from .schedules import REGISTRY, Schedule
from .schedules.duration import Duration
from .spec import load

EPILOG = """SPEC is a schedule in the compact form, e.g. "warmup(steps=500) >> cosine(lr=3e-4, min_lr=3e-5)",
or a .json/.yaml/.toml file. Durations: 500 (steps), 3ep (epochs), 10% (of --total), rest.
Run `lrkit schedules` for every schedule and its parameters."""


def _positive_int(text: str) -> int:
    try:
        v = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number >= 1, got {text!r}") from None
    if v < 1:
        raise argparse.ArgumentTypeError(f"expected a whole number >= 1, got {text!r}")
    return v


def _positive_float(text: str) -> float:
    try:
        v = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number > 0, got {text!r}") from None
    if not v > 0 or v == float("inf"):
        raise argparse.ArgumentTypeError(f"expected a number > 0, got {text!r}")
    return v


def _steps_list(text: str) -> list[float]:
    out = []
    for part in text.split(","):
        try:
            out.append(float(part))
        except ValueError:
            raise argparse.ArgumentTypeError(
                f"expected comma-separated steps like 0,100,1000, got {part.strip()!r} in {text!r}"
            ) from None
    return out


def _resolve(spec: str, total: int | None, spe: float | None) -> Schedule:
    s = load(spec).resolve(total_steps=total, steps_per_epoch=spe)
    if s.unresolved:
        raise ValueError(
            f"{spec!r}: {s.unresolved.split('; call')[0]}; pass --total (and --steps-per-epoch for epochs)"
        )
    return s


def cmd_show(args: argparse.Namespace) -> int:
    s = _resolve(args.spec, args.total, args.steps_per_epoch)
    if args.at is not None:
        at = args.at
    elif args.total is not None:
        at = sorted({round(args.total * k / 10) for k in range(11)})
    else:
        raise ValueError("give --total N (to show 11 points across the run) or --at 0,100,...")
    lrs = s(np.asarray(at, dtype=np.float64))
    if args.json:
        print(
            json.dumps(
                {
                    "spec": str(s),
                    "total_steps": args.total,
                    "steps_per_epoch": args.steps_per_epoch,
                    "points": [{"step": _num(t), "lr": float(v)} for t, v in zip(at, lrs)],
                },
                indent=2,
            )
        )
        return 0
    print(f"# {s}")
    width = max(len(f"{_num(t)}") for t in at)
    print(f"{'step':>{max(width, 4)}}  lr")
    for t, v in zip(at, lrs):
        print(f"{_num(t):>{max(width, 4)}}  {float(v):.6g}")
    return 0


def _num(t: float) -> int | float:
    return int(t) if float(t).is_integer() else t


def cmd_plot(args: argparse.Namespace) -> int:
    from .plot import plot_schedules

    for spec in args.specs:  # every spec is checked before anything is drawn
        _resolve(spec, args.total, args.steps_per_epoch)
    plot_schedules(
        args.specs, args.total, args.out, log=args.log, steps_per_epoch=args.steps_per_epoch, title=args.title
    )
    print(f"wrote {args.out}")
    return 0


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


def cmd_recipes(args: argparse.Namespace) -> int:
    from .recipes import RECIPES, get_recipe

    for name in [args.name] if args.name else list(RECIPES):
        r = get_recipe(name)
        print(f"{r.name}: {r.summary} ({r.reference})")
        print(f"    {r.build()}")
    return 0


def cmd_scale(args: argparse.Namespace) -> int:
    from .scaling import scale_lr

    print(scale_lr(args.lr, args.base_batch, args.batch, rule=args.rule, optimizer=args.optimizer))
    return 0


def cmd_gallery(args: argparse.Namespace) -> int:
    from .plot import gallery

    p = gallery(Path(args.out), total_steps=args.total)
    print(f"wrote {p}")
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from .demo import run_demo

    return run_demo(Path(args.out), quick=args.quick)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="lrkit",
        description="Learning-rate schedules, an LR finder and a lab.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--version", action="version", version=f"lrkit {__version__}")
    sub = p.add_subparsers(dest="command", metavar="COMMAND", required=True)

    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--steps-per-epoch",
        type=_positive_float,
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
    sp.add_argument("--total", type=_positive_int, metavar="N", help="total steps of the run")
    sp.add_argument(
        "--at", type=_steps_list, metavar="STEPS", help="comma-separated steps (default: 11 points)"
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
    pp.add_argument("--total", type=_positive_int, required=True, metavar="N", help="total steps to plot")
    pp.add_argument("--out", required=True, metavar="FILE", help="output file (.png, .svg or .pdf)")
    pp.add_argument("--log", action="store_true", help="log scale for the LR axis")
    pp.add_argument("--title", help="figure title")
    pp.set_defaults(func=cmd_plot)

    sc = sub.add_parser("schedules", help="list every schedule with its parameters")
    sc.set_defaults(func=cmd_schedules)

    rp = sub.add_parser("recipes", help="well-known schedules from the literature, as specs")
    rp.add_argument("name", nargs="?", help="one recipe (default: all)")
    rp.set_defaults(func=cmd_recipes)

    bp = sub.add_parser("scale", help="scale a tuned LR to another batch size (linear or sqrt rule)")
    bp.add_argument("--lr", type=_positive_float, required=True, help="the LR tuned at --base-batch")
    bp.add_argument(
        "--base-batch", type=_positive_int, required=True, metavar="B", help="batch size it was tuned at"
    )
    bp.add_argument("--batch", type=_positive_int, required=True, metavar="B", help="the new batch size")
    bp.add_argument("--rule", choices=("linear", "sqrt"), help="default: linear for SGD, sqrt for adaptive")
    bp.add_argument("--optimizer", default="sgd", help="sgd, adam, adamw, ... (default: %(default)s)")
    bp.set_defaults(func=cmd_scale)

    gp = sub.add_parser("gallery", help="plot every strategy on one page")
    gp.add_argument(
        "--out", default="lrkit-gallery.png", metavar="FILE", help="output file (default: %(default)s)"
    )
    gp.add_argument(
        "--total", type=_positive_int, default=10_000, metavar="N", help="steps (default: %(default)s)"
    )
    gp.set_defaults(func=cmd_gallery)

    from .lab import cli as lab_cli

    lab_cli.register(sub)

    dp = sub.add_parser(
        "demo", help="the main job: gallery, LR finder and strategies side by side on a real task"
    )
    dp.add_argument("--out", default="lrkit-demo", metavar="DIR", help="output folder (default: %(default)s)")
    dp.add_argument("--quick", action="store_true", help="fewer epochs, for a fast look")
    dp.set_defaults(func=cmd_demo)

    from .finder import cli as finder_cli

    finder_cli.register(sub)
    from .tune import cli as tune_cli

    tune_cli.register(sub)
    return p


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
}


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args))
    except (ValueError, TypeError, FileNotFoundError, ImportError) as exc:
        missing = exc.name if isinstance(exc, ModuleNotFoundError) else None
        if missing in EXTRAS:
            exc = ImportError(
                f"this needs {missing}, which is not installed: pip install 'lrkit[{EXTRAS[missing]}]'"
            )
        print(f"lrkit {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"lrkit {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
