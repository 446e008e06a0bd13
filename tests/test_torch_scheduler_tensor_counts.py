"""``lrkit.torch.scheduler`` takes ``total_steps``, ``epochs`` and ``steps_per_epoch`` as 0-d integer
tensors (``len(loader) * epochs`` computed on tensors), as ``Schedule.resolve`` documents; it refused
``total_steps=torch.tensor(10)`` with "must be a finite number > 0, got tensor(10)" (a tester's finding)."""

from __future__ import annotations

import pytest

import lrkit

torch = pytest.importorskip("torch")


def _lrs(**counts: object) -> list[float]:
    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=0.1)
    s = lrkit.torch.scheduler(opt, "warmup(1ep) >> cosine(lr=0.1)", **counts)
    out = []
    for _ in range(12):
        out.append(opt.param_groups[0]["lr"])
        opt.step()
        s.step()
    return out


@pytest.mark.parametrize("dtype", [torch.int64, torch.int32, torch.uint8])
def test_0d_integer_tensors_count_as_their_ints(dtype: torch.dtype) -> None:
    t = lambda n: torch.tensor(n, dtype=dtype)  # noqa: E731
    want = _lrs(total_steps=10, steps_per_epoch=5)
    assert _lrs(total_steps=t(10), steps_per_epoch=t(5)) == want
    assert _lrs(epochs=t(2), steps_per_epoch=t(5)) == want


@pytest.mark.parametrize(
    ("bad", "said"),
    [(torch.tensor([10, 2]), "of shape (2,)"), (torch.tensor(10.0), "of dtype torch.float32")],
)
def test_other_tensors_are_refused_by_name(bad: object, said: str) -> None:
    with pytest.raises(
        TypeError, match=r"total_steps must be a number or a 0-d integer array, got Tensor "
    ) as e:
        _lrs(total_steps=bad, steps_per_epoch=5)
    assert said in str(e.value)
