"""pytest configuration shared by tests/ and the doctests under src/."""

import os

# Keras picks its backend when first imported (its default, TensorFlow, is not a dependency); set it
# before any test or doctest collection imports lrkit.adapters.keras.
os.environ.setdefault("KERAS_BACKEND", "torch")
os.environ.setdefault("MPLBACKEND", "Agg")
