"""Keras 3 (torch backend) with an lrkit schedule, reduce-on-plateau on top of it, and save/load.

Keras' own ``ReduceLROnPlateau`` refuses a learning-rate schedule; ``lrkit.keras.ReduceOnPlateau`` cuts
the schedule's multiplier instead, so the warmup + cosine keeps its shape, scaled down. The schedule
(and its multiplier) is saved with the model. Runs in seconds on a CPU.

    python examples/keras_fit.py
"""

from __future__ import annotations

import os
import tempfile

os.environ.setdefault("KERAS_BACKEND", "torch")  # before keras is imported

import keras
import numpy as np

import lrkit

EPOCHS, BATCH = 10, 32
rng = np.random.default_rng(0)
x = rng.normal(size=(512, 8)).astype("float32")
y = (np.tanh(x @ rng.normal(size=(8, 1))) + 0.3 * rng.normal(size=(512, 1))).astype("float32")
steps_per_epoch = int(np.ceil(384 / BATCH))  # validation_split=0.25 leaves 384 samples to train on

schedule = lrkit.keras.schedule(
    "warmup(1ep) >> cosine(lr=3e-2, min_lr=1e-4)",
    total_steps=EPOCHS * steps_per_epoch,
    steps_per_epoch=steps_per_epoch,
)
model = keras.Sequential(
    [keras.Input((8,)), keras.layers.Dense(32, activation="relu"), keras.layers.Dense(1)]
)
model.compile(optimizer=keras.optimizers.AdamW(learning_rate=schedule), loss="mse")
plateau = lrkit.keras.ReduceOnPlateau(monitor="val_loss", factor=0.5, patience=1, verbose=1)
history = model.fit(
    x, y, batch_size=BATCH, epochs=EPOCHS, validation_split=0.25, callbacks=[plateau], verbose=0
)
for epoch, (loss, lr) in enumerate(zip(history.history["val_loss"], history.history["learning_rate"]), 1):
    print(f"epoch {epoch:2d}  val_loss {loss:.4f}  lr {lr:.2e}")
print(
    f"cuts: {[(c.epoch + 1, round(c.lr_after / c.lr_before, 3)) for c in plateau.cuts]}; "
    f"multiplier now {schedule.multiplier:g}"
)

with tempfile.TemporaryDirectory() as tmp:
    path = os.path.join(tmp, "model.keras")
    model.save(path)
    loaded = keras.models.load_model(path)
restored = loaded.optimizer._learning_rate
print(f"restored: {restored!r}")
before, after = float(model.optimizer.learning_rate), float(loaded.optimizer.learning_rate)
print(f"lr before saving {before:.3e}, after loading {after:.3e}")
