"""lrkit.keras in the loops that tester F wrote: a schedule built once and given to a fresh model per
fold, a ``val_loss`` monitor with ``fit(validation_freq=2)``, a mixed_float16 model loaded without its
policy, a fit longer than its schedule, a GAN that trains with optimizers of its own, and a train step
jitted by hand on the jax backend.

The references are independent of the callback: a one-weight linear model trained by plain SGD on
``loss = mean(w * 1)`` (gradient exactly 1, so after ``k`` steps ``w = -sum(lr_0 .. lr_{k-1})``: every LR
the optimizer used is in it) trained with a schedule built afresh, and torch's ``ReduceLROnPlateau`` fed
the same metrics. The torch backend runs in this process, the jax backend in a subprocess.
"""

from __future__ import annotations

import os
import textwrap
import warnings
from pathlib import Path

os.environ.setdefault("KERAS_BACKEND", "torch")  # before the first `import keras` in this process

import numpy as np
import pytest

keras = pytest.importorskip("keras")
torch = pytest.importorskip("torch")
hypothesis = pytest.importorskip("hypothesis")
from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

import lrkit  # noqa: E402
from lrkit.adapters.keras import KerasSchedule, ReduceOnPlateau  # noqa: E402
from lrkit.adapters.torch import PastTheRunWarning  # noqa: E402

from .keras_jax import run_on_keras_jax  # noqa: E402

if keras.backend.backend() != "torch":  # pragma: no cover - keras imported earlier with another backend
    pytest.skip("needs Keras' torch backend in this process", allow_module_level=True)

pytestmark = pytest.mark.filterwarnings("ignore:__array__ implementation doesn't accept a copy keyword")
SPEC = "cosine(lr=0.1, min_lr=0.01)"
X = np.ones((8, 1), "float32")  # batch_size=4: two optimizer steps per epoch
Y = np.zeros((8, 1), "float32")


@keras.saving.register_keras_serializable(package="lrkit_s30_tests")
def mean_prediction(y_true: object, y_pred: object) -> object:
    """The loss: its gradient with respect to a bias-free Dense(1) on inputs of 1 is exactly 1."""
    return keras.ops.mean(y_pred)


def _model(lr: object) -> keras.Model:
    model = keras.Sequential(
        [keras.Input((1,)), keras.layers.Dense(1, use_bias=False, kernel_initializer="zeros")]
    )
    model.compile(optimizer=keras.optimizers.SGD(learning_rate=lr), loss=mean_prediction)
    return model


def _weight(model: keras.Model) -> float:
    return float(keras.ops.convert_to_numpy(model.layers[0].kernel).ravel()[0])


def _lr(model: keras.Model) -> float:
    return float(keras.ops.convert_to_numpy(model.optimizer.learning_rate))


def _plateau(**kw: object) -> ReduceOnPlateau:
    # mode="max" on a falling loss: no epoch is better than the first, so cuts come every patience + 1
    return ReduceOnPlateau(**{"monitor": "loss", "mode": "max", "factor": 0.5, "start": 0, **kw})  # type: ignore[arg-type]


def _fold(lr: object, epochs: int, cb: ReduceOnPlateau | None) -> tuple[float, float, list[float]]:
    """A fresh model trained on ``lr``: its LR before the fit, its weight after, the epochs' LRs."""
    model = _model(lr)
    lr0 = _lr(model)
    history = model.fit(X, Y, batch_size=4, epochs=epochs, verbose=0, callbacks=[] if cb is None else [cb])
    return lr0, _weight(model), list(history.history.get("learning_rate", []))


# -- 1. a schedule given to the optimizer of each new model ---------------------------------------------
@settings(max_examples=4, deadline=None)
@given(
    patience=st.integers(0, 2),
    folds=st.integers(2, 3),
    multiplier=st.sampled_from([1.0, 0.5]),
    reuse_callback=st.booleans(),
)
def test_a_schedule_built_once_starts_each_new_model_clean(
    patience: int, folds: int, multiplier: float, reuse_callback: bool
) -> None:
    """Each fold trains exactly as it does with a schedule built for it: the same LR before the fit,
    the same cuts, bit for bit the same weight (the cuts of the fold before went on: its LR at step 0
    was 0.0125 for 0.05)."""
    fresh = KerasSchedule(SPEC, total_steps=12, multiplier=multiplier)
    want_cb = _plateau(patience=patience)
    want = _fold(fresh, 6, want_cb)
    assert [c.epoch for c in want_cb.cuts] == [e for e in range(1, 6) if e % (patience + 1) == 0]
    shared = KerasSchedule(SPEC, total_steps=12, multiplier=multiplier)
    cb = _plateau(patience=patience)
    for _ in range(folds):
        this = cb if reuse_callback else _plateau(patience=patience)
        got = _fold(shared, 6, this)
        assert got == want
        assert this.cuts == want_cb.cuts
    assert want[0] == pytest.approx(0.1 * multiplier, rel=1e-6)


def test_a_fold_without_a_callback_starts_clean_and_a_resumed_fit_keeps_its_cuts() -> None:
    s = lrkit.keras.schedule(SPEC, total_steps=12)
    first = _model(s)
    first.fit(X, Y, batch_size=4, epochs=3, verbose=0, callbacks=[_plateau(patience=0)])
    assert s.multiplier == 0.25 and s.plateau_state is not None
    # the same model goes on (fit again, as with initial_epoch=): its cuts and state are kept
    again = _plateau(patience=0)
    first.fit(X, Y, batch_size=4, epochs=4, initial_epoch=3, verbose=0, callbacks=[again])
    assert s.multiplier == 0.125 and [c.epoch for c in again.cuts] == [1, 2, 3]
    # a new model without any callback: the LR before and during its fit is the schedule's own
    lr0, w, _ = _fold(s, 2, None)
    assert lr0 == pytest.approx(0.1, rel=1e-6)
    assert w == _fold(lrkit.keras.schedule(SPEC, total_steps=12), 2, None)[1]
    assert s.multiplier == 1.0 and s.plateau_state is None
    # reading an earlier model's LR does not take the schedule back from the model that trains
    second = _model(s)
    second.fit(X, Y, batch_size=4, epochs=3, verbose=0, callbacks=[_plateau(patience=0)])
    assert s.multiplier == 0.25
    _lr(first)
    assert s.multiplier == 0.25 and s.plateau_state is not None


def test_reset_forgets_the_run_and_a_loaded_model_keeps_its_state(tmp_path: Path) -> None:
    s = KerasSchedule(SPEC, total_steps=12, multiplier=0.5)
    model = _model(s)
    model.fit(X, Y, batch_size=4, epochs=2, verbose=0, callbacks=[_plateau(patience=0, min_lr=0.001)])
    assert s.multiplier == 0.25 and s.floor == pytest.approx(0.001)
    model.save(tmp_path / "m.keras")
    loaded = keras.models.load_model(tmp_path / "m.keras")
    sched = loaded.optimizer._learning_rate
    assert _lr(loaded) == _lr(model)  # the first optimizer a loaded schedule meets is its own
    assert sched.multiplier == 0.25 and sched.plateau_state == s.plateau_state
    s.reset()
    assert (s.multiplier, s.floor, s.plateau_state) == (0.5, 0.0, None)


def test_a_callback_reused_for_a_new_model_starts_afresh_unless_given_a_state() -> None:
    """A float LR: the callback holds the plateau state itself. Reused for a new model it starts afresh;
    one given a state (load_state_dict) goes on from it, whichever model it ran with before."""
    cb = _plateau(patience=0)
    _fold(0.1, 3, cb)
    assert [c.epoch for c in cb.cuts] == [1, 2]
    state = cb.state_dict()
    _fold(0.1, 3, cb)
    assert [c.epoch for c in cb.cuts] == [1, 2] and cb.plateau.last_epoch == 3
    cb.load_state_dict(state)
    _, _, lrs = _fold(0.1, 1, cb)
    assert [c.epoch for c in cb.cuts] == [1, 2, 0] and cb.plateau.last_epoch == 4
    assert lrs == pytest.approx([0.05])  # a float LR is the optimizer's: the new one starts at 0.1


# -- 2. validation every other epoch ----------------------------------------------------------------------
def _torch_plateau(metrics: list[float], **kwargs: object) -> list[float]:
    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
    rlrop = torch.optim.lr_scheduler.ReduceLROnPlateau(opt, **kwargs)  # type: ignore[arg-type]
    out = []
    for m in metrics:
        rlrop.step(m)
        out.append(opt.param_groups[0]["lr"])
    return out


@pytest.mark.parametrize("freq", [2, 3, [2, 3, 5]])
def test_val_monitor_with_validation_freq_skips_the_epochs_without_validation(freq: object) -> None:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(40, 4)).astype("float32")
    y = (x[:, :1] + rng.normal(size=(40, 1))).astype("float32")
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(1)])
    model.compile(optimizer=keras.optimizers.SGD(lrkit.keras.schedule(SPEC, total_steps=60)), loss="mse")
    cb = ReduceOnPlateau(monitor="val_loss", mode="max", factor=0.5, patience=0, start=0)
    history = model.fit(
        x, y, batch_size=8, epochs=6, verbose=0, validation_split=0.25, validation_freq=freq, callbacks=[cb]
    )
    vals = history.history["val_loss"]
    validated = [e for e in range(6) if (e + 1) % freq == 0] if isinstance(freq, int) else [1, 2, 4]
    assert len(vals) == len(validated)
    mults = _torch_plateau(vals, mode="max", factor=0.5, patience=0)
    assert [c.epoch for c in cb.cuts] == [e for e, a, b in zip(validated, [1.0, *mults], mults) if a != b]
    assert [c.metric for c in cb.cuts] == [v for v, a, b in zip(vals, [1.0, *mults], mults) if a != b]
    assert cb.plateau.last_epoch == len(validated)


def test_a_val_monitor_in_a_fit_without_validation_names_validation_freq() -> None:
    model = _model(lrkit.keras.schedule(SPEC, total_steps=12))
    with pytest.raises(
        KeyError,
        match=r"'val_loss' was in the logs of none of this fit's 3 epoch.*"
        r"validation_freq",
    ):
        model.fit(X, Y, batch_size=4, epochs=3, verbose=0, callbacks=[ReduceOnPlateau()])
    # a val_* key that is not there while others are: a typo, at once
    with pytest.raises(KeyError, match=r"'val_los' is not in the logs of epoch 0.*'val_loss'"):
        model.fit(
            X,
            Y,
            batch_size=4,
            epochs=3,
            verbose=0,
            validation_data=(X, Y),
            callbacks=[ReduceOnPlateau(monitor="val_los")],
        )


# -- 3. a mixed_float16 model loaded without its policy -----------------------------------------------------
def test_a_state_with_cuts_on_an_optimizer_at_step_0_warns_to_set_the_policy_first(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(32, 4)).astype("float32")
    y = (x[:, :1] + rng.normal(size=(32, 1))).astype("float32")
    path = tmp_path / "m.keras"
    try:
        keras.mixed_precision.set_global_policy("mixed_float16")
        model = keras.Sequential(
            [keras.Input((4,)), keras.layers.Dense(8), keras.layers.Dense(1, dtype="float32")]
        )
        model.compile(optimizer=keras.optimizers.Adam(lrkit.keras.schedule(SPEC, total_steps=40)), loss="mse")
        cb = _plateau(patience=0)
        model.fit(x, y, batch_size=8, epochs=3, verbose=0, callbacks=[cb])
        assert cb.cuts
        model.save(path)
        # loaded with the policy set: the step count comes back, no warning
        loaded = keras.models.load_model(path)
        with warnings.catch_warnings():
            warnings.simplefilter("error", UserWarning)
            loaded.fit(
                x,
                y,
                batch_size=8,
                epochs=4,
                initial_epoch=3,
                verbose=0,
                callbacks=[_plateau(patience=0)],
            )
        keras.mixed_precision.set_global_policy("float32")
        with pytest.warns(UserWarning, match=r"Skipping variable loading for optimizer"):
            bare = keras.models.load_model(path)  # Keras' own warning
        assert int(keras.ops.convert_to_numpy(bare.optimizer.iterations)) == 0
        with pytest.warns(
            UserWarning,
            match=r"saved plateau state has 3 epoch\(s\) and \d+ cut\(s\).*step count "
            r"is 0.*set_global_policy\('mixed_float16'\).*before keras.models.load_model",
        ):
            bare.fit(
                x,
                y,
                batch_size=8,
                epochs=4,
                initial_epoch=3,
                verbose=0,
                callbacks=[_plateau(patience=0)],
            )
    finally:
        keras.mixed_precision.set_global_policy("float32")


# -- 4. a fit longer than its schedule ------------------------------------------------------------------
@pytest.mark.parametrize(
    ("epochs", "initial", "at", "warned"),
    [
        (6, 0, 0, True),
        (2, 0, 0, False),
        (3, 0, 0, True),
        (2, 0, 1, False),
        (2, 0, 2, True),
        (6, 4, 8, True),
        (5, 4, 2, False),
    ],
)
def test_a_fit_past_the_schedule_warns_past_the_run(epochs: int, initial: int, at: int, warned: bool) -> None:
    """The schedule covers 4 steps (2 epochs of 2 batches); the step after its end passes (its LR is the
    end's), as lrkit.torch's scheduler lets one pass."""
    model = _model(lrkit.keras.schedule(SPEC, total_steps=4))
    model.optimizer.iterations.assign(at)  # where an earlier fit left it
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        model.fit(
            X,
            Y,
            batch_size=4,
            epochs=epochs,
            initial_epoch=initial,
            verbose=0,
            callbacks=[_plateau(patience=100)],
        )
    past = [w for w in caught if issubclass(w.category, PastTheRunWarning)]
    assert len(past) == int(warned)
    if warned:
        last = at + 2 * (epochs - initial) - 1
        assert f"covers 4 steps (batches), and fit(epochs={epochs})" in str(past[0].message)
        assert f"runs to step {last}; past step 4 the LR stays at its last value, 0.01" in str(
            past[0].message
        )


def test_a_schedule_without_an_end_is_never_past_the_run() -> None:
    model = _model(lrkit.keras.schedule("constant(lr=0.1)"))
    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)
        model.fit(X, Y, batch_size=4, epochs=5, verbose=0, callbacks=[_plateau(patience=100)])


# -- 5. a model that trains with optimizers of its own ----------------------------------------------
class _Two(keras.Model):  # type: ignore[misc]
    """Two one-weight layers, each trained by its own optimizer in a custom train step (a GAN's shape)."""

    def __init__(self) -> None:
        super().__init__()
        self.a = keras.layers.Dense(1, use_bias=False, kernel_initializer="zeros")
        self.b = keras.layers.Dense(1, use_bias=False, kernel_initializer="zeros")

    def call(self, x: object) -> object:
        return self.a(x) + self.b(x)

    def compile(self, oa: object, ob: object) -> None:  # type: ignore[override]
        super().compile()
        self.oa, self.ob = oa, ob

    def train_step(self, data: object) -> dict[str, object]:
        x, _ = data  # type: ignore[misc]
        for layer, opt in ((self.a, self.oa), (self.b, self.ob)):
            self.zero_grad()
            loss = keras.ops.mean(self(x))
            loss.backward()
            grads = [v.value.grad for v in layer.trainable_weights]
            with torch.no_grad():
                opt.apply(grads, layer.trainable_weights)
        return {"loss": -loss}  # falls as the weights go down: with mode="max", a cut every epoch


def test_a_model_that_trains_with_its_own_optimizers_warns_and_takes_schedule() -> None:
    sa = lrkit.keras.schedule("constant(lr=0.1)")
    model = _Two()
    model(X[:1])
    model.compile(keras.optimizers.SGD(sa), keras.optimizers.SGD(0.1))
    cb = _plateau(patience=0)
    with pytest.warns(
        UserWarning,
        match=r"after epoch 0 the step count is 0: model.optimizer \(RMSprop\).*"
        r"schedule=the_schedule_of_that_optimizer",
    ):
        model.fit(X, Y, batch_size=4, epochs=3, verbose=0, callbacks=[cb])
    assert sa.multiplier == 1.0  # it cut model.optimizer, which never stepped
    cut = _plateau(patience=0, schedule=sa)
    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)
        model.fit(X, Y, batch_size=4, epochs=3, verbose=0, callbacks=[cut])
    assert sa.multiplier == 0.25 and [c.epoch for c in cut.cuts] == [1, 2]
    assert [c.lr_after for c in cut.cuts] == pytest.approx([0.05, 0.025])
    # the weight of a: 6 steps at 0.1 (the first fit), then 2 at each epoch's LR of the second
    assert float(keras.ops.convert_to_numpy(model.a.kernel).ravel()[0]) == pytest.approx(
        -(6 * 0.1 + 2 * (0.1 + 0.1 + 0.05)), rel=1e-6
    )
    with pytest.raises(
        TypeError, match=r"schedule must be the lrkit.keras.schedule\(\.\.\.\) to cut.*got float"
    ):
        ReduceOnPlateau(schedule=0.1)  # type: ignore[arg-type]


# -- 1 and 6 on the jax backend ------------------------------------------------------------------------------
JAX_SCRIPT = textwrap.dedent(
    """
    import json, warnings, numpy as np, keras, jax, jax.numpy as jnp, lrkit
    assert keras.backend.backend() == "jax"
    x, y = np.ones((8, 1), "float32"), np.zeros((8, 1), "float32")
    def model_of(s):
        dense = keras.layers.Dense(1, use_bias=False, kernel_initializer="zeros")
        m = keras.Sequential([keras.Input((1,)), dense])
        m.compile(optimizer=keras.optimizers.SGD(learning_rate=s), loss=lambda t, p: keras.ops.mean(p))
        return m
    def cb():
        return lrkit.keras.ReduceOnPlateau(monitor="loss", mode="max", factor=0.5, patience=0, start=0)
    def fold(s, with_cb):
        m = model_of(s)
        m.fit(x, y, batch_size=4, epochs=3, verbose=0, callbacks=[cb()] if with_cb else [])
        return float(np.asarray(m.layers[0].kernel.value).ravel()[0])
    out = {}
    spec = "cosine(lr=0.1, min_lr=0.01)"
    out["fresh"] = fold(lrkit.keras.schedule(spec, total_steps=12), True)
    shared = lrkit.keras.schedule(spec, total_steps=12)
    out["folds"] = [fold(shared, True) for _ in range(3)]
    # a fold without a callback, whose schedule a traced step meets first: it warns (cannot reset there)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        out["traced_fold"] = fold(shared, False)
    out["traced_warnings"] = [str(w.message) for w in caught if "carries the cuts" in str(w.message)]
    out["fresh_no_cb"] = fold(lrkit.keras.schedule(spec, total_steps=12), False)
    # ... and one read first (an eager call): reset
    m = model_of(shared)
    out["eager_lr0"] = float(np.asarray(m.optimizer.learning_rate))

    # a train step jitted by hand holds the multiplier too: the warning says to jit it again
    s = lrkit.keras.schedule("constant(lr=0.1)")
    model = model_of(s)
    opt = model.optimizer
    opt.build(model.trainable_variables)
    def loss_fn(tv, xb):
        p, _ = model.stateless_call(tv, [], xb)
        return jnp.mean(p)
    @jax.jit
    def step(tv, ov, xb):
        g = jax.grad(loss_fn)(tv, xb)
        return opt.stateless_apply(ov, g, tv)
    tv, ov = [v.value for v in model.trainable_variables], [v.value for v in opt.variables]
    tv, ov = step(tv, ov, jnp.ones((4, 1)))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        s.scale(0.1)
    out["jit_warning"] = [str(w.message) for w in caught]
    print(json.dumps(out))
    """
)


def test_jax_folds_start_clean_and_the_stale_warning_names_a_hand_jitted_step() -> None:
    result = run_on_keras_jax(JAX_SCRIPT)
    assert result["folds"] == [result["fresh"]] * 3  # bit for bit a schedule built for each fold
    # the traced fold started from the cuts of the fold before (0.125), and said so
    assert result["traced_fold"] != result["fresh_no_cb"]
    [traced] = result["traced_warnings"]
    assert "inside a traced train step (jax)" in traced and "schedule.reset()" in traced
    assert result["eager_lr0"] == pytest.approx(0.1, rel=1e-6)
    [jit] = result["jit_warning"]
    assert "make_train_function(force=True)" in jit and "jit it again" in jit
