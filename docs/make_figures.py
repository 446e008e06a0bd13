"""Every figure of the guide, made from lrkit itself, in English and Korean: ``python docs/make_figures.py``
(``make docs`` runs it).

Writes ``docs/figures/*.png`` (one or more per page) and ``docs/gallery.png`` (the README's picture) for the
English pages, and for the Korean ones a twin of each, ``docs/figures/ko/NAME.png``
(``docs/figures/ko/gallery.png`` for README.ko.md): the same data, every title, axis label and
description in Korean (the guide's Korean terms), spec strings and numbers as they are. Each figure's data
(training runs, the sweep) is computed once and drawn in each language. Strategy figures have two panels:
the learning rate of each schedule, and the training loss it gives on the built-in ``digits-mlp-sgd`` task
(scikit-learn digits, MLP, SGD with momentum 0.9, 10 epochs of 45 steps, seed 0); the adaptive page's is
an LR sweep of six optimizers (132 short runs). About 70 s of CPU on one core, most of it the sweep
(``--lang en``: about 56 s; the Korean twins only draw). The Korean figures need a font with Hangul
(NanumGothic: ``apt install fonts-nanum``).

    python docs/make_figures.py [--out docs] [--only NAME ...] [--lang en ko]
"""

from __future__ import annotations

import argparse
import functools
import itertools
import re
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np

import lrkit
from lrkit.plot import GALLERY, gallery, plot_schedules, pyplot

TASK = "digits-mlp-sgd"
EPOCHS = 10
STEPS_PER_EPOCH = 45  # 1437 training images in batches of 32
TOTAL = EPOCHS * STEPS_PER_EPOCH
PEAK = 0.046  # what `lrkit find --task digits-mlp-sgd` suggests
DPI = 100


def _ema(x: Sequence[float], beta: float = 0.9) -> np.ndarray:
    out, m = [], 0.0
    for i, v in enumerate(x, 1):
        m = beta * m + (1 - beta) * v
        out.append(m / (1 - beta**i))
    return np.asarray(out)


#: the languages every figure is drawn in: English in docs/figures/, the others in docs/figures/LANG/
LANGS = ("en", "ko")

#: the texts of the figures this script draws itself, per language (the Korean terms of docs/ko)
TEXT: dict[str, dict[str, str]] = {
    "en": {
        "step": "step",
        "step_spe": "step ({spe} steps per epoch)",
        "epoch": "epoch",
        "epoch_spe": "epoch ({spe} steps per epoch)",
        "lr": "learning rate",
        "schedules": "the schedules",
        "loss_ema": "training loss (EMA 0.9)",
        "loss_on": "training loss on {task}, seed 0",
        "diverged_at": "diverged at step {step}",
        "val_acc": "val acc {acc:.3f}",
        "adaptive_title": (
            "optimizers at constant LRs on {task}, {epochs} epochs: how wide is the good range?"
        ),
        "adaptive_best": "{name} (best {lr:g}: {acc:.3f})",
        "adaptive_at": "{name} at {lr:g}",
        "lr_constant": "learning rate (constant)",
        "val_acc_mean": "final val accuracy (mean of {n} seeds)",
        "acc_title": "accuracy against the LR (circle: the usual LR)",
        "best_loss_title": "training loss at each optimizer's best LR, seed 0",
        "finder_title": "LR range test on {task}, 3 repeats",
        "val_synthetic": "validation loss (synthetic)",
        "plateau_watches": "the metric Plateau watches (dotted: a cut)",
        "with_plateau": "with Plateau(factor=0.5, patience=3)",
        "plateau_cuts": "plateau cuts multiply the schedule",
        "lr_peak": "learning rate / its peak",
        "recipes_title": "lrkit recipes over 100 epochs, each relative to its own peak",
        "linear_rule": "linear rule (SGD): 0.1 at 256",
        "sqrt_rule": "square-root rule (Adam): 1e-3 at 256",
        "warmup_advised": "warmup advised (any batch above 256)",
        "goyal_8k": "~8k: the linear rule stops holding (Goyal et al.)",
        "batch_size": "batch size",
        "lr_at_256": "learning rate / its value at batch 256",
        "scaling_title": "batch-size scaling with lrkit.scaling.scale_lr",
        "quick_title": "warmup(5%) >> cosine(lr=3e-4, min_lr=3e-5) and one_cycle(max_lr=3e-4), 1,000 steps",
    },
    "ko": {
        "step": "스텝",
        "step_spe": "스텝 (에폭당 {spe} 스텝)",
        "epoch": "에폭",
        "epoch_spe": "에폭 (에폭당 {spe} 스텝)",
        "lr": "학습률",
        "schedules": "스케줄",
        "loss_ema": "학습 손실 (EMA 0.9)",
        "loss_on": "{task}에서의 학습 손실, 시드 0",
        "diverged_at": "스텝 {step}에서 발산",
        "val_acc": "검증 정확도 {acc:.3f}",
        "adaptive_title": (
            "{task}에서 고정 학습률로 돌린 옵티마이저, {epochs} 에폭: 좋은 범위는 얼마나 넓은가?"
        ),
        "adaptive_best": "{name} (최고 {lr:g}: {acc:.3f})",
        "adaptive_at": "{name}, 학습률 {lr:g}",
        "lr_constant": "학습률 (고정)",
        "val_acc_mean": "최종 검증 정확도 (시드 {n}개 평균)",
        "acc_title": "학습률에 따른 정확도 (동그라미: 흔히 쓰는 학습률)",
        "best_loss_title": "옵티마이저마다 가장 좋은 학습률에서의 학습 손실, 시드 0",
        "finder_title": "{task}에서의 학습률 범위 테스트, 반복 3번",
        "val_synthetic": "검증 손실 (합성)",
        "plateau_watches": "정체 감지가 지켜보는 지표 (점선: 감소)",
        "with_plateau": "Plateau(factor=0.5, patience=3)를 얹은 학습률",
        "plateau_cuts": "정체 시 감소는 스케줄에 곱해집니다",
        "lr_peak": "학습률 / 각자의 최고값",
        "recipes_title": "lrkit 레시피, 100 에폭, 각자의 최고값 대비",
        "linear_rule": "선형 규칙 (SGD): 배치 256에서 0.1",
        "sqrt_rule": "제곱근 규칙 (Adam): 배치 256에서 1e-3",
        "warmup_advised": "워밍업 권장 (256보다 큰 모든 배치)",
        "goyal_8k": "약 8k: 선형 규칙이 깨지는 곳 (Goyal 등)",
        "batch_size": "배치 크기",
        "lr_at_256": "학습률 / 배치 256에서의 값",
        "scaling_title": "lrkit.scaling.scale_lr로 본 배치 크기와 학습률",
        "quick_title": "warmup(5%) >> cosine(lr=3e-4, min_lr=3e-5)와 one_cycle(max_lr=3e-4), 1,000 스텝",
    },
}


def _t(lang: str, key: str, **fields: Any) -> str:
    return TEXT[lang][key].format(**fields)


@contextmanager
def _language(lang: str) -> Iterator[None]:
    """Draw in ``lang``: for Korean, matplotlib's font first and one with Hangul after it (the lab report's
    choice, :func:`lrkit.lab.report._hangul_font`), so Latin text and the minus sign keep matplotlib's
    font. Text takes its font when it is made: draw the whole figure inside."""
    if lang == "en":
        yield
        return
    import matplotlib

    from lrkit.lab.report import _hangul_font

    font = _hangul_font()
    if font is None:
        raise RuntimeError(
            f"lang={lang!r}: matplotlib finds no font with Hangul, and the Korean figures would show boxes; "
            "install one, e.g. NanumGothic (Debian/Ubuntu: apt install fonts-nanum), remove matplotlib's "
            f"font cache ({matplotlib.get_cachedir()}/fontlist-*.json) and run this again"
        )
    with matplotlib.rc_context({"font.family": [*matplotlib.rcParams["font.family"], font]}):
        yield


def _is_spec(text: str) -> bool:
    try:
        lrkit.parse(text)
    except Exception:
        return False
    return True


#: how the Korean twin of a figure lrkit draws (the finder's, lrkit.auto's, plot_schedules') says each
#: English text: (pattern matching the whole text, its Korean, or a function of the match); a text no
#: pattern matches stays as it is if it has Hangul (given in Korean), is a spec string or has no Latin
#: letter, and is an error otherwise (_relabel)
KO_RELABEL: list[tuple[str, str | Callable[[re.Match[str]], str]]] = [
    (r"step", "스텝"),
    (r"step \((?P<n>[\d.,]+) steps per epoch\)", r"스텝 (에폭당 \g<n> 스텝)"),
    (r"optimizer step", "옵티마이저 스텝"),
    (r"learning rate", "학습률"),
    (r"learning rate \(log scale\)", "학습률 (로그 스케일)"),
    (r"learning rate \(group (?P<g>\d+)\)", r"학습률 (그룹 \g<g>)"),
    (r"loss", "손실"),
    (r"raw loss", "원래 손실"),
    (r"smoothed \(EMA (?P<b>\S+)\)", r"평활화한 손실 (EMA \g<b>)"),
    (r"training loss", "학습 손실"),
    (r"training loss \(EMA (?P<b>\S+)\)", r"학습 손실 (EMA \g<b>)"),
    # the finder's rules and their values (names, as the Korean pages write them)
    (r"(?:lrkit|steepest|minimum/10|valley): \S+", r"\g<0>"),
    (
        r"(?P<rule>\w+) interval over (?P<n>\d+) repeats: (?P<lo>\S+) \.\. (?P<hi>\S+)",
        r"\g<rule> 구간, 반복 \g<n>번: \g<lo> .. \g<hi>",
    ),
    (r"suggested (?P<lr>\S+)", r"제안값 \g<lr>"),
    (
        r"(?P<head>[^\n]+)\nsuggested LR (?P<lr>\S+) \(rule '(?P<rule>\w+)'"
        r"(?:, interval (?P<lo>\S+) \.\. (?P<hi>\S+))?\)",
        lambda m: (
            f"{m['head']}\n제안 학습률 {m['lr']} (규칙 '{m['rule']}'"
            + (f", 구간 {m['lo']} .. {m['hi']})" if m["lo"] else ")")
        ),
    ),
    (
        r"loss blew up: test stopped from (?P<lr>\S+)(?: \((?P<k>\d+) of (?P<n>\d+) repeats\))?",
        lambda m: (
            f"손실 폭발: {m['lr']}부터 테스트 중단" + (f" (반복 {m['n']}번 중 {m['k']}번)" if m["k"] else "")
        ),
    ),
    # lrkit.auto's panels
    (r"the LR search \((?P<s>\w+)\): loss against LR", r"학습률 탐색 (\g<s>): 학습률에 따른 손실"),
    (r"peak LR of the schedule: (?P<lr>\S+)", r"스케줄의 최고점: \g<lr>"),
    (r"ramp kept up to (?P<lr>\S+)", r"\g<lr>까지 남긴 램프"),
    (r"in-run ramp kept as warmup \((?P<n>\d+) steps\)", r"워밍업으로 남긴 in-run 램프 (\g<n> 스텝)"),
    (r"the run: (?P<kind>\w+), (?P<n>\d+) steps", r"학습: \g<kind>, \g<n> 스텝"),
    (
        r"lrkit\.auto: peak LR (?P<lr>\S+), (?P<kind>\w+) schedule, (?P<s>\w+) search "
        r"\(compute (?P<c>\S+)x one run\)",
        r"lrkit.auto: 최고점 \g<lr>, \g<kind> 스케줄, \g<s> 탐색 (계산량: 학습 한 번의 \g<c>배)",
    ),
]

HANGUL = re.compile("[\uac00-\ud7a3]")


def figure_texts(fig: Any) -> list[Any]:
    """Every text of ``fig`` a reader reads as words (tick labels aside): the figure's (its suptitle), and
    each axes' title, axis labels, annotations and legend entries."""
    texts = list(fig.texts)
    for ax in fig.axes:
        texts += [ax.title, ax.xaxis.label, ax.yaxis.label, *ax.texts]
        legend = ax.get_legend()
        if legend is not None:
            texts += legend.get_texts()
    return [t for t in texts if t.get_text()]


def _relabel(fig: Any, rules: Sequence[tuple[str, str | Callable[[re.Match[str]], str]]]) -> Any:
    """Put each English text of ``fig`` (:func:`figure_texts`) in the language of ``rules`` (see
    :data:`KO_RELABEL`)."""
    for text in figure_texts(fig):
        s = text.get_text()
        for pattern, new in rules:
            m = re.fullmatch(pattern, s)
            if m:
                text.set_text(m.expand(new) if isinstance(new, str) else new(m))
                break
        else:
            if not (HANGUL.search(s) or _is_spec(s) or not re.search("[A-Za-z]", s)):
                raise ValueError(f"no Korean for the figure text {s!r}: add a pattern to KO_RELABEL")
    return fig


def _figure_path(docs: Path, name: str, lang: str) -> Path:
    """docs/figures/NAME.png in English (the gallery: docs/gallery.png), else docs/figures/LANG/NAME.png."""
    if lang == "en":
        return docs / ("gallery.png" if name == "gallery" else f"figures/{name}.png")
    return docs / "figures" / lang / f"{name}.png"


@functools.cache
def _train(spec: str, optimizer: str | None = None) -> tuple[list[float], float, bool]:
    """Training losses, final validation accuracy and whether the run diverged, for one schedule (once:
    every language's figure draws the same run)."""
    import torch

    torch.set_num_threads(1)
    from lrkit.tasks import get_task

    task = get_task(TASK)
    sched = lrkit.load(spec).resolve(total_steps=TOTAL, steps_per_epoch=STEPS_PER_EPOCH)
    run = task.train_run(schedule=lambda step: sched(step), epochs=EPOCHS, seed=0, optimizer=optimizer)
    return run.losses, run.metric, run.diverged


def strategy_figure(out: Path, name: str, lang: str = "en") -> Any:
    """Left: each schedule's LR over the run; right: the training loss it gives on digits."""
    title, specs, log = STRATEGIES[name]
    if lang != "en":
        title, labels = STRATEGIES_KO[name]
        if len(labels) != len(specs):
            raise ValueError(f"STRATEGIES_KO[{name!r}]: {len(labels)} labels for {len(specs)} schedules")
    else:
        labels = [item[0] for item in specs]
    with _language(lang):
        plt = pyplot()
        fig, (ax_lr, ax_loss) = plt.subplots(1, 2, figsize=(12, 4.6), constrained_layout=True)
        t = np.arange(TOTAL)
        for i, (item, label) in enumerate(zip(specs, labels)):
            spec = item[1]
            optimizer = item[2] if len(item) > 2 else None
            color = f"C{i}"
            sched = lrkit.load(spec).resolve(total_steps=TOTAL, steps_per_epoch=STEPS_PER_EPOCH)
            y = sched(t)
            ax_lr.plot(t, np.where(y > 0, y, np.nan) if log else y, color=color, lw=1.8, label=label)
            losses, metric, diverged = _train(spec, optimizer)
            tag = (
                _t(lang, "diverged_at", step=len(losses) - 1) if diverged else _t(lang, "val_acc", acc=metric)
            )
            ax_loss.plot(np.arange(len(losses)), _ema(losses), color=color, lw=1.5, label=f"{label} ({tag})")
        fig.suptitle(title, fontsize=13)
        ax_lr.set(
            xlabel=_t(lang, "step_spe", spe=STEPS_PER_EPOCH),
            ylabel=_t(lang, "lr"),
            title=_t(lang, "schedules"),
        )
        if log:
            ax_lr.set_yscale("log")
        ax_loss.set(
            xlabel=_t(lang, "step"),
            ylabel=_t(lang, "loss_ema"),
            yscale="log",
            title=_t(lang, "loss_on", task=TASK),
        )
        for ax in (ax_lr, ax_loss):
            ax.grid(True, alpha=0.3, which="both")
            ax.legend(fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.14), frameon=False)
        return _save(fig, out)


def _save(fig: Any, out: Path) -> Any:
    """Save ``fig`` to ``out`` and close it; returns the figure (its texts can still be read)."""
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=DPI)
    pyplot().close(fig)
    return fig


P = f"{PEAK:g}"

STRATEGIES: dict[str, tuple[str, list[Any], bool]] = {
    "fixed": (
        "fixed LR",
        [
            ("constant 0.002 (too small)", "constant(0.002)"),
            (f"constant {P} (the finder's)", f"constant({P})"),
            # 2 (43x the peak), not 0.5: 0.5 sits on the edge of stability, where a run's end depends on
            # rounding (val acc 0.10 once, 0.29 now); from 1 up every run breaks (digits: 1, 2 and 4.6,
            # seeds 0-2, 1 or 2 threads: 0.10), 2 with a clear spike (281 at step 12)
            ("constant 2 (too large)", "constant(2.0)"),
        ],
        True,
    ),
    "step-decay": (
        "step decay",
        [
            (f"constant {P}", f"constant({P})"),
            ("step: x0.3 every 3 epochs", f"step(lr={P}, step_size=3ep, gamma=0.3)"),
            ("multistep: x0.1 at 50% and 75%", f"multistep(lr={P}, milestones=[50%, 75%], gamma=0.1)"),
        ],
        True,
    ),
    "exponential": (
        "exponential and time-based",
        [
            ("exponential gamma=0.995", f"exponential(lr={P}, gamma=0.995)"),
            ("exp_decay k=0.005", f"exp_decay(lr={P}, k=0.005)"),
            ("time-based k=0.02", f"inverse_time(lr={P}, k=0.02)"),
            ("warmup + inverse sqrt", f"warmup(5%) >> inverse_sqrt(lr={P}, timescale=5%)"),
        ],
        True,
    ),
    "cosine": (
        "polynomial, linear, cosine",
        [
            ("polynomial power=2", f"polynomial(lr={P}, power=2)"),
            ("linear to 0", f"linear(lr={P}, end_lr=0)"),
            ("cosine", f"cosine(lr={P}, min_lr={PEAK / 100:g})"),
            ("cosine restarts 1ep x2", f"cosine_restarts(lr={P}, period=1ep, mult=2, min_lr={PEAK / 100:g})"),
        ],
        False,
    ),
    "cyclical": (
        "cyclical LR",
        [
            ("triangular", f"cyclic(lr={PEAK / 10:g}, max_lr={P}, step_size_up=1ep, mode=triangular)"),
            ("triangular2", f"cyclic(lr={PEAK / 10:g}, max_lr={P}, step_size_up=1ep, mode=triangular2)"),
            (
                "exp_range gamma=0.998",
                f"cyclic(lr={PEAK / 10:g}, max_lr={P}, step_size_up=1ep, mode=exp_range, gamma=0.998)",
            ),
            ("sine", f"cyclic(lr={PEAK / 10:g}, max_lr={P}, step_size_up=1ep, mode=sine)"),
        ],
        False,
    ),
    "warmup": (
        "warmup and warmup-stable-decay",
        [
            ("cosine, no warmup", f"cosine(lr={P})"),
            ("linear warmup 10% + cosine", f"warmup(10%) >> cosine(lr={P})"),
            ("exponential warmup 10% + cosine", f"warmup(10%, mode=exponential) >> cosine(lr={P})"),
            ("WSD, 1-sqrt cool-down", f"wsd(lr={P}, warmup=5%, decay=20%, cooldown=1-sqrt)"),
        ],
        False,
    ),
    "one-cycle": (
        "one-cycle",
        [
            (f"constant {P}", f"constant({P})"),
            ("one-cycle (cos)", f"one_cycle(max_lr={P})"),
            ("one-cycle 3x the peak", f"one_cycle(max_lr={3 * PEAK:g})"),
            ("one-cycle linear, three-phase", f"one_cycle(max_lr={P}, anneal=linear, three_phase=true)"),
        ],
        True,
    ),
}


#: each strategy figure's Korean title and labels, in STRATEGIES' order (mode names, as the pages write them)
STRATEGIES_KO: dict[str, tuple[str, list[str]]] = {
    "fixed": ("고정 학습률", ["상수 0.002 (너무 작음)", f"상수 {P} (탐색기의 제안값)", "상수 2 (너무 큼)"]),
    "step-decay": ("계단식 감쇠", [f"상수 {P}", "step: 3 에폭마다 x0.3", "multistep: 50%와 75%에서 x0.1"]),
    "exponential": (
        "지수 감쇠와 시간 기반 감쇠",
        ["exponential gamma=0.995", "exp_decay k=0.005", "시간 기반 k=0.02", "워밍업 + 역제곱근"],
    ),
    "cosine": (
        "다항식, 선형, 코사인",
        ["다항식 power=2", "0까지 선형", "코사인", "웜 리스타트 코사인, 첫 주기 1 에폭, 2배씩"],
    ),
    "cyclical": ("순환 학습률", ["triangular", "triangular2", "exp_range gamma=0.998", "sine"]),
    "warmup": (
        "워밍업과 WSD",
        ["코사인, 워밍업 없음", "선형 워밍업 10% + 코사인", "지수 워밍업 10% + 코사인", "WSD, 1-sqrt 쿨다운"],
    ),
    "one-cycle": (
        "원사이클",
        [f"상수 {P}", "원사이클 (코사인)", "원사이클, 최고점 3배", "원사이클 선형, 3단계(three_phase)"],
    ),
}

#: each recipe's summary in Korean (lrkit.recipes.RECIPES' own summaries are English)
RECIPES_KO = {
    "resnet_imagenet": "SGD, 이미지 256장당 0.1, 30/60/90 에폭에 x0.1",
    "bert_finetune": "처음 10% 동안 5e-5까지 워밍업, 이후 0까지 선형 감쇠",
    "transformer_noam": "4000 스텝 워밍업, 이후 1/sqrt(스텝), 스텝은 1부터",
    "gpt_cosine": "워밍업, 이후 최고값의 10%까지 코사인",
    "llm_wsd": "마지막에 1-sqrt 쿨다운을 하는 WSD",
    "fastai_one_cycle": "fastai 기본값의 원사이클",
    "sgdr_cifar": "웜 리스타트 코사인, 첫 주기 10 에폭, 2배씩",
}

#: the gallery's panel titles (lrkit.plot.GALLERY) and its title in Korean
GALLERY_KO = {
    "fixed, step and multistep": "고정, step, multistep",
    "exponential and time-based": "지수 감쇠와 시간 기반 감쇠",
    "polynomial, linear, cosine": "다항식, 선형, 코사인",
    "cosine with warm restarts": "웜 리스타트 코사인",
    "cyclical LR": "순환 학습률",
    "one-cycle": "원사이클",
    "warmup in front of any decay": "어떤 감쇠 앞에든 붙는 워밍업",
    "warmup-stable-decay": "WSD: 워밍업, 유지, 쿨다운",
    "recipes: ResNet and BERT fine-tuning": "레시피: ResNet과 BERT 파인튜닝",
}
GALLERY_KO_TITLE = "lrkit: 모든 학습률 전략, {total:,} 스텝 (에폭당 {spe:g} 스텝)"


#: the adaptive page's optimizers (SGD and momentum for reference), each at ADAPTIVE_LRS
ADAPTIVE = ("sgd", "momentum", "adagrad", "rmsprop", "adam", "adamw")
ADAPTIVE_LRS = tuple(float(f"{10**e:.3g}") for e in np.arange(-5.0, 0.01, 0.5))  # 1e-5 ... 1
ADAPTIVE_SEEDS = (0, 1)


@functools.cache
def _adaptive_sweep() -> dict[str, tuple[np.ndarray, int, list[float]]]:
    """Each optimizer's mean final accuracy at each LR of the grid, the index of its best LR and seed 0's
    training losses there (once, for every language). Prints each one's best LR and the LRs within 0.01
    of its best accuracy."""
    import torch

    from lrkit.tasks import DEFAULT_LR, get_task

    torch.set_num_threads(1)
    task = get_task(TASK)
    lrs = np.asarray(ADAPTIVE_LRS)
    sweep = {}
    for name in ADAPTIVE:
        runs = {
            (lr, seed): task.train_run(
                schedule=lambda step, lr=lr: lr, epochs=EPOCHS, seed=seed, optimizer=name
            )
            for lr in ADAPTIVE_LRS
            for seed in ADAPTIVE_SEEDS
        }
        acc = np.array(
            [
                np.mean([np.nan if runs[lr, s].diverged else runs[lr, s].metric for s in ADAPTIVE_SEEDS])
                for lr in ADAPTIVE_LRS
            ]
        )
        best = int(np.nanargmax(acc))
        good = lrs[acc >= acc[best] - 0.01]
        print(
            f"{name:9s} best lr {lrs[best]:g} (val acc {acc[best]:.3f}); within 0.01 of it: "
            f"{good.min():g} to {good.max():g}; at its usual lr {DEFAULT_LR[name]:g}: "
            f"{acc[ADAPTIVE_LRS.index(DEFAULT_LR[name])]:.3f}"
        )
        sweep[name] = (acc, best, runs[ADAPTIVE_LRS[best], 0].losses)
    return sweep


def adaptive_figure(out: Path, lang: str = "en") -> Any:
    """Each optimizer at 11 constant LRs, 1e-5 to 1 half a decade apart, on digits (10 epochs, seeds 0
    and 1). Left: the final validation accuracy (mean of the seeds) against the LR, the usual LR
    (:data:`lrkit.tasks.DEFAULT_LR`) circled. Right: the training loss at each optimizer's best LR of the
    grid, seed 0."""
    from lrkit.tasks import DEFAULT_LR

    sweep = _adaptive_sweep()
    lrs = np.asarray(ADAPTIVE_LRS)
    with _language(lang):
        plt = pyplot()
        fig, (ax_acc, ax_loss) = plt.subplots(1, 2, figsize=(12, 4.8), constrained_layout=True)
        for i, name in enumerate(ADAPTIVE):
            acc, best, losses = sweep[name]
            color, ls = f"C{i}", "--" if name == "adamw" else "-"  # AdamW dashed: on Adam's line up to 1e-2
            ax_acc.plot(
                lrs,
                acc,
                marker=".",
                color=color,
                ls=ls,
                lw=1.6,
                label=_t(lang, "adaptive_best", name=name, lr=lrs[best], acc=acc[best]),
            )
            ax_acc.plot(
                DEFAULT_LR[name],
                acc[ADAPTIVE_LRS.index(DEFAULT_LR[name])],
                "o",
                ms=10,
                mfc="none",
                color=color,
            )
            ax_loss.plot(
                np.arange(len(losses)),
                _ema(losses),
                color=color,
                ls=ls,
                lw=1.5,
                label=_t(lang, "adaptive_at", name=name, lr=lrs[best]),
            )
        fig.suptitle(_t(lang, "adaptive_title", task=TASK, epochs=EPOCHS), fontsize=13)
        ax_acc.set(
            xscale="log",
            xlabel=_t(lang, "lr_constant"),
            ylabel=_t(lang, "val_acc_mean", n=len(ADAPTIVE_SEEDS)),
            title=_t(lang, "acc_title"),
        )
        ax_loss.set(
            xlabel=_t(lang, "step_spe", spe=STEPS_PER_EPOCH),
            ylabel=_t(lang, "loss_ema"),
            yscale="log",
            title=_t(lang, "best_loss_title"),
        )
        for ax in (ax_acc, ax_loss):
            ax.grid(True, alpha=0.3, which="both")
            ax.legend(fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.14), frameon=False, ncols=2)
        return _save(fig, out)


@functools.cache
def _found() -> Any:
    """The LR range test on digits, 3 repeats (once, for every language)."""
    import torch

    from lrkit.tasks import get_task

    torch.set_num_threads(1)
    return get_task(TASK).find_lr(seed=0, repeats=3)


def finder_figure(out: Path, lang: str = "en") -> Any:
    """The LR range test on digits (3 repeats) with the suggestion and the interval."""
    found = _found()
    with _language(lang):
        ax = found.plot(title=_t(lang, "finder_title", task=TASK))
        if lang != "en":
            _relabel(ax.figure, KO_RELABEL)
        return _save(ax.figure, out)


@functools.cache
def _auto_run() -> tuple[Any, list[float]]:
    """lrkit.auto on digits, trained: the AutoResult and the training loss of every step after the search
    (once, for every language). ``train_task`` keeps the losses only to draw them (``plot=``) and returns
    neither: its ``AutoResult.plot`` call is caught here instead of drawing."""
    from unittest import mock

    import torch

    from lrkit.auto import AutoResult, train_task
    from lrkit.tasks import get_task

    torch.set_num_threads(1)
    torch.manual_seed(0)
    caught: list[tuple[Any, list[float]]] = []

    def catch(self: Any, path: Any = None, *, losses: Any = None, title: Any = None) -> None:
        caught.append((self, list(losses or [])))

    with mock.patch.object(AutoResult, "plot", catch):
        train_task(get_task(TASK).build(0), seed=0, plot="auto.png")
    return caught[0]


def auto_figure(out: Path, lang: str = "en") -> Any:
    """lrkit.auto on digits: the in-run ramp's curve, the LR at every step and the training loss."""
    from lrkit._paths import save_figure

    run, losses = _auto_run()
    if lang == "en":
        return run.plot(out, losses=losses)
    with _language(lang):
        fig = _relabel(run.plot(losses=losses), KO_RELABEL)
        out.parent.mkdir(parents=True, exist_ok=True)
        save_figure(fig, out, dpi=120)
        return fig


def plateau_figure(out: Path, lang: str = "en") -> Any:
    """Reduce-on-plateau on top of a cosine: a validation loss that stalls, and the cuts it causes."""
    from lrkit.control import Plateau

    epochs, spe = 60, 100
    sched = lrkit.parse("warmup(3ep) >> cosine(lr=0.1, min_lr=1e-3)").resolve(
        total_steps=epochs * spe, steps_per_epoch=spe
    )
    rng = np.random.default_rng(0)
    plateau = Plateau(mode="min", factor=0.5, patience=3)
    cut, level, val, mult = 1.0, 1.0, [], []
    for e in range(epochs):
        # a synthetic validation loss: falls for 12 epochs, then stalls; each cut buys a small drop
        level *= 0.9 if e < 12 else 1.0
        v = level + 0.01 * rng.standard_normal()
        val.append(v)
        if plateau.step(v):
            cut *= plateau.factor
            level *= 0.93
        mult.append(cut)
    steps = np.arange(epochs * spe)
    base = sched(steps)
    with_cuts = base * np.repeat(np.concatenate([[1.0], mult[:-1]]), spe)
    with _language(lang):
        plt = pyplot()
        fig, (ax_m, ax_lr) = plt.subplots(1, 2, figsize=(12, 4.4), constrained_layout=True)
        ax_m.plot(np.arange(1, epochs + 1), val, marker=".", color="C0")
        for e, (a, b) in enumerate(itertools.pairwise(mult), 2):
            if b < a:
                ax_m.axvline(e, color="C3", ls=":", lw=1)
        ax_m.set(
            xlabel=_t(lang, "epoch"),
            ylabel=_t(lang, "val_synthetic"),
            title=_t(lang, "plateau_watches"),
        )
        ax_lr.plot(steps / spe, base, color="C1", lw=1.5, label="warmup(3ep) >> cosine(lr=0.1, min_lr=1e-3)")
        ax_lr.plot(steps / spe, with_cuts, color="C3", lw=1.8, label=_t(lang, "with_plateau"))
        ax_lr.set(
            xlabel=_t(lang, "epoch"), ylabel=_t(lang, "lr"), yscale="log", title=_t(lang, "plateau_cuts")
        )
        for ax in (ax_m, ax_lr):
            ax.grid(True, alpha=0.3, which="both")
        ax_lr.legend(fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.14), frameon=False)
        return _save(fig, out)


def recipes_figure(out: Path, lang: str = "en") -> Any:
    """The recipes of ``lrkit recipes`` over 100 epochs of 100 steps, each divided by its own peak."""
    from lrkit.recipes import RECIPES

    missing = [name for name in RECIPES if lang != "en" and name not in RECIPES_KO]
    if missing:
        raise ValueError(f"RECIPES_KO: no Korean summary for the recipe(s) {', '.join(missing)}")
    total, spe = 10_000, 100
    t = np.arange(total + 1)
    with _language(lang):
        plt = pyplot()
        fig, ax = plt.subplots(figsize=(11, 5.2), constrained_layout=True)
        for name, recipe in RECIPES.items():
            s = recipe.build().resolve(total_steps=total, steps_per_epoch=spe)
            y = s(t)
            summary = recipe.summary if lang == "en" else RECIPES_KO[name]
            ax.plot(t / spe, np.where(y > 0, y / y.max(), np.nan), lw=1.6, label=f"{name}: {summary}")
        ax.set(
            xlabel=_t(lang, "epoch_spe", spe=spe),
            ylabel=_t(lang, "lr_peak"),
            yscale="log",
            ylim=(1e-4, 2),
            title=_t(lang, "recipes_title"),
        )
        ax.grid(True, alpha=0.3, which="both")
        ax.legend(fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.13), frameon=False, ncols=2)
        return _save(fig, out)


def scaling_figure(out: Path, lang: str = "en") -> Any:
    """lrkit.scaling.scale_lr: the linear rule (SGD) and the square-root rule (Adam) against the batch."""
    from lrkit.scaling import scale_lr

    batches = [2**k for k in range(5, 15)]
    lin = [scale_lr(0.1, base_batch=256, batch=b).lr for b in batches]
    sq = [scale_lr(1e-3, base_batch=256, batch=b, optimizer="adam").lr for b in batches]
    # scale_lr advises Goyal et al.'s 5-epoch warmup whenever the LR grows: every batch above 256
    assert all((scale_lr(0.1, base_batch=256, batch=b).warmup_epochs > 0) == (b > 256) for b in batches)
    with _language(lang):
        plt = pyplot()
        fig, ax = plt.subplots(figsize=(9, 4.8), constrained_layout=True)
        ax.plot(batches, np.asarray(lin) / 0.1, marker="o", label=_t(lang, "linear_rule"))
        ax.plot(batches, np.asarray(sq) / 1e-3, marker="s", label=_t(lang, "sqrt_rule"))
        ax.axvspan(256, max(batches), color="C2", alpha=0.08, label=_t(lang, "warmup_advised"))
        ax.axvline(8192, color="C3", ls=":", label=_t(lang, "goyal_8k"))
        ax.set(
            xscale="log",
            yscale="log",
            xlabel=_t(lang, "batch_size"),
            ylabel=_t(lang, "lr_at_256"),
            title=_t(lang, "scaling_title"),
        )
        ax.set_xticks(batches, [str(b) for b in batches])
        ax.grid(True, alpha=0.3, which="both")
        ax.legend(fontsize=8, loc="upper left")
        return _save(fig, out)


def quick_figure(out: Path, lang: str = "en") -> Any:
    """The index page's picture: one warmup + cosine over 1,000 steps."""
    with _language(lang):
        fig = plot_schedules(
            ["warmup(5%) >> cosine(lr=3e-4, min_lr=3e-5)", "one_cycle(max_lr=3e-4)"],
            1000,
            title=_t(lang, "quick_title"),
        )
        if lang != "en":
            _relabel(fig, KO_RELABEL)
        fig.set_size_inches(9, 4)
        return _save(fig, out)


def gallery_figure(
    out: Path, lang: str = "en", total_steps: int = 10_000, steps_per_epoch: float = 100
) -> Any:
    """Every strategy on one page: :func:`lrkit.plot.gallery` in English; in another language its panels
    (the same GALLERY, through plot_schedules) with their texts in that language (gallery draws its
    figure to a file, so its texts cannot be reached)."""
    if lang == "en":
        return gallery(out, total_steps, steps_per_epoch)
    from lrkit._paths import save_figure

    with _language(lang):
        plt = pyplot()
        fig, axes = plt.subplots(3, 3, figsize=(18, 15), constrained_layout=True)
        for ax, (title, specs, log) in zip(axes.flat, GALLERY):
            plot_schedules(
                specs, total_steps, log=log, steps_per_epoch=steps_per_epoch, title=GALLERY_KO[title], ax=ax
            )
            ax.legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.13), ncols=1, frameon=False)
        fig.suptitle(GALLERY_KO_TITLE.format(total=total_steps, spe=steps_per_epoch), fontsize=15)
        _relabel(fig, KO_RELABEL)
        out.parent.mkdir(parents=True, exist_ok=True)
        save_figure(fig, out, dpi=130)
        plt.close(fig)
        return fig


#: every figure: NAME -> its function (out, lang), which draws it from data computed once for all languages
FIGURES: dict[str, Callable[..., Any]] = {
    **{name: functools.partial(strategy_figure, name=name) for name in STRATEGIES},
    "adaptive": adaptive_figure,
    "finder": finder_figure,
    "auto": auto_figure,
    "plateau": plateau_figure,
    "recipes": recipes_figure,
    "scaling": scaling_figure,
    "quick": quick_figure,
    "gallery": gallery_figure,
}


def all_figures(docs: Path, langs: Sequence[str] = LANGS) -> dict[str, Callable[[], list[Path]]]:
    """NAME -> a job that draws that figure in each of ``langs`` and returns the files it wrote."""

    def job(name: str) -> list[Path]:
        paths = [_figure_path(docs, name, lang) for lang in langs]
        for path, lang in zip(paths, langs):
            FIGURES[name](path, lang=lang)
        return paths

    return {name: functools.partial(job, name) for name in FIGURES}


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    ap.add_argument("--out", type=Path, default=Path(__file__).resolve().parent, help="the docs folder")
    ap.add_argument("--only", nargs="*", default=None, help="figure names (default: all)")
    ap.add_argument(
        "--lang", nargs="+", choices=LANGS, default=list(LANGS), help="languages to draw (default: all)"
    )
    args = ap.parse_args(argv)
    jobs = all_figures(args.out, args.lang)
    names = args.only or list(jobs)
    unknown = [n for n in names if n not in jobs]
    if unknown:
        ap.error(f"--only: unknown figure(s) {', '.join(unknown)}; known: {', '.join(jobs)}")
    for name in names:
        for path in jobs[name]():
            print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
