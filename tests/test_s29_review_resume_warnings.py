"""Two false alarms of this session's new warnings, in correct resumes: OverwrittenLRWarning when a script
loads the optimizer's state (its LRs included) and then jumps a new scheduler to the saved step; and the
allow_schedule_change LR-jump warning on every load with the flag, even of the same schedule (its 'changed'
test was always true), comparing without the plateau's floor."""

from __future__ import annotations

import warnings

import pytest

torch = pytest.importorskip("torch")

import lrkit  # noqa: E402
from lrkit.adapters.torch import OverwrittenLRWarning  # noqa: E402
from lrkit.control import Plateau  # noqa: E402

SPEC = "warmup(10) >> cosine(lr=1e-3)"


def _train(steps: int) -> tuple[torch.nn.Module, torch.optim.Optimizer, object]:
    m = torch.nn.Linear(2, 1)
    o = torch.optim.AdamW(m.parameters(), lr=1e-3)
    s = lrkit.torch.scheduler(o, SPEC, total_steps=100)
    for _ in range(steps):
        m(torch.randn(4, 2)).sum().backward()
        o.step()
        o.zero_grad()
        s.step()
    return m, o, s


@pytest.mark.parametrize("jump", ["set_step", "step_epoch"])
def test_loading_the_optimizer_then_jumping_the_scheduler_is_quiet(jump: str) -> None:
    _, o1, _ = _train(30)
    saved = o1.state_dict()
    m, o, s = _train(0)
    with warnings.catch_warnings():
        warnings.simplefilter("error", OverwrittenLRWarning)
        o.load_state_dict(saved)
        if jump == "set_step":
            s.set_step(30)  # type: ignore[attr-defined]
        else:
            s.step(epoch=30)  # type: ignore[attr-defined]
        for _ in range(3):
            m(torch.randn(4, 2)).sum().backward()
            o.step()
            o.zero_grad()
            s.step()  # type: ignore[attr-defined]
    expected = lrkit.parse(SPEC).resolve(total_steps=100)
    assert o.param_groups[0]["lr"] == pytest.approx(float(expected(33)), rel=1e-12)


def test_a_later_set_step_over_a_foreign_lr_still_warns() -> None:
    _, o, s = _train(0)
    s.set_step(5)  # type: ignore[attr-defined]
    o.param_groups[0]["lr"] = 0.5  # a hand edit between two jumps
    with pytest.warns(OverwrittenLRWarning, match=r"set_step\(\) now writes the LR of its step 9"):
        s.set_step(9)  # type: ignore[attr-defined]


def _plateau_run() -> tuple[torch.optim.Optimizer, object]:
    o = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=0.1)
    p = Plateau(patience=0, factor=0.1, min_lr=0.05, start=0)
    return o, lrkit.torch.scheduler(o, "constant(lr=0.1)", total_steps=100, plateau=p)


def test_allow_schedule_change_with_the_same_schedule_and_a_floor_is_quiet() -> None:
    o, s = _plateau_run()
    for _ in range(5):
        o.step()
        s.step()  # type: ignore[attr-defined]
        s.report(1.0)  # type: ignore[attr-defined]
    assert o.param_groups[0]["lr"] == pytest.approx(0.05)  # cut to the plateau's floor
    state = s.state_dict()  # type: ignore[attr-defined]
    o2, s2 = _plateau_run()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        s2.load_state_dict(state, allow_schedule_change=True)  # type: ignore[attr-defined]
    assert o2.param_groups[0]["lr"] == pytest.approx(0.05)
