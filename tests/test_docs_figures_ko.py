"""The Korean pages show Korean figures: docs/make_figures.py draws a Korean twin of every figure
(docs/figures/ko/NAME.png), and each Korean page links the twin of its English page's figure."""

from __future__ import annotations

import importlib.util
import re
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
IMAGE = re.compile(r"!\[[^\]]*\]\(([^)]+)\)")
HANGUL = re.compile("[\uac00-\ud7a3]")


def _make_figures() -> ModuleType:
    name = "lrkit_docs_make_figures"
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, DOCS / "make_figures.py")
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
    return sys.modules[name]


def _page_pairs() -> list[tuple[Path, Path]]:
    pairs = [(en, DOCS / "ko" / en.relative_to(DOCS / "en")) for en in sorted((DOCS / "en").rglob("*.md"))]
    return [*pairs, (ROOT / "README.md", ROOT / "README.ko.md")]


def _images(page: Path) -> list[Path]:
    return [(page.parent / t).resolve() for t in IMAGE.findall(page.read_text(encoding="utf-8"))]


def test_every_korean_page_shows_the_korean_twin_of_the_english_figure() -> None:
    mf = _make_figures()
    shown = 0
    for en, ko in _page_pairs():
        en_images, ko_images = _images(en), _images(ko)
        assert len(en_images) == len(ko_images), f"{ko} shows {len(ko_images)} figures, {en} {len(en_images)}"
        for a, b in zip(en_images, ko_images):
            name = a.stem
            assert name in mf.FIGURES, f"{en} shows {a}, which docs/make_figures.py does not draw"
            assert a == mf._figure_path(DOCS, name, "en").resolve(), (
                f"{en}: {a} is not {name}'s English figure"
            )
            twin = mf._figure_path(DOCS, name, "ko").resolve()
            assert b == twin, f"{ko} shows {b}; the Korean twin of {en}'s {a.name} is {twin}"
            assert twin.is_file(), f"{ko}: missing figure {twin} (python docs/make_figures.py --only {name})"
            shown += 1
    assert shown >= 15, f"only {shown} figures on the pages"


def _texts(fig: Any) -> list[tuple[str, str, Any]]:
    """(kind, text, Text) of every visible text but the tick labels: 'title' (suptitle, axes titles),
    'label' (axis labels), 'legend', 'other'."""
    from matplotlib.text import Text

    kinds: dict[int, str] = {}
    for ax in fig.axes:
        kinds[id(ax.title)] = "title"
        kinds[id(ax.xaxis.label)] = kinds[id(ax.yaxis.label)] = "label"
        if ax.get_legend() is not None:
            kinds.update((id(t), "legend") for t in ax.get_legend().get_texts())
        for axis in (ax.xaxis, ax.yaxis):
            ticks = [*axis.get_major_ticks(), *axis.get_minor_ticks()]
            kinds.update((id(t), "tick") for tick in ticks for t in (tick.label1, tick.label2))
            kinds[id(axis.get_offset_text())] = "tick"
    sup = getattr(fig, "_suptitle", None)
    if sup is not None:
        kinds[id(sup)] = "title"
    out = []
    for t in fig.findobj(Text):
        kind = kinds.get(id(t), "other")
        if kind != "tick" and t.get_visible() and t.get_text().strip():
            out.append((kind, t.get_text(), t))
    return out


def _words(text: str) -> set[str]:
    """The English words of ``text``: spec strings, dotted names and numbers left out."""
    text = re.sub(r"\w+\([^)]*\)|\S*[._]\S*", " ", text)
    return {w.lower() for w in re.findall(r"[A-Za-z]{2,}", text)} - {"lrkit"}


@pytest.mark.parametrize("name", ["quick", "recipes", "scaling", "plateau"])
def test_a_korean_figure_says_everything_in_korean(name: str, tmp_path: Path, monkeypatch: Any) -> None:
    pytest.importorskip("matplotlib")
    import lrkit
    from lrkit.lab import report

    mf = _make_figures()
    font = report._hangul_font()
    if font is None:  # the words can be checked on any machine; the font only where one has Hangul
        monkeypatch.setattr(report, "_hangul_font", lambda: "DejaVu Sans")
    english = _texts(mf.FIGURES[name](tmp_path / "en" / f"{name}.png", lang="en"))
    korean = _texts(mf.FIGURES[name](tmp_path / "ko" / f"{name}.png", lang="ko"))
    assert (tmp_path / "ko" / f"{name}.png").is_file()
    title_words = set().union(*(_words(s) for kind, s, _ in english if kind == "title"))
    assert title_words, f"{name}: no English words in the English titles {english}"
    assert {kind for kind, _, _ in korean} >= {"title", "label"}, korean

    def is_spec(s: str) -> bool:
        try:
            lrkit.parse(s)
        except Exception:
            return False
        return True

    for kind, s, text in korean:
        assert not _words(s) & title_words, (
            f"{name}: English {_words(s) & title_words} in the Korean {kind} {s!r}"
        )
        if kind in ("title", "label"):
            assert HANGUL.search(s), f"{name}: the Korean figure's {kind} {s!r} has no Hangul"
        elif kind == "legend":
            assert HANGUL.search(s) or is_spec(s), f"{name}: legend entry {s!r} is neither Korean nor a spec"
        if font is not None and HANGUL.search(s):
            assert font in text.get_fontfamily(), (
                f"{name}: {s!r} is drawn in {text.get_fontfamily()}, no Hangul"
            )


def test_an_english_text_without_a_korean_pattern_is_an_error() -> None:
    matplotlib = pytest.importorskip("matplotlib")
    from matplotlib.figure import Figure

    mf = _make_figures()
    assert matplotlib
    fig = Figure()
    ax = fig.add_subplot()
    ax.set(xlabel="learning rate", title="warmup(5%) >> cosine(lr=0.1)")
    ax.set_ylabel("학습 손실")
    mf._relabel(fig, mf.KO_RELABEL)
    assert (ax.get_xlabel(), ax.get_title(), ax.get_ylabel()) == (
        "학습률",
        "warmup(5%) >> cosine(lr=0.1)",
        "학습 손실",
    )
    ax.set_ylabel("something new")
    with pytest.raises(ValueError, match="no Korean for the figure text 'something new'"):
        mf._relabel(fig, mf.KO_RELABEL)
