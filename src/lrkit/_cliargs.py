"""argparse ``type=`` checks shared by every command, so that a bad number reads the same everywhere:
``lrkit tune: error: --epochs: expected a whole number from 1 to 2**53, got '0'``. The flag and the
``lrkit CMD: error:`` prefix come from :class:`lrkit.cli._Parser` (argparse's ``argument --epochs: ...``
made one line); status 2."""

from __future__ import annotations

import argparse
import math
import os
from collections.abc import Callable
from typing import Any, NamedTuple

from ._checks import bound

#: the most steps (or anything counted in steps: epochs, batches) a command accepts: float64 holds every
#: whole number up to 2**53 exactly
MAX_STEPS = 2**53
#: the largest seed: numpy's generators (Optuna's samplers among them) take seeds below 2**32
MAX_SEED = 2**32 - 1
#: processes, seconds and retries: the system's calls take them as a C int
MAX_INT = 2**31 - 1


def short(text: str) -> str:
    """``text`` for an error message: a 5,000-digit number is shown by its first digits and length."""
    return repr(text) if len(text) <= 40 else f"{text[:20]!r}... ({len(text)} characters)"


def whole_number(low: int | None = 1, high: int | None = MAX_STEPS, why: str = "") -> Callable[[str], int]:
    """A ``type=`` for a whole number in ``[low, high]`` (None: no bound); ``why`` follows the range
    (``" (every step is drawn)"``). ``1.5``, ``1e3``, ``nan`` and ``x`` are refused, as is a value
    outside the range: ``expected a whole number from 1 to 2**53, got '0'``."""
    if low is not None and high is not None:
        expected = f"a whole number from {low:,} to {bound(high, grouped=True)}"
    elif low is not None:
        expected = f"a whole number >= {low:,}"
    else:
        expected = "a whole number" + ("" if high is None else f" <= {bound(high, grouped=True)}")

    def check(text: str) -> int:
        try:
            v = int(text)
        except ValueError:
            v = None
        if v is None or (low is not None and v < low) or (high is not None and v > high):
            raise argparse.ArgumentTypeError(f"expected {expected}{why}, got {short(text)}")
        return v

    return check


def number(
    low: float = 0.0, *, inclusive: bool = False, below: float | None = None
) -> Callable[[str], float]:
    """A ``type=`` for a finite number above ``low`` (``inclusive``: or equal to it) and, given
    ``below``, under it: ``expected a finite number > 0, got 'nan'``."""
    above = f"{'>=' if inclusive else '>'} {low:g}"
    expected = f"a finite number {above}" if below is None else f"a number {above} and < {below:g}"

    def check(text: str) -> float:
        try:
            v = float(text)
        except ValueError:
            v = math.nan
        ok = v >= low if inclusive else v > low
        if not (ok and math.isfinite(v) and (below is None or v < below)):  # NaN fails every comparison
            raise argparse.ArgumentTypeError(f"expected {expected}, got {short(text)}")
        return v

    return check


#: the usual two: a count of at least one (epochs, steps, repeats, ...) and a positive number (an LR)
positive_int = whole_number(1, MAX_STEPS)
positive_float = number(0.0)
non_negative = number(0.0, inclusive=True)
#: steps in an epoch: at least one (0.5 gave warmup's "less than one step" advice), at most 2**53
steps_per_epoch = number(1.0, inclusive=True, below=MAX_STEPS + 1.0)
#: a seed: 0 to 2**32 - 1
seed = whole_number(0, MAX_SEED)


class OptimizerArg(NamedTuple):
    """``--optimizer``'s value: a name and the keyword arguments written after it (checked by the command,
    :func:`lrkit.cli.check_search_optimizer`); ``str()`` writes it back as ``adamw(weight_decay=0.1)``."""

    name: str
    params: dict[str, Any]

    def __str__(self) -> str:
        from .tasks.optimizers import format_optimizer

        return format_optimizer(self.name, self.params)


def optimizer(text: str) -> OptimizerArg:
    """A ``type=`` for ``--optimizer``: ``adamw`` or ``adamw(weight_decay=0.1, betas=(0.9, 0.99))``, read by
    :func:`lrkit.tasks.optimizers.parse_optimizer` (never ``eval``); a broken form is refused where it
    breaks: ``expected ',' or ')' in adamw(...), got the end at position 22 of 'adamw(weight_decay=0.1'``."""
    from .tasks.optimizers import parse_optimizer

    try:
        name, params = parse_optimizer(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"expected NAME or NAME(KEY=VALUE, ...): {exc}") from None
    return OptimizerArg(name, params)


#: ``--optimizer``'s help, after the names: one example of the keyword form
OPTIMIZER_HELP = "; hyper-parameters in call syntax: 'adamw(weight_decay=0.1, betas=(0.9, 0.99))'"


#: the metavars of the arguments that name a file or a folder (a URL's path, for ``--storage``): each
#: gets the type :func:`path` (:func:`lrkit.cli.build_parser`)
PATH_METAVARS = frozenset({"FILE", "DIR", "PATH", "DB_OR_DIR", "EXPERIMENT", "FILE_OR_URL"})


def path(text: str) -> str:
    """A ``type=`` for a path: ``~`` and ``~user`` expanded as the experiment file and the shell expand
    them (the shell does not after ``--out=`` or inside quotes, and ``~/p.png`` made a folder named
    ``~``); the path of an ``sqlite:///~/x.db`` URL too. ``-`` (stdout) and other URLs stay as written."""
    if text.startswith("sqlite:///~"):
        return "sqlite:///" + os.path.expanduser(text[len("sqlite:///") :])
    return os.path.expanduser(text)
