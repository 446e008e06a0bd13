"""The lab's report: one self-contained HTML page, CSV files, a Markdown table and a PNG figure.

What the report says, per strategy (a label; its runs are the seeds):

- the final validation metric over the seeds that finished (diverged runs have none, nor do runs that
  finished with a metric that is not finite: :func:`unmeasured`): mean, sample
  standard deviation ``s`` and a 95% confidence interval for the mean, ``mean ± t(0.975, n-1) · s/√n``
  (Student t), cut at the range of the metrics lrkit measures itself (:func:`metric_range`: accuracy's
  [0, 1], which a t-interval over 2 or 3 seeds can pass, where every value lies in it). With one finished
  seed there is no spread to report, and the table says ``n=1``.
- epochs and seconds to a *target* metric: the first epoch whose validation metric reaches the target,
  and the wall time at the end of that epoch (seconds since the run started, evaluation included),
  averaged over the seeds that reached it. The default target is within 1% of the best strategy's mean
  final metric: ``best - 0.01·|best|`` when higher is better (accuracy), ``best + 0.01·|best|`` when
  lower is better (a validation loss). Pass ``target=`` to choose your own.
- which runs diverged, and at which optimizer step. Strategies are ranked by the share of their seeds they
  lost (diverged or unmeasured), smallest first, then by mean: a mean over the finished seeds leaves out a
  strategy's hard seeds (:func:`summarize`).
- which finished runs *did not learn*: their last epoch's mean training loss is no lower than the
  untrained model's loss, measured on the validation set before the first step (:func:`did_not_learn`;
  a lab from before lrkit measured it: the first step's loss). The lab's divergence rule compares with
  the first step's loss (diverged: more than ``diverge_factor`` times it), so a run is one of three:
  diverged, did not learn, or learned. A run that learns slowly (a too-small LR) lowers its loss a little
  and counts as learned; its crawl shows as a late or missing time to target.
- what the runs ran with: the versions of lrkit, torch, Python and numpy and torch's threads
  (:func:`environments`), under the page's title and under lab.md's table (and so the console's). A row
  of ``runs.csv`` holds all it takes to rerun its run (:func:`write_csv`), its reduce-on-plateau
  included.
- a strategy with reduce-on-plateau: its spec in the table, its label in lab.md's table and the figures'
  legends are followed by ``+ plateau(...)`` with the settings that differ from the lab's defaults
  (:func:`plateau_text`), so it reads apart from the same spec without one.

Figures show, per strategy, the mean over its seeds (line) and the spread, min to max (band): the LR
per step, the training loss per step (smoothed, log scale) and the validation metric per epoch. The LR
is the step size the optimizer takes: for Prodigy, ``d * lr`` (:data:`STEP_SIZE_OPTIMIZERS`; the LR
axis and a note under the page's LR figure say so where such a run is in the lab).

The report speaks English (``lang="en"``, the default) or Korean (``lang="ko"``): every sentence,
heading, table header and figure text comes from :mod:`lrkit.lab._messages`; numbers, labels, specs and
the CSV files (columns and values) are the same in both. A Korean figure needs a font with Hangul
(:data:`HANGUL_FONTS`, or any installed font that has it); without one the figures are drawn in English
and a :class:`MissingFontWarning` says what to install. Hangul in an English figure (a Korean strategy
name) is drawn with that font too, where one is installed.

Labels are user text: they are HTML-escaped in the page, Markdown-escaped in ``lab.md`` and escaped
for matplotlib's mathtext in the figures (a label ``$\\frac{$`` is drawn as written). The page loads
nothing from outside (figures are embedded PNG, its Content-Security-Policy allows nothing else).

Writing a report reads the :class:`~lrkit.lab.runner.LabResult` only; :func:`report_from_db` opens the
database read-only. Every file is written to a temporary name and then renamed, so a failure leaves no
half-written file; the error is raised to the caller.
"""

from __future__ import annotations

import base64
import csv
import hashlib
import html
import io
import json
import math
import re
import statistics
import warnings
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from .._checks import as_integer, as_real, finite_real
from .._paths import MARK, _stat_kind, check_replaceable, save_figure, write_output
from .._terminal import printable
from ..plot import HANGUL_FONTS
from ..plot import hangul_font as _hangul_font
from ..tasks.base import diverge_threshold
from ._messages import LANGS, MESSAGES, Messages, load_phrases, messages
from .runner import (
    ENV,
    PLATEAU_KEYS,
    START_LOSS,
    LabResult,
    plateau_settings,
    shown_settings,
    with_start_losses,
)
from .store import ReportText, ResultStore, RunRecord, check_db_path

__all__ = [
    "ENV_FIELDS",
    "EPOCHS_COLUMNS",
    "FORMER_RUNS_COLUMNS",
    "HANGUL_FONTS",
    "LAB_FILES",
    "LANGS",
    "RUNS_COLUMNS",
    "Asked",
    "MissingFontWarning",
    "StoredResult",
    "Summary",
    "default_target",
    "did_not_learn",
    "env_of",
    "environments",
    "escape_markdown",
    "escape_mathtext",
    "fate",
    "final",
    "lab_figure",
    "legend_names",
    "metric_range",
    "optimizer_text",
    "paired_gap",
    "panel_figure",
    "plain_markdown",
    "plateau_text",
    "plot_lab",
    "report_from_db",
    "start_of",
    "summarize",
    "t_quantile",
    "unmeasured",
    "verdict",
    "write_all",
    "write_csv",
    "write_markdown",
    "write_report",
]

#: the first line of lab.md: lrkit's mark (an HTML comment, invisible when rendered)
MD_MARK = f"<!-- written by {MARK} -->"
#: the files :func:`write_all` writes into its folder
LAB_FILES = ("report.html", "runs.csv", "epochs.csv", "lab.md", "lab.png")
#: columns of ``runs.csv`` (one row per run) and ``epochs.csv`` (one row per run per epoch)
RUNS_COLUMNS = (
    "label",
    "spec",
    "optimizer",
    "seed",
    "status",
    "final_metric",
    "best_metric",
    "diverged_step",
    "steps",
    "seconds",
    "key",
    # what reruns the row without the database (:func:`write_csv`): added after the columns above, which
    # keep their places
    "task",
    "epochs",
    "diverge_factor",
    "optimizer_params",
    "lrkit_version",
    "torch_version",
    "python_version",
    "numpy_version",
    "torch_threads",
    # the run's reduce-on-plateau as JSON: the settings that differ from the lab's defaults (mode only
    # against the metric's direction; {} for all defaults), empty for a run without one
    "plateau",
)
#: the header rows of ``runs.csv`` that an earlier lrkit wrote: lrkit's own still
#: (:func:`lrkit._paths.owned_by_lrkit`), so a new report replaces such a file
FORMER_RUNS_COLUMNS = (
    RUNS_COLUMNS[: RUNS_COLUMNS.index("key") + 1],
    RUNS_COLUMNS[: RUNS_COLUMNS.index("torch_threads") + 1],
)
EPOCHS_COLUMNS = ("label", "seed", "key", "epoch", "metric", "train_loss", "seconds")

#: the default target is within this fraction of the best strategy's mean final metric
TARGET_FRACTION = 0.01
#: legend entries longer than this are cut in the middle (:func:`legend_names`; the full label is in the
#: tables)
LEGEND_CHARS = 60
#: the report's words that :mod:`lrkit.lab._messages` does not hold (yet), by language: added to its
#: catalogues when this module is imported (an id the catalogue has keeps the catalogue's words)

#: English, the default language of the report
_EN = messages("en")


# --------------------------------------------------------------------------------------------------
# statistics
# --------------------------------------------------------------------------------------------------
def _t_coverage(t: float, df: int) -> float:
    """``P(|T| <= t)`` for Student's t with integer ``df`` degrees of freedom, in closed form
    (Abramowitz & Stegun 26.7.3/26.7.4, with ``θ = atan(t/√df)``)."""
    theta = math.atan(t / math.sqrt(df))
    s, c2 = math.sin(theta), math.cos(theta) ** 2
    if df % 2 == 1:  # (2/π)(θ + sinθ (cosθ + (2/3)cos³θ + ... ))
        total = 0.0
        if df > 1:
            term = total = math.cos(theta)
            for k in range(3, df - 1, 2):
                term *= c2 * (k - 1) / k
                total += term
        return 2.0 / math.pi * (theta + s * total)
    term = total = 1.0  # sinθ (1 + (1/2)cos²θ + (1·3)/(2·4)cos⁴θ + ...)
    for k in range(2, df - 1, 2):
        term *= c2 * (k - 1) / k
        total += term
    return s * total


def t_quantile(p: float, df: int) -> float:
    """The ``p`` quantile (``p`` in [0.5, 1)) of Student's t with ``df`` >= 1 degrees of freedom.

    Solves ``P(|T| <= t) = 2p - 1`` by bisection on the closed-form distribution function.

    >>> round(t_quantile(0.975, 1), 3), round(t_quantile(0.975, 2), 3), round(t_quantile(0.975, 30), 3)
    (12.706, 4.303, 2.042)
    """
    n, q = as_integer(df), as_real(p)  # lrkit._checks' rule: numpy's numbers and 0-d arrays too
    if n is None or n < 1:
        raise ValueError(f"df: expected an integer >= 1, got {type(df).__name__} {df!r}")
    if q is None or not 0.5 <= q < 1:
        raise ValueError(f"p: expected a probability in [0.5, 1), got {type(p).__name__} {p!r}")
    df, level = n, 2.0 * q - 1.0
    lo, hi = 0.0, 1.0
    while _t_coverage(hi, df) < level:
        lo, hi = hi, hi * 2.0
    for _ in range(200):
        mid = 0.5 * (lo + hi)
        if _t_coverage(mid, df) < level:
            lo = mid
        else:
            hi = mid
        if hi - lo <= 1e-13 * hi:
            break
    return 0.5 * (lo + hi)


@dataclass(frozen=True)
class Summary:
    """One strategy over its seeds: ``runs`` the lab asked for, of which ``ended`` ended (fewer in a lab
    that was interrupted: :func:`report_from_db`). ``mean``/``std``/``ci`` are over the ``n`` finished
    runs' final metrics (``std`` and ``ci`` are None when ``n`` < 2, ``mean`` None when ``n`` = 0);
    ``epochs_to`` and ``seconds_to`` are means over the ``reached`` runs that reached the target;
    ``stalled`` the seeds that finished without learning (:func:`did_not_learn`); ``seconds`` the mean
    wall time of the ended runs (None when none ended)."""

    label: str
    optimizer: str
    spec: str
    runs: int
    ended: int
    n: int
    mean: float | None
    std: float | None
    ci: tuple[float, float] | None
    best: float | None
    diverged: tuple[tuple[int, int | None], ...]  # (seed, step)
    stalled: tuple[int, ...]  # seeds that finished but did not learn (:func:`did_not_learn`)
    reached: int
    epochs_to: float | None
    seconds_to: float | None
    seconds: float | None
    unmeasured: tuple[
        int, ...
    ] = ()  # seeds that finished with a metric that is not finite (:func:`unmeasured`)
    #: the hyper-parameters its runs train with (all of them, the task's included); None: not known
    optimizer_params: Mapping[str, Any] | None = None
    #: its reduce-on-plateau's settings (:class:`Asked`'s ``plateau``); None: it has none
    plateau: Mapping[str, Any] | None = None


@dataclass(frozen=True)
class Asked:
    """One strategy as its lab asked for it, finished or not: its ``label``, ``spec``, ``optimizer``
    (``""`` where the lab names none, the task's, and no finished run shows which), ``runs``, one per
    seed, and ``params``, the optimizer's hyper-parameters (None where neither a finished run nor the
    lab's config shows them), and ``plateau``, the settings of its reduce-on-plateau (a finished run's
    stored config holds every one; the lab's config, for a strategy with no finished run, those given);
    None where it has none."""

    label: str
    spec: str
    optimizer: str
    runs: int
    params: Mapping[str, Any] | None = None
    plateau: Mapping[str, Any] | None = None


@dataclass
class StoredResult(LabResult):
    """A :class:`LabResult` read from a lab database (:func:`load_result`), whose lab may not have
    finished: ``runs`` are its finished runs, ``asked`` every strategy the lab asked for, in its order,
    and ``seeds`` the seeds it asked for (both empty where the experiment does not list them: then the
    report counts the runs)."""

    asked: tuple[Asked, ...] = ()
    seeds: tuple[int, ...] = ()


def _asked(result: LabResult) -> tuple[list[Asked], list[int]]:
    """The strategies and seeds the lab of ``result`` asked for, finished or not: a
    :class:`StoredResult`'s, else those of its runs (a lab that ran to the end)."""
    if isinstance(result, StoredResult) and result.asked:
        return list(result.asked), list(result.seeds)
    asked = []
    for label in result.labels():
        runs = result.by_label(label)
        asked.append(
            Asked(
                label, runs[0].spec, runs[0].optimizer, len(runs), _params_of(runs[0]), _plateau_of(runs[0])
            )
        )
    return asked, sorted({r.seed for r in result.runs})


def _params_of(run: RunRecord) -> dict[str, Any] | None:
    """The optimizer hyper-parameters ``run`` trained with, as its stored config keeps them (all of them,
    the task's included); None where it keeps none (a run from an lrkit before it did)."""
    params = run.config.get("optimizer_params")
    return dict(params) if isinstance(params, dict) else None


def _plateau_of(run: RunRecord) -> dict[str, Any] | None:
    """The settings of the reduce-on-plateau ``run`` trained with, as its stored config keeps them: those
    that differ from the lab's defaults (:func:`~lrkit.lab.runner.plateau_identity`); None for a run
    without one."""
    plateau = run.config.get("plateau")
    return dict(plateau) if isinstance(plateau, dict) else None


def _asked_from(
    config: Mapping[str, Any], runs: Sequence[RunRecord]
) -> tuple[tuple[Asked, ...], tuple[int, ...]]:
    """:class:`StoredResult`'s ``asked`` and ``seeds`` from the experiment's config, where
    :func:`~lrkit.lab.runner.run_lab` lists its strategies (label, spec, optimizer: None for the task's)
    and seeds; empty where it does not, or lists no strategy of a finished run. A strategy's spec,
    optimizer and its hyper-parameters are its finished runs' (the task's optimizer is the one any run of
    a strategy naming none trained with, the task's hyper-parameters those such runs trained with and
    their strategy did not set)."""
    strategies, seeds = config.get("strategies"), config.get("seeds")
    if not (isinstance(strategies, list) and isinstance(seeds, list) and strategies and seeds):
        return (), ()
    if not all(isinstance(x, int) for x in seeds):
        return (), ()
    if not all(isinstance(s, dict) and isinstance(s.get("label"), str) for s in strategies):
        return (), ()
    ran: dict[str, RunRecord] = {}
    for r in runs:
        ran.setdefault(r.label, r)  # a strategy's first finished run, as :func:`_asked` takes it
    if not ran.keys() <= {s["label"] for s in strategies}:
        return (), ()
    task_optimizer = next(
        (ran[s["label"]].optimizer for s in strategies if s.get("optimizer") is None and s["label"] in ran),
        "",
    )
    task_params: dict[str, Any] | None = None
    for s in strategies:
        run = ran.get(s["label"])
        params = None if run is None or s.get("optimizer") is not None else _params_of(run)
        if params is not None:
            own = s.get("optimizer_params") or {}
            task_params = {**{k: v for k, v in params.items() if k not in own}, **(task_params or {})}
    asked = []
    for s in strategies:
        run = ran.get(s["label"])
        if run is not None:
            asked.append(
                Asked(run.label, run.spec, run.optimizer, len(seeds), _params_of(run), _plateau_of(run))
            )
        else:
            optimizer = s.get("optimizer") or task_optimizer
            own = s.get("optimizer_params") or {}
            params = (
                dict(own) if s.get("optimizer") else None if task_params is None else {**task_params, **own}
            )
            plateau = s.get("plateau")  # as given (mode, left out, is the task's)
            asked.append(
                Asked(
                    s["label"],
                    str(s.get("spec", "")),
                    str(optimizer),
                    len(seeds),
                    params,
                    dict(plateau) if isinstance(plateau, dict) else None,
                )
            )
    return tuple(asked), tuple(sorted(int(x) for x in seeds))


def _finite(values: Sequence[float | None]) -> list[float]:
    return [float(v) for v in values if v is not None and math.isfinite(v)]


def _better(higher_is_better: bool) -> Callable[[float, float], bool]:
    return (lambda a, b: a >= b) if higher_is_better else (lambda a, b: a <= b)


def default_target(result: LabResult) -> float | None:
    """Within 1% of the best strategy's mean final metric (``best ∓ 0.01·|best|``), the best as
    :func:`summarize` ranks them (smallest share of lost seeds first); None when no run finished."""
    return _target_of(_ranked(result)[0], result.higher_is_better)


def _target_of(rows: list[Summary], higher_is_better: bool) -> float | None:
    best = rows[0].mean if rows else None
    if best is None:
        return None
    gap = TARGET_FRACTION * abs(best)
    return best - gap if higher_is_better else best + gap


def final(run: RunRecord) -> float | None:
    """A finished run's final metric; None for a diverged run and for one whose metric at the end was not
    finite (NaN: a correlation of a constant prediction), which an older lab stored as the task's worst
    (0 when higher is better) though its last epoch's metric was NaN."""
    f = run.final_metric
    if run.status != "ok" or f is None or not math.isfinite(f):
        return None
    if run.epoch_metrics and not math.isfinite(run.epoch_metrics[-1]):
        return None
    return float(f)


def unmeasured(run: RunRecord) -> bool:
    """Whether a run finished without diverging but with no finite final metric (:func:`final`): it is
    not counted in its strategy's mean, as a diverged run is not, and its status says why."""
    return run.status == "ok" and final(run) is None


def start_of(run: RunRecord) -> float | None:
    """The loss :func:`did_not_learn` compares a run's last epoch with: the untrained model's loss over the
    validation set, measured by the lab before the first step (:data:`~lrkit.lab.runner.START_LOSS` in the
    run's config; :func:`~lrkit.lab.runner.start_loss`), else (a lab from before lrkit measured it, or a
    loss it could not measure) its first step's loss, on one batch; None when neither is finite."""
    start = run.config.get(START_LOSS)
    if isinstance(start, (int, float)) and not isinstance(start, bool) and math.isfinite(start):
        return float(start)
    first = run.losses[0] if run.losses else math.nan
    return first if math.isfinite(first) else None


def did_not_learn(run: RunRecord) -> bool:
    """Whether a finished run ended no better than it started: its last epoch's mean training loss is
    not below the untrained model's loss (:func:`start_of`: over the validation set, measured before
    training; before training, training and validation loss have the same expectation). One batch's loss
    (the first step's, the rule where the lab did not measure it) made a slowly learning run "did not
    learn" or not by that batch's luck. False for a diverged run and when either loss is missing or not
    finite."""
    if run.status != "ok" or not run.epoch_losses:
        return False
    start, last = start_of(run), run.epoch_losses[-1]
    return start is not None and math.isfinite(last) and last >= start


def loss_change(run: RunRecord) -> float | None:
    """How far a finished run's training loss moved, relative to where it started: (last epoch's mean
    training loss - :func:`start_of`) / |:func:`start_of`|; -0.93 for a run that ended 93% below the
    untrained model's loss, about 0 for one that barely moved (which :func:`did_not_learn` may not flag: it
    asks only whether the loss ended below the start). A measurement, not a verdict: the report names the
    runs with the smallest and the largest fall (no threshold: how small is "too small" depends on the task
    and the budget). None for a run that did not finish (diverged) and when either loss is missing, not
    finite or the start is 0."""
    if run.status != "ok" or not run.epoch_losses:
        return None
    start, last = start_of(run), run.epoch_losses[-1]
    if start is None or start == 0 or not math.isfinite(last):
        return None
    return (last - start) / abs(start)


def fate(run: RunRecord) -> str:
    """A run's status as the report's tables and ``runs.csv`` show it: the database's (``ok``,
    ``diverged``, ...), ``metric not finite`` for a finished run with no finite final metric
    (:func:`unmeasured`), or ``did not learn`` for a finished run that :func:`did_not_learn`."""
    if unmeasured(run):
        return "metric not finite"
    return "did not learn" if did_not_learn(run) else run.status


#: the fields of a run's :data:`~lrkit.lab.runner.ENV` (:func:`~lrkit.lab.runner.run_environment`)
ENV_FIELDS = ("lrkit", "torch", "python", "numpy", "torch_threads")


def env_of(run: RunRecord) -> dict[str, str | int | None] | None:
    """What ``run`` ran with (:data:`~lrkit.lab.runner.ENV` in its config), field by field
    (:data:`ENV_FIELDS`): ``torch_threads`` an int, the versions text, a field the lab did not keep None;
    None for a run from an lrkit before it kept them."""
    env = run.config.get(ENV)
    if not isinstance(env, dict):
        return None
    out: dict[str, str | int | None] = {}
    for k in ENV_FIELDS:
        v = env.get(k)
        if k == "torch_threads":
            out[k] = v if isinstance(v, int) and not isinstance(v, bool) else None
        else:
            out[k] = None if v is None else str(v)
    return out


def environments(result: LabResult, *, lang: str = "en") -> str:
    """The sentence that says what the runs ran with, in ``lang``: "Ran with lrkit 0.1.0, torch 2.13.0,
    Python 3.11.7, numpy 2.4.6, 1 torch thread."; where the runs differ, each distinct one with its count
    of runs, then the count of runs from an lrkit that did not keep them. Empty without runs."""
    t = messages(lang)
    result = _check_result(result)
    groups: dict[tuple[str | int | None, ...], int] = {}
    unknown = 0
    for r in result.runs:
        env = env_of(r)
        if env is None:
            unknown += 1
        else:
            key = tuple(env[k] for k in ENV_FIELDS)
            groups[key] = groups.get(key, 0) + 1
    if not groups:
        return t("env.none", runs=t.count("runs", unknown)) if unknown else ""
    items = []
    for key, n in groups.items():
        env = {k: "?" if v is None else v for k, v in zip(ENV_FIELDS, key, strict=True)}
        threads = env["torch_threads"]
        text = t(
            "env.versions",
            lrkit=f"lrkit {env['lrkit']}",
            torch=f"torch {env['torch']}",
            python=env["python"],
            numpy=f"numpy {env['numpy']}",
            threads=t(f"env.threads.{'one' if threads == 1 else 'other'}", n=threads, torch="torch"),
        )
        alone = len(groups) == 1 and not unknown
        items.append(text if alone else t("env.runs", env=text, runs=t.count("runs", n)))
    if unknown:
        items.append(t("env.unknown", runs=t.count("runs", unknown)))
    return t("env.ran", items="; ".join(items))


def _finals(runs: Sequence[RunRecord]) -> list[float]:
    return [f for r in runs if (f := final(r)) is not None]


def _time_to(run: RunRecord, target: float, higher_is_better: bool) -> tuple[int, float] | None:
    """(epoch, seconds) at the first epoch whose metric reaches ``target``."""
    ok = _better(higher_is_better)
    for i, m in enumerate(run.epoch_metrics):
        if m is not None and math.isfinite(m) and ok(m, target):
            sec = run.epoch_seconds[i] if i < len(run.epoch_seconds) else math.nan
            return i + 1, float(sec)
    return None


#: the range of a metric lrkit measures itself, by the name lrkit's tasks give it: a CI is cut at it (the
#: mean cannot leave it, so the cut interval covers the mean as often; a t-interval over few seeds passes
#: it: [-0.25, 0.67]), where every value the lab measured lies in it (:func:`metric_range`)
METRIC_RANGES = {"val accuracy": (0.0, 1.0)}
#: a difference within this fraction of the numbers it is taken between is their rounding, so it is 0 (two
#: strategies with the same mean final accuracy, seed by seed 0.00556 apart either way, differ by 5.55e-17)
ROUNDING = 1e-12


def _rounded(x: float, scale: float) -> float:
    """``x``, a difference between numbers of size ``scale``; 0 where it is within their rounding."""
    return 0.0 if abs(x) <= ROUNDING * scale else x


def metric_range(result: LabResult) -> tuple[float, float] | None:
    """The range the report cuts the metric's CIs at: that of lrkit's own accuracy (:data:`METRIC_RANGES`,
    by its name ``val accuracy``) where every value the lab measured (final, best and per-epoch metrics)
    lies in it; None otherwise. A metric of your own under that name (a percentage, an R²) is not cut:
    its values leave [0, 1], and a cut made a CI [25.02, 1], its lower end above its upper."""
    bounds = METRIC_RANGES.get(result.metric_name)
    if bounds is None:
        return None
    low, high = bounds
    for r in result.runs:
        for v in (r.final_metric, r.best_metric, *r.epoch_metrics):
            if v is not None and math.isfinite(v) and not low <= v <= high:
                return None
    return bounds


def _gap_range(result: LabResult) -> float:
    """How far apart two values of the metric can be: the width of its range (accuracy: 1), else inf."""
    low, high = metric_range(result) or (-math.inf, math.inf)
    return high - low


def _cut(result: LabResult, t: Messages = _EN) -> str:
    """What the CI note adds for a metric with a range: where the interval is cut."""
    bounds = metric_range(result)
    if bounds is None:
        return ""
    return t("cut", m=t.metric(result.metric_name), low=f"{bounds[0]:g}", high=f"{bounds[1]:g}")


def _cut_gap(result: LabResult, ci: tuple[float, float], t: Messages) -> str:
    """What the paired gap's CI adds where it reaches the end of the gap's range: that it was cut there."""
    width = _gap_range(result)
    if math.isinf(width) or -width < ci[0] <= ci[1] < width:
        return ""
    return t("cut.gap", low=f"{-width:g}", high=f"{width:g}")


def summarize(result: LabResult, target: float | None = None) -> tuple[list[Summary], float | None]:
    """Per-strategy summaries, best first, and the target used (``target``, or :func:`default_target`).

    The best lost the smallest share of its seeds (*lost*: diverged, or finished with a metric that is
    not finite: :func:`unmeasured`), then has the best mean final metric: a mean over the seeds that
    finished leaves out the hard seeds a strategy lost, so a strategy that lost one is never ranked above
    one that lost none (:func:`verdict` says when a higher mean was passed over). Strategies with no
    finished run come last."""
    if target is not None:
        given = finite_real(target)  # lrkit._checks' rule: numpy's numbers and 0-d arrays too
        if given is None:
            raise ValueError(
                f"target: expected a finite number (a {result.metric_name}), got {type(target).__name__} "
                f"{target!r}"
            )
        target = given
    rows, by_label = _ranked(result)
    if target is None:
        target = _target_of(rows, result.higher_is_better)
    out = []
    for s in rows:
        runs = by_label[s.label]
        hits = [h for r in runs if target is not None and (h := _time_to(r, target, result.higher_is_better))]
        out.append(
            replace(
                s,
                reached=len(hits),
                epochs_to=statistics.fmean(h[0] for h in hits) if hits else None,
                seconds_to=statistics.fmean(h[1] for h in hits) if hits else None,
            )
        )
    return out, target


def _lost(s: Summary) -> int:
    """How many of a strategy's seeds are not in its mean though they ended: diverged, or finished with a
    metric that is not finite."""
    return len(s.diverged) + len(s.unmeasured)


def _lost_share(s: Summary) -> float:
    """The share of a strategy's seeds it lost (:func:`_lost`), what :func:`summarize` ranks by first."""
    return _lost(s) / max(1, s.runs)


def _ranked(result: LabResult) -> tuple[list[Summary], dict[str, list[RunRecord]]]:
    """:func:`summarize`'s rows in its order, without the times to target; and each label's runs."""
    out, by_label = [], {}
    low, high = metric_range(result) or (-math.inf, math.inf)
    for asked in _asked(result)[0]:
        runs = by_label[asked.label] = result.by_label(asked.label)
        finals = _finals(runs)
        n = len(finals)
        mean = statistics.fmean(finals) if n else None
        std = statistics.stdev(finals) if n >= 2 else None
        ci = None
        if mean is not None and std is not None:
            half = _half_width(finals)
            ci = (max(mean - half, low), min(mean + half, high))
        bests = _finite([r.best_metric for r in runs if final(r) is not None])  # the seeds of the mean
        best = (max(bests) if result.higher_is_better else min(bests)) if bests else None
        out.append(
            Summary(
                label=asked.label,
                optimizer=asked.optimizer,
                spec=asked.spec,
                runs=asked.runs,
                ended=len(runs),
                n=n,
                mean=mean,
                std=std,
                ci=ci,
                best=best,
                diverged=tuple((r.seed, r.diverged_step) for r in runs if r.status == "diverged"),
                stalled=tuple(r.seed for r in runs if did_not_learn(r)),
                reached=0,
                epochs_to=None,
                seconds_to=None,
                seconds=statistics.fmean(r.seconds for r in runs) if runs else None,
                unmeasured=tuple(r.seed for r in runs if unmeasured(r)),
                optimizer_params=asked.params,
                plateau=asked.plateau,
            )
        )
    sign = -1.0 if result.higher_is_better else 1.0

    def rank(s: Summary) -> tuple[bool, float, float]:  # those with no mean keep the experiment's order
        return (True, 0.0, 0.0) if s.mean is None else (False, _lost_share(s), sign * s.mean)

    out.sort(key=rank)
    return out, by_label


def _num(x: float | None, digits: int = 4) -> str:
    return "—" if x is None or not math.isfinite(x) else f"{x:.{digits}g}"


def _optimizer_args(optimizer: str, params: Mapping[str, Any] | None) -> list[str]:
    """``["betas=(0.9, 0.99)", "weight_decay=0.1"]``: the hyper-parameters of ``optimizer`` with ``params``
    that a reader needs to tell it from another (:func:`~lrkit.lab.runner.shown_settings`: those that
    differ from its class's defaults and those its name sets, ``momentum=0.9``); none where the run kept
    none. Each value as :func:`~lrkit.tasks.optimizers.format_optimizer` writes it (``true``, ``none``),
    so the column reads back as ``--strategy`` and ``--optimizer`` take it."""
    if not optimizer or params is None:
        return []
    from ..tasks.optimizers import _literal

    return [f"{k}={_literal(v)}" for k, v in shown_settings(optimizer, params).items()]


def optimizer_text(optimizer: str, params: Mapping[str, Any] | None) -> str:
    """An optimizer as the report's table names it: ``adamw(betas=(0.9, 0.99), weight_decay=0.1)``,
    ``momentum(momentum=0.9)``, ``adam`` (every setting torch's default); the name alone where the
    hyper-parameters are not known (``params`` None)."""
    args = _optimizer_args(optimizer, params)
    return f"{optimizer}({', '.join(args)})" if args else optimizer


def optimizer_note(rows: Sequence[Summary], t: Messages = _EN) -> str:
    """The note under the summary table: what its optimizer column shows, with an example taken from the
    table (code, the same in every language): the first row (in the table's order) whose optimizer shows
    settings, as ``adamw: weight_decay=0.05``; no example where no row shows any (every optimizer at
    torch's defaults, or settings not known)."""
    for s in rows:
        args = _optimizer_args(s.optimizer, s.optimizer_params)
        if args:
            return t("note.optimizer", example=f"{s.optimizer}: {', '.join(args)}")
    return t("note.optimizer.plain")


def plateau_text(plateau: Mapping[str, Any] | None, higher_is_better: bool) -> str:
    """A strategy's reduce-on-plateau as the report names it, after its spec: ``plateau(factor=0.5,
    patience=2)``, with the settings that differ from the lab's defaults (:class:`~lrkit.control.Plateau`'s,
    ``mode`` the task's direction: ``max`` when ``higher_is_better``), in Plateau's order, each value as
    the optimizer column writes one (``threshold_mode='abs'``); ``plateau()`` where every setting is a
    default; ``""`` for none (``plateau`` None). A setting left out of ``plateau`` is its default."""
    if plateau is None:
        return ""
    from ..tasks.optimizers import _literal

    defaults = plateau_settings({}, higher_is_better)
    args = [f"{k}={_literal(plateau[k])}" for k in PLATEAU_KEYS if k in plateau and plateau[k] != defaults[k]]
    return f"plateau({', '.join(args)})"


def _with_plateau(text: str, plateau: Mapping[str, Any] | None, higher_is_better: bool) -> str:
    """``text`` (a spec, a label) followed by `` + plateau(...)`` (:func:`plateau_text`) for a strategy
    with reduce-on-plateau; ``text`` alone for one without."""
    shown = plateau_text(plateau, higher_is_better)
    return f"{text} + {shown}" if shown else text


#: the optimizers whose recorded LR is their step size ``d * lr`` (:func:`lrkit.tasks.base.effective_lr`:
#: they keep an estimate ``d`` in their parameter group, and ``lr`` multiplies it), with their names
STEP_SIZE_OPTIMIZERS = {"prodigy": "Prodigy"}


def _step_size_names(result: LabResult) -> str:
    """The names of the optimizers of ``result``'s runs whose LR curve is ``d * lr``
    (:data:`STEP_SIZE_OPTIMIZERS`), ``"Prodigy"``; ``""`` where no run used one."""
    used = {r.optimizer for r in result.runs}
    return ", ".join(name for opt, name in STEP_SIZE_OPTIMIZERS.items() if opt in used)


def _step_size_note(names: str, t: Messages = _EN) -> str:
    """The note under the LR figure where runs of ``names`` (:func:`_step_size_names`) are in the lab."""
    return t("note.lr.step_size", names=names, step="d·lr", lr="lr", d="d")


def _plateau_note(t: Messages = _EN) -> str:
    """The note under the summary table that says what ``+ plateau(...)`` is (:func:`plateau_text`)."""
    return t("note.plateau", shown="+ plateau(...)", cls="lrkit.control.Plateau")


def _cells(s: Summary, t: Messages = _EN) -> dict[str, str]:
    """The table's cells for one strategy, as plain text (escape before use). A strategy with no finished
    run in a lab not run to the end says so, its other cells empty."""
    if s.n == 0:
        mean, sd, ci = t("cell.all_diverged" if s.ended == s.runs else "cell.none"), "—", "—"
    elif s.n == 1:
        mean, sd, ci = _num(s.mean), "n=1", "n=1"
    else:
        assert s.ci is not None  # n >= 2
        mean, sd, ci = _num(s.mean), _num(s.std, 3), f"[{_num(s.ci[0])}, {_num(s.ci[1])}]"
    if s.reached:
        ep = f"{s.epochs_to:.3g}" + (
            "" if s.reached == s.runs else t("cell.seeds_reached", reached=s.reached, runs=s.runs)
        )
        sec = f"{s.seconds_to:.3g}"
    else:
        ep, sec = t("cell.not_reached") if s.ended else "—", "—"
    steps = ", ".join(str(step) for _, step in s.diverged)
    div = "—" if not s.diverged else t("cell.diverged_at", k=len(s.diverged), runs=s.runs, steps=steps)
    stalled = "—" if not s.stalled else f"{len(s.stalled)}/{s.runs}"
    unmeasured = t("cell.unmeasured", k=len(s.unmeasured)) if s.unmeasured else ""
    return {
        "strategy": s.label,
        "optimizer": optimizer_text(s.optimizer, s.optimizer_params) or "—",
        "n": f"{s.n}/{s.runs}{unmeasured}",
        "mean": mean,
        "sd": sd,
        "ci": ci,
        "best": _num(s.best),
        "epochs": ep,
        "seconds": sec,
        "diverged": div,
        "stalled": stalled,
        "s/run": _num(s.seconds, 3),
    }


#: the summary table's columns (keys of :func:`_cells`), with their English headers (``{m}``: the metric)
HEADERS = {
    k: _EN(f"header.{k}", m="{m}")
    for k in (
        "strategy",
        "optimizer",
        "n",
        "mean",
        "sd",
        "ci",
        "best",
        "epochs",
        "seconds",
        "diverged",
        "stalled",
        "s/run",
    )
}


def _header(key: str, result: LabResult, t: Messages) -> str:
    return t(f"header.{key}", m=t.metric(result.metric_name))


def _target_text(result: LabResult, target: float | None, given: bool, t: Messages = _EN) -> str:
    if target is None:
        return t("target.none")
    m, op = t.metric(result.metric_name), "≥" if result.higher_is_better else "≤"
    if given:
        return t("target.given", m=m, op=op, target=f"{target:.4g}")
    return t("target.default", m=m, op=op, target=f"{target:.4g}", fraction=f"{TARGET_FRACTION:.0%}")


# --------------------------------------------------------------------------------------------------
# escaping
# --------------------------------------------------------------------------------------------------
_MD_SPECIAL = re.compile(r"([\\`*_\[\]<>|&$~#])")


def escape_markdown(text: str) -> str:
    """``text`` safe in a Markdown table cell: Markdown/HTML punctuation (``|``, ``<``, ``*``, ``$``, ...)
    backslash-escaped, line breaks turned into spaces, control characters written as ``repr`` writes them
    (``\\x1b``: a label from a database someone sent cannot drive a terminal that shows lab.md)."""
    return _MD_SPECIAL.sub(r"\\\1", printable(" ".join(str(text).splitlines())))


def plain_markdown(text: str) -> str:
    """lab.md's text for a terminal: without lrkit's mark, and every :func:`escape_markdown` undone
    (``schedulefree_adamw``, ``[0.95, 0.97]``, ``a >> b``), exactly, since each backslash it wrote escapes
    the character after it. Control characters other than line breaks are shown escaped (``\\x1b``),
    so that what is printed cannot drive the terminal."""
    lines = text.splitlines(keepends=True)
    if lines and lines[0].strip() == MD_MARK:
        lines = lines[1:]
    return printable(re.sub(r"\\(.)", r"\1", "".join(lines)), lines=True)


def escape_mathtext(text: str) -> str:
    """``text`` drawn verbatim by matplotlib (with ``text.usetex`` off): every ``$`` becomes ``\\$``, so
    nothing is parsed as mathtext, and matplotlib turns each ``\\$`` back into ``$`` when drawing."""
    return str(text).replace("$", r"\$")


def _cut_middle(text: str, n: int) -> str:
    """``text`` in at most ``n`` characters: its head and its tail, ``…`` between them."""
    if len(text) <= n:
        return text
    tail = (n - 1) // 2
    return text[: n - 1 - tail] + "…" + text[len(text) - tail :]


def legend_names(labels: Sequence[str], n: int = LEGEND_CHARS) -> dict[str, str]:
    """Each of ``labels`` (distinct) as a legend shows it: on one line, in at most ``n`` characters, cut in
    the middle (:func:`_cut_middle`: two names that differ only at their end, a spec's last number, stay
    apart). Names the cut makes one get twice the room, and again, up to the whole line, then
    ``repr(label)`` (line breaks differ where spaces are the same): distinct labels, distinct names."""

    def candidates(label: str) -> list[str]:
        line = " ".join(str(label).splitlines())
        out, width = [], n
        while width < len(line):
            out.append(_cut_middle(line, width))
            width *= 2
        return [*out, line, repr(label)]

    ladders = {label: candidates(label) for label in labels}
    level = dict.fromkeys(labels, 0)
    while True:
        names = {label: ladders[label][level[label]] for label in labels}
        seen: dict[str, list[str]] = {}
        for label, name in names.items():
            seen.setdefault(name, []).append(label)
        shared = [lb for group in seen.values() if len(group) > 1 for lb in group]
        if not shared:
            return names
        for label in shared:
            level[label] = min(level[label] + 1, len(ladders[label]) - 1)


# --------------------------------------------------------------------------------------------------
# figures
# --------------------------------------------------------------------------------------------------
LINESTYLES = ("-", "--", "-.", ":")
_DASHES = {"-": "", "--": "6,3", "-.": "6,2,1.5,2", ":": "1.5,2"}
#: within an optimizer's group, the smallest peak LR is mixed this far towards white, the largest this
#: far towards black (the shades between are evenly spaced)
LIGHTEST, DARKEST = 0.45, 0.3


def _style(i: int) -> tuple[str, str]:
    """Colour (tab10) and line style of the i-th strategy: 40 distinct combinations."""
    from matplotlib import colormaps
    from matplotlib.colors import to_hex

    return to_hex(colormaps["tab10"](i % 10)), LINESTYLES[(i // 10) % len(LINESTYLES)]


def _peak_lr(runs: Sequence[RunRecord]) -> float:
    """The largest finite LR any of the runs used (-inf when none was recorded)."""
    lrs = [v for r in runs for v in r.lrs if v is not None and math.isfinite(v)]
    return max(lrs, default=-math.inf)


def _shade(color: str, t: float) -> str:
    """``color`` mixed towards white (``t`` < 0, by ``-t``) or black (``t`` > 0, by ``t``)."""
    from matplotlib.colors import to_hex, to_rgb

    r, g, b = (c + (-t) * (1.0 - c) if t < 0 else c * (1.0 - t) for c in to_rgb(color))
    return to_hex((r, g, b))


def _shape(spec: str) -> str:
    """A schedule spec with its numbers blanked: ``constant(lr=0.001)`` -> ``constant(lr=#)``."""
    return re.sub(r"(?<![a-z_\d.])(?:\d+(?:\.\d*)?|\.\d+)(?:e[-+]?\d+)?", "#", spec.lower())


def _groups(result: LabResult) -> list[list[str]]:
    """The labels grouped by optimizer (groups in order of first appearance), each group ordered by its
    strategies' peak LR, smallest first (ties keep the experiment's order), when the lab is an LR sweep
    of several optimizers: within each optimizer the strategies differ only in their numbers (one
    schedule shape). Otherwise (one optimizer, or schedules of different shapes under one optimizer, as
    the demo's nine) one group in the experiment's order, each strategy its own colour."""
    asked = {a.label: a for a in _asked(result)[0]}
    by_opt: dict[str, list[str]] = {}
    for a in asked.values():
        by_opt.setdefault(a.optimizer, []).append(a.label)
    sweep = all(len({_shape(asked[lb].spec) for lb in g}) == 1 for g in by_opt.values())
    if len(by_opt) == 1 or not sweep:
        return [list(asked)]
    return [sorted(g, key=lambda lb: _peak_lr(result.by_label(lb))) for g in by_opt.values()]


def _styles(result: LabResult) -> dict[str, tuple[str, str]]:
    """Colour and line style per label, in the legend's order (:func:`_groups`). In one group, the i-th
    strategy gets :func:`_style` (i) (ten colours, then dashed). In an LR sweep of several optimizers, a
    strategy's colour names its optimizer (tab10, one per optimizer) and, within the optimizer, its shade
    and line style its rank by peak LR: the k-th smallest of m is drawn in ``LINESTYLES[k % 4]`` (shifted
    by one past ten optimizers), its colour mixed from ``LIGHTEST`` towards white (smallest LR) to
    ``DARKEST`` towards black (largest), so a darker line is a larger LR."""
    groups = _groups(result)
    if len(groups) == 1:
        return {label: _style(i) for i, label in enumerate(groups[0])}
    out = {}
    for g, members in enumerate(groups):
        base = _style(g)[0]
        m = len(members)
        for k, label in enumerate(members):
            t = 0.0 if m == 1 else -LIGHTEST + (LIGHTEST + DARKEST) * k / (m - 1)
            out[label] = (_shade(base, t), LINESTYLES[(k + g // 10) % len(LINESTYLES)])
    return out


def _ema(x: np.ndarray, beta: float = 0.9) -> np.ndarray:
    """Debiased exponential moving average (as the LR finder smooths)."""
    out = np.empty(len(x))
    avg = 0.0
    for i, v in enumerate(x):
        avg = beta * avg + (1 - beta) * float(v)
        out[i] = avg / (1 - beta ** (i + 1))
    return out


def _stack(curves: Sequence[np.ndarray]) -> np.ndarray:
    """Curves of different lengths (diverged runs stop early) as rows of one NaN-padded array."""
    n = max((len(c) for c in curves), default=0)
    out = np.full((len(curves), n), np.nan)
    for i, c in enumerate(curves):
        out[i, : len(c)] = c
    return out


def _band(
    curves: Sequence[np.ndarray],
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """``(x, mean, xb, lo, hi)`` over the curves alive at each point: the mean curve at steps ``x``, and the
    band from the lowest to the highest curve at steps ``xb``. Longer than :data:`lrkit.plot.MAX_POINTS`,
    the mean is thinned by :func:`lrkit.plot.minmax_thin` (each run of steps keeps its lowest and highest
    value, :func:`lrkit.plot.thin_stride` steps a run) and the band
    spans each run's lowest and highest value, so a cyclical LR whose period is near the stride keeps its
    range (every stride-th step alone drew it flat)."""
    from ..plot import minmax_thin, runs_of, thin_stride

    a = _stack(curves)
    n = a.shape[1]
    mean, lo, hi = np.full(n, np.nan), np.full(n, np.nan), np.full(n, np.nan)
    alive = np.isfinite(a).any(axis=0)
    sub = a[:, alive]
    if sub.size:
        with np.errstate(all="ignore"):
            mean[alive], lo[alive], hi[alive] = np.nanmean(sub, 0), np.nanmin(sub, 0), np.nanmax(sub, 0)
    stride = thin_stride(n)
    if stride == 1:
        x = np.flatnonzero(alive)
        return x.astype(float), mean[x], x.astype(float), lo[x], hi[x]
    x, m = minmax_thin(mean, stride)
    runs = np.flatnonzero(runs_of(alive, stride, False).any(axis=1))
    with np.errstate(all="ignore"):
        low = np.nanmin(runs_of(lo, stride)[runs], axis=1)
        high = np.nanmax(runs_of(hi, stride)[runs], axis=1)
    xb = np.stack([runs * stride, np.minimum((runs + 1) * stride, n) - 1], axis=1).ravel()
    return x, m, xb.astype(float), np.repeat(low, 2), np.repeat(high, 2)


def _loss_curve(run: RunRecord) -> np.ndarray:
    """The run's smoothed training loss per step (NaN where the loss was not finite)."""
    losses = np.asarray(run.losses, dtype=float)
    ok = np.isfinite(losses)
    out = np.full(len(losses), np.nan)
    if ok.any():
        out[ok] = _ema(losses[ok])
    return out


class MissingFontWarning(UserWarning):
    """A Korean report's figures are drawn in English: matplotlib knows no font that has Hangul."""


def _figure_language(lang: str) -> tuple[Messages, list[str] | None]:
    """The figures' catalogue and matplotlib ``font.family`` for ``lang``. Any figure, English too, draws
    Hangul (a strategy's name, a title: shown as written) with an installed font that has it
    (:func:`_hangul_font`), after matplotlib's own (:func:`lrkit.plot.with_fallback`: glyphs missing from
    the first come from the next); None where no such font is installed. Korean text without one: English
    text and a :class:`MissingFontWarning` (boxes in place of Hangul would say nothing)."""
    from ..plot import with_fallback

    t = messages(lang)
    font = _hangul_font()
    if font is None and lang != "en":
        import matplotlib

        warnings.warn(
            f"lang={lang!r}: matplotlib finds no font with Hangul, so the figures are drawn in English "
            "(the page and lab.md are Korean); install one, e.g. NanumGothic (Debian/Ubuntu: apt install "
            "fonts-nanum) or Noto Sans CJK KR, remove matplotlib's font cache "
            f"({matplotlib.get_cachedir()}/fontlist-*.json) and make the report again (lrkit report DIR "
            f"--lang {lang})",
            MissingFontWarning,
            stacklevel=2,
        )
        return _EN, None
    return t, with_fallback(font)


@contextmanager
def _plain_text(lang: str = "en") -> Iterator[Messages]:
    """TeX off (labels are escaped for mathtext, not for TeX), and the catalogue the figure's text comes
    from, in a font that draws it (:func:`_figure_language`); make (and save) the figures inside, with
    :func:`lrkit.plot.new_figure`. With a Hangul font, matplotlib's line on the weight that font's bold
    has (:func:`lrkit.plot.not_a_weight_fallback`) is left out meanwhile."""
    from ..plot import _matplotlib, _quiet_weight_fallback

    matplotlib = _matplotlib()
    t, family = _figure_language(lang)
    rc: Any = {"text.usetex": False} if family is None else {"text.usetex": False, "font.family": family}
    quiet = _quiet_weight_fallback() if family is not None else nullcontext()
    with quiet, matplotlib.rc_context(rc):
        yield t


PANELS = ("lr", "loss", "metric")


def _fate(runs: Sequence[RunRecord], asked: int, t: Messages = _EN) -> str:
    """The legend's note on a strategy's failed runs, of the ``asked`` runs: ``" (2/3 diverged, 1/3 did not
    learn)"``."""
    n_div, n_stall = sum(r.status == "diverged" for r in runs), sum(did_not_learn(r) for r in runs)
    counts = (
        (n_div, "fig.diverged"),
        (sum(unmeasured(r) for r in runs), "fig.unmeasured"),
        (n_stall, "fig.stalled"),
    )
    notes = [t(key, k=n, runs=asked) for n, key in counts if n]
    return f" ({', '.join(notes)})" if notes else ""


def _loss_top(runs: Sequence[RunRecord]) -> float | None:
    """The top of the loss panel: twice the highest divergence threshold, ``diverge_factor`` (from the
    run's config, 10 by default) times a run's first loss (:func:`~lrkit.tasks.base.diverge_threshold`).
    A run that did not diverge stays below its own threshold, so the cut hides nothing of it, while a
    diverged run's 1e13 would squash every other curve into the bottom of a log axis. None when no
    threshold is positive."""
    tops = []
    for r in runs:
        factor = r.config.get("diverge_factor", 10.0)
        first = r.losses[0] if r.losses else math.nan
        if isinstance(factor, (int, float)) and math.isfinite(first):
            top = 2.0 * diverge_threshold(first, float(factor))
            if top > 0:
                tops.append(top)
    return max(tops) if tops else None


def _draw_panel(ax: Any, result: LabResult, panel: str, t: Messages = _EN) -> None:
    """One panel: per strategy, the mean over seeds with a min-max band (the metric's: over the finished
    seeds, those of the table's mean); x marks a diverged run (:func:`_draw_diverged`). The loss axis
    stops at :func:`_loss_top`; a diverged run's x above it is drawn on the top edge. Steps and epochs are
    whole numbers on the x axis. A metric panel with no finished seed to draw says so, with no legend
    entry for a line it does not draw. Its words are ``t``'s."""
    metric = escape_mathtext(t.metric(result.metric_name))
    # ticks at whole steps and epochs: one integer in view (a lab of one epoch) is enough
    ax.xaxis.get_major_locator().set_params(integer=True, min_n_ticks=1)
    if panel == "metric" and all(final(r) is None for r in result.runs):
        ax.set(xlabel=t("fig.epoch"), ylabel=metric, title=t("fig.metric_title", m=metric))
        ax.set(xticks=[], yticks=[])
        ax.text(0.5, 0.5, t("fig.metric_none", m=metric), transform=ax.transAxes, ha="center", va="center")
        return
    all_positive = True
    crosses: list[tuple[float, float, str]] = []  # the diverged runs' x: step, loss, colour
    top = _loss_top(result.runs) if panel == "loss" else None
    cut = False
    lr_min, lr_max = math.inf, 0.0
    asked_all = {a.label: a for a in _asked(result)[0]}
    asked = {label: a.runs for label, a in asked_all.items()}
    styles = _styles(result)
    names = legend_names(list(styles))
    for label, (color, ls) in styles.items():  # in the legend's order
        runs = result.by_label(label)
        if not runs:  # a strategy with no finished run (an interrupted lab): its table row says so
            continue
        if panel == "lr":
            curves = [np.asarray(r.lrs, dtype=float) for r in runs]
        elif panel == "loss":
            curves = [_loss_curve(r) for r in runs]
        else:
            # the seeds the table's mean is over: a diverged run's epochs before it blew up are not the
            # strategy's, and its spike would set the axis for every curve
            curves = [np.asarray(r.epoch_metrics, dtype=float) for r in runs if final(r) is not None]
        x, mean, xb, lo, hi = _band(curves)
        if panel == "metric":
            x, xb = x + 1.0, xb + 1.0  # epochs count from 1
        if panel != "metric":
            fin = mean[np.isfinite(mean)]
            all_positive = all_positive and bool((fin > 0).all())
            if panel == "lr" and (fin > 0).any():
                lr_min, lr_max = min(lr_min, float(fin[fin > 0].min())), max(lr_max, float(fin.max()))
        plateau = plateau_text(asked_all[label].plateau, result.higher_is_better)
        text = names[label] + (f" + {plateau}" if plateau else "") + _fate(runs, asked[label], t)
        marker = "o" if panel == "metric" and len(x) <= 30 else None
        ax.plot(x, mean, color=color, ls=ls, lw=1.6, marker=marker, ms=3, label=escape_mathtext(text))
        if len(curves) > 1 and len(x):
            ax.fill_between(xb, lo, hi, color=color, alpha=0.15, lw=0)
        if panel == "loss":
            for r, c in zip(runs, curves):
                if r.status == "diverged":
                    fin_idx = np.flatnonzero(np.isfinite(c))
                    if len(fin_idx):
                        y = c[fin_idx[-1]]
                        if top is not None and y > top:
                            y, cut = top, True
                        crosses.append((float(fin_idx[-1]), float(y), color))
    _draw_diverged(ax, crosses)
    if panel == "lr":
        names_d = _step_size_names(result)  # their curve is d * lr: the axis says so
        ylabel = t("fig.lr.step_size", names=names_d, step="d·lr") if names_d else t("fig.lr")
        ax.set(xlabel=t("fig.step"), ylabel=ylabel, title=t("fig.lr_title"))
        if lr_max > 0 and lr_max / lr_min >= 10:
            ax.set_yscale("log")
    elif panel == "loss":
        ax.set(
            xlabel=t("fig.step"),
            ylabel=t("fig.loss"),
            title=t("fig.loss_title") + (t("fig.loss_cut") if cut else ""),
        )
        if all_positive:
            ax.set_yscale("log")
        if top is not None and ax.get_ylim()[1] > top:
            low = min(float(ax.dataLim.y0), top)  # the lowest point drawn, with a 5% margin below it
            pad = (low / top) ** 0.05 if all_positive else None
            ax.set_ylim(low * pad if pad is not None else low - 0.05 * (top - low), top)
    else:
        ax.set(xlabel=t("fig.epoch"), ylabel=metric, title=t("fig.metric_title", m=metric))
    ax.grid(True, alpha=0.3, which="both")


#: points between the x marks of diverged runs drawn at one place, side by side
CROSS_GAP = 9.0


def _draw_diverged(ax: Any, crosses: Sequence[tuple[float, float, str]]) -> None:
    """An x per diverged run at ``(step, loss)`` in its colour; runs that diverged at one place (the same
    step, the loss the same to 2 digits: on the top edge, all) are drawn side by side, :data:`CROSS_GAP`
    points apart and centred on it, where one over another hid all but the last."""
    from matplotlib.transforms import offset_copy

    places: dict[tuple[float, str], list[tuple[float, float, str]]] = {}
    for x, y, color in crosses:
        places.setdefault((x, f"{y:.2g}"), []).append((x, y, color))
    for group in places.values():
        for i, (x, y, color) in enumerate(group):
            dx = (i - (len(group) - 1) / 2) * CROSS_GAP
            shift = offset_copy(ax.transData, fig=ax.figure, x=dx, y=0.0, units="points")
            ax.plot([x], [y], "x", color=color, ms=10, mew=2.2, clip_on=False, transform=shift)


def _legend(fig: Any, ax: Any, height: float, result: LabResult) -> None:
    """One legend below the axes (outside them, so it covers no curve), in as many columns (at most 6)
    as fit the figure's width; the figure grows by the legend's rows, so the axes keep ``height``. With
    several optimizers, each with as many strategies, it starts from one column per optimizer (the
    legend fills column by column, so each column is one optimizer)."""
    handles, labels = ax.get_legend_handles_labels()
    if not labels:  # a panel with no line (:func:`_draw_panel`): nothing to name
        return
    renderer = fig.canvas.get_renderer()
    all_groups = _groups(result)
    groups = len(all_groups) if len({len(g) for g in all_groups}) == 1 else 0
    ncol = max(1, min(len(labels), groups if 1 < groups <= 6 else 6))
    while True:
        legend = fig.legend(handles, labels, loc="outside lower center", ncol=ncol, fontsize=9, frameon=False)
        if ncol == 1 or legend.get_window_extent(renderer).width <= 0.97 * fig.bbox.width:
            break
        legend.remove()
        ncol -= 1
    fig.set_figheight(height + 0.2 + 0.2 * math.ceil(len(labels) / ncol))


def panel_figure(result: LabResult, panel: str, *, lang: str = "en") -> Any:
    """A matplotlib figure of one panel (``"lr"``, ``"loss"`` or ``"metric"``) with its legend below, its
    words in ``lang`` (see :func:`_figure_language`)."""
    if panel not in PANELS:
        raise ValueError(f"panel: expected one of {PANELS}, got {panel!r}")
    from ..plot import new_figure

    with _plain_text(lang) as t:
        width = 11.0
        fig = new_figure(figsize=(width, 4.6), layout="constrained", dpi=100)
        ax = fig.subplots()
        _draw_panel(ax, result, panel, t)
        _legend(fig, ax, 4.6, result)
    return fig


def lab_figure(
    result: LabResult, title: str | None = None, metric_name: str | None = None, *, lang: str = "en"
) -> Any:
    """The three panels side by side (LR, training loss, validation metric), one legend below them, the
    words in ``lang`` (see :func:`_figure_language`)."""
    if metric_name is not None and metric_name != result.metric_name:
        result = replace(result, metric_name=metric_name)
    from ..plot import new_figure

    with _plain_text(lang) as t:
        width = 19.0
        fig = new_figure(figsize=(width, 5.8), layout="constrained", dpi=100)
        axes = fig.subplots(1, 3)
        for ax, panel in zip(axes, PANELS):
            _draw_panel(ax, result, panel, t)
        _legend(fig, axes[0], 5.8, result)
        fig.suptitle(escape_mathtext(title or _default_title(result, t)), fontsize=14)
    return fig


def _default_title(result: LabResult, t: Messages = _EN) -> str:
    """The title of the lab's report: the strategies and seeds its lab asked for (:func:`_asked`)."""
    asked, all_seeds = _asked(result)
    seeds, n = len(all_seeds), len(asked)
    title = t(
        "title",
        name=repr(result.name),
        strategies=t.count("strategies", n),
        task=result.task,
        seeds=t.count("seeds", seeds),
    )
    return t("title.epochs", title=title, epochs=t.count("epochs", result.epochs)) if result.epochs else title


def _png(fig: Any, dpi: int = 100) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi)
    return buf.getvalue()


def plot_lab(
    result: LabResult,
    out: str | Path,
    *,
    title: str | None = None,
    metric_name: str | None = None,
    lang: str = "en",
) -> Path:
    """Save :func:`lab_figure` to ``out`` (.png, .svg or .pdf), its words in ``lang``."""
    p = Path(out)
    if p.suffix.lower() not in (".png", ".svg", ".pdf"):
        raise ValueError(f"out: expected a .png, .svg or .pdf file name, got {str(out)!r}")
    save_figure(lab_figure(result, title=title, metric_name=metric_name, lang=lang), p, dpi=110, flag="out")
    return p


# --------------------------------------------------------------------------------------------------
# files
# --------------------------------------------------------------------------------------------------
def _check_result(result: object) -> LabResult:
    if not isinstance(result, LabResult):
        raise TypeError(f"result: expected a lrkit.lab.runner.LabResult, got {type(result).__name__}")
    if not result.runs:
        raise ValueError(
            f"result: experiment {result.experiment_id} ({result.name!r}) has no finished run to report"
        )
    return result


def _out_dir(out_dir: str | Path) -> Path:
    p = Path(out_dir)
    if p.exists() and not p.is_dir():
        raise ValueError(f"out_dir: {str(p)!r} is a file; expected a directory")
    p.mkdir(parents=True, exist_ok=True)
    return p


def _write_bytes(path: Path, data: bytes) -> None:
    """:func:`lrkit._paths.write_output`: atomic, and never over a file lrkit did not write."""
    write_output(path, data, "out_dir")


def _cell(x: float | int | None) -> str:
    """A CSV cell: empty for None/NaN, ``repr`` for floats (round-trips exactly)."""
    if x is None:
        return ""
    if isinstance(x, float):
        return repr(x) if math.isfinite(x) else ("" if math.isnan(x) else repr(x))
    return str(x)


def _rerun_cells(run: RunRecord) -> list[str]:
    """The cells of ``runs.csv``'s columns after ``key`` (:func:`write_csv`), empty where the run's stored
    config lacks one."""
    cfg = run.config
    params = cfg.get("optimizer_params")
    env = env_of(run) or dict.fromkeys(ENV_FIELDS)
    factor = cfg.get("diverge_factor")
    epochs = cfg.get("epochs")
    plateau = _plateau_of(run)
    return [
        _text_cell(str(cfg.get("task", ""))),
        _cell(epochs if isinstance(epochs, int) and not isinstance(epochs, bool) else None),
        _cell(float(factor) if isinstance(factor, (int, float)) and not isinstance(factor, bool) else None),
        "" if not isinstance(params, dict) else json.dumps(params, sort_keys=True),
        *("" if env[k] is None else _text_cell(str(env[k])) for k in ENV_FIELDS),
        "" if plateau is None else json.dumps(plateau, sort_keys=True),
    ]


#: a text cell a spreadsheet would read as a formula (OWASP's "CSV injection"): = + - @, a tab or a CR first
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def _text_cell(text: str) -> str:
    """A text cell of a CSV (a run's label, spec or optimizer): one a spreadsheet would run as a formula
    (``=HYPERLINK(...)``) gets a leading ``'``, as OWASP advises, which spreadsheets show as text."""
    return "'" + text if text.startswith(_FORMULA_START) else text


def write_csv(result: LabResult, out_dir: str | Path) -> tuple[Path, Path]:
    """``runs.csv`` (one row per run, columns :data:`RUNS_COLUMNS`) and ``epochs.csv`` (one row per run
    per epoch, :data:`EPOCHS_COLUMNS`; ``seconds`` is wall time since the run started; ``status`` is the
    run's :func:`fate`). A row of ``runs.csv`` reruns its run without the database
    (:func:`~lrkit.lab.runner.run_strategy`): its ``task``, ``epochs``, ``diverge_factor`` and all of
    its ``optimizer_params`` (JSON, the task's own included) from the run's stored config, what it
    ran with (:func:`env_of`: ``torch_threads`` and the versions) and, last, its ``plateau``: every
    setting of its reduce-on-plateau (JSON, ``mode`` filled in; empty for a run without one). Missing
    values (a diverged run's final metric, a NaN, what a run from an earlier lrkit did not keep) are empty
    cells. A label that a spreadsheet would read as a formula (``=...``, ``+``, ``-``, ``@``) is written
    after a ``'``."""
    result = _check_result(result)
    out = _out_dir(out_dir)
    runs_buf, epochs_buf = io.StringIO(), io.StringIO()
    rw, ew = csv.writer(runs_buf), csv.writer(epochs_buf)
    rw.writerow(RUNS_COLUMNS)
    ew.writerow(EPOCHS_COLUMNS)
    for r in result.runs:
        rw.writerow(
            [
                _text_cell(r.label),
                _text_cell(r.spec),
                _text_cell(r.optimizer),
                r.seed,
                fate(r),
                _cell(final(r)),
                _cell(r.best_metric),
                _cell(r.diverged_step),
                r.steps,
                _cell(float(r.seconds)),
                r.key,
                *_rerun_cells(r),
            ]
        )
        n = max(len(r.epoch_metrics), len(r.epoch_losses), len(r.epoch_seconds))
        for i in range(n):
            ew.writerow(
                [
                    _text_cell(r.label),
                    r.seed,
                    r.key,
                    i + 1,
                    _cell(float(r.epoch_metrics[i]) if i < len(r.epoch_metrics) else None),
                    _cell(float(r.epoch_losses[i]) if i < len(r.epoch_losses) else None),
                    _cell(float(r.epoch_seconds[i]) if i < len(r.epoch_seconds) else None),
                ]
            )
    runs_path, epochs_path = out / "runs.csv", out / "epochs.csv"
    _write_bytes(runs_path, runs_buf.getvalue().encode("utf-8"))
    _write_bytes(epochs_path, epochs_buf.getvalue().encode("utf-8"))
    return runs_path, epochs_path


def markdown_table(result: LabResult, target: float | None = None, *, lang: str = "en") -> str:
    """The summary table in Markdown (every cell escaped), best strategy first, with the target rule;
    its words in ``lang``."""
    t = messages(lang)
    result = _check_result(result)
    rows, tgt = summarize(result, target)
    keys = list(HEADERS)
    lines = [
        "| " + " | ".join(escape_markdown(_header(k, result, t)) for k in keys) + " |",
        "|" + "---|" * len(keys),
    ]
    for s in rows:
        c = _cells(s, t)
        c["strategy"] = _with_plateau(c["strategy"], s.plateau, result.higher_is_better)
        lines.append("| " + " | ".join(escape_markdown(c[k]) for k in keys) + " |")
    notes = [escape_markdown(_target_text(result, tgt, target is not None, t)) + "."]
    notes.append(t("md.ci", cut=_cut(result, t)))
    notes.append(escape_markdown(optimizer_note(rows, t)))
    if any(s.plateau is not None for s in rows):
        notes.append(escape_markdown(_plateau_note(t)))
    # a blank line before each note: Markdown joins lines that follow each other into one paragraph
    for n in notes:
        lines += ["", n]
    return "\n".join(lines)


def write_markdown(
    result: LabResult,
    out_dir: str | Path,
    *,
    target: float | None = None,
    note: str | None = None,
    lang: str = "en",
) -> Path:
    """``lab.md``: a title line, ``note`` in bold (e.g. runs still missing), the :func:`verdict` and
    :func:`markdown_table`, in ``lang``."""
    t = messages(lang)
    result = _check_result(result)
    out = _out_dir(out_dir)
    head = f"{MD_MARK}\n# {escape_markdown(_default_title(result, t))}\n\n"
    if note:
        head += f"**{escape_markdown(note)}**\n\n"
    head += escape_markdown(_verdict_text(result, summarize(result, target)[0], t)) + "\n\n"
    text = f"{head}{markdown_table(result, target, lang=lang)}\n"
    env = environments(result, lang=lang)
    if env:
        text += f"\n{escape_markdown(env)}\n"
    p = out / "lab.md"
    _write_bytes(p, text.encode("utf-8"))
    return p


# --------------------------------------------------------------------------------------------------
# the HTML page
# --------------------------------------------------------------------------------------------------
def _js_string(text: str) -> str:
    """``text`` as a single-quoted JavaScript string that cannot end the script element."""
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'").replace("<", "\\u003c") + "'"


def _page_script(t: Messages) -> str:
    """Marks each figure with its decoded size (data-natural-width/height) and the page as loaded; shows a
    figure's alt text where it failed to decode, after ``t``'s words for that."""
    return (
        "window.addEventListener('load', function () {"
        " var ok = 0;"
        " for (var i = 0; i < document.images.length; i++) {"
        "  var img = document.images[i];"
        "  img.setAttribute('data-natural-width', String(img.naturalWidth));"
        "  img.setAttribute('data-natural-height', String(img.naturalHeight));"
        "  if (img.naturalWidth > 0) { ok++; } else {"
        "   var p = document.createElement('p'); p.className = 'broken';"
        f"   p.textContent = {_js_string(t('page.figure_failed'))} + img.alt; img.after(p); }}"
        " }"
        " document.body.setAttribute('data-figures-rendered', String(ok));"
        "});"
    )


#: the English page's script (:func:`_page_script`)
PAGE_SCRIPT = _page_script(_EN)

STYLE = """
body { font: 15px/1.45 system-ui, sans-serif; margin: 24px auto; max-width: 1240px; color: #1b1b1b;
       padding: 0 16px; }
h1 { font-size: 24px; margin-bottom: 4px; } h2 { font-size: 19px; margin-top: 28px; }
.meta { color: #555; margin-top: 0; }
table { border-collapse: collapse; margin: 8px 0; font-size: 13.5px; }
th, td { border-bottom: 1px solid #ddd; padding: 4px 8px; text-align: left; vertical-align: top; }
th { background: #f4f4f4; }
td.num { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
tr.best td { background: #eef7ee; }
.label { overflow-wrap: anywhere; min-width: 13em; max-width: 24em; }
.opt { min-width: 7em; max-width: 16em; } .opt .kv { white-space: nowrap; }
.scroll { overflow-x: auto; }
code { font-size: 12.5px; overflow-wrap: anywhere; }
img { max-width: 100%; height: auto; display: block; margin: 8px 0 20px; }
.note { color: #444; font-size: 13.5px; }
.broken { color: #b00; }
details summary { cursor: pointer; }
@media (max-width: 700px) {
  .scroll th:first-child, .scroll td:first-child { position: sticky; left: 0; z-index: 1; background: #fff;
    box-shadow: 1px 0 0 #ddd; min-width: 9em; }
  .scroll th:first-child { background: #f4f4f4; } .scroll tr.best td:first-child { background: #eef7ee; }
}
@media print {
  body { margin: 0; max-width: none; padding: 0; font-size: 12px; }
  .scroll { overflow: visible; }
  table { font-size: 9.5px; width: 100%; table-layout: auto; }
  th, td { padding: 2px 3px; }
  .label, .opt { min-width: 0; max-width: none; }
  code { font-size: 9px; } .note, .meta { font-size: 10.5px; }
  tr, img { break-inside: avoid; }
  h1, h2, h3 { break-after: avoid; }
  img { max-width: 100%; margin: 4px 0 12px; }
  details::details-content { content-visibility: visible; display: block; }
  details > summary { list-style: none; font-weight: bold; }
  details > summary::-webkit-details-marker { display: none; }
}
"""
#: what a language adds to :data:`STYLE`: Korean breaks lines between words, not inside them
LANG_STYLE = {"ko": "body { word-break: keep-all; }\n"}


def _swatch(color: str, ls: str) -> str:
    dash = f' stroke-dasharray="{_DASHES[ls]}"' if _DASHES[ls] else ""
    return (
        f'<svg width="28" height="10" aria-hidden="true"><line x1="1" y1="5" x2="27" y2="5" '
        f'stroke="{color}" stroke-width="2.5"{dash}/></svg>'
    )


def _e(text: object) -> str:
    return html.escape(str(text), quote=True)


def _summary_html(result: LabResult, rows: list[Summary], t: Messages = _EN) -> str:
    styles = _styles(result)
    keys = list(HEADERS)
    num = {"n", "mean", "sd", "ci", "best", "epochs", "seconds", "s/run"}
    head = "".join(f"<th>{_e(_header(k, result, t))}</th>" for k in keys)
    body = []
    for j, s in enumerate(rows):
        c = _cells(s, t)
        tds = []
        for k in keys:
            if k == "strategy":
                swatch = _swatch(*styles[s.label])
                spec = _with_plateau(s.spec, s.plateau, result.higher_is_better)
                tds.append(f'<td class="label">{swatch} {_e(c[k])}<br><code>{_e(spec)}</code></td>')
            elif k == "optimizer" and (args := _optimizer_args(s.optimizer, s.optimizer_params)):
                # a setting per span, kept on one line: a narrow column breaks between settings only
                commas = [","] * (len(args) - 1) + [""]  # in the span: a line never starts with one
                kv = " ".join(
                    f'<span class="kv">{_e(a)}{c}</span>' for a, c in zip(args, commas, strict=True)
                )
                tds.append(f'<td class="opt">{_e(s.optimizer)}<br><code>{kv}</code></td>')
            else:
                tds.append(f"<td{' class=num' if k in num else ''}>{_e(c[k])}</td>")
        body.append(f"<tr{' class=best' if j == 0 and s.mean is not None else ''}>{''.join(tds)}</tr>")
    rows_html = "".join(body)
    return (
        f'<div class="scroll"><table><thead><tr>{head}</tr></thead><tbody>{rows_html}</tbody></table></div>'
    )


def _why(r: RunRecord, t: Messages = _EN) -> str:
    """Why a run counted as diverged: its loss at the diverged step was not finite, or exceeded
    ``diverge_factor`` times its first step's loss (the run's config holds the factor); for a first loss
    that is not positive, the threshold it exceeded: the first loss grown by ``diverge_factor - 1`` times
    its size (:func:`~lrkit.tasks.base.diverge_threshold`)."""
    loss = r.losses[-1] if r.losses else math.nan
    if not math.isfinite(loss):
        return "NaN/inf"
    factor = r.config.get("diverge_factor")
    first = r.losses[0]
    if not isinstance(factor, (int, float)):
        return t("why.plain", loss=f"{loss:.4g}", first=f"{first:.4g}")
    if first > 0:
        return t("why.factor", loss=f"{loss:.4g}", factor=f"{factor:g}", first=f"{first:.4g}")
    threshold = diverge_threshold(first, float(factor))
    return t(
        "why.grown",
        loss=f"{loss:.4g}",
        first=f"{first:.4g}",
        k=f"{factor - 1:g}",
        size=f"{abs(first):.4g}",
        threshold=f"{threshold:.4g}",
    )


def _th(*names: str) -> str:
    """A table's header row; each of ``names`` is a header, already escaped."""
    return "<thead><tr>" + "".join(f"<th>{n}</th>" for n in names) + "</tr></thead>"


def _diverged_html(result: LabResult, t: Messages = _EN) -> str:
    runs = [r for r in result.runs if r.status == "diverged"]
    if not runs:
        return f"<p>{t('diverged.none')}</p>"
    rows = "".join(
        f'<tr><td class="label">{_e(r.label)}</td><td class=num>{r.seed}</td>'
        f"<td class=num>{_e('—' if r.diverged_step is None else r.diverged_step)}</td>"
        f"<td class=num>{r.steps}</td><td class=num>{_e(_num(r.lrs[-1] if r.lrs else None))}</td>"
        f"<td class=num>{_e(_why(r, t))}</td></tr>"
        for r in runs
    )
    head = _th(
        t("header.strategy"),
        t("col.seed"),
        t("col.diverged_step"),
        t("col.steps_run"),
        t("col.lr_then"),
        t("col.loss_then"),
    )
    return f"<table>{head}<tbody>{rows}</tbody></table><p class=note>{t('diverged.note')}</p>"


def _percent(x: float) -> str:
    """-0.0013 -> ``-0.1%``, -0.026 -> ``-2.6%``, -0.93 -> ``-93%``, 0.25 -> ``+25%``."""
    p = 100 * x
    return f"{p:+.1f}%" if abs(p) < 10 else f"{p:+.0f}%"


def loss_change_text(result: LabResult, t: Messages = _EN) -> str:
    """One sentence of numbers: the finished run whose training loss fell least (:func:`loss_change`),
    ``'too small: constant 0.00015' (seed 0), 2.305 → 2.302 (-0.1%) in 4 epochs``, and the one whose loss
    fell most; empty where no run has a :func:`loss_change`. A run that barely moved shows as such, though
    :func:`did_not_learn` does not flag it."""
    changes = [(c, i, r) for i, r in enumerate(result.runs) if (c := loss_change(r)) is not None]
    if not changes:
        return ""
    seeds = len({r.seed for _, _, r in changes}) > 1

    def named(r: RunRecord) -> str:
        return t("change.run.seed", label=r.label, seed=r.seed) if seeds else t("change.run", label=r.label)

    def moved(r: RunRecord, c: float) -> dict[str, str]:
        start = start_of(r)
        assert start is not None  # loss_change is not None
        return {"start": _num(start), "last": _num(r.epoch_losses[-1]), "change": _percent(c)}

    c0, _, r0 = min(changes, key=lambda x: (-x[0], x[1]))  # the least fall (first in the lab's order)
    c1, _, r1 = min(changes, key=lambda x: (x[0], x[1]))  # the most
    text = t(
        "change.one" if len(changes) == 1 else "change.least",
        run=named(r0),
        epochs=t.count("epochs", len(r0.epoch_losses)),
        **moved(r0, c0),
    )
    if len(changes) > 1:
        text += t("change.most", run=named(r1), **moved(r1, c1))
    return text


def _stalled_html(result: LabResult, t: Messages = _EN) -> str:
    runs = [r for r in result.runs if did_not_learn(r)]
    change = loss_change_text(result, t)
    change = f" {_e(change)}" if change else ""
    if not runs:
        return f"<p>{t('stalled.none.untrained')}{change}</p>"
    m = _e(t.metric(result.metric_name))
    rows = "".join(
        f'<tr><td class="label">{_e(r.label)}</td><td class=num>{r.seed}</td>'
        f"<td class=num>{_e(_num(start_of(r)))}</td><td class=num>{_e(_num(r.epoch_losses[-1]))}</td>"
        f"<td class=num>{_e(_num(final(r)))}</td><td class=num>{_e(_num(r.best_metric))}</td></tr>"
        for r in runs
    )
    head = _th(
        t("header.strategy"),
        t("col.seed"),
        t("col.loss_start"),
        t("col.loss_last"),
        t("col.final", m=m),
        t("col.best_m", m=m),
    )
    note = t("stalled.note.untrained")
    return f"<table>{head}<tbody>{rows}</tbody></table><p class=note>{note}{change}</p>"


def _runs_html(result: LabResult, t: Messages = _EN) -> str:
    total = sum(a.runs for a in _asked(result)[0])
    n = len(result.runs)
    summary = t("runs.all", n=n) if n == total else t("runs.finished", n=n, total=total)
    rows = "".join(
        f'<tr><td class="label">{_e(r.label)}</td><td>{_e(r.optimizer)}</td><td class=num>{r.seed}</td>'
        f"<td>{_e(t.status(fate(r)))}</td>"
        f"<td class=num>{_e(_num(final(r)))}</td>"
        f"<td class=num>{_e(_num(r.best_metric))}</td><td class=num>{r.steps}</td>"
        f"<td class=num>{r.seconds:.3g}</td><td><code>{_e(r.key)}</code></td></tr>"
        for r in result.runs
    )
    head = _th(
        t("header.strategy"),
        t("header.optimizer"),
        t("col.seed"),
        t("col.status"),
        t("col.final", m=_e(t.metric(result.metric_name))),
        t("col.best"),
        t("col.steps"),
        t("col.seconds"),
        t("col.key"),
    )
    return f"<details><summary>{summary}</summary><table>{head}<tbody>{rows}</tbody></table></details>"


def _interval(s: Summary, t: Messages = _EN) -> str:
    """The mean with its CI (or n=1), and the seeds that diverged or ended with a metric that is not finite
    (the mean is over the others only)."""
    lost = t("interval.lost", k=len(s.diverged), runs=s.runs) if s.diverged else ""
    if s.unmeasured:
        lost += t("interval.unmeasured", k=len(s.unmeasured), runs=s.runs)
    if s.ci:
        return t("interval.ci", mean=_num(s.mean), low=_num(s.ci[0]), high=_num(s.ci[1]), lost=lost)
    return t("interval.n", mean=_num(s.mean), n=s.n, lost=lost)


def _half_width(values: Sequence[float]) -> float:
    """The half-width of the 95% t-interval of the mean of ``values`` (n >= 2): t(0.975, n-1)·sd/√n."""
    n = len(values)
    return t_quantile(0.975, n - 1) * statistics.stdev(values) / math.sqrt(n)


def paired_gap(result: LabResult, best: str, other: str) -> tuple[int, float, tuple[float, float]] | None:
    """How much better ``best`` ended than ``other`` seed by seed: over the ``n`` >= 2 seeds both
    finished, ``d_i`` = the two final metrics' difference (positive: ``best`` better), their mean and
    the 95% CI ``mean ± t(0.975, n-1)·sd/√n``, cut at the range of a difference of the metric (accuracy's:
    [-1, 1]); None with fewer than 2 shared seeds. A mean or CI end within the finals' rounding
    (:data:`ROUNDING`) is 0.

    Runs of one seed start from the same initial weights (and, for lrkit's tasks, see the same
    batches), so the seed's share of the noise cancels in ``d_i``: the paired interval is the one that
    says whether the seeds separate the two (two CIs that overlap can still differ, paired)."""
    sign = 1.0 if result.higher_is_better else -1.0
    finals: list[dict[int, float]] = [{}, {}]
    for i, label in enumerate((best, other)):
        for r in result.by_label(label):
            if (f := final(r)) is not None:
                finals[i][r.seed] = f
    seeds = sorted(finals[0].keys() & finals[1].keys())
    if len(seeds) < 2:
        return None
    d = [sign * (finals[0][s] - finals[1][s]) for s in seeds]
    scale = max(abs(f[s]) for f in finals for s in seeds)
    mean = statistics.fmean(d)
    half = _half_width(d)
    width = _gap_range(result)
    ci = (max(_rounded(mean - half, scale), -width), min(_rounded(mean + half, scale), width))
    return len(d), _rounded(mean, scale), ci


def verdict(result: LabResult, rows: list[Summary], *, lang: str = "en") -> str:
    """One plain-text sentence: the best strategy, the runner-up and the gap between their mean final
    metrics (within their rounding, :data:`ROUNDING`: the same mean), and whether the seeds separate
    them: by the :func:`paired_gap`'s 95% CI over the seeds both finished (it excludes 0: they do), else
    (fewer than 2 shared seeds) by whether their own 95% CIs overlap; with one finished seed there is no
    CI to tell. Then the strategies with runs that did not learn (:func:`did_not_learn`), if any.
    In ``lang``."""
    return _verdict_text(result, rows, messages(lang))


def _verdict_text(result: LabResult, rows: list[Summary], t: Messages) -> str:
    done = [s for s in rows if s.mean is not None]
    if not done:
        return t("verdict.none")
    best, m = done[0], t.metric(result.metric_name)
    text = t("verdict.best", label=best.label, m=m, interval=_interval(best, t))
    stalled = [s for s in rows if s.stalled]
    if stalled:
        items = (t("verdict.stalled_item", label=s.label, k=len(s.stalled), runs=s.runs) for s in stalled)
        tail = t("verdict.stalled.untrained", names=", ".join(items))
    else:
        tail = ""
    if len(done) < 2:
        return text + tail
    second = done[1]
    assert best.mean is not None and second.mean is not None
    gap = _rounded(abs(best.mean - second.mean), max(abs(best.mean), abs(second.mean)))
    worse = ("lower" if second.mean < best.mean else "higher") if gap else "same"
    interval = _interval(second, t)
    text += t(f"verdict.runner_up.{worse}", label=second.label, interval=interval, gap=_num(gap, 3))
    tied = [  # the strategies after the runner-up with its mean: a tie for second place
        s.label
        for s in done[2:]
        if s.mean is not None and not _rounded(abs(s.mean - second.mean), max(abs(s.mean), abs(second.mean)))
    ]
    if tied:
        key = "verdict.tie.one" if len(tied) == 1 else "verdict.tie.other"
        text += t(key, names=", ".join(tied), label=second.label)
    paired = paired_gap(result, best.label, second.label)
    if paired is not None:
        n, mean, (lo, hi) = paired
        key = "verdict.paired." + ("apart" if lo > 0 else "reverse" if hi < 0 else "same")
        cut = _cut_gap(result, (lo, hi), t)
        text += t(key, n=n, mean=_num(mean, 3), low=_num(lo, 3), high=_num(hi, 3), cut=cut)
    elif best.ci is None or second.ci is None:
        text += t("verdict.one_seed")
    elif best.ci[0] <= second.ci[1] and second.ci[0] <= best.ci[1]:
        text += t("verdict.overlap.unpaired", n=min(best.n, second.n))
    else:
        text += t("verdict.apart")
    return text + _passed_over(result, done, t) + tail


def _passed_over(result: LabResult, done: list[Summary], t: Messages) -> str:
    """What the verdict adds where a strategy whose finished seeds average better than the best's was ranked
    below it for the seeds it lost (:func:`summarize`): the one with the best such mean, and its losses."""
    best = done[0]
    assert best.mean is not None
    sign = 1.0 if result.higher_is_better else -1.0
    better = [
        s
        for s in done[1:]
        if s.mean is not None
        and _rounded(sign * (s.mean - best.mean), max(abs(s.mean), abs(best.mean))) > 0
        and _lost_share(s) > _lost_share(best)
    ]
    if not better:
        return ""
    s = max(better, key=lambda x: sign * (x.mean or 0.0))
    counts = ((len(s.diverged), "lost.diverged"), (len(s.unmeasured), "lost.unmeasured"))
    lost = ", ".join(t(key, k=k, runs=s.runs) for k, key in counts if k)
    way = "higher" if result.higher_is_better else "lower"
    return t(f"verdict.passed_over.{way}", label=s.label, mean=_num(s.mean), lost=lost)


def _lead(t: Messages, key: str) -> str:
    """What a verdict sentence says before its ``{label}``, without the space between sentences:
    ``"Best: "``."""
    template = MESSAGES[t.lang][key]
    return template[: template.index("{label}")].lstrip()


def _verdict(result: LabResult, rows: list[Summary], t: Messages = _EN) -> str:
    """:func:`verdict` as HTML, the two labels in bold."""
    text = _e(_verdict_text(result, rows, t))
    done = [s for s in rows if s.mean is not None]
    leads = (_lead(t, "verdict.best"), _lead(t, "verdict.runner_up.lower"))
    for s, lead in zip(done[:2], leads, strict=False):
        text = text.replace(_e(lead + s.label), f"{_e(lead)}<b>{_e(s.label)}</b>", 1)
    return text


def render_html(
    result: LabResult,
    *,
    title: str | None = None,
    target: float | None = None,
    note: str | None = None,
    lang: str = "en",
) -> str:
    """The report page as a string (see :func:`write_report`)."""
    t = messages(lang)
    result = _check_result(result)
    rows, tgt = summarize(result, target)
    heading = title or _default_title(result, t)
    m = t.metric(result.metric_name)
    figures = []
    alts = {"lr": t("alt.lr"), "loss": t("alt.loss"), "metric": t("alt.metric", m=m)}
    for panel in PANELS:
        data = base64.b64encode(_png(panel_figure(result, panel, lang=lang))).decode("ascii")
        figures.append(f'<img src="data:image/png;base64,{data}" alt="{_e(alts[panel])}">')
    asked, seeds = _asked(result)
    script = _page_script(t)
    digest = base64.b64encode(hashlib.sha256(script.encode()).digest()).decode()
    csp = f"default-src 'none'; img-src data:; style-src 'unsafe-inline'; script-src 'sha256-{digest}'"
    verdict = _verdict(result, rows, t)
    d_names = _step_size_names(result)
    meta = t(
        "page.meta",
        task=f"<code>{_e(result.task)}</code>",
        id=result.experiment_id,
        name=_e(result.name),
        strategies=t.count("strategies", len(asked)),
        seeds=t(
            f"page.meta.seeds.{'one' if len(seeds) == 1 else 'other'}", seeds=_e(", ".join(map(str, seeds)))
        ),
        epochs=t("page.meta.epochs", epochs=t.count("epochs", result.epochs)) if result.epochs else "",
        runs=t.count("runs", sum(a.runs for a in asked)),
        db=f"<code>{_e(result.store_path)}</code>",
    )
    parts = [
        "<!DOCTYPE html>",
        f'<html lang="{lang}"><head><meta charset="utf-8">',
        f'<meta name="generator" content="{MARK}">',  # lrkit's mark: it overwrites only its own files
        f'<meta http-equiv="Content-Security-Policy" content="{csp}">',  # no user text in it
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>{_e(heading)}</title><style>{STYLE}{LANG_STYLE.get(lang, '')}</style></head><body>",
        f"<h1>{_e(heading)}</h1>",
        f'<p class="meta">{meta}</p>',
    ]
    env = environments(result, lang=lang)
    if env:
        parts.append(f'<p class="meta env">{_e(env)}</p>')
    if note:
        parts.append(f'<p class="note"><b>{_e(note)}</b></p>')
    summary_note = t(
        "page.summary_note",
        target=_e(_target_text(result, tgt, target is not None, t)),
        m=_e(m),
        cut=_e(_cut(result, t)),
    )
    # each note under the table is a paragraph of its own: they say different things
    notes = [summary_note, _e(optimizer_note(rows, t))]
    if any(s.plateau is not None for s in rows):
        notes.append(_e(_plateau_note(t)))
    parts += [
        f"<p>{verdict}</p>",
        f"<h2>{t('page.summary')}</h2>",
        _summary_html(result, rows, t),
        *(f'<p class="note">{n}</p>' for n in notes),
        f"<h2>{t('page.diverged')}</h2>",
        _diverged_html(result, t),
        f"<h2>{t('page.stalled')}</h2>",
        _stalled_html(result, t),
        f"<h2>{t('page.lr')}</h2>",
        figures[0],
        *([f'<p class="note">{_e(_step_size_note(d_names, t))}</p>'] if d_names else []),
        f"<h2>{t('page.loss')}</h2>",
        figures[1],
        f"<h2>{t('page.metric', m=_e(m))}</h2>",
        figures[2],
        f"<h2>{t('page.runs')}</h2>",
        _runs_html(result, t),
        f"<script>{script}</script>",
        "</body></html>",
    ]
    return "\n".join(parts) + "\n"


def write_report(
    result: LabResult,
    out_dir: str | Path,
    *,
    title: str | None = None,
    target: float | None = None,
    note: str | None = None,
    lang: str = "en",
) -> Path:
    """Write ``out_dir/report.html``, one self-contained page: the summary table (mean, sd, 95% CI,
    epochs and seconds to ``target``), the diverged runs, the runs that did not learn, and the LR,
    training-loss and metric figures (mean and min-max band over seeds). ``note`` is shown at the top
    (e.g. runs still missing). ``lang``: the page's language, ``"en"`` or ``"ko"`` (Korean)."""
    messages(lang)
    result = _check_result(result)
    out = _out_dir(out_dir)
    text = render_html(result, title=title, target=target, note=note, lang=lang)
    p = out / "report.html"
    _write_bytes(p, text.encode("utf-8"))
    return p


def write_all(
    result: LabResult,
    out_dir: str | Path,
    *,
    title: str | None = None,
    target: float | None = None,
    note: str | None = None,
    lang: str = "en",
) -> list[Path]:
    """Everything, report first: ``report.html``, ``runs.csv``, ``epochs.csv``, ``lab.md``, ``lab.png``;
    the page, ``lab.md`` and the figure in ``lang`` (``"en"`` or ``"ko"``), the CSV files in English
    whatever ``lang`` is (their columns and values are for programs)."""
    messages(lang)  # a bad lang is refused before anything is written
    result = _check_result(result)
    out = _out_dir(out_dir)
    for name in LAB_FILES:  # all or nothing: no file half-replaced before a refusal
        check_replaceable(out / name, "out_dir")
    page = write_report(result, out, title=title, target=target, note=note, lang=lang)
    runs_csv, epochs_csv = write_csv(result, out)
    md = write_markdown(result, out, target=target, note=note, lang=lang)
    png = plot_lab(result, out / "lab.png", title=title, lang=lang)
    return [page, runs_csv, epochs_csv, md, png]


# --------------------------------------------------------------------------------------------------
# from a database
# --------------------------------------------------------------------------------------------------
def _read_only_store(db: Path) -> ResultStore:
    """The report never writes: the database is opened read-only."""
    return ResultStore.open_readonly(db)


def load_result(
    db_path: str | Path,
    experiment_id: int | None = None,
    *,
    names: tuple[str, str] = ("db_path", "experiment_id"),
) -> tuple[LabResult, int]:
    """The :class:`LabResult` of experiment ``experiment_id`` (default: the latest) in ``db_path`` (a
    database, or a folder holding ``lab.db``), read-only; and how many of its runs are not finished.
    Errors name the two arguments as ``names`` says (the command line: its argument and flag)."""
    result, missing, _ = _load(db_path, experiment_id, names)
    return result, missing


def source_db(db_path: str | Path, db_name: str = "db_path") -> Path:
    """The lab database ``db_path`` names (the file, or ``lab.db`` in the folder), checked to exist and to
    be a valid path, errors naming ``db_name`` (a name over 255 bytes was Python's "File name too long")."""
    src = Path(db_path)
    db = src / "lab.db" if _stat_kind(src, db_name) == "dir" else src
    if _stat_kind(db, db_name) is None:
        raise ValueError(f"{db_name}: {str(db)!r} does not exist; expected a lab database or its directory")
    check_db_path(db, db_name)
    return db


def _load(
    db_path: str | Path, experiment_id: int | None, names: tuple[str, str]
) -> tuple[LabResult, int, ReportText]:
    """:func:`load_result`'s two, and the title, note and language the lab wrote the experiment's report
    with (:meth:`~lrkit.lab.store.ResultStore.report_texts`), read from the database in one opening."""
    db_name, id_name = names
    db = source_db(db_path, db_name)
    if experiment_id is not None:
        given = as_integer(experiment_id)  # lrkit._checks' rule: numpy's integers too
        if given is None:
            raise TypeError(
                f"{id_name}: expected an int or None, got {type(experiment_id).__name__} {experiment_id!r}"
            )
        experiment_id = given
    store = _read_only_store(db)
    try:
        exps = store.experiments()
        if not exps:
            raise ValueError(f"{db_name}: {str(db)!r} holds no experiment")
        if experiment_id is None:
            exp = exps[-1]
        else:
            found = [e for e in exps if e.id == experiment_id]
            if not found:
                raise ValueError(
                    f"{id_name}: no experiment {experiment_id} in {str(db)!r}; "
                    f"it holds {[e.id for e in exps]}"
                )
            exp = found[0]
        runs = with_start_losses(store, store.runs(exp.id))
        missing = len(store.members(exp.id)) - len(runs)
        kept = store.report_texts(exp.id)  # the title, note and language the lab wrote its report with
    finally:
        store.close()
    epochs = exp.config.get("epochs", 0)
    asked, seeds = _asked_from(exp.config, runs)
    result = StoredResult(
        exp.task,
        exp.id,
        runs,
        str(db),
        exp.name,
        exp.metric_name,
        exp.higher_is_better,
        int(epochs) if isinstance(epochs, int) else 0,
        asked,
        seeds,
    )
    return result, missing, kept


def _kept(text: str | None, phrases: str | None, t: Messages) -> str | None:
    """A title or note the lab kept, in ``t``'s language: said again from its phrases where lrkit composed
    it (:class:`~lrkit.lab._messages.Phrase`), else (the user's own, or phrases this lrkit cannot say: a
    newer one's) as it was written."""
    if phrases is not None:
        try:
            return t.say(load_phrases(phrases))
        except (ValueError, KeyError, IndexError):
            pass
    return text


def report_from_db(
    db_path: str | Path,
    out_dir: str | Path,
    experiment_id: int | None = None,
    *,
    title: str | None = None,
    target: float | None = None,
    names: tuple[str, str] = ("db_path", "experiment_id"),
    lang: str | None = None,
) -> list[Path]:
    """Re-make the report (:func:`write_all`) of the latest (or the given) experiment in ``db_path`` (a lab
    database, or a folder: ``DIR/lab.db``), opened read-only, with the title and note its lab wrote it with
    (``title`` given here wins). ``lang``: the report's language; None, the one its lab wrote it in
    (English for a database from before lrkit kept it); the title and note lrkit composed are said in
    ``lang``, one of your own is shown as written. An experiment whose runs are not all finished is
    reported with a note saying how many are missing. ``names``: see :func:`load_result`."""
    if lang is not None:
        messages(lang)  # checked before anything is read
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise ValueError(f"out_dir: {str(out)!r} is a file; expected a directory")
    result, missing, kept = _load(db_path, experiment_id, names)  # as the lab wrote it
    if lang is None:
        lang = kept.lang if kept.lang in LANGS else "en"
    t = messages(lang)
    kept_note = _kept(kept.note, kept.note_phrases, t)
    notes = [kept_note] if kept_note else []
    if missing:
        notes.append(t("note.missing", missing=missing, total=len(result.runs) + missing))
    title = _kept(kept.title, kept.title_phrases, t) if title is None else title
    return write_all(result, out, title=title, target=target, note=" ".join(notes) or None, lang=lang)
