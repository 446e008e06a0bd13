"""The report's titles and notes lrkit composes (``lrkit tune``'s, the demo's) come from the catalogue, so a
Korean report says them in Korean; and the report's language is kept with the experiment: ``lrkit report``
without ``--lang`` re-makes a lab's report in the language the lab wrote it in (English for a database
from before), and with ``--lang`` says the kept title and note in that language."""

from __future__ import annotations

import html
import re
import sqlite3
import warnings
from pathlib import Path
from typing import Any

import pytest

from lrkit.lab import report
from lrkit.lab._messages import messages
from lrkit.lab.store import ResultStore
from tests.test_report import _store_result, make_result
from tests.test_report_lang import _english_in, _parse, _without_user_text

matplotlib = pytest.importorskip("matplotlib")
pytestmark = pytest.mark.filterwarnings("ignore::lrkit.lab.report.MissingFontWarning")


def _korean_without_english(text: str, result: Any, *shown_as_is: str) -> None:
    """``text`` is Korean and holds no English word of the catalogue, less the user's text (labels, specs,
    ...) and ``shown_as_is`` (values lrkit shows as they are: a study's name, a duration)."""
    assert re.search("[가-힣]", text)
    for value in shown_as_is:
        text = text.replace(value, " ")
    english = _english_in(_without_user_text(text, result))
    assert not english, sorted(english)


# --------------------------------------------------------------------------------------------------
# lrkit tune --lang ko
# --------------------------------------------------------------------------------------------------
TUNE = [
    "tune",
    "--task",
    "tiny_tune_task:tiny",
    "--epochs",
    "2",
    "--lr-range",
    "0.01",
    "0.3",
    "--trials",
    "10",
]
TUNE += ["--timeout", "0.5m", "--no-finder", "--report-seeds", "1"]


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch, one_torch_thread: None) -> Any:
    """tests/test_tune_timeout.py's fake clock: 10 s an epoch, so a 30 s budget stops the search after 2
    trials."""
    pytest.importorskip("optuna")
    from tests import test_tune_timeout

    return test_tune_timeout.clock.__wrapped__(monkeypatch, None)  # type: ignore[attr-defined]


@pytest.mark.usefixtures("tiny_task")
def test_a_korean_tune_report_says_its_title_and_notes_in_korean_and_lrkit_report_keeps_them(
    tmp_path: Path, clock: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    from lrkit.cli import main

    out = tmp_path / "out"
    assert main([*TUNE, "--storage", str(tmp_path / "s.db"), "--out", str(out), "--lang", "ko"]) == 0
    capsys.readouterr()
    result, _ = report.load_result(out)
    study = re.search(r"^tune (.*)$", result.name).group(1)  # type: ignore[union-attr]
    budget = "--timeout 0.5m = 30 s"
    title = f"튜닝한 스케줄({study}) 대 같은 최대 학습률의 레시피"
    stopped = f"탐색은 시간 예산({budget})에 닿아 멈췄습니다: 요청한 시도 10개 중 2개가 끝났고"
    held_out = "보고서의 시드(1)는 튜닝에서 떼어 둔 시드입니다: 모든 시도는 시드 0 하나로 학습했으므로"
    page = (out / "report.html").read_text(encoding="utf-8")
    md = report.plain_markdown((out / "lab.md").read_text(encoding="utf-8"))
    assert f"<h1>{html.escape(title)}</h1>" in page
    assert stopped in md and held_out in md and md.index(stopped) < md.index(held_out)
    _korean_without_english(" ".join(_parse(page).text), result, study, budget)
    _korean_without_english(md, result, study, budget)

    # lrkit report, no --lang: the language the lab wrote it in; --lang en: the same title and notes, English
    assert main(["report", str(out), "--out", str(tmp_path / "again")]) == 0
    again = (tmp_path / "again" / "report.html").read_text(encoding="utf-8")
    assert again == page
    assert main(["report", str(out), "--out", str(tmp_path / "en"), "--lang", "en"]) == 0
    en = report.plain_markdown((tmp_path / "en" / "lab.md").read_text(encoding="utf-8"))
    en_page = (tmp_path / "en" / "report.html").read_text(encoding="utf-8")
    assert f"<h1>{html.escape(f'tuned ({study}) vs recipes at its peak LR')}</h1>" in en_page
    assert (
        f"**The search stopped at its time budget ({budget}) with 2 of the 10 trials asked for; the tuned "
        "schedule is the best of those. The report's seeds 1, held out: every trial trained on seed 0, so "
        "the tuned schedule is judged on seeds it was not chosen on (there, trial " in en
    )
    # the strategies' labels are the lab's data, named in the language tune ran in (lrkit.tune.cli.LABELS_KO)
    for label in {r.label for r in result.runs}:
        assert re.search("[가-힣]", label), label
        en = en.replace(label, "")
    assert not re.search("[가-힣]", en)


# --------------------------------------------------------------------------------------------------
# lrkit demo --lang ko
# --------------------------------------------------------------------------------------------------
def test_the_demos_title_is_a_phrase_said_in_the_reports_language(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The demo's lab (15 strategies) is left out: its title, as the demo hands it to the lab, is what is
    checked, said in either language."""
    pytest.importorskip("torch")
    import lrkit.lab.cli
    from lrkit.demo import demo_strategies, run_demo

    seen: dict[str, Any] = {}

    def run_and_report(exp: Any, out: Path, db: Path, **kwargs: Any) -> int:
        seen.update(kwargs)
        return 0

    monkeypatch.setattr(lrkit.lab.cli, "run_and_report", run_and_report)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert run_demo(tmp_path / "demo", quick=True, workers=1, lang="ko") == 0
    n = len(demo_strategies(0.1))
    title = seen["title"]
    assert seen["lang"] == "ko"

    def say(lang: str) -> str:
        return title if isinstance(title, str) else messages(lang).say(title)

    assert say("ko") == f"lrkit 데모: digits-mlp-sgd에서 전략 {n}개, 각각 시드 1개"
    assert say("en") == f"lrkit demo: {n} strategies on digits-mlp-sgd, 1 seed each"  # as before


# --------------------------------------------------------------------------------------------------
# the language kept with the experiment
# --------------------------------------------------------------------------------------------------
def _kept(db: Path, lang: str, title: Any = None, note: Any = None) -> None:
    """What :func:`lrkit.lab.cli.run_and_report` keeps: the title and note as written in ``lang``, and
    their phrases."""
    from lrkit.lab._messages import dump_phrases

    t = messages(lang)
    with ResultStore(db) as store:
        store.set_report_text(
            1,
            t.text(title),
            t.text(note),
            lang=lang,
            title_phrases=None if title is None or isinstance(title, str) else dump_phrases([title]),
            note_phrases=None if note is None or isinstance(note, str) else dump_phrases([note]),
        )


@pytest.mark.usefixtures("one_torch_thread")
def test_lrkit_report_without_lang_makes_the_report_in_the_labs_language(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    pytest.importorskip("torch")
    from lrkit.cli import main

    out = tmp_path / "o"
    argv = ["lab", "--strategy", "c=constant(0.05)", "--epochs", "1", "--workers", "1", "--out", str(out)]
    assert main([*argv, "--lang", "ko"]) == 0
    page = (out / "report.html").read_text(encoding="utf-8")
    capsys.readouterr()
    assert main(["report", str(out), "--out", str(tmp_path / "again")]) == 0  # no --lang
    printed = capsys.readouterr().out
    assert (tmp_path / "again" / "report.html").read_text(encoding="utf-8") == page  # the same report
    assert "| 전략 | 옵티마이저 |" in printed and "최고: c, 최종 검증 정확도 " in printed
    assert main(["report", str(out), "--lang", "en", "--out", str(tmp_path / "en")]) == 0
    assert '<html lang="en">' in (tmp_path / "en" / "report.html").read_text(encoding="utf-8")  # --lang wins
    api = report.report_from_db(out, tmp_path / "api")[0].read_text(encoding="utf-8")  # lang=None
    assert api == page


def test_a_database_from_before_the_language_was_kept_makes_the_report_in_english(tmp_path: Path) -> None:
    """A report_texts table without the language (an lrkit of earlier today kept the title and note
    only): English, the kept title and note as written; the next lab writing it adds the columns."""
    db = tmp_path / "lab.db"
    _store_result(db, make_result())
    con = sqlite3.connect(db)
    con.execute("DROP TABLE report_texts")
    con.execute("CREATE TABLE report_texts (experiment_id INTEGER PRIMARY KEY, title TEXT, note TEXT)")
    con.execute("INSERT INTO report_texts VALUES (1, 'tuned (s) vs finder and recipes', 'Held out.')")
    con.commit()
    con.close()
    from lrkit.lab._messages import Phrase

    for lang in (None, "ko"):
        page = report.report_from_db(db, tmp_path / str(lang), lang=lang)[0].read_text(encoding="utf-8")
        assert f'<html lang="{lang or "en"}">' in page
        assert "<h1>tuned (s) vs finder and recipes</h1>" in page and "<b>Held out.</b>" in page  # as written
    _kept(db, "ko", Phrase("tune.title.finder", {"study": "s"}))  # a lab of this lrkit writes it again
    page = report.report_from_db(db, tmp_path / "new", lang="en")[0].read_text(encoding="utf-8")
    assert "<h1>tuned (s) vs finder and recipes</h1>" in page and "Held out." not in page
    with ResultStore.open_readonly(db) as store:
        assert store.report_texts(1).lang == "ko"


def test_a_title_of_your_own_is_shown_as_written_and_phrases_this_lrkit_cannot_say_too(
    tmp_path: Path,
) -> None:
    from lrkit.lab._messages import Phrase

    db = tmp_path / "lab.db"
    _store_result(db, make_result())
    _kept(
        db,
        "ko",
        "제목",
        Phrase("tune.held_out", {"seeds": "1", "train_seed": 0, "trial": 3, "m": "acc", "value": "0.9"}),
    )
    with ResultStore(db) as store:  # a message id a newer lrkit wrote
        kept = store.report_texts(1)
        store.set_report_text(
            1, kept.title, "새 안내문", lang="ko", note_phrases='[{"id": "tune.newer", "fields": {}}]'
        )
    page = report.report_from_db(db, tmp_path / "en", lang="en")[0].read_text(encoding="utf-8")
    assert "<h1>제목</h1>" in page and "<b>새 안내문</b>" in page and '<html lang="en">' in page


def test_phrases_round_trip_through_json_and_are_said_in_every_language() -> None:
    from lrkit.lab._messages import EN, KO, Phrase, dump_phrases, load_phrases

    note = [
        Phrase("tune.stopped", {"budget": "--timeout 1h = 1 h", "finished": 5, "trials": 50}),
        Phrase("demo.title", {"strategies": Phrase.count("strategies", 1), "task": "t", "seeds": 2}),
    ]
    assert load_phrases(dump_phrases(note)) == tuple(note)
    assert messages("en").say(note).endswith("lrkit demo: 1 strategy on t, 2 each")
    assert messages("ko").say(note).endswith("lrkit 데모: t에서 전략 1개, 각각 2")
    for bad in (
        '{"id": "title"}',
        '[{"id": "title"}]',
        '[{"id": "nope", "fields": {}}]',
        '[{"id": "t", "fields": {"a": true}}]',
    ):
        with pytest.raises(ValueError):
            load_phrases(bad)
    assert set(KO) == set(EN)


def test_a_lab_killed_before_its_report_keeps_its_language(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """The language (and title, note) is kept when the experiment is made, before any run: a lab killed
    mid-way (here: Ctrl-C in its second run) is re-made by ``lrkit report`` in its language (it was
    English: the language was kept only after the last run)."""
    pytest.importorskip("torch")
    import lrkit.lab.runner
    from lrkit.cli import main

    real = lrkit.lab.runner.run_strategy
    calls: list[int] = []

    def interrupted(*args: Any, **kwargs: Any) -> Any:
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    monkeypatch.setattr(lrkit.lab.runner, "run_strategy", interrupted)
    out = tmp_path / "o"
    argv = ["lab", "--strategy", "c=constant(0.05)", "--strategy", "d=constant(0.02)", "--epochs", "1"]
    assert main([*argv, "--workers", "1", "--out", str(out), "--lang", "ko"]) == 130  # Ctrl-C's status
    assert not (out / "report.html").exists()
    capsys.readouterr()
    assert main(["report", str(out), "--out", str(tmp_path / "again")]) == 0  # no --lang
    page = (tmp_path / "again" / "report.html").read_text(encoding="utf-8")
    assert '<html lang="ko">' in page and "끝난 실행 없음" in page  # d: no finished run
