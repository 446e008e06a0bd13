"""The adaptive-optimizer page says what its own sweep prints (tester P, s30): it gave RMSprop's good
range (LRs within 0.01 of its best accuracy) as a decade, 1e-3 to 1e-2, and its best as 0.969, where
docs/make_figures.py's sweep prints "rmsprop best lr 0.001 (val acc 0.968); within 0.01 of it: 0.001 to
0.00316": half a decade, as momentum's. RMSprop's part of the sweep is run again here (44 short runs)."""

from __future__ import annotations

import importlib.util
import re
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest

pytest.importorskip("torch")
pytest.importorskip("sklearn")

ROOT = Path(__file__).resolve().parents[1]
PAGES = {lang: ROOT / "docs" / lang / "strategies" / "adaptive.md" for lang in ("en", "ko")}
NUMBER = r"([0-9.e-]+)"


def _make_figures() -> ModuleType:
    name = "lrkit_docs_make_figures"
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, ROOT / "docs" / "make_figures.py")
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
    return sys.modules[name]


def _text(lang: str) -> str:
    return " ".join(PAGES[lang].read_text(encoding="utf-8").split())


@pytest.fixture(scope="module")
def rmsprop(monkeypatch_module: pytest.MonkeyPatch) -> tuple[float, float, float]:
    """RMSprop's best mean accuracy and the smallest and largest LR within 0.01 of it, as the sweep
    prints them."""
    mf = _make_figures()
    monkeypatch_module.setattr(mf, "ADAPTIVE", ("rmsprop",))
    acc, best, _ = mf._adaptive_sweep()["rmsprop"]
    lrs = np.asarray(mf.ADAPTIVE_LRS)
    good = lrs[acc >= acc[best] - 0.01]
    return float(acc[best]), float(good.min()), float(good.max())


@pytest.fixture(scope="module")
def monkeypatch_module() -> Iterator[pytest.MonkeyPatch]:
    with pytest.MonkeyPatch.context() as mp:
        yield mp


def test_the_english_page_gives_rmsprops_range_and_best_as_the_sweep(
    rmsprop: tuple[float, float, float],
) -> None:
    best, low, high = rmsprop
    text = _text("en")
    m = re.search(rf"half a decade for RMSprop \({NUMBER}–{NUMBER}\)", text)
    assert m, "the page gives RMSprop's range as half a decade"
    assert (float(m[1]), float(m[2])) == pytest.approx((low, high), rel=2e-3)
    assert high / low < 5  # half a decade (10 ** 0.5), not a decade
    m = re.search(rf"best {NUMBER}, {NUMBER}, {NUMBER}\)", text)  # AdaGrad, RMSprop, Adam
    # within 0.0015: the sweep's accuracies move by about 0.001 between machines (torch's CPU kernels
    # differ by instruction set): the page's 0.968 was printed on an earlier machine, where this passed;
    # a later one gives 0.9694 at one thread, with the same code
    assert m and abs(float(m[2]) - best) <= 0.0015, (m and m.groups(), best)
    assert "RMSprop and Adam (1e-3–1e-2)" not in text


def test_the_korean_page_gives_rmsprops_range_and_best_as_the_sweep(
    rmsprop: tuple[float, float, float],
) -> None:
    best, low, high = rmsprop
    text = _text("ko")
    m = re.search(rf"RMSprop\({NUMBER}–{NUMBER}\)과 모멘텀\(0.0316–0.1\)은 약 3배", text)
    assert m, "the page gives RMSprop's range as about 3x, as momentum's"
    assert (float(m[1]), float(m[2])) == pytest.approx((low, high), rel=2e-3)
    m = re.search(rf"최고는 {NUMBER}, {NUMBER}, {NUMBER}\)", text)
    # within 0.0015: the sweep's accuracies move by about 0.001 between machines (torch's CPU kernels
    # differ by instruction set): the page's 0.968 was printed on an earlier machine, where this passed;
    # a later one gives 0.9694 at one thread, with the same code
    assert m and abs(float(m[2]) - best) <= 0.0015, (m and m.groups(), best)
