"""Type stub: ``lrkit.keras``, ``import lrkit.keras``: :mod:`lrkit.adapters.keras`."""

from lrkit.adapters.keras import *  # noqa: F403
