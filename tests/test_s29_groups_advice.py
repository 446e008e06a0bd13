"""A result over param groups at different LRs says how to schedule all of them (group_lrs() as their peaks,
one multiplier with relative=True): its one-schedule advice alone, followed as printed, could only drive
them at one LR."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")

import lrkit  # noqa: E402


def _found(lrs: list[float]) -> lrkit.finder.FinderResult:
    torch.manual_seed(0)
    m = torch.nn.Sequential(torch.nn.Linear(8, 16), torch.nn.ReLU(), torch.nn.Linear(16, 2))
    groups = [{"params": m[0].parameters(), "lr": lrs[0]}, {"params": m[2].parameters(), "lr": lrs[1]}]
    opt = torch.optim.SGD(groups, lr=lrs[1], momentum=0.9)
    x = torch.randn(512, 8)
    data = torch.utils.data.TensorDataset(x, (x[:, 0] > 0).long())
    loader = torch.utils.data.DataLoader(data, batch_size=16, shuffle=True)
    return lrkit.find_lr(m, opt, loader, torch.nn.functional.cross_entropy)


def test_groups_at_different_lrs_are_told_the_relative_recipe() -> None:
    found = _found([1e-4, 1e-3])
    assert found.suggestion is not None
    (line,) = [x for x in str(found).splitlines() if "param groups:" in x]
    peaks = found.group_lrs(found.peak_lr)
    assert peaks[1] == pytest.approx(10 * peaks[0])
    assert f"{peaks[0]:.3g}, {peaks[1]:.3g}" in line and "relative=True" in line, line


def test_one_lr_for_every_group_gets_no_such_line() -> None:
    found = _found([1e-3, 1e-3])
    assert "relative=True" not in str(found)
