"""``lrkit demo --lang ko``: recipes.png and lr_find.png, the demo's own figures, have Korean titles and
axis labels as the lab's figures do (they were English in every language); English stays as it was."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from lrkit.demo import TASK, finder_figure, recipes_figure
from lrkit.finder.result import FinderResult
from lrkit.lab.report import _hangul_font
from lrkit.tasks import get_task

HANGUL = re.compile("[\uac00-\ud7a3]")
needs_font = pytest.mark.skipif(_hangul_font() is None, reason="no font with Hangul: figures are English")


@pytest.fixture(scope="module")
def found() -> FinderResult:
    return get_task(TASK).find_lr(seed=0, repeats=1)  # the demo's range test, one repeat (~4 s)


def _words(fig: Any) -> tuple[str, str, str]:
    ax = fig.axes[0]
    return ax.get_title(), ax.get_xlabel(), ax.get_ylabel()


@needs_font
def test_recipes_figure_in_korean(tmp_path: Path) -> None:
    fig = recipes_figure(tmp_path / "recipes.png", "ko")
    assert _words(fig) == ("자주 쓰는 레시피, 10,000 스텝", "스텝", "학습률")
    assert (tmp_path / "recipes.png").stat().st_size > 10_000


@needs_font
def test_finder_figure_in_korean(tmp_path: Path, found: FinderResult) -> None:
    assert found.suggestion is not None
    fig = finder_figure(found, tmp_path / "lr_find.png", "ko")
    title, x, y = _words(fig)
    head, line = title.split("\n")
    assert head == f"학습률 범위 테스트: {TASK}"
    assert line.startswith(f"제안 학습률 {found.suggestion:.3g} (규칙 'lrkit'"), line
    assert not re.search("[A-Za-z]{3,}", line.replace("lrkit", "")), line  # no English word left
    assert (x, y) == ("학습률 (로그 스케일)", "손실")
    assert (tmp_path / "lr_find.png").stat().st_size > 10_000


def test_the_figures_in_english_are_as_before(tmp_path: Path, found: FinderResult) -> None:
    assert _words(recipes_figure(tmp_path / "r.png")) == (
        "common recipes over 10,000 steps",
        "step",
        "learning rate",
    )
    title, x, y = _words(finder_figure(found, tmp_path / "f.png"))
    assert title.startswith(f"LR range test: {TASK}\nsuggested LR {found.suggestion:.3g} (rule 'lrkit'")
    assert (x, y) == ("learning rate (log scale)", "loss")
    assert not any(HANGUL.search(t) for t in (title, x, y))
