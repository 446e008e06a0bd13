"""lrkit schedules in Keras 3 (torch backend): values, training, saving/loading, reduce-on-plateau.

The backend is chosen before keras is first imported in this process; only this module imports keras.
The jax backend's one difference (its traced train step must be rebuilt after a cut) runs in a
subprocess, since a process has one Keras backend.

Independent references: lrkit's float64 numpy evaluation (Keras computes in float32, so values agree to
a relative 1e-6), the weight of a one-weight linear model trained by plain SGD on ``loss = mean(w * 1)``
(its gradient is exactly 1, so after ``k`` steps ``w = -sum(lr_0 .. lr_{k-1})``: every LR the optimizer
used is in it), and torch's own ``ReduceLROnPlateau`` fed the same metrics for the plateau decisions.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

os.environ["KERAS_BACKEND"] = "torch"  # before the first `import keras` in this process

import keras
import numpy as np
import pytest
import torch

import lrkit
from lrkit.adapters.keras import Cut, KerasSchedule, ReduceOnPlateau

from .keras_jax import run_on_keras_jax

if keras.backend.backend() != "torch":  # pragma: no cover - keras imported earlier with another backend
    raise RuntimeError(f"tests/test_keras.py needs the torch backend; keras runs {keras.backend.backend()!r}")

RTOL = 1e-6  # Keras evaluates in float32

# keras' torch backend calls np.array(tensor) internally (not lrkit's doing)
pytestmark = pytest.mark.filterwarnings("ignore:__array__ implementation doesn't accept a copy keyword")
SPEC = "warmup(4, start=0) >> cosine(lr=0.1, min_lr=0.01)"


@keras.saving.register_keras_serializable(package="lrkit_tests")
def mean_prediction(y_true: object, y_pred: object) -> object:
    """A loss whose gradient with respect to a bias-free Dense(1) on inputs of 1 is exactly 1."""
    return keras.ops.mean(y_pred)


def _one_weight_model(lr: object) -> keras.Model:
    model = keras.Sequential(
        [keras.Input((1,)), keras.layers.Dense(1, use_bias=False, kernel_initializer="zeros")]
    )
    model.compile(optimizer=keras.optimizers.SGD(learning_rate=lr), loss=mean_prediction)
    return model


X = np.ones((8, 1), "float32")  # batch_size=4: two optimizer steps per epoch
Y = np.zeros((8, 1), "float32")


def _weight(model: keras.Model) -> float:
    return float(keras.ops.convert_to_numpy(model.layers[0].kernel).ravel()[0])


def test_values_match_lrkit_as_float32_backend_tensors() -> None:
    steps = np.array([0, 1, 3, 4, 5, 10, 19, 20, 21, 1000])
    for spec in (SPEC, "one_cycle(max_lr=1.0, steps=20)", "multistep(lr=0.1, milestones=[3, 9], gamma=0.5)"):
        s = lrkit.keras.schedule(spec, total_steps=20)
        got = s(torch.as_tensor(steps))
        assert isinstance(got, torch.Tensor) and got.dtype == torch.float32 and got.shape == (len(steps),)
        np.testing.assert_allclose(got.numpy(), lrkit.parse(spec).resolve(total_steps=20)(steps), rtol=RTOL)
    # the multiplier and the floor: max(s * m, min(s, floor))
    s = KerasSchedule(SPEC, total_steps=20, multiplier=0.25, floor=0.02)
    base = s.schedule(steps)
    want = np.maximum(base * 0.25, np.minimum(base, 0.02))
    np.testing.assert_allclose(keras.ops.convert_to_numpy(s(torch.as_tensor(steps))), want, rtol=RTOL)
    assert s.multiplier == 0.25 and s.floor == pytest.approx(0.02)


def test_fit_uses_the_schedule_at_every_step() -> None:
    s = lrkit.keras.schedule(SPEC, total_steps=20)
    model = _one_weight_model(s)
    history = model.fit(X, Y, batch_size=4, epochs=5, verbose=0)
    assert int(keras.ops.convert_to_numpy(model.optimizer.iterations)) == 10
    want = -s.schedule(np.arange(10)).sum()  # w = -sum of the LRs of steps 0..9
    assert _weight(model) == pytest.approx(want, rel=RTOL)
    # the optimizer reports the LR of its next step
    assert float(keras.ops.convert_to_numpy(model.optimizer.learning_rate)) == pytest.approx(
        s.schedule(10), rel=RTOL
    )
    assert len(history.history["loss"]) == 5


def _torch_plateau_multipliers(metrics: list[float], **kwargs: object) -> list[float]:
    """torch's ReduceLROnPlateau fed ``metrics``: the LR (from 1.0) after each."""
    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
    rlrop = torch.optim.lr_scheduler.ReduceLROnPlateau(opt, **kwargs)  # type: ignore[arg-type]
    out = []
    for m in metrics:
        rlrop.step(m)
        out.append(opt.param_groups[0]["lr"])
    return out


def test_plateau_cuts_a_schedule_like_torch_reduce_lr_on_plateau() -> None:
    s = lrkit.keras.schedule(SPEC, total_steps=20)
    model = _one_weight_model(s)
    # mode="max" on a falling loss: no epoch is ever better than the first, so cuts come every
    # patience + 1 epochs (after the cooldown)
    cb = ReduceOnPlateau(monitor="loss", mode="max", factor=0.5, patience=1, cooldown=1, start=0)
    history = model.fit(X, Y, batch_size=4, epochs=8, verbose=0, callbacks=[cb])
    losses = history.history["loss"]
    mults = _torch_plateau_multipliers(losses, mode="max", factor=0.5, patience=1, cooldown=1)
    assert mults[-1] < 1.0 and len(cb.cuts) == sum(a != b for a, b in zip([1.0, *mults], mults))
    assert [c.epoch for c in cb.cuts] == [e for e in range(8) if mults[e] != ([1.0, *mults])[e]]
    assert s.multiplier == mults[-1]
    # every step used s(t) times the multiplier in force during its epoch (2 steps per epoch)
    in_force = np.repeat([1.0, *mults[:-1]], 2)
    want = -(s.schedule(np.arange(16)) * in_force).sum()
    assert _weight(model) == pytest.approx(want, rel=RTOL)
    # each cut is recorded with the LR before and after; logs carry the LR after the decision
    for c in cb.cuts:
        assert isinstance(c, Cut) and c.metric == losses[c.epoch]
        assert c.lr_after == pytest.approx(c.lr_before * 0.5, rel=RTOL)
        assert history.history["learning_rate"][c.epoch] == pytest.approx(c.lr_after, rel=RTOL)


def test_keras_own_callback_refuses_a_schedule() -> None:
    """The failure this callback exists for: Keras' ReduceLROnPlateau assigns a float to a schedule."""
    model = _one_weight_model(lrkit.keras.schedule(SPEC, total_steps=20))
    cb = keras.callbacks.ReduceLROnPlateau(monitor="loss", mode="max", patience=0)
    with pytest.raises(TypeError, match="not settable"):
        model.fit(X, Y, batch_size=4, epochs=3, verbose=0, callbacks=[cb])


def test_plateau_on_a_float_lr_and_min_lr_floor() -> None:
    model = _one_weight_model(0.1)
    cb = ReduceOnPlateau(monitor="loss", mode="max", factor=0.1, patience=0, min_lr=0.002)
    model.fit(X, Y, batch_size=4, epochs=4, verbose=0, callbacks=[cb])
    # cut at epochs 1, 2; at epoch 3 the LR is at min_lr and moves no more (a cut is skipped)
    assert [c.epoch for c in cb.cuts] == [1, 2]
    assert [c.lr_after for c in cb.cuts] == pytest.approx([0.01, 0.002], rel=RTOL)
    want = -(2 * 0.1 + 2 * 0.1 + 2 * 0.01 + 2 * 0.002)
    assert _weight(model) == pytest.approx(want, rel=RTOL)


def test_min_lr_floors_the_cuts_of_a_schedule_but_never_raises_it() -> None:
    s = lrkit.keras.schedule("linear(lr=0.1, steps=14, end_lr=0.0)")
    model = _one_weight_model(s)
    cb = ReduceOnPlateau(monitor="loss", mode="max", factor=0.1, patience=0, min_lr=0.03)
    model.fit(X, Y, batch_size=4, epochs=6, verbose=0, callbacks=[cb])
    assert s.floor == pytest.approx(0.03)
    t = np.arange(12)
    base = s.schedule(t)
    m = np.repeat([1.0, 1.0] + [0.1 ** len([c for c in cb.cuts if c.epoch < e]) for e in range(2, 6)], 2)
    lrs = np.maximum(base * m, np.minimum(base, 0.03))
    assert _weight(model) == pytest.approx(-lrs.sum(), rel=RTOL)
    assert (lrs[4:10] == 0.03).all()  # cut to 0.01 and below, held at min_lr
    assert lrs[-1] == base[-1] < 0.03  # below the floor the schedule itself runs on


def test_save_and_load_model_restore_the_schedule(tmp_path: Path) -> None:
    s = lrkit.keras.schedule(SPEC, total_steps=20)
    model = _one_weight_model(s)
    cb = ReduceOnPlateau(monitor="loss", mode="max", factor=0.5, patience=0, start=0)
    model.fit(X, Y, batch_size=4, epochs=3, verbose=0, callbacks=[cb])
    path = tmp_path / "m.keras"
    model.save(path)
    loaded = keras.models.load_model(path)
    sched = loaded.optimizer._learning_rate
    assert isinstance(sched, KerasSchedule) and sched is not s
    assert sched.schedule == s.schedule and sched.multiplier == s.multiplier == 0.25
    assert int(keras.ops.convert_to_numpy(loaded.optimizer.iterations)) == 6
    lr = keras.ops.convert_to_numpy
    assert float(lr(loaded.optimizer.learning_rate)) == float(lr(model.optimizer.learning_rate))
    # both go on identically
    model.fit(X, Y, batch_size=4, epochs=2, verbose=0)
    loaded.fit(X, Y, batch_size=4, epochs=2, verbose=0)
    assert _weight(loaded) == _weight(model)


def _epoch_lrs_and_weight(model: keras.Model, epochs: int, cb: ReduceOnPlateau) -> tuple[list[float], float]:
    history = model.fit(X, Y, batch_size=4, epochs=epochs, verbose=0, callbacks=[cb])
    return list(history.history["learning_rate"]), _weight(model)


@pytest.mark.parametrize(
    ("mode", "patience", "cooldown", "split"),
    [("max", 1, 0, 3), ("max", 2, 1, 4), ("min", 0, 0, 2), ("max", 1, 2, 5), ("max", 3, 0, 1)],
)
def test_resumed_fit_cuts_like_an_uninterrupted_one(
    tmp_path: Path, mode: str, patience: int, cooldown: int, split: int
) -> None:
    """The plateau's state (best metric, bad epochs, cooldown) is saved with the model, so a fresh
    callback on the loaded model goes on where the first left off: the drift (was 4.4e-4 of the weight)
    is exactly 0, and every epoch's LR is the same."""
    kw = dict(monitor="loss", mode=mode, factor=0.5, patience=patience, cooldown=cooldown)
    whole = _one_weight_model(lrkit.keras.schedule(SPEC, total_steps=20))
    want_lrs, want_w = _epoch_lrs_and_weight(whole, 8, ReduceOnPlateau(**kw))  # type: ignore[arg-type]

    first = _one_weight_model(lrkit.keras.schedule(SPEC, total_steps=20))
    lrs1, _ = _epoch_lrs_and_weight(first, split, ReduceOnPlateau(**kw))  # type: ignore[arg-type]
    first.save(tmp_path / "m.keras")
    loaded = keras.models.load_model(tmp_path / "m.keras")
    lrs2, w = _epoch_lrs_and_weight(loaded, 8 - split, ReduceOnPlateau(**kw))  # type: ignore[arg-type]
    assert lrs1 + lrs2 == want_lrs
    assert abs(w - want_w) == 0.0


def test_plateau_state_in_the_config_survives_json_and_is_checked() -> None:
    s = KerasSchedule(SPEC, total_steps=20)
    s.plateau_state = {"best": float("inf"), "num_bad_epochs": 0, "cooldown_counter": 0, "last_epoch": 0}
    config = json.loads(json.dumps(s.get_config(), allow_nan=False))  # no metric yet: best is None
    assert config["plateau"]["best"] is None
    back = KerasSchedule.from_config(config)
    cb = ReduceOnPlateau(monitor="loss", mode="max")
    model = _one_weight_model(back)
    cb.set_model(model)
    cb.on_train_begin()
    assert cb.plateau.best == -float("inf")  # the mode's worst, not +inf
    for bad in ({"best": float("nan")}, {"num_bad_epochs": -1}, {"last_epoch": "3"}):
        with pytest.raises(ValueError, match=next(iter(bad))):
            KerasSchedule.from_config({**config, "plateau": {**config["plateau"], "best": 1.0, **bad}})
    # the callback's own state, for a float learning rate
    cb2 = ReduceOnPlateau(monitor="loss")
    cb2.plateau.step(1.0)
    cb3 = ReduceOnPlateau(monitor="loss")
    cb3.load_state_dict(cb2.state_dict())
    assert cb3.plateau.state_dict() == cb2.plateau.state_dict()


def test_an_infinite_best_metric_goes_through_the_config_as_strict_json() -> None:
    """A Plateau's state names an infinite best ("-inf": a loss of -inf was the best); the config keeps it
    (it used to crash on it: math.isfinite of a string) and loads it back as -inf."""
    cb = ReduceOnPlateau(monitor="loss")
    cb.plateau.step(-float("inf"))
    s = KerasSchedule(SPEC, total_steps=20)
    s.plateau_state = cb.plateau.state_dict()
    config = json.loads(json.dumps(s.get_config(), allow_nan=False))
    assert config["plateau"]["best"] == "-inf"
    for _ in range(3):  # every save and load, not only the first
        back = KerasSchedule.from_config(config)
        assert back.plateau_state["best"] == -float("inf")
        config = json.loads(json.dumps(back.get_config(), allow_nan=False))
        assert config["plateau"]["best"] == "-inf"


def test_config_round_trip_and_serialisation() -> None:
    s = KerasSchedule(lrkit.parse("warmup(1ep) >> cosine(lr=0.1)"), total_steps=100, steps_per_epoch=10)
    s.multiplier = 0.5
    config = s.get_config()
    assert config == {
        "format": "lrkit.keras/2",
        "schedule": {
            "type": "chain",
            "pieces": [{"type": "warmup", "steps": 10}, {"type": "cosine", "lr": 0.1, "steps": 90}],
        },
        "multiplier": 0.5,
        "floor": 0.0,
        "plateau": None,
    }
    json.dumps(config)
    again = KerasSchedule.from_config(config)
    assert again.schedule == s.schedule and again.multiplier == 0.5
    blob = keras.saving.serialize_keras_object(s)
    assert blob["registered_name"] == "lrkit>KerasSchedule"
    back = keras.saving.deserialize_keras_object(json.loads(json.dumps(blob)))
    assert isinstance(back, KerasSchedule) and back.schedule == s.schedule
    steps = torch.arange(0, 120, 7)
    assert torch.equal(back(steps), s(steps))


def test_errors_name_the_argument() -> None:
    with pytest.raises(ValueError, match=r"total_steps"):
        lrkit.keras.schedule("cosine(lr=0.1)")
    with pytest.raises(TypeError, match=r"schedule must be an lrkit Schedule.*got float"):
        KerasSchedule(0.1)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"multiplier must be > 0, got 0"):
        KerasSchedule("constant(lr=0.1)", multiplier=0)
    with pytest.raises(ValueError, match=r"floor must be >= 0, got -1"):
        KerasSchedule("constant(lr=0.1)", floor=-1)
    s = KerasSchedule({"type": "constant", "lr": 0.1})
    with pytest.raises(ValueError, match=r"scale: factor must be > 0, got -0.5"):
        s.scale(-0.5)
    with pytest.raises(ValueError, match=r"factor must be > 0"):
        ReduceOnPlateau(factor=0.0)
    with pytest.raises(ValueError, match=r"factor.*got 2"):
        ReduceOnPlateau(factor=2)
    # a missing metric stops the run with the keys there are, rather than being skipped with a warning;
    # a val_* one in a fit without validation, at its end (validation_freq may skip the first epochs),
    # warned about at its first epoch
    model = _one_weight_model(s)
    with (
        pytest.raises(KeyError, match=r"'val_loss'.*none of this fit's 1 epoch.*'loss'.*validation_freq"),
        pytest.warns(UserWarning, match=r"'val_loss' is not in the logs of epoch 0: this fit has no valid"),
    ):
        model.fit(X, Y, batch_size=4, epochs=1, verbose=0, callbacks=[ReduceOnPlateau()])
    with pytest.raises(KeyError, match=r"^\"ReduceOnPlateau: monitor 'los' is not in the logs of epoch 0"):
        model.fit(X, Y, batch_size=4, epochs=1, verbose=0, callbacks=[ReduceOnPlateau(monitor="los")])
    with pytest.raises(KeyError, match=r"monitor 'val_los' is not in the logs of epoch 0.*'val_loss'"):
        model.fit(
            X,
            Y,
            batch_size=4,
            epochs=1,
            verbose=0,
            validation_split=0.5,
            callbacks=[ReduceOnPlateau(monitor="val_los")],
        )
    # a Keras schedule that is not lrkit's cannot be cut
    model = _one_weight_model(keras.optimizers.schedules.ExponentialDecay(0.1, 10, 0.5))
    with pytest.raises(TypeError, match=r"ExponentialDecay.*lrkit.keras.schedule"):
        model.fit(X, Y, batch_size=4, epochs=1, verbose=0, callbacks=[ReduceOnPlateau(monitor="loss")])


def test_mode_auto_watches_accuracy_upwards() -> None:
    """mode="auto" is read from the compiled metric (Keras' rule) when the fit starts; a loss at once."""
    assert ReduceOnPlateau(monitor="val_loss").plateau.mode == "min"
    model = keras.Sequential([keras.Input((1,)), keras.layers.Dense(1, activation="sigmoid")])
    model.compile(optimizer=keras.optimizers.SGD(0.1), loss="binary_crossentropy", metrics=["accuracy"])
    model.fit(X, Y, batch_size=4, epochs=1, verbose=0)  # the metrics are built
    cb = ReduceOnPlateau(monitor="val_accuracy")
    cb.set_model(_stepped(model))
    cb.on_train_begin()
    assert cb.plateau.mode == "max"


JAX_SCRIPT = textwrap.dedent(
    """
    import json, numpy as np, keras, lrkit
    assert keras.backend.backend() == "jax"
    s = lrkit.keras.schedule("warmup(4, start=0) >> cosine(lr=0.1, min_lr=0.01)", total_steps=20)
    dense = keras.layers.Dense(1, use_bias=False, kernel_initializer="zeros")
    model = keras.Sequential([keras.Input((1,)), dense])
    model.compile(optimizer=keras.optimizers.SGD(learning_rate=s), loss=lambda t, p: keras.ops.mean(p))
    cb = lrkit.keras.ReduceOnPlateau(monitor="loss", mode="max", factor=0.5, patience=1, start=0)
    model.fit(np.ones((8, 1), "float32"), np.zeros((8, 1), "float32"), batch_size=4, epochs=6, verbose=0,
              callbacks=[cb])
    w = float(np.asarray(model.layers[0].kernel.value).ravel()[0])

    # a later fit's callback sets the floor: the step traced by the fit before holds the old one
    s2 = lrkit.keras.schedule("linear(lr=0.1, steps=16, end_lr=0)")
    dense2 = keras.layers.Dense(1, use_bias=False, kernel_initializer="zeros")
    m2 = keras.Sequential([keras.Input((1,)), dense2])
    m2.compile(optimizer=keras.optimizers.SGD(learning_rate=s2), loss=lambda t, p: keras.ops.mean(p))
    x1, y1 = np.ones((8, 1), "float32"), np.zeros((8, 1), "float32")
    cut = lrkit.keras.ReduceOnPlateau(monitor="loss", mode="max", factor=0.1, patience=0)
    m2.fit(x1, y1, batch_size=4, epochs=2, verbose=0, callbacks=[cut])  # a cut after the 2nd epoch
    m2.fit(x1, y1, batch_size=4, epochs=1, verbose=0)  # traced with multiplier 0.1, floor 0
    floor = lrkit.keras.ReduceOnPlateau(monitor="loss", mode="max", patience=100, min_lr=0.03)
    m2.fit(x1, y1, batch_size=4, epochs=1, verbose=0, callbacks=[floor])
    w2 = float(np.asarray(m2.layers[0].kernel.value).ravel()[0])

    # set by hand after a fit: the traced step cannot see it, and a warning says so
    import warnings
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        s2.multiplier = 0.5
    print(json.dumps({"cuts": [c.epoch for c in cb.cuts], "w": w, "w2": w2,
                      "warnings": [str(c.message) for c in caught]}))
    """
)


def test_jax_backend_sees_the_cuts_inside_its_jitted_step() -> None:
    """Under jax the train step is traced once; a cut must rebuild it, or the old LR runs on silently."""
    result = run_on_keras_jax(JAX_SCRIPT)
    assert result["cuts"] == [2, 4]
    base = lrkit.parse(SPEC).resolve(total_steps=20)(np.arange(12))
    in_force = np.repeat([1, 1, 1, 0.5, 0.5, 0.25], 2)
    assert result["w"] == pytest.approx(-(base * in_force).sum(), rel=RTOL)
    # steps 0-3 at the schedule, 4-5 cut to 0.1x, 6-7 held at min_lr=0.03 (the old floor, 0, gave
    # 0.1 * s(t) there: w2 was -0.389)
    s2 = 0.1 * (1 - np.arange(8) / 16)
    assert result["w2"] == pytest.approx(-(s2[:4].sum() + 0.1 * s2[4:6].sum() + 2 * 0.03), rel=RTOL)
    [warning] = result["warnings"]
    assert "multiplier changed after the jax backend traced the train step" in warning
    assert "make_train_function(force=True)" in warning


def test_keras_refuses_a_bare_warmup_as_lrs_but_takes_it_with_a_multiplier() -> None:
    """A warmup with no lr rises to 1: as LRs (multiplier 1) refused; times multiplier=3e-4 it is the
    warmup to 3e-4 it was meant to be."""
    with pytest.raises(ValueError, match=r"ends in a warmup with no lr.*multiplier"):
        lrkit.keras.schedule("warmup(100)", total_steps=1000)
    s = lrkit.keras.KerasSchedule("warmup(100)", total_steps=1000, multiplier=3e-4)
    assert float(s(500)) == pytest.approx(3e-4)


@pytest.mark.parametrize("name", ["multiplier", "floor"])
@pytest.mark.parametrize(
    ("bad", "says"),
    [
        (10**400, "must be a finite number, got an integer of 401 digits"),
        (-(10**400), "must be a finite number, got an integer of 401 digits"),
        (float("nan"), "must be a finite number, got nan"),
        (1e39, r"must be at most 3.402823e\+38 \(a float32\), got 1e\+39"),
        (1e300, r"must be at most 3.402823e\+38 \(a float32\), got 1e\+300"),
        ("2", "must be a finite number, got '2'"),
    ],
)
def test_multiplier_and_floor_out_of_range_name_the_argument(name: str, bad: object, says: str) -> None:
    """A huge int raised OverflowError; a float beyond float32 became an infinite LR in the variable."""
    with pytest.raises(ValueError, match=rf"^{name} {says}"):
        KerasSchedule("constant(lr=0.1)", **{name: bad})
    s = KerasSchedule("constant(lr=0.1)")
    with pytest.raises(ValueError, match=rf"^{name} {says}"):
        setattr(s, name, bad)


@pytest.mark.parametrize("value", [np.float32(0.5), np.float64(0.5), np.int64(2), 3.4e38])
def test_multiplier_and_floor_take_numpy_numbers(value: object) -> None:
    s = KerasSchedule("constant(lr=0.1)", multiplier=value, floor=value)  # type: ignore[arg-type]
    assert s.multiplier == pytest.approx(float(value), rel=1e-6)  # type: ignore[arg-type]
    assert s.floor == pytest.approx(float(value), rel=1e-6)  # type: ignore[arg-type]


@pytest.mark.parametrize("keys", [[], ["best"], ["best", "num_bad_epochs", "last_epoch"]])
def test_a_plateau_state_missing_keys_in_the_config_is_a_value_error(keys: list[str]) -> None:
    """It was a KeyError from deep inside; a corrupt config is a ValueError, as a bad value in it is."""
    full = {"best": 1.0, "num_bad_epochs": 0, "cooldown_counter": 0, "last_epoch": 0}
    with pytest.raises(ValueError, match=r"^plateau: .*missing"):
        KerasSchedule("constant(lr=0.1)", plateau={k: full[k] for k in keys})


def test_plateau_cuts_a_schedule_under_mixed_float16() -> None:
    """mixed_float16 wraps the optimizer in a LossScaleOptimizer: the callback cut its variable, which
    Keras refuses for a schedule (TypeError 'not settable'), instead of the inner optimizer's schedule."""
    keras.mixed_precision.set_global_policy("mixed_float16")
    try:
        s = lrkit.keras.schedule(SPEC, total_steps=20)
        model = _one_weight_model(s)
        assert isinstance(model.optimizer, keras.optimizers.LossScaleOptimizer)
        cb = ReduceOnPlateau(monitor="loss", mode="max", factor=0.5, patience=0, start=0)
        model.fit(X, Y, batch_size=4, epochs=3, verbose=0, callbacks=[cb])
    finally:
        keras.mixed_precision.set_global_policy("float32")
    assert [c.epoch for c in cb.cuts] == [1, 2] and s.multiplier == 0.25
    # the float32 master weight took s(t) times the multiplier of each epoch (the gradient 1 is exact
    # in float16, and the loss scale is divided out)
    want = -(s.schedule(np.arange(6)) * np.repeat([1.0, 1.0, 0.5], 2)).sum()
    assert _weight(model) == pytest.approx(want, rel=RTOL)


def _stepped(model: keras.Model) -> keras.Model:
    """``model`` with its optimizer's step count at 1, as after a step of training: a callback driven by
    hand at an optimizer that has never stepped warns (it would cut an LR nothing uses)."""
    model.optimizer.iterations.assign(1)
    return model


def _drive(cb: ReduceOnPlateau, model: keras.Model, metrics: list[float]) -> None:
    cb.set_model(_stepped(model))
    cb.on_train_begin()
    for epoch, m in enumerate(metrics):
        cb.on_epoch_end(epoch, {cb.monitor: m})


def test_the_plateau_state_resumes_only_for_the_metric_it_was_measured_on() -> None:
    """The state kept in the schedule holds the monitor and the mode: a callback watching another metric
    starts afresh (it took the training loss's best as the validation loss's), and one in the other mode
    is refused after a save as it is in the same process (the config dropped the mode)."""
    s = lrkit.keras.schedule("constant(lr=0.1)")
    model = _one_weight_model(s)
    _drive(ReduceOnPlateau(monitor="loss", patience=5), model, [0.5, 0.2])
    assert s.plateau_state is not None and s.plateau_state["monitor"] == "loss"
    fresh = ReduceOnPlateau(monitor="val_loss", patience=5)
    _drive(fresh, model, [])
    assert fresh.plateau.best == float("inf") and fresh.plateau.last_epoch == 0
    same = ReduceOnPlateau(monitor="loss", patience=5)
    _drive(same, model, [])
    assert same.plateau.best == 0.2 and same.plateau.last_epoch == 2

    acc = lrkit.keras.schedule("constant(lr=0.1)")
    _drive(ReduceOnPlateau(monitor="accuracy", mode="max"), _one_weight_model(acc), [0.5, 0.9])
    config = json.loads(json.dumps(acc.get_config()))
    assert config["plateau"]["mode"] == "max" and config["plateau"]["monitor"] == "accuracy"
    loaded = KerasSchedule.from_config(config)
    loaded_model = _one_weight_model(loaded)  # one model: a schedule given to another one starts afresh
    with pytest.raises(ValueError, match=r"saved with mode='max'.*this plateau has mode='min'"):
        _drive(ReduceOnPlateau(monitor="accuracy", mode="min"), loaded_model, [])
    resumed = ReduceOnPlateau(monitor="accuracy")  # auto, and no metric says: the saved mode, for now
    _drive(resumed, loaded_model, [])
    assert resumed.plateau.best == 0.9 and resumed.plateau.mode == "max"
    with pytest.raises(ValueError, match=r"^plateau: monitor must be a log key \(a str\), got 3"):
        KerasSchedule.from_config({**config, "plateau": {**config["plateau"], "monitor": 3}})


@pytest.mark.parametrize(("patience", "cooldown"), [(0, 0), (1, 0), (2, 0), (3, 1), (1, 2), (2, 3)])
def test_plateau_reproduces_keras_reduce_lr_on_plateau_with_the_documented_mapping(
    patience: int, cooldown: int
) -> None:
    """Keras counts patience and cooldown from the first bad epoch, torch (and lrkit) after it, and
    Keras' min_delta is absolute: ``keras.callbacks.ReduceLROnPlateau(patience=p, cooldown=c,
    min_delta=d)`` is ``ReduceOnPlateau(patience=max(p - 1, 0), cooldown=max(c - 1, 0), threshold=d,
    threshold_mode="abs")``, checked against Keras' own callback on a float LR (metrics with ties)."""
    rng = np.random.default_rng(patience * 10 + cooldown)
    for _ in range(10):
        metrics = [float(v) for v in rng.integers(0, 5, size=20)]
        lrs = []
        for cb in (
            keras.callbacks.ReduceLROnPlateau(
                monitor="loss", factor=0.5, patience=patience, cooldown=cooldown, min_delta=0.5, min_lr=0.01
            ),
            ReduceOnPlateau(
                monitor="loss",
                factor=0.5,
                patience=max(patience - 1, 0),
                cooldown=max(cooldown - 1, 0),
                threshold=0.5,
                threshold_mode="abs",
                min_lr=0.01,
            ),
        ):
            model = _stepped(_one_weight_model(1.0))
            cb.set_model(model)
            cb.on_train_begin({})
            seen = []
            for epoch, m in enumerate(metrics):
                cb.on_epoch_end(epoch, {"loss": m})
                seen.append(float(keras.ops.convert_to_numpy(model.optimizer.learning_rate)))
            lrs.append(seen)
        assert lrs[0] == pytest.approx(lrs[1], rel=RTOL), metrics
        assert min(lrs[0]) < 1.0  # some cuts were made


def test_values_match_keras_own_schedules() -> None:
    """The lrkit spellings of Keras' schedules, against Keras' classes at every step (float32)."""
    ks = keras.optimizers.schedules
    t = np.arange(400)
    pairs = [
        # CosineDecay's decay_steps do not include the warmup, as lrkit's pieces
        (
            "warmup(20, start=0) >> cosine(lr=0.01, steps=300, min_lr=0.0001)",
            ks.CosineDecay(0.0, 300, alpha=0.01, warmup_target=0.01, warmup_steps=20),
        ),
        ("exponential(lr=0.1, gamma=0.5, every=30)", ks.ExponentialDecay(0.1, 30, 0.5)),
        ("exponential(lr=0.1, gamma=0.5, every=30, staircase=true)", ks.ExponentialDecay(0.1, 30, 0.5, True)),
        ("inverse_time(lr=0.1, k=0.5, every=10)", ks.InverseTimeDecay(0.1, 10, 0.5)),
        (
            "polynomial(lr=0.1, steps=300, power=2, end_lr=0.001)",
            ks.PolynomialDecay(0.1, 300, 0.001, power=2.0),
        ),
        (
            "cosine_restarts(lr=0.1, period=50, mult=2, min_lr=0.001, decay=0.5)",
            ks.CosineDecayRestarts(0.1, 50, t_mul=2.0, m_mul=0.5, alpha=0.01),
        ),
        # PiecewiseConstantDecay switches *after* a boundary (step > b): milestones are boundaries + 1
        (
            "multistep(lr=0.1, milestones=[31, 61], gamma=0.1)",
            ks.PiecewiseConstantDecay([30, 60], [0.1, 0.01, 0.001]),
        ),
    ]
    for spec, theirs in pairs:
        ours = keras.ops.convert_to_numpy(lrkit.keras.schedule(spec)(torch.as_tensor(t)))
        want = np.array([float(keras.ops.convert_to_numpy(theirs(int(i)))) for i in t])
        np.testing.assert_allclose(ours, want, rtol=2e-6, atol=1e-9, err_msg=spec)


def test_with_gradient_accumulation_the_schedule_counts_batches() -> None:
    """As documented: Keras calls the schedule with its batch counter; with k=2 the updates happen at
    batches 1, 3, 5, 7 and use s(1), s(3), s(5), s(7), not s(0..3)."""
    s = lrkit.keras.schedule("linear(lr=0.1, steps=16, end_lr=0)")
    model = keras.Sequential(
        [keras.Input((1,)), keras.layers.Dense(1, use_bias=False, kernel_initializer="zeros")]
    )
    opt = keras.optimizers.SGD(learning_rate=s, gradient_accumulation_steps=2)
    model.compile(optimizer=opt, loss=mean_prediction)
    model.fit(np.ones((32, 1), "float32"), np.zeros((32, 1), "float32"), batch_size=4, epochs=1, verbose=0)
    assert int(keras.ops.convert_to_numpy(opt.iterations)) == 4
    assert _weight(model) == pytest.approx(-s.schedule(np.array([1, 3, 5, 7])).sum(), rel=RTOL)


LOAD_SCRIPT = textwrap.dedent(
    """
    import json, sys, keras
    import lrkit.keras  # registers KerasSchedule with Keras (import lrkit alone does not import keras)
    model = keras.models.load_model(sys.argv[1])
    s = model.optimizer._learning_rate
    lr = float(keras.ops.convert_to_numpy(model.optimizer.learning_rate))
    print(json.dumps({"type": type(s).__name__, "iterations": int(model.optimizer.iterations),
                      "multiplier": s.multiplier, "lr": lr, "monitor": s.plateau_state["monitor"]}))
    """
)


def test_a_new_process_loads_the_model_after_import_lrkit_keras(tmp_path: Path) -> None:
    """As the guide says: in a fresh process, ``import lrkit.keras`` before ``load_model``."""
    s = lrkit.keras.schedule(SPEC, total_steps=20)
    model = keras.Sequential([keras.Input((1,)), keras.layers.Dense(1)])
    model.compile(optimizer=keras.optimizers.SGD(learning_rate=s), loss="mse")  # a loss Keras knows
    cb = ReduceOnPlateau(monitor="loss", mode="max", factor=0.5, patience=0, start=0)  # mse stays 0: 2 cuts
    model.fit(X, Y, batch_size=4, epochs=3, verbose=0, callbacks=[cb])
    model.save(tmp_path / "m.keras")
    env = {**os.environ, "KERAS_BACKEND": "torch"}
    env["PYTHONPATH"] = os.pathsep.join(
        [str(Path(lrkit.__file__).resolve().parents[1]), env.get("PYTHONPATH", "")]
    )
    out = subprocess.run(
        [sys.executable, "-c", LOAD_SCRIPT, str(tmp_path / "m.keras")],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    got = json.loads(out.stdout.strip().splitlines()[-1])
    assert got == {
        "type": "KerasSchedule",
        "iterations": 6,
        "multiplier": 0.25,
        "lr": pytest.approx(0.25 * float(s.schedule(6)), rel=RTOL),
        "monitor": "loss",
    }


def test_digits_training_matches_keras_cosine_decay_at_every_step() -> None:
    """Real training (scikit-learn digits, an MLP, Adam, 3 epochs of 22 batches): the LR the optimizer
    reports before each batch and the trained weights are those of Keras' own CosineDecay with warmup."""
    datasets = pytest.importorskip("sklearn.datasets")
    x, y = datasets.load_digits(return_X_y=True)
    x, y = (x[:1400] / 16).astype("float32"), y[:1400].astype("int32")
    steps = 3 * 22  # ceil(1400 / 64) batches per epoch

    class Record(keras.callbacks.Callback):
        def __init__(self) -> None:
            super().__init__()
            self.seen: list[tuple[int, float]] = []

        def on_train_batch_begin(self, batch: int, logs: object = None) -> None:
            opt = self.model.optimizer
            lr = float(keras.ops.convert_to_numpy(opt.learning_rate))
            self.seen.append((int(keras.ops.convert_to_numpy(opt.iterations)), lr))

    def train(lr: object) -> tuple[list[tuple[int, float]], list[np.ndarray]]:
        keras.utils.set_random_seed(0)
        model = keras.Sequential(
            [keras.Input((64,)), keras.layers.Dense(32, activation="relu"), keras.layers.Dense(10)]
        )
        loss = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
        model.compile(optimizer=keras.optimizers.Adam(learning_rate=lr), loss=loss)
        record = Record()
        model.fit(x, y, batch_size=64, epochs=3, verbose=0, shuffle=False, callbacks=[record])
        return record.seen, [keras.ops.convert_to_numpy(w) for w in model.weights]

    ours = lrkit.keras.schedule("warmup(1ep, start=0) >> cosine(lr=0.01, min_lr=0.0001)", steps, 22)
    theirs = keras.optimizers.schedules.CosineDecay(
        0.0, steps - 22, alpha=0.01, warmup_target=0.01, warmup_steps=22
    )
    seen, weights = train(ours)
    seen_k, weights_k = train(theirs)
    assert [t for t, _ in seen] == list(range(steps))
    np.testing.assert_allclose([lr for _, lr in seen], [lr for _, lr in seen_k], rtol=2e-6, atol=1e-10)
    np.testing.assert_allclose([lr for _, lr in seen], ours.schedule(np.arange(steps)), rtol=RTOL, atol=1e-10)
    for a, b in zip(weights, weights_k):
        np.testing.assert_allclose(a, b, atol=1e-5)


def test_a_schedule_longer_than_total_steps_is_warned_about_once() -> None:
    """cosine(steps=10000) over 450 steps never decays: warned when built with total_steps, not again
    when Keras rebuilds it from its config (resolved, with no total)."""
    import warnings

    from lrkit.schedules.base import ScheduleLongerThanRunWarning

    with pytest.warns(
        ScheduleLongerThanRunWarning,
        match=r"lrkit\.keras\.schedule: 'cosine\(lr=0\.1, steps=10000\)' lasts 10,000 steps, more than "
        r"total_steps=450",
    ) as seen:
        s = lrkit.keras.schedule("cosine(lr=0.1, steps=10000)", total_steps=450)
    assert seen[0].filename == __file__
    with warnings.catch_warnings():
        warnings.simplefilter("error", ScheduleLongerThanRunWarning)
        KerasSchedule.from_config(s.get_config())
        KerasSchedule("cosine(lr=0.1, steps=450)", total_steps=450)


def test_a_schedule_shared_by_two_optimizers_keeps_the_callbacks_floor() -> None:
    """A GAN's generator and discriminator optimizers on one schedule, cut by
    ReduceOnPlateau(schedule=s, min_lr=...): the floor is set before either optimizer's first call; the
    second optimizer's first call must not take it back (cuts then went below min_lr: 0.01, not 0.05)."""
    s = lrkit.keras.schedule("constant(lr=0.1)", total_steps=100)
    s.floor = 0.05  # what the callback's on_train_begin sets
    g_opt, d_opt = keras.optimizers.SGD(s), keras.optimizers.SGD(s)
    g_w, d_w = keras.Variable([0.0]), keras.Variable([0.0])
    one = keras.ops.ones((1,))
    g_opt.apply([one], [g_w])  # each optimizer's first training step
    d_opt.apply([one], [d_w])
    assert s.floor == pytest.approx(0.05)
    s.scale(0.1)
    g_opt.apply([one], [g_w])
    d_opt.apply([one], [d_w])
    for w in (g_w, d_w):  # 0.1, then the floor
        assert float(keras.ops.convert_to_numpy(w)[0]) == pytest.approx(-0.15, rel=1e-6)
    assert float(keras.ops.convert_to_numpy(s(g_opt.iterations))) == pytest.approx(0.05)
    s.reset()  # by hand: the floor it was made with, too
    assert (s.multiplier, s.floor) == (1.0, 0.0)
