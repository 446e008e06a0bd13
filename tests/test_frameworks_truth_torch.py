"""lrkit's torch scheduler as frameworks call it, where the calls are not one per update: accelerate's
prepared scheduler calls ``step(metric)`` once per process, and an ``interval="epoch"`` scheduler may be
stepped after every optimizer step (as transformers' Trainer and accelerate do)."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import torch

import lrkit
from lrkit.adapters.torch import StepwiseSteppingWarning
from lrkit.control import Plateau

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _opt(lr: float = 0.1) -> torch.optim.Optimizer:
    return torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=lr)


# -- step(metric) called several times for one update -----------------------------------------------
def test_a_repeated_step_metric_reports_once_per_optimizer_step() -> None:
    """A step(metric) after another with no optimizer step between is the same update's: not reported
    again, as a repeated step() does not advance again."""
    opt = _opt()
    s = lrkit.torch.scheduler(opt, "constant(lr=0.1)", total_steps=20, plateau=Plateau(patience=0))
    opt.step()
    s.step(1.0)
    s.step(1.0)  # patience 0: a second report of the same (not better) value would cut
    assert s.plateau is not None
    assert s.plateau.state_dict()["last_epoch"] == 1 and s.plateau_cuts == [1.0] and s.last_epoch == 1
    opt.step()
    s.step(1.0)  # the next update's metric: reported, not better, cut
    assert s.plateau.state_dict()["last_epoch"] == 2 and s.plateau_cuts == [pytest.approx(0.1)]


def test_without_follow_optimizer_every_step_metric_is_an_update_and_reports() -> None:
    opt = _opt()
    s = lrkit.torch.scheduler(
        opt, "constant(lr=0.1)", total_steps=20, plateau=Plateau(patience=0), follow_optimizer=False
    )
    s.step(1.0)
    s.step(1.0)
    assert s.plateau is not None
    assert s.plateau.state_dict()["last_epoch"] == 2 and s.last_epoch == 2


accelerate = pytest.importorskip("accelerate")
from accelerate.state import AcceleratorState, GradientState  # noqa: E402


@pytest.fixture
def fresh_accelerate_state() -> Iterator[None]:
    AcceleratorState._reset_state(True)
    GradientState._reset_state()
    yield
    AcceleratorState._reset_state(True)
    GradientState._reset_state()


def _accelerate_plateau_run(processes: int, monkeypatch: pytest.MonkeyPatch) -> tuple[list[float], Any]:
    """Six epochs of 3 updates, ``prepared.step(1.0)`` (a validation loss that never improves) after each
    epoch's last update, as torch's ReduceLROnPlateau is stepped; ``processes`` simulated by the count
    accelerate's scheduler wrapper reads (as tests/test_accelerate.py does)."""
    import accelerate.scheduler

    AcceleratorState._reset_state(True)
    GradientState._reset_state()
    acc = accelerate.Accelerator(cpu=True)
    torch.manual_seed(0)
    model = torch.nn.Linear(4, 1)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    model, opt = acc.prepare(model, opt)
    sched = acc.prepare(
        lrkit.torch.scheduler(
            opt, "constant(lr=0.1)", total_steps=18, plateau=Plateau(patience=2, factor=0.5)
        )
    )

    class Processes:
        num_processes = processes

    monkeypatch.setattr(accelerate.scheduler, "AcceleratorState", Processes)
    lrs = []
    for _ in range(6):
        for _ in range(3):
            acc.backward(model(torch.randn(2, 4)).pow(2).mean())
            opt.step()
            sched.step()
            opt.zero_grad()
        sched.step(1.0)
        lrs.append(opt.param_groups[0]["lr"])
    monkeypatch.undo()
    return lrs, sched.scheduler


@pytest.mark.usefixtures("fresh_accelerate_state")
def test_accelerate_with_several_processes_reports_the_metric_once_per_update(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """accelerate calls step(1.0) twice with 2 processes: the plateau counted two bad epochs per epoch
    and cut 3 times in 6 epochs (patience 2) where one process cut once."""
    one, s1 = _accelerate_plateau_run(1, monkeypatch)
    two, s2 = _accelerate_plateau_run(2, monkeypatch)
    assert one == pytest.approx([0.1, 0.1, 0.1, 0.05, 0.05, 0.05])
    assert two == pytest.approx(one)
    assert s2.plateau.state_dict() == s1.plateau.state_dict()
    assert s2.plateau.state_dict()["last_epoch"] == 6 and s2.last_epoch == s1.last_epoch == 18


_TWO_PROCESSES = textwrap.dedent(
    """
    import torch, lrkit, accelerate
    torch.set_num_threads(1)
    acc = accelerate.Accelerator(cpu=True)
    torch.manual_seed(0)
    model = torch.nn.Linear(4, 1); opt = torch.optim.SGD(model.parameters(), lr=0.1)
    data = torch.utils.data.TensorDataset(torch.randn(32, 4), torch.randn(32, 1))
    loader = torch.utils.data.DataLoader(data, batch_size=4)
    model, opt, loader = acc.prepare(model, opt, loader)
    sched = acc.prepare(lrkit.torch.scheduler(opt, "constant(lr=0.1)", total_steps=6 * len(loader),
                        plateau=lrkit.control.Plateau(patience=2, factor=0.5)))
    lrs = []
    for epoch in range(6):
        for x, y in loader:
            acc.backward(torch.nn.functional.mse_loss(model(x), y)); opt.step(); sched.step(); opt.zero_grad()
        sched.step(1.0)
        lrs.append(round(opt.param_groups[0]["lr"], 6))
    if acc.is_main_process:
        print("RESULT", acc.num_processes, lrs, sched.scheduler.plateau.state_dict()["num_reductions"],
              flush=True)
    acc.wait_for_everyone()
    torch.distributed.destroy_process_group()  # gloo's threads joined before exit, not torn down by it
    """
)


@pytest.mark.skipif(
    not (torch.distributed.is_available() and torch.distributed.is_gloo_available()), reason="no gloo"
)
def test_accelerate_with_two_real_processes_cuts_as_one_process_does(tmp_path: Path) -> None:
    """Two gloo processes under torchrun (about 10 s): one cut in 6 epochs, as with one process (3 before)."""
    script = tmp_path / "two.py"
    script.write_text(_TWO_PROCESSES)
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2"]
    # once more if a worker died in its C++ teardown ("terminate called ..."), as seen under load
    for _ in range(2):
        run = subprocess.run(
            [*command, str(script)],
            capture_output=True,
            text=True,
            timeout=240,
            env=env,
            cwd=tmp_path,
        )
        if run.returncode == 0 or "terminate called" not in run.stderr:
            break
    lines = [line for line in run.stdout.splitlines() if line.startswith("RESULT")]
    assert run.returncode == 0 and lines, run.stderr[-3000:]
    assert lines[0] == "RESULT 2 [0.1, 0.1, 0.1, 0.05, 0.05, 0.05] 1"


# -- an interval="epoch" scheduler stepped after every optimizer step ---------------------------------
def test_an_epoch_scheduler_stepped_per_optimizer_step_warns_once() -> None:
    opt = _opt()
    s = lrkit.torch.scheduler(opt, "cosine(lr=0.1)", steps_per_epoch=10, epochs=3, interval="epoch")
    with pytest.warns(StepwiseSteppingWarning) as record:
        for _ in range(30):
            opt.step()
            s.step()
    warned = [w for w in record if issubclass(w.category, StepwiseSteppingWarning)]
    assert len(warned) == 1
    msg = str(warned[0].message)
    assert "advanced it 5 times, more than the run's 3 epochs (total_steps=30) + 1" in msg
    assert "10x too fast" in msg and "interval='step'" in msg
    assert warned[0].filename == __file__  # the caller's line


@pytest.mark.parametrize("calls", [3, 4])
def test_an_epoch_scheduler_stepped_once_an_epoch_is_silent(calls: int) -> None:
    """Once per epoch, and one call more (a step() after the last epoch), is no mistake."""
    opt = _opt()
    s = lrkit.torch.scheduler(opt, "cosine(lr=0.1)", steps_per_epoch=10, epochs=3, interval="epoch")
    with warnings.catch_warnings():
        warnings.simplefilter("error", StepwiseSteppingWarning)
        for _ in range(calls):
            for _ in range(10):
                opt.step()
            s.step()
    assert s.last_epoch == calls


# -- a state saved between an epoch's last optimizer step and its step() -------------------------------
def _epoch_scheduler(opt: torch.optim.Optimizer) -> Any:
    return lrkit.torch.scheduler(
        opt, "cosine(lr=0.1, min_lr=0.01)", steps_per_epoch=4, epochs=6, interval="epoch", plateau=Plateau()
    )


def test_a_loop_that_saves_before_its_epochs_step_resumes_at_the_next_epoch_on_schedule() -> None:
    """``save`` after the epoch's training and evaluation, then ``scheduler.step(val_loss)``; the resumed
    loop starts at the next epoch: it made no step() for the saved one, and was one epoch behind."""
    opt = _opt()
    full = _epoch_scheduler(opt)
    saved: dict[str, Any] = {}
    lrs = []
    for epoch in range(6):
        lrs.append(opt.param_groups[0]["lr"])
        for _ in range(4):
            opt.step()
        if epoch == 2:
            saved = full.state_dict()
        full.step(1.0 / (epoch + 1))
    assert saved["last_epoch"] == 2 and saved["epoch_pending"] is True
    opt2 = _opt()
    resumed = _epoch_scheduler(opt2)
    resumed.load_state_dict(saved)
    got = []
    for epoch in range(3, 6):
        got.append(opt2.param_groups[0]["lr"])
        for _ in range(4):
            opt2.step()
        resumed.step(1.0 / (epoch + 1))
    assert got == pytest.approx(lrs[3:], rel=1e-12) and resumed.last_epoch == full.last_epoch == 6


def test_inside_an_epoch_and_after_its_step_a_state_is_not_pending() -> None:
    opt = _opt()
    s = _epoch_scheduler(opt)
    for _ in range(3):
        opt.step()
    assert "epoch_pending" not in s.state_dict()  # 3 of 4 steps
    opt.step()
    assert s.state_dict()["epoch_pending"] is True
    s.step(1.0)
    assert "epoch_pending" not in s.state_dict() and s.last_epoch == 1


def test_a_rollback_into_the_running_scheduler_is_not_a_resume() -> None:
    """The divergence guard loads its snapshot into the scheduler that made it: not one epoch on."""
    opt = _opt()
    s = _epoch_scheduler(opt)
    for _ in range(4):
        opt.step()
    snap = s.state_dict()
    s.step(1.0)
    s.load_state_dict(snap)
    assert s.last_epoch == 0
    fresh = _epoch_scheduler(_opt())
    fresh.load_state_dict(snap)
    assert fresh.last_epoch == 1


@pytest.mark.parametrize(
    ("value", "error", "words"),
    [
        (1, TypeError, "epoch_pending must be True or False, got int 1"),
        ("yes", TypeError, "epoch_pending must be True or False, got str 'yes'"),
    ],
)
def test_a_bad_epoch_pending_is_refused(value: object, error: type[Exception], words: str) -> None:
    opt = _opt()
    state = {**_epoch_scheduler(opt).state_dict(), "epoch_pending": value}
    with pytest.raises(error, match=words):
        _epoch_scheduler(_opt()).load_state_dict(state)


def test_epoch_pending_on_a_step_interval_state_is_refused() -> None:
    opt = _opt()
    s = lrkit.torch.scheduler(opt, "constant(lr=0.1)", total_steps=10)
    with pytest.raises(ValueError, match="epoch_pending=True is for interval='epoch' states only"):
        s.load_state_dict({**s.state_dict(), "epoch_pending": True})


# -- a plateau never given a metric -----------------------------------------------------------------
@pytest.mark.parametrize(("interval", "calls", "per_call"), [("step", 12, 1), ("epoch", 3, 4)])
def test_a_plateau_never_fed_warns_once_at_the_runs_end(interval: str, calls: int, per_call: int) -> None:
    from lrkit.adapters.torch import UnfedPlateauWarning

    opt = _opt()
    s = lrkit.torch.scheduler(
        opt, "constant(lr=0.1)", total_steps=12, steps_per_epoch=4, interval=interval, plateau=Plateau()
    )
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        for i in range(calls + 2):
            for _ in range(per_call):
                opt.step()
            s.step()
            if i == calls - 2:
                assert not record  # not before the end
    unfed = [w for w in record if issubclass(w.category, UnfedPlateauWarning)]
    assert len(unfed) == 1 and unfed[0].filename == __file__
    assert f"the run has reached its last {interval} ({calls}, total_steps=12)" in str(unfed[0].message)

    fed = lrkit.torch.scheduler(
        opt, "constant(lr=0.1)", total_steps=12, steps_per_epoch=4, interval=interval, plateau=Plateau()
    )
    with warnings.catch_warnings():
        warnings.simplefilter("error", UnfedPlateauWarning)
        for _ in range(calls):
            for _ in range(per_call):
                opt.step()
            fed.step(1.0)


def test_the_runs_end_is_seen_after_a_deep_copy_and_a_jump() -> None:
    """The end of the run is looked at on the step() that reaches it, also in a copy (pickle) or after
    set_step jumped close to it."""
    import copy

    from lrkit.adapters.torch import UnfedPlateauWarning

    opt = _opt()
    s = lrkit.torch.scheduler(opt, "constant(lr=0.1)", total_steps=10_000, plateau=Plateau())
    s.set_step(9_990)
    twin = copy.deepcopy(s)
    for sched in (s, twin):
        o = sched.optimizer
        with pytest.warns(UnfedPlateauWarning, match=r"its last step \(10000, total_steps=10000\)"):
            for _ in range(10):
                o.step()
                sched.step()
