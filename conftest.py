"""pytest configuration shared by tests/ and the doctests under src/."""

import os

# Keras picks its backend when first imported (its default, TensorFlow, is not a dependency); set it
# before any test or doctest collection imports lrkit.adapters.keras.
os.environ.setdefault("KERAS_BACKEND", "torch")
os.environ.setdefault("MPLBACKEND", "Agg")

# Hypothesis draws new examples on every run, which is how a developer's `make test` keeps exploring. CI
# (.ci/run sets HYPOTHESIS_PROFILE=ci) derandomizes them instead: the same examples on every CI run, so
# that a verdict on a submission never depends on the luck of a draw. Explore other draws by hand with
# `pytest --hypothesis-seed=N`.
try:
    from hypothesis import settings as _hypothesis_settings
except ImportError:  # the doctests alone need no hypothesis
    pass
else:
    _hypothesis_settings.register_profile("ci", derandomize=True, print_blob=True)
    if os.environ.get("HYPOTHESIS_PROFILE"):
        _hypothesis_settings.load_profile(os.environ["HYPOTHESIS_PROFILE"])
