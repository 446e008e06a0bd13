"""A run too short for the piece that takes "the rest" (bert_finetune over 1 step: 10% of it is the whole
step, left to its warmup) says what is expected, not only what is missing."""

from __future__ import annotations

import pytest

import lrkit
from lrkit.recipes import bert_finetune, gpt_cosine


@pytest.mark.parametrize(
    ("build", "total", "others"),
    [
        (bert_finetune, 1, "1"),
        (gpt_cosine, 1, "1"),
        (lambda: lrkit.parse("warmup(5) >> cosine(lr=0.1)"), 5, "5"),
    ],
)
def test_too_short_a_run_says_what_is_expected(build: object, total: int, others: str) -> None:
    with pytest.raises(ValueError) as info:
        build().resolve(total_steps=total)  # type: ignore[operator]
    said = str(info.value)
    assert f"leaving nothing of total_steps={total} for the last piece" in said
    assert f"expected a total_steps above {others}, so that a step at least is left for it" in said


def test_two_steps_are_enough_for_bert_finetune() -> None:
    s = bert_finetune().resolve(total_steps=2)  # transformers: warmup 1 step (lr 0), then 5e-5
    assert [s(0), s(1)] == [0.0, 5e-05]
