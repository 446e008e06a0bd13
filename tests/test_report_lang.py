"""The lab report in Korean (``lang="ko"``, ``--lang ko``): one catalogue per language with the same message
ids and fields; a Korean report holds the same numbers, rows, labels and specs as the English one, and no
English sentence of the catalogue; the CSV files stay English; the figures fall back to English, with a
warning, where no font draws Hangul."""

from __future__ import annotations

import html
import re
import string
import warnings
from html.parser import HTMLParser
from pathlib import Path

import pytest

from lrkit.lab import report
from lrkit.lab._messages import EN, LANGS, MESSAGES, fields
from lrkit.lab.runner import LabResult
from tests.test_report import _store_result, make_result, make_run
from tests.test_report_verdict import _fates

matplotlib = pytest.importorskip("matplotlib")
pytest.importorskip("matplotlib.pyplot")  # closing a figure: a no-op for lrkit's (not pyplot's)
#: on a machine without a Hangul font (CI) every Korean figure warns; the tests of that warning catch it
pytestmark = pytest.mark.filterwarnings("ignore::lrkit.lab.report.MissingFontWarning")

#: English tokens a Korean report keeps: a number's NaN/inf, the parameter diverge_factor, the command
#: ``lrkit lab``, the letters of formulas (``n=1``, ``t(0.975, n-1)``, step ``k``) and the figure's
#: ``x = 발산``
TECHNICAL = {"NaN", "inf", "diverge_factor", "lrkit", "lab", "k", "n", "t", "x"}
_WORD = re.compile(r"[A-Za-z][A-Za-z_]*(?:'[a-z]+)?")
_NUMBER = re.compile(r"-?\d+(?:\.\d+)?(?:e[-+]?\d+)?")


def _literal_words(template: str) -> set[str]:
    """The English words a template writes itself (not its fields), less :data:`TECHNICAL`."""
    literal = " ".join(text for text, _, _, _ in string.Formatter().parse(template))
    return {w for w in _WORD.findall(literal) if w not in TECHNICAL}


#: every English word of the English catalogue (the metric names lrkit shows as they are excluded)
EN_WORDS = set().union(*(_literal_words(v) for k, v in EN.items() if not k.startswith("metric.")))


def _english_in(text: str) -> set[str]:
    """The words of :data:`EN_WORDS` that ``text`` holds as whole words."""
    found = set(_WORD.findall(text))
    return {w for w in EN_WORDS if w in found}


def _results() -> dict[str, LabResult]:
    """Every table and sentence between them: diverged runs, n=1, a cut CI, runs that did not learn, a
    loss to minimise, one finished seed each."""
    one = [make_run("a", 0, 0.9), make_run("b", 0, 0.8)]
    return {
        "main": make_result(),
        "fates": _fates(),
        "lower": make_result(higher_is_better=False),
        "one": LabResult("toy", 2, one, ":memory:", "one", "acc", True, 5),
    }


def _user_text(result: LabResult) -> list[str]:
    """What a report shows as the user wrote it (labels, specs, ...), longest first."""
    words = {result.task, result.name, result.metric_name, result.store_path}
    for r in result.runs:
        words |= {r.label, r.spec, r.optimizer, r.key, report.escape_mathtext(r.label)}
    return sorted(words, key=len, reverse=True)


def _without_user_text(text: str, result: LabResult) -> str:
    for w in _user_text(result):
        text = text.replace(w, " ")
    return text


class _Tables(HTMLParser):
    """A page's tables (rows of cell texts), its visible text (no script or style) and its alt texts."""

    def __init__(self) -> None:
        super().__init__()
        self.tables: list[list[list[str]]] = []
        self.text: list[str] = []
        self.alts: list[str] = []
        self.lang = ""
        self._skip = False
        self._cell: list[str] | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        if tag == "html":
            self.lang = a.get("lang") or ""
        self._skip = tag in ("script", "style")
        if tag == "table":
            self.tables.append([])
        elif tag == "tr":
            self.tables[-1].append([])
        elif tag in ("td", "th"):
            self._cell = []
        elif tag == "img":
            self.alts.append(a.get("alt") or "")

    def handle_endtag(self, tag: str) -> None:
        self._skip = False
        if tag in ("td", "th") and self._cell is not None:
            self.tables[-1][-1].append(" ".join("".join(self._cell).split()))
            self._cell = None

    def handle_data(self, data: str) -> None:
        if self._skip:
            return
        self.text.append(data)
        if self._cell is not None:
            self._cell.append(data)


def _parse(page: str) -> _Tables:
    parsed = _Tables()
    parsed.feed(page)
    return parsed


def _numbers(cell: str) -> list[str]:
    """The numbers in ``cell``, sorted (a language orders them its own way: "1 of 3", "3개 중 1개"); the
    Korean runner-up, 2위 ("second place"), is a word, not a number."""
    return sorted(_NUMBER.findall(cell.replace("2위", "위")))


def _md_rows(md: str) -> list[list[str]]:
    return [re.split(r"(?<!\\)\|", line)[1:-1] for line in md.splitlines() if line.startswith("|")]


# --------------------------------------------------------------------------------------------------
# the catalogue
# --------------------------------------------------------------------------------------------------
def test_every_language_has_every_message_with_the_same_fields() -> None:
    assert LANGS == ("en", "ko")
    for lang, catalogue in MESSAGES.items():
        assert set(catalogue) == set(EN), lang
        for key, template in catalogue.items():
            assert fields(template) == fields(EN[key]), (lang, key)
            # inserted into the page as it is: no markup of its own, and every field a plain name
            assert not re.search(r"[<&]", template), (lang, key)
            assert all(re.fullmatch(r"[a-z_]+", f) for f in fields(template)), (lang, key)
            template.format(**dict.fromkeys(fields(template), "1"))  # formats


def test_no_korean_message_keeps_an_english_word_of_its_english_one() -> None:
    for key, template in MESSAGES["ko"].items():
        if key.startswith("metric."):
            continue
        kept = _literal_words(EN[key]) & _literal_words(template)
        assert not kept, (key, kept)


# --------------------------------------------------------------------------------------------------
# the report, both languages
# --------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", ["main", "fates", "lower", "one"])
def test_english_and_korean_reports_hold_the_same_numbers_rows_labels_and_specs(
    tmp_path: Path, name: str
) -> None:
    result = _results()[name]
    target = 0.45 if name == "lower" else None
    files = {lang: report.write_all(result, tmp_path / lang, target=target, lang=lang) for lang in LANGS}
    pages = {lang: _parse(files[lang][0].read_text(encoding="utf-8")) for lang in LANGS}
    assert (pages["en"].lang, pages["ko"].lang) == ("en", "ko")
    en, ko = pages["en"].tables, pages["ko"].tables
    assert len(en) == len(ko) >= 2
    for table_en, table_ko in zip(en, ko, strict=True):
        assert len(table_en) == len(table_ko)
        for i, (row_en, row_ko) in enumerate(zip(table_en, table_ko, strict=True)):
            assert len(row_en) == len(row_ko)
            if i:  # a row of runs: the same label (and spec) first, in the same order
                assert row_en[0] == row_ko[0]
            assert [_numbers(c) for c in row_en] == [_numbers(c) for c in row_ko], (row_en, row_ko)
    # lab.md: the same table, cell by cell (labels as they are, numbers the same)
    md = {lang: files[lang][3].read_text(encoding="utf-8") for lang in LANGS}
    rows_en, rows_ko = _md_rows(md["en"]), _md_rows(md["ko"])
    assert len(rows_en) == len(rows_ko) == len(report.summarize(result)[0]) + 2
    for row_en, row_ko in zip(rows_en[2:], rows_ko[2:], strict=True):
        assert row_en[0] == row_ko[0] and row_en[1] == row_ko[1]  # label, optimizer
        assert [_numbers(c) for c in row_en] == [_numbers(c) for c in row_ko]
    # the verdicts and the whole page say the same numbers
    verdicts = {
        lang: report.verdict(result, report.summarize(result, target)[0], lang=lang) for lang in LANGS
    }
    assert _numbers(verdicts["en"]) == _numbers(verdicts["ko"])
    # the CSV files are for programs: English, and the same bytes
    for i in (1, 2):
        assert files["en"][i].read_bytes() == files["ko"][i].read_bytes()


@pytest.mark.parametrize("name", ["main", "fates", "lower", "one"])
def test_a_korean_report_holds_no_english_sentence(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, name: str
) -> None:
    result = _results()[name]
    monkeypatch.setattr(report, "_hangul_font", lambda: "DejaVu Sans")  # the figure's words, any machine
    target = 0.45 if name == "lower" else None
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", "Glyph .* missing", UserWarning)
        paths = report.write_all(result, tmp_path, target=target, note=None, lang="ko")
        fig = report.lab_figure(result, lang="ko")
    page = paths[0].read_text(encoding="utf-8")
    parsed = _parse(page)
    texts = {
        "page": " ".join(parsed.text),
        "alt": " ".join(parsed.alts),
        "lab.md": report.plain_markdown(paths[3].read_text(encoding="utf-8")),
        "figure": " ".join(t.get_text() for t in fig.findobj(matplotlib.text.Text)),
    }
    matplotlib.pyplot.close(fig)
    for where, text in texts.items():
        assert re.search("[가-힣]", text), where
        english = _english_in(_without_user_text(text, result))
        assert not english, (where, sorted(english))
    assert EN["page.figure_failed"] not in page  # the script's message, too


def test_the_default_is_english_and_a_language_is_checked_before_anything_is_written(tmp_path: Path) -> None:
    result = make_result()
    assert report.render_html(result) == report.render_html(result, lang="en")
    assert '<html lang="en">' in report.render_html(result)
    calls = (
        lambda lang: report.write_all(result, tmp_path / "out", lang=lang),
        lambda lang: report.markdown_table(result, lang=lang),
        lambda lang: report.verdict(result, [], lang=lang),
        lambda lang: report.report_from_db(tmp_path / "none.db", tmp_path / "out", lang=lang),
    )
    for bad in ("xx", "EN", None, 1):
        for call in calls:
            if bad is None and call is calls[-1]:
                continue  # report_from_db: None is the language the lab kept (tests/test_report_kept_lang.py)
            with pytest.raises(
                ValueError, match=rf"^lang: expected one of 'en', 'ko', got {re.escape(repr(bad))}$"
            ):
                call(bad)
    assert not (tmp_path / "out").exists()


def test_a_report_from_the_database_says_in_korean_which_runs_are_missing(tmp_path: Path) -> None:
    res = make_result()
    _store_result(tmp_path / "lab" / "lab.db", res, unfinished=2)
    paths = report.report_from_db(tmp_path / "lab", tmp_path / "out", lang="ko")
    md = paths[3].read_text(encoding="utf-8")
    assert f"**실행 {len(res.runs) + 2}개 중 2개가 끝나지 않았습니다" in md
    assert "not finished" not in paths[0].read_text(encoding="utf-8")


# --------------------------------------------------------------------------------------------------
# the figures' font
# --------------------------------------------------------------------------------------------------
def test_without_a_hangul_font_the_figures_fall_back_to_english_with_a_warning(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(report, "_hangul_font", lambda: None)
    result = make_result()
    with pytest.warns(report.MissingFontWarning, match=r"lang='ko': .*no font with Hangul.*fonts-nanum"):
        paths = report.write_all(result, tmp_path, lang="ko")
    with pytest.warns(report.MissingFontWarning):
        fig = report.lab_figure(result, lang="ko")
    words = [t.get_text() for t in fig.findobj(matplotlib.text.Text)]
    matplotlib.pyplot.close(fig)
    assert "learning rate (mean over seeds)" in words and "optimizer step" in words
    assert report._default_title(result) in words  # the English title, not boxes for Hangul
    assert not any(re.search("[가-힣]", w) for w in words)
    page = paths[0].read_text(encoding="utf-8")
    assert '<html lang="ko">' in page and "<h2>요약</h2>" in page  # the page stays Korean
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # English needs no font: no warning
        matplotlib.pyplot.close(report.lab_figure(result))


def test_the_command_line_says_why_the_figures_are_english(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from lrkit.cli import main

    monkeypatch.setattr(report, "_hangul_font", lambda: None)
    _store_result(tmp_path / "lab" / "lab.db", make_result())
    with warnings.catch_warnings():
        warnings.simplefilter("always")  # shown each time, not once per process
        assert main(["report", str(tmp_path / "lab"), "--lang", "ko"]) == 0
    err = capsys.readouterr().err
    assert "lrkit report: warning: lang='ko': matplotlib finds no font with Hangul" in err
    assert "apt install fonts-nanum" in err


def test_the_font_lookup_wants_hangul_glyphs_not_a_box_for_every_character(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """matplotlib's Last Resort font maps every Hangul syllable to one box: not a font with Hangul."""
    from matplotlib import font_manager

    fonts = font_manager.fontManager.ttflist
    no_hangul = [f for f in fonts if f.name in ("Last Resort High-Efficiency", "DejaVu Sans")]
    if not any(f.name.startswith("Last Resort") for f in no_hangul):
        pytest.skip("this matplotlib ships no Last Resort font")
    monkeypatch.setattr(font_manager.fontManager, "ttflist", no_hangul)
    assert report._hangul_font.__wrapped__() is None
    nanum = [f for f in fonts if f.name == "NanumGothic"]
    if nanum:  # Debian's fonts-nanum
        monkeypatch.setattr(font_manager.fontManager, "ttflist", no_hangul + nanum)
        assert report._hangul_font.__wrapped__() == "NanumGothic"


def test_a_korean_figure_draws_every_glyph_with_the_installed_font(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Hangul from the Hangul font, the rest from matplotlib's: NanumGothic first would lose the minus sign
    of a log axis's 10^-1 (U+2212; matplotlib logs the dummy symbol it draws instead)."""
    if report._hangul_font() is None:
        pytest.skip("no font with Hangul installed (Debian: fonts-nanum)")
    with warnings.catch_warnings(record=True) as caught, caplog.at_level("WARNING", logger="matplotlib"):
        warnings.simplefilter("always")
        report.plot_lab(_fates(), tmp_path / "lab.png", lang="ko")
        report.plot_lab(make_result(), tmp_path / "lab2.png", lang="ko")  # log axes: 10^-1, a minus sign
    problems = [str(w.message) for w in caught] + [r.getMessage() for r in caplog.records]
    assert not problems, problems


# --------------------------------------------------------------------------------------------------
# the command line
# --------------------------------------------------------------------------------------------------
def test_lrkit_report_lang_ko(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from lrkit.cli import main

    res = make_result()
    _store_result(tmp_path / "lab" / "lab.db", res, unfinished=1)
    assert main(["report", str(tmp_path / "lab"), "--lang", "ko", "--out", str(tmp_path / "ko")]) == 0
    assert main(["report", str(tmp_path / "lab"), "--out", str(tmp_path / "en")]) == 0
    out = capsys.readouterr().out
    assert "최고: cosine, 최종 검증 정확도 0.92 (95% 신뢰구간 0.8703~0.9697)." in out  # the table, printed
    assert "| 전략 | 옵티마이저 |" in out and "12개 중 1개가 끝나지 않았습니다" in out
    page = (tmp_path / "ko" / "report.html").read_text(encoding="utf-8")
    assert '<html lang="ko">' in page and "최고: <b>cosine</b>" in page
    en = (tmp_path / "en" / "report.html").read_text(encoding="utf-8")
    assert '<html lang="en">' in en and "Best: <b>cosine</b>" in en
    for name in ("runs.csv", "epochs.csv"):
        assert (tmp_path / "ko" / name).read_bytes() == (tmp_path / "en" / name).read_bytes()


@pytest.mark.usefixtures("one_torch_thread")
def test_lrkit_lab_lang_ko(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    pytest.importorskip("torch")
    from lrkit.cli import main
    from lrkit.lab import cli as lab_cli

    out = tmp_path / "o"
    argv = ["lab", "--strategy", "c=constant(0.05)", "--epochs", "1", "--workers", "1", "--out", str(out)]

    def broken(*args: object, **kwargs: object) -> list[Path]:
        raise OSError("disk full")

    monkeypatch.setattr(lab_cli, "write_outputs", broken)
    assert main([*argv, "--lang", "ko"]) == 1  # the hint to re-make the report keeps the language
    assert f"lrkit report {out / 'lab.db'} --out DIR --lang ko" in capsys.readouterr().err
    monkeypatch.undo()
    assert main([*argv, "--lang", "ko"]) == 0  # the run is in the database: only the report is written
    printed = capsys.readouterr().out
    assert "최고: c, 최종 검증 정확도 " in printed and "| 전략 |" in printed
    page = (out / "report.html").read_text(encoding="utf-8")
    title = html.escape("lrkit lab 'lab': digits-mlp-sgd에서 전략 1개, 시드 1개, 1 에폭")
    assert '<html lang="ko">' in page and f"<h1>{title}</h1>" in page
    assert (out / "runs.csv").read_text(encoding="utf-8").startswith(",".join(report.RUNS_COLUMNS))


@pytest.mark.parametrize("command", [["report", "x"], ["lab"], ["tune", "--task", "t", "--trials", "1"]])
def test_an_unknown_language_is_refused_naming_the_flag_the_value_and_the_choices(
    capsys: pytest.CaptureFixture[str], command: list[str]
) -> None:
    from lrkit.cli import main

    if command[0] == "tune":
        pytest.importorskip("optuna")
    exc = main([*command, "--lang", "xx"])
    assert exc == 2
    err = capsys.readouterr().err
    assert f"lrkit {command[0]}: error: --lang: invalid choice: 'xx' (choose from 'en', 'ko')" in err


def test_the_demo_checks_its_language_first(tmp_path: Path) -> None:
    from lrkit.demo import run_demo

    with pytest.raises(ValueError, match=r"--lang: expected one of 'en', 'ko', got 'xx'"):
        run_demo(tmp_path / "demo", lang="xx")
    assert not (tmp_path / "demo").exists()


def test_lrkit_demo_passes_lang_to_the_demo(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import lrkit.demo
    from lrkit.cli import main

    seen: dict[str, object] = {}

    def run_demo(out: Path, **kwargs: object) -> int:
        seen.update(kwargs, out=out)
        return 0

    monkeypatch.setattr(lrkit.demo, "run_demo", run_demo)
    assert main(["demo", "--out", str(tmp_path / "d"), "--lang", "ko", "--quick"]) == 0
    assert seen["lang"] == "ko" and seen["quick"] is True
    assert main(["demo", "--out", str(tmp_path / "e")]) == 0 and seen["lang"] == "en"
