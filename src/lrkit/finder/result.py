"""The outcome of a range test: curves, every rule's suggestion, the interval and a trust verdict.

Only numpy is imported here; :meth:`FinderResult.plot` imports matplotlib when called.
"""

from __future__ import annotations

import dataclasses
import math
import string
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

import numpy as np
from numpy.typing import NDArray

from lrkit._text import plural
from lrkit.finder import rules as _rules

if TYPE_CHECKING:
    from lrkit._checks import EpsUnderflow
    from lrkit.schedules.base import Schedule

__all__ = ["Curve", "FinderResult", "NoSuggestionError"]

#: the rules' names as the console (``str(result)``), the plot and the guide show them, where the rule's
#: name (``--rule minimum``) is not what it computes: the LR at the loss minimum, divided by 10
RULE_LABELS = {"minimum": "minimum/10"}

#: A curve is "flat" when its smoothed loss falls by less than this fraction of its starting level.
FLAT_DROP = 0.01
#: A curve is "noisy" when its drop is less than this many times the batch-to-batch noise of the loss.
NOISE_RATIO = 3.0
#: Repeats "disagree" when their suggestions span more than this many decades.
MAX_SPREAD_DECADES = 1.0
#: A starting loss at least this large is named as a likely cause of an untrusted result: a mean
#: cross-entropy starts near log(classes) (under 12 for 100,000 classes), a mean squared error of
#: standardised targets near 1; 1e3 is unscaled regression targets or a loss summed over the batch.
LARGE_LOSS = 1e3


@dataclass(frozen=True, eq=False)
class Curve:
    """One ramp: the LR of each rung, the raw and smoothed losses, and the rung where it stopped early.

    ``stopped_at`` is the index of the rung that ended the test (divergence or a non-finite loss), or
    ``None`` when the ramp reached ``end_lr``. ``skipped``: how many steps in a row a ``GradScaler``
    skipped at that rung (inf/NaN gradients, ``find_lr``'s ``max_skipped``), which ended the test there
    with the rung's real loss recorded and its smoothed loss NaN; 0 when it did not.
    """

    lrs: NDArray[np.float64]
    losses: NDArray[np.float64]
    smoothed: NDArray[np.float64]
    stopped_at: int | None = None
    skipped: int = 0

    def __post_init__(self) -> None:
        if not (self.lrs.shape == self.losses.shape == self.smoothed.shape) or self.lrs.ndim != 1:
            raise ValueError(
                "lrs, losses and smoothed must be 1-D arrays of one length, got shapes "
                f"{self.lrs.shape}, {self.losses.shape}, {self.smoothed.shape}"
            )

    @property
    def diverged(self) -> bool:
        """Whether the test ended before ``end_lr`` because the loss blew up."""
        return self.stopped_at is not None


def _log_median(values: Sequence[float]) -> float:
    """Median on the log axis (geometric mean of the two middle values for an even count), ignoring
    NaN (a repeat without a usable curve); NaN when there is no value."""
    v = np.sort(np.asarray(values, dtype=np.float64))
    v = v[np.isfinite(v)]
    n = v.size
    if n == 0:
        return math.nan
    return float(v[n // 2]) if n % 2 else math.sqrt(float(v[n // 2 - 1]) * float(v[n // 2]))


#: The finder settings that the verdict's advice names, as a caller of :func:`lrkit.finder.find_lr`
#: writes each (``schedule``: how to build a schedule from the result, ``PEAK`` standing for the
#: suggestion). A command line gives its own spelling of them with :meth:`FinderResult.phrased_for`;
#: advice that needs a setting missing there is left out.
PYTHON_SETTINGS: Mapping[str, str] = MappingProxyType(
    {
        "start_lr": "start_lr",
        "end_lr": "end_lr",
        "num_steps": "num_steps",
        "batches_per_step": "batches_per_step",
        "repeats": "repeats",
        "val_data": "val_data",
        "budget": "budget",
        "schedule": ".schedule('cosine'|'wsd')",
    }
)


@dataclass(frozen=True)
class Problem:
    """One reason not to trust a result: its ``kind``, what the curve showed (``finding``), and the
    ``remedies``, each a phrase naming the settings it needs as ``{name}`` (:data:`PYTHON_SETTINGS`),
    spelled for the reader by :meth:`text`. ``note`` follows them (e.g. " (2 of 3 repeats)")."""

    kind: str
    finding: str
    remedies: tuple[str, ...] = ()
    note: str = ""

    def text(self, settings: Mapping[str, str] = PYTHON_SETTINGS) -> str:
        """The sentence, with the remedies whose settings ``settings`` spells: "finding; a, b or c"."""
        return self.finding + _advice(self.remedies, settings, "; ") + self.note


def _advice(remedies: Sequence[str], settings: Mapping[str, str], lead: str = "") -> str:
    """``lead`` + the remedies whose every ``{name}`` is in ``settings``, spelled as ``settings`` says,
    joined "a, b or c"; "" when none is left."""
    kept = [
        r.format_map(settings)
        for r in remedies
        if {name for _, name, _, _ in string.Formatter().parse(r) if name} <= settings.keys()
    ]
    if not kept:
        return ""
    return lead + (kept[0] if len(kept) == 1 else ", ".join(kept[:-1]) + " or " + kept[-1])


#: remedies that several problems advise (see :class:`Problem`)
_MORE_BATCHES = "average more batches per step ({batches_per_step})"
#: the remedy of an ``"early"`` curve that rose (start_lr too high); one whose low first rung was noise
#: advises more signal instead, and escalation retries it as a noisy curve
LOWER_START = "lower {start_lr}"
_MORE_REPEATS = "run more repeats ({repeats})"


def _curve_problems(curve: Curve, smoothing: float = 0.9) -> list[Problem]:
    """Reasons not to trust one curve (empty when it looks fine).

    Kinds: ``"broken"`` (the loss not finite at the first rung, where the LR has not yet changed the
    model), ``"short"``, ``"flat"``, ``"early"`` (rose from the first rungs), ``"noisy"``, ``"falling"``.
    (``smoothing`` is not used by the checks yet: the noise is that of the raw loss.)
    """
    skips = _skips_problem(curve)
    if skips is not None:
        return [skips]
    if curve.losses.size and not math.isfinite(float(curve.losses[0])):
        text = (
            f"the loss was {float(curve.losses[0])} at the first rung (lr={float(curve.lrs[0]):.3g}), the "
            "model's loss before the LR could change it: check the loss function, the data and the model "
            "(no learning rate fixes this)"
        )
        return [Problem("broken", text)]
    try:
        _, y = _rules.finite_prefix(curve.lrs, curve.smoothed)
    except ValueError:
        finding = "fewer than 2 finite losses were recorded"
        return [Problem("short", finding, ("lower {start_lr}", "check the loss"))]
    raw = curve.losses[: y.size]
    head = max(3, y.size // 10)
    start = float(np.median(raw[:head]))
    i_min = int(np.argmin(y))
    drop = start - float(y[i_min])
    if drop <= FLAT_DROP * abs(start):
        fell = (
            f"fell by {drop:.3g} from {start:.3g}, less than {FLAT_DROP:.0%} of its starting level"
            if drop >= 0  # "fell by -0.133" reads as a typo: say what happened
            else f"never fell below its starting level ({start:.3g})"
        )
        remedies: tuple[str, ...] = (
            _MORE_BATCHES,
            "run a longer ramp ({num_steps})",
            "widen the range ({start_lr}, {end_lr})",
            "check that the model learns",
        )
        return [Problem("flat", f"flat: the smoothed loss {fell}", remedies)]
    problems: list[Problem] = []
    if i_min < 2:
        problems.append(_early_problem(raw, head, float(curve.lrs[0])))
    # Noise of the raw loss: robust std of first differences (MAD / 0.6745 / sqrt(2)) before the minimum.
    pre = raw[: max(i_min + 1, 3)]
    noise = float(np.median(np.abs(np.diff(pre))) / 0.6745 / math.sqrt(2.0))
    if NOISE_RATIO * noise > drop:
        finding = (
            f"noisy: the loss fell by {drop:.3g}, less than {NOISE_RATIO:g} x its batch-to-batch noise "
            f"({noise:.3g})"
        )
        remedies = (
            _MORE_BATCHES,
            "use a validation set ({val_data})",
            _MORE_REPEATS,
        )
        problems.append(Problem("noisy", finding, remedies))
    if curve.stopped_at is None and i_min >= y.size - 2:
        finding = f"the loss was still falling at the last LR ({float(curve.lrs[-1]):.3g})"
        problems.append(Problem("falling", finding, ("raise {end_lr}",)))
    return problems


def _skips_finding(curve: Curve) -> str:
    """What a curve that ended on a ``GradScaler``'s skips showed, in words ("" for one that did not)."""
    if not curve.skipped or curve.stopped_at is None:
        return ""
    i = curve.stopped_at
    loss = float(curve.losses[i])
    where = "the first rung" if i == 0 else f"rung {i}"
    return (
        f"the GradScaler skipped {curve.skipped} steps in a row at {where} (lr={float(curve.lrs[i]):.3g}): "
        f"inf/NaN gradients while the loss was {'finite, ' if math.isfinite(loss) else ''}{loss:.4g}"
    )


def _skips_problem(curve: Curve) -> Problem | None:
    """The problem of a curve that the scaler's skips ended before it had 2 finite losses: ``"broken"``
    at the first rung (the LR had not acted yet), ``"short"`` after it; None otherwise (a ramp that the
    skips ended later ended as at a blow-up: its curve up to there is used)."""
    finding = _skips_finding(curve)
    if not finding or curve.stopped_at is None or curve.stopped_at >= 2:
        return None
    fix = (
        "check the backward pass (a sqrt, norm or log at 0, a division by 0 or a float16 overflow: "
        "torch.autograd.set_detect_anomaly(True) names the op) and the scaler's init_scale"
    )
    if curve.stopped_at == 0:
        return Problem(
            "broken", f"{finding}, before the LR could change the model: {fix} (no learning rate fixes this)"
        )
    return Problem("short", f"fewer than 2 finite losses were recorded: {finding}; {fix}", (LOWER_START,))


def _early_problem(raw: NDArray[np.float64], head: int, start_lr: float) -> Problem:
    """The ``"early"`` problem of a curve whose smoothed loss was lowest at the first rungs (``raw``: its
    finite raw losses, ``head``: the rungs of its starting level).

    It advises a lower ``start_lr`` only when the loss rose: over the first half of the ramp, the median
    after the first ``head`` rungs stands more than :data:`NOISE_RATIO` x the noise above the median of
    those ``head`` (noise: robust std of the first differences about their median, so that a steady rise
    is not taken for noise). Otherwise the low first rung is noise, which a lower ``start_lr`` cannot
    help: it advises what brings out a signal, as ``"noisy"`` does.
    """
    rose = Problem("early", "the loss rose from the first rung", (f"{LOWER_START} (now {start_lr:.3g})",))
    half = raw[: max(raw.size // 2, 2 * head)]
    if half.size <= head:  # no rung after the starting ones: nothing to tell a rise from noise with
        return rose
    steps = np.diff(half)
    noise = float(np.median(np.abs(steps - np.median(steps))) / 0.6745 / math.sqrt(2.0))
    rise = float(np.median(half[head:]) - np.median(half[:head]))
    if rise > NOISE_RATIO * noise:
        return rose
    stood = (
        f"rose only {rise:.3g} above its start, less than {NOISE_RATIO:g} x its noise ({noise:.3g})"
        if rise > 0
        else "did not rise above its start"
    )
    finding = (
        f"no LR signal: the loss was lowest at the first rung, but the first half of the ramp {stood}: "
        "noise, not a starting LR too high"
    )
    remedies = (
        _MORE_BATCHES,
        "run a longer ramp ({num_steps})",
        "use a validation set ({val_data})",
        _MORE_REPEATS,
    )
    return Problem("early", finding, remedies)


def _merge_problems(per_curve: Sequence[list[Problem]]) -> list[Problem]:
    """One problem per kind and advice (the first repeat's wording), with how many repeats had it: an
    ``"early"`` curve that rose and one whose low first rung was noise are two problems."""
    n = len(per_curve)
    merged: dict[tuple[str, tuple[str, ...]], tuple[Problem, int]] = {}
    for problems in per_curve:
        for p in problems:
            first, count = merged.get((p.kind, p.remedies), (p, 0))
            merged[(p.kind, p.remedies)] = (first, count + 1)
    return [
        p if n == 1 else dataclasses.replace(p, note=f" ({count} of {n} repeats)")
        for p, count in merged.values()
    ]


def _scale_hint(curves: Sequence[Curve]) -> list[Problem]:
    """A ``"scale"`` problem when the losses start at :data:`LARGE_LOSS` or more (said only beside
    another problem: it is advice on why, not a reason of its own)."""
    starts = [float(np.median(c.losses[:3])) for c in curves if c.losses.size]
    start = _log_median([v for v in starts if v > 0])
    if not start >= LARGE_LOSS:
        return []
    return [
        Problem(
            "scale",
            f"the loss starts at {start:.3g}: a loss this large usually means unscaled regression targets "
            "(or a loss summed over the batch), which make the range test noisy; standardise the targets "
            "(y - mean) / std, and the inputs, or average the loss over the batch",
        )
    ]


def _same_curve(a: Curve, b: Curve) -> bool:
    """Whether two repeats recorded exactly the same curve (the same LRs and losses, NaN where NaN)."""
    return np.array_equal(a.lrs, b.lrs) and np.array_equal(a.losses, b.losses, equal_nan=True)


def alike_repeats_note(
    repeats: int, distinct: int, settings: Mapping[str, str] | None = None, *, stream: bool = False
) -> str:
    """What it means that only ``distinct`` of ``repeats`` loss curves differ, and what to do: the
    repeats saw the same batches in the same order. ``settings`` phrases the advice on the repeats
    (:data:`PYTHON_SETTINGS`, a command line's flags); None leaves the setting unnamed. ``stream``: the
    batches come from an ``IterableDataset``, which a DataLoader refuses to shuffle (``shuffle=True``
    raises): the advice is to shuffle inside the stream."""
    what = (
        f"the {repeats} repeats saw the same batches in the same order (their loss curves are identical), "
        "so there is no interval"
        if distinct == 1
        else f"only {distinct} of the {repeats} repeats' loss curves differ (the others saw the same "
        "batches in the same order)"
    )
    one = "run 1 repeat" + ("" if settings is None else _advice(("({repeats})",), settings, " "))
    if stream:
        return (
            f"{what}: the IterableDataset yields its samples in the same order every pass, and a DataLoader "
            "cannot shuffle one (shuffle=True raises); shuffle inside the stream (a shuffle buffer, or an "
            "order drawn from torch's random generator, which each repeat seeds differently, not from a "
            f"generator of its own seeded the same every pass), or {one} for 1/{repeats} of the compute"
        )
    return (
        f"{what}: the training batches come in the same order every pass (a DataLoader without "
        f"shuffle=True, a list); shuffle them (shuffle=True), or {one} for 1/{repeats} of the compute"
    )


def warn_if_alike(result: FinderResult) -> None:
    """A ``UserWarning`` at the caller of ``find_lr`` (who calls this) when repeats measured the same curve
    again (:attr:`FinderResult.repeats_alike`): the training batches came in the same order every pass."""
    if result.repeats_alike:
        warnings.warn(
            f"find_lr: {alike_repeats_note(result.repeats, result.distinct_repeats, stream=result.stream)}",
            UserWarning,
            stacklevel=3,
        )


def _finite(value: float) -> float | None:
    """``value`` as a float, or None (JSON ``null``) when it is NaN or infinite."""
    return float(value) if math.isfinite(value) else None


#: The ``"format"`` of :meth:`FinderResult.to_dict`'s dict (a later version says it is newer).
RESULT_FORMAT = "lrkit.finder/1"


def _field(data: Mapping[str, Any], key: str, kind: type) -> Any:
    """``data[key]``, checked to be a ``kind`` (a bool is not an int)."""
    if key not in data:
        raise ValueError(
            f"FinderResult.from_dict: the dict has no {key!r} (not a FinderResult.to_dict() dict?)"
        )
    value = data[key]
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise TypeError(
            f"FinderResult.from_dict: {key} must be a {kind.__name__}, "
            f"got {type(value).__name__} {value!r:.60}"
        )
    return value


def _real(data: Mapping[str, Any], key: str) -> float:
    value = data.get(key)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise TypeError(f"FinderResult.from_dict: {key} must be a finite number, got {value!r:.60}")
    return float(value)


def _reals(values: Any, what: str) -> list[float]:
    """Numbers of a list, null as NaN."""
    if not isinstance(values, list):
        raise TypeError(f"FinderResult.from_dict: {what} must be a list, got {type(values).__name__}")
    out = []
    for i, v in enumerate(values):
        if v is not None and (isinstance(v, bool) or not isinstance(v, (int, float))):
            raise TypeError(f"FinderResult.from_dict: {what}[{i}] must be a number or null, got {v!r:.60}")
        out.append(math.nan if v is None else float(v))
    return out


def _curve_from(data: Any, what: str) -> Curve:
    if not isinstance(data, Mapping):
        raise TypeError(f"FinderResult.from_dict: {what} must be a dict, got {type(data).__name__}")
    arrays = {}
    for key in ("lrs", "losses", "smoothed"):
        if key not in data:
            raise ValueError(f"FinderResult.from_dict: {what} has no {key!r}")
        arrays[key] = np.asarray(_reals(data[key], f"{what}.{key}"), dtype=np.float64)
    stop = data.get("stopped_at")
    if stop is not None and (
        isinstance(stop, bool) or not isinstance(stop, int) or not 0 <= stop < arrays["lrs"].size
    ):
        raise ValueError(
            f"FinderResult.from_dict: {what}.stopped_at must be a rung's index or null, got {stop!r}"
        )
    skipped = data.get("skipped", 0)  # (a dict of an older lrkit has none)
    if isinstance(skipped, bool) or not isinstance(skipped, int) or skipped < 0:
        raise ValueError(f"FinderResult.from_dict: {what}.skipped must be an integer >= 0, got {skipped!r}")
    try:
        return Curve(**arrays, stopped_at=stop, skipped=skipped)
    except ValueError as exc:
        raise ValueError(f"FinderResult.from_dict: {what}: {exc}") from None


def _problem_from(data: Any, what: str) -> Problem:
    if (
        not isinstance(data, Mapping)
        or not isinstance(data.get("kind"), str)
        or not isinstance(data.get("finding"), str)
    ):
        raise TypeError(
            f"FinderResult.from_dict: {what} must be a dict with strings 'kind' and 'finding', "
            f"got {data!r:.80}"
        )
    remedies = data.get("remedies", [])
    if not isinstance(remedies, list) or not all(isinstance(r, str) for r in remedies):
        raise TypeError(
            f"FinderResult.from_dict: {what}.remedies must be a list of strings, got {remedies!r:.80}"
        )
    return Problem(data["kind"], data["finding"], tuple(remedies), str(data.get("note", "")))


class NoSuggestionError(ValueError):
    """The range test found no usable signal, so there is no learning rate to suggest; ``result`` is
    the :class:`FinderResult` (None when not given)."""

    def __init__(self, message: str, result: FinderResult | None = None) -> None:
        super().__init__(message)
        self.result = result


@dataclass(frozen=True, eq=False)
class FinderResult:
    """The range test's curves and suggestions, usable without plotting.

    ``lrs``, ``losses`` and ``smoothed`` are the first repeat's curve; ``curves`` has all of them.
    ``per_repeat[name]`` is rule ``name`` applied to each repeat's smoothed curve and
    ``suggestions[name]`` their median (on the log axis). ``suggestion`` is ``suggestions[rule]``;
    ``interval`` is the (lowest, highest) of that rule over the repeats (one point for one repeat, and
    for repeats that saw the same batches in the same order: :attr:`distinct_repeats`, :attr:`notes`).
    A repeat whose curve has fewer than two finite losses suggests NaN and is left out of both.
    ``trusted`` is False when a curve is flat or too noisy, rose from the first rungs, was still falling
    at ``end_lr``, or the repeats disagree by more than a decade; ``reason`` then says why, one sentence
    per problem (:attr:`findings` holds them, with their kinds and remedies). An untrusted result has no
    ``suggestion`` (None): an LR read off a curve without signal (the edge of a flat region) is not an
    answer; ``candidate`` is what the rule would have said and :meth:`require` raises
    :class:`NoSuggestionError` with the reason. ``escalation`` lists what the
    finder retried (see :func:`lrkit.finder.find_lr`'s ``budget``), ``steps`` the optimizer steps it
    spent in all and ``first_steps`` those of the first test (the budget bounds ``steps - first_steps``,
    the extra compute of the retries). ``group_ratios`` are the LRs of the optimizer's param groups
    relative to the reference group, the first with LR > 0 (:attr:`reference_group`; the suggestion
    is its LR); a group at LR 0 has ratio 0 and stayed frozen. ``settings`` is how the text's
    advice names the finder's settings (:data:`PYTHON_SETTINGS`; a command line's flags through
    :meth:`phrased_for`). ``stream``: the training batches came from an ``IterableDataset`` (which
    a DataLoader cannot shuffle), for the advice of :attr:`notes`.
    """

    curves: tuple[Curve, ...]
    per_repeat: Mapping[str, tuple[float, ...]]
    rule: str = "lrkit"
    mode: str = "exp"
    smoothing: float = 0.9
    group_ratios: tuple[float, ...] = (1.0,)
    findings: tuple[Problem, ...] = field(default=())
    escalation: tuple[str, ...] = field(default=())
    steps: int = 0
    budget: int | None = None
    first_steps: int | None = None
    settings: Mapping[str, str] = field(default_factory=lambda: PYTHON_SETTINGS)
    stream: bool = False

    def __post_init__(self) -> None:
        # a plain dict, so that the result pickles (a worker's result, copy.deepcopy, torch.save): the
        # read-only PYTHON_SETTINGS (a MappingProxyType) cannot be pickled
        object.__setattr__(self, "settings", dict(self.settings))

    @classmethod
    def from_curves(
        cls,
        curves: Sequence[Curve],
        *,
        mode: str = "exp",
        smoothing: float = 0.9,
        rule: str = "lrkit",
        group_ratios: Sequence[float] = (1.0,),
        steps: int = 0,
    ) -> FinderResult:
        """Apply every rule in :data:`lrkit.finder.rules.RULES` to each curve and judge the result."""
        if not curves:
            raise ValueError("curves must hold at least one Curve, got an empty sequence")
        if rule not in _rules.RULES:
            raise ValueError(f"rule must be one of {sorted(_rules.RULES)}, got {rule!r}")
        per: dict[str, tuple[float, ...]] = {}
        usable: list[bool] = []
        problems = _merge_problems([_curve_problems(c, smoothing) for c in curves])
        for c in curves:
            try:
                _rules.finite_prefix(c.lrs, c.smoothed)
                usable.append(True)
            except ValueError:
                usable.append(False)
        for name, fn in _rules.RULES.items():
            per[name] = tuple(
                fn(c.lrs, c.smoothed) if ok else math.nan for c, ok in zip(curves, usable, strict=True)
            )
        chosen = [v for v in per[rule] if math.isfinite(v)]
        if len(chosen) > 1:
            spread = math.log10(max(chosen) / min(chosen))
            if spread > MAX_SPREAD_DECADES:
                finding = (
                    f"the repeats disagree: the {rule!r} suggestions span {spread:.2g} decades "
                    f"({min(chosen):.3g} to {max(chosen):.3g})"
                )
                remedies = (
                    _MORE_BATCHES,
                    _MORE_REPEATS,
                )
                problems.append(Problem("disagree", finding, remedies))
        if problems and "broken" not in {p.kind for p in problems}:
            problems.extend(_scale_hint(curves))
        return cls(
            curves=tuple(curves),
            per_repeat=per,
            rule=rule,
            mode=mode,
            smoothing=smoothing,
            group_ratios=tuple(float(r) for r in group_ratios),
            findings=tuple(problems),
            steps=steps,
        )

    def blaming_eps(self, underflow: EpsUnderflow | None) -> FinderResult:
        """This result with one ``"eps"`` problem instead of its others when ``underflow`` (the
        optimizer's eps is 0 in its parameters' dtype: :func:`lrkit._checks.eps_underflow`) holds, the
        result is not trusted and a curve's loss became NaN/inf: the advice a learning rate would follow
        (a lower ``start_lr``) cannot help. Itself otherwise."""
        if underflow is None or self.trusted:
            return self
        bad = [(c, i) for c in self.curves for i in np.flatnonzero(~np.isfinite(c.losses))[:1]]
        if not bad:
            return self
        curve, i = bad[0]
        finding = (
            f"the loss became {float(curve.losses[i])} at rung {int(i)} (lr={float(curve.lrs[i]):.3g}): "
            f"{underflow.short}, and no learning rate fixes this"
        )
        return dataclasses.replace(self, findings=(Problem("eps", finding, underflow.fixes),))

    def phrased_for(self, settings: Mapping[str, str]) -> FinderResult:
        """This result with its advice naming the finder's settings as ``settings`` spells them (a
        command line's flags, e.g. ``{"repeats": "--repeats N"}``); a remedy that needs a setting
        missing from ``settings`` is left out (a command line without a validation-set flag does not
        advise one)."""
        unknown = set(settings) - set(PYTHON_SETTINGS)
        if unknown:
            raise ValueError(
                f"settings: unknown setting(s) {sorted(unknown)}; expected some of {list(PYTHON_SETTINGS)}"
            )
        return dataclasses.replace(self, settings=dict(settings))

    @property
    def problems(self) -> tuple[str, ...]:
        """One sentence per reason not to trust the result, its advice phrased for :attr:`settings`."""
        return tuple(p.text(self.settings) for p in self.findings)

    @property
    def problem_kinds(self) -> tuple[str, ...]:
        """The kind of each problem (``"flat"``, ``"noisy"``, ...), in the order of :attr:`problems`."""
        return tuple(p.kind for p in self.findings)

    # --- the first repeat's curve -------------------------------------------------------------
    @property
    def lrs(self) -> NDArray[np.float64]:
        return self.curves[0].lrs

    @property
    def losses(self) -> NDArray[np.float64]:
        return self.curves[0].losses

    @property
    def smoothed(self) -> NDArray[np.float64]:
        return self.curves[0].smoothed

    @property
    def repeats(self) -> int:
        return len(self.curves)

    # --- suggestions ------------------------------------------------------------------------------
    @property
    def suggestions(self) -> dict[str, float]:
        """Each rule's median suggestion over the repeats."""
        return {name: _log_median(v) for name, v in self.per_repeat.items()}

    @property
    def candidate(self) -> float:
        """The default rule's median over the repeats, trusted or not (NaN when no curve was usable)."""
        return _log_median(self.per_repeat[self.rule])

    @property
    def suggestion(self) -> float | None:
        """The LR to train at: the default rule's median over the repeats; None when not trusted."""
        value = self.candidate
        return value if self.trusted and math.isfinite(value) else None

    def require(self) -> float:
        """:attr:`suggestion`, or :class:`NoSuggestionError` saying why there is none and what to do."""
        value = self.suggestion
        if value is None:
            raise NoSuggestionError(self.why_none, self)
        return value

    @property
    def why_none(self) -> str:
        """Why there is no suggestion, what the finder tried and what to do next ("" when there is one):
        the message of :class:`NoSuggestionError`, its advice phrased for :attr:`settings`."""
        if self.suggestion is not None:
            return ""
        text = f"the range test found no usable learning rate: {self.reason or 'no usable curve'}"
        if self.escalation:
            text += f". The finder already tried: {'; '.join(self.escalation)}"
        return text + (f". {self.next_step[0].upper()}{self.next_step[1:]}" if self.next_step else "")

    @property
    def next_step(self) -> str:
        """What to do without a suggestion: an LR grid, or a larger budget ("" with a suggestion, and
        for a loss that is not finite before any step, which neither helps)."""
        if self.suggestion is not None or "broken" in self.problem_kinds:
            return ""
        grid = (
            "train a few short runs on an LR grid instead (lrkit tune, or lrkit lab with constant(lr=...) "
            "strategies, on your task)"
        )
        more = "a larger budget" if self.budget else "a budget"  # none: no retry was allowed
        return grid + _advice((f"give the finder {more} ({{budget}})",), self.settings, ", or ")

    @property
    def distinct_repeats(self) -> int:
        """How many of the repeats' loss curves differ: fewer than :attr:`repeats` when some saw the same
        batches in the same order (a loader that does not shuffle) and so recorded the same curve. With
        one, the result is that of one repeat: its :attr:`interval` is a point, shown as none."""
        seen: list[Curve] = []
        for c in self.curves:
            if not any(_same_curve(c, s) for s in seen):
                seen.append(c)
        return len(seen)

    @property
    def repeats_alike(self) -> bool:
        """Whether some repeats recorded the same curve although the loss varied along it: they saw the
        same batches in the same order (a curve that is one value throughout, a loss that depends on
        nothing, is alike over any batches and says nothing about them)."""
        losses = self.curves[0].losses
        varied = np.unique(losses[np.isfinite(losses)]).size > 1
        return varied and self.distinct_repeats < self.repeats

    @property
    def notes(self) -> tuple[str, ...]:
        """What the reader should know that is no reason to distrust the result (repeats alike: see
        :attr:`repeats_alike`; a ramp that a ``GradScaler``'s skips ended past its second rung, as a
        blow-up would), phrased for :attr:`settings`."""
        notes = [
            f"repeat {r}: {_skips_finding(c)}; the ramp ended there as at a blow-up"
            for r, c in enumerate(self.curves)
            if c.skipped and c.stopped_at is not None and c.stopped_at >= 2
        ]
        if self.repeats_alike:
            notes.append(
                alike_repeats_note(self.repeats, self.distinct_repeats, self.settings, stream=self.stream)
            )
        return tuple(notes)

    @property
    def interval(self) -> tuple[float, float]:
        """(lowest, highest) suggestion of the default rule over the repeats (NaN if none)."""
        v = [x for x in self.per_repeat[self.rule] if math.isfinite(x)]
        return (min(v), max(v)) if v else (math.nan, math.nan)

    @property
    def trusted(self) -> bool:
        return not self.problems

    @property
    def reason(self) -> str:
        """Why the result is not trusted ("" when it is)."""
        return " ".join(p if p.endswith(".") else p + "." for p in self.problems).rstrip(".")

    @property
    def peak_lr(self) -> float:
        """Peak LR for warmup + cosine: the suggestion itself (raises :class:`NoSuggestionError` when
        there is none).

        Measured in ``bench/finder.py --schedules``: a peak 3x the suggestion wrecked the SGD task (0.4 of
        the best accuracy) while gaining at most 1% elsewhere, so the peak is not scaled up.
        """
        return self.require()

    @property
    def max_lr(self) -> float:
        """``max_lr`` for one-cycle: the suggestion itself (3x failed on SGD, as for :attr:`peak_lr`)."""
        return self.require()

    def group_lrs(self, lr: float | None = None) -> list[float]:
        """The LR of each param group, ``lr`` x its ratio, for the reference group's LR ``lr`` (default:
        the suggestion); a group at LR 0 gets 0.

        To schedule groups with different LRs, make these their peaks: set each group's lr to its value
        and drive them with one multiplier, :meth:`schedule` with ``relative=True``::

            for group, lr in zip(optimizer.param_groups, found.group_lrs()):
                group["lr"] = lr
            scheduler = lrkit.torch.scheduler(
                optimizer, found.schedule("cosine", relative=True), total_steps=N, relative=True
            )
        """
        base = self.require() if lr is None else float(lr)
        return [base * r for r in self.group_ratios]

    @property
    def reference_group(self) -> int:
        """The index of the param group whose LR the ramp drove and the suggestion is: the first with
        LR > 0 (the groups before it were at LR 0 and stayed frozen)."""
        return next((i for i, r in enumerate(self.group_ratios) if r > 0), 0)

    @property
    def groups_note(self) -> str:
        """What the LR means for several param groups with different LRs, in words ("" for one group or
        equal LRs): the reference group, the ratios the others keep to it, and the frozen groups."""
        ratios = self.group_ratios
        if len(set(ratios)) <= 1:
            return ""
        ref = self.reference_group
        first = ", the first with LR > 0" if ref else ""
        text = (
            f"LRs for param group {ref}{first}; the {len(ratios)} param groups keep their LR ratios to it "
            f"({', '.join(f'{r:.3g}' for r in ratios)})"
        )
        frozen = [str(i) for i, r in enumerate(ratios) if r == 0]
        if frozen:
            which = f"param group {frozen[0]}" if len(frozen) == 1 else f"param groups {', '.join(frozen)}"
            text += f"; {which} at LR 0 {'stays' if len(frozen) == 1 else 'stay'} frozen"
        return text

    # --- output -----------------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        """Plain-Python summary (JSON-ready): suggestions, interval, verdict and the curves.

        A number that is not finite (the loss at the rung where the test blew up, the NaN of a rule or
        repeat without a usable curve) is ``None``, so ``json.dumps`` writes strict JSON (``null``, not
        ``NaN`` or ``Infinity``, which ``jq`` and JavaScript refuse).
        """
        return {
            "format": RESULT_FORMAT,
            "suggestion": self.suggestion,
            "candidate": _finite(self.candidate),
            "rule": self.rule,
            "interval": [_finite(v) for v in self.interval],
            "suggestions": {k: _finite(v) for k, v in self.suggestions.items()},
            "per_repeat": {k: [_finite(x) for x in v] for k, v in self.per_repeat.items()},
            "peak_lr": self.suggestion,
            "max_lr": self.suggestion,
            "trusted": self.trusted,
            "reason": self.reason,
            "problems": list(self.problem_kinds),
            "escalation": list(self.escalation),
            "steps": self.steps,
            "budget": self.budget,
            "first_steps": self.first_steps,
            "mode": self.mode,
            "smoothing": self.smoothing,
            "group_ratios": list(self.group_ratios),
            "reference_group": self.reference_group,
            "distinct_repeats": self.distinct_repeats,
            "notes": list(self.notes),
            "findings": [
                {"kind": p.kind, "finding": p.finding, "remedies": list(p.remedies), "note": p.note}
                for p in self.findings
            ],
            "settings": dict(self.settings),
            "stream": self.stream,
            "curves": [
                {
                    "lrs": [_finite(v) for v in c.lrs.tolist()],
                    "losses": [_finite(v) for v in c.losses.tolist()],
                    "smoothed": [_finite(v) for v in c.smoothed.tolist()],
                    "stopped_at": c.stopped_at,
                    "skipped": c.skipped,
                }
                for c in self.curves
            ],
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> FinderResult:
        """The result a :meth:`to_dict` dict describes (``lrkit find --json``'s file, read with
        ``json.load``): its curves, each rule's suggestion per repeat, its verdict and what the finder
        retried, so that it prints, plots and builds a schedule as the result did. A null loss or
        suggestion (not finite when written) reads as NaN. A dict written before the verdict was stored
        (no ``"findings"``) is judged again from its curves. Bad input raises ``ValueError`` or
        ``TypeError`` naming the key."""
        if not isinstance(data, Mapping):
            raise TypeError(f"FinderResult.from_dict: expected a dict, got {type(data).__name__}")
        fmt = data.get("format", RESULT_FORMAT)
        if fmt != RESULT_FORMAT:
            from lrkit.control.plateau import newer_format

            newer = newer_format(fmt, RESULT_FORMAT)
            raise ValueError(
                f"FinderResult.from_dict: format {fmt!r}"
                + (" was written by a newer lrkit: read it with that lrkit, or upgrade this one" if newer
                   else f"; expected {RESULT_FORMAT!r} (a FinderResult.to_dict() dict)")
            )  # fmt: skip
        curves = tuple(_curve_from(c, f"curves[{i}]") for i, c in enumerate(_field(data, "curves", list)))
        if not curves:
            raise ValueError("FinderResult.from_dict: curves must hold at least one curve, got []")
        rule = _field(data, "rule", str)
        per_repeat = {
            str(k): tuple(_reals(v, f"per_repeat[{k!r}]"))
            for k, v in _field(data, "per_repeat", dict).items()
        }
        if rule not in per_repeat or any(len(v) != len(curves) for v in per_repeat.values()):
            raise ValueError(
                f"FinderResult.from_dict: per_repeat must give rule {rule!r} and every rule one value per "
                f"curve ({len(curves)}), got "
                + "{"
                + ", ".join(f"{k!r}: {len(v)}" for k, v in per_repeat.items())
                + "}"
            )
        if "findings" in data:
            findings = tuple(
                _problem_from(f, f"findings[{i}]") for i, f in enumerate(_field(data, "findings", list))
            )
        else:  # an older lrkit's dict: the verdict again from the curves (the rules have not changed)
            findings = cls.from_curves(curves, smoothing=_real(data, "smoothing"), rule=rule).findings
        settings = data.get("settings", PYTHON_SETTINGS)
        if not isinstance(settings, Mapping) or not all(isinstance(v, str) for v in settings.values()):
            raise TypeError(f"FinderResult.from_dict: settings must map names to strings, got {settings!r}")
        counts = {k: data.get(k) for k in ("budget", "first_steps")}
        for key, value in counts.items():
            if value is not None and (isinstance(value, bool) or not isinstance(value, int)):
                raise TypeError(f"FinderResult.from_dict: {key} must be an integer or null, got {value!r}")
        steps = _field(data, "steps", int)
        return cls(
            curves=curves,
            per_repeat=per_repeat,
            rule=rule,
            mode=_field(data, "mode", str),
            smoothing=_real(data, "smoothing"),
            group_ratios=tuple(_reals(_field(data, "group_ratios", list), "group_ratios")),
            findings=findings,
            escalation=tuple(str(e) for e in _field(data, "escalation", list)),
            steps=steps,
            budget=counts["budget"],
            first_steps=counts["first_steps"],
            settings=settings,
            stream=bool(data.get("stream", False)),
        )

    def __repr__(self) -> str:
        """One line (the dataclass's repr printed every curve's arrays): the answer and how it was got;
        :meth:`__str__` reads the whole verdict."""
        said = "None" if self.suggestion is None else f"{self.suggestion:.4g}"
        kinds = f", problems={list(self.problem_kinds)}" if self.findings else ""
        return (
            f"FinderResult(suggestion={said}, rule={self.rule!r}, trusted={self.trusted}{kinds}, "
            f"repeats={self.repeats}, rungs={self.lrs.size}, steps={self.steps})"
        )

    def __str__(self) -> str:
        lo, hi = self.interval
        repeats = plural(self.repeats, "repeat")
        distinct = self.distinct_repeats
        if self.repeats > 1 and distinct == 1:
            repeats += ", all alike"
        # one repeat (or repeats that all recorded one curve) has no interval ("0.0823 .. 0.0823")
        spread = f", interval {lo:.3g} .. {hi:.3g}" if distinct > 1 else ""
        if self.suggestion is None and not math.isfinite(self.candidate):
            head = f"no suggested LR: no usable curve (rule {self.rule!r}, {repeats})"
        elif self.suggestion is None:
            head = (
                f"no suggested LR: no usable signal (rule {self.rule!r}, {repeats}; "
                f"it would have said {self.candidate:.3g}{spread})"
            )
        else:
            head = f"suggested LR {self.suggestion:.3g} (rule {self.rule!r}, {repeats}{spread})"
        lines = [head]
        if self.groups_note:
            lines.append(f"  {self.groups_note}")
        if any(math.isfinite(v) for v in self.suggestions.values()):
            lines.append(
                "  " + ", ".join(f"{RULE_LABELS.get(k, k)}={v:.3g}" for k, v in self.suggestions.items())
            )
        if self.suggestion is not None:
            how = _advice(("({schedule})",), self.settings, " ").replace("PEAK", f"{self.peak_lr:.3g}")
            lines.append(
                f"  use {self.peak_lr:.3g} as the peak of warmup + cosine or WSD{how}, one-cycle's max_lr, "
                "or a constant LR (Schedule-Free)"
            )
            if self.groups_note:  # one schedule in LRs cannot drive groups at different LRs
                peaks = ", ".join(f"{v:.3g}" for v in self.group_lrs(self.peak_lr))
                lines.append(
                    f"  for all {len(self.group_ratios)} param groups: set each group's lr to its peak "
                    f"(.group_lrs({self.peak_lr:.3g}): {peaks}) and drive them with one multiplier, "
                    ".schedule(kind, relative=True) in lrkit.torch.scheduler(..., relative=True)"
                )
        if self.escalation:
            first = self.steps if self.first_steps is None else self.first_steps
            of = f" of a budget of {self.budget}" if self.budget else ""
            if self.steps > first:
                spent = (
                    f"{self.steps} optimizer steps: {first} in the first test, {self.steps - first} extra{of}"
                )
                lines.append(f"  escalated ({spent}): " + "; ".join(self.escalation))
            else:  # the budget allowed no retry: say so rather than "escalated ... 0 extra"
                spent = f"{first} optimizer steps in the first test; budget {self.budget}"
                lines.append(f"  not escalated ({spent}): " + "; ".join(self.escalation))
        elif self.budget is not None:  # the first test was trusted: the budget was not touched
            flag = _advice(("({budget})",), self.settings, " ")
            lines.append(
                f"  {self.steps} optimizer steps in the first test; a retry could have added {self.budget}"
                f"{flag}, none was needed"
            )
        lines.extend(f"  note: {n}" for n in self.notes)
        if self.trusted:
            lines.append("  trusted")
        elif len(self.problems) == 1:
            lines.append("  NOT TRUSTED: " + self.reason)
        else:  # one line per problem, not one run-on paragraph
            lines.append("  NOT TRUSTED:")
            lines.extend(f"  - {p.rstrip('.')}" for p in self.problems)
        return "\n".join(lines)

    def plot(self, path: str | Path | None = None, *, ax: Any = None, title: str | None = None) -> Any:
        """Draw the curves on a log-LR axis with the suggestions and the interval; save to ``path``.

        Returns the matplotlib ``Axes``. Imports matplotlib only when called.
        """
        from lrkit.finder.plot import plot_result

        return plot_result(self, path, ax=ax, title=title)

    def schedule(self, kind: str = "cosine", *, relative: bool = False, **kwargs: Any) -> Schedule:
        """A schedule built from this result; see :func:`lrkit.finder.schedule_from_result`.

        ``relative=False`` (default): in LRs, peaking at the suggestion (the reference group's LR).
        ``relative=True``: the same curve as a multiplier peaking at 1, for ``lrkit.torch.scheduler(...,
        relative=True)`` over param groups whose lrs are set to :meth:`group_lrs` (discriminative LRs,
        which one schedule in LRs cannot give: it would set every group to the same LR). Either raises
        :class:`NoSuggestionError` when there is no suggestion.
        """
        from lrkit.finder.schedule import schedule_from_result

        if not isinstance(relative, bool):
            raise TypeError(f"relative must be True or False, got {relative!r}")
        result = self
        if relative:
            self.require()
            # this result with its suggestion at 1: the schedule's peak (one-cycle's max_lr) is exactly 1
            result = dataclasses.replace(self, per_repeat={**self.per_repeat, self.rule: (1.0,)})
        return schedule_from_result(result, kind, **kwargs)
