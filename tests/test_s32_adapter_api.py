"""The adapters' call surface (explorers TYPES 4, 6 and AMP 1).

- ``lrkit.torch.scheduler`` is overloaded on ``in_graph``: a type checker sees a ``Scheduler`` for the
  default, a ``GraphScheduler`` for ``in_graph=True`` (it saw the union for both, so
  ``sum(s.get_last_lr())`` and ``mine: Scheduler = scheduler(...)`` were type errors).
- ``lrkit.keras.schedule`` / ``lrkit.optax.schedule`` name the schedule ``schedule``, as
  ``lrkit.torch.scheduler`` and ``KerasSchedule`` do (they called it ``s`` and ``spec``, and
  ``schedule=`` went into ``**unexpected``: "missing 1 required positional argument: 's'"); the old
  keywords still work, with a DeprecationWarning; an unknown keyword is named, with the closest one taken.
- The torch scheduler warns (NoOptimizerStepWarning) when 32 calls in a row saw no optimizer step taken
  after the optimizer had stepped: a GradScaler skipping every step, its scale collapsing (it warned only
  when the optimizer had never stepped).
"""

from __future__ import annotations

import os
import subprocess
import sys
import warnings

os.environ.setdefault("KERAS_BACKEND", "jax")

import numpy as np
import pytest
import torch

import lrkit
from lrkit.adapters.torch import IDLE_WARN, GraphScheduler, NoOptimizerStepWarning, Scheduler

SPEC = "warmup(10, start=0) >> cosine(lr=0.1)"

# -- TYPES 4: in_graph overloads ------------------------------------------------------------------

USER = """\
import torch

import lrkit.torch
from lrkit.torch import Scheduler

opt = torch.optim.SGD(torch.nn.Linear(2, 1).parameters(), lr=0.1)
mine: Scheduler = lrkit.torch.scheduler(opt, "cosine(lr=0.1)", total_steps=10)
total: float = sum(mine.get_last_lr())
flag = bool(len(opt.param_groups))
reveal_type(lrkit.torch.scheduler(opt, "cosine(lr=0.1)", total_steps=10))  # line 10
reveal_type(lrkit.torch.scheduler(opt, "cosine(lr=0.1)", total_steps=10, in_graph=True))  # line 11
reveal_type(lrkit.torch.scheduler(opt, "cosine(lr=0.1)", total_steps=10, in_graph=flag))  # line 12
"""

MYPY_INI = """\
[mypy]
strict = True
python_version = 3.11
[mypy-torch.*,jax.*,jaxlib.*,optax.*,keras.*,numpy.*,array_api_compat.*,matplotlib.*]
follow_imports = skip
follow_imports_for_stubs = True
ignore_missing_imports = True
"""


def test_the_scheduler_type_follows_in_graph(tmp_path: object) -> None:
    from pathlib import Path

    tmp = Path(str(tmp_path))
    (tmp / "user.py").write_text(USER)
    (tmp / "mypy.ini").write_text(MYPY_INI)
    done = subprocess.run(
        [sys.executable, "-m", "mypy", "--config-file", "mypy.ini", "--cache-dir", str(tmp / "c"), "user.py"],
        cwd=tmp,
        capture_output=True,
        text=True,
        timeout=300,
    )
    lines = done.stdout.splitlines()
    assert "Found" in done.stdout or "Success" in done.stdout, done.stdout + done.stderr
    assert [ln for ln in lines if ": error:" in ln] == [], lines
    revealed = {
        int(ln.split(":")[1]): ln.split("Revealed type is ")[1] for ln in lines if "Revealed type" in ln
    }
    assert revealed == {
        10: '"lrkit.adapters.torch.Scheduler"',
        11: '"lrkit.adapters.torch.GraphScheduler"',
        12: '"lrkit.adapters.torch.Scheduler | lrkit.adapters.torch.GraphScheduler"',
    }, lines
    # the run time gives the classes the checker names
    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=torch.tensor(0.1))
    assert type(lrkit.torch.scheduler(opt, SPEC, total_steps=20)) is Scheduler
    assert type(lrkit.torch.scheduler(opt, SPEC, total_steps=20, in_graph=True)) is GraphScheduler


# -- TYPES 6: one name for the schedule -------------------------------------------------------------


def _adapters() -> list[tuple[str, object, str]]:
    pytest.importorskip("keras")
    pytest.importorskip("optax")
    return [("keras", lrkit.keras.schedule, "s"), ("optax", lrkit.optax.schedule, "spec")]


def _lrs(made: object) -> list[float]:
    return [float(made(t)) for t in (0, 5, 10, 60, 110)]  # type: ignore[operator]


def test_schedule_is_the_keyword_in_every_adapter() -> None:
    want = [float(v) for v in lrkit.parse(SPEC).resolve(total_steps=110)(np.array([0, 5, 10, 60, 110]))]
    for _name, make, _old in _adapters():
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # the new name warns of nothing
            by_keyword = make(schedule=SPEC, total_steps=110)  # type: ignore[operator]
        assert _lrs(by_keyword) == pytest.approx(want, abs=1e-7)
        assert _lrs(make(SPEC, 110)) == pytest.approx(want, abs=1e-7)  # type: ignore[operator]


def test_the_old_keyword_still_works_and_is_deprecated() -> None:
    want = _lrs(lrkit.keras.KerasSchedule(SPEC, total_steps=110)) if _adapters() else []
    for name, make, old in _adapters():
        with pytest.warns(
            DeprecationWarning, match=rf"lrkit\.{name}\.schedule: the keyword {old}= is now schedule="
        ):
            made = make(total_steps=110, **{old: SPEC})  # type: ignore[operator]
        assert _lrs(made) == pytest.approx(want, abs=1e-7)
        # pointed at the caller's line, where the keyword is written
        with warnings.catch_warnings(record=True) as got:
            warnings.simplefilter("always")
            make(total_steps=110, **{old: SPEC})  # type: ignore[operator]
        assert [w.filename for w in got] == [__file__]
        with pytest.raises(TypeError, match=rf"^lrkit\.{name}\.schedule: got the schedule twice"):
            make(SPEC, total_steps=110, **{old: SPEC})  # type: ignore[operator]


@pytest.mark.parametrize(
    "keyword, says",
    [
        ("total_step", r"unexpected keyword argument 'total_step' \(did you mean 'total_steps'\?\)"),
        ("sched", r"unexpected keyword argument 'sched' \(did you mean 'schedule'\?\)"),
        (
            "stps_per_epoch",
            r"unexpected keyword argument 'stps_per_epoch' \(did you mean 'steps_per_epoch'\?\)",
        ),
        (
            "warmup",
            r"unexpected keyword argument 'warmup'; it takes schedule, total_steps and steps_per_epoch$",
        ),
    ],
)
def test_an_unknown_keyword_is_named_in_one_line(keyword: str, says: str) -> None:
    for name, make, _old in _adapters():
        with pytest.raises(TypeError, match=rf"^lrkit\.{name}\.schedule: {says}") as exc:
            make(SPEC, **{keyword: 100})  # type: ignore[operator]
        assert "\n" not in str(exc.value)
        # with the schedule given by keyword too, the typo is what is named (not "missing")
        with pytest.raises(TypeError, match=rf"^lrkit\.{name}\.schedule: {says}"):
            make(schedule=SPEC, **{keyword: 100})  # type: ignore[operator]


def test_no_schedule_at_all_says_so() -> None:
    for name, make, _old in _adapters():
        with pytest.raises(TypeError, match=rf"^lrkit\.{name}\.schedule: missing the schedule"):
            make(total_steps=100)  # type: ignore[operator]


# -- AMP 1: a GradScaler that skips every step from some point on --------------------------------------


def _run(
    skip_from: int | None, steps: int, fused: bool = False
) -> tuple[Scheduler, list[str], list[float], int]:
    """A float16-autocast loop on CPU whose gradients are NaN (behind a finite loss) from ``skip_from``
    on, as a sqrt at 0 in a branch the loss multiplies by 0 gives; GradScaler skips those steps."""
    torch.manual_seed(0)
    model = torch.nn.Linear(4, 1)
    opt = torch.optim.AdamW(model.parameters(), lr=0.01, fused=fused or None)
    sched = lrkit.torch.scheduler(opt, "cosine(lr=0.01)", total_steps=1000)
    assert isinstance(sched, Scheduler)
    scaler = torch.amp.GradScaler("cpu")
    scales = []
    before = -1
    with warnings.catch_warnings(record=True) as got:
        warnings.simplefilter("always")
        for step in range(steps):
            x = torch.randn(8, 4)
            with torch.autocast("cpu", dtype=torch.float16):
                out = model(x)
            loss = out.float().pow(2).mean()
            if step == skip_from:
                before = sched.last_epoch
            if skip_from is not None and step >= skip_from:
                w = model.weight
                loss = loss + 0.0 * torch.sqrt(w - w.detach()).sum()
            scaler.scale(loss).backward()
            scaler.step(opt)
            scaler.update()
            sched.step()
            opt.zero_grad()
            scales.append(scaler.get_scale())
    idle = [str(w.message) for w in got if issubclass(w.category, NoOptimizerStepWarning)]
    return sched, idle, scales, before


@pytest.mark.parametrize("fused", [False, True])
def test_a_scaler_skipping_every_step_is_warned_once(fused: bool) -> None:
    sched, idle, scales, before = _run(skip_from=20, steps=20 + 3 * IDLE_WARN, fused=fused)
    assert before >= 18 and sched.last_epoch == before  # the schedule stood still from step 20 on
    assert scales[-1] < 1e-10  # the scale collapsed: each skipped step halved it
    assert len(idle) == 1, idle  # once per scheduler, not once per run of skips
    assert "in a row" in idle[0] and f"stands at step {before}" in idle[0] and "scaler.get_scale()" in idle[0]


def test_no_warning_when_a_scaler_skips_a_step_now_and_then() -> None:
    # a healthy run: the scaler skips a step now and then (its first, finding its scale), no warning
    sched, idle, _, _ = _run(skip_from=None, steps=IDLE_WARN + 10)
    assert idle == [] and IDLE_WARN + 10 - 3 <= sched.last_epoch < IDLE_WARN + 10


def test_the_count_restarts_when_a_step_is_taken() -> None:
    """IDLE_WARN - 1 calls with no optimizer step, one taken, IDLE_WARN - 1 again: no run of IDLE_WARN."""
    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=0.1)
    sched = lrkit.torch.scheduler(opt, "cosine(lr=0.1)", total_steps=100)
    with warnings.catch_warnings(record=True) as got:
        warnings.simplefilter("always")
        opt.step()
        sched.step()
        for _ in range(3):
            for _ in range(IDLE_WARN - 1):
                sched.step()
            opt.step()
            sched.step()
        assert not [w for w in got if issubclass(w.category, NoOptimizerStepWarning)]
        for _ in range(IDLE_WARN):
            sched.step()
    idle = [w for w in got if issubclass(w.category, NoOptimizerStepWarning)]
    assert len(idle) == 1 and "stands at step 4" in str(idle[0].message)
    assert idle[0].filename == __file__
    assert sched.last_epoch == 4


def test_the_never_stepped_warning_is_unchanged_and_shares_the_once() -> None:
    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=0.1)
    sched = lrkit.torch.scheduler(opt, "cosine(lr=0.1)", total_steps=100)
    with warnings.catch_warnings(record=True) as got:
        warnings.simplefilter("always")
        for _ in range(IDLE_WARN):
            sched.step()
        opt.step()
        sched.step()
        for _ in range(2 * IDLE_WARN):
            sched.step()
    idle = [str(w.message) for w in got if issubclass(w.category, NoOptimizerStepWarning)]
    assert len(idle) == 1 and "has not stepped once" in idle[0], idle
