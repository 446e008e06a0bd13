"""The validation panel draws the seeds the table's mean is over: its mean and band took in a diverged run's
epochs before it blew up (the table leaves that run out), and that run's spike set the axis for every
curve."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from lrkit.lab import report
from lrkit.lab.runner import LabResult
from tests.test_report import make_run

pytest.importorskip("matplotlib")


def test_the_metric_panel_leaves_out_diverged_runs() -> None:
    ok = [make_run("wc", i, 16.0, higher_is_better=False) for i in range(2)]
    blown = make_run("wc", 2, None, diverge_at=50, higher_is_better=False)  # 2 epochs of 20 steps
    blown = dataclasses.replace(blown, epoch_metrics=[20.0, 140.0], best_metric=20.0)
    result = LabResult("toy", 1, [*ok, blown], ":memory:", "t", "val loss", False, 5)
    fig = report.panel_figure(result, "metric")
    try:
        ax = fig.axes[0]
        (line,) = [ln for ln in ax.get_lines() if ln.get_label().startswith("wc")]
        want = np.mean([r.epoch_metrics for r in ok], axis=0)
        assert np.allclose(line.get_ydata(), want)  # was (7.6 + 7.6 + 140) / 3 at epoch 2
        assert ax.get_ylim()[1] < 100  # the 140 no longer sets the axis
        assert "finished seeds" in ax.get_title()
    finally:
        report._png(fig)  # closes it
