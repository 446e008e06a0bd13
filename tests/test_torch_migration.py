"""Moving training scripts from torch.optim.lr_scheduler to lrkit.torch.scheduler: the mistakes and
habits a port brings along (one hyperparameter schedule for groups that differ, step(epoch), torch's
state_dict, a LambdaLR function, a schedule counted in epochs), and what torch's schedulers do that lrkit's
must too (deep copies and pickles that go on stepping, GradScaler with interval="epoch")."""

from __future__ import annotations

import copy
import io
import math
import pickle
import warnings

import numpy as np
import pytest
import torch

import lrkit
from lrkit.schedules import ScheduleShorterThanRunWarning
from lrkit.schedules.base import shorter_than_run


def _param() -> torch.nn.Parameter:
    return torch.nn.Parameter(torch.zeros(2))


def _adamw_two_groups(wd: tuple[float, float] = (0.05, 0.0), **kw: object) -> torch.optim.AdamW:
    return torch.optim.AdamW(
        [{"params": [_param()], "weight_decay": wd[0]}, {"params": [_param()], "weight_decay": wd[1]}],
        lr=1e-3,
        **kw,  # type: ignore[arg-type]
    )


# -- 1. one hyperparameter schedule for groups whose values differ ----------------------------------
def test_one_weight_decay_schedule_for_a_decay_and_a_no_decay_group_is_refused() -> None:
    """It would decay biases and LayerNorm (the no-decay group) too; the LR's rule, for every hparam."""
    opt = _adamw_two_groups()
    with pytest.raises(ValueError) as info:
        lrkit.torch.scheduler(
            opt, "cosine(lr=1e-3)", total_steps=100, hparams={"weight_decay": "cosine(lr=0.05, min_lr=0.01)"}
        )
    msg = str(info.value)
    assert "hparams['weight_decay']: one schedule for 2 parameter groups whose weight_decay differ" in msg
    assert "([0.05, 0.0])" in msg and "would give them all the same weight_decay" in msg
    assert "['cosine(lr=0.05, min_lr=0.01)', 'constant(lr=0)']" in msg
    assert [g["weight_decay"] for g in opt.param_groups] == [0.05, 0.0]  # nothing written


def test_the_per_group_schedules_the_refusal_proposes_keep_the_no_decay_group_at_zero() -> None:
    opt = _adamw_two_groups()
    s = lrkit.torch.scheduler(
        opt,
        "cosine(lr=1e-3)",
        total_steps=100,
        hparams={"weight_decay": ["cosine(lr=0.05, min_lr=0.01)", "constant(lr=0)"]},
    )
    for _ in range(50):
        opt.step()
        s.step()
    # cosine from 0.05 to 0.01 over 100 steps, at step 50: 0.01 + 0.04 * (1 + cos(pi / 2)) / 2 = 0.03
    assert opt.param_groups[0]["weight_decay"] == pytest.approx(0.03, abs=1e-15)
    assert opt.param_groups[1]["weight_decay"] == 0.0


@pytest.mark.parametrize(
    ("key", "make", "values"),
    [
        (
            "momentum",
            lambda: torch.optim.SGD(
                [{"params": [_param()], "momentum": 0.9}, {"params": [_param()], "momentum": 0.0}], lr=0.1
            ),
            "[0.9, 0.0]",
        ),
        (
            "beta1",
            lambda: torch.optim.Adam(
                [{"params": [_param()], "betas": (0.9, 0.999)}, {"params": [_param()], "betas": (0.8, 0.999)}]
            ),
            "[0.9, 0.8]",
        ),
        (
            "beta2",
            lambda: torch.optim.Adam(
                [{"params": [_param()], "betas": (0.9, 0.95)}, {"params": [_param()], "betas": (0.9, 0.999)}]
            ),
            "[0.95, 0.999]",
        ),
    ],
)
def test_every_hyperparameter_follows_the_rule(key: str, make: object, values: str) -> None:
    with pytest.raises(ValueError, match=rf"hparams\['{key}'\]: one schedule for 2 parameter groups") as info:
        lrkit.torch.scheduler(make(), "constant(lr=0.1)", hparams={key: "cosine(lr=0.9, steps=10)"})  # type: ignore[operator]
    assert f"whose {key} differ ({values})" in str(info.value)


def test_one_schedule_for_groups_that_agree_is_taken_as_for_the_lr() -> None:
    """The LR's rule refuses only groups that differ; groups that agree share one schedule."""
    opt = _adamw_two_groups(wd=(0.05, 0.05))
    s = lrkit.torch.scheduler(
        opt, "constant(lr=1e-3)", total_steps=100, hparams={"weight_decay": "linear(lr=0.05, steps=100)"}
    )
    for _ in range(25):
        opt.step()
        s.step()
    assert [g["weight_decay"] for g in opt.param_groups] == pytest.approx([0.0375, 0.0375], abs=1e-15)
    # and the LR's own rule, which this one mirrors
    lrs = torch.optim.SGD([{"params": [_param()], "lr": 0.1}, {"params": [_param()], "lr": 0.01}])
    with pytest.raises(ValueError, match="one absolute schedule"):
        lrkit.torch.scheduler(lrs, "constant(lr=0.1)")


# -- 2. GradScaler, a fused optimizer and interval="epoch" ------------------------------------------
def _epochs(fused: bool, bad: set[tuple[int, int]], per_epoch: int = 5, epochs: int = 4) -> list[float]:
    """LR after each epoch's step(), overflowing (inf loss) at the (epoch, batch) pairs in ``bad``."""
    torch.manual_seed(0)
    m = torch.nn.Linear(4, 1)
    opt = torch.optim.Adam(m.parameters(), lr=0.1, fused=fused)
    s = lrkit.torch.scheduler(
        opt, "step(lr=0.1, step_size=1ep, gamma=0.5)", interval="epoch", steps_per_epoch=per_epoch
    )
    scaler = torch.amp.GradScaler("cpu")
    out = []
    for e in range(epochs):
        for b in range(per_epoch):
            loss = m(torch.randn(2, 4)).pow(2).mean()
            if (e, b) in bad:
                loss = loss * float("inf")
            scaler.scale(loss).backward()
            scaler.step(opt)
            scaler.update()
            opt.zero_grad()
        s.step()
        out.append(opt.param_groups[0]["lr"])
    return out


@pytest.mark.parametrize("fused", [False, True])
@pytest.mark.parametrize("batch", [0, 2, 4])
def test_an_epoch_advances_when_one_of_its_steps_was_taken_whichever_batch_overflowed(
    fused: bool, batch: int
) -> None:
    """The last batch's overflow used to cancel the epoch with a fused optimizer (its found_inf only was
    read); halving every epoch, by hand: 0.1 / 2**(e + 1)."""
    assert _epochs(fused, {(1, batch)}) == [0.05, 0.025, 0.0125, 0.00625]


@pytest.mark.parametrize("fused", [False, True])
def test_an_epoch_whose_steps_were_all_skipped_does_not_advance(fused: bool) -> None:
    assert _epochs(fused, {(1, b) for b in range(5)}) == [0.05, 0.05, 0.025, 0.0125]


@pytest.mark.parametrize("fused", [False, True])
def test_long_epochs_of_fused_steps(fused: bool) -> None:
    """More fused steps in an epoch than the flags kept apart (64): folded, with the same answer."""
    bad = {(1, 69)} | {(2, b) for b in range(70)}
    assert _epochs(fused, bad, per_epoch=70, epochs=3) == [0.05, 0.025, 0.025]


@pytest.mark.parametrize("fused", [False, True])
def test_interval_step_still_skips_exactly_the_skipped_step(fused: bool) -> None:
    torch.manual_seed(0)
    m = torch.nn.Linear(4, 1)
    opt = torch.optim.Adam(m.parameters(), lr=0.1, fused=fused)
    s = lrkit.torch.scheduler(opt, "linear(lr=0.1, steps=10)")
    scaler = torch.amp.GradScaler("cpu")
    steps = []
    for b in range(6):
        loss = m(torch.randn(2, 4)).pow(2).mean() * (float("inf") if b in (1, 2) else 1.0)
        scaler.scale(loss).backward()
        scaler.step(opt)
        scaler.update()
        opt.zero_grad()
        s.step()
        steps.append(s.last_epoch)
    assert steps == [1, 1, 1, 2, 3, 4]


# -- 3. deep copies and pickles go on stepping, as torch's schedulers do ---------------------------
def _linear_pair() -> tuple[dict[str, object], dict[str, object]]:
    """(lrkit, torch) runs of the same linear decay, 5 steps in."""
    o = torch.optim.SGD([_param()], lr=0.1)
    s = lrkit.torch.scheduler(o, "linear(lr=0.1, steps=100)")
    o2 = torch.optim.SGD([_param()], lr=0.1)
    t = torch.optim.lr_scheduler.LinearLR(o2, 1.0, 0.0, 100)
    for _ in range(5):
        o.step()
        s.step()
        o2.step()
        t.step()
    return {"opt": o, "sched": s}, {"opt": o2, "sched": t}


def _run(run: dict[str, object], n: int) -> tuple[int, float]:
    opt, sched = run["opt"], run["sched"]
    for _ in range(n):
        opt.step()  # type: ignore[attr-defined]
        sched.step()  # type: ignore[attr-defined]
    return sched.last_epoch, float(opt.param_groups[0]["lr"])  # type: ignore[attr-defined]


def _torch_roundtrip(x: object) -> object:
    buf = io.BytesIO()
    torch.save(x, buf)
    buf.seek(0)
    return torch.load(buf, weights_only=False)


@pytest.mark.parametrize(
    "branch",
    [copy.deepcopy, lambda x: pickle.loads(pickle.dumps(x)), _torch_roundtrip],
    ids=["deepcopy", "pickle", "torch.save"],
)
def test_a_branched_copy_advances_as_torchs_linear_lr_branch_does(branch: object) -> None:
    mine, theirs = _linear_pair()
    b_mine, b_theirs = branch(mine), copy.deepcopy(theirs)  # type: ignore[operator]
    k, lr = _run(b_mine, 50)
    k_t, lr_t = _run(b_theirs, 50)
    assert (k, k_t) == (55, 55)
    assert lr == pytest.approx(lr_t, abs=1e-12) and lr == pytest.approx(0.045, abs=1e-15)
    # the original is where it was, and goes on by itself (the copy's steps did not move it)
    assert mine["sched"].last_epoch == 5  # type: ignore[attr-defined]
    assert _run(mine, 1) == (6, pytest.approx(0.094, abs=1e-15))
    assert len(b_mine["opt"]._optimizer_step_post_hooks) == 1  # type: ignore[attr-defined]


def test_a_copy_taken_between_the_optimizer_step_and_the_scheduler_step_takes_that_step() -> None:
    mine, _ = _linear_pair()
    mine["opt"].step()  # type: ignore[attr-defined]
    branch = copy.deepcopy(mine)
    branch["sched"].step()  # type: ignore[attr-defined]
    mine["sched"].step()  # type: ignore[attr-defined]
    assert branch["sched"].last_epoch == mine["sched"].last_epoch == 6  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    "branch", [copy.deepcopy, lambda x: pickle.loads(pickle.dumps(x))], ids=["deepcopy", "pickle"]
)
def test_the_in_graph_scheduler_copies_and_pickles(branch: object) -> None:
    o = torch.optim.SGD([_param()], lr=torch.tensor(0.1))
    s = lrkit.torch.scheduler(o, "linear(lr=0.1, steps=100)", in_graph=True)
    for _ in range(5):
        s.step()
    b = branch({"opt": o, "sched": s})  # type: ignore[operator]
    for _ in range(50):
        b["sched"].step()
    assert b["sched"].last_epoch == 55 and s.last_epoch == 5
    assert float(b["opt"].param_groups[0]["lr"]) == pytest.approx(0.045, abs=1e-7)
    assert float(o.param_groups[0]["lr"]) == pytest.approx(0.095, abs=1e-7)


# -- 4. step(x): lrkit's positional argument is a plateau metric, torch's is an epoch ---------------
@pytest.mark.parametrize("in_graph", [False, True])
def test_step_with_a_number_and_no_plateau_says_what_the_argument_is_and_what_torchs_is(
    in_graph: bool,
) -> None:
    lr: float | torch.Tensor = torch.tensor(0.1) if in_graph else 0.1
    o = torch.optim.SGD([_param()], lr=lr)
    s = lrkit.torch.scheduler(o, "cosine_restarts(lr=0.1, period=10)", in_graph=in_graph)
    o.step()
    with pytest.raises(ValueError) as info:
        s.step(0.2)
    msg = str(info.value)
    assert msg.startswith("step(0.2): the positional argument of lrkit's step() is a metric for the plateau")
    for words in (
        "pass plateau=Plateau(...)",
        "step(epoch=k)",
        "set_step(k)",
        "period=10ep",
        "steps_per_epoch",
    ):
        assert words in msg
    assert s.last_epoch == 0


def test_the_advice_for_torchs_fractional_epochs_gives_torchs_curve() -> None:
    """CosineAnnealingWarmRestarts stepped with step(epoch + i / iters) after each batch, as torch's docs
    do, against step() after each batch with period=10ep: the same LRs, torch's one batch later (its
    step after batch i sets the LR of position i / iters for the next batch)."""
    iters, epochs = 5, 25
    p, p2 = _param(), _param()
    o, o2 = torch.optim.SGD([p], lr=0.1), torch.optim.SGD([p2], lr=0.1)
    t = torch.optim.lr_scheduler.CosineAnnealingWarmRestarts(o, T_0=10)
    s = lrkit.torch.scheduler(o2, "cosine_restarts(lr=0.1, period=10ep)", steps_per_epoch=iters)
    theirs, mine = [], []
    for epoch in range(epochs):
        for i in range(iters):
            theirs.append(o.param_groups[0]["lr"])
            mine.append(o2.param_groups[0]["lr"])
            o.step()
            t.step(epoch + i / iters)
            o2.step()
            s.step()
    np.testing.assert_allclose(theirs[1:], mine[:-1], rtol=0, atol=1e-15)
    assert mine[50] == 0.1  # the restart at epoch 10


def test_step_epoch_k_is_set_step_as_the_message_says() -> None:
    o = torch.optim.SGD([_param()], lr=0.1)
    s = lrkit.torch.scheduler(o, "step(lr=0.1, step_size=3, gamma=0.1)", interval="epoch", steps_per_epoch=1)
    s.step(epoch=7)
    assert s.last_epoch == 7 and o.param_groups[0]["lr"] == pytest.approx(0.001, rel=1e-12)


# -- 5. a schedule that ends well before the run and then holds ~0 ----------------------------------
def test_a_per_epoch_length_on_a_per_batch_run_warns_naming_length_total_held_value_and_fix() -> None:
    opt = torch.optim.SGD([_param()], lr=0.1, momentum=0.9)
    with pytest.warns(ScheduleShorterThanRunWarning) as seen:
        lrkit.torch.scheduler(opt, "cosine(lr=0.1, steps=90)", total_steps=90 * 391)
    (w,) = seen
    msg = str(w.message)
    assert msg.startswith(
        "lrkit.torch.scheduler: 'cosine(lr=0.1, steps=90)' ends at step 90 and then holds 0 "
    )
    assert "under 1% of its peak 0.1" in msg and "remaining 35,099 steps of total_steps=35,190" in msg
    assert "(99.7% of the run)" in msg and "'100%' or 'rest'" in msg and "'90ep', with steps_per_epoch" in msg
    assert w.filename == __file__  # at the caller's line


@pytest.mark.parametrize(
    ("spec", "total", "relative"),
    [
        ("cosine(lr=0.1, steps=90, min_lr=0.01)", 35_190, False),  # ends on the floor it means to hold
        ("warmup(lr=0.1, steps=100) >> constant(lr=0.1)", 35_190, False),  # runs forever
        ("warmup(100)", 35_190, True),  # a multiplier that ends at 1 and holds it
        ("cosine(lr=0.1, steps=449)", 450, False),  # ends at the run's last step
        ("cosine(lr=0.1, steps=445)", 450, False),  # 4 steps at 0: within 1% of the run
        ("cosine(lr=0.1, steps=100%)", 35_190, False),
        ("warmup(5%) >> cosine(lr=0.1)", 35_190, False),
        ("cosine(lr=0.1, steps=90)", None, False),  # no run to compare with
    ],
)
def test_schedules_that_fit_or_hold_on_purpose_stay_silent(
    spec: str, total: int | None, relative: bool
) -> None:
    opt = torch.optim.SGD([_param()], lr=0.1)
    with warnings.catch_warnings():
        warnings.simplefilter("error", ScheduleShorterThanRunWarning)
        lrkit.torch.scheduler(opt, spec, total_steps=total, relative=relative)


def test_shorter_than_run_by_hand() -> None:
    s = lrkit.parse("warmup(lr=1.0, steps=10) >> linear(lr=1.0, steps=40)")
    assert shorter_than_run(s, 100) == (50.0, 0.0, 1.0)  # a chain: its peak is the warmup's end
    assert shorter_than_run(s, 51) is None and shorter_than_run(s, 52) is None  # 0 and 1 step held after
    assert shorter_than_run(s, 53) == (50.0, 0.0, 1.0)  # 2 steps held: more than one, and than 1% of 53
    long = lrkit.parse("linear(lr=1.0, steps=10000)")
    assert shorter_than_run(long, 10_102) is None  # 101 steps held: not more than 1% of the run
    assert shorter_than_run(long, 10_103) == (10_000.0, 0.0, 1.0)  # 102 steps held
    assert shorter_than_run(lrkit.parse("linear(lr=1.0, steps=50, end_lr=0.0099)"), 100) is not None
    assert shorter_than_run(lrkit.parse("linear(lr=1.0, steps=50, end_lr=0.01)"), 100) is None


def test_a_hyperparameter_schedule_is_checked_too_and_the_class_is_exported() -> None:
    opt = torch.optim.SGD([_param()], lr=0.1, momentum=0.9)
    with pytest.warns(ScheduleShorterThanRunWarning, match=r"hparams\['momentum'\] = 'linear"):
        lrkit.torch.scheduler(
            opt, "constant(lr=0.1)", total_steps=1000, hparams={"momentum": "linear(lr=0.9, steps=10)"}
        )
    assert lrkit.torch.ScheduleShorterThanRunWarning is ScheduleShorterThanRunWarning
    assert "ScheduleShorterThanRunWarning" in lrkit.schedules.__all__
    assert issubclass(ScheduleShorterThanRunWarning, UserWarning)


def test_the_optax_adapter_warns_too() -> None:
    pytest.importorskip("jax")
    pytest.importorskip("optax")
    with pytest.warns(
        ScheduleShorterThanRunWarning, match=r"lrkit\.optax\.schedule: 'cosine\(lr=0\.1, steps=90\)'"
    ):
        lrkit.optax.schedule("cosine(lr=0.1, steps=90)", total_steps=9000)


# -- 6. torch's state_dict, a LambdaLR function --------------------------------------------------
@pytest.mark.parametrize(
    "make",
    [
        lambda o: torch.optim.lr_scheduler.StepLR(o, 3, gamma=0.1),
        lambda o: torch.optim.lr_scheduler.OneCycleLR(o, 0.1, total_steps=10),
    ],
    ids=["StepLR", "OneCycleLR"],
)  # ReduceLROnPlateau's state is loaded, cut and counters: tests/test_s32_plateau_fixes.py
def test_a_torch_scheduler_state_is_recognised_and_set_step_is_proposed(make: object) -> None:
    o = torch.optim.SGD([_param()], lr=0.1)
    state = make(o).state_dict()  # type: ignore[operator]
    s = lrkit.torch.scheduler(torch.optim.SGD([_param()], lr=0.1), "constant(lr=0.1)")
    with pytest.raises(lrkit.control.plateau.MissingStateKeys) as info:
        s.load_state_dict(state)
    msg = str(info.value)
    assert "this is the state_dict() of a torch scheduler" in msg
    assert "scheduler.set_step(state['last_epoch'])" in msg and "interval='epoch'" in msg
    assert isinstance(info.value, KeyError) and isinstance(info.value, ValueError)


def test_following_the_advice_resumes_a_torch_step_lr_run_on_its_lr() -> None:
    """A StepLR stepped per epoch for 7 epochs, taken over by lrkit as the message says."""
    o = torch.optim.SGD([_param()], lr=0.1)
    t = torch.optim.lr_scheduler.StepLR(o, 3, gamma=0.1)
    for _ in range(7):
        o.step()
        t.step()
    state = t.state_dict()
    o2 = torch.optim.SGD([_param()], lr=0.1)
    s = lrkit.torch.scheduler(
        o2, "step(lr=0.1, step_size=3ep, gamma=0.1)", interval="epoch", steps_per_epoch=391
    )
    s.set_step(state["last_epoch"])
    assert o2.param_groups[0]["lr"] == pytest.approx(o.param_groups[0]["lr"], rel=1e-12)
    assert math.isclose(o2.param_groups[0]["lr"], 0.001, rel_tol=1e-12)


def test_an_lrkit_state_missing_keys_keeps_the_plain_message() -> None:
    s = lrkit.torch.scheduler(torch.optim.SGD([_param()], lr=0.1), "constant(lr=0.1)")
    with pytest.raises(
        lrkit.control.plateau.MissingStateKeys, match=r"not an lrkit\.torch scheduler state"
    ) as info:
        s.load_state_dict({"last_epoch": 3})
    assert "torch scheduler" not in str(info.value).replace("lrkit.torch scheduler", "")


@pytest.mark.parametrize("as_list", [False, True])
def test_a_lambda_lr_function_is_refused_pointing_to_specs_piecewise_and_lambda_lr(as_list: bool) -> None:
    o = torch.optim.SGD([_param()], lr=0.1)
    f = lambda k: 0.95**k  # noqa: E731
    with pytest.raises(TypeError) as info:
        lrkit.torch.scheduler(o, [f] if as_list else f)
    msg = str(info.value)
    assert msg.startswith(f"schedule{'[0]' if as_list else ''}: got a Python function (<lambda>)")
    for words in ("schedules are data", "spec string", "piecewise(points=", ">>", "LambdaLR"):
        assert words in msg
    # the piecewise example in the message is a real spec
    assert str(lrkit.parse("piecewise(points=[[0, 0.0], [10%, 1e-3], [100%, 1e-5]])")).startswith(
        "piecewise("
    )


def test_timm_names_the_run_as_its_user_gave_it() -> None:
    """lrkit.timm builds on lrkit.torch.scheduler: the warning names epochs * updates_per_epoch."""
    opt = torch.optim.SGD([_param()], lr=0.1)
    with pytest.warns(ScheduleShorterThanRunWarning) as seen:
        lrkit.timm.scheduler(opt, "cosine(lr=0.1, steps=90)", epochs=90, updates_per_epoch=391)
    (w,) = seen
    assert "remaining 35,099 steps of epochs * updates_per_epoch=35,190" in str(w.message)
    assert str(w.message).startswith("lrkit.timm.scheduler: 'cosine(lr=0.1, steps=90)'")
    assert w.filename == __file__
