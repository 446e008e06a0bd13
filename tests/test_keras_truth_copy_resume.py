"""lrkit.keras as real training code handles it: copied, pickled, resumed from a saved model, and loaded
from a config with a key it does not know.

A KerasSchedule could not be deep-copied or pickled (it held the backend's array namespace, a module),
where Keras' own CosineDecay can; a ReduceOnPlateau resumed on a loaded model reported only the cuts it
made itself (its plateau counted them all); a config with an unknown key was a bare ``TypeError:
__init__() got an unexpected keyword argument``. The torch backend runs in this process, the jax
backend in a subprocess (a process holds one Keras backend).
"""

from __future__ import annotations

import copy
import io
import json
import os
import pickle
import textwrap
from pathlib import Path

os.environ.setdefault("KERAS_BACKEND", "torch")  # before the first `import keras` in this process

import numpy as np
import pytest

keras = pytest.importorskip("keras")
torch = pytest.importorskip("torch")

import lrkit  # noqa: E402
from lrkit.adapters.keras import Cut, KerasSchedule, ReduceOnPlateau  # noqa: E402

from .keras_jax import run_on_keras_jax  # noqa: E402

if keras.backend.backend() != "torch":  # pragma: no cover - keras imported earlier with another backend
    pytest.skip("needs Keras' torch backend in this process", allow_module_level=True)

pytestmark = pytest.mark.filterwarnings("ignore:__array__ implementation doesn't accept a copy keyword")
SPEC = "warmup(4, start=0) >> cosine(lr=0.1, min_lr=0.01)"
X = np.ones((8, 1), "float32")  # batch_size=4: two optimizer steps per epoch
Y = np.zeros((8, 1), "float32")
STEPS = np.arange(0, 24)


@keras.saving.register_keras_serializable(package="lrkit_truth_tests")
def mean_prediction(y_true: object, y_pred: object) -> object:
    """The loss: its gradient with respect to a bias-free Dense(1) on inputs of 1 is exactly 1."""
    return keras.ops.mean(y_pred)


def _model(lr: object) -> keras.Model:
    """A bias-free Dense(1) trained on :func:`mean_prediction` by plain SGD."""
    model = keras.Sequential(
        [keras.Input((1,)), keras.layers.Dense(1, use_bias=False, kernel_initializer="zeros")]
    )
    model.compile(optimizer=keras.optimizers.SGD(learning_rate=lr), loss=mean_prediction)
    return model


def _values(s: KerasSchedule) -> np.ndarray:
    return np.asarray(keras.ops.convert_to_numpy(s(torch.as_tensor(STEPS))))


def test_a_schedule_used_by_fit_deep_copies_and_pickles_with_its_cuts_and_plateau_state() -> None:
    s = lrkit.keras.schedule(SPEC, total_steps=20)
    model = _model(s)
    cb = ReduceOnPlateau(monitor="loss", mode="max", factor=0.5, patience=1, min_lr=0.001, start=0)
    model.fit(X, Y, batch_size=4, epochs=5, verbose=0, callbacks=[cb])
    assert s.multiplier == 0.25 and s.floor == pytest.approx(0.001) and len(cb.cuts) == 2
    for got in (copy.deepcopy(s), pickle.loads(pickle.dumps(s))):
        assert isinstance(got, KerasSchedule) and got is not s
        assert got.schedule == s.schedule and got.multiplier == s.multiplier and got.floor == s.floor
        assert got.plateau_state == s.plateau_state
        assert np.array_equal(_values(got), _values(s))
        got.scale(0.5)  # a copy's cuts are its own
        assert got.multiplier == 0.125 and s.multiplier == 0.25
    # the optimizer that holds it deep-copies too (it failed on the schedule)
    opt = copy.deepcopy(model.optimizer)
    assert isinstance(opt._learning_rate, KerasSchedule) and opt._learning_rate.multiplier == 0.25


def test_a_schedule_deep_copies_and_pickles_on_the_jax_backend() -> None:
    script = textwrap.dedent(
        """
        import copy, json, pickle, numpy as np, keras, lrkit
        assert keras.backend.backend() == "jax"
        s = lrkit.keras.schedule("warmup(4, start=0) >> cosine(lr=0.1, min_lr=0.01)", total_steps=20)
        s.multiplier = 0.5
        steps = np.arange(24)
        want = np.asarray(s(steps)).tolist()
        out = {}
        for name, f in (("deepcopy", copy.deepcopy), ("pickle", lambda x: pickle.loads(pickle.dumps(x)))):
            got = f(s)
            out[name] = [np.asarray(got(steps)).tolist() == want, got.multiplier]
        print(json.dumps(out))
        """
    )
    assert run_on_keras_jax(script) == {"deepcopy": [True, 0.5], "pickle": [True, 0.5]}


def _fit(model: keras.Model, epochs: int, cb: ReduceOnPlateau) -> None:
    model.fit(X, Y, batch_size=4, epochs=epochs, verbose=0, callbacks=[cb])


def test_a_callback_resumed_on_a_loaded_model_reports_every_cut(tmp_path: Path) -> None:
    kw = dict(
        monitor="loss", mode="max", factor=0.5, patience=0, start=0
    )  # the loss falls: a cut every epoch
    whole_cb = ReduceOnPlateau(**kw)  # type: ignore[arg-type]
    _fit(_model(lrkit.keras.schedule(SPEC, total_steps=20)), 6, whole_cb)
    first = _model(lrkit.keras.schedule(SPEC, total_steps=20))
    _fit(first, 3, ReduceOnPlateau(**kw))  # type: ignore[arg-type]
    first.save(tmp_path / "m.keras")
    loaded = keras.models.load_model(tmp_path / "m.keras")
    resumed = ReduceOnPlateau(**kw)  # type: ignore[arg-type]
    loaded.fit(X, Y, batch_size=4, epochs=6, initial_epoch=3, verbose=0, callbacks=[resumed])
    assert len(whole_cb.cuts) == 5 and whole_cb.plateau.num_reductions == 5
    assert resumed.cuts == whole_cb.cuts  # the two made before the save, then three
    assert resumed.state_dict() == whole_cb.state_dict()
    assert resumed.state_dict()["num_cuts"] == resumed.plateau.num_reductions == 5


def test_the_callback_state_carries_its_cuts_through_json_and_torch_save() -> None:
    """A float learning rate: the callback's own state_dict is the checkpoint (load_state_dict dropped
    the cuts, and kept neither their list nor their number)."""
    cb = ReduceOnPlateau(monitor="loss", factor=0.5, patience=0)
    model = _model(0.1)
    model.optimizer.iterations.assign(1)  # as after a step (an optimizer that never stepped warns)
    cb.set_model(model)
    cb.on_train_begin()
    for epoch, metric in enumerate([1.0, 2.0, float("nan"), 0.5]):
        cb.on_epoch_end(epoch, {"loss": metric})
    assert [c.epoch for c in cb.cuts] == [1, 2] and np.isnan(cb.cuts[1].metric)
    state = cb.state_dict()
    buf = io.BytesIO()
    torch.save(state, buf)
    buf.seek(0)
    for saved in (torch.load(buf, weights_only=True), json.loads(json.dumps(state))):
        again = ReduceOnPlateau(monitor="loss", factor=0.5, patience=0)
        again.load_state_dict(saved)
        assert repr(again.cuts) == repr(cb.cuts) and all(type(c) is Cut for c in again.cuts)
        assert again.state_dict()["num_cuts"] == 2
    with pytest.raises(ValueError, match=r"ReduceOnPlateau.load_state_dict: plateau: a cut's epoch"):
        ReduceOnPlateau(monitor="loss").load_state_dict(
            {**state, "cuts": [{**state["cuts"][0], "epoch": -1}]}
        )


def test_a_nan_metric_cut_survives_a_json_config() -> None:
    s = lrkit.keras.schedule("constant(lr=0.1)")
    cb = ReduceOnPlateau(monitor="loss", factor=0.5, patience=0)
    model = _model(s)
    model.optimizer.iterations.assign(1)  # as after a step (an optimizer that never stepped warns)
    cb.set_model(model)
    cb.on_train_begin()
    for epoch, metric in enumerate([1.0, float("nan")]):
        cb.on_epoch_end(epoch, {"loss": metric})
    config = json.loads(json.dumps(s.get_config(), allow_nan=False))
    assert config["plateau"]["cuts"][0]["metric"] == "nan"
    back = ReduceOnPlateau(monitor="loss", factor=0.5, patience=0)
    model = _model(KerasSchedule.from_config(config))
    model.optimizer.iterations.assign(2)  # the step count a loaded optimizer brings back
    back.set_model(model)
    back.on_train_begin()
    assert repr(back.cuts) == repr(cb.cuts)


def test_from_config_names_an_unknown_key_and_a_newer_format() -> None:
    config = lrkit.keras.schedule(SPEC, total_steps=20).get_config()
    with pytest.raises(
        ValueError, match=r"unknown key\(s\) \['warmup_target'\] in the config; .*newer lrkit"
    ):
        KerasSchedule.from_config({**config, "warmup_target": 0.2})
    with pytest.raises(
        ValueError,
        match=r"written by a newer lrkit \(format 'lrkit\.keras/3'; this lrkit reads 'lrkit\.keras/1' or "
        r"'lrkit\.keras/2'\)",
    ):
        KerasSchedule.from_config({**config, "format": "lrkit.keras/3", "warmup_target": 0.2})
    with pytest.raises(
        ValueError, match=r"format must be 'lrkit\.keras/1' or 'lrkit\.keras/2' \(or absent\)"
    ):
        KerasSchedule.from_config({**config, "format": "other"})
    # this lrkit's configs (format /2, names non-finite metrics: the lrkit reading /1 refuses it as newer)
    # and an older lrkit's (no format, or /1) load (and so do Keras' own paths to it)
    assert config["format"] == "lrkit.keras/2"
    bare = {k: v for k, v in config.items() if k != "format"}
    for ok in (config, bare, {**bare, "format": "lrkit.keras/1"}):
        assert KerasSchedule.from_config(ok).schedule == lrkit.parse(SPEC).resolve(total_steps=20)
    blob = keras.saving.serialize_keras_object(lrkit.keras.schedule(SPEC, total_steps=20))
    blob["config"]["warmup_target"] = 0.2
    with pytest.raises(ValueError, match=r"unknown key\(s\) \['warmup_target'\]"):
        keras.saving.deserialize_keras_object(blob)
