"""``Plateau.reset()`` forgets the reductions, and with them the cuts they made: the lrkit.torch scheduler
the plateau was given to drops its ``plateau_cuts`` and writes the LRs without them at once. Before, the
plateau forgot its cuts (``num_reductions`` 0) while the scheduler kept them (``plateau_cuts`` 0.01 and
the LR a hundredth of the schedule's), and went on cutting from there."""

from __future__ import annotations

from typing import Any

import pytest

torch = pytest.importorskip("torch")

import lrkit  # noqa: E402
from lrkit.control import Plateau  # noqa: E402

pytestmark = pytest.mark.usefixtures("one_torch_thread")

SPEC = "cosine(lr=0.1)"


def _sched(plateau: Plateau | None = None, groups: int = 1, **kw: Any) -> Any:
    params = [torch.nn.Parameter(torch.zeros(1)) for _ in range(groups)]
    graph = kw.get("in_graph", False)  # in_graph=True takes tensor LRs
    opt = torch.optim.SGD([{"params": [p], "lr": torch.tensor(0.1) if graph else 0.1} for p in params])
    plateau = plateau or Plateau(patience=0, start=0, factor=0.1)
    return lrkit.torch.scheduler(opt, SPEC, total_steps=100, follow_optimizer=False, plateau=plateau, **kw)


def _lrs(s: Any) -> list[float]:
    return [float(g["lr"]) for g in s.optimizer.param_groups]


def _cut_twice(s: Any) -> None:
    for _ in range(5):
        s.step()
    for m in (1.0, 1.0, 1.0):  # the best, then two bad epochs: two cuts
        s.report(m)
    assert s.plateau.num_reductions == 2
    assert s.plateau_cuts == [pytest.approx(0.01)] * len(s.plateau_cuts)


@pytest.mark.parametrize("in_graph", [False, True], ids=["Scheduler", "GraphScheduler"])
@pytest.mark.parametrize("groups", [1, 3])
def test_reset_drops_the_schedulers_cuts_and_rewrites_the_lr(in_graph: bool, groups: int) -> None:
    s = _sched(groups=groups, in_graph=in_graph)
    _cut_twice(s)
    uncut = _sched(groups=groups, in_graph=in_graph)
    uncut.set_step(5)
    assert _lrs(s) == pytest.approx([x * 0.01 for x in _lrs(uncut)], rel=1e-6)
    s.plateau.reset()
    assert s.plateau.num_reductions == 0
    assert s.plateau_cuts == [1.0] * groups
    assert _lrs(s) == _lrs(uncut)  # at once, not at the next step()
    assert s.state_dict()["plateau_cuts"] == [1.0] * groups
    # and it goes on as a scheduler whose plateau never cut
    for m in (2.0, 2.0, 1.0, 1.0):
        s.step()
        uncut.step()
        assert s.report(m) == uncut.report(m)
        assert _lrs(s) == _lrs(uncut) and s.plateau_cuts == uncut.plateau_cuts


def test_a_reset_without_cuts_writes_nothing() -> None:
    s = _sched()
    s.step()
    s.optimizer.param_groups[0]["lr"] = 0.5  # not rewritten: there was no cut to drop
    s.plateau.reset()
    assert s.optimizer.param_groups[0]["lr"] == 0.5


def test_a_new_scheduler_taking_the_plateau_leaves_the_old_ones_cuts() -> None:
    """A Plateau given to a second scheduler starts afresh there (its reset); the first keeps its LRs."""
    old = _sched()
    _cut_twice(old)
    before = (list(old.plateau_cuts), _lrs(old))
    new = _sched(old.plateau)
    assert new.plateau is old.plateau and old.plateau.num_reductions == 0
    assert (old.plateau_cuts, _lrs(old)) == before
    assert new.plateau_cuts == [1.0]


def test_a_plateau_given_to_no_scheduler_resets_alone() -> None:
    p = Plateau(patience=0)
    assert [p.step(1.0), p.step(1.0)] == [False, True]
    p.reset()
    assert p.num_reductions == 0 and p.best == p.mode_worse
