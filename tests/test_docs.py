"""The guide cannot rot: every code block of every page (English and Korean) runs, and both trees match.

Blocks run page by page, in order, in one namespace per page, in a temporary folder:

- ``python`` blocks that start with ``>>>`` run as doctests; other ``python`` blocks are executed;
- ``yaml`` and ``toml`` blocks whose first line is ``# NAME.yaml ...`` (``# NAME.toml``) are written to
  that file and parsed as lrkit experiment files (a later ``lrkit lab NAME.yaml`` uses them);
- ``bash`` blocks: every ``lrkit ...`` command runs through ``lrkit.cli.main`` and must exit 0;
  ``python docs/SCRIPT.py ...`` runs that script; only the commands in ``NOT_RUN`` (installers, ``make``,
  ``mkdocs``) are left alone, each for the reason given there. Any other command fails the test.
- ``text`` blocks are formulas and output, not code.

A block that would take long runs with tiny sizes: an HTML comment right before it,
``<!-- docs-test: "OLD" -> "NEW" -->`` (one or more), replaces OLD by NEW in the block for the test, and
the test fails if OLD is not in the block, so a substitution can never silently stop applying.
"""

from __future__ import annotations

import doctest
import os
import re
import runpy
import shlex
import sys
from collections.abc import Iterator
from contextlib import redirect_stdout
from io import StringIO
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
LANGS = ("en", "ko")

#: commands shown on the pages that the test does not run, and why
NOT_RUN = {
    "pip": "installs packages (the test environment has them)",
    "make": "the Makefile's targets run the whole suite or serve the site",
    "mkdocs": "building the site is its own check (mkdocs build --strict)",
}

FENCE = re.compile(
    r"((?:<!-- docs-test: .*? -->\n)*)^```([a-z]*)[^\n]*\n(.*?)^```\s*$", re.MULTILINE | re.DOTALL
)
SUB = re.compile(r'<!-- docs-test: "(.*?)" -> "(.*?)" -->')


def pages(lang: str) -> list[Path]:
    return sorted((DOCS / lang).rglob("*.md"))


def blocks(page: Path) -> Iterator[tuple[str, str, int]]:
    """(language, code after substitutions, line number) of each fenced block."""
    text = page.read_text(encoding="utf-8")
    for m in FENCE.finditer(text):
        lang, code = m.group(2), m.group(3)
        for old, new in SUB.findall(m.group(1)):
            assert old in code, f"{page}: docs-test substitution {old!r} does not match the block {code!r}"
            code = code.replace(old, new)
        yield lang, code, text.count("\n", 0, m.start(2)) + 1


def test_both_trees_have_the_same_pages() -> None:
    en = {p.relative_to(DOCS / "en") for p in pages("en")}
    ko = {p.relative_to(DOCS / "ko") for p in pages("ko")}
    assert en, "no English pages"
    assert en == ko, f"only in en: {sorted(map(str, en - ko))}; only in ko: {sorted(map(str, ko - en))}"


def test_every_page_is_in_the_nav_and_every_figure_exists() -> None:
    nav = (ROOT / "mkdocs.yml").read_text(encoding="utf-8")
    for p in pages("en"):
        assert str(p.relative_to(DOCS / "en")) in nav, f"{p} is not in mkdocs.yml's nav"
    for lang in LANGS:
        for p in pages(lang):
            for target in re.findall(r"!\[[^\]]*\]\(([^)]+)\)", p.read_text(encoding="utf-8")):
                assert (p.parent / target).resolve().is_file(), f"{p}: missing figure {target}"


def test_korean_pages_are_korean() -> None:
    for p in pages("ko"):
        text = p.read_text(encoding="utf-8")
        hangul = len(re.findall(r"[\uac00-\ud7a3]", text))
        assert hangul > 200, f"{p}: only {hangul} Hangul characters; is it translated?"


COMMENT = re.compile(r"(?:^|\s)#.*$")


def code_blocks(text: str) -> list[tuple[str, str]]:
    """(language, code without comments or blank lines) of each block a reader runs (``text`` is not)."""
    out = []
    for m in FENCE.finditer(text):
        if m.group(2) == "text":
            continue
        lines = (COMMENT.sub("", line).rstrip() for line in m.group(3).splitlines())
        out.append((m.group(2), "\n".join(line for line in lines if line)))
    return out


def test_korean_pages_run_the_english_code() -> None:
    """A Korean page translates its comments only: the same blocks, commands, values and printed output."""
    for en in pages("en"):
        ko = DOCS / "ko" / en.relative_to(DOCS / "en")
        a, b = code_blocks(en.read_text(encoding="utf-8")), code_blocks(ko.read_text(encoding="utf-8"))
        assert len(a) == len(b), f"{ko}: {len(b)} code blocks, {en}: {len(a)}"
        for i, (x, y) in enumerate(zip(a, b), 1):
            assert x == y, f"{ko}: code block {i} differs from {en}'s (comments aside):\n{y[1]}\n---\n{x[1]}"


def test_a_changed_value_in_a_translation_is_caught() -> None:
    en = "```python\n>>> s = f(0.046)  # the finder's\n```\n"
    assert code_blocks(en) == code_blocks(en.replace("the finder's", "탐색기의 값"))
    assert code_blocks(en) != code_blocks(en.replace("0.046", "0.05"))


def test_a_bad_substitution_or_command_is_caught(tmp_path: Path) -> None:
    page = tmp_path / "p.md"
    text = '<!-- docs-test: "epochs=10" -> "epochs=1" -->\n```python\nx = 1\n```\n'
    page.write_text(text, encoding="utf-8")
    with pytest.raises(AssertionError, match="does not match"):
        list(blocks(page))
    with pytest.raises(AssertionError, match="not a command"):
        _run_bash("rm -rf /tmp/nothing-here\n", page, 1)


def _run_doctest(code: str, ns: dict[str, Any], page: Path, line: int) -> None:
    test = doctest.DocTestParser().get_doctest(code, ns, f"{page.name}:{line}", str(page), line)
    out = StringIO()
    runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    runner.run(test, out=out.write)
    assert runner.failures == 0, f"{page}:{line}\n{out.getvalue()}"
    ns.update(test.globs)


def _commands(code: str) -> Iterator[list[str]]:
    for line in code.replace("\\\n", " ").splitlines():
        if line.strip():
            words = shlex.split(line, comments=True)
            if words:
                yield words


def _run_bash(code: str, page: Path, line: int) -> None:
    from lrkit.cli import main

    for words in _commands(code):
        where = f"{page}:{line}: {' '.join(words)}"
        if words[0] == "lrkit":
            out = StringIO()
            with redirect_stdout(out):
                rc = main(words[1:])
            assert rc == 0, f"{where} exited {rc}\n{out.getvalue()}"
        elif words[0] == "python" and words[1].startswith("docs/") and words[1].endswith(".py"):
            argv = sys.argv
            sys.argv = [str(ROOT / words[1]), *words[2:]]
            try:
                with redirect_stdout(StringIO()):
                    runpy.run_path(str(ROOT / words[1]), run_name="__main__")
            except SystemExit as exc:
                assert exc.code in (0, None), f"{where} exited {exc.code}"
            finally:
                sys.argv = argv
        else:
            assert words[0] in NOT_RUN, f"{where}: not a command this test knows how to run"


def _run_experiment_file(code: str, page: Path, line: int) -> None:
    first = code.splitlines()[0]
    m = re.match(r"#\s*(\S+\.(?:ya?ml|toml))\b", first)
    if m is None:
        return
    Path(m.group(1)).write_text(code, encoding="utf-8")
    from lrkit.lab.experiment import load_experiment

    load_experiment(Path(m.group(1)))  # raises on an unknown key or a bad spec


@pytest.mark.parametrize(
    "page",
    [pytest.param(p, id=str(p.relative_to(DOCS))) for lang in LANGS for p in pages(lang)],
)
def test_code_blocks_run(page: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import torch

    torch.set_num_threads(1)
    monkeypatch.setenv("MPLBACKEND", "Agg")
    monkeypatch.setenv("KERAS_BACKEND", "torch")
    monkeypatch.chdir(tmp_path)
    (tmp_path / "docs").symlink_to(DOCS)  # commands name docs/experiments/... and docs/*.py
    ns: dict[str, Any] = {"__name__": "__docs__"}
    found = 0
    for lang, code, line in blocks(page):
        if lang == "python":
            found += 1
            if code.lstrip().startswith(">>>"):
                _run_doctest(code, ns, page, line)
            else:
                with redirect_stdout(StringIO()):
                    exec(compile(code, f"{page}:{line}", "exec"), ns)
        elif lang == "bash":
            found += 1
            _run_bash(code, page, line)
        elif lang in ("yaml", "toml"):
            found += 1
            _run_experiment_file(code, page, line)
        else:
            assert lang in ("text", ""), f"{page}:{line}: a {lang!r} block; it runs python, bash, yaml, toml"
    assert found, f"{page}: no code block ran"
    os.chdir(ROOT)
