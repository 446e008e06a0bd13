"""jax helpers shared by the tests."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator


@contextlib.contextmanager
def x64() -> Iterator[None]:
    """jax with 64-bit types for the block. ``jax.config.update`` is the one switch from the floor
    (jax 0.4.30, without ``jax.enable_x64``) to the newest (without ``jax.experimental.enable_x64``)."""
    import jax

    before = jax.config.read("jax_enable_x64")
    jax.config.update("jax_enable_x64", True)
    try:
        yield
    finally:
        jax.config.update("jax_enable_x64", before)
