"""A file under a name of the user's (--json result.txt) is lrkit's only when a mark opens it (JSON's first
key, Markdown's comment): a user's notes quoting the report's HTML meta tag are not lrkit's to replace."""

from __future__ import annotations

from pathlib import Path

import pytest

from lrkit._paths import check_replaceable, owned_by_lrkit


def test_a_quoted_mark_inside_a_users_file_is_not_ownership(tmp_path: Path) -> None:
    notes = tmp_path / "notes.txt"
    notes.write_text('the report starts with <meta name="generator" content="lrkit 0.1.0"> and more\n')
    assert not owned_by_lrkit(notes)
    with pytest.raises(ValueError, match="lrkit did not write it"):
        check_replaceable(notes, "--json")


@pytest.mark.parametrize("name", ["result", "out.txt", "r.log"])
def test_lrkit_json_under_any_name_is_lrkits(tmp_path: Path, name: str) -> None:
    f = tmp_path / name
    f.write_text('{"written_by": "lrkit 0.1.0", "suggestion": 0.1}')
    assert owned_by_lrkit(f)


def test_an_html_report_is_still_known_by_its_meta_tag(tmp_path: Path) -> None:
    f = tmp_path / "report.html"
    f.write_text('<!doctype html><html><head><meta name="generator" content="lrkit 0.1.0"></head></html>')
    assert owned_by_lrkit(f)
