"""Type stub: ``lrkit.torch``, ``import lrkit.torch``: :mod:`lrkit.adapters.torch`."""

from lrkit.adapters.torch import *  # noqa: F403
