"""An LR set by someone else between two steps is warned about before lrkit's scheduler overwrites it
(OverwrittenLRWarning), and so is a second lrkit scheduler following the same optimizer; lrkit's own
flows that write LRs (scale, the guard's rollback and cuts, find_lr, load_state_dict) stay silent."""

from __future__ import annotations

import gc
import warnings

import pytest
import torch

import lrkit
from lrkit.adapters.torch import OverwrittenLRWarning
from lrkit.control import DivergenceGuard


def _setup(groups: int = 1, lr: float | torch.Tensor = 0.1, **kw: object):
    torch.manual_seed(0)
    m = torch.nn.Linear(2, 2)
    params = [{"params": [m.weight]}, {"params": [m.bias]}][:groups] if groups > 1 else m.parameters()
    o = torch.optim.SGD(params, lr=lr)
    s = lrkit.torch.scheduler(o, "cosine(lr=0.1)", total_steps=100, **kw)
    return m, o, s


def _train(m, o, s, n: int = 1) -> None:
    for _ in range(n):
        m(torch.randn(4, 2)).pow(2).mean().backward()
        o.step()
        o.zero_grad()
        s.step()


def _overwrites(w: list[warnings.WarningMessage]) -> list[str]:
    return [str(x.message) for x in w if issubclass(x.category, OverwrittenLRWarning)]


def test_reduce_lr_on_plateau_beside_it_is_warned_once() -> None:
    m, o, s = _setup()
    r = torch.optim.lr_scheduler.ReduceLROnPlateau(o, patience=0, factor=0.1)
    _train(m, o, s, 10)
    cut_from = o.param_groups[0]["lr"]
    r.step(1.0)
    r.step(1.0)  # RLROP cuts 10x
    cut = o.param_groups[0]["lr"]
    assert cut == pytest.approx(cut_from * 0.1)
    with warnings.catch_warnings(record=True) as w:
        warnings.simplefilter("always")
        _train(m, o, s, 1)
        r.step(1.0)
        r.step(1.0)
        _train(m, o, s, 5)
    msgs = _overwrites(w)
    assert len(msgs) == 1, msgs
    msg = msgs[0]
    assert "param_groups[0]['lr']" in msg and f"{cut:.6g}" in msg and f"{cut_from:.6g}" in msg
    assert "ReduceLROnPlateau" in msg and "Plateau(" in msg and "scale(" in msg
    assert w[0].filename == __file__  # points at the user's step() call


def test_hand_edit_of_one_group_names_that_group() -> None:
    m, o, s = _setup(groups=2)
    _train(m, o, s, 3)
    o.param_groups[1]["lr"] = 5e-5
    with pytest.warns(OverwrittenLRWarning, match=r"param_groups\[1\]\['lr'\] is 5e-05"):
        _train(m, o, s, 1)


def test_hand_edit_on_the_slow_path_and_at_set_step() -> None:
    # hparams take the slow path (_write); a hand edit is seen there too, and by set_step
    m = torch.nn.Linear(2, 2)
    o = torch.optim.SGD(m.parameters(), lr=0.1, momentum=0.9)
    s = lrkit.torch.scheduler(o, "cosine(lr=0.1)", total_steps=100, hparams={"momentum": "constant(lr=0.9)"})
    _train(m, o, s, 2)
    o.param_groups[0]["lr"] = 1e-3
    with pytest.warns(OverwrittenLRWarning, match="1e-03|0.001"):
        _train(m, o, s, 1)
    m, o, s = _setup()
    s.set_step(5)
    o.param_groups[0]["lr"] = 1e-3
    with pytest.warns(OverwrittenLRWarning):
        s.set_step(6)


def test_second_lrkit_scheduler_on_the_optimizer_is_warned() -> None:
    m, o, _ = _setup()
    s1 = lrkit.torch.scheduler(o, "constant(lr=0.1)", total_steps=100)
    s2 = lrkit.torch.scheduler(o, "constant(lr=0.1)", total_steps=100)  # the same LRs: only the peer check
    with warnings.catch_warnings(record=True) as w:
        warnings.simplefilter("always")
        for _ in range(3):
            m(torch.randn(4, 2)).pow(2).mean().backward()
            o.step()
            o.zero_grad()
            s1.step()
            s2.step()
    msgs = _overwrites(w)
    assert len(msgs) == 2 and all("1 other lrkit scheduler also steps this optimizer" in x for x in msgs)

    m, o, s1 = _setup()
    s2 = lrkit.torch.scheduler(o, "constant(lr=0.5)", relative=True, total_steps=100)
    with warnings.catch_warnings(record=True) as w:
        warnings.simplefilter("always")
        for _ in range(3):
            m(torch.randn(4, 2)).pow(2).mean().backward()
            o.step()
            o.zero_grad()
            s1.step()
            s2.step()
    msgs = _overwrites(w)
    assert len(msgs) == 2, msgs  # once per scheduler
    # different LRs: each finds the other's LR in the group at its first step, and names it
    assert all("1 other lrkit scheduler follows this optimizer" in x for x in msgs)
    assert s1 is not None and s2 is not None


def test_replacing_a_scheduler_by_rebinding_is_silent() -> None:
    m, o, s = _setup()
    _train(m, o, s, 3)
    s = lrkit.torch.scheduler(o, "cosine(lr=0.1)", total_steps=100)  # the old one is gone by the first step
    with warnings.catch_warnings():
        warnings.simplefilter("error", OverwrittenLRWarning)
        _train(m, o, s, 5)


def test_an_old_scheduler_still_referenced_but_not_stepped_is_silent() -> None:
    # accelerate keeps every prepared scheduler in a list; a variable may hold the old one
    m, o, old = _setup()
    _train(m, o, old, 3)
    kept = [old]
    new = lrkit.torch.scheduler(o, "cosine(lr=0.1)", total_steps=100)
    with warnings.catch_warnings():
        warnings.simplefilter("error", OverwrittenLRWarning)
        _train(m, o, new, 5)
    assert kept[0] is old


def test_lrkit_own_writes_are_silent() -> None:
    torch.manual_seed(0)
    m = torch.nn.Linear(2, 2)
    o = torch.optim.SGD(m.parameters(), lr=0.1)
    s = lrkit.torch.scheduler(o, "warmup(5) >> cosine(lr=0.1)", total_steps=200)
    g = DivergenceGuard(m, o, s, snapshot_every=5)
    x = torch.randn(16, 2)
    loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(x, x), batch_size=4)
    with warnings.catch_warnings():
        warnings.simplefilter("error", OverwrittenLRWarning)
        step = 0
        for i in range(60):
            loss = m(x).pow(2).mean()
            if i in (30, 31):
                loss = loss * float("nan")
            if g.check(loss, step):
                loss.backward()
                o.step()
                o.zero_grad()
                s.step()
                step += 1
            else:
                step = g.resume_step
            if i == 40:
                s.scale(0.5)
                lrkit.find_lr(m, o, loader, torch.nn.functional.mse_loss, num_steps=8, repeats=1)
                state = s.state_dict()
                s.load_state_dict(state)
        assert len(g.events) >= 1
        s2 = lrkit.torch.scheduler(o, "warmup(5) >> cosine(lr=0.1)", total_steps=200)
        del s, g  # the guard holds the scheduler too
        gc.collect()
        o.load_state_dict(o.state_dict())
        s2.load_state_dict(state)
        _train(m, o, s2, 3)


def test_tensor_lrs_and_frozen_groups_are_silent() -> None:
    torch.manual_seed(0)
    m = torch.nn.Linear(2, 2)
    o = torch.optim.Adam(
        [{"params": [m.weight], "lr": torch.tensor(1e-3)}, {"params": [m.bias], "lr": torch.tensor(0.0)}]
    )
    s = lrkit.torch.scheduler(o, "warmup(3) >> cosine(lr=1.0)", total_steps=30, relative=True)
    with warnings.catch_warnings():
        warnings.simplefilter("error", OverwrittenLRWarning)
        _train(m, o, s, 30)
    m = torch.nn.Linear(2, 2)
    o = torch.optim.SGD([{"params": [m.weight], "lr": 0.1}, {"params": [m.bias], "lr": 0.0}], lr=0.1)
    s = lrkit.torch.scheduler(o, "warmup(3) >> cosine(lr=1.0)", total_steps=30, relative=True)
    with warnings.catch_warnings():
        warnings.simplefilter("error", OverwrittenLRWarning)
        _train(m, o, s, 30)


def test_no_overwrite_no_warning_at_block_ends() -> None:
    # the check reads the previous step's value across a block refill (BLOCK steps)
    _, o, s = _setup(groups=2)
    s = lrkit.torch.scheduler(o, "cosine(lr=0.1)", total_steps=10_000)
    with warnings.catch_warnings():
        warnings.simplefilter("error", OverwrittenLRWarning)
        for _ in range(4100):
            o.step()
            s.step()
    o.param_groups[0]["lr"] = 1.0
    with pytest.warns(OverwrittenLRWarning, match="at its step 4100"):
        s.set_step(4095)  # a jump back into the first block: the edit is seen before the refill
    assert o.param_groups[0]["lr"] != 1.0
