"""A forward pass that returns ``(loss, logs)`` is refused with how to pass its loss, as one returning a
dict with a 'loss' key or an output with ``.loss`` is."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")

from lrkit.finder.torch_driver import _scalar_loss  # noqa: E402


def test_a_loss_and_logs_tuple_says_how_to_pass_the_loss() -> None:
    loss = torch.tensor(1.0, requires_grad=True)
    with pytest.raises(TypeError, match=r"got tuple \(its first item is a 1-element tensor: if your loss_fn "
                       r"returns \(loss, logs\), pass lambda out, y: loss_fn\(out, y\)\[0\]\)"):  # fmt: skip
        _scalar_loss((loss, {"acc": 0.5}))
    with pytest.raises(TypeError, match=r"got tuple$"):  # no loss first: no hint
        _scalar_loss(({"acc": 0.5}, loss))
