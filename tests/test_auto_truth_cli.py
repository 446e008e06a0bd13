"""``lrkit auto --task`` when the divergence guard gives up: one error line whose advice names the
command's flags, a documented exit status, and the --json written with the guard's events."""

from __future__ import annotations

import json
import sys
import textwrap
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

pytest.importorskip("torch")
pytestmark = pytest.mark.usefixtures("one_torch_thread")

TASKS = textwrap.dedent(
    """
    import torch
    from torch.utils.data import DataLoader, TensorDataset
    from lrkit.tasks import TaskParts

    class Broken:
        '''The loss is NaN from its 150th call on: training blows up for good after the search.'''
        def __init__(self):
            self.calls = 0
        def __call__(self, out, y):
            self.calls += 1
            loss = torch.nn.functional.cross_entropy(out, y)
            return loss * float("nan") if self.calls >= 150 else loss

    def diverge(seed, clip=None):
        g = torch.Generator().manual_seed(seed)
        x = torch.randn(600, 10, generator=g)
        y = (x[:, 0] + 0.5 * x[:, 1] > 0).long()
        train = DataLoader(TensorDataset(x[:500], y[:500]), batch_size=16, shuffle=True, generator=g)
        val = DataLoader(TensorDataset(x[500:], y[500:]), batch_size=100)
        torch.manual_seed(seed)
        model = torch.nn.Sequential(torch.nn.Linear(10, 32), torch.nn.ReLU(), torch.nn.Linear(32, 2))
        return TaskParts(model, train, val, Broken(), epochs=8, optimizer="adamw", max_grad_norm=clip)

    def diverge_clipped(seed):
        return diverge(seed, clip=0.5)
    """
)


@pytest.fixture
def tasks(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    name = f"lrkit_auto_truth_{uuid.uuid4().hex[:8]}"
    (tmp_path / f"{name}.py").write_text(TASKS)
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    yield name
    sys.modules.pop(name, None)


@pytest.mark.parametrize(
    ("task", "clip"), [("diverge", "--max-grad-norm C"), ("diverge_clipped", "below 0.5")]
)
def test_a_run_the_guard_gives_up_on_exits_4_with_one_line_and_its_events_in_the_json(
    tasks: str, task: str, clip: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """It ended in DivergenceError's traceback, status 1, no --json, advising ``max_recoveries`` (no
    flag sets it)."""
    from lrkit.cli import main

    js = tmp_path / "div.json"
    code = main(["auto", "--task", f"{tasks}:{task}", "--json", str(js)])
    out, err = capsys.readouterr()
    assert code == 4, (out, err)
    (line,) = err.strip().splitlines()
    assert line.startswith("lrkit auto: error: training diverged at step "), line
    assert clip in line and line.endswith("(training stopped: exit status 4)"), line
    assert "max_recoveries" not in line and "learning rate" not in line and "Traceback" not in err, line
    got = json.loads(js.read_text(), parse_constant=lambda c: pytest.fail(f"not strict JSON: {c}"))
    assert f"lower the peak LR (--peak-factor below {got['peak_factor']:g})" in line, line
    assert got["metric"] is None and got["diverged"].startswith("training diverged at step ")
    events = got["guard_events"]
    assert got["events"] == len(events) == 4 and events[-1]["action"] == "stop", events
    assert events[0]["loss"] is None and events[0]["lr_after"][0] == pytest.approx(
        events[0]["lr_before"][0] / 2
    )
    assert got["train_steps"] > 0 and f"result written to {js}" in out


@pytest.mark.parametrize("factor", ["0.5", "1.25"])
def test_peak_factor_sets_the_peak_against_the_suggestion(
    tasks: str, factor: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """``--peak-factor F``: the peak is F x the search's suggestion (the flag the divergence advice names;
    the command had no way to lower the LR)."""
    from lrkit.cli import main

    js = tmp_path / "auto.json"
    code = main(
        ["auto", "--task", "digits-mlp-sgd", "--epochs", "2", "--peak-factor", factor, "--json", str(js)]
    )
    out, err = capsys.readouterr()
    assert code == 0, (out, err)
    got = json.loads(js.read_text())
    assert got["peak_factor"] == float(factor)
    assert f"peak LR {got['peak_lr']:.3g} = {float(factor):g} x " in got["summary"], got["summary"]
