"""lrkit.torch: set_step-driven loops past the run warn; EpochwiseSteppingWarning names
follow_optimizer=False; one Plateau per scheduler; relative=True with a schedule far from 1; the
add_param_group refusal names its workaround; allow_schedule_change warns on an LR jump."""

from __future__ import annotations

import copy
import gc
import warnings

import numpy as np
import pytest
import torch

import lrkit
from lrkit.adapters.torch import EpochwiseSteppingWarning, PastTheRunWarning
from lrkit.control import Plateau


def _opt(lr: float = 0.1) -> tuple[torch.nn.Module, torch.optim.Optimizer]:
    torch.manual_seed(0)
    m = torch.nn.Linear(2, 2)
    return m, torch.optim.SGD(m.parameters(), lr=lr)


def _opt_step(m: torch.nn.Module, o: torch.optim.Optimizer) -> None:
    m(torch.randn(4, 2)).pow(2).mean().backward()
    o.step()
    o.zero_grad()


# -- set_step past the run ------------------------------------------------------------------------
@pytest.mark.parametrize("how", ["set_step", "epoch"])
def test_set_step_loop_past_the_run_warns_once(how: str) -> None:
    m, o = _opt()
    s = lrkit.torch.scheduler(o, "warmup(5%) >> cosine(lr=0.1)", total_steps=100)
    with warnings.catch_warnings(record=True) as w:
        warnings.simplefilter("always")
        for k in range(200):
            _opt_step(m, o)
            s.set_step(k + 1) if how == "set_step" else s.step(epoch=k + 1)
    past = [x for x in w if issubclass(x.category, PastTheRunWarning)]
    assert len(past) == 1, [str(x.message) for x in w]
    assert "this is step 102" in str(past[0].message)  # as a step()-driven loop: the second step past
    assert past[0].filename == __file__


def test_set_step_past_the_end_without_training_there_is_silent() -> None:
    m, o = _opt()
    s = lrkit.torch.scheduler(o, "cosine(lr=0.1)", total_steps=100)
    with warnings.catch_warnings():
        warnings.simplefilter("error", PastTheRunWarning)
        s.set_step(150)  # e.g. to look at the LR there
        s.set_step(10)  # back inside the run
        for k in range(11, 60):
            _opt_step(m, o)
            s.set_step(k)


# -- EpochwiseSteppingWarning and deliberate per-call schedules ---------------------------------------
def _ppo(follow: bool) -> tuple[list[float], list[float], list[warnings.WarningMessage]]:
    net = torch.nn.Linear(4, 2)
    opt = torch.optim.Adam(net.parameters(), lr=2.5e-4)
    n_iter = 20
    sch = lrkit.torch.scheduler(
        opt, "linear(lr=2.5e-4, end_lr=0)", total_steps=n_iter, follow_optimizer=None if follow else False
    )
    got, ref = [], []
    with warnings.catch_warnings(record=True) as w:
        warnings.simplefilter("always")
        for it in range(1, n_iter + 1):
            ref.append((1.0 - (it - 1.0) / n_iter) * 2.5e-4)  # CleanRL's ppo.py annealing
            got.append(opt.param_groups[0]["lr"])
            for _ in range(16):  # 4 update epochs x 4 minibatches
                net(torch.randn(8, 4)).pow(2).mean().backward()
                opt.step()
                opt.zero_grad()
            sch.step()
    return got, ref, w


def test_epochwise_warning_names_follow_optimizer_false_which_silences_it() -> None:
    got, ref, w = _ppo(follow=True)
    msgs = [str(x.message) for x in w if issubclass(x.category, EpochwiseSteppingWarning)]
    assert len(msgs) == 1 and "follow_optimizer=False" in msgs[0] and "on purpose" in msgs[0]
    got, ref, w = _ppo(follow=False)
    assert not w, [str(x.message) for x in w]
    np.testing.assert_allclose(got, ref, rtol=0, atol=1e-18)


# -- one Plateau per scheduler ------------------------------------------------------------------------
def test_one_plateau_for_two_schedulers_is_refused() -> None:
    _, og = _opt()
    _, od = _opt()
    p = Plateau(patience=2)
    sg = lrkit.torch.scheduler(og, "constant(lr=0.1)", plateau=p)
    sd = lrkit.torch.scheduler(od, "constant(lr=0.1)", plateau=p)
    with pytest.raises(ValueError, match="one Plateau per scheduler"):
        sg.report(1.0)
    assert sd.report(1.0) is False  # the one built last owns it


def test_a_plateau_reused_for_a_new_run_starts_afresh() -> None:
    p = Plateau(patience=2)
    _, o1 = _opt()
    s1 = lrkit.torch.scheduler(o1, "constant(lr=0.1)", plateau=p)
    for v in (0.5, 0.2, 0.3):
        s1.report(v)
    assert p.best == 0.2
    _, o2 = _opt()
    s2 = lrkit.torch.scheduler(o2, "constant(lr=0.1)", plateau=p)  # fold 2: s1 still alive, no more used
    cuts = [s2.report(v) for v in (1.5, 1.4, 1.3, 1.2)]
    assert cuts == [False] * 4 and p.best == 1.2 and s2.plateau_cuts == [1.0]
    assert s1 is not None


def test_copies_of_a_scheduler_have_their_own_plateau() -> None:
    m, o = _opt()
    s = lrkit.torch.scheduler(o, "constant(lr=0.1)", plateau=Plateau(patience=0))
    s.report(1.0)
    _, _, s2 = copy.deepcopy((m, o, s))
    assert s2.plateau is not s.plateau and s2.plateau.best == 1.0
    assert s2.report(2.0) is True  # the copy keeps the state it was copied with
    assert s.report(0.5) is False
    del s2
    gc.collect()


def test_resume_into_a_new_scheduler_keeps_the_loaded_plateau_state() -> None:
    p = Plateau(patience=1)
    _, o = _opt()
    s = lrkit.torch.scheduler(o, "constant(lr=0.1)", plateau=p)
    for v in (1.0, 2.0):
        s.report(v)
    state = s.state_dict()
    _, o2 = _opt()
    s2 = lrkit.torch.scheduler(o2, "constant(lr=0.1)", plateau=p)  # the same object: reset, then loaded
    s2.load_state_dict(state)
    assert p.best == 1.0 and p.num_bad_epochs == 1
    assert s2.report(2.0) is True


# -- relative=True and schedules far from 1 -----------------------------------------------------------
def test_relative_schedule_written_in_lrs_warns() -> None:
    _, o = _opt(lr=3e-4)
    with pytest.warns(
        UserWarning,
        match=r"peaks at 0.0003: "
        r"param_groups\[0\] \(lr 0.0003\) would train at up to 9e-08",
    ):
        lrkit.torch.scheduler(o, "warmup(10%) >> cosine(lr=3e-4)", total_steps=100, relative=True)
    _, o = _opt(lr=1e-5)
    with pytest.warns(UserWarning, match="peaks at 200"):
        lrkit.torch.scheduler(o, "constant(lr=200)", total_steps=100, relative=True)


def test_relative_multipliers_and_frozen_groups_are_silent() -> None:
    m = torch.nn.Linear(2, 2)
    o = torch.optim.AdamW([{"params": [m.weight], "lr": 1e-4}, {"params": [m.bias], "lr": 1e-3}])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        lrkit.torch.scheduler(o, "warmup(10%) >> cosine(lr=1.0, min_lr=0.1)", total_steps=100, relative=True)
        lrkit.torch.scheduler(o, ["cosine(lr=1.0)", "constant(lr=0)"], total_steps=100, relative=True)
        lrkit.torch.scheduler(o, "cosine(lr=20)", total_steps=100, relative=True)


def test_refusal_of_one_absolute_schedule_says_relative_is_a_multiplier() -> None:
    m = torch.nn.Linear(2, 2)
    o = torch.optim.AdamW([{"params": [m.weight], "lr": 1e-4}, {"params": [m.bias], "lr": 1e-3}])
    with pytest.raises(ValueError, match=r"multiplier peaking at 1.*group_lrs\(\)"):
        lrkit.torch.scheduler(o, "cosine(lr=0.0126)", total_steps=100)


# -- add_param_group ----------------------------------------------------------------------------------
def test_add_param_group_refusal_names_the_rebuild_and_it_works() -> None:
    torch.manual_seed(0)
    m = torch.nn.Sequential(torch.nn.Linear(2, 2), torch.nn.Linear(2, 2))
    o = torch.optim.SGD(m[0].parameters(), lr=0.1)
    s = lrkit.torch.scheduler(o, "warmup(3) >> cosine(lr=1.0)", total_steps=50, relative=True)
    for _ in range(5):
        _opt_step(m, o)
        s.step()
    o.add_param_group({"params": m[1].parameters(), "lr": 0.01})
    _opt_step(m, o)
    with pytest.raises(RuntimeError, match=r"new.set_step\(old.last_epoch\)"):
        s.step()
    new = lrkit.torch.scheduler(o, "warmup(3) >> cosine(lr=1.0)", total_steps=50, relative=True)
    new.set_step(s.last_epoch)
    s = new  # the old one dropped
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        _opt_step(m, o)
        s.step()
    ref = lrkit.parse("warmup(3) >> cosine(lr=1.0)").resolve(total_steps=50)
    np.testing.assert_allclose([g["lr"] for g in o.param_groups], [0.1 * ref(7), 0.01 * ref(7)], rtol=1e-12)


# -- allow_schedule_change ----------------------------------------------------------------------------
def test_allow_schedule_change_warns_on_an_lr_jump() -> None:
    _, o = _opt(lr=1e-3)
    spec = "warmup(10%) >> cosine(lr=1e-3, min_lr=1e-5)"
    s = lrkit.torch.scheduler(o, spec, total_steps=100)
    s.set_step(100)
    state = s.state_dict()
    _, o2 = _opt(lr=1e-3)
    s2 = lrkit.torch.scheduler(o2, spec, total_steps=150)
    with pytest.warns(
        UserWarning,
        match=r"resume step 100, "
        r"param_groups\[0\]'s LR jumps from 1e-05 .* to 0.0003089",
    ):
        s2.load_state_dict(state, allow_schedule_change=True)
    assert o2.param_groups[0]["lr"] == pytest.approx(3.089e-4, rel=1e-3)


def test_allow_schedule_change_without_a_jump_is_silent() -> None:
    # WSD extended in its stable phase: the same LR at the resume step
    _, o = _opt()
    s = lrkit.torch.scheduler(o, "warmup(50) >> wsd(lr=0.1, decay=20%)", total_steps=1000)
    s.set_step(500)
    state = s.state_dict()
    _, o2 = _opt()
    s2 = lrkit.torch.scheduler(o2, "warmup(50) >> wsd(lr=0.1, decay=20%)", total_steps=2000)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        s2.load_state_dict(state, allow_schedule_change=True)
    assert o2.param_groups[0]["lr"] == 0.1
