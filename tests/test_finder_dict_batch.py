"""A dict batch is passed to the model as keyword arguments; a model that does not take them says so in
its own TypeError, and lrkit's note names ``forward=``, the way to pass such batches."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")

from lrkit.finder import find_lr  # noqa: E402

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _batches() -> list[dict[str, torch.Tensor]]:
    g = torch.Generator().manual_seed(0)
    return [
        {"pixels": torch.randn(8, 4, generator=g), "label": torch.randint(0, 2, (8,), generator=g)}
        for _ in range(4)
    ]


@pytest.mark.parametrize("loss_fn", [None, torch.nn.functional.cross_entropy], ids=["no-loss_fn", "loss_fn"])
def test_a_dict_batch_the_model_cannot_take_as_keywords_names_forward(loss_fn: object) -> None:
    torch.manual_seed(0)
    model = torch.nn.Linear(4, 2)
    before = [p.detach().clone() for p in model.parameters()]
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    with pytest.raises(TypeError, match="unexpected keyword argument 'pixels'") as exc:
        find_lr(model, opt, _batches(), loss_fn, num_steps=20, repeats=1)  # type: ignore[arg-type]
    notes = getattr(exc.value, "__notes__", [])
    assert len(notes) == 1 and "forward=lambda model, batch: loss" in notes[0] and "'pixels'" in notes[0], (
        notes
    )
    assert all(torch.equal(a, b) for a, b in zip(before, model.parameters(), strict=True))  # restored


def test_the_note_is_for_the_signature_only_and_forward_works() -> None:
    """A TypeError raised inside a model that took the keywords is the model's own: no note."""

    class Picky(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.lin = torch.nn.Linear(4, 2)

        def forward(self, pixels: torch.Tensor) -> torch.Tensor:
            raise TypeError("boom inside the model")

    with pytest.raises(TypeError, match="boom inside the model") as exc:
        model = Picky()
        find_lr(
            model,
            torch.optim.SGD(model.parameters(), lr=0.1),
            _batches(),
            torch.nn.functional.cross_entropy,
            num_steps=20,
            repeats=1,
        )
    assert not getattr(exc.value, "__notes__", [])
    model = torch.nn.Linear(4, 2)
    found = find_lr(
        model,
        torch.optim.SGD(model.parameters(), lr=0.1),
        _batches(),
        forward=lambda m, b: torch.nn.functional.cross_entropy(m(b["pixels"]), b["label"]),
        num_steps=20,
        repeats=1,
    )
    assert len(found.lrs) > 0
