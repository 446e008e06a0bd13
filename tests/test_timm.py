"""``lrkit.timm.scheduler`` driven exactly as timm's training script drives its schedulers.

The loop below copies the scheduler calls of timm's ``train.py`` (huggingface/pytorch-image-models,
``train.py``: ``main()`` and ``train_one_epoch()``), without timm itself (it needs torchvision, which does
not import beside this torch):

- ``updates_per_epoch = (len(loader_train) + args.grad_accum_steps - 1) // args.grad_accum_steps``;
- on resume: ``if start_epoch > 0: if args.sched_on_updates:
  lr_scheduler.step_update(start_epoch * updates_per_epoch) else: lr_scheduler.step(start_epoch)``;
- in ``train_one_epoch``: ``num_updates = epoch * updates_per_epoch``; on the last micro-batch of each
  accumulation (``need_update``): ``optimizer.step()``, ``num_updates += 1``, then
  ``lr_scheduler.step_update(num_updates=num_updates, metric=losses_m.avg)``;
- after each epoch and its validation: ``lr_scheduler.step(epoch + 1, latest_metric)``.

References: the closed form ``schedule(update)`` (or ``schedule(epoch * updates_per_epoch)`` with
``t_in_epochs``) for the LR used at each update, and torch's ``ReduceLROnPlateau`` fed the same epoch
metrics for the cuts.
"""

from __future__ import annotations

import math
from typing import Any

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import lrkit
from lrkit.adapters.torch import ScheduleMismatchError
from lrkit.control import Plateau

pytestmark = pytest.mark.usefixtures("one_torch_thread")
LR = 0.05


def _loader(n_batches: int) -> torch.utils.data.DataLoader[Any]:
    g = torch.Generator().manual_seed(0)
    x = torch.randn(2 * n_batches, 3, generator=g)
    return torch.utils.data.DataLoader(
        torch.utils.data.TensorDataset(x, x.sum(1, keepdim=True)), batch_size=2
    )


def train_one_epoch(
    epoch: int,
    model: torch.nn.Module,
    loader: Any,
    optimizer: torch.optim.Optimizer,
    lr_scheduler: Any,
    grad_accum_steps: int,
    used: list[tuple[int, float]],
) -> float:
    """timm's train_one_epoch, reduced to its scheduler and optimizer calls."""
    updates_per_epoch = (len(loader) + grad_accum_steps - 1) // grad_accum_steps
    num_updates = epoch * updates_per_epoch
    last_batch_idx = len(loader) - 1
    last_accum_steps = len(loader) % grad_accum_steps
    last_batch_idx_to_accum = len(loader) - last_accum_steps
    losses = []
    accum_steps = grad_accum_steps
    for batch_idx, (x, y) in enumerate(loader):
        last_batch = batch_idx == last_batch_idx
        need_update = last_batch or (batch_idx + 1) % accum_steps == 0
        if batch_idx >= last_batch_idx_to_accum:
            accum_steps = last_accum_steps
        loss = torch.nn.functional.mse_loss(model(x), y)
        (loss / accum_steps).backward()
        losses.append(float(loss.detach()))
        if not need_update:
            continue
        used.append((num_updates, optimizer.param_groups[0]["lr"]))
        optimizer.step()
        optimizer.zero_grad()
        num_updates += 1
        lr_scheduler.step_update(num_updates=num_updates, metric=sum(losses) / len(losses))
    return sum(losses) / len(losses)


def run(
    make: Any,
    n_batches: int,
    grad_accum_steps: int,
    epochs: int,
    metrics: list[float] | None = None,
    start_epoch: int = 0,
    sched_on_updates: bool = True,
    state: dict[str, Any] | None = None,
    stop: int | None = None,
) -> tuple[list[tuple[int, float]], Any]:
    """timm's main(): scheduler positioned on resume, then train/validate/step(epoch + 1, metric)."""
    torch.manual_seed(0)
    model = torch.nn.Linear(3, 1)
    optimizer = torch.optim.SGD(model.parameters(), lr=LR, momentum=0.9)
    loader = _loader(n_batches)
    updates_per_epoch = (len(loader) + grad_accum_steps - 1) // grad_accum_steps
    lr_scheduler = make(optimizer, updates_per_epoch)
    if state is not None:
        lr_scheduler.load_state_dict(state)
    if lr_scheduler is not None and start_epoch > 0:
        if sched_on_updates:
            lr_scheduler.step_update(start_epoch * updates_per_epoch)
        else:
            lr_scheduler.step(start_epoch)
    used: list[tuple[int, float]] = []
    for epoch in range(start_epoch, stop if stop is not None else epochs):
        train_one_epoch(epoch, model, loader, optimizer, lr_scheduler, grad_accum_steps, used)
        latest_metric = metrics[epoch] if metrics is not None else None  # eval_metrics[eval_metric]
        lr_scheduler.step(epoch + 1, latest_metric)
    return used, lr_scheduler


SPECS = [
    "warmup(1ep, start=0.1) >> cosine(lr=1.0, min_lr=0.01)",
    "step(lr=1.0, step_size=1ep, gamma=0.5)",
    "wsd(lr=1.0, warmup=20%, decay=30%)",
    "one_cycle(max_lr=1.0)",
]


@settings(max_examples=30, deadline=None)
@given(
    spec=st.sampled_from(SPECS),
    n_batches=st.integers(4, 9),
    grad_accum_steps=st.integers(1, 3),
    epochs=st.integers(2, 4),
    t_in_epochs=st.booleans(),
)
def test_timm_loop_gets_the_closed_form_at_every_update(
    spec: str, n_batches: int, grad_accum_steps: int, epochs: int, t_in_epochs: bool
) -> None:
    def make(opt: torch.optim.Optimizer, upe: int) -> Any:
        return lrkit.timm.scheduler(
            opt, spec, epochs=epochs, updates_per_epoch=upe, relative=True, t_in_epochs=t_in_epochs
        )

    used, sched = run(make, n_batches, grad_accum_steps, epochs)
    upe = (n_batches + grad_accum_steps - 1) // grad_accum_steps
    s = lrkit.parse(spec).resolve(total_steps=epochs * upe, steps_per_epoch=upe)
    assert [k for k, _ in used] == list(range(epochs * upe))
    for k, lr in used:
        t = (k // upe) * upe if t_in_epochs else k
        assert lr == pytest.approx(LR * float(s(t)), rel=1e-12, abs=1e-18), (k, t)
    assert sched.optimizer.param_groups[0]["lr"] == pytest.approx(LR * float(s(epochs * upe)), rel=1e-12)


def _torch_plateau(metrics: list[float], **kw: Any) -> list[float]:
    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
    ref = torch.optim.lr_scheduler.ReduceLROnPlateau(opt, **kw)
    out = []
    for m in metrics:
        ref.step(m)
        out.append(opt.param_groups[0]["lr"])
    return out


@pytest.mark.parametrize("mode", ["min", "max"])
def test_epoch_metric_drives_the_plateau_once_per_epoch(mode: str) -> None:
    """timm passes the eval metric to step(epoch + 1, metric): one plateau decision per epoch, never per
    update (the running loss given to step_update is not a validation metric)."""
    metrics = [1.0, 0.9, 0.9, 0.95, 0.9, 0.8, 0.8, 0.8]
    upe, epochs = 4, len(metrics)

    def make(opt: torch.optim.Optimizer, n: int) -> Any:
        pl = Plateau(mode=mode, patience=1, factor=0.5)
        return lrkit.timm.scheduler(
            opt, "cosine(lr=1.0, min_lr=0.1)", epochs=epochs, updates_per_epoch=n, relative=True, plateau=pl
        )

    used, sched = run(make, upe, 1, epochs, metrics)
    cuts = [1.0, *_torch_plateau(metrics, mode=mode, patience=1, factor=0.5)]
    s = lrkit.parse("cosine(lr=1.0, min_lr=0.1)").resolve(total_steps=epochs * upe)
    assert cuts[-1] < 1.0
    for k, lr in used:
        assert lr == pytest.approx(LR * float(s(k)) * cuts[k // upe], rel=1e-12), k
    assert sched.scheduler.plateau.last_epoch == epochs  # one report per epoch


@pytest.mark.parametrize("sched_on_updates", [True, False])
def test_resume_as_timm_does_positions_the_schedule(sched_on_updates: bool) -> None:
    """timm does not save the scheduler: it calls step_update(start_epoch * updates_per_epoch) (or
    step(start_epoch)) after building it; with a plateau, the state_dict carries the cuts."""
    spec = "warmup(1ep) >> cosine(lr=1.0)"

    def make(opt: torch.optim.Optimizer, upe: int) -> Any:
        return lrkit.timm.scheduler(
            opt, spec, epochs=5, updates_per_epoch=upe, relative=True, t_in_epochs=not sched_on_updates
        )

    whole, _ = run(make, 6, 2, 5, sched_on_updates=sched_on_updates)
    first, _ = run(make, 6, 2, 5, stop=2, sched_on_updates=sched_on_updates)
    second, _ = run(make, 6, 2, 5, start_epoch=2, sched_on_updates=sched_on_updates)
    assert first + second == whole

    metrics = [1.0, 1.0, 1.0, 1.0, 1.0]

    def with_plateau(opt: torch.optim.Optimizer, upe: int) -> Any:
        return lrkit.timm.scheduler(
            opt, spec, epochs=5, updates_per_epoch=upe, relative=True, plateau=Plateau(patience=0, factor=0.5)
        )

    whole, _ = run(with_plateau, 6, 2, 5, metrics)
    first, sched = run(with_plateau, 6, 2, 5, metrics, stop=2)
    second, _ = run(with_plateau, 6, 2, 5, metrics, start_epoch=2, state=sched.state_dict())
    assert first + second == whole

    def another(opt: torch.optim.Optimizer, upe: int) -> Any:
        return lrkit.timm.scheduler(
            opt, "cosine(lr=1.0)", epochs=5, updates_per_epoch=upe, relative=True, plateau=Plateau()
        )

    with pytest.raises(ScheduleMismatchError, match="warmup"):
        run(another, 6, 2, 5, state=sched.state_dict(), stop=0)


def test_bad_times_and_arguments_are_refused() -> None:
    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=0.1)
    s = lrkit.timm.scheduler(opt, "cosine(lr=0.1)", epochs=2, updates_per_epoch=3)
    for bad in (-1, 1.5, None, "3", True):
        with pytest.raises(ValueError, match="num_updates must be an integer >= 0"):
            s.step_update(bad)  # type: ignore[arg-type]
        with pytest.raises(ValueError, match="epoch must be an integer >= 0"):
            s.step(bad)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="needs updates_per_epoch"):
        lrkit.timm.scheduler(opt, "cosine(lr=0.1)", epochs=2)
    with pytest.raises(ValueError, match="t_in_epochs=True needs updates_per_epoch"):
        lrkit.timm.scheduler(opt, "cosine(lr=0.1, steps=10)", t_in_epochs=True)
    with pytest.raises(TypeError, match="t_in_epochs must be True or False"):
        lrkit.timm.scheduler(opt, "cosine(lr=0.1, steps=10)", t_in_epochs="yes")  # type: ignore[arg-type]
    for bad in (0, 2.5, True, "3", -1):
        with pytest.raises(ValueError, match=r"updates_per_epoch must be an integer >= 1.*got"):
            lrkit.timm.scheduler(opt, "cosine(lr=0.1)", epochs=2, updates_per_epoch=bad)  # type: ignore[arg-type]
    s.step(1, 0.5)  # a metric without a plateau is ignored, as timm's non-plateau schedulers do


# -- timm's CosineLRScheduler written as lrkit specs (the guide's mapping) ---------------------------------
def timm_cosine(
    t: float, b: float, T: float, m: float, w: float, i0: float, c: float, d: float, n: int
) -> float:
    """The LR at time ``t`` of timm's ``CosineLRScheduler(t_initial=T, lr_min=m, warmup_t=w,
    warmup_lr_init=i0, warmup_prefix=True, cycle_mul=c, cycle_decay=d, cycle_limit=n)`` over base LR
    ``b``, as its documentation and source state it: a linear warmup from ``i0``; then cycle ``k`` of
    length ``T c**k`` from the peak ``b d**k`` down to ``m`` by half a cosine (SGDR); ``m`` after ``n``
    cycles."""
    if t < w:
        return i0 + t * (b - i0) / w
    t -= w
    if c == 1:
        k = math.floor(t / T)
        start = k * T
    else:
        k = math.floor(math.log(1 - t / T * (1 - c), c))
        start = (1 - c**k) / (1 - c) * T
    if k >= n:
        return m
    return m + 0.5 * (b * d**k - m) * (1 + math.cos(math.pi * (t - start) / (T * c**k)))


@pytest.mark.parametrize("t_in_epochs", [False, True])
@pytest.mark.parametrize(
    ("spec", "timm", "epochs"),
    [
        (
            "warmup(1ep, start=0.1) >> cosine(lr=1.0, min_lr=0.02, steps=3ep)",
            {"T": 3, "m": 0.02, "w": 1, "i0": 0.1, "c": 1, "d": 1, "n": 1},
            5,
        ),
        (
            "warmup(1ep, start=0) >> cosine_restarts(lr=1.0, period=1ep, mult=2, decay=0.5, steps=3ep)"
            " >> constant(lr=0.0)",
            {"T": 1, "m": 0.0, "w": 1, "i0": 0.0, "c": 2, "d": 0.5, "n": 2},
            5,
        ),
        (
            "cosine_restarts(lr=1.0, period=2ep, min_lr=0.1, steps=4ep) >> constant(lr=0.1)",
            {"T": 2, "m": 0.1, "w": 0, "i0": 0.0, "c": 1, "d": 1, "n": 2},
            5,
        ),
    ],
)
def test_the_guides_specs_of_timms_cosine_scheduler_give_its_lrs(
    spec: str, timm: dict[str, float], epochs: int, t_in_epochs: bool
) -> None:
    """In timm's loop, on updates (``t_initial``, ``warmup_t`` in updates: ``epochs * updates_per_epoch``)
    or in epochs (``t_in_epochs``: the time is the epoch), with 6 batches and accumulation 2 (3 updates an
    epoch). The LRs are relative to the optimizer's (``b = 1``)."""

    def make(opt: torch.optim.Optimizer, upe: int) -> Any:
        return lrkit.timm.scheduler(
            opt, spec, epochs=epochs, updates_per_epoch=upe, relative=True, t_in_epochs=t_in_epochs
        )

    used, _ = run(make, 6, 2, epochs)
    upe = 3
    scale = 1 if t_in_epochs else upe
    p = {k: v * scale if k in ("T", "w") else v for k, v in timm.items()}
    for k, lr in used:
        t = k // upe if t_in_epochs else k
        want = LR * timm_cosine(t, 1.0, p["T"], p["m"], p["w"], p["i0"], p["c"], p["d"], int(p["n"]))
        assert lr == pytest.approx(want, rel=1e-12, abs=1e-15), (k, t)


def test_a_schedule_longer_than_the_run_is_warned_about_as_the_run_was_given() -> None:
    """timm gives the run as epochs x updates_per_epoch: a schedule outlasting it warns (as lrkit.torch),
    naming the run as it was given here (it said total_steps=450 to a user who gave epochs), at the
    caller's line; lrkit.torch.scheduler afterwards still says total_steps."""
    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=0.1)
    spec = "cosine(lr=0.1, steps=10000)"
    with pytest.warns(lrkit.schedules.ScheduleLongerThanRunWarning) as seen:
        lrkit.timm.scheduler(opt, spec, epochs=3, updates_per_epoch=150)
    assert [str(w.message).split(": the run")[0] for w in seen] == [
        f"lrkit.timm.scheduler: {spec!r} lasts 10,000 steps, more than epochs * updates_per_epoch=450"
    ]
    assert "total_steps" not in str(seen[0].message) and seen[0].filename == __file__
    with pytest.warns(lrkit.schedules.ScheduleLongerThanRunWarning) as seen:
        lrkit.timm.scheduler(opt, spec, total_steps=450, t_in_epochs=True, updates_per_epoch=150)
    assert str(seen[0].message).startswith(
        f"lrkit.timm.scheduler: {spec!r} lasts 10,000 steps, more than total_steps=450"
    )
    with pytest.warns(lrkit.schedules.ScheduleLongerThanRunWarning) as seen:
        lrkit.torch.scheduler(opt, spec, total_steps=450)
    assert str(seen[0].message).startswith(
        f"lrkit.torch.scheduler: {spec!r} lasts 10,000 steps, more than total_steps=450"
    )
