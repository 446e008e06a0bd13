"""The legend of ``lrkit auto --plot``'s run panel covers no data: it sits below the axes. With
``loc="best"`` it weighed only the LR line, and lay on the training-loss dots of the second axis."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("matplotlib")
pytestmark = pytest.mark.usefixtures("one_torch_thread")

from .test_auto_plot import _auto_and_train  # noqa: E402  (after the importorskip)


def test_the_run_panels_legend_lies_outside_its_axes_and_inside_the_figure() -> None:
    run, _, _, losses = _auto_and_train("in_run")
    fig = run.plot(losses=losses)
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    FigureCanvasAgg(fig).draw()  # the layout as saved (a Figure made without pyplot has no renderer)
    renderer = fig.canvas.get_renderer()
    _, right, twin = fig.axes
    legend = right.get_legend()
    texts = [t.get_text() for t in legend.get_texts()][-2:]
    assert texts[0] == "training loss" and texts[1].startswith("training loss (EMA ")
    box, axes = legend.get_window_extent(renderer), right.get_window_extent(renderer)
    assert box.y1 <= axes.y0 + 1, (box, axes)  # below the axes: on no curve and no dot of either axis
    assert twin.get_window_extent(renderer).y0 >= box.y1 - 1
    assert box.y0 >= -1 and box.x0 >= -1 and box.x1 <= fig.bbox.x1 + 1, (box, fig.bbox)
