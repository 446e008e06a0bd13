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
      - "one-cycle=one_cycle(max_lr=0.05)"     # the command line's LABEL[@OPT]=SPEC form

Unknown keys are errors that name the key. Numbers written ``3e-4`` in YAML are read as numbers (PyYAML
reads them as strings by the YAML 1.1 rules; this loader uses YAML 1.2's float syntax).
"""

from __future__ import annotations

import math
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..spec import from_dict
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
STRATEGY_KEYS = ("label", "spec", "optimizer", "optimizer_params")
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


def _yaml_loader() -> Any:
    import yaml

    class Loader(yaml.SafeLoader):
        pass

    # YAML 1.2 floats: 3e-4, 1E5, .5, -2.0e+3 (YAML 1.1 wants a dot and a signed exponent)
    Loader.add_implicit_resolver(
        "tag:yaml.org,2002:float",
        re.compile(
            r"^[-+]?(?:\d+\.?\d*|\.\d+)[eE][-+]?\d+$|^[-+]?\d*\.\d+$|^[-+]?\.(?:inf|Inf|INF)$|^\.(?:nan|NaN|NAN)$"
        ),
        list("-+0123456789."),
    )
    return Loader


def _read(path: Path) -> dict[str, Any]:
    if not path.is_file():
        what = "a directory" if path.is_dir() else "not found"
        raise ValueError(f"experiment: {str(path)!r} is {what}; expected a .yaml, .yml or .toml file")
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
            data = yaml.load(text, Loader=_yaml_loader())  # a SafeLoader subclass: no arbitrary objects
        except yaml.YAMLError as exc:
            raise ValueError(f"experiment: {str(path)!r} is not valid YAML: {exc}") from None
        except RecursionError:
            raise ValueError(f"experiment: {str(path)!r} is nested too deeply") from None
    elif suffix == ".toml":
        import tomllib

        try:
            data = tomllib.loads(text)
        except tomllib.TOMLDecodeError as exc:
            raise ValueError(f"experiment: {str(path)!r} is not valid TOML: {exc}") from None
        except RecursionError:
            raise ValueError(f"experiment: {str(path)!r} is nested too deeply") from None
    else:
        raise ValueError(f"experiment: expected a .yaml, .yml or .toml file, got {str(path)!r}")
    if not isinstance(data, dict):
        raise ValueError(f"experiment: {str(path)!r} must hold a mapping of keys, got {type(data).__name__}")
    return data


def _int(value: Any, key: str, low: int) -> int:
    if isinstance(value, str) and value.strip().isdigit():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int) or value < low or value > 10**9:
        raise ValueError(f"experiment: {key} must be an integer >= {low}, got {value!r}")
    return value


def _float(value: Any, key: str) -> float:
    if isinstance(value, str):
        try:
            value = float(value)
        except ValueError:
            raise ValueError(f"experiment: {key} must be a number, got {value!r}") from None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ValueError(f"experiment: {key} must be a finite number, got {value!r}")
    return float(value)


def _str(value: Any, key: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise ValueError(f"experiment: {key} must be a non-empty string, got {value!r}")
    return value.strip()


def _strategy(item: Any, i: int, default_optimizer: str | None) -> Strategy:
    where = f"strategies[{i}]"
    if isinstance(item, str):
        return Strategy.parse(item, f"experiment: {where}", default_optimizer)
    if not isinstance(item, dict):
        raise ValueError(f"experiment: {where} must be a string or a mapping, got {type(item).__name__}")
    unknown = [k for k in item if k not in STRATEGY_KEYS]
    if unknown:
        raise ValueError(
            f"experiment: {where}: unknown key {unknown[0]!r}; expected {', '.join(STRATEGY_KEYS)}"
        )
    if "spec" not in item:
        raise ValueError(f"experiment: {where}: missing key 'spec'")
    spec = item["spec"]
    if isinstance(spec, dict):
        schedule: Any = from_dict(spec)
    elif isinstance(spec, str):
        schedule = spec
    else:
        raise ValueError(
            f"experiment: {where}.spec must be a spec string or mapping, got {type(spec).__name__}"
        )
    label = _str(item.get("label", spec if isinstance(spec, str) else f"strategy {i + 1}"), f"{where}.label")
    optimizer = item.get("optimizer", default_optimizer)
    params = item.get("optimizer_params") or {}
    try:
        return Strategy(label, schedule, optimizer, params)
    except (ValueError, TypeError) as exc:
        raise ValueError(f"experiment: {where}: {exc}") from None


def parse_experiment(
    data: dict[str, Any], *, base: Path | None = None, default_name: str = "lab"
) -> Experiment:
    """An :class:`Experiment` from a mapping (what a YAML/TOML file holds); relative paths are taken from
    ``base`` (the file's folder)."""
    unknown = [k for k in data if k not in TOP_KEYS]
    if unknown:
        raise ValueError(f"experiment: unknown key {unknown[0]!r}; expected one of {', '.join(TOP_KEYS)}")
    if "task" not in data:
        raise ValueError("experiment: missing key 'task' (a built-in task or 'module:function')")
    if data.get("strategies") is None:
        raise ValueError("experiment: missing key 'strategies' (a list of specs or mappings)")
    if not isinstance(data["strategies"], list):
        raise ValueError(f"experiment: strategies must be a list, got {type(data['strategies']).__name__}")
    if not data["strategies"]:
        raise ValueError("experiment: strategies is empty; expected at least one spec or mapping")
    default_opt = data.get("optimizer")
    if default_opt is not None:
        default_opt = _str(default_opt, "optimizer")
    strategies = [_strategy(item, i, default_opt) for i, item in enumerate(data["strategies"])]
    check_labels(strategies, "experiment", "label: ...")
    diverge_factor = _float(data.get("diverge_factor", 10.0), "diverge_factor")
    if not diverge_factor > 1:
        raise ValueError(f"experiment: diverge_factor must be a number > 1, got {diverge_factor!r}")
    seeds_value = data.get("seeds", 1)
    if isinstance(seeds_value, list):
        if not seeds_value:
            raise ValueError("experiment: seeds must not be empty")
        seeds = [_int(v, f"seeds[{i}]", 0) for i, v in enumerate(seeds_value)]
        if len(set(seeds)) != len(seeds):
            raise ValueError(f"experiment: seeds must be distinct, got {seeds}")
    else:
        seeds = list(range(_int(seeds_value, "seeds", 1)))

    def path(key: str) -> Path | None:
        if data.get(key) is None:
            return None
        p = Path(_str(data[key], key)).expanduser()
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
    )


def load_experiment(path: str | os.PathLike[str]) -> Experiment:
    """Read and validate an experiment file (``.yaml``/``.yml``/``.toml``)."""
    p = Path(path)
    return parse_experiment(_read(p), base=p.parent, default_name=p.stem)
