"""The lab report's words, one catalogue per language: every sentence, heading, table header and figure
text of :mod:`lrkit.lab.report`, keyed by a message id, with ``str.format`` fields (``{m}``: the metric's
name; numbers, labels, specs and the CSV files are never translated, so they come in as fields).

Each language has every id of ``en`` with the same fields (tests/test_report_lang.py checks it). A count
(``"3 seeds"``) is two ids, ``count.seeds.one`` and ``count.seeds.other``: English inflects the noun,
Korean counts with ``개`` and does not. The Korean follows the wording of the Korean guide (docs/ko):
학습률, 워밍업, 발산, 학습하지 못함, 시드, 에폭, 스텝, 신뢰구간.
"""

from __future__ import annotations

import json
import string
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

__all__ = [
    "LANGS",
    "MESSAGES",
    "Messages",
    "Phrase",
    "Text",
    "check_lang",
    "dump_phrases",
    "fields",
    "load_phrases",
    "messages",
    "phrases",
]

EN: dict[str, str] = {
    # counts: ``{n}`` a whole number
    "count.strategies.one": "{n} strategy",
    "count.strategies.other": "{n} strategies",
    "count.seeds.one": "{n} seed",
    "count.seeds.other": "{n} seeds",
    "count.epochs.one": "{n} epoch",
    "count.epochs.other": "{n} epochs",
    # the title (the page's, lab.md's and the figure's): ``{name}`` the experiment's name, quoted
    "title": "lrkit lab {name}: {strategies} on {task}, {seeds}",
    "title.epochs": "{title}, {epochs}",
    # the summary table's header, one per column
    "header.strategy": "strategy",
    "header.optimizer": "optimizer",
    "header.n": "finished",
    "header.mean": "final {m}: mean",
    "header.sd": "sd",
    "header.ci": "95% CI",
    "header.epochs": "epochs to target",
    "header.seconds": "seconds to target",
    "header.diverged": "diverged",
    "header.stalled": "did not learn",
    "header.s/run": "s/run",
    # the summary table's cells
    "cell.all_diverged": "all diverged",
    "cell.none": "no finished run",
    "cell.seeds_reached": " ({reached}/{runs} seeds)",
    "cell.not_reached": "not reached",
    "cell.diverged_at": "{k}/{runs} at step {steps}",
    # the target rule, and where a CI is cut
    "target.none": "target: none (no run finished)",
    "target.given": "target: {m} {op} {target} (given)",
    "target.default": "target: {m} {op} {target}, within {fraction} of the best strategy's mean final {m}",
    "cut": ", cut at {m}'s range [{low}, {high}]",
    "cut.gap": ", cut at the gap's range [{low}, {high}]",
    "md.ci": "95% CI: mean ± t(0.975, n-1)·sd/√n over the finished seeds{cut}; n=1: no spread to report.",
    # under the summary table (lab.md's and the page's): what its optimizer column shows
    # ``{example}``: a row's optimizer and the settings its cell shows, as code ("momentum: momentum=0.9")
    "note.optimizer": "optimizer: its name, with the hyper-parameters that differ from torch's defaults "
    "and those the name sets ({example}).",
    "note.optimizer.plain": "optimizer: its name, with the hyper-parameters that differ from torch's "
    "defaults and those the name sets (no optimizer here shows any).",
    # a run's status (runs.csv keeps the English word)
    "status.ok": "ok",
    "status.diverged": "diverged",
    "status.did not learn": "did not learn",
    # the verdict: the page's and lab.md's first sentences
    "interval.ci": "{mean} (95% CI {low} to {high}{lost})",
    "interval.n": "{mean} (n={n}{lost})",
    "interval.lost": "; {k} of {runs} seeds diverged, not counted",
    "verdict.none": "No run finished (every run diverged).",
    "verdict.best": "Best: {label}, final {m} {interval}.",
    "verdict.runner_up.lower": " Runner-up: {label}, {interval}, {gap} lower.",
    "verdict.runner_up.higher": " Runner-up: {label}, {interval}, {gap} higher.",
    "verdict.runner_up.same": " Runner-up: {label}, {interval}, the same mean.",
    "verdict.paired.apart": " Paired by seed ({n} both finished), the gap is {mean} (95% CI {low} to "
    "{high}{cut}): the seeds separate the two.",
    "verdict.paired.same": " Paired by seed ({n} both finished), the gap is {mean} (95% CI {low} to "
    "{high}{cut}): the seeds do not separate the two.",
    "verdict.one_seed": " With one finished seed there is no CI: run more seeds to tell them apart.",
    "verdict.apart": " Their 95% CIs do not overlap.",
    "verdict.stalled_item": "{label} ({k} of {runs} seeds)",
    # the page
    # ``{strategies}``, ``{runs}``: counts ("1 strategy", "3 runs"); ``{seeds}``: page.meta.seeds.*
    "page.meta": "task {task} · experiment {id} ({name}) · {strategies} · {seeds}{epochs} · {runs} · "
    "database {db}",
    "page.meta.seeds.one": "seed {seeds}",
    "page.meta.seeds.other": "seeds {seeds}",
    "page.meta.epochs": " · {epochs}",
    "page.figure_failed": "figure failed to render: ",
    "page.summary": "Summary",
    "page.summary_note": "{target}; epochs and seconds (wall time since the run started, evaluation "
    "included) are means over the seeds that reached it. Final {m} over the finished seeds (diverged runs "
    "have none): mean, sample standard deviation, 95% confidence interval of the mean (Student t: mean ± "
    "t(0.975, n−1)·sd/√n{cut}); n=1: one finished seed, no spread to report.",
    "page.diverged": "Diverged runs",
    "page.stalled": "Runs that did not learn",
    "page.lr": "Learning rate",
    "page.loss": "Training loss",
    "page.metric": "Validation: {m}",
    "page.runs": "Runs",
    "alt.lr": "learning rate per optimizer step, per strategy",
    "alt.loss": "training loss per optimizer step, per strategy",
    "alt.metric": "{m} per epoch, per strategy",
    "note.lr.step_size": "{names}: the curve is the step size {step} the optimizer takes, not {lr}: it "
    "estimates {d} itself, and {lr} (the schedule's value, 1.0 by default) multiplies {d}.",
    "note.plateau": "{shown}: the strategy lowers its LR when the validation metric stops improving "
    "(reduce-on-plateau), with the settings that differ from the defaults ({cls}'s; the mode follows "
    "the metric).",
    # the tables of diverged runs, of runs that did not learn, and of every run
    "col.seed": "seed",
    "col.diverged_step": "diverged at step",
    "col.steps_run": "steps run",
    "col.lr_then": "LR at that step",
    "col.loss_then": "training loss at that step",
    "col.loss_last": "training loss, last epoch (mean)",
    "col.final": "final {m}",
    "col.best_m": "best {m}",
    "col.status": "status",
    "col.best": "best",
    "col.steps": "steps",
    "col.seconds": "seconds",
    "col.key": "key",
    "why.factor": "{loss} > {factor} × {first} (step 0)",
    "why.plain": "{loss} (step 0: {first})",
    "diverged.none": "No run diverged.",
    "diverged.note": "A run diverges, and stops, when its training loss is NaN/inf or exceeds diverge_factor "
    "(default 10) times its first step's loss; steps count from 0, so a run that diverged at step k ran k "
    "optimizer steps.",
    "runs.all": "all {n} runs",
    "runs.finished": "the {n} finished runs of {total}",
    # the note of a report made from a database whose experiment is not finished
    "note.missing": "{missing} of {total} runs are not finished (interrupted or still running); rerun the "
    "lab to finish them, this report shows the finished ones.",
    # the titles and notes of lrkit tune's report and the demo's (:class:`Phrase`s, kept in the database)
    "tune.title.finder": "tuned ({study}) vs finder and recipes",
    "tune.title.centre": "tuned ({study}) vs range centre and recipes",
    # since the baselines of a tune without the finder run at the tuned best's peak LR (centre: older labs)
    "tune.title.tuned_lr": "tuned ({study}) vs recipes at its peak LR",
    "tune.stopped": "The search stopped at its time budget ({budget}) with {finished} of the {trials} trials "
    "asked for; the tuned schedule is the best of those.",
    "tune.held_out": "The report's seeds {seeds}, held out: every trial trained on seed {train_seed}, so the "
    "tuned schedule is judged on seeds it was not chosen on (there, trial {trial} scored {m} {value}, the "
    "best of the study's trials).",
    "demo.title": "lrkit demo: {strategies} on {task}, {seeds} each",
    # the figures
    "fig.diverged": "{k}/{runs} diverged",
    "fig.stalled": "{k}/{runs} did not learn",
    "fig.step": "optimizer step",
    "fig.lr": "learning rate",
    "fig.lr_title": "learning rate (mean over seeds)",
    "fig.lr.step_size": "learning rate ({names}: step size {step})",
    "fig.loss": "training loss (smoothed)",
    "fig.loss_title": "training loss: mean over seeds, band min–max, x = diverged",
    "fig.loss_cut": " (on the top edge: beyond it)",
    "fig.epoch": "epoch",
    "trials.lr": "peak LR (log scale)",
    "trials.trial": "trial",
    "trials.best": "best so far",
    "trials.by_lr": "{metric} against the peak LR",
    "trials.by_trial": "{metric} by trial",
    "trials.title": "the search: {n} trials of study {study!r} on {task}",
    "trials.diverged": "diverged",
    "trials.pruned": "pruned (value at its last epoch)",
    "trials.searched": "LR range searched",
    # the names of the metrics lrkit's tasks measure (any other name is shown as it is)
    "metric.val accuracy": "val accuracy",
    "metric.val loss": "val loss",
    "why.grown": "{loss} > {first} + {k} × {size} = {threshold} (step 0: {first})",
    "status.metric not finite": "metric not finite",
    "cell.unmeasured": " ({k} metric not finite)",
    "interval.unmeasured": "; {k} of {runs} seeds ended with a metric that is not finite, not counted",
    "lost.diverged": "{k} of {runs} diverged",
    "lost.unmeasured": "{k} of {runs} ended with a metric that is not finite",
    "verdict.passed_over.higher": " {label}'s finished seeds average higher ({mean}), but {lost}.",
    "verdict.passed_over.lower": " {label}'s finished seeds average lower ({mean}), but {lost}.",
    "fig.unmeasured": "{k}/{runs} metric not finite",
    "verdict.paired.reverse": " Paired by seed ({n} both finished), the gap is {mean} (95% CI {low} to "
    "{high}{cut}): on the seeds both finished, the runner-up is better.",
    "header.best": "best {m} (any epoch, finished seeds)",
    "verdict.overlap.unpaired": " Their 95% CIs overlap, which does not show that they differ or that "
    "they do not: with fewer than two seeds both finished to pair them, {n} seeds cannot tell them "
    "apart.",
    "fig.metric_title": "{m}: mean over finished seeds, band min–max",
    "fig.metric_none": "no run finished with a finite {m}: nothing to draw",
    "verdict.tie.one": " {names} ends with the same mean as {label}.",
    "verdict.tie.other": " {names} end with the same mean as {label}.",
    "verdict.stalled.untrained": " Did not learn (last epoch's training loss no lower than the untrained "
    "model's): {names}.",
    "col.loss_start": "loss of the untrained model",
    "stalled.none.untrained": "Every finished run ended with its last epoch's training loss below the "
    "untrained model's.",
    # the training loss from the untrained model's to the last epoch's (report.loss_change_text); the
    # strategy's label is quoted: it may have a colon of its own ("too small: constant 0.0015")
    "change.run": "'{label}'",
    "change.run.seed": "'{label}' (seed {seed})",
    "change.one": "Training loss from the untrained model to the last epoch: {run}, {start} → {last} "
    "({change}) in {epochs}.",
    "change.least": "Training loss from the untrained model to the last epoch, the run whose loss fell "
    "least: {run}, {start} → {last} ({change}) in {epochs}.",
    "change.most": " The one whose loss fell most: {run}, {start} → {last} ({change}).",
    "stalled.note.untrained": "These runs finished without diverging but did not learn: the last epoch's "
    "mean training loss is no lower than the untrained model's loss, measured on the validation set "
    "before the first step (before training, training and validation loss have the same expectation; a "
    "lab from before lrkit measured it compared with the first step's loss, one batch's). Such a run's "
    "final metric is typically near the untrained model's (chance, for a classifier); the summary still "
    "counts it. A run that learns slowly lowers its loss and is not listed here.",
    "count.runs.one": "{n} run",
    "count.runs.other": "{n} runs",
    # what the runs ran with (report.environments): a package's name and version are shown as they are
    # (``{torch}``: "torch 2.13.0"), Python's version is ``{python}``
    "env.threads.one": "{n} {torch} thread",
    "env.threads.other": "{n} {torch} threads",
    "env.versions": "{lrkit}, {torch}, Python {python}, {numpy}, {threads}",
    "env.ran": "Ran with {items}.",
    "env.runs": "{env} ({runs})",
    "env.unknown": "{runs} from an lrkit that did not record versions",
    "env.none": "{runs} from an lrkit that did not record versions.",
}

KO: dict[str, str] = {
    "count.strategies.one": "전략 {n}개",
    "count.strategies.other": "전략 {n}개",
    "count.seeds.one": "시드 {n}개",
    "count.seeds.other": "시드 {n}개",
    "count.epochs.one": "{n} 에폭",
    "count.epochs.other": "{n} 에폭",
    "title": "lrkit lab {name}: {task}에서 {strategies}, {seeds}",
    "title.epochs": "{title}, {epochs}",
    "header.strategy": "전략",
    "header.optimizer": "옵티마이저",
    "header.n": "끝난 시드",
    "header.mean": "최종 {m}: 평균",
    "header.sd": "표준편차",
    "header.ci": "95% 신뢰구간",
    "header.epochs": "목표까지 에폭",
    "header.seconds": "목표까지 시간(초)",
    "header.diverged": "발산",
    "header.stalled": "학습하지 못함",
    "header.s/run": "실행당 시간(초)",
    "cell.all_diverged": "모두 발산",
    "cell.none": "끝난 실행 없음",
    "cell.seeds_reached": " (시드 {reached}/{runs})",
    "cell.not_reached": "도달하지 못함",
    "cell.diverged_at": "{k}/{runs}, 스텝 {steps}",
    "target.none": "목표: 없음 (끝난 실행이 없음)",
    "target.given": "목표: {m} {op} {target} (지정한 값)",
    "target.default": "목표: {m} {op} {target}, 최고 전략의 최종 {m} 평균에서 {fraction} 이내",
    "cut": ", {m}의 범위 [{low}, {high}]에서 자름",
    "cut.gap": ", 차이의 범위 [{low}, {high}]에서 자름",
    "md.ci": "95% 신뢰구간: 끝난 시드들의 평균 ± t(0.975, n-1)·표준편차/√n{cut}; n=1: 시드가 하나라 퍼짐이 "
    "없음.",
    "note.optimizer": "옵티마이저: 이름과 함께 torch 기본값과 다른 하이퍼파라미터와 이름이 정하는 값"
    "({example})을 적었습니다.",
    "note.optimizer.plain": "옵티마이저: 이름과 함께 torch 기본값과 다른 하이퍼파라미터와 이름이 정하는 "
    "값을 적었습니다. 이 표의 옵티마이저에는 그런 값이 없습니다.",
    "status.ok": "학습함",
    "status.diverged": "발산",
    "status.did not learn": "학습하지 못함",
    "interval.ci": "{mean} (95% 신뢰구간 {low}~{high}{lost})",
    "interval.n": "{mean} (n={n}{lost})",
    "interval.lost": "; 시드 {runs}개 중 {k}개는 발산해 빠짐",
    "verdict.none": "끝까지 돈 실행이 없습니다(모든 실행이 발산).",
    "verdict.best": "최고: {label}, 최종 {m} {interval}.",
    "verdict.runner_up.lower": " 2위: {label}, {interval}, {gap}만큼 낮음.",
    "verdict.runner_up.higher": " 2위: {label}, {interval}, {gap}만큼 높음.",
    "verdict.runner_up.same": " 2위: {label}, {interval}, 평균이 같음.",
    "verdict.paired.apart": " 시드별로 짝지으면(둘 다 끝난 시드 {n}개) 차이는 {mean}"
    "(95% 신뢰구간 {low}~{high}{cut})이므로, 시드들이 둘을 구별합니다.",
    "verdict.paired.same": " 시드별로 짝지으면(둘 다 끝난 시드 {n}개) 차이는 {mean}"
    "(95% 신뢰구간 {low}~{high}{cut})이므로, 시드들이 둘을 구별하지 못합니다.",
    "verdict.one_seed": " 끝난 시드가 하나뿐이라 신뢰구간이 없습니다: 둘을 가리려면 시드를 더 돌리세요.",
    "verdict.apart": " 두 95% 신뢰구간이 겹치지 않습니다.",
    "verdict.stalled_item": "{label} (시드 {runs}개 중 {k}개)",
    "page.meta": "과제 {task} · 실험 {id} ({name}) · {strategies} · {seeds}{epochs} · {runs} · "
    "데이터베이스 {db}",
    "page.meta.seeds.one": "시드 {seeds}",
    "page.meta.seeds.other": "시드 {seeds}",
    "page.meta.epochs": " · {epochs}",
    "page.figure_failed": "그림을 표시하지 못했습니다: ",
    "page.summary": "요약",
    "page.summary_note": "{target}. 목표까지 에폭과 시간(실행을 시작한 뒤 흐른 실제 초, 평가 포함)은 "
    "목표에 닿은 시드들의 평균입니다. 최종 {m}: 끝까지 돈 시드들(발산한 실행은 값이 없음)의 평균, 표본 "
    "표준편차, 평균의 95% 신뢰구간(스튜던트 t: 평균 ± t(0.975, n−1)·표준편차/√n{cut}). n=1: 끝난 시드가 "
    "하나라 퍼짐이 없음.",
    "page.diverged": "발산한 실행",
    "page.stalled": "학습하지 못한 실행",
    "page.lr": "학습률",
    "page.loss": "학습 손실",
    "page.metric": "검증: {m}",
    "page.runs": "모든 실행",
    "alt.lr": "전략별, 옵티마이저 스텝별 학습률",
    "alt.loss": "전략별, 옵티마이저 스텝별 학습 손실",
    "alt.metric": "전략별, 에폭별 {m}",
    "note.lr.step_size": "{names}: 곡선은 {lr}이 아니라 옵티마이저가 실제로 내딛는 보폭 {step}입니다. {d}는 "
    "옵티마이저가 스스로 추정하고, {lr}(스케줄의 값, 기본 1.0)은 {d}에 곱하는 배율입니다.",
    # 'reduce-on-plateau' itself would be English in a Korean report: the guide's Korean name instead
    "note.plateau": "{shown}: 검증 지표가 더 나아지지 않으면 학습률을 줄이는 전략입니다(정체 시 학습률 "
    "감소). 괄호 안은 기본값({cls}의 값, 방향은 지표를 따름)과 다른 설정입니다.",
    "col.seed": "시드",
    "col.diverged_step": "발산한 스텝",
    "col.steps_run": "실행한 스텝 수",
    "col.lr_then": "그 스텝의 학습률",
    "col.loss_then": "그 스텝의 학습 손실",
    "col.loss_last": "마지막 에폭의 학습 손실 (평균)",
    "col.final": "최종 {m}",
    "col.best_m": "최고 {m}",
    "col.status": "상태",
    "col.best": "최고",
    "col.steps": "스텝",
    "col.seconds": "시간(초)",
    "col.key": "키",
    "why.factor": "{loss} > {factor} × {first} (스텝 0)",
    "why.plain": "{loss} (스텝 0: {first})",
    "diverged.none": "발산한 실행이 없습니다.",
    "diverged.note": "학습 손실이 NaN/inf가 되거나 첫 스텝 손실의 diverge_factor배(기본 10배)를 넘으면 "
    "실행은 발산한 것이고, 거기서 멈춥니다. 스텝은 0부터 세므로, 스텝 k에서 발산한 실행은 옵티마이저 스텝을 "
    "k번 밟았습니다.",
    "runs.all": "실행 {n}개 모두",
    "runs.finished": "실행 {total}개 중 끝난 {n}개",
    "note.missing": "실행 {total}개 중 {missing}개가 끝나지 않았습니다(중단되었거나 아직 도는 중). 실험을 "
    "다시 돌리면 마저 끝내며, 이 보고서는 끝난 실행만 보여 줍니다.",
    "tune.title.finder": "튜닝한 스케줄({study}) 대 학습률 탐색기의 스케줄과 레시피",
    "tune.title.centre": "튜닝한 스케줄({study}) 대 학습률 범위 중심의 스케줄과 레시피",
    "tune.title.tuned_lr": "튜닝한 스케줄({study}) 대 같은 최대 학습률의 레시피",
    "tune.stopped": "탐색은 시간 예산({budget})에 닿아 멈췄습니다: 요청한 시도 {trials}개 중 {finished}개가 "
    "끝났고, 튜닝한 스케줄은 그중 최고입니다.",
    "tune.held_out": "보고서의 시드({seeds})는 튜닝에서 떼어 둔 시드입니다: 모든 시도는 시드 {train_seed} "
    "하나로 학습했으므로, 튜닝한 스케줄은 고를 때 쓰지 않은 시드로 평가됩니다(시드 {train_seed}에서는 "
    "{trial}번 시도가 스터디의 시도 중 최고였습니다: {m} {value}).",
    "demo.title": "lrkit 데모: {task}에서 {strategies}, 각각 {seeds}",
    "fig.diverged": "{k}/{runs} 발산",
    "fig.stalled": "{k}/{runs} 학습하지 못함",
    "fig.step": "옵티마이저 스텝",
    "fig.lr": "학습률",
    "fig.lr_title": "학습률 (시드 평균)",
    "fig.lr.step_size": "학습률 ({names}: 보폭 {step})",
    "fig.loss": "학습 손실 (평활화)",
    "fig.loss_title": "학습 손실: 시드 평균, 띠는 최솟값–최댓값, x = 발산",
    "fig.loss_cut": " (위쪽 가장자리의 x: 축 위로 벗어남)",
    "fig.epoch": "에폭",
    "trials.lr": "최대 학습률 (로그 스케일)",
    "trials.trial": "시도",
    "trials.best": "지금까지의 최고",
    "trials.by_lr": "최대 학습률에 따른 {metric}",
    "trials.by_trial": "시도별 {metric}",
    "trials.title": "탐색: {task}에서 스터디 {study!r}의 시도 {n}개",
    "trials.diverged": "발산",
    "trials.pruned": "가지치기됨 (마지막 에폭의 값)",
    "trials.searched": "탐색한 학습률 범위",
    "metric.val accuracy": "검증 정확도",
    "metric.val loss": "검증 손실",
    "why.grown": "{loss} > {first} + {k} × {size} = {threshold} (스텝 0: {first})",
    "status.metric not finite": "지표가 유한하지 않음",
    "cell.unmeasured": " (지표가 유한하지 않음 {k})",
    "interval.unmeasured": "; 시드 {runs}개 중 {k}개는 최종 지표가 유한하지 않아 빠짐",
    "lost.diverged": "시드 {runs}개 중 {k}개가 발산함",
    "lost.unmeasured": "시드 {runs}개 중 {k}개는 최종 지표가 유한하지 않음",
    "verdict.passed_over.higher": " {label}의 끝난 시드들의 평균은 더 높지만({mean}), {lost}.",
    "verdict.passed_over.lower": " {label}의 끝난 시드들의 평균은 더 낮지만({mean}), {lost}.",
    "fig.unmeasured": "{k}/{runs} 지표가 유한하지 않음",
    "verdict.paired.reverse": " 시드별로 짝지으면(둘 다 끝난 시드 {n}개) 차이는 {mean}(95% 신뢰구간 "
    "{low}~{high}{cut})이므로, 둘 다 끝난 시드들에서는 2위가 더 낫습니다.",
    "header.best": "최고 {m} (모든 에폭, 끝난 시드 중)",
    "verdict.overlap.unpaired": " 두 95% 신뢰구간이 겹치지만, 그것만으로는 둘이 다른지 같은지 알 수 "
    "없습니다: 둘 다 끝난 시드가 둘보다 적어 짝지을 수 없으니, 시드 {n}개로는 둘을 가릴 수 없습니다.",
    "fig.metric_title": "{m}: 끝난 시드 평균, 띠는 최솟값–최댓값",
    "fig.metric_none": "{m} 값이 유한한 채로 끝난 실행이 없어 그릴 것이 없음",
    "verdict.tie.one": " {names}의 평균도 {label}의 평균과 같습니다.",
    "verdict.tie.other": " {names}의 평균도 {label}의 평균과 같습니다.",
    "verdict.stalled.untrained": " 학습하지 못함(마지막 에폭의 학습 손실이 학습 전 모델의 손실보다 낮지 "
    "않음): {names}.",
    "col.loss_start": "학습 전 모델의 손실",
    "stalled.none.untrained": "끝까지 돈 실행은 모두 마지막 에폭의 학습 손실이 학습 전 모델의 손실보다 "
    "낮습니다.",
    "change.run": "'{label}'",
    "change.run.seed": "'{label}' (시드 {seed})",
    "change.one": "학습 전 모델에서 마지막 에폭까지 학습 손실: {run}, {start} → {last}({change}, {epochs}).",
    "change.least": "학습 전 모델에서 마지막 에폭까지 학습 손실이 가장 적게 줄어든 실행: {run}, {start} → "
    "{last}({change}, {epochs}).",
    "change.most": " 가장 많이 줄어든 실행: {run}, {start} → {last}({change}).",
    "stalled.note.untrained": "이 실행들은 발산하지 않고 끝까지 돌았지만 학습하지 못했습니다: 마지막 "
    "에폭의 평균 학습 손실이 첫 스텝 전에 검증 세트에서 잰 학습 전 모델의 손실보다 낮지 않습니다(학습 "
    "전에는 학습 손실과 검증 손실의 기댓값이 같습니다. 이 값을 재기 전의 lrkit으로 돌린 실험은 첫 "
    "스텝의 손실, 즉 배치 하나의 손실과 비교했습니다). 이런 실행의 최종 지표는 보통 학습 전 모델의 "
    "값(분류기라면 우연 수준) 근처이며, 요약 표는 이 실행도 셉니다. 느리게 학습하는 실행은 손실을 "
    "낮추므로 여기에 나오지 않습니다.",
    "count.runs.one": "실행 {n}개",
    "count.runs.other": "실행 {n}개",
    "env.threads.one": "{torch} 스레드 {n}개",
    "env.threads.other": "{torch} 스레드 {n}개",
    "env.versions": "{lrkit}, {torch}, 파이썬 {python}, {numpy}, {threads}",
    "env.ran": "실행 환경: {items}.",
    "env.runs": "{env} ({runs})",
    "env.unknown": "버전을 기록하지 않던 lrkit으로 돌린 {runs}",
    "env.none": "실행 환경: 버전을 기록하지 않던 lrkit으로 돌린 {runs}.",
}

#: the catalogues by language; ``en`` is the reference every other has the ids and fields of
MESSAGES: dict[str, dict[str, str]] = {"en": EN, "ko": KO}
#: the report's languages
LANGS = tuple(MESSAGES)


def check_lang(lang: object, name: str = "lang") -> str:
    """``lang`` if it is one of :data:`LANGS`; else a ValueError naming ``name``, the value and the
    choices."""
    if not isinstance(lang, str) or lang not in MESSAGES:
        raise ValueError(f"{name}: expected one of {', '.join(map(repr, LANGS))}, got {lang!r}")
    return lang


def fields(template: str) -> set[str]:
    """The names of ``template``'s ``str.format`` fields."""
    return {f for _, f, _, _ in string.Formatter().parse(template) if f is not None}


@dataclass(frozen=True)
class Phrase:
    """A message not yet in a language: its id and its fields' values, each a number, text shown as it is
    (a name, a spec, a duration) or a phrase; the field ``m`` is a metric's name, shown as
    :meth:`Messages.metric` says. A title or note lrkit composes (``lrkit tune``'s, the demo's) is a
    sequence of phrases, kept with the lab's database (:func:`dump_phrases`), so that ``lrkit report``
    says it in any language (:meth:`Messages.say`)."""

    key: str
    values: Mapping[str, object] = field(default_factory=dict)

    @classmethod
    def count(cls, noun: str, n: int) -> Phrase:
        """``"3 seeds"``: :meth:`Messages.count` as a phrase."""
        return cls(f"count.{noun}.{'one' if n == 1 else 'other'}", {"n": n})


#: a title or note: text shown as it is (in whatever language it was written), or phrases lrkit says in
#: the report's language, one after another
Text = str | Phrase | Sequence[Phrase]


def phrases(text: Text | None) -> tuple[Phrase, ...] | None:
    """``text``'s phrases; None for text shown as it is (a ``str``) and for None."""
    if text is None or isinstance(text, str):
        return None
    return (text,) if isinstance(text, Phrase) else tuple(text)


def _to_json(value: object) -> object:
    if isinstance(value, Phrase):
        return {"id": value.key, "fields": {k: _to_json(v) for k, v in value.values.items()}}
    if isinstance(value, (str, int, float)):
        return value
    raise TypeError(f"a phrase's field: expected a number, text or a Phrase, got {value!r}")


def dump_phrases(text: Sequence[Phrase]) -> str:
    """``text`` as JSON, for the database: ``[{"id": ..., "fields": {...}}, ...]``."""
    return json.dumps([_to_json(p) for p in text], ensure_ascii=False, sort_keys=True)


def _from_json(value: object) -> object:
    if isinstance(value, dict):
        key, values = value.get("id"), value.get("fields")
        if not isinstance(key, str) or not isinstance(values, dict) or set(value) != {"id", "fields"}:
            raise ValueError(f"expected a phrase, {{'id': ..., 'fields': {{...}}}}, got {value!r}")
        if key not in EN:
            raise ValueError(f"no message {key!r} in this lrkit's catalogue")
        return Phrase(key, {str(k): _from_json(v) for k, v in values.items()})
    if isinstance(value, (str, int, float)) and not isinstance(value, bool):
        return value
    raise ValueError(f"a phrase's field: expected a number, text or a phrase, got {value!r}")


def load_phrases(text: str) -> tuple[Phrase, ...]:
    """The phrases :func:`dump_phrases` wrote; a ValueError for anything else (a message this lrkit does not
    know, from a newer one, included)."""
    items = json.loads(text)
    if not isinstance(items, list):
        raise ValueError(f"expected a list of phrases, got {items!r}")
    out = []
    for item in items:
        phrase = _from_json(item)
        if not isinstance(phrase, Phrase):
            raise ValueError(f"expected a phrase, got {item!r}")
        out.append(phrase)
    return tuple(out)


@dataclass(frozen=True)
class Messages:
    """One language's catalogue: ``t("id", field=value)`` is the message, formatted; ``t.count("seeds",
    n)`` a count."""

    lang: str

    def __call__(self, key: str, **values: object) -> str:
        return MESSAGES[self.lang][key].format(**values)

    def count(self, noun: str, n: int) -> str:
        return self.say(Phrase.count(noun, n))

    def say(self, text: Phrase | Sequence[Phrase]) -> str:
        """Phrases in this language, one after another (a space between); a field that is a phrase is said
        first, the field ``m`` is a metric's name (:meth:`metric`). A KeyError for a message or field this
        catalogue does not have."""
        if isinstance(text, Phrase):
            values = {k: self.say(v) if isinstance(v, Phrase) else v for k, v in text.values.items()}
            if "m" in values:
                values["m"] = self.metric(str(values["m"]))
            return self(text.key, **values)
        return " ".join(self.say(p) for p in text)

    def text(self, text: Text | None) -> str | None:
        """A title or note: text as it is, phrases said in this language (:meth:`say`)."""
        return text if text is None or isinstance(text, str) else self.say(text)

    def metric(self, name: str) -> str:
        """A metric's name as the report shows it: lrkit's own (``val accuracy``) in this language, any
        other as it is."""
        return MESSAGES[self.lang].get(f"metric.{name}", name)

    def status(self, status: str) -> str:
        """A run's status (:func:`lrkit.lab.report.fate`) in this language; an unknown one as it is."""
        return MESSAGES[self.lang].get(f"status.{status}", status)


def messages(lang: str, name: str = "lang") -> Messages:
    """The catalogue of ``lang`` (checked: :func:`check_lang` under ``name``)."""
    return Messages(check_lang(lang, name))
