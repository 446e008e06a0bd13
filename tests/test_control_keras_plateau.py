"""Reduce-on-plateau from Keras (``lrkit.keras.ReduceOnPlateau``, which wraps :class:`Plateau`) on a
negative metric: the case where torch's rule never cuts (pytorch#38622, #47513).

Reference: hand-worked decisions (patience 1: a cut on every 2nd bad epoch) and the weight of a one-weight
model whose gradient is exactly 1, so that ``w = -sum(lr used at each step)``."""

from __future__ import annotations

import os

os.environ.setdefault("KERAS_BACKEND", "torch")  # before the first `import keras` in this process

import numpy as np
import pytest

keras = pytest.importorskip("keras")

import lrkit  # noqa: E402
from lrkit.adapters.keras import ReduceOnPlateau  # noqa: E402

pytestmark = pytest.mark.filterwarnings("ignore:__array__ implementation doesn't accept a copy keyword")


@keras.saving.register_keras_serializable(package="lrkit_control_tests")
def minus_one_plus_prediction(y_true: object, y_pred: object) -> object:
    """``mean(w * 1) - 1``: its gradient in ``w`` is exactly 1 (the monitored loss is made flat below)."""
    return keras.ops.mean(y_pred) - 1.0


def test_a_flat_negative_loss_is_cut_in_keras() -> None:
    s = lrkit.keras.schedule("constant(lr=0.1)", total_steps=12)
    model = keras.Sequential(
        [keras.Input((1,)), keras.layers.Dense(1, use_bias=False, kernel_initializer="zeros")]
    )
    model.compile(optimizer=keras.optimizers.SGD(learning_rate=s), loss=minus_one_plus_prediction)

    class FlatLoss(keras.callbacks.Callback):  # type: ignore[misc]
        """Report a loss stuck at -1.0 (a converged negative log-likelihood, say)."""

        def on_epoch_end(self, epoch: int, logs: dict[str, float] | None = None) -> None:
            if logs is not None:
                logs["flat"] = -1.0

    cb = ReduceOnPlateau(monitor="flat", mode="min", factor=0.5, patience=1)
    x, y = np.ones((8, 1), "float32"), np.zeros((8, 1), "float32")  # 2 steps an epoch
    model.fit(x, y, batch_size=4, epochs=6, verbose=0, callbacks=[FlatLoss(), cb])
    # epoch 0 sets the best; 1 bad, 2 bad -> cut; 3 bad, 4 bad -> cut; 5 bad (torch's rule: no cut ever)
    assert [c.epoch for c in cb.cuts] == [2, 4]
    assert s.multiplier == 0.25
    in_force = np.repeat([1.0, 1.0, 1.0, 0.5, 0.5, 0.25], 2) * 0.1
    w = float(keras.ops.convert_to_numpy(model.layers[0].kernel).ravel()[0])
    assert w == pytest.approx(-in_force.sum(), rel=1e-6)
