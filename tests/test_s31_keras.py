"""lrkit.keras, review of session 30's fixes: reading another model's LR from a shared schedule leaves the
run that trains alone (the new-optimizer reset happens at a fit boundary, not at every evaluation), a
``val_*`` monitor in a fit without validation warns at its first epoch, a callback's state is strict JSON
after a NaN metric, and ``PastTheRunWarning`` is one class with or without torch.

References are independent of the callback: a one-weight linear model trained by plain SGD on
``loss = mean(w * 1)`` (gradient exactly 1, so after ``k`` steps ``w = -sum(lr_0 .. lr_{k-1})``: every LR
the optimizer used is in it), trained alone on a schedule built for it.
"""

from __future__ import annotations

import json
import math
import os
import textwrap
import warnings
from typing import Any

os.environ.setdefault("KERAS_BACKEND", "torch")  # before the first `import keras` in this process

import numpy as np
import pytest

keras = pytest.importorskip("keras")
hypothesis = pytest.importorskip("hypothesis")
from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

import lrkit  # noqa: E402
import lrkit._warnings  # noqa: E402
from lrkit.adapters.keras import Cut, KerasSchedule, ReduceOnPlateau  # noqa: E402

from .keras_jax import run_on_keras_jax  # noqa: E402

if keras.backend.backend() != "torch":  # pragma: no cover - keras imported earlier with another backend
    pytest.skip("needs Keras' torch backend in this process", allow_module_level=True)

pytestmark = pytest.mark.filterwarnings("ignore:__array__ implementation doesn't accept a copy keyword")
SPEC = "cosine(lr=0.1, min_lr=0.01)"
X = np.ones((8, 1), "float32")  # batch_size=4: two optimizer steps per epoch
Y = np.zeros((8, 1), "float32")


@keras.saving.register_keras_serializable(package="lrkit_s31_tests")
def mean_prediction(y_true: object, y_pred: object) -> object:
    """The loss: its gradient with respect to a bias-free Dense(1) on inputs of 1 is exactly 1."""
    return keras.ops.mean(y_pred)


def _model(lr: object) -> Any:
    model = keras.Sequential(
        [keras.Input((1,)), keras.layers.Dense(1, use_bias=False, kernel_initializer="zeros")]
    )
    model.compile(optimizer=keras.optimizers.SGD(learning_rate=lr), loss=mean_prediction)
    return model


def _weight(model: Any) -> float:
    return float(keras.ops.convert_to_numpy(model.layers[0].kernel).ravel()[0])


def _lr(model: Any) -> float:
    return float(keras.ops.convert_to_numpy(model.optimizer.learning_rate))


def _plateau(**kw: Any) -> ReduceOnPlateau:
    # mode="max" on a falling loss: no epoch is better than the first, so cuts come every patience + 1
    return ReduceOnPlateau(**{"monitor": "loss", "mode": "max", "factor": 0.5, "start": 0, **kw})


# -- 1. reading a later model's LR leaves the run of the model that trains ----------------------------------
class _LookAtB(keras.callbacks.Callback):  # type: ignore[misc]
    """After each of A's epochs, look at model B, which shares A's schedule and has not trained."""

    def __init__(self, b: Any, schedule: KerasSchedule, how: str, first: int = 0) -> None:
        super().__init__()
        self.b, self.schedule, self.how, self.first, self.seen = b, schedule, how, first, []

    def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        if epoch < self.first:
            return
        opt = self.b.optimizer
        if self.how == "learning_rate":
            self.seen.append(float(keras.ops.convert_to_numpy(opt.learning_rate)))
        elif self.how == "call":  # the schedule evaluated on B's step counter
            self.seen.append(float(keras.ops.convert_to_numpy(self.schedule(opt.iterations))))
        else:  # B's optimizer built, its LR read
            opt.build(self.b.trainable_variables)
            self.seen.append(float(keras.ops.convert_to_numpy(opt.learning_rate)))


@settings(max_examples=6, deadline=None)
@given(
    patience=st.integers(0, 1),
    how=st.sampled_from(["learning_rate", "call", "build"]),
    first=st.integers(0, 4),
)
def test_reading_another_models_lr_mid_fit_leaves_the_cuts_of_the_model_that_trains(
    patience: int, how: str, first: int
) -> None:
    """A trains with plateau cuts while B, on the same schedule object, is looked at after each of A's
    epochs. A trains bit for bit as alone, its cuts' LRs are the LRs it trained with, and B's LR reads as
    the one it starts with (the schedule's own); B's fit afterwards starts clean (the K-fold case)."""
    alone_cb = _plateau(patience=patience)
    alone = _model(lrkit.keras.schedule(SPEC, total_steps=12))
    alone.fit(X, Y, batch_size=4, epochs=6, verbose=0, callbacks=[alone_cb])
    assert alone_cb.cuts

    s = lrkit.keras.schedule(SPEC, total_steps=12)
    a, b = _model(s), _model(s)
    cb = _plateau(patience=patience)
    look = _LookAtB(b, s, how, first)
    a.fit(X, Y, batch_size=4, epochs=6, verbose=0, callbacks=[cb, look])
    assert _weight(a) == _weight(alone)
    assert cb.cuts == alone_cb.cuts
    assert _lr(a) == _lr(alone)
    assert s.multiplier == alone.optimizer._learning_rate.multiplier
    assert s.plateau_state == alone.optimizer._learning_rate.plateau_state
    assert look.seen == pytest.approx([0.1] * (6 - first), rel=1e-6)  # B at step 0, with no cuts of its own
    # B trains next (a new fold, no callback): it starts clean, as on a schedule built for it
    b.fit(X, Y, batch_size=4, epochs=2, verbose=0)
    fresh = _model(lrkit.keras.schedule(SPEC, total_steps=12))
    fresh.fit(X, Y, batch_size=4, epochs=2, verbose=0)
    assert _weight(b) == _weight(fresh)
    assert s.multiplier == 1.0 and s.plateau_state is None


def test_the_cut_lr_a_callback_reports_is_the_lr_the_model_trains_with() -> None:
    """The reviewer's case in numbers: patience=0 halves A's LR after every epoch; B's LR read between
    A's epochs must not take the cuts back (it did: A's multiplier went back to 1 after every read)."""
    s = lrkit.keras.schedule("constant(lr=0.1)")
    a, b = _model(s), _model(s)
    cb = _plateau(patience=0)
    a.fit(X, Y, batch_size=4, epochs=4, verbose=0, callbacks=[cb, _LookAtB(b, s, "learning_rate", first=1)])
    assert [c.lr_after for c in cb.cuts] == pytest.approx([0.05, 0.025, 0.0125])
    assert _lr(a) == pytest.approx(0.0125) and s.multiplier == 0.125
    # two steps at each epoch's LR: 0.1, 0.1 (no cut after the first epoch), 0.05, 0.025
    assert _weight(a) == pytest.approx(-2 * (0.1 + 0.1 + 0.05 + 0.025), rel=1e-6)


JAX_READ_SCRIPT = textwrap.dedent(
    """
    import json, numpy as np, keras, lrkit
    assert keras.backend.backend() == "jax"
    x, y = np.ones((8, 1), "float32"), np.zeros((8, 1), "float32")
    def model_of(s):
        dense = keras.layers.Dense(1, use_bias=False, kernel_initializer="zeros")
        m = keras.Sequential([keras.Input((1,)), dense])
        m.compile(optimizer=keras.optimizers.SGD(learning_rate=s), loss=lambda t, p: keras.ops.mean(p))
        return m
    class Look(keras.callbacks.Callback):  # B's LR, read after each of A's epochs from the second on
        def __init__(self, b):
            super().__init__()
            self.b, self.seen = b, []
        def on_epoch_end(self, epoch, logs=None):
            if epoch >= 1:
                self.seen.append(float(np.asarray(self.b.optimizer.learning_rate)))
    def run(look):
        s = lrkit.keras.schedule("constant(lr=0.1)")
        a, b = model_of(s), model_of(s)
        cb = lrkit.keras.ReduceOnPlateau(monitor="loss", mode="max", factor=0.5, patience=0, start=0)
        lk = Look(b)
        a.fit(x, y, batch_size=4, epochs=4, verbose=0, callbacks=[cb] + ([lk] if look else []))
        w = float(np.asarray(a.layers[0].kernel.value).ravel()[0])
        return {"w": w, "cuts": [c.lr_after for c in cb.cuts], "m": s.multiplier, "seen": lk.seen}
    print(json.dumps({"alone": run(False), "looked": run(True)}))
    """
)


def test_jax_reading_another_models_lr_mid_fit_leaves_the_cuts() -> None:
    result = run_on_keras_jax(JAX_READ_SCRIPT)
    alone, looked = result["alone"], result["looked"]
    assert alone["cuts"] == pytest.approx([0.05, 0.025, 0.0125])
    assert looked["w"] == alone["w"] and looked["cuts"] == alone["cuts"]
    assert looked["m"] == alone["m"] == 0.125
    assert looked["seen"] == pytest.approx([0.1] * 3)


# -- 2. a val_* monitor in a fit without validation warns at its first epoch -----------------------------
def _no_validation_warnings(caught: list[warnings.WarningMessage]) -> list[str]:
    return [str(w.message) for w in caught if "is not in the logs of epoch" in str(w.message)]


@pytest.mark.parametrize("initial", [0, 2])
def test_a_val_monitor_without_validation_data_warns_at_the_first_epoch(initial: int) -> None:
    model = _model(lrkit.keras.schedule(SPEC, total_steps=40))
    with warnings.catch_warnings(record=True) as caught, pytest.raises(KeyError, match="validation_freq"):
        warnings.simplefilter("always")
        model.fit(
            X, Y, batch_size=4, epochs=5, initial_epoch=initial, verbose=0, callbacks=[ReduceOnPlateau()]
        )
    [message] = _no_validation_warnings(caught)  # once per fit, then the end-of-fit error
    assert (
        f"monitor 'val_loss' is not in the logs of epoch {initial}: this fit has no validation data"
        in message
    )
    assert "validation_data=... or validation_split=..." in message and "('loss')" in message
    # warned again in the next fit
    with warnings.catch_warnings(record=True) as caught, pytest.raises(KeyError):
        warnings.simplefilter("always")
        model.fit(X, Y, batch_size=4, epochs=1, verbose=0, callbacks=[ReduceOnPlateau()])
    assert len(_no_validation_warnings(caught)) == 1


@pytest.mark.parametrize("freq", [1, 2, 3, [2, 3, 5]])
def test_epochs_that_validation_freq_skips_are_not_warned_about(freq: Any) -> None:
    model = _model(lrkit.keras.schedule(SPEC, total_steps=40))
    cb = ReduceOnPlateau(monitor="val_loss", mode="max", patience=0, start=0)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        model.fit(
            X,
            Y,
            batch_size=4,
            epochs=5,
            verbose=0,
            validation_data=(X, Y),
            validation_freq=freq,
            callbacks=[cb],
        )
    assert _no_validation_warnings(caught) == []
    assert cb.plateau.last_epoch == (5 // freq if isinstance(freq, int) else 3)


class _NoValLogs(keras.Sequential):  # type: ignore[misc]
    """Validation runs but logs nothing (a test_step that returns no metrics)."""

    def test_step(self, data: object) -> dict[str, Any]:
        return {}


def test_an_epoch_that_validation_freq_validates_without_the_monitor_warns() -> None:
    model = _NoValLogs([keras.Input((1,)), keras.layers.Dense(1, use_bias=False, kernel_initializer="zeros")])
    model.compile(
        optimizer=keras.optimizers.SGD(lrkit.keras.schedule(SPEC, total_steps=40)), loss=mean_prediction
    )
    with warnings.catch_warnings(record=True) as caught, pytest.raises(KeyError):
        warnings.simplefilter("always")
        model.fit(
            X,
            Y,
            batch_size=4,
            epochs=4,
            verbose=0,
            validation_data=(X, Y),
            validation_freq=2,
            callbacks=[ReduceOnPlateau()],
        )
    [message] = _no_validation_warnings(caught)
    assert "not in the logs of epoch 1: fit(validation_freq=2) validates after epoch 1" in message


def test_callbacks_called_outside_a_fit_are_not_warned_and_still_raise_at_the_end() -> None:
    model = _model(lrkit.keras.schedule(SPEC, total_steps=40))
    cb = ReduceOnPlateau()
    cb.set_model(model)
    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)
        cb.on_train_begin()
        cb.on_epoch_end(0, {"loss": 1.0})
    with pytest.raises(KeyError, match="validation_freq"):
        cb.on_train_end()


# -- 3. a cut's NaN metric in strict JSON -------------------------------------------------------------------
METRICS = st.lists(
    st.one_of(st.sampled_from([math.nan, math.inf, -math.inf]), st.floats(-10, 10)), min_size=2, max_size=6
)


@settings(max_examples=25, deadline=None)
@given(metrics=METRICS)
def test_the_callbacks_state_and_the_schedules_config_are_strict_json_whatever_the_metrics(
    metrics: list[float],
) -> None:
    s = lrkit.keras.schedule("constant(lr=0.1)")
    model = _model(s)
    model.optimizer.build(model.trainable_variables)
    model.optimizer.iterations.assign(2)
    cb = ReduceOnPlateau(monitor="loss", patience=0, start=0, factor=0.5)
    cb.set_model(model)
    cb.on_train_begin()
    for epoch, m in enumerate(metrics):
        cb.on_epoch_end(epoch, {"loss": m})
    state = json.loads(json.dumps(cb.state_dict(), allow_nan=False))
    config = json.loads(json.dumps(s.get_config(), allow_nan=False))
    for cuts in (state["cuts"], config["plateau"]["cuts"]):
        assert [c["metric"] for c in cuts] == [
            c.metric if math.isfinite(c.metric) else str(c.metric) for c in cb.cuts
        ]
    again = ReduceOnPlateau(monitor="loss", patience=0, start=0, factor=0.5)
    again.load_state_dict(state)
    assert repr(again.cuts) == repr(cb.cuts)  # NaN != NaN: compared as written
    reloaded = KerasSchedule.from_config(config).get_config()
    assert json.dumps(reloaded, sort_keys=True) == json.dumps(config, sort_keys=True)


def test_a_state_written_with_a_bare_nan_metric_still_loads() -> None:
    old = {
        "plateau": ReduceOnPlateau().plateau.state_dict(),
        "num_cuts": 1,
        "cuts": [{"epoch": 3, "metric": math.nan, "lr_before": 0.1, "lr_after": 0.05}],
    }
    cb = ReduceOnPlateau()
    cb.load_state_dict(old)
    [cut] = cb.cuts
    assert math.isnan(cut.metric) and (cut.epoch, cut.lr_after) == (3, 0.05)
    assert cb.state_dict()["cuts"][0]["metric"] == "nan"
    with pytest.raises(ValueError, match=r"a cut's metric must be a number.*got str '0.5'"):
        cb.load_state_dict({**old, "cuts": [{**old["cuts"][0], "metric": "0.5"}]})
    assert isinstance(cb.cuts[0], Cut)


# -- 4. PastTheRunWarning is one class, with or without torch ---------------------------------------------
def test_keras_warns_lrkits_one_past_the_run_class() -> None:
    assert lrkit.keras.PastTheRunWarning is lrkit._warnings.PastTheRunWarning
    assert "PastTheRunWarning" in lrkit.keras.__all__


NO_TORCH_SCRIPT = textwrap.dedent(
    """
    import sys
    class Block:  # a jax-only install: importing torch fails
        def find_spec(self, name, path=None, target=None):
            if name.split(".")[0] == "torch":
                raise ModuleNotFoundError(f"No module named {name!r}", name=name)
    sys.meta_path.insert(0, Block())
    import json, warnings, numpy as np, keras, lrkit, lrkit.keras
    from lrkit._warnings import PastTheRunWarning
    assert keras.backend.backend() == "jax"
    model = keras.Sequential([keras.Input((1,)), keras.layers.Dense(1, use_bias=False)])
    sched = lrkit.keras.schedule("cosine(lr=0.1)", total_steps=4)
    model.compile(optimizer=keras.optimizers.SGD(sched), loss="mse")
    with warnings.catch_warnings():
        warnings.simplefilter("error", PastTheRunWarning)  # a user's filter, by class
        try:
            model.fit(np.ones((8, 1)), np.zeros((8, 1)), batch_size=4, epochs=3, verbose=0,
                      callbacks=[lrkit.keras.ReduceOnPlateau(monitor="loss", patience=100)])
            raised = None
        except Exception as exc:
            raised = type(exc).__module__ + "." + type(exc).__name__
    torch = sorted(k for k in sys.modules if k.split(".")[0] == "torch")
    print(json.dumps({"raised": raised, "torch": torch,
                      "same": lrkit.keras.PastTheRunWarning is PastTheRunWarning}))
    """
)


def test_a_jax_only_keras_user_filters_past_the_run_by_lrkits_class() -> None:
    result = run_on_keras_jax(NO_TORCH_SCRIPT)
    assert result == {"raised": "lrkit._warnings.PastTheRunWarning", "torch": [], "same": True}
