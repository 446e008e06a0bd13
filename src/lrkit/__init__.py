"""lrkit: learning-rate schedules in closed form, an LR finder you can trust, and a lab.

A schedule is an immutable function of the step::

    >>> import lrkit
    >>> s = lrkit.parse("warmup(steps=100) >> cosine(lr=0.1, steps=900)")
    >>> round(s(100), 6), round(s(550), 6), s(10**9)
    (0.1, 0.05, 0.0)

``import lrkit`` needs numpy alone; the framework adapters (``lrkit.torch``, ``lrkit.keras``,
``lrkit.optax``) and the finder's PyTorch driver import their framework only when used.
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.util
import sys
from typing import Any

from .schedules import (
    REGISTRY,
    REST,
    WSD,
    Chain,
    Clamp,
    Constant,
    Cosine,
    CosineRestarts,
    Cyclic,
    Duration,
    ExpDecay,
    Exponential,
    InverseSqrt,
    InverseTime,
    Linear,
    MultiStep,
    OneCycle,
    Piecewise,
    Polynomial,
    Product,
    Repeat,
    Scale,
    Schedule,
    StepDecay,
    Warmup,
    chain,
    epochs,
    fraction,
    steps,
    with_warmup,
)
from .spec import SpecError, dumps, from_dict, load, loads, parse, to_dict, to_string

__version__ = "0.1.0"

# lower-case spellings, as in specs: lrkit.cosine(lr=0.1) is lrkit.Cosine(lr=0.1)
constant = Constant
step_decay = StepDecay
multistep = MultiStep
exponential = Exponential
exp_decay = ExpDecay
inverse_time = InverseTime
inverse_sqrt = InverseSqrt
polynomial = Polynomial
linear = Linear
cosine = Cosine
cosine_restarts = CosineRestarts
cyclic = Cyclic
one_cycle = OneCycle
warmup = Warmup
wsd = WSD
piecewise = Piecewise

# framework adapters and heavier parts, imported on first use
_LAZY = {
    "torch": "lrkit.adapters.torch",
    "keras": "lrkit.adapters.keras",
    "optax": "lrkit.adapters.optax",
    "transformers": "lrkit.adapters.transformers",
    "timm": "lrkit.adapters.timm",
    "control": "lrkit.control",
    "finder": "lrkit.finder",
    "lab": "lrkit.lab",
    "recipes": "lrkit.recipes",
    "scaling": "lrkit.scaling",
}


#: the extra that installs what each lazy part needs (for the message when it is missing)
_EXTRAS = {"torch": "torch", "keras": "keras", "optax": "jax", "transformers": "torch", "timm": "torch"}
#: the packages lrkit's extras install (a missing one of these gets the pip hint)
_INSTALLED_BY_EXTRAS = frozenset(
    {
        "torch",
        "keras",
        "jax",
        "optax",
        "array_api_compat",
        "matplotlib",
        "sklearn",
        "yaml",
        "optuna",
        "mnist1d",
    }
)


def _import_lazy(name: str) -> Any:
    """``lrkit.<name>``: its module, or a ModuleNotFoundError that says what to install."""
    try:
        return importlib.import_module(_LAZY[name])
    except ModuleNotFoundError as exc:
        if exc.name == _LAZY[name]:
            raise AttributeError(f"module 'lrkit' has no attribute {name!r} ({exc})") from None
        if exc.name is None or exc.name.split(".")[0] not in _INSTALLED_BY_EXTRAS:
            raise
        extra = _EXTRAS.get(name, "lab")
        raise ModuleNotFoundError(
            f"lrkit.{name} needs {exc.name!r}, which is not installed: pip install 'lrkit[{extra}]' (or "
            f"{exc.name} itself; for PyTorch, pick the build for your machine at pytorch.org)",
            name=exc.name,
        ) from exc


class _AliasFinder(importlib.abc.MetaPathFinder):
    """Makes ``import lrkit.torch`` (and ``lrkit.keras``, ...) work as ``lrkit.torch`` does: the import
    system is handed the module of :data:`_LAZY` itself, under both names."""

    def find_spec(self, fullname: str, path: Any = None, target: Any = None) -> Any:
        prefix, _, name = fullname.partition(".")
        if prefix != "lrkit" or name not in _LAZY:
            return None
        return importlib.util.spec_from_loader(fullname, _AliasLoader(name))


class _AliasLoader(importlib.abc.Loader):
    def __init__(self, name: str) -> None:
        self.name = name
        self.spec: Any = None

    def create_module(self, spec: Any) -> Any:
        module = _import_lazy(self.name)
        self.spec = module.__spec__
        return module

    def exec_module(self, module: Any) -> None:
        """The real module ran when it was imported; give it back its own spec (importlib set ours)."""
        module.__spec__ = self.spec


if not any(isinstance(f, _AliasFinder) for f in sys.meta_path):
    sys.meta_path.append(_AliasFinder())


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return _import_lazy(name)
    if name == "find_lr":
        return importlib.import_module("lrkit.finder").find_lr
    if name == "auto":
        return importlib.import_module("lrkit.auto").auto
    raise AttributeError(f"module 'lrkit' has no attribute {name!r}")


__all__ = [
    "REGISTRY",
    "REST",
    "WSD",
    "Chain",
    "Clamp",
    "Constant",
    "Cosine",
    "CosineRestarts",
    "Cyclic",
    "Duration",
    "ExpDecay",
    "Exponential",
    "InverseSqrt",
    "InverseTime",
    "Linear",
    "MultiStep",
    "OneCycle",
    "Piecewise",
    "Polynomial",
    "Product",
    "Repeat",
    "Scale",
    "Schedule",
    "SpecError",
    "StepDecay",
    "Warmup",
    "__version__",
    "chain",
    "constant",
    "cosine",
    "cosine_restarts",
    "cyclic",
    "dumps",
    "epochs",
    "exp_decay",
    "exponential",
    "fraction",
    "from_dict",
    "inverse_sqrt",
    "inverse_time",
    "linear",
    "load",
    "loads",
    "multistep",
    "one_cycle",
    "parse",
    "piecewise",
    "polynomial",
    "step_decay",
    "steps",
    "to_dict",
    "to_string",
    "warmup",
    "with_warmup",
    "wsd",
]
