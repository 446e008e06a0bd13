"""Reduce-on-plateau fixes (explorer PLAT's findings 1, 3, 4 and 5).

1. ``lrkit.keras.ReduceOnPlateau(mode="auto")`` reads the direction of the compiled metric as Keras' own
   callbacks do (``MonitorCallback._set_monitor_op``, the reference here): it used to minimize every
   monitor whose name held neither "acc" nor "auc", so it cut the LR while a precision, an F1 or an IoU
   improved. A monitor Keras cannot tell raises ``ValueError`` naming it.
3. The ``state_dict()`` of torch's ``ReduceLROnPlateau`` loads into an ``lrkit.torch`` scheduler with a
   plateau: its best, counters and cut go on, so the LRs that follow are torch's own (reference: the same
   torch scheduler run on). ``Plateau.load_state_dict`` refuses it (a Plateau holds no cut).
4. ``Plateau.num_reductions`` counts the cuts made, not the decisions ``min_lr``/``eps`` stopped.
5. ``lrkit.optax.schedule(plateau=...)``'s advice names ``accumulation_size``.
"""

from __future__ import annotations

import copy
import json
import random
import warnings

import keras
import numpy as np
import pytest
import torch

import lrkit
import lrkit.keras
import lrkit.torch
from lrkit.control import Plateau
from lrkit.keras import ReduceOnPlateau

# -- 1. Keras mode="auto" ------------------------------------------------------------------------------

X = np.random.default_rng(0).normal(size=(64, 4)).astype("float32")
Y = (X[:, :1] + 0.3 * X[:, 1:2] > 0).astype("float32")

METRICS = {
    "precision": lambda: keras.metrics.Precision(name="precision"),
    "recall": lambda: keras.metrics.Recall(name="recall"),
    "f1_score": lambda: keras.metrics.F1Score(name="f1_score", threshold=0.5),
    "mean_io_u": lambda: keras.metrics.MeanIoU(num_classes=2, name="mean_io_u"),
    "r2_score": lambda: keras.metrics.R2Score(name="r2_score"),
    "cosine_similarity": lambda: keras.metrics.CosineSimilarity(name="cosine_similarity"),
    "auc": lambda: keras.metrics.AUC(name="auc"),
    "accuracy": lambda: "accuracy",
    "mean_squared_error": lambda: keras.metrics.MeanSquaredError(name="mean_squared_error"),
    "hinge": lambda: keras.metrics.Hinge(name="hinge"),
}


def _model(metric: object, lr: float = 0.05) -> keras.Model:
    keras.utils.set_random_seed(0)
    m = keras.Sequential([keras.Input((4,)), keras.layers.Dense(1, activation="sigmoid")])
    m.compile(optimizer=keras.optimizers.SGD(lr), loss="binary_crossentropy", metrics=[metric])
    return m


def _keras_mode(model: keras.Model, monitor: str) -> str:
    """Keras' own answer: the comparison its ReduceLROnPlateau sets up for ``monitor``."""
    ref = keras.callbacks.ReduceLROnPlateau(monitor=monitor)
    ref.set_model(model)
    ref._set_monitor_op()
    return "max" if ref.monitor_op is keras.ops.greater else "min"


@pytest.mark.parametrize("name", sorted(METRICS))
def test_auto_mode_is_the_compiled_metrics_direction_as_keras_reads_it(name: str) -> None:
    model = _model(METRICS[name]())
    model.fit(X, Y, batch_size=32, epochs=1, verbose=0)  # the compiled metrics are built
    for monitor in (name, f"val_{name}"):
        cb = ReduceOnPlateau(monitor=monitor)
        cb.set_model(model)
        cb.on_train_begin()
        assert cb.plateau.mode == _keras_mode(model, monitor), monitor


def _lr_after_each_epoch(model: keras.Model, out: list[float]) -> keras.callbacks.Callback:
    return keras.callbacks.LambdaCallback(
        on_epoch_end=lambda e, logs: out.append(
            float(keras.ops.convert_to_numpy(model.optimizer.learning_rate))
        )
    )


def test_a_rising_precision_is_not_cut_as_keras_own_callback_does_not() -> None:
    """PLAT's fit: lrkit cut the LR at every epoch because val_precision rose. Keras' callback with
    patience p is lrkit's with patience p - 1 and an absolute threshold (the documented mapping)."""
    lrs: dict[str, list[float]] = {"keras": [], "lrkit": []}
    hist = {}
    for label in lrs:
        model = _model(keras.metrics.Precision(name="precision"))
        cb = (
            keras.callbacks.ReduceLROnPlateau(monitor="val_precision", patience=1, factor=0.5, min_delta=0)
            if label == "keras"
            else ReduceOnPlateau(monitor="val_precision", patience=0, factor=0.5, threshold=0.0, start=0)
        )
        h = model.fit(
            X, Y, validation_split=0.25, epochs=6, batch_size=8, verbose=0,
            callbacks=[cb, _lr_after_each_epoch(model, lrs[label])],
        )  # fmt: skip
        hist[label] = h.history["val_precision"]
        if label == "lrkit":
            assert cb.plateau.mode == "max"
    assert hist["lrkit"] == hist["keras"]
    assert lrs["lrkit"] == lrs["keras"]


def test_auto_mode_raises_naming_a_monitor_no_metric_tells() -> None:
    model = _model("accuracy")
    model.fit(X, Y, batch_size=32, epochs=1, verbose=0)
    with pytest.raises(ValueError, match="determine whether that metric should be maximized"):
        _keras_mode(model, "val_custom")  # Keras' own callback cannot tell either
    cb = ReduceOnPlateau(monitor="val_custom")
    cb.set_model(model)
    cb.on_train_begin()  # not yet: the metric may be logged by another callback
    with pytest.raises(ValueError, match=r"mode='auto' cannot tell whether monitor 'val_custom'.*mode='min'"):
        cb.on_epoch_end(0, {"loss": 1.0, "val_custom": 0.5})
    explicit = ReduceOnPlateau(monitor="val_custom", mode="max", start=0)
    explicit.set_model(model)
    explicit.on_train_begin()
    explicit.on_epoch_end(0, {"loss": 1.0, "val_custom": 0.5})
    assert explicit.plateau.best == 0.5 and explicit.plateau.mode == "max"
    with pytest.raises(ValueError, match=r"mode must be 'auto', 'min' or 'max', got 'up'"):
        ReduceOnPlateau(mode="up")


# -- 3. torch ReduceLROnPlateau state -> lrkit -----------------------------------------------------------


def _config(rng: random.Random) -> tuple[dict[str, object], list[float]]:
    groups = rng.randint(1, 3)
    lrs = [rng.choice([1.0, 0.1, 3e-3, 1e-5]) for _ in range(groups)]
    min_lr: object = rng.choice([0.0, 1e-4, [rng.choice([0.0, 1e-3, 1e-6]) for _ in range(groups)]])
    cfg = {
        "mode": rng.choice(["min", "max"]),
        "factor": rng.choice([0.1, 0.3, 0.5, 0.9]),
        "patience": rng.choice([0, 1, 2, 3]),
        "threshold": rng.choice([0.0, 1e-4, 0.1]),
        "threshold_mode": rng.choice(["rel", "abs"]),
        "cooldown": rng.choice([0, 1, 3]),
        "min_lr": min_lr,
        "eps": rng.choice([0.0, 1e-8, 1e-3]),
    }
    return cfg, lrs


def _metric(rng: random.Random) -> float:
    return rng.choice([1.0, 1.0, 0.5, rng.random(), rng.random() * 2, float("nan")])


@pytest.mark.parametrize("seed", range(40))
def test_a_torch_reduce_on_plateau_state_goes_on_in_lrkit_as_in_torch(seed: int) -> None:
    rng = random.Random(seed)
    cfg, lrs = _config(rng)
    params = [torch.nn.Parameter(torch.zeros(1)) for _ in lrs]
    opt = torch.optim.SGD([{"params": [p], "lr": lr} for p, lr in zip(params, lrs, strict=True)])
    torch_cfg = {**cfg, "min_lr": cfg["min_lr"]}
    ref = torch.optim.lr_scheduler.ReduceLROnPlateau(opt, **torch_cfg)  # type: ignore[arg-type]
    for _ in range(rng.randint(0, 25)):
        ref.step(_metric(rng))
    state = copy.deepcopy(ref.state_dict())
    tail = [_metric(rng) for _ in range(30)]

    want = []
    for m in tail:  # torch goes on
        ref.step(m)
        want.append([g["lr"] for g in opt.param_groups])

    opt2 = torch.optim.SGD([{"params": [torch.nn.Parameter(torch.zeros(1))], "lr": lr} for lr in lrs])
    plateau = Plateau(**cfg, start=0)  # type: ignore[arg-type]
    specs = [f"constant(lr={lr!r})" for lr in lrs]
    sched = lrkit.torch.scheduler(opt2, specs, plateau=plateau, total_steps=1000)
    sched.load_state_dict(state)
    assert plateau.last_epoch == state["last_epoch"] and plateau.num_bad_epochs == state["num_bad_epochs"]
    assert [g["lr"] for g in opt2.param_groups] == pytest.approx(state["_last_lr"], rel=1e-12, abs=0)
    got = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # a scheduler given metrics but never stepped
        for m in tail:
            sched.report(m)
            got.append([g["lr"] for g in opt2.param_groups])
    for w, g in zip(want, got, strict=True):
        assert g == pytest.approx(w, rel=1e-12, abs=0)


def test_a_torch_reduce_on_plateau_state_carries_its_cut_and_is_refused_where_it_cannot_go() -> None:
    p = torch.nn.Parameter(torch.zeros(1))
    opt = torch.optim.SGD([p], lr=0.1)
    ref = torch.optim.lr_scheduler.ReduceLROnPlateau(opt, patience=1, factor=0.5)
    for m in [1.0, 1.0, 1.0, 1.0, 1.0]:
        ref.step(m)
    state = json.loads(json.dumps(ref.state_dict()))  # a checkpoint as JSON (inf as Infinity)
    assert state["_last_lr"] == [0.025]

    opt2 = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=0.1)
    sched = lrkit.torch.scheduler(opt2, "constant(lr=0.1)", plateau=Plateau(patience=1, factor=0.5))
    sched.load_state_dict(state)
    assert sched.plateau_cuts == pytest.approx([0.25]) and opt2.param_groups[0]["lr"] == pytest.approx(0.025)
    assert sched.plateau is not None and sched.plateau.num_reductions == 2 and sched.plateau.best == 1.0

    with pytest.raises(
        ValueError, match=r"state_dict\(\) of torch's ReduceLROnPlateau.*scheduler.load_state_dict"
    ):
        Plateau(patience=1, factor=0.5).load_state_dict(state)
    bare = lrkit.torch.scheduler(
        torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=0.1), "constant(lr=0.1)"
    )
    with pytest.raises(ValueError, match=r"ReduceLROnPlateau, and this scheduler has no plateau"):
        bare.load_state_dict(state)
    other = lrkit.torch.scheduler(
        torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=0.1),
        "constant(lr=0.1)",
        plateau=Plateau(mode="max"),
    )
    with pytest.raises(ValueError, match=r"saved with mode='min'"):
        other.load_state_dict(state)
    assert other.plateau is not None and other.plateau.last_epoch == 0 and other.plateau_cuts == [1.0]
    low = lrkit.torch.scheduler(
        torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=0.01), "constant(lr=0.01)", plateau=Plateau()
    )
    with pytest.raises(ValueError, match=r"left group 0 at lr=0.025.*without cuts is 0.01"):
        low.load_state_dict(state)
    with pytest.warns(UserWarning, match=r"ran with factor=0.5 \(this plateau: 0.1\)"):
        lrkit.torch.scheduler(
            torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=0.1),
            "constant(lr=0.1)",
            plateau=Plateau(patience=1),
        ).load_state_dict(state)


# -- 4. num_reductions counts the cuts made ----------------------------------------------------------------


def test_num_reductions_counts_the_cuts_made_in_torch() -> None:
    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=0.1)
    p = Plateau(patience=0, factor=0.1, min_lr=0.05, start=0)
    s = lrkit.torch.scheduler(opt, "constant(lr=0.1)", plateau=p, total_steps=100)
    made = 0
    for _ in range(6):
        opt.step()
        s.step()
        made += bool(s.report(1.0))
    assert made == 1 and p.num_reductions == 1 and opt.param_groups[0]["lr"] == 0.05
    state = s.state_dict()
    assert state["plateau"]["num_reductions"] == 1
    old = {**state["plateau"], "num_reductions": 5}  # an earlier lrkit counted the stopped ones too
    p.load_state_dict(old)
    assert p.num_reductions == 5


def test_num_reductions_counts_the_cuts_made_in_keras() -> None:
    model = _model("accuracy", lr=0.1)
    cb = ReduceOnPlateau(monitor="loss", patience=0, factor=0.1, min_lr=0.05, start=0)
    cb.set_model(model)
    model.optimizer.iterations.assign(1)
    cb.on_train_begin()
    for epoch in range(5):
        cb.on_epoch_end(epoch, {"loss": 1.0})
    assert len(cb.cuts) == 1 and cb.plateau.num_reductions == 1


def test_a_bare_plateau_takes_back_a_cut_that_moved_nothing() -> None:
    p = Plateau(patience=0, factor=0.5, min_lr=0.1, start=0)
    lr = 0.1
    for m in (1.0, 1.0, 1.0):
        if p.step(m):
            new = p.reduce(lr)
            if new == lr:
                p.cut_skipped()
            lr = new
    assert p.num_reductions == 0 and p.last_epoch == 3


# -- 5. optax -----------------------------------------------------------------------------------------------


def test_the_optax_plateau_advice_names_accumulation_size() -> None:
    pytest.importorskip("optax")
    import lrkit.optax

    with pytest.raises(
        TypeError, match=r"accumulation_size=steps_per_epoch.*validation metric once an epoch"
    ):
        lrkit.optax.schedule("constant(lr=0.1)", plateau=Plateau())
