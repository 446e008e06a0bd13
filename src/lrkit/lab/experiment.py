"""Experiments as files: ``lrkit lab experiment.yaml`` (or ``.toml``).

.. code-block:: yaml

    name: digits-schedules          # stored with the runs (default: the file's stem)
    task: digits-mlp-sgd            # a built-in task or your own, "mypkg.tasks:cifar_small"
    epochs: 10                      # default: the task's budget
    seeds: 3                        # 3 -> seeds 0, 1, 2; or a list [0, 7, 42]
    workers: 2                      # default: the number of cores
    output: lab-out/                # the report, CSV files and (by default) lab.db go here
    db: lab-out/lab.db              # optional
    optimizer: momentum             # optional: the default optimizer of strategies that name none
    strategies:
      - label: warmup + cosine
        spec: "warmup(5%) >> cosine(lr=0.05)"
      - label: AdamW
        spec: "warmup(5%) >> cosine(lr=3e-4)"
        optimizer: adamw
        optimizer_params: {weight_decay: 0.05}
      - label: constant 0.05
        spec: "constant(lr=0.05)"
        plateau: {factor: 0.5, patience: 2}   # reduce-on-plateau: halve the LR after 3 flat epochs
      - "one-cycle=one_cycle(max_lr=0.05)"     # the command line's LABEL[@OPT]=SPEC form

A strategy's ``plateau`` adds reduce-on-plateau (:class:`lrkit.control.Plateau`, torch's
``ReduceLROnPlateau`` rules): after each epoch the run gives it the validation metric the lab records, and
it multiplies the schedule's LR by ``factor`` from the next step on when the metric has not improved for
``patience + 1`` epochs in a row. Its keys are Plateau's: ``factor``, ``patience``, ``threshold``,
``threshold_mode``, ``cooldown``, ``min_lr``, ``eps``, ``start`` (a step, or ``warmup``: from the end of
the schedule's warmup, the default) and ``mode`` (default: the task's direction, ``max`` for an accuracy);
``plateau: {}`` or ``plateau: true`` takes Plateau's defaults (``patience: 10``, ``factor: 0.1``). The
command line's ``--strategy`` has no plateau: give it in a file.

``strategies`` may also be a mapping from label to strategy, in the file's order: each value is what a
list entry is (a spec string, or a mapping with ``spec`` and optionally ``optimizer`` and
``optimizer_params``), and its key is its label:

.. code-block:: yaml

    strategies:
      warmup + cosine: "warmup(5%) >> cosine(lr=0.05)"
      AdamW: {spec: "warmup(5%) >> cosine(lr=3e-4)", optimizer: adamw}

An ``optimizer`` (the file's or an entry's) may carry hyper-parameters as the command line writes them,
``optimizer: "adamw(weight_decay=0.1)"``: the same as ``optimizer: adamw`` with ``optimizer_params:
{weight_decay: 0.1}`` (an entry's ``optimizer_params`` go on top of the file's optimizer's; a key given
in both an entry's ``optimizer`` and its ``optimizer_params`` is refused).

Unknown keys are errors that name the key, and so is a key written twice in one YAML mapping (PyYAML
keeps the last one silently: a strategy would be lost). YAML is read by YAML 1.2's rules, not PyYAML's
YAML 1.1 ones: ``3e-4`` is a number, ``on``/``off``/``yes``/``no`` are text (only ``true`` and
``false`` are booleans), ``012`` is 12 (not octal), ``1:30`` and ``2024-05-01`` are text. A file that
is not valid YAML or TOML is one error line, ``FILE:LINE:COLUMN: not valid YAML: PROBLEM``.
"""

from __future__ import annotations

import dataclasses
import math
import os
import re
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .._text import did_you_mean
from .._yaml import DuplicateKey, describe_error, loader
from ..schedules.duration import _short
from ..spec import MAX_NODES, from_dict, load, not_a_file
from ..tasks.optimizers import OPTIMIZERS, parse_optimizer
from .runner import Strategy, check_labels

__all__ = ["Experiment", "load_experiment", "parse_experiment"]

TOP_KEYS = (
    "name",
    "task",
    "epochs",
    "seeds",
    "workers",
    "output",
    "db",
    "optimizer",
    "strategies",
    "diverge_factor",
)
STRATEGY_KEYS = ("label", "spec", "optimizer", "optimizer_params", "plateau")
MAX_FILE_BYTES = 1_000_000


@dataclass
class Experiment:
    """A parsed experiment file (every field validated)."""

    name: str
    task: str
    strategies: list[Strategy]
    seeds: list[int] = field(default_factory=lambda: [0])
    epochs: int | None = None
    workers: int | None = None
    output: Path | None = None
    db: Path | None = None
    diverge_factor: float = 10.0
    #: the experiment file's folder: its task's module is looked for there first, then in the current
    #: directory (:func:`lrkit.tasks.base.load_factory`); None for an experiment given as flags. Where
    #: the file is, not what it asks for: two files that ask for the same are equal
    folder: Path | None = field(default=None, compare=False)


def _where(path: Path, line: int, column: int) -> str:
    return f"{path}:{line}:{column}"


def _yaml_error(path: Path, text: str, exc: Exception) -> str:
    """PyYAML's error as one line: ``FILE:LINE:COL: not valid YAML: PROBLEM (CONTEXT at LINE:COL)``."""
    at, problem = describe_error(text, exc)
    return f"experiment: {path if at is None else _where(path, *at)}: {problem}"


def _toml_error(path: Path, exc: Exception) -> str:
    """tomllib's error as one line: ``FILE:LINE:COL: not valid TOML: PROBLEM``."""
    text = str(exc)
    found = re.fullmatch(r"(.*) \(at line (\d+), column (\d+)\)", text, re.S)
    if found:
        return f"experiment: {_where(path, int(found[2]), int(found[3]))}: not valid TOML: {found[1]}"
    return f"experiment: {path}: not valid TOML: {text}"


def _read(path: Path) -> dict[str, Any]:
    if not path.is_file():
        what = f"{str(path)!r} is a directory" if path.is_dir() else not_a_file(path, repr(str(path)))
        raise ValueError(f"experiment: {what}; expected a .yaml, .yml or .toml file")
    if path.stat().st_size > MAX_FILE_BYTES:
        raise ValueError(f"experiment: {str(path)!r} is larger than {MAX_FILE_BYTES} bytes")
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise ValueError(f"experiment: {str(path)!r} is not UTF-8 text (byte {exc.start})") from None
    suffix = path.suffix.lower()
    if suffix in (".yaml", ".yml"):
        import yaml

        try:
            data = yaml.load(text, Loader=loader())  # a SafeLoader subclass: no arbitrary objects
        except yaml.YAMLError as exc:
            raise ValueError(_yaml_error(path, text, exc)) from None
        except RecursionError:
            raise ValueError(f"experiment: {str(path)!r} is nested too deeply") from None
        except DuplicateKey as dup:
            raise ValueError(
                f"experiment: {_where(path, dup.line, dup.column)}: the key {short(dup.key)} is written "
                f"twice in one mapping (first on line {dup.first}); give each key once (YAML keeps only the "
                "last)"
            ) from None
    elif suffix == ".toml":
        import tomllib

        try:
            data = tomllib.loads(text)
        except tomllib.TOMLDecodeError as exc:
            raise ValueError(_toml_error(path, exc)) from None
        except RecursionError:
            raise ValueError(f"experiment: {str(path)!r} is nested too deeply") from None
    else:
        raise ValueError(f"experiment: expected a .yaml, .yml or .toml file, got {str(path)!r}")
    if not isinstance(data, dict):
        raise ValueError(f"experiment: {str(path)!r} must hold a mapping of keys, got {type(data).__name__}")
    _count_values(data, path)
    return data


def _count_values(data: Any, path: Path) -> None:
    """Refuse a file that holds more than :data:`~lrkit.spec.MAX_NODES` values, a YAML alias counted each
    time it is used, as :func:`lrkit.spec.from_yaml` does: a few hundred bytes of nested aliases hold
    billions (and one alias of its own list holds itself for ever)."""
    left, stack = MAX_NODES, [data]
    while stack:
        value = stack.pop()
        left -= 1
        if left < 0:
            raise ValueError(
                f"experiment: {str(path)!r} holds more than {MAX_NODES:,} values (a YAML alias counts each "
                "time it is used); an experiment needs far fewer: write them out, without nested aliases"
            )
        if isinstance(value, dict):
            stack.extend(value)
            stack.extend(value.values())
        elif isinstance(value, list):
            stack.extend(value)


def short(value: Any) -> str:
    """``value``'s repr for a message: whole for text of up to 100 characters (a key, a label, as
    written), else cut short, without building the whole repr of a huge value (YAML aliases)."""
    return repr(value) if isinstance(value, str) and len(value) <= 100 else _short(value)


def _quoted(text: str) -> str:
    """``text`` in quotes as written (repr would double each backslash), or cut short (:func:`short`)."""
    return f"'{text}'" if len(text) <= 200 and text.isprintable() else short(text)


def _plain(value: Any) -> str:
    """``value`` as YAML writes it (``cosine``, ``0.1``), a long or nested one cut short (:func:`short`)."""
    text = short(value)
    return value if isinstance(value, str) and text == repr(value) else text


def _refuse_text_number(value: Any, key: str, expected: str) -> None:
    """A number written as text (``epochs: '5'``, ``diverge_factor: '1e1'``) refused naming ``key``, as
    optimizer parameters and spec values are (lrkit reads YAML by YAML 1.2's rules, so ``1e1`` unquoted is
    a number; only quotes, or a mapping read by ``yaml.safe_load``, make it text). Other text is left to
    the caller's own message."""
    if not isinstance(value, str):
        return
    try:
        x = float(value)
    except ValueError:
        return
    if not math.isfinite(x):  # 'nan', 'inf': no number, unquoted or not
        finite = "a finite number" if expected == "a number" else expected
        raise ValueError(f"experiment: {key} must be {finite}, got the text {value!r}")
    m = re.fullmatch(r"\s*([-+]?[0-9]+)[eE]([-+]?)([0-9]+)\s*", value)  # a float YAML 1.1 reads as text
    yaml11 = (
        f"; yaml.safe_load also reads {value.strip()} as text under YAML 1.1: write "
        f"{m[1]}.0e{m[2] or '+'}{m[3]}, or read the file with lrkit's experiment loader"
        if m
        else ""
    )
    raise ValueError(
        f"experiment: {key} must be {expected}, got the text {value!r}: write it unquoted (quoted, it is "
        f"text{yaml11})"
    )


def _int(value: Any, key: str, low: int) -> int:
    _refuse_text_number(value, key, f"an integer >= {low}")
    if isinstance(value, bool) or not isinstance(value, int) or value < low or value > 10**9:
        raise ValueError(f"experiment: {key} must be an integer >= {low}, got {short(value)}")
    return value


def _float(value: Any, key: str) -> float:
    _refuse_text_number(value, key, "a number")
    if isinstance(value, str):
        raise ValueError(f"experiment: {key} must be a number, got {short(value)}")
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ValueError(f"experiment: {key} must be a finite number, got {short(value)}")
    return float(value)


def _written(value: Any) -> str:
    """A number or boolean as the file wrote it (near enough to quote): True as true."""
    return str(value).lower() if isinstance(value, bool) else str(value)


def _str(value: Any, key: str) -> str:
    if not isinstance(value, str) or not value.strip():
        quote = f"; quote it ('{_written(value)}')" if isinstance(value, (bool, int, float)) else ""
        raise ValueError(f"experiment: {key} must be a non-empty string, got {short(value)}{quote}")
    return value.strip()


#: YAML 1.1's booleans that YAML 1.2 (and this loader) read as text
_YAML11_BOOLS = {"yes": True, "no": False, "on": True, "off": False, "y": True, "n": False}


def _optimizer_params(params: Any, where: str) -> Any:
    """``params``, with a boolean written as YAML 1.1's yes/no/on/off refused naming the fix (it is text
    here; the optimizer's check would call it 'not a number')."""
    for name, value in params.items() if isinstance(params, dict) else ():
        if isinstance(value, str) and value.strip().lower() in _YAML11_BOOLS:
            fix = "true" if _YAML11_BOOLS[value.strip().lower()] else "false"
            raise ValueError(
                f"experiment: {where}.optimizer_params.{name}: {short(value)} is text here (only true and "
                f"false are booleans, as in YAML 1.2 and TOML); write {fix}"
            )
    return params


def _hint(key: str, item: dict[Any, Any]) -> str:
    """What an unknown key of a strategy mapping was likely meant to be."""
    if key == "name" and "spec" in item:
        return " (did you mean 'label'?)"
    if key in ("name", "type"):  # a schedule written into the entry, {name: cosine, lr: 0.1}
        rest = {str(k): v for k, v in item.items() if k not in (*STRATEGY_KEYS, "name", "type")}
        written = ", ".join(f"{k}: {_plain(v)}" for k, v in {"type": item[key], **rest}.items())
        return f"; a schedule goes under the key spec, as a string or as spec: {{{written}}}"
    return did_you_mean(key, STRATEGY_KEYS)


def _plateau(value: Any, where: str) -> dict[str, Any] | None:
    """A strategy's ``plateau``: a mapping of :class:`~lrkit.control.Plateau`'s settings, ``{}`` or
    ``true`` for its defaults, ``false`` for none (:func:`~lrkit.lab.runner.check_plateau`); an empty
    ``plateau:`` (null) is refused, as it could mean either."""
    from .runner import check_plateau

    if value is None:
        raise ValueError(
            f"experiment: {where} is empty; give its settings ({{factor: 0.5, patience: 2}}), {{}} or true "
            "for Plateau's defaults, or leave the key out for no plateau"
        )
    for name, v in value.items() if isinstance(value, dict) else ():
        if name not in ("mode", "threshold_mode"):
            _refuse_text_number(v, f"{where}.{name}", "a number" if name != "start" else "an integer step")
    try:
        return check_plateau(value, f"experiment: {where}")
    except (TypeError, ValueError) as exc:
        raise ValueError(str(exc)) from None


def _optimizer(value: Any, where: str) -> tuple[Any, dict[str, Any]]:
    """An ``optimizer`` value: a name, or a name with hyper-parameters as the command line writes it
    (``adamw(weight_decay=0.1)``: :func:`~lrkit.tasks.optimizers.parse_optimizer`), as (name, params);
    anything else as it is, with no params (the strategy's check names it)."""
    if value is not None and not isinstance(value, str):
        raise ValueError(
            f"experiment: {where} must be an optimizer name (one of {', '.join(OPTIMIZERS)}), got "
            f"{type(value).__name__} {short(value)}"
        )
    if not (isinstance(value, str) and "(" in value):
        return value, {}
    try:
        return parse_optimizer(value)
    except ValueError as exc:
        raise ValueError(f"experiment: {where}: {exc}") from None


def _strategy(
    item: Any,
    where: str,
    default_label: str | None,
    default: tuple[str | None, dict[str, Any]],
    key: str | None = None,
) -> Strategy:
    """One strategy of the file: a list entry (``key`` None; ``where`` is ``strategies[i]``) or the
    value under the label ``key`` of the mapping form (``where`` is ``strategies.KEY``); ``default``: the
    file's optimizer and its hyper-parameters, for a strategy that names none."""
    default_optimizer, default_params = default
    if isinstance(item, str):
        parsed = Strategy.parse(item, f"experiment: {where}", default_optimizer, default_params)
        if key is None:
            return parsed
        if parsed.label != item.strip() and parsed.label != key:  # 'LABEL=SPEC' under another key
            raise ValueError(
                f"experiment: {where}: the label {short(parsed.label)} in {short(item)} differs from its key "
                f"{short(key)}; give one label (the key)"
            )
        return dataclasses.replace(parsed, label=key)
    if not isinstance(item, dict):
        raise ValueError(
            f"experiment: {where} must be a string or a mapping (a spec string, or spec with optionally "
            f"label, optimizer, optimizer_params, plateau), got {type(item).__name__} {short(item)}"
        )
    unknown = [str(k) for k in item if k not in STRATEGY_KEYS]
    if unknown:
        raise ValueError(
            f"experiment: {where}: unknown key {short(unknown[0])}; expected {', '.join(STRATEGY_KEYS)}"
            f"{_hint(unknown[0], item)}"
        )
    if "spec" not in item:
        raise ValueError(
            f"experiment: {where}: missing key 'spec' (a spec string such as 'cosine(lr=0.1)', or a "
            "mapping such as {type: cosine, lr: 0.1})"
        )
    spec = item["spec"]
    try:
        if isinstance(spec, dict):
            schedule: Any = from_dict(spec)
        elif isinstance(spec, str):
            schedule = load(spec)
        else:
            raise ValueError(f"must be a spec string or mapping, got {type(spec).__name__} {short(spec)}")
    except (ValueError, TypeError) as exc:
        raise ValueError(f"experiment: {where}.spec: {exc}") from None
    if key is None:
        fallback = spec.strip() if isinstance(spec, str) else default_label
        label = _str(item.get("label", fallback), f"{where}.label")
    else:
        label = key
        if "label" in item and _str(item["label"], f"{where}.label") != key:
            raise ValueError(
                f"experiment: {where}.label {short(item['label'])} differs from its key {short(key)}; "
                "give one label (the key), or leave label out"
            )
    optimizer, base = _optimizer(item["optimizer"], f"{where}.optimizer") if "optimizer" in item else default
    params = _optimizer_params(item.get("optimizer_params") or {}, where)
    if isinstance(params, dict):  # on top of the file's optimizer's; beside the entry's own, given once
        twice = [k for k in params if k in base] if "optimizer" in item else []
        if twice:
            raise ValueError(
                f"experiment: {where}: {short(twice[0])} is set both in optimizer {short(item['optimizer'])} "
                "and in optimizer_params; give it once"
            )
        params = {**base, **params}
    plateau = _plateau(item["plateau"], f"{where}.plateau") if "plateau" in item else None
    try:
        return Strategy(label, schedule, optimizer, params, plateau)
    except (ValueError, TypeError) as exc:
        text = str(exc)
        if key is not None:  # "strategies.b: strategy 'b':" says 'b' twice; "strategies[0]:" never
            text = text.removeprefix(f"strategy {label!r}: ")
        raise ValueError(f"experiment: {where}: {text}") from None


_PLAIN_KEY = re.compile(r"[A-Za-z0-9_-]+")


def _strategies(value: Any, default_optimizer: tuple[str | None, dict[str, Any]]) -> list[Strategy]:
    """The ``strategies`` of a file: a list of entries, or a mapping ``{label: entry}`` (file order)."""
    if isinstance(value, list):
        return [
            _strategy(item, f"strategies[{i}]", f"strategy {i + 1}", default_optimizer)
            for i, item in enumerate(value)
        ]
    out = []
    for key, item in value.items():
        if not isinstance(key, str):  # YAML reads 1:, 0.1: or true: as a number or a bool
            raise ValueError(
                f"experiment: strategies: the label {short(key)} ({type(key).__name__}) must be a string; "
                f"quote it ('{_written(key)}': ...)"
            )
        if not key.strip():
            raise ValueError(f"experiment: strategies: a label is empty ({short(key)}); expected a name")
        label = key.strip()
        where = f"strategies.{label}" if _PLAIN_KEY.fullmatch(label) else f"strategies[{short(label)}]"
        out.append(_strategy(item, where, None, default_optimizer, key=label))
    return out


def parse_experiment(
    data: dict[str, Any], *, base: Path | None = None, default_name: str = "lab"
) -> Experiment:
    """An :class:`Experiment` from a mapping (what a YAML/TOML file holds); relative paths are taken from
    ``base`` (the file's folder)."""
    unknown = [k for k in data if k not in TOP_KEYS]
    if unknown:
        raise ValueError(
            f"experiment: unknown key {short(unknown[0])}; expected one of {', '.join(TOP_KEYS)}"
            f"{did_you_mean(str(unknown[0]), TOP_KEYS)}"
        )
    if "task" not in data:
        raise ValueError("experiment: missing key 'task' (a built-in task or 'module:function')")
    if data.get("strategies") is None:
        raise ValueError(
            "experiment: missing key 'strategies' (a list of specs or mappings, or a mapping of label: spec)"
        )
    if not isinstance(data["strategies"], (list, dict)):
        raise ValueError(
            "experiment: strategies must be a list of specs or mappings, or a mapping of label: spec, "
            f"got {type(data['strategies']).__name__} {short(data['strategies'])}"
        )
    if not data["strategies"]:
        raise ValueError("experiment: strategies is empty; expected at least one spec or mapping")
    default_opt: tuple[str | None, dict[str, Any]] = (None, {})
    if data.get("optimizer") is not None:
        default_opt = _optimizer(_str(data["optimizer"], "optimizer"), "optimizer")
    strategies = _strategies(data["strategies"], default_opt)
    check_labels(strategies, "experiment", "label: ...")
    diverge_factor = _float(data.get("diverge_factor", 10.0), "diverge_factor")
    if not diverge_factor > 1:
        raise ValueError(f"experiment: diverge_factor must be a number > 1, got {short(diverge_factor)}")
    seeds_value = data.get("seeds", 1)
    both = "a count (seeds: 3 runs seeds 0, 1, 2) or a list of seeds (seeds: [0, 7, 42])"
    if isinstance(seeds_value, list):
        if not seeds_value:
            raise ValueError(f"experiment: seeds must not be empty; give {both}")
        seeds = [_int(v, f"seeds[{i}]", 0) for i, v in enumerate(seeds_value)]
        if len(set(seeds)) != len(seeds):
            raise ValueError(f"experiment: seeds must be distinct, got {seeds}")
    else:
        _refuse_text_number(seeds_value, "seeds", "an integer >= 1 or a list")
        try:
            seeds = list(range(_int(seeds_value, "seeds", 1)))
        except ValueError:
            raise ValueError(
                f"experiment: seeds must be an integer >= 1 or a list; give {both}, got {short(seeds_value)}"
            ) from None

    def path(key: str) -> Path | None:
        if data.get(key) is None:
            return None
        text = _str(data[key], key)
        if "\\" in text and os.sep != "\\":  # on Windows a backslash is a separator, as '/' is
            fixed = text.replace("\\", "/")
            warnings.warn(
                f"experiment: {key} {_quoted(text)} holds a backslash, which on this system is a character "
                "of a file name, not a separator between folders (written on Windows?): write "
                f"{_quoted(fixed)} instead, which means the same everywhere",
                UserWarning,
                stacklevel=3,
            )
        p = Path(text).expanduser()
        return p if p.is_absolute() or base is None else base / p

    return Experiment(
        name=_str(data.get("name", default_name), "name"),
        task=_str(data["task"], "task"),
        strategies=strategies,
        seeds=seeds,
        epochs=None if data.get("epochs") is None else _int(data["epochs"], "epochs", 1),
        workers=None if data.get("workers") is None else _int(data["workers"], "workers", 1),
        output=path("output"),
        db=path("db"),
        diverge_factor=diverge_factor,
        folder=base,
    )


def load_experiment(path: str | os.PathLike[str]) -> Experiment:
    """Read and validate an experiment file (``.yaml``/``.yml``/``.toml``)."""
    p = Path(path)
    return parse_experiment(_read(p), base=p.parent, default_name=p.stem)
