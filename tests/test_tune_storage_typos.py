"""A mistyped database URL is refused, not taken as a file path: ``postgresql:/...`` (a slash lost) used to
tune into a local SQLite file named after the URL, password included, while the user believed the study
was on the shared server. Spaces around a URL and a name the file system refuses are named too."""

from __future__ import annotations

import itertools
from pathlib import Path

import pytest

from lrkit.tune.storage import storage_url

pytest.importorskip("optuna")

URLS = {
    "postgresql": "lrkit:s3cret@127.0.0.1:5432/lrkit_test",
    "postgresql+psycopg2": "lrkit:s3cret@db.example:5432/lrkit",
    "postgres": "u:s3cret@h/db",
    "mysql": "u:s3cret@h/db",
}
BREAKS = [":/", ":", "//"]  # one slash, no slashes, no colon


@pytest.fixture(autouse=True)
def _in_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)


@pytest.mark.parametrize(("scheme", "sep"), list(itertools.product(URLS, BREAKS)))
def test_a_server_url_missing_a_slash_or_colon_is_refused_with_the_fix(
    tmp_path: Path, scheme: str, sep: str
) -> None:
    typo = f"{scheme}{sep}{URLS[scheme]}"
    with pytest.raises(ValueError) as exc:
        storage_url(typo, "--storage")
    msg = str(exc.value)
    assert msg.startswith("--storage: ") and "is not a URL" in msg
    assert "s3cret" not in msg  # the password is never printed
    assert f"did you mean '{scheme}://" in msg
    assert list(tmp_path.iterdir()) == []  # no file or directory named after the URL


@pytest.mark.parametrize("typo", ["sqlite:/x.db", "sqlite:x.db", "sqlite//x.db", "SQLite:/x.db"])
def test_an_sqlite_url_missing_a_slash_is_refused(tmp_path: Path, typo: str) -> None:
    with pytest.raises(ValueError, match=r"did you mean '(?i:sqlite):///x\.db'"):
        storage_url(typo)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("path", ["postgres.db", "sqlite_results.db", "results:v2.db", "runs/postgresql.db"])
def test_file_paths_that_merely_start_like_a_scheme_are_files(tmp_path: Path, path: str) -> None:
    assert storage_url(path) == f"sqlite:///{(tmp_path / path).resolve()}"


@pytest.mark.parametrize(
    "url", [" postgresql://u:s3cret@h/db", "postgresql://u:s3cret@h/db\n", "\tsqlite:///x.db "]
)
def test_spaces_around_a_storage_are_named_with_the_password_hidden(url: str) -> None:
    with pytest.raises(ValueError, match="remove the spaces around it") as exc:
        storage_url(url, "--storage")
    assert "s3cret" not in str(exc.value)


@pytest.mark.parametrize("name", ["a" * 300 + "/x.db", "a" * 300 + ".db"])
def test_a_name_the_file_system_refuses_is_bad_input(name: str) -> None:
    with pytest.raises(ValueError, match=r"^--storage: .* is not a valid path"):
        storage_url(name, "--storage")


def test_the_command_line_refuses_them_before_any_work(capsys: pytest.CaptureFixture[str]) -> None:
    from lrkit.cli import main

    for storage in ["postgresql:/u:s3cret@h/db", " postgresql://u:s3cret@h/db"]:
        code = main(["tune", "--task", "digits-mlp-sgd", "--trials", "1", "--storage", storage])
        err = capsys.readouterr().err
        assert code == 2 and err.startswith("lrkit tune: error: --storage: ") and "s3cret" not in err


@pytest.mark.parametrize(
    "url", ["postgresql:///lrkit:s3cret@127.0.0.1/x", "postgresql:////u:s3cret@h/db", "mysql:///u:s3cret@h"]
)
def test_a_password_in_a_url_that_does_not_parse_is_hidden_too(url: str) -> None:
    from lrkit.tune.storage import mask_url

    assert "s3cret" not in mask_url(url) and ":***@" in mask_url(url)


@pytest.mark.parametrize("name", [" lrkit-x", "lrkit-x ", "\tx"])
def test_a_study_name_with_spaces_around_it_is_refused(name: str) -> None:
    from lrkit.tune.core import check_study_name

    with pytest.raises(ValueError, match=r"^--study: remove the spaces around it, got "):
        check_study_name(name, "--study")
    assert check_study_name("lrkit x", "--study") == "lrkit x"  # inside a name: fine
