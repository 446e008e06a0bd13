"""``lrkit show``/``plot`` of a bare warmup: its values are a multiplier rising to 1, which every adapter
and the lab refuse as LRs, but show printed them under the heading ``lr`` (climbing to 1) and plot drew
them as a learning rate, without a word."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from lrkit.cli import main


@pytest.mark.parametrize(
    "spec", ["warmup(10)", "warmup(5, start=0.5)", "constant(lr=0.1, steps=5) >> warmup(5)"]
)
def test_show_names_a_multiplier_as_one(spec: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["show", spec, "--total", "20", "--at", "0,10"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[1].startswith("# a multiplier rising to 1, not an LR")
    assert out[2].split() == ["step", "multiplier"]
    assert main(["show", spec, "--total", "20", "--at", "0,10", "--json"]) == 0
    points = json.loads(capsys.readouterr().out)["points"]
    assert all(set(p) == {"step", "multiplier"} for p in points)


@pytest.mark.parametrize(
    "spec", ["warmup(10) >> constant(0.1)", "cosine(lr=0.1) * warmup(10)", "warmup(10, lr=0.1)"]
)
def test_show_keeps_lr_for_what_gives_lrs(spec: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["show", spec, "--total", "20", "--at", "0,10"]) == 0
    out = capsys.readouterr().out
    assert "multiplier" not in out and out.splitlines()[1].split() == ["step", "lr"]


def test_plot_labels_a_multiplier(tmp_path: Path) -> None:
    pytest.importorskip("matplotlib")
    from lrkit.plot import plot_schedules, pyplot

    fig = plot_schedules(["warmup(10)", "warmup(10) >> constant(1.0)"], 20, tmp_path / "p.png")
    labels = [t.get_text() for t in fig.axes[0].get_legend().get_texts()]
    pyplot().close(fig)
    assert labels[0].endswith("(a multiplier, not an LR)") and "multiplier" not in labels[1], labels
