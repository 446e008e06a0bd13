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
from typing import TYPE_CHECKING, Any

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

if TYPE_CHECKING:
    # what the lazy names below are, for type checkers and editors (at run time they are imported on
    # first use, by __getattr__, so that ``import lrkit`` needs numpy alone); ``import lrkit.torch``
    # resolves through the one-line stubs lrkit/torch.pyi, keras.pyi, ... beside this file
    from . import control as control
    from . import finder as finder
    from . import keras as keras
    from . import lab as lab
    from . import optax as optax
    from . import recipes as recipes
    from . import scaling as scaling
    from . import timm as timm
    from . import torch as torch
    from . import transformers as transformers
    from .auto import _CallableModule
    from .finder.torch_driver import find_lr as find_lr

    #: the function and its module at once (see lrkit.auto._CallableModule)
    auto: _CallableModule

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


#: the modules each of lrkit's extras installs, as in pyproject.toml (tests/test_packaging.py checks
#: that they agree); a missing one of these gets the pip hint
_EXTRA_MODULES = {
    "torch": ("torch", "array_api_compat"),
    "keras": ("keras", "array_api_compat"),
    "jax": ("jax", "optax", "array_api_compat"),
    "spec": ("yaml", "tomli_w"),
    "lab": (
        "matplotlib",
        "sklearn",
        "torch",
        "array_api_compat",
        "mnist1d",
        "schedulefree",
        "prodigyopt",
        "tqdm",
        "yaml",
        "optuna",
    ),
    "postgres": ("psycopg2",),
}
#: the extra each lazy part asks for when one of its modules is missing (others: the first that has it)
_EXTRAS = {"torch": "torch", "keras": "keras", "optax": "jax", "transformers": "torch", "timm": "torch"}
#: functions of lazy modules, served as ``lrkit.<name>``: the module and the part whose extra they need
_LAZY_FUNCTIONS = {"find_lr": ("lrkit.finder.torch_driver", "torch"), "auto": ("lrkit.auto", "torch")}


def _install_hint(what: str, exc: ModuleNotFoundError, part: str) -> ModuleNotFoundError | None:
    """The error that says what to install for ``what`` when ``exc`` is a missing package that lrkit's
    extras (or, for ``lrkit.transformers``, transformers itself) install; None for any other module."""
    top = (exc.name or "").split(".")[0]
    extras = [e for e in (_EXTRAS.get(part, "lab"), *_EXTRA_MODULES) if top in _EXTRA_MODULES[e]]
    if extras:
        how = f"pip install 'lrkit[{extras[0]}]' (or {top} itself"
        how += "; for PyTorch, pick the build for your machine at pytorch.org)" if top == "torch" else ")"
    elif top == part:  # the library an adapter serves, not one of lrkit's extras: lrkit.transformers
        how = f"pip install {top}"
    else:
        return None
    return ModuleNotFoundError(f"{what} needs {top!r}, which is not installed: {how}", name=exc.name)


def _import_for(module: str, what: str, part: str) -> Any:
    """``importlib.import_module(module)`` for ``what``; a missing package of ``part``'s extra (see
    :func:`_install_hint`) is a ModuleNotFoundError that says what to install."""
    try:
        return importlib.import_module(module)
    except ModuleNotFoundError as exc:
        hint = _install_hint(what, exc, part)
        if hint is None:
            raise
        raise hint from exc


def _import_lazy(name: str) -> Any:
    """``lrkit.<name>``: its module, or a ModuleNotFoundError that says what to install."""
    try:
        return importlib.import_module(_LAZY[name])
    except ModuleNotFoundError as exc:
        if exc.name == _LAZY[name]:
            raise AttributeError(f"module 'lrkit' has no attribute {name!r} ({exc})") from None
        hint = _install_hint(f"lrkit.{name}", exc, name)
        if hint is None:
            raise
        raise hint from exc


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
    if name in _LAZY_FUNCTIONS:
        module, part = _LAZY_FUNCTIONS[name]
        return getattr(_import_for(module, f"lrkit.{name}", part), name)
    raise AttributeError(f"module 'lrkit' has no attribute {name!r}")


def __dir__() -> list[str]:
    """The module's names and the lazy ones (``torch``, ``find_lr``, ``auto``, ...) before their first
    use, so that tab completion offers them."""
    return sorted({*globals(), *_LAZY, *_LAZY_FUNCTIONS})


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
