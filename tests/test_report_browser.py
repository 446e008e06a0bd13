"""The HTML report in a real browser (Debian's headless Chromium): the figures decode and render, a
``<script>`` label shows as text and runs nothing, and the page takes a screenshot.

Chromium is required, not optional: without it this test fails and says how to install it."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path

import pytest

from lrkit.lab import report
from tests.test_report import MATH_LABEL, PIPE_LABEL, SCRIPT_LABEL, make_result

pytest.importorskip("matplotlib")

FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--window-size=1280,2400",
]


def _chromium() -> str:
    for name in ("chromium", "chromium-browser"):
        path = shutil.which(name)
        if path:
            return path
    pytest.fail(
        "headless Chromium is needed for the report test and was not found: install Debian's chromium "
        "(apt-get install -y chromium; .ci/run does this)"
    )


def _run(args: list[str], tmp: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "HOME": str(tmp)}  # no profile or crash dumps outside tmp
    return subprocess.run(
        [_chromium(), *FLAGS, f"--user-data-dir={tmp / 'profile'}", *args],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
        check=False,
    )


class _Dom(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.scripts = 0
        self.broken = 0
        self.images: list[dict[str, str | None]] = []
        self.body: dict[str, str | None] = {}
        self.text: list[str] = []
        self.title = ""
        self._in_title = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.scripts += tag == "script"
        self.broken += ("class", "broken") in attrs
        self._in_title = tag == "title"
        if tag == "img":
            self.images.append(dict(attrs))
        if tag == "body":
            self.body = dict(attrs)

    def handle_endtag(self, tag: str) -> None:
        self._in_title = False

    def handle_data(self, data: str) -> None:
        self.text.append(data)
        if self._in_title:
            self.title += data


def test_report_renders_in_chromium_and_labels_stay_text(tmp_path: Path) -> None:
    res = make_result(labels=[f"extra strategy {i}" for i in range(9)])  # 14 strategies
    page = report.write_report(res, tmp_path / "out", title="browser test")
    url = page.resolve().as_uri()

    dumped = _run(["--virtual-time-budget=10000", "--dump-dom", url], tmp_path)
    assert dumped.returncode == 0, dumped.stderr[-2000:]
    dom = _Dom()
    dom.feed(dumped.stdout)
    # the injected label would have set the title and added a script element: it did neither
    assert dom.title == "browser test"
    assert dom.scripts == 1
    text = "".join(dom.text)
    for label in (SCRIPT_LABEL, MATH_LABEL, PIPE_LABEL):
        assert label in text
    # our page script ran after load: every figure decoded to a non-empty image
    assert len(dom.images) == 3
    for img in dom.images:
        w, h = int(img["data-natural-width"] or 0), int(img["data-natural-height"] or 0)
        assert w >= 800 and h >= 300, img.get("alt")
    assert dom.body.get("data-figures-rendered") == "3"
    assert dom.broken == 0

    shot = tmp_path / "report.png"
    taken = _run([f"--screenshot={shot}", url], tmp_path)
    assert taken.returncode == 0, taken.stderr[-2000:]
    data = shot.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    assert int.from_bytes(data[16:20], "big") == 1280 and int.from_bytes(data[20:24], "big") == 2400
    # the screenshot is not blank: a blank page compresses to a few kB
    assert len(data) > 50_000
    if os.environ.get("LRKIT_KEEP_SCREENSHOT"):
        shutil.copy(shot, os.environ["LRKIT_KEEP_SCREENSHOT"])


def test_a_broken_figure_is_reported_on_the_page(tmp_path: Path) -> None:
    """The page script is not a test hook that always says 'rendered': a figure that cannot decode
    is counted out and its alt text shown."""
    res = make_result()
    text = report.render_html(res)
    broken, n = re.subn(r"data:image/png;base64,[A-Za-z0-9+/=]+", "data:image/png;base64,AAAA", text, count=1)
    assert n == 1
    page = tmp_path / "broken.html"
    page.write_text(broken, encoding="utf-8")
    dumped = _run(["--virtual-time-budget=10000", "--dump-dom", page.resolve().as_uri()], tmp_path)
    assert dumped.returncode == 0, dumped.stderr[-2000:]
    dom = _Dom()
    dom.feed(dumped.stdout)
    assert dom.body.get("data-figures-rendered") == "2" and dom.broken == 1
    assert "figure failed to render: learning rate per optimizer step" in "".join(dom.text)
