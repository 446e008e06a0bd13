"""Type stub: ``lrkit.transformers``, ``import lrkit.transformers``: :mod:`lrkit.adapters.transformers`."""

from lrkit.adapters.transformers import *  # noqa: F403
