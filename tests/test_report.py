"""The lab's report, from hand-made results (no training): the table's mean/sd/CI against numpy and
scipy, the target rule, escaping of user labels (HTML, Markdown, mathtext), legends outside the axes,
the CSV round trip, the n=1 wording, and re-making a report from a database without writing to it."""

from __future__ import annotations

import csv
import hashlib
import math
import os
import re
import stat
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lrkit._terminal import printable
from lrkit.lab import report
from lrkit.lab.runner import LabResult
from lrkit.lab.store import ResultStore, RunRecord, run_key

matplotlib = pytest.importorskip("matplotlib")
pytest.importorskip("matplotlib.pyplot")  # closing a figure: a no-op for lrkit's (not pyplot's)
scipy_stats = pytest.importorskip("scipy.stats")

SCRIPT_LABEL = "<script>document.title='pwned'</script>"
MATH_LABEL = r"$\frac{$"
PIPE_LABEL = "a|b <i>x</i> & *y*"
NASTY = [SCRIPT_LABEL, MATH_LABEL, PIPE_LABEL]


def make_run(
    label: str,
    seed: int,
    final: float | None,
    *,
    epochs: int = 5,
    spe: int = 20,
    diverge_at: int | None = None,
    lr: float = 0.1,
    higher_is_better: bool = True,
) -> RunRecord:
    """A synthetic run: a cosine LR, a decaying noisy loss, a metric rising (or falling) linearly to
    ``final`` over the epochs; a diverged run stops at step ``diverge_at`` with an inf loss."""
    rng = np.random.default_rng(seed + 17 * len(label))
    total = epochs * spe
    steps = total if diverge_at is None else diverge_at
    t = np.arange(steps + (diverge_at is not None))
    lrs = (0.5 * lr * (1 + np.cos(np.pi * t / total))).tolist()
    losses = (2.0 * np.exp(-t / 40) + 0.05 + 0.02 * rng.random(len(t))).tolist()
    if diverge_at is not None:
        losses[-1] = math.inf
    done = epochs if diverge_at is None else diverge_at // spe
    end = final if final is not None else (0.6 if higher_is_better else 0.4)
    start = 0.1 if higher_is_better else 2.0
    metrics = [start + (end - start) * (e + 1) / epochs for e in range(done)]
    if diverge_at is None:
        metrics[-1] = end
    best = (max(metrics) if higher_is_better else min(metrics)) if metrics else None
    return RunRecord(
        key=run_key({"label": label, "seed": seed}),
        spec=f"cosine(lr={lr})",
        optimizer="sgd",
        seed=seed,
        status="ok" if diverge_at is None else "diverged",
        final_metric=final if diverge_at is None else None,
        best_metric=best,
        diverged_step=diverge_at,
        steps=steps,
        seconds=0.5 * done + 0.01 * seed,
        lrs=lrs,
        losses=losses,
        epoch_metrics=metrics,
        epoch_losses=[float(np.mean(losses[e * spe : (e + 1) * spe])) for e in range(done)],
        epoch_seconds=[0.5 * (e + 1) + 0.01 * seed for e in range(done)],
        label=label,
    )


def make_result(labels: list[str] | None = None, higher_is_better: bool = True) -> LabResult:
    """cosine (3 seeds), the <script> label (3 seeds, seed 2 diverged at step 37), $\\frac{$ (1 seed),
    the pipe label (2 seeds), 'too large' (2 seeds, both diverged), and any extra ``labels``."""
    h = higher_is_better
    finals = {
        "cosine": [0.90, 0.92, 0.94] if h else [0.30, 0.32, 0.34],
        SCRIPT_LABEL: [0.80, 0.84, None] if h else [0.50, 0.54, None],
        MATH_LABEL: [0.70] if h else [0.60],
        PIPE_LABEL: [0.85, 0.86] if h else [0.40, 0.41],
        "too large": [None, None],
    }
    runs = []
    for label, values in finals.items():
        for seed, f in enumerate(values):
            div = None if f is not None else (37 if label == SCRIPT_LABEL else 5 + seed)
            runs.append(
                make_run(label, seed, f, diverge_at=div, lr=1.0 if f is None else 0.1, higher_is_better=h)
            )
    for i, label in enumerate(labels or []):
        runs.append(make_run(label, 0, 0.5 + 0.01 * i, higher_is_better=h))
    metric = "val accuracy" if h else "val loss"
    return LabResult("toy-task", 1, runs, ":memory:", "test", metric, h, 5)


# --------------------------------------------------------------------------------------------------
# statistics
# --------------------------------------------------------------------------------------------------
@settings(max_examples=200, deadline=None)
@given(st.integers(1, 400), st.floats(0.5, 0.9999))
def test_t_quantile_matches_scipy(df: int, p: float) -> None:
    assert report.t_quantile(p, df) == pytest.approx(float(scipy_stats.t.ppf(p, df)), rel=1e-9, abs=1e-9)


def test_t_quantile_rejects_bad_input() -> None:
    for df in (0, -1, 1.5, True):
        with pytest.raises(ValueError, match="df"):
            report.t_quantile(0.975, df)  # type: ignore[arg-type]
    for p in (0.2, 1.0, math.nan):
        with pytest.raises(ValueError, match="p: expected"):
            report.t_quantile(p, 3)


def test_table_numbers_against_hand_computed_values() -> None:
    rows, target = report.summarize(make_result())
    by = {s.label: s for s in rows}
    cos = by["cosine"]
    # finals 0.90, 0.92, 0.94: mean 0.92, sample sd 0.02, t(0.975, 2) = 4.302652729911275
    assert cos.n == 3 and cos.mean == pytest.approx(0.92) and cos.std == pytest.approx(0.02)
    half = 4.302652729911275 * 0.02 / math.sqrt(3)
    assert cos.ci == pytest.approx((0.92 - half, 0.92 + half))
    s = by[SCRIPT_LABEL]  # one of three diverged: stats over the two finished, the divergence listed
    assert (s.n, s.runs, s.diverged) == (2, 3, ((2, 37),))
    assert s.mean == pytest.approx(0.82) and s.std == pytest.approx(math.sqrt(2) * 0.02)
    half = 12.706204736174698 * s.std / math.sqrt(2)  # 0.3594: past 1, cut at accuracy's range
    assert s.ci == pytest.approx((0.82 - half, 1.0))
    m = by[MATH_LABEL]
    assert (m.n, m.mean, m.std, m.ci) == (1, 0.70, None, None)
    big = by["too large"]
    assert (big.n, big.mean, big.reached) == (0, None, 0) and len(big.diverged) == 2
    # order: fewest seeds lost first, then best mean (the <script> label lost a seed: after the 0.70 of
    # $\\frac{$, which lost none), the all-diverged strategy last
    assert [r.label for r in rows] == ["cosine", PIPE_LABEL, MATH_LABEL, SCRIPT_LABEL, "too large"]
    # default target: 1% below the best mean (0.92); cosine's metric rises linearly 0.1 -> final over
    # 5 epochs: seed 0 (final 0.90) never reaches 0.9108, seeds 1 (0.92) and 2 (0.94) do at epoch 5
    assert target == pytest.approx(0.92 - 0.0092)
    assert (cos.reached, cos.epochs_to) == (2, 5.0)
    assert cos.seconds_to == pytest.approx(np.mean([2.5 + 0.01, 2.5 + 0.02]))


@settings(max_examples=60, deadline=None)
@given(
    st.lists(st.floats(-1e3, 1e3, allow_nan=False), min_size=1, max_size=12),
    st.booleans(),
    st.floats(-1e3, 1e3, allow_nan=False),
)
def test_summary_matches_numpy_and_scipy_for_any_finals(finals: list[float], h: bool, target: float) -> None:
    runs = [
        RunRecord(
            f"k{i}",
            "constant(lr=0.1)",
            "sgd",
            i,
            "ok",
            f,
            f,
            None,
            3,
            1.0 + i,
            epoch_metrics=[f],
            epoch_seconds=[1.0 + i],
            label="s",
        )
        for i, f in enumerate(finals)
    ]
    res = LabResult("t", 1, runs, ":memory:", "x", "m", h, 1)
    (s,), tgt = report.summarize(res, target)
    assert tgt == target and s.n == len(finals)
    assert s.mean == pytest.approx(np.mean(finals), abs=1e-9)
    reached = [f for f in finals if (f >= target if h else f <= target)]
    assert s.reached == len(reached)
    if len(finals) == 1:
        assert s.std is None and s.ci is None and report._cells(s)["sd"] == "n=1"
    else:
        sd = float(np.std(finals, ddof=1))
        assert s.std == pytest.approx(sd, abs=1e-9)
        half = float(scipy_stats.t.ppf(0.975, len(finals) - 1)) * sd / math.sqrt(len(finals))
        assert s.ci == pytest.approx((np.mean(finals) - half, np.mean(finals) + half), abs=1e-7)


def test_lower_is_better_target_and_order() -> None:
    rows, target = report.summarize(make_result(higher_is_better=False))
    assert rows[0].label == "cosine" and rows[-1].label == "too large"
    assert target == pytest.approx(0.32 * 1.01)  # 1% above the best (lowest) mean
    cos = rows[0]
    # metric falls linearly from 2.0 to final over 5 epochs: only seeds 0 (0.30) and 1 (0.32) reach 0.3232
    assert (cos.reached, cos.epochs_to) == (2, 5.0)
    with pytest.raises(ValueError, match="target: expected a finite number"):
        report.summarize(make_result(), math.nan)


# --------------------------------------------------------------------------------------------------
# escaping
# --------------------------------------------------------------------------------------------------
class _Page(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.scripts = 0
        self.text: list[str] = []
        self.urls: list[str] = []
        self.title = ""
        self._in_title = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.scripts += tag == "script"
        self._in_title = tag == "title"
        self.urls += [v or "" for k, v in attrs if k in ("src", "href", "srcset", "action", "data", "poster")]

    def handle_endtag(self, tag: str) -> None:
        self._in_title = False

    def handle_data(self, data: str) -> None:
        self.text.append(data)
        if self._in_title:
            self.title += data


def test_html_escapes_labels_and_loads_nothing_from_outside(tmp_path: Path) -> None:
    res = make_result()
    res.task = "<img src=x onerror=alert(1)>"  # a user task's name and metric are user text too
    res.metric_name = r"$\frac{$ <b>acc</b>"
    page = report.write_report(res, tmp_path, title="my <b>title</b> $x$")
    text = page.read_text(encoding="utf-8")
    parsed = _Page()
    parsed.feed(text)
    assert parsed.scripts == 1  # ours only
    assert "<script>document.title" not in text and "<b>title" not in text
    body = "".join(parsed.text)
    for label in NASTY:
        assert label in body  # shown as text
    assert parsed.title == "my <b>title</b> $x$"
    assert parsed.urls and all(u.startswith("data:image/png;base64,") for u in parsed.urls)
    assert len(parsed.urls) == 3
    assert "Content-Security-Policy" in text and "default-src 'none'" in text
    assert "n=1" in body and "± 0" not in body
    assert res.task in body and res.metric_name in body and "<b>acc" not in text


def test_edge_cases_all_diverged_and_a_single_run(tmp_path: Path) -> None:
    dead = [make_run("boom", seed, None, diverge_at=3 + seed, lr=9.0) for seed in range(2)]
    res = LabResult("t", 2, dead, ":memory:", "x", "val loss", False, 5)
    assert report.default_target(res) is None
    paths = report.write_all(res, tmp_path / "dead")
    page = paths[0].read_text(encoding="utf-8")
    assert "No run finished" in page and "target: none" in page and "all diverged" in page
    one = LabResult("t", 3, [make_run("only", 0, 0.5)], ":memory:", "x", "acc", True, 5)
    page = report.render_html(one)
    assert page.count("n=1") >= 3 and "± 0" not in page  # sd, CI and the verdict
    rows, target = report.summarize(one)
    assert target == pytest.approx(0.495) and (rows[0].reached, rows[0].epochs_to) == (1, 5.0)


def test_markdown_escapes_cells_and_says_n1(tmp_path: Path) -> None:
    res = make_result()
    md = report.write_markdown(res, tmp_path).read_text(encoding="utf-8")
    rows = [line for line in md.splitlines() if line.startswith("| ")]
    width = len(report.HEADERS)
    for line in rows:  # unescaped pipes separate exactly the columns
        cells = re.split(r"(?<!\\)\|", line)[1:-1]
        assert len(cells) == width, line
    first_cells = [re.split(r"(?<!\\)\|", line)[1].strip() for line in rows[1:]]
    unescaped = [re.sub(r"\\(.)", r"\1", c) for c in first_cells]
    assert set(NASTY) <= set(unescaped)
    assert "<script>" not in md and "<i>" not in md
    math_row = next(line for line in rows if line.startswith("| " + report.escape_markdown(MATH_LABEL)))
    assert math_row.count("n=1") == 2 and "± 0" not in md


@settings(max_examples=200, deadline=None)
@given(st.text())
def test_escape_markdown_round_trips_and_keeps_one_cell(text: str) -> None:
    esc = report.escape_markdown(text)
    assert "\n" not in esc and "\r" not in esc
    assert re.search(r"(?<!\\)(\\\\)*\|", esc.replace("\\|", "")) is None or "|" not in text
    # round trip of the text as a terminal may show it: control characters written as repr writes them
    assert re.sub(r"\\(.)", r"\1", esc) == printable(" ".join(text.splitlines()))


@settings(max_examples=300, deadline=None)
@given(st.text())
def test_escape_mathtext_draws_any_text_verbatim(text: str) -> None:
    from matplotlib.text import Text

    t = Text(0, 0, report.escape_mathtext(text))
    assert t._preprocess_math(t.get_text()) == (text, False)  # plain text, shown as written


def test_figures_with_mathtext_labels_render() -> None:
    res = make_result(labels=[r"$x$", r"\$", "a$b$c", r"$\alpha", "}{$^$_"])
    fig = report.lab_figure(res, title=r"title with $\frac{$")
    fig.canvas.draw()  # a mathtext parse error would raise here
    legend_texts = [t.get_text() for t in fig.legends[0].get_texts()]
    assert any(MATH_LABEL in t._preprocess_math(t.get_text())[0] for t in fig.legends[0].get_texts())
    assert len(legend_texts) == len(res.labels())
    matplotlib.pyplot.close(fig)


def _overlap(a: object, b: object) -> bool:
    return bool(a.x0 < b.x1 and b.x0 < a.x1 and a.y0 < b.y1 and b.y0 < a.y1)  # type: ignore[attr-defined]


@pytest.mark.parametrize("extra", [0, 8, 20])
def test_legends_sit_outside_the_axes_and_inside_the_figure(extra: int) -> None:
    labels = [
        f"strategy {i}: warmup(5%) >> cosine(lr={0.01 * (i + 1):.2f}) with a long label" for i in range(extra)
    ]
    res = make_result(labels=labels)
    figs = [report.lab_figure(res)] + [report.panel_figure(res, p) for p in report.PANELS]
    for fig in figs:
        fig.canvas.draw()
        r = fig.canvas.get_renderer()
        (legend,) = fig.legends
        box = legend.get_window_extent(r)
        fig_box = fig.bbox
        assert box.x0 >= -1 and box.x1 <= fig_box.x1 + 1 and box.y0 >= -1, (box, fig_box)
        assert len(legend.get_texts()) == 5 + extra
        for ax in fig.axes:
            assert not _overlap(box, ax.get_window_extent(r)), (box, ax.get_window_extent(r))
        matplotlib.pyplot.close(fig)


def test_diverged_runs_are_listed_with_their_step(tmp_path: Path) -> None:
    page = report.write_report(make_result(), tmp_path).read_text(encoding="utf-8")
    section = page.split("<h2>Diverged runs</h2>", 1)[1].split("<h2>", 1)[0]
    parsed = _Page()
    parsed.feed(section)
    cells = [c for c in parsed.text if c.strip()]
    # seed, diverged at step, steps run: the optimizer steps, as in the runs table and runs.csv (the
    # diverging forward pass, which has an LR but no step, used to be counted here)
    assert cells[cells.index(SCRIPT_LABEL) + 1 : cells.index(SCRIPT_LABEL) + 4] == ["2", "37", "37"]
    assert cells.count("too large") == 2


# --------------------------------------------------------------------------------------------------
# CSV
# --------------------------------------------------------------------------------------------------
def _float(cell: str) -> float | None:
    return None if cell == "" else float(cell)


def test_csv_round_trip(tmp_path: Path) -> None:
    labels = ['comma, "quote"', "new\nline", "=SUM(A1)", "ünï ☃"]
    res = make_result(labels=labels)
    runs_csv, epochs_csv = report.write_csv(res, tmp_path)
    with runs_csv.open(newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    assert list(rows[0]) == list(report.RUNS_COLUMNS)
    assert len(rows) == len(res.runs)
    for row, r in zip(rows, res.runs):
        # a label a spreadsheet would run as a formula is written after a ' (OWASP's CSV injection advice)
        shown = "'" + r.label if r.label.startswith("=") else r.label
        assert row["label"] == shown and row["spec"] == r.spec and row["key"] == r.key
        assert int(row["seed"]) == r.seed and row["status"] == report.fate(r) and int(row["steps"]) == r.steps
        assert _float(row["final_metric"]) == r.final_metric and _float(row["best_metric"]) == r.best_metric
        assert (None if row["diverged_step"] == "" else int(row["diverged_step"])) == r.diverged_step
        assert float(row["seconds"]) == r.seconds
    with epochs_csv.open(newline="", encoding="utf-8") as f:
        erows = list(csv.DictReader(f))
    assert list(erows[0]) == list(report.EPOCHS_COLUMNS)
    expected = [
        (r.key, e + 1, m, r.epoch_losses[e], r.epoch_seconds[e])
        for r in res.runs
        for e, m in enumerate(r.epoch_metrics)
    ]
    got = [
        (x["key"], int(x["epoch"]), _float(x["metric"]), _float(x["train_loss"]), _float(x["seconds"]))
        for x in erows
    ]
    assert got == expected


def test_csv_loads_in_pandas(tmp_path: Path) -> None:
    pd = pytest.importorskip("pandas")
    res = make_result(labels=['comma, "quote"', "new\nline"])
    runs_csv, epochs_csv = report.write_csv(res, tmp_path)
    df = pd.read_csv(runs_csv)
    assert list(df.columns) == list(report.RUNS_COLUMNS) and len(df) == len(res.runs)
    assert df["final_metric"].isna().sum() == 3 and list(df["label"]).count("new\nline") == 1
    assert df["diverged_step"].dropna().astype(int).tolist() == [37, 5, 6]
    ep = pd.read_csv(epochs_csv)
    assert len(ep) == sum(len(r.epoch_metrics) for r in res.runs)
    assert ep.groupby("key")["epoch"].max().to_dict() == {
        r.key: len(r.epoch_metrics) for r in res.runs if r.epoch_metrics
    }


# --------------------------------------------------------------------------------------------------
# files and the database
# --------------------------------------------------------------------------------------------------
def test_write_all_writes_every_file_and_a_failure_leaves_the_old_report(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    res = make_result()
    paths = report.write_all(res, tmp_path / "out")
    assert [p.name for p in paths] == ["report.html", "runs.csv", "epochs.csv", "lab.md", "lab.png"]
    assert all(p.stat().st_size > 0 for p in paths)
    umask = os.umask(0o022)
    os.umask(umask)
    assert {stat.S_IMODE(p.stat().st_mode) for p in paths} == {0o666 & ~umask}  # not a temp file's 0600
    assert paths[4].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    before = paths[0].read_bytes()

    def broken(fig: object, dpi: int = 100) -> bytes:
        raise OSError("disk full")

    monkeypatch.setattr(report, "_png", broken)
    with pytest.raises(OSError, match="disk full"):
        report.write_report(res, tmp_path / "out")
    assert paths[0].read_bytes() == before
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == sorted(
        p.name for p in paths
    )  # no temp files
    (tmp_path / "file").write_text("x")
    with pytest.raises(ValueError, match=r"out_dir: .* is a file"):
        report.write_csv(res, tmp_path / "file")
    with pytest.raises(TypeError, match="result: expected"):
        report.write_report("not a result", tmp_path)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="no finished run"):
        report.write_report(LabResult("t", 3, [], ":memory:"), tmp_path)


def _store_result(db: Path, res: LabResult, unfinished: int = 0) -> int:
    with ResultStore(db) as store:
        members = [(r.label, r.key) for r in res.runs] + [
            (f"later {i}", f"missing{i}") for i in range(unfinished)
        ]
        exp = store.experiment(
            res.name, res.task, res.metric_name, res.higher_is_better, {"epochs": 5}, members
        )
        for r in res.runs:
            assert (
                store.claim(r.key, {"spec": r.spec, "optimizer": r.optimizer, "seed": r.seed}, "me")
                == "claimed"
            )
            assert store.finish(r, "me")
    return exp


def test_report_from_db_reads_only_and_matches_the_in_memory_report(tmp_path: Path) -> None:
    res = make_result()
    db = tmp_path / "lab" / "lab.db"
    exp = _store_result(db, res, unfinished=2)
    digest = hashlib.sha256(db.read_bytes()).hexdigest()
    db.chmod(0o444)  # read-only: a write would fail
    try:
        paths = report.report_from_db(tmp_path / "lab", tmp_path / "out")  # a folder means folder/lab.db
    finally:
        db.chmod(0o644)
    assert hashlib.sha256(db.read_bytes()).hexdigest() == digest
    assert [p.name for p in paths] == ["report.html", "runs.csv", "epochs.csv", "lab.md", "lab.png"]
    page = paths[0].read_text(encoding="utf-8")
    assert "2 of 13 runs are not finished" in page
    md_db = paths[3].read_text(encoding="utf-8")
    md_mem = report.markdown_table(res)
    assert md_mem in md_db  # same numbers from the database as from memory
    assert "**2 of 13 runs are not finished" in md_db  # lab.md says so too
    with pytest.raises(ValueError, match=r"experiment_id: no experiment 99 .* holds \[1\]"):
        report.report_from_db(db, tmp_path / "out", 99)
    assert report.report_from_db(db, tmp_path / "out2", exp)[0].exists()
    with pytest.raises(ValueError, match=r"db_path: .* does not exist"):
        report.report_from_db(tmp_path / "nope.db", tmp_path / "out")
    (tmp_path / "foreign.db").write_text("not a database")
    with pytest.raises(ValueError, match="not an lrkit database"):
        report.report_from_db(tmp_path / "foreign.db", tmp_path / "out")


def test_report_command_prints_the_table_and_the_runs_still_missing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from lrkit.cli import main

    res = make_result()
    _store_result(tmp_path / "lab" / "lab.db", res, unfinished=3)
    assert main(["report", str(tmp_path / "lab")]) == 0
    out = capsys.readouterr().out
    n = len(res.runs) + 3
    md = (tmp_path / "lab" / "lab.md").read_text(encoding="utf-8")
    assert (
        f"3 of {n} runs are not finished" in out and report.plain_markdown(report.markdown_table(res)) in out
    )
    assert report.plain_markdown(md) in out  # for a terminal: lab.md without its mark and escapes
    _store_result(tmp_path / "done" / "lab.db", res)
    assert main(["report", str(tmp_path / "done")]) == 0
    assert "not finished" not in capsys.readouterr().out  # a complete experiment: no note


def test_a_diverged_runs_huge_loss_does_not_squash_the_loss_panel() -> None:
    """A run that diverged at a loss of 1e13 used to set the top of the log axis, with every healthy
    curve pressed into its bottom decade. The axis stops at twice the divergence threshold
    (diverge_factor x the first loss); the healthy curves lie wholly inside, the x sits on the edge."""
    ok = [make_run("cosine", s, 0.9) for s in range(2)]
    bad = make_run("too large", 0, None, diverge_at=3, lr=1.0)
    bad.losses[-1] = 1e13  # finite, far above 10x the first loss (the lab's rule)
    bad.config = {"diverge_factor": 10.0}
    res = LabResult("toy-task", 1, [*ok, bad], ":memory:", "test", "val accuracy", True, 5)
    fig = report.panel_figure(res, "loss")
    ax = fig.axes[0]
    low, top = ax.get_ylim()
    first = max(r.losses[0] for r in res.runs)
    assert top == pytest.approx(2 * 10.0 * first)
    healthy = np.concatenate([report._loss_curve(r) for r in ok])
    assert low < healthy.min() and healthy.max() < top
    assert top / low < 1e3  # the healthy curves span most of the axis, not its bottom decade
    marks = [ln for ln in ax.get_lines() if ln.get_marker() == "x"]
    assert [float(ln.get_ydata()[0]) for ln in marks] == [pytest.approx(top)]
    assert "(on the top edge: beyond it)" in ax.get_title()
    matplotlib.pyplot.close(fig)
    # nothing beyond the threshold: the axis is matplotlib's own, the title unchanged
    bad.losses[-1] = math.inf
    fig = report.panel_figure(res, "loss")
    assert fig.axes[0].get_ylim()[1] < 2 * 10.0 * first and "top edge" not in fig.axes[0].get_title()
    matplotlib.pyplot.close(fig)


def test_the_table_printed_for_a_terminal_is_lab_md_without_its_mark_and_escapes(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """lrkit lab and lrkit report print lab.md's table. They printed it as written, for a Markdown
    renderer: '<!-- written by lrkit -->', 'schedulefree\\_adamw', '\\[0.9, 0.94\\]', 'a \\>\\> b'."""
    from lrkit.lab.cli import write_outputs

    label = "warmup(5%) >> cosine_a [x]"
    res = make_result(labels=[label])
    write_outputs(res, tmp_path)
    printed = capsys.readouterr().out
    md = (tmp_path / "lab.md").read_text(encoding="utf-8")
    assert md.startswith(report.MD_MARK) and r"cosine\_a \[x\]" in md  # the file is Markdown, escaped
    assert printed == report.plain_markdown(md) + "\n" and report.MD_MARK not in printed
    assert f"| {label} |" in printed and "\\" not in printed.replace(MATH_LABEL, "")
    assert printed.startswith("# lrkit lab 'test'")


def test_a_report_made_again_keeps_the_title_and_note_the_lab_wrote(tmp_path: Path) -> None:
    """``lrkit tune``'s report leads with a note (how the search stopped, which seeds are held out) and
    its own title; ``lrkit report`` made it again without them. They are kept in the database with the
    experiment; a note on unfinished runs follows the kept one, and a title given now wins."""
    res = make_result()
    db = tmp_path / "lab" / "lab.db"
    exp = _store_result(db, res, unfinished=1)
    note = "The search stopped at its time budget (--timeout 8s = 8 s) with 5 of the 50 trials asked for."
    with ResultStore(db) as store:
        assert store.report_text(exp) == (None, None)
        store.set_report_text(exp, "tuned (study) vs finder and recipes", note)
    paths = report.report_from_db(db, tmp_path / "out")
    page, md = paths[0].read_text(encoding="utf-8"), paths[3].read_text(encoding="utf-8")
    assert "tuned (study) vs finder and recipes" in page
    assert note in md and md.index(note) < md.index(f"1 of {len(res.runs) + 1} runs are not finished")
    again = report.report_from_db(db, tmp_path / "out2", title="mine")[0].read_text(encoding="utf-8")
    assert "mine" in again and "tuned (study)" not in again


def test_a_database_from_before_report_texts_still_reports(tmp_path: Path) -> None:
    import sqlite3

    res = make_result()
    db = tmp_path / "old.db"
    exp = _store_result(db, res)
    con = sqlite3.connect(db)
    con.execute("DROP TABLE report_texts")
    con.commit()
    con.close()
    assert report.report_from_db(db, tmp_path / "out", exp)[0].exists()
