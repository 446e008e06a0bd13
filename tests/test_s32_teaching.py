"""The lab and guide as a teaching tool (explorer TEACH, s32).

- The demo's too-small LR (the finder's peak / 300) learned nothing (digits, 4 epochs: training loss
  -0.1%, validation accuracy 0.10, chance) instead of crawling; it is now peak / 30, which visibly crawls.
- The report said "Every finished run learned" beside such a run; it now gives numbers: the run whose
  training loss fell least and the one whose loss fell most (:func:`lrkit.lab.report.loss_change`).
- The note under the summary table always gave "momentum: momentum=0.9" as its example, even in an
  all-AdamW lab; the example now comes from a row of the table.
- ``lrkit find`` printed ``minimum=0.0509`` where the plot and the guide say ``minimum/10``.
"""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

import pytest

from lrkit.lab import report
from lrkit.lab.runner import START_LOSS, LabResult
from lrkit.lab.store import RunRecord
from tests.test_report import make_run

torch = pytest.importorskip("torch")
pytest.importorskip("matplotlib")


# --------------------------------------------------------------------------------------------------
# 1a. the demo's too-small LR crawls
# --------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("peak", [0.0464, 0.3, 2e-3])
def test_the_demo_derives_its_too_small_and_too_large_lrs_from_the_peak(peak: float) -> None:
    from lrkit.demo import demo_strategies

    rows = {label.split(":")[0]: spec for label, spec, _ in demo_strategies(peak)}
    small = float(re.fullmatch(r"constant\((.*)\)", rows["too small"])[1])  # type: ignore[index]
    large = float(re.fullmatch(r"constant\((.*)\)", rows["too large"])[1])  # type: ignore[index]
    assert small == pytest.approx(peak / 30, rel=0.05)  # written with 2 significant digits
    assert large == pytest.approx(peak * 100, rel=0.002)


def test_the_demo_too_small_lr_crawls_in_the_quick_mode_budget() -> None:
    """digits-mlp-sgd at the finder's peak (0.046 as the guide gives it), 4 epochs (``--quick``): the
    too-small run lowers its loss visibly and leaves chance (0.10) behind, yet stays far below the peak's
    run. peak / 300 ended at 0.10 with its loss 0.1% lower."""
    from lrkit.demo import demo_strategies
    from lrkit.lab.runner import Strategy, run_strategy
    from lrkit.tasks import get_task

    n = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        task = get_task("digits-mlp-sgd")
        small, at_peak = demo_strategies(0.046)[1:3]
        assert small[0].startswith("too small") and at_peak[0].endswith("(finder)")
        crawl = run_strategy(task, Strategy(*small), seed=0, epochs=4)
        good = run_strategy(task, Strategy(*at_peak), seed=0, epochs=4)
    finally:
        torch.set_num_threads(n)
    change = report.loss_change(crawl)
    assert change is not None and change < -0.01  # it moved: more than 1% down in 4 epochs
    assert crawl.best_metric is not None and good.best_metric is not None
    assert crawl.best_metric > 0.2  # twice chance (10 classes)
    assert crawl.best_metric < good.best_metric - 0.3  # and still clearly too small


# --------------------------------------------------------------------------------------------------
# 1b. the report's numbers for a run that barely moved
# --------------------------------------------------------------------------------------------------
def _moved(label: str, seed: int, start: float, epoch_losses: list[float], final: float) -> RunRecord:
    run = make_run(label, seed, final, epochs=len(epoch_losses))
    return dataclasses.replace(run, epoch_losses=epoch_losses, config={START_LOSS: start})


def test_loss_change_is_relative_to_the_untrained_models_loss() -> None:
    run = _moved("a", 0, 2.0, [1.9, 1.5], 0.5)
    assert report.loss_change(run) == pytest.approx((1.5 - 2.0) / 2.0)
    assert report.loss_change(_moved("b", 0, 2.0, [2.1, 2.2], 0.1)) == pytest.approx(0.1)
    assert report.loss_change(_moved("c", 0, 0.0, [1.0], 0.1)) is None  # no relative change from 0
    diverged = make_run("d", 0, None, diverge_at=30)
    assert report.loss_change(diverged) is None


def _lab(tmp_path: Path) -> LabResult:
    runs = [_moved("too small", seed, 2.305, [2.3046, 2.3035, 2.3028, 2.3022], 0.10) for seed in (0, 1)] + [
        _moved("good", seed, 2.305, [1.0, 0.4, 0.2, 0.16], 0.95) for seed in (0, 1)
    ]
    return LabResult("toy", 1, runs, str(tmp_path / "lab.db"), metric_name="val_accuracy", epochs=4)


@pytest.mark.parametrize("lang", ["en", "ko"])
def test_the_report_names_the_run_that_barely_moved_with_its_numbers(tmp_path: Path, lang: str) -> None:
    result = _lab(tmp_path)
    assert not any(report.did_not_learn(r) for r in result.runs)  # the definition is unchanged
    text = report.loss_change_text(result, report.messages(lang))
    seed = {"en": "seed", "ko": "시드"}[lang]
    least = f"'too small' ({seed} 0), 2.305 → 2.302"
    assert least in text and "-0.1%" in text
    assert f"'good' ({seed} 0), 2.305 → 0.16" in text and "-93%" in text
    assert text.index(least) < text.index("good")
    assert report.messages(lang).count("epochs", 4) in text
    page = report.render_html(result, lang=lang)
    section = page[page.index(report.messages(lang)("page.stalled")) :]
    assert "−0.1%" in section or "-0.1%" in section
    # the old sentence claimed the runs learned; the new one says only what was measured
    assert "Every finished run learned" not in page and "모두 학습했습니다" not in page
    if lang == "ko":
        assert "끝까지 돈 실행은 모두 마지막 에폭의 학습 손실이" in page


def test_one_run_one_sentence_and_no_seed_when_there_is_one_seed(tmp_path: Path) -> None:
    result = _lab(tmp_path)
    one = dataclasses.replace(result, runs=[result.runs[0]])
    text = report.loss_change_text(one)
    assert text == (
        "Training loss from the untrained model to the last epoch: 'too small', 2.305 → 2.302 (-0.1%) "
        "in 4 epochs."
    )
    diverged = dataclasses.replace(result, runs=[make_run("x", 0, None, diverge_at=9)])
    assert report.loss_change_text(diverged) == ""


@pytest.mark.parametrize("lang", ["en", "ko"])
def test_a_label_with_a_colon_is_quoted_so_the_sentence_keeps_one_colon(tmp_path: Path, lang: str) -> None:
    result = _lab(tmp_path)
    label = {"en": "too small: constant 0.0015", "ko": "너무 작음: constant 0.0015"}[lang]
    runs = [dataclasses.replace(r, label=label) if r.label == "too small" else r for r in result.runs]
    t = report.messages(lang)
    seed = {"en": "seed", "ko": "시드"}[lang]
    text = report.loss_change_text(dataclasses.replace(result, runs=runs), t)
    lead = {"en": "the run whose loss fell least: ", "ko": "가장 적게 줄어든 실행: "}[lang]
    assert f"{lead}'{label}' ({seed} 0), 2.305 → 2.302" in text  # the label's colon is inside the quotes
    one = dataclasses.replace(result, runs=[runs[0]])
    assert f": '{label}', 2.305 → 2.302" in report.loss_change_text(one, t)


def _notes_after_the_table(md: str) -> list[str]:
    """lab.md's paragraphs after the summary table, as a Markdown reader joins them: lines that follow
    each other are one paragraph, a blank line ends it."""
    tail = md[md.rindex("|\n") + 2 :]
    return [" ".join(p.split("\n")) for p in tail.strip().split("\n\n")]


@pytest.mark.parametrize("lang", ["en", "ko"])
def test_each_note_under_the_summary_table_is_a_paragraph_of_its_own(tmp_path: Path, lang: str) -> None:
    result = _lab(tmp_path)
    plateau = {"factor": 0.5, "patience": 2, "mode": "max"}
    runs = [
        dataclasses.replace(r, config={**r.config, "plateau": plateau}) if r.label == "good" else r
        for r in result.runs
    ]
    result = dataclasses.replace(result, runs=runs)
    t = report.messages(lang)
    optimizer_note = report.optimizer_note(report.summarize(result)[0], t)
    plateau_note = report._plateau_note(t)
    md = report.plain_markdown(report.markdown_table(result, lang=lang))
    notes = _notes_after_the_table(md)
    assert len(notes) == 4, notes  # the target, the CI, the optimizer column, the plateau suffix
    assert notes[1].startswith(t("md.ci", cut="")[:12])
    assert notes[2:] == [optimizer_note, plateau_note]
    page = report.render_html(result, lang=lang)
    for note in (optimizer_note, plateau_note):
        assert f'<p class="note">{report._e(note)}</p>' in page  # a paragraph of its own


# --------------------------------------------------------------------------------------------------
# 6. the optimizer note's example comes from the table
# --------------------------------------------------------------------------------------------------
def _with_optimizer(run: RunRecord, optimizer: str, params: dict[str, object]) -> RunRecord:
    return dataclasses.replace(run, optimizer=optimizer, config={**run.config, "optimizer_params": params})


@pytest.mark.parametrize("lang", ["en", "ko"])
def test_the_optimizer_note_takes_its_example_from_a_row(tmp_path: Path, lang: str) -> None:
    result = _lab(tmp_path)
    adamw = dataclasses.replace(
        result,
        runs=[_with_optimizer(r, "adamw", {"weight_decay": 0.05}) for r in result.runs],
    )
    md = report.plain_markdown(report.markdown_table(adamw, lang=lang))
    assert "adamw(weight_decay=0.05)" in md  # the table's cell
    note = md.splitlines()[-1]
    assert "adamw: weight_decay=0.05" in note and "momentum" not in note
    assert "adamw: weight_decay=0.05" in report.render_html(adamw, lang=lang)

    defaults = dataclasses.replace(result, runs=[_with_optimizer(r, "adam", {}) for r in result.runs])
    note = report.plain_markdown(report.markdown_table(defaults, lang=lang)).splitlines()[-1]
    assert note == report.messages(lang)("note.optimizer.plain")
    assert "momentum" not in note and "adam:" not in note


# --------------------------------------------------------------------------------------------------
# 7. the console names the minimum rule as the plot does
# --------------------------------------------------------------------------------------------------
def test_the_console_names_the_minimum_rule_minimum_over_10() -> None:
    from lrkit.finder import range_test

    def bowl(lr: float) -> float:  # minimum near lr = 0.1
        return 2.0 / (1.0 + lr / 1e-3) + 0.1 + 50.0 * max(0.0, lr - 0.1) ** 2

    found = range_test(bowl, num_steps=100)
    value = found.suggestions["minimum"]
    line = next(x for x in str(found).splitlines() if "steepest=" in x)
    assert f"minimum/10={value:.3g}" in line
    assert f"minimum={value:.3g}" not in line
    # the plot's legend says the same
    from lrkit.finder.plot import plot_result

    legend = [t.get_text() for t in plot_result(found).legend_.get_texts()]  # type: ignore[union-attr]
    assert any(text.startswith(f"minimum/10: {value:.3g}") for text in legend)
