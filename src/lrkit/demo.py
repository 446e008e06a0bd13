"""``make demo`` / ``lrkit demo``: the main job, writing figures, tables and a results database.

1. the gallery of every strategy and an overlay of common recipes;
2. the LR range test on a real task (scikit-learn digits, MLP, SGD+momentum), with its plot;
3. the lab: strategies side by side on that task, peak LRs from the finder, plus a too-large and a
   too-small LR, the adaptive optimizers and the learning-rate-free ones (Schedule-Free AdamW, Prodigy,
   untuned); an HTML report, CSV files, a figure, a Markdown table and a SQLite database. Rerunning the
   demo reuses the runs already in the database.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .finder.result import FinderResult

TASK = "digits-mlp-sgd"

#: the demo's too-large and too-small constant LRs, as multiples of the finder's suggested peak: 100x
#: diverges; 1/30 crawls, a rule of thumb for "too small" that still lowers the loss visibly within the
#: demo's budget (digits, peak 0.046: validation accuracy 0.45 after the quick mode's 4 epochs, 0.83 after
#: 10, against about 0.97 at the peak). 1/300 (the demo's old choice) sat at chance (0.10: its loss fell
#: 0.1% in 4 epochs) and showed an LR that learns nothing, not one that crawls.
TOO_LARGE, TOO_SMALL = 100.0, 1 / 30


#: the demo's strategy labels in Korean (``lrkit demo --lang ko``), by their English templates; the specs
#: and the optimizers' names stay as they are
LABELS_KO = {
    "too large: constant {}": "너무 큼: constant {}",
    "too small: constant {}": "너무 작음: constant {}",
    "constant {} (finder)": "constant {} (탐색기)",
    "step decay x0.1 at 50%, 75%": "계단식 감쇠: 50%, 75%에서 x0.1",
    "exponential": "지수 감쇠",
    "warmup 5% + cosine": "워밍업 5% + 코사인",
    "one-cycle": "원사이클",
    "cyclic triangular2": "순환 학습률 triangular2",
    "warmup-stable-decay": "워밍업-유지-감쇠",
    "Schedule-Free AdamW (untuned)": "Schedule-Free AdamW (튜닝 안 함)",
    "Prodigy (untuned)": "Prodigy (튜닝 안 함)",
}


#: the demo's own figures (recipes.png, lr_find.png) in Korean: their titles and axis labels, in the words
#: of the lab's Korean figures and of docs/ko (the finder's "no suggestion (NOT TRUSTED)" stays as it is)
FIGURES_KO = {
    "common recipes over {steps} steps": "자주 쓰는 레시피, {steps} 스텝",
    "step": "스텝",
    "learning rate": "학습률",
    "LR range test: {task}": "학습률 범위 테스트: {task}",
    "suggested LR {lr} (rule {rule}{spread})": "제안 학습률 {lr} (규칙 {rule}{spread})",
    ", interval {lo} .. {hi}": ", 구간 {lo} .. {hi}",
    "learning rate (log scale)": "학습률 (로그 스케일)",
    "loss": "손실",
}

#: the recipes drawn in recipes.png, over :data:`RECIPE_STEPS` steps
RECIPES = (
    "warmup(10%) >> cosine(lr=0.1, min_lr=1e-3)",
    "one_cycle(max_lr=0.1)",
    "multistep(lr=0.1, milestones=[30%, 60%, 90%], gamma=0.1)",
    "wsd(lr=0.1, warmup=5%, decay=20%, cooldown=1-sqrt)",
)
RECIPE_STEPS = 10_000


def _say(lang: str, text: str, **fields: object) -> str:
    """``text`` (an English template) in ``lang``, formatted."""
    return (FIGURES_KO.get(text, text) if lang == "ko" else text).format(**fields)


def recipes_figure(path: Path, lang: str = "en") -> Any:
    """Draw :data:`RECIPES` to ``path`` (recipes.png) with its words in ``lang``; return the figure. In
    Korean without a font that has Hangul, English (:class:`lrkit.lab.report.MissingFontWarning`)."""
    from ._paths import save_figure
    from .lab.report import _plain_text
    from .plot import plot_schedules

    with _plain_text(lang) as t:  # t.lang: "en" when no font draws Hangul
        steps = f"{RECIPE_STEPS:,}"
        title = _say(t.lang, "common recipes over {steps} steps", steps=steps)
        fig = plot_schedules(list(RECIPES), RECIPE_STEPS, log=True, title=title)
        ax = fig.axes[0]
        ax.set_xlabel(_say(t.lang, "step"))
        ax.set_ylabel(_say(t.lang, "learning rate"))
        save_figure(fig, path, dpi=130, flag="out")
    return fig


def finder_figure(found: FinderResult, path: Path, lang: str = "en") -> Any:
    """Draw the demo's range test to ``path`` (lr_find.png) with its title and axis labels in ``lang``;
    return the figure (English in Korean without a font that has Hangul, as :func:`recipes_figure`)."""
    from ._paths import save_figure
    from .lab.report import _plain_text

    with _plain_text(lang) as t:
        head = _say(t.lang, "LR range test: {task}", task=TASK)
        ax = found.plot(title=head)
        if t.lang != "en":
            ax.title.set_text(f"{head}\n{_verdict(found, t.lang)}")  # its colour: red when not trusted
            ax.set_xlabel(_say(t.lang, "learning rate (log scale)"))
            ax.set_ylabel(_say(t.lang, "loss"))
        save_figure(ax.figure, path, dpi=120)
    return ax.figure


def _verdict(found: FinderResult, lang: str) -> str:
    """The range test's suggestion in ``lang`` (:func:`lrkit.finder.plot.verdict`); no suggestion: the
    verdict and its reason as they are, as docs/ko shows them."""
    from .finder.plot import verdict

    if found.suggestion is None:
        return verdict(found)
    lo, hi = found.interval
    spread = _say(lang, ", interval {lo} .. {hi}", lo=f"{lo:.3g}", hi=f"{hi:.3g}") if hi > lo else ""
    return _say(
        lang, "suggested LR {lr} (rule {rule}{spread})", lr=f"{found.suggestion:.3g}", rule=repr(found.rule),
        spread=spread,
    )  # fmt: skip


def demo_strategies(peak: float, lang: str = "en") -> list[tuple[str, str, str | None]]:
    """(label, spec, optimizer) for the demo's lab, around the finder's suggestion ``peak`` (the too-large
    and too-small constants: :data:`TOO_LARGE` and :data:`TOO_SMALL` times it); the labels
    in ``lang`` (``"en"`` or ``"ko"``: :data:`LABELS_KO`)."""
    p = f"{peak:.3g}"
    big, small = f"{TOO_LARGE * peak:.3g}", f"{TOO_SMALL * peak:.2g}"
    rows: list[tuple[str, tuple[str, ...], str, str | None]] = [
        ("too large: constant {}", (big,), f"constant({big})", None),
        ("too small: constant {}", (small,), f"constant({small})", None),
        ("constant {} (finder)", (p,), f"constant({p})", None),
        ("step decay x0.1 at 50%, 75%", (), f"multistep(lr={p}, milestones=[50%, 75%], gamma=0.1)", None),
        ("exponential", (), f"exponential(lr={p}, gamma=0.99)", None),
        ("warmup 5% + cosine", (), f"warmup(5%) >> cosine(lr={p}, min_lr={peak / 100:.3g})", None),
        ("one-cycle", (), f"one_cycle(max_lr={p})", None),
        (
            "cyclic triangular2",
            (),
            f"cyclic(lr={peak / 10:.3g}, max_lr={p}, step_size_up=1ep, mode=triangular2)",
            None,
        ),
        ("warmup-stable-decay", (), f"wsd(lr={p}, warmup=5%, decay=20%, cooldown=1-sqrt)", None),
        ("AdaGrad 1e-2", (), "constant(0.01)", "adagrad"),
        ("RMSprop 1e-3", (), "constant(0.001)", "rmsprop"),
        ("Adam 1e-3", (), "constant(0.001)", "adam"),
        ("AdamW 1e-3", (), "warmup(5%) >> cosine(lr=0.001)", "adamw"),
        ("Schedule-Free AdamW (untuned)", (), "constant(0.0025)", "schedulefree_adamw"),
        ("Prodigy (untuned)", (), "constant(1.0)", "prodigy"),
    ]
    words = LABELS_KO if lang == "ko" else {}
    return [(words.get(label, label).format(*args), spec, opt) for label, args, spec, opt in rows]


def run_demo(out: Path, *, quick: bool = False, workers: int | None = None, lang: str = "en") -> int:
    """Write everything into ``out`` and print what was written; the last line is the report's path. The
    lab's report is in ``lang`` (``"en"`` or ``"ko"``: :func:`lrkit.lab.report.write_all`)."""
    from ._paths import check_output_dir
    from .lab._messages import Phrase, check_lang
    from .lab.cli import _cores, run_and_report
    from .lab.experiment import Experiment
    from .lab.report import LAB_FILES
    from .lab.runner import Strategy
    from .lab.store import check_db_path
    from .plot import gallery
    from .tasks import get_task

    check_lang(lang, "--lang")  # before anything runs
    check_output_dir(out, "--out", (*LAB_FILES, "gallery.png", "recipes.png", "lr_find.png"))
    db_path = check_db_path(out / "lab.db", "--out")  # never someone else's file
    from .adapters import torch as _needs_torch  # noqa: F401  (before any output is written)

    out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    written = [gallery(out / "gallery.png")]
    recipes_figure(out / "recipes.png", lang)
    written.append(out / "recipes.png")

    task = get_task(TASK)
    print(f"LR range test on {TASK} ({task.description}) ...")
    found = task.find_lr(seed=0, repeats=1 if quick else 3)
    print(found)
    finder_figure(found, out / "lr_find.png", lang)
    written.append(out / "lr_find.png")
    for p in written:
        print(f"wrote {p}")

    peak = found.require()  # no usable signal: NoSuggestionError says why
    strategies = [Strategy(label, spec, opt) for label, spec, opt in demo_strategies(peak, lang)]
    seeds = [0] if quick else [0, 1, 2]
    epochs = 4 if quick else None
    exp = Experiment(name="demo", task=TASK, strategies=strategies, seeds=seeds, epochs=epochs)
    rc = run_and_report(
        exp,
        out,
        db_path,
        workers=workers or _cores(),
        title=Phrase(  # "lrkit demo: 15 strategies on digits-mlp-sgd, 3 seeds each", in lang
            "demo.title",
            {
                "strategies": Phrase.count("strategies", len(strategies)),
                "task": TASK,
                "seeds": Phrase.count("seeds", len(seeds)),
            },
        ),
        lang=lang,
    )
    print(f"demo finished in {time.perf_counter() - t0:.0f} s")
    if rc == 0:
        print(f"open {(out / 'report.html').resolve()}")
    return rc
