"""Framework adapters: thin layers that read ``schedule(step)`` and write it into an optimizer.

Each module imports its framework, so none is imported here: ``lrkit.torch`` is
:mod:`lrkit.adapters.torch`, ``lrkit.keras`` is :mod:`lrkit.adapters.keras` and ``lrkit.optax`` is
:mod:`lrkit.adapters.optax`, each loaded on first use.
"""
