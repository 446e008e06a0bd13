"""What a type checker sees of lrkit's public API, as a user's script meets it (mypy --strict, run once).

- A schedule's required parameters are required to the checker too (Schedule is a
  ``dataclass_transform`` whose field specifiers are param / duration_field / ...): they read as
  defaults before, so ``lrkit.Cosine()`` passed mypy and pyright and failed at run time.
- ``lrkit.torch``, ``import lrkit.torch``, ``lrkit.find_lr``, ``lrkit.auto(...)`` are typed (they were
  Any, ``import lrkit.torch`` was import-not-found and ``lrkit.auto(...)`` "Module not callable").
- ``inspect.signature(lrkit.auto)`` shows auto's parameters, and ``dir(lrkit)`` the lazy names.

mypy follows lrkit itself but skips torch & co. (Any to it): the run takes seconds, not minutes.
"""

from __future__ import annotations

import inspect
import re
import subprocess
import sys
from pathlib import Path

import pytest

import lrkit

SRC = Path(lrkit.__file__).parent

# each line: a construction, and whether it lacks a required argument (the run time is the reference)
CONSTRUCTIONS = [
    ("lrkit.Cosine()", "lr"),
    ("lrkit.OneCycle()", "max_lr"),
    ("lrkit.StepDecay(lr=0.1)", "step_size"),
    ("lrkit.Repeat()", "schedule"),
    ("lrkit.Scale()", "schedule"),
    ("lrkit.Cyclic(lr=0.1)", "max_lr"),
    ("lrkit.CosineRestarts(lr=0.1)", "period"),
    ("lrkit.ExpDecay(lr=0.1)", "k"),
    ("lrkit.Cosine(lr=0.1)", None),
    ("lrkit.MultiStep(lr=0.1)", None),  # milestones default to none
    ("lrkit.Warmup()", None),
    ("lrkit.Piecewise([(0, 0.1), (10, 0.0)])", None),
    ("lrkit.WSD(lr=0.1)", None),
    ("lrkit.StepDecay(lr=0.1, step_size=10)", None),
    ("lrkit.Repeat(lrkit.Cosine(lr=0.1, steps=10), times=2)", None),
]

# choice arguments are Literal types: a wrong word is a type error, as it is a ValueError at run time
CHOICES = [
    ('lrkit.Warmup(mode="exp")', True),
    ('lrkit.Warmup(mode="exponential")', False),
    ('lrkit.Cyclic(lr=0.1, max_lr=1.0, mode="triangle")', True),
    ('lrkit.Cyclic(lr=0.1, max_lr=1.0, mode="exp_range")', False),
    ('lrkit.OneCycle(max_lr=0.1, anneal="cosine")', True),
    ('lrkit.OneCycle(max_lr=0.1, anneal="linear")', False),
    ('lrkit.WSD(lr=0.1, cooldown="sqrt")', True),
    ('lrkit.WSD(lr=0.1, cooldown="1-sqrt")', False),
    ('lrkit.with_warmup(lrkit.Cosine(lr=0.1), 10, mode="cos")', True),
]

# choices of the control and adapter API (mode, threshold_mode, interval), in a file with these names
CHOICES_HEADER = """\
import torch

import lrkit
import lrkit.torch
from lrkit.control import Plateau

opt = torch.optim.SGD(torch.nn.Linear(2, 1).parameters(), lr=0.1)
SPEC = "cosine(lr=0.1)"
"""
MORE_CHOICES = [
    ('Plateau(mode="minimize")', "mode"),
    ('Plateau(mode="max")', None),
    ('Plateau(threshold_mode="relative")', "threshold_mode"),
    ('Plateau(mode="min", threshold_mode="abs")', None),
    ('lrkit.torch.scheduler(opt, SPEC, total_steps=10, interval="epochs")', "interval"),
    ('lrkit.torch.scheduler(opt, SPEC, total_steps=10, interval="epoch", steps_per_epoch=2)', None),
]

QUICK_START = """\
import torch

import lrkit
import lrkit.torch
from lrkit.auto import AutoResult
from lrkit.control import Plateau

model = torch.nn.Linear(10, 1)
optimizer = torch.optim.AdamW(model.parameters(), lr=3e-4)
sched = lrkit.parse("warmup(5%) >> cosine(lr=3e-4, min_lr=3e-5)")
scheduler = lrkit.torch.scheduler(optimizer, sched, total_steps=1000, plateau=Plateau(patience=3))
scheduler.step()
cut: bool = scheduler.report(0.5)
found = lrkit.find_lr(model, optimizer, [], torch.nn.functional.mse_loss)
top: float | None = found.suggestion
also = lrkit.keras.schedule, lrkit.optax.schedule, lrkit.control.DivergenceGuard


def run(data: list[tuple[torch.Tensor, torch.Tensor]]) -> AutoResult:
    result: AutoResult = lrkit.auto(model, optimizer, data, torch.nn.functional.mse_loss, epochs=3)
    return result
"""

REVEALS = """\
import torch

import lrkit
import lrkit.torch
from lrkit.torch import Scheduler

optimizer = torch.optim.SGD(torch.nn.Linear(2, 1).parameters(), lr=0.1)
reveal_type(lrkit.torch.scheduler(optimizer, "cosine(lr=0.1)", total_steps=10))  # line 8
reveal_type(lrkit.find_lr(torch.nn.Linear(2, 1), optimizer, []))  # line 9
reveal_type(lrkit.auto(torch.nn.Linear(2, 1), optimizer, [], epochs=1).scheduler)  # line 10
reveal_type(lrkit.control.Plateau(patience=2))  # line 11
lrkit.torch.scheduler(optimizer, "cosine(lr=0.1)", total_step=10)  # line 12: a typo
lrkit.auto(torch.nn.Linear(2, 1), optimizer, [], epoch=1)  # line 13: epochs is required
s: Scheduler
"""

MYPY_INI = """\
[mypy]
strict = True
python_version = 3.11
[mypy-torch.*,jax.*,jaxlib.*,optax.*,keras.*,matplotlib.*,sklearn.*,optuna.*,transformers.*,accelerate.*,\
lightning.*,pandas.*,scipy.*,tqdm.*,yaml.*,timm.*,mnist1d.*,schedulefree.*,prodigyopt.*,psycopg2.*,\
tomli_w.*,array_api_compat.*,sqlalchemy.*]
follow_imports = skip
follow_imports_for_stubs = True
ignore_missing_imports = True
"""


@pytest.fixture(scope="module")
def mypy_out(tmp_path_factory: pytest.TempPathFactory) -> dict[str, list[str]]:
    """mypy's lines for each fixture file, run once over all of them."""
    tmp = tmp_path_factory.mktemp("typing")
    files = {
        "constructions.py": "import lrkit\n\n"
        + "\n".join(f"x{i} = {c}" for i, (c, _) in enumerate(CONSTRUCTIONS)),
        "choices.py": "import lrkit\n\n" + "\n".join(f"x{i} = {c}" for i, (c, _) in enumerate(CHOICES)),
        "more_choices.py": CHOICES_HEADER + "\n".join(f"x{i} = {c}" for i, (c, _) in enumerate(MORE_CHOICES)),
        "quick_start.py": QUICK_START,
        "reveals.py": REVEALS,
    }
    for name, text in files.items():
        (tmp / name).write_text(text + "\n")
    (tmp / "mypy.ini").write_text(MYPY_INI)
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "mypy",
            "--config-file",
            "mypy.ini",
            "--cache-dir",
            str(tmp / "cache"),
            *files,
        ],
        cwd=tmp,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert "Found" in done.stdout or "Success" in done.stdout, done.stdout + done.stderr
    out: dict[str, list[str]] = {name: [] for name in files}
    for line in done.stdout.splitlines():
        name = line.split(":", 1)[0]
        if name in out:
            out[name].append(line)
    return out


def test_a_missing_required_parameter_is_a_type_error_as_at_run_time(mypy_out: dict[str, list[str]]) -> None:
    flagged = {int(line.split(":")[1]) for line in mypy_out["constructions.py"] if "error:" in line}
    for i, (code, missing) in enumerate(CONSTRUCTIONS):
        lineno = i + 3
        try:
            eval(code, {"lrkit": lrkit})
            raised = None
        except TypeError as exc:
            raised = str(exc)
        # the run time is the reference: what it refuses for a missing argument, the checker flags
        assert (raised is not None) == (missing is not None), (code, raised)
        if missing is None:
            assert lineno not in flagged, (code, mypy_out["constructions.py"])
        else:
            assert f"'{missing}'" in (raised or "")
            errors = [
                line
                for line in mypy_out["constructions.py"]
                if line.startswith(f"constructions.py:{lineno}:")
            ]
            assert any(f'argument "{missing}"' in e and "[call-arg]" in e for e in errors), (code, errors)


def test_a_wrong_choice_is_a_type_error_as_at_run_time(mypy_out: dict[str, list[str]]) -> None:
    flagged = {int(line.split(":")[1]) for line in mypy_out["choices.py"] if "error:" in line}
    for i, (code, wrong) in enumerate(CHOICES):
        try:
            eval(code, {"lrkit": lrkit})
            refused = False
        except ValueError as exc:
            refused = "must be one of" in str(exc)
        assert refused == wrong, code  # the run time is the reference
        assert ((i + 3) in flagged) == wrong, (code, mypy_out["choices.py"])


def test_plateau_and_scheduler_choices_are_literal_types(mypy_out: dict[str, list[str]]) -> None:
    """Plateau(mode=, threshold_mode=) and lrkit.torch.scheduler(interval=) were plain str to a checker."""
    import torch

    from lrkit.control import Plateau

    start = CHOICES_HEADER.count("\n") + 1
    flagged = {int(line.split(":")[1]) for line in mypy_out["more_choices.py"] if "error:" in line}
    opt = torch.optim.SGD(torch.nn.Linear(2, 1).parameters(), lr=0.1)
    for i, (code, wrong) in enumerate(MORE_CHOICES):
        try:
            eval(code, {"lrkit": lrkit, "Plateau": Plateau, "opt": opt, "SPEC": "cosine(lr=0.1)"})
            refused = None
        except ValueError as exc:
            refused = str(exc)
        # the run time is the reference: what it refuses, naming the argument, the checker flags
        assert (refused is not None) == (wrong is not None), (code, refused)
        if wrong is not None:
            assert f"{wrong} must be" in (refused or ""), refused
        errors = [ln for ln in mypy_out["more_choices.py"] if ln.startswith(f"more_choices.py:{start + i}:")]
        assert ((start + i) in flagged) == (wrong is not None), (code, mypy_out["more_choices.py"])
        if wrong is not None:
            # scheduler is overloaded (on in_graph): mypy says no variant matches instead
            said = errors[0]
            typed = f'Argument "{wrong}"' in said and "[arg-type]" in said
            assert typed or "[call-overload]" in said, errors


def test_the_quick_start_type_checks_without_an_error(mypy_out: dict[str, list[str]]) -> None:
    assert mypy_out["quick_start.py"] == [], mypy_out["quick_start.py"]


def test_the_lazy_names_have_their_real_types(mypy_out: dict[str, list[str]]) -> None:
    lines = mypy_out["reveals.py"]
    revealed = {
        int(ln.split(":")[1]): ln.split("Revealed type is ", 1)[1] for ln in lines if "Revealed type" in ln
    }
    assert "lrkit.adapters.torch.Scheduler" in revealed[8] and "Any" not in revealed[8], revealed
    assert revealed[9] == '"lrkit.finder.result.FinderResult"', revealed
    assert revealed[10] == '"lrkit.adapters.torch.Scheduler"', revealed
    assert revealed[11] == '"lrkit.control.plateau.Plateau"', revealed
    errors = [ln for ln in lines if "error:" in ln]
    assert any(ln.startswith("reveals.py:12:") and '"total_step"' in ln for ln in errors), errors
    assert any(ln.startswith("reveals.py:13:") and '"epochs"' in ln for ln in errors), errors
    # no other line: import lrkit.torch / from lrkit.torch import ... resolve (an overloaded function's
    # typo is two errors on its line, the keyword named, then "No overload variant")
    assert {int(ln.split(":")[1]) for ln in errors} == {12, 13}, errors


def test_each_adapter_alias_has_a_stub_naming_its_module() -> None:
    """lrkit/<name>.pyi for each lazy name that is an adapter module, re-exporting that module."""
    stubs = {p.stem: p.read_text() for p in SRC.glob("*.pyi")}
    adapters = {name: module for name, module in lrkit._LAZY.items() if module.startswith("lrkit.adapters.")}
    assert set(stubs) == set(adapters)
    for name, module in adapters.items():
        assert re.search(rf"^from {re.escape(module)} import \*", stubs[name], re.M), stubs[name]


def test_auto_shows_its_signature_as_module_and_function() -> None:
    code = (
        "import inspect, sys, lrkit\n"
        "first = inspect.signature(lrkit.auto)\n"  # the function, on first use
        "import lrkit.auto\n"
        "assert type(lrkit.auto).__name__ == '_CallableModule'\n"
        "assert inspect.signature(lrkit.auto) == first == inspect.signature(lrkit.auto.auto), "
        "(inspect.signature(lrkit.auto), first)\n"
        "print(first)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "epochs" in done.stdout and "*args" not in done.stdout, done.stdout
    from lrkit.auto import _CallableModule, auto

    # the module's __call__ spells out auto's signature: the same parameters, kinds, defaults, types
    call = inspect.signature(_CallableModule.__call__)
    assert call.replace(parameters=list(call.parameters.values())[1:]) == inspect.signature(auto)


def test_dir_offers_the_lazy_names_without_importing_them() -> None:
    code = (
        "import sys, lrkit\n"
        "names = dir(lrkit)\n"
        "assert {'torch', 'keras', 'optax', 'control', 'find_lr', 'auto', 'Cosine'} <= set(names), names\n"
        "assert names == sorted(names)\n"
        "assert 'torch' not in sys.modules and 'lrkit.auto' not in sys.modules\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
