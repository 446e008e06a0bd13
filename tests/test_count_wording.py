"""A bad count reads one way across the Python API: ``{where}{name} must be an integer >= {low}[ and <=
{high}][ or None][ (unit)], got {value}``, the value's type named unless it is an integer (``got str
'3'``); each function keeps its own exception types (TypeError for a non-number where it had one)."""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any

import pytest
import torch

import lrkit.torch
from lrkit.auto import auto
from lrkit.control.guard import DivergenceGuard
from lrkit.control.plateau import Plateau
from lrkit.finder.core import lr_ramp
from lrkit.lab.runner import Strategy, run_lab, run_strategy
from lrkit.recipes import resnet_imagenet
from lrkit.scaling import scale_lr
from lrkit.schedules import Cosine
from lrkit.schedules.compose import Repeat
from lrkit.tasks import get_task
from lrkit.tune.core import tune
from lrkit.tune.space import build_spec
from lrkit.tune.storage import open_storage

TASK = "digits-mlp-sgd"
MAXSIZE = "2**63 - 1" if sys.maxsize == 2**63 - 1 else "2**31 - 1"


def _model_opt() -> tuple[torch.nn.Module, torch.optim.Optimizer]:
    model = torch.nn.Linear(2, 1)
    return model, torch.optim.SGD(model.parameters(), lr=0.1)


def _guard(v: Any) -> None:
    DivergenceGuard(*_model_opt(), window=v)


def _auto_epochs(v: Any) -> None:
    auto(*_model_opt(), [], epochs=v)


def _auto_steps(v: Any) -> None:
    auto(*_model_opt(), [], epochs=1, steps_per_epoch=v)


def _set_step(v: Any) -> None:
    _, opt = _model_opt()
    lrkit.torch.scheduler(opt, "constant(0.1)").set_step(v)


# (call, the message before ", got", low, whether a non-number raises TypeError, and a non-int number too)
SITES: list[tuple[str, Callable[[Any], object], str, int, str]] = [
    ("lr_ramp", lambda v: lr_ramp(1e-3, 1e-1, v), "num_steps must be an integer >= 2", 2, "int"),
    ("tune", lambda v: tune(TASK, trials=v), "trials must be an integer >= 1", 1, ""),
    (
        "build_spec",
        lambda v: build_spec("cosine", 0.1, 0.0, 0.1, total_steps=v),
        "total_steps must be an integer >= 3 or None",
        3,
        "",
    ),
    (
        "open_storage",
        lambda v: open_storage(None, heartbeat=v),
        "heartbeat must be an integer >= 1 (seconds)",
        1,
        "",
    ),
    ("auto epochs", _auto_epochs, "epochs must be an integer >= 1", 1, ""),
    ("auto steps_per_epoch", _auto_steps, "steps_per_epoch must be an integer >= 1", 1, ""),
    ("Task.build", lambda v: get_task(TASK).build(seed=v), "seed must be an integer >= 0", 0, ""),
    (
        "run_strategy",
        lambda v: run_strategy(TASK, Strategy("c", "constant(0.1)"), epochs=v),
        "epochs must be an integer >= 1",
        1,
        "",
    ),
    (
        "run_lab",
        lambda v: run_lab(TASK, [Strategy("c", "constant(0.1)")], workers=v),
        "workers must be an integer >= 1",
        1,
        "",
    ),
    (
        "DivergenceGuard",
        _guard,
        f"DivergenceGuard: window must be an integer >= 1 and <= {MAXSIZE}",
        1,
        "real",
    ),
    ("Plateau", lambda v: Plateau(patience=v), "Plateau: patience must be an integer >= 0", 0, "real"),
    ("scale_lr", lambda v: scale_lr(0.1, 256, v), "scale_lr: batch must be an integer >= 1", 1, ""),
    (
        "resnet_imagenet",
        lambda v: resnet_imagenet(batch=v),
        "resnet_imagenet: batch must be an integer >= 1 (the effective batch)",
        1,
        "",
    ),
    (
        "Repeat",
        lambda v: Repeat(Cosine(lr=0.1, steps=10), times=v),
        "repeat: times must be an integer >= 1 and <= 2**53 or None",
        1,
        "",
    ),
    ("set_step", _set_step, "set_step: k must be an integer >= 0 and <= 2**53", 0, ""),
]


@pytest.mark.parametrize(
    ("call", "front", "low", "type_error"), [s[1:] for s in SITES], ids=[s[0] for s in SITES]
)
@pytest.mark.parametrize("bad", ["low-1", -1, 1.5, True, "3"])
def test_a_bad_count_reads_one_way(
    call: Callable[[Any], object], front: str, low: int, type_error: str, bad: Any
) -> None:
    value = low - 1 if bad == "low-1" else bad
    got = repr(value) if type(value) is int else f"{type(value).__name__} {value!r}"
    # "int": anything but an int is a TypeError; "real": anything but a number (1.5 is a ValueError)
    typed = type(value) is not int and (
        type_error == "int" or (type_error == "real" and not isinstance(value, float))
    )
    with pytest.raises(TypeError if typed else ValueError) as exc:
        call(value)
    assert str(exc.value) == f"{front}, got {got}"
