"""The lab's report names each strategy's optimizer with its hyper-parameters (tester P, s30): the page,
lab.md and the console's table showed the optimizer's name alone (only runs.csv had its params), so two
strategies differing only in optimizer_params looked the same, and implicit settings (``momentum``'s
momentum=0.9, ``adamw``'s weight_decay=0.01) were invisible. Shown: the hyper-parameters that differ
from the class's defaults and those the name sets, in English and Korean."""

from __future__ import annotations

import inspect
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

torch = pytest.importorskip("torch")

from lrkit.cli import main  # noqa: E402
from lrkit.lab import report  # noqa: E402
from lrkit.lab.runner import LabResult, Strategy, run_lab  # noqa: E402
from lrkit.lab.store import RunRecord  # noqa: E402
from lrkit.tasks import OPTIMIZERS  # noqa: E402

TORCH_NAMES = [n for n, f in OPTIMIZERS.items() if f.module == "torch.optim"]
#: label -> the optimizer and the settings its table cell shows
SHOWN = {
    "AdamW wd0.1": ("adamw", ["betas=(0.9, 0.99)", "eps=1e-06", "weight_decay=0.1"]),
    "AdamW wd0.05": ("adamw", ["weight_decay=0.05"]),
    "RMSprop a0.9": ("rmsprop", ["alpha=0.9", "centered=true", "momentum=0.5"]),
    "Adam": ("adam", []),
    "task's": ("momentum", ["momentum=0.9"]),  # digits-mlp-sgd trains with momentum
}
#: label -> lab.md's (and the console's) optimizer cell
CELLS = {k: f"{name}({', '.join(args)})" if args else name for k, (name, args) in SHOWN.items()}


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, LabResult]]:
    out = tmp_path_factory.mktemp("lab")
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        result = run_lab(
            "digits-mlp-sgd",
            [
                Strategy(
                    "AdamW wd0.1",
                    "constant(1e-3)",
                    "adamw",
                    {"weight_decay": 0.1, "betas": [0.9, 0.99], "eps": 1e-6},
                ),
                Strategy("AdamW wd0.05", "constant(1e-3)", "adamw", {"weight_decay": 0.05}),
                Strategy(
                    "RMSprop a0.9",
                    "constant(1e-3)",
                    "rmsprop",
                    {"alpha": 0.9, "momentum": 0.5, "centered": True},
                ),
                Strategy("Adam", "constant(1e-3)", "adam", {"betas": [0.9, 0.999]}),  # torch's own
                Strategy("task's", "constant(1e-2)"),
            ],
            epochs=1,
            store=str(out / "lab.db"),
        )
    finally:
        torch.set_num_threads(n)
    yield out, result


def _md_rows(text: str) -> dict[str, list[str]]:
    rows = [line.split(" | ") for line in text.splitlines() if line.startswith("| ") and "---" not in line]
    return {r[0].removeprefix("| "): r for r in rows[1:]}


@pytest.mark.parametrize("lang", ["en", "ko"])
def test_lab_md_names_each_optimizer_with_its_hyper_parameters(
    lab: tuple[Path, LabResult], lang: str
) -> None:
    text = report.plain_markdown(report.markdown_table(lab[1], lang=lang))
    rows = _md_rows(text)
    assert {label: row[1] for label, row in rows.items()} == CELLS
    # the note's example: the first row (in the table's order) that shows settings (s32)
    name, args = next(SHOWN[label] for label in rows if SHOWN[label][1])
    example = f"{name}: {', '.join(args)}"
    note = {
        "en": "optimizer: its name, with the hyper-parameters that differ from torch's defaults and those "
        f"the name sets ({example}).",
        "ko": "옵티마이저: 이름과 함께 torch 기본값과 다른 하이퍼파라미터와 이름이 정하는 "
        f"값({example})을 적었습니다.",
    }[lang]
    assert text.splitlines()[-1] == note


@pytest.mark.parametrize("lang", ["en", "ko"])
def test_the_page_names_each_optimizer_with_its_hyper_parameters(
    lab: tuple[Path, LabResult], lang: str
) -> None:
    page = report.render_html(lab[1], lang=lang)
    for name, args in SHOWN.values():
        if args:  # a setting per unbreakable span: a narrow column breaks between settings only
            kv = " ".join(f'<span class="kv">{a}{"," if a != args[-1] else ""}</span>' for a in args)
            assert f'<td class="opt">{name}<br><code>{kv}</code></td>' in page, (name, args)
        else:
            assert f"<td>{name}</td>" in page
    assert ".opt .kv { white-space: nowrap; }" in page
    assert ("hyper-parameters that differ" if lang == "en" else "하이퍼파라미터") in page


def test_the_console_table_shows_them(
    lab: tuple[Path, LabResult], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    rc = main(["report", str(lab[0] / "lab.db"), "--out", str(tmp_path / "rep")])
    out = capsys.readouterr().out
    assert rc == 0
    rows = _md_rows(out)
    assert {label: row[1] for label, row in rows.items()} == CELLS


def test_a_strategy_not_run_yet_shows_its_own_and_the_tasks_settings() -> None:
    """A lab's strategy with no finished run (a killed lab): its own optimizer_params, or (naming no
    optimizer) the task's as a finished run of another strategy naming none trained with."""

    def run(label: str, params: dict[str, object]) -> RunRecord:
        return RunRecord(
            "k" + label,
            "constant(lr=0.01)",
            "sgd",
            0,
            "ok",
            0.5,
            0.5,
            None,
            1,
            0.1,
            label=label,
            config={"optimizer_params": params},
        )

    config = {
        "seeds": [0],
        "strategies": [
            {
                "label": "ran",
                "spec": "constant(lr=0.01)",
                "optimizer": None,
                "optimizer_params": {"dampening": 0.1},
            },
            {
                "label": "own",
                "spec": "constant(lr=0.01)",
                "optimizer": "adamw",
                "optimizer_params": {"eps": 1e-6},
            },
            {
                "label": "task",
                "spec": "constant(lr=0.01)",
                "optimizer": None,
                "optimizer_params": {"nesterov": True},
            },
        ],
    }
    asked, _ = report._asked_from(config, [run("ran", {"momentum": 0.8, "dampening": 0.1})])
    assert asked == (
        report.Asked("ran", "constant(lr=0.01)", "sgd", 1, {"momentum": 0.8, "dampening": 0.1}),
        report.Asked("own", "constant(lr=0.01)", "adamw", 1, {"eps": 1e-6}),
        report.Asked("task", "constant(lr=0.01)", "sgd", 1, {"momentum": 0.8, "nesterov": True}),
    )
    assert report.optimizer_text("adamw", {"eps": 1e-6}) == "adamw(eps=1e-06, weight_decay=0.01)"


def test_a_run_that_kept_no_params_shows_the_name() -> None:
    assert report.optimizer_text("momentum", None) == "momentum"
    assert report.optimizer_text("lbfgs", {"history_size": 5}) == "lbfgs(history_size=5)"  # not this lrkit's


def _class_defaults(name: str) -> dict[str, object]:
    return {
        a.name: a.default
        for a in inspect.signature(OPTIMIZERS[name].target()).parameters.values()
        if a.name not in ("self", "params", "lr") and isinstance(a.default, (bool, int, float))
    }


@settings(max_examples=80, deadline=None)
@given(name=st.sampled_from(TORCH_NAMES), data=st.data())
def test_shown_are_exactly_the_settings_that_differ_and_the_names_own(name: str, data: st.DataObject) -> None:
    defaults = _class_defaults(name)
    own = dict(OPTIMIZERS[name].defaults)
    keys = data.draw(st.lists(st.sampled_from(sorted(defaults)), unique=True))
    params: dict[str, object] = {}
    for k in keys:
        d = defaults[k]
        if isinstance(d, bool):
            params[k] = data.draw(st.booleans())
        else:
            params[k] = data.draw(st.sampled_from([d, float(d) * 0.5, float(d) + 0.25]))
    effective = {**own, **params}
    expected = {k: v for k, v in effective.items() if k in own or v != defaults[k]}
    text = report.optimizer_text(name, params)
    if not expected:
        assert text == name
    else:
        # values as the command line writes them (true/false), so the column reads back as --strategy
        args = ", ".join(
            f"{k}={str(v).lower() if isinstance(v, bool) else repr(v)}" for k, v in sorted(expected.items())
        )
        assert text == f"{name}({args})"
