"""``lrkit plot --title``: matplotlib reads ``$...$`` as math. A title it cannot parse is one line naming
the flag and where it failed, and nothing is written; it was matplotlib's parser error on four lines
(a 40-alternative list) that did not name ``--title`` (a tester's finding)."""

from __future__ import annotations

from pathlib import Path

import pytest

pytest.importorskip("matplotlib")

from lrkit.cli import main


@pytest.mark.parametrize(
    ("title", "where"),
    [("$x^$", "at character 2: found end of text"), ("$\\frac{1}$", "at character 5: found '{'")],
)
def test_a_title_matplotlib_cannot_draw_names_the_flag(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], title: str, where: str
) -> None:
    out = tmp_path / "lr.png"
    assert main(["plot", "cosine(lr=0.1)", "--total", "100", "--title", title, "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"lrkit plot: error: --title {title!r}: matplotlib cannot draw it ({where})"), err
    assert err.count("\n") == 1 and not out.exists()


@pytest.mark.parametrize("title", ["warmup + cosine", "$\\alpha$ = 0.1", "costs \\$5", "50$", "코사인"])
def test_titles_matplotlib_draws_are_drawn(tmp_path: Path, title: str) -> None:
    out = tmp_path / "lr.png"
    assert main(["plot", "cosine(lr=0.1)", "--total", "100", "--title", title, "--out", str(out)]) == 0
    assert out.stat().st_size > 0
