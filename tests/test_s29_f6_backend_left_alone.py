"""lrkit leaves matplotlib's backend as it found it: plot.pyplot() switched it to Agg for the rest of a
notebook's session (inline, ipympl, TkAgg...) whenever lrkit.plot.plot_schedules(ax=...), lrkit plot or
a lab report drew (a tester's finding). lrkit's own figures draw on their own Agg canvas; on the user's
``ax`` nothing else is touched."""

from __future__ import annotations

import shutil
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

matplotlib = pytest.importorskip("matplotlib")

#: a backend as a notebook's: matplotlib_inline's, an Agg canvas with a show() of its own
FAKE_INLINE = """
from matplotlib.backends.backend_agg import FigureCanvasAgg as FigureCanvas, new_figure_manager  # noqa
SHOWN = []
def show(*args, **kwargs):
    SHOWN.append(1)
"""


@pytest.fixture
def notebook_backend(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    (tmp_path / "s29_f6_inline.py").write_text(FAKE_INLINE)
    monkeypatch.syspath_prepend(str(tmp_path))
    before = matplotlib.get_backend()
    name = "module://s29_f6_inline"
    matplotlib.use(name)
    assert matplotlib.get_backend() == name
    yield name
    matplotlib.use(before)
    sys.modules.pop("s29_f6_inline", None)


def test_plot_schedules_on_your_axes(notebook_backend: str) -> None:
    from matplotlib.figure import Figure

    from lrkit.plot import plot_schedules

    ax = Figure().add_subplot()
    assert plot_schedules(["cosine(lr=0.1)"], 100, ax=ax) is ax.figure
    assert len(ax.lines) == 1
    assert matplotlib.get_backend() == notebook_backend


def test_plot_schedules_own_figure(notebook_backend: str, tmp_path: Path) -> None:
    from lrkit.plot import plot_schedules

    fig = plot_schedules(["cosine(lr=0.1)"], 100, tmp_path / "a.svg")
    assert (tmp_path / "a.svg").read_bytes().lstrip().startswith(b"<?xml")
    assert fig.canvas.get_renderer() is not None  # an Agg canvas of its own
    assert matplotlib.get_backend() == notebook_backend


def test_cli_plot_and_gallery(notebook_backend: str, tmp_path: Path) -> None:
    from lrkit.cli import main

    pyplot = sys.modules.get("matplotlib.pyplot")
    open_before = pyplot.get_fignums() if pyplot else []
    assert main(["plot", "cosine(lr=0.1)", "--total", "100", "--out", str(tmp_path / "p.png")]) == 0
    assert main(["gallery", "--total", "200", "--out", str(tmp_path / "g.png")]) == 0
    assert matplotlib.get_backend() == notebook_backend
    pyplot = sys.modules.get("matplotlib.pyplot")
    assert (pyplot.get_fignums() if pyplot else []) == open_before  # no figure left open in pyplot


def test_lab_report(notebook_backend: str, lab_db: Path, tmp_path: Path) -> None:
    from lrkit.cli import main

    shutil.copy(lab_db, tmp_path / "lab.db")
    assert main(["report", str(tmp_path / "lab.db"), "--out", str(tmp_path / "r")]) == 0
    assert (tmp_path / "r" / "lab.png").exists()
    assert matplotlib.get_backend() == notebook_backend
