"""Type stub: ``lrkit.optax``, ``import lrkit.optax``: :mod:`lrkit.adapters.optax`."""

from lrkit.adapters.optax import *  # noqa: F403
