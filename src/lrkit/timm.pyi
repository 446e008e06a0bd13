"""Type stub: ``lrkit.timm``, ``import lrkit.timm``: :mod:`lrkit.adapters.timm`."""

from lrkit.adapters.timm import *  # noqa: F403
