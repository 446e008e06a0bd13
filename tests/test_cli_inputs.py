"""Bad input on the command line, class by class: output paths, numbers, recipe names, user modules.

Every case drives ``lrkit.cli.main([...])`` in-process and checks the contract: a non-zero exit, exactly
one ``lrkit CMD: error:`` line naming the flag or the value, no traceback through lrkit's own code (a
user's exception may show the user's own frames, below the lrkit line), nothing printed on stdout and no
file written.
"""

from __future__ import annotations

import json
import math
import os
import re
import textwrap
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import lrkit
from lrkit.cli import main

LRKIT_SRC = str(Path(lrkit.__file__).resolve().parent)
ERROR_LINE = re.compile(r"^lrkit( [a-z]+)?: error: ")
FUZZ = settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


def invoke(capsys: pytest.CaptureFixture[str], argv: list[str]) -> tuple[int, str, str]:
    try:
        code = main(argv)
    except SystemExit as exc:  # argparse's own errors
        code = exc.code if isinstance(exc.code, int) else 1
    out, err = capsys.readouterr()
    return code, out, err


def files_under(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*"))


def assert_one_error(
    code: int, out: str, err: str, *words: str, user_traceback: bool = False, stdout: bool = False
) -> str:
    """The contract; returns the error line."""
    assert code != 0, (code, out, err)
    lines = [line for line in err.splitlines() if ERROR_LINE.match(line)]
    assert len(lines) == 1, err
    for word in words:
        assert word in lines[0], (word, lines[0])
    assert LRKIT_SRC not in err, err  # no frame of lrkit's own code
    before, _, after = err.partition(lines[0])
    assert "Traceback" not in before, err
    if not user_traceback:
        assert "Traceback" not in after, err
    if not stdout:
        assert out == "", out
    return lines[0]


# ---------------------------------------------------------------------------------------------------
# output paths: a folder, under a file, unwritable, names the file system refuses

FIND = ["find", "--task", "digits-mlp-adam", "--num-steps", "20", "--repeats", "1"]
OUTPUTS = {
    "plot --out": (["plot", "cosine(lr=0.1)", "--total", "50", "--out"], [], "--out"),
    "gallery --out": (["gallery", "--total", "50", "--out"], [], "--out"),
    "find --out": ([*FIND, "--out"], [], "--out"),
    "find --json": ([*FIND, "--json"], ["--out", "none"], "--json"),
}


@pytest.fixture
def workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A folder ``adir.png/``, a file ``afile`` and a read-only folder ``ro/``; the current directory."""
    (tmp_path / "adir.png").mkdir()
    (tmp_path / "afile").write_text("not a folder")
    (tmp_path / "ro").mkdir()
    (tmp_path / "ro").chmod(0o500)
    monkeypatch.chdir(tmp_path)
    yield tmp_path
    (tmp_path / "ro").chmod(0o700)


def unwritable(root: Path) -> str:
    """A path that cannot be written: a read-only folder, or (as root, who may write anywhere) /sys."""
    if os.geteuid() != 0:
        return "ro/x.png"
    if not Path("/sys").is_dir():
        pytest.skip("running as root and no /sys to stand in for an unwritable folder")
    return f"/sys/lrkit-{uuid.uuid4().hex}.png"


PATH_KINDS = {
    "a folder": "adir.png",
    "under a file": "afile/x.png",
    "deep under a file": "afile/sub/x.png",
    "unwritable": None,  # see unwritable()
    "NUL byte": "a\0b.png",
    "name too long": "x" * 300 + ".png",
}


@pytest.mark.parametrize("kind", list(PATH_KINDS))
@pytest.mark.parametrize("output", list(OUTPUTS))
def test_bad_output_path(workdir: Path, capsys: pytest.CaptureFixture[str], output: str, kind: str) -> None:
    head, tail, flag = OUTPUTS[output]
    path = PATH_KINDS[kind] or unwritable(workdir)
    before = files_under(workdir)
    code, out, err = invoke(capsys, [*head, path, *tail])
    as_root_on_sys = kind == "unwritable" and path.startswith("/sys")
    # as root only the write itself can fail (after the run, so find has printed its result)
    line = assert_one_error(code, out, err, stdout=as_root_on_sys and output.startswith("find"))
    assert repr(path) in line or path in line
    if not as_root_on_sys:
        assert flag in line
    assert files_under(workdir) == before
    if as_root_on_sys:
        assert not Path(path).exists()


@FUZZ
@given(
    name=st.from_regex(r"[a-z][a-z0-9_]{0,10}", fullmatch=True),
    kind=st.sampled_from(["dir", "under_file"]),
    output=st.sampled_from(["plot --out", "gallery --out"]),
)
def test_bad_output_path_fuzz(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    name: str,
    kind: str,
    output: str,
) -> None:
    root = tmp_path / uuid.uuid4().hex
    root.mkdir()
    monkeypatch.chdir(root)
    if kind == "dir":
        (root / f"{name}.svg").mkdir()
        path = f"{name}.svg"
    else:
        (root / name).write_text("")
        path = f"{name}/{name}.png"
    head, tail, flag = OUTPUTS[output]
    before = files_under(root)
    code, out, err = invoke(capsys, [*head, path, *tail])
    assert_one_error(code, out, err, flag, repr(path))
    assert files_under(root) == before


def test_good_output_paths_still_work(workdir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Missing parent folders are created; a file lrkit wrote is overwritten (a re-run); a file it did
    not write is not (tests/test_output_ownership.py)."""
    for path in ("new/sub/a.png", "new/sub/a.png"):
        code, out, err = invoke(capsys, ["plot", "cosine(lr=0.1)", "--total", "20", "--out", path])
        assert code == 0 and out.strip() == f"wrote {path}", err
        assert Path(path).read_bytes()[:4] == b"\x89PNG"


# ---------------------------------------------------------------------------------------------------
# numbers: NaN, inf, huge, negative, zero, not a number

HUGE = "1" + "0" * 400
SPE = ["show", "step(lr=0.1, step_size=3ep)", "--total", "10", "--steps-per-epoch"]
NUMBERS = [
    (["show", "cosine(lr=1)", "--total", "10", "--at"], "nan", "--at"),
    (["show", "cosine(lr=1)", "--total", "10", "--at"], "inf", "--at"),
    (["show", "cosine(lr=1)", "--total", "10", "--at"], "-inf", "--at"),
    (["show", "cosine(lr=1)", "--total", "10", "--at"], "-1", "--at"),
    (["show", "cosine(lr=1)", "--total", "10", "--at"], "0,5,NaN", "--at"),
    (["show", "cosine(lr=1)", "--total", "10", "--at"], "1e400", "--at"),
    (["show", "cosine(lr=1)", "--total", "10", "--json", "--at"], "nan", "--at"),
    (["show", "cosine(lr=1)", "--total", "10", "--json", "--at"], "inf", "--at"),
    (["show", "cosine(lr=1)", "--total"], "0", "--total"),
    (["show", "cosine(lr=1)", "--total"], "-5", "--total"),
    (["show", "cosine(lr=1)", "--total"], "nan", "--total"),
    (["show", "cosine(lr=1)", "--total"], "1e3", "--total"),
    (["show", "cosine(lr=1)", "--total"], HUGE, "--total"),
    (["show", "cosine(lr=1)", "--total"], "9" * 5000, "--total"),
    (["plot", "cosine(lr=1)", "--out", "p.png", "--total"], "10000000000000", "--total"),
    (["plot", "cosine(lr=1)", "--out", "p.png", "--total"], HUGE, "--total"),
    (["plot", "cosine(lr=1)", "--out", "p.png", "--total"], "0", "--total"),
    (["gallery", "--out", "g.png", "--total"], "10000000000000", "--total"),
    (["gallery", "--out", "g.png", "--total"], "-1", "--total"),
    (["scale", "--base-batch", "1", "--batch", "2", "--lr"], "nan", "--lr"),
    (["scale", "--base-batch", "1", "--batch", "2", "--lr"], "inf", "--lr"),
    (["scale", "--base-batch", "1", "--batch", "2", "--lr"], "-0.1", "--lr"),
    (["scale", "--base-batch", "1", "--batch", "2", "--lr"], "0", "--lr"),
    (["scale", "--base-batch", "1", "--batch", "2", "--lr"], "1e400", "--lr"),
    (["scale", "--base-batch", "1", "--batch", "1000000", "--lr"], "1e308", "--lr"),
    (["scale", "--base-batch", "1000000", "--batch", "1", "--lr"], "5e-324", "--lr"),
    (["scale", "--lr", "0.1", "--base-batch", "1", "--batch"], "0", "--batch"),
    (["scale", "--lr", "0.1", "--base-batch", "1", "--batch"], HUGE, "--batch"),
    (["scale", "--lr", "0.1", "--batch", "1", "--base-batch"], "-3", "--base-batch"),
    (SPE, "nan", "--steps-per-epoch"),
    (SPE, "inf", "--steps-per-epoch"),
    (SPE, "0", "--steps-per-epoch"),
    (SPE, "-2", "--steps-per-epoch"),
]  # fmt: skip


@pytest.mark.parametrize(
    ("head", "value", "flag"), NUMBERS, ids=[f"{h[0]} {f}={v[:12]}" for h, v, f in NUMBERS]
)
def test_bad_number(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    head: list[str],
    value: str,
    flag: str,
) -> None:
    monkeypatch.chdir(tmp_path)
    code, out, err = invoke(capsys, [*head, value])
    assert_one_error(code, out, err, flag)
    assert files_under(tmp_path) == []


BAD_FLOAT_TEXT = st.one_of(
    st.floats(max_value=-1e-300, allow_infinity=False).map(repr),  # negative
    st.sampled_from(["nan", "NaN", "inf", "-inf", "Infinity", "1e400", "-1e400", "0x10", ""]),
)


@FUZZ
@given(
    text=BAD_FLOAT_TEXT,
    command=st.sampled_from(["show --at", "scale --lr", "show --steps-per-epoch"]),
)
def test_bad_float_fuzz(capsys: pytest.CaptureFixture[str], text: str, command: str) -> None:
    argv = {
        "show --at": ["show", "cosine(lr=1)", "--total", "10", "--json", "--at", f"0,{text}"],
        "scale --lr": ["scale", "--base-batch", "1", "--batch", "2", "--lr", text],
        "show --steps-per-epoch": [
            "show",
            "cosine(lr=1, steps=3ep)",
            "--total",
            "9",
            "--steps-per-epoch",
            text,
        ],
    }[command]
    code, out, err = invoke(capsys, argv)
    assert_one_error(code, out, err, command.split()[1])


@FUZZ
@given(
    lr=st.floats(min_value=1e-300, max_value=1e300), base=st.integers(1, 10**9), batch=st.integers(1, 10**9)
)
def test_scale_prints_a_finite_positive_lr_or_refuses(
    capsys: pytest.CaptureFixture[str], lr: float, base: int, batch: int
) -> None:
    code, out, err = invoke(
        capsys, ["scale", "--lr", repr(lr), "--base-batch", str(base), "--batch", str(batch)]
    )
    if code == 0:
        printed = float(out.split()[2])
        assert math.isfinite(printed) and printed > 0, out
        ratio = batch / base
        assert printed == pytest.approx(lr * ratio, rel=1e-5), out  # linear rule for SGD
    else:
        assert_one_error(code, out, err, "--lr")


@FUZZ
@given(at=st.lists(st.floats(min_value=0, max_value=1e6), min_size=1, max_size=5))
def test_show_json_is_valid_json(capsys: pytest.CaptureFixture[str], at: list[float]) -> None:
    text = ",".join(repr(a) for a in at)
    code, out, err = invoke(
        capsys, ["show", "warmup(10%) >> cosine(lr=1)", "--total", "1000", "--json", "--at", text]
    )
    assert code == 0, err

    def refuse(constant: str) -> None:
        raise AssertionError(f"invalid JSON constant {constant}")

    data = json.loads(out, parse_constant=refuse)
    assert [p["step"] for p in data["points"]] == pytest.approx(at)


# ---------------------------------------------------------------------------------------------------
# recipe names

RECIPE_NAMES = ["", " ", "nope", "BERT_FINETUNE", "bert_finetune ", "resnet-imagenet"]


@pytest.mark.parametrize("name", RECIPE_NAMES)
def test_unknown_recipe(capsys: pytest.CaptureFixture[str], name: str) -> None:
    code, out, err = invoke(capsys, ["recipes", name])
    assert_one_error(code, out, err, repr(name))


@FUZZ
@given(name=st.text(max_size=12))
def test_recipe_name_fuzz(capsys: pytest.CaptureFixture[str], name: str) -> None:
    from lrkit.recipes import RECIPES

    code, out, err = invoke(capsys, ["recipes", "--", name])  # "--": a name may start with "-"
    if name in RECIPES:
        assert code == 0 and out.startswith(f"{name}: ")
    else:
        assert_one_error(code, out, err, repr(name))


# ---------------------------------------------------------------------------------------------------
# your own code: --model/--data/--loss/--task MODULE:FUNCTION

GOOD = """
import torch
CONST = 3
class obj:
    pass
def model():
    return torch.nn.Linear(3, 1)
def data():
    x = torch.randn(16, 3)
    dataset = torch.utils.data.TensorDataset(x, x.sum(1, keepdim=True))
    return torch.utils.data.DataLoader(dataset, batch_size=4)
def raising(*args):
    return helper()
def helper():
    raise RuntimeError("boom in the factory")
def returns_none(*args):
    return None
def returns_int(*args):
    return 5
def returns_str(*args):
    return "batches"
def empty():
    return []
def needs_two(a, b):
    return a
"""
BAD_IMPORT = """
import torch
raise RuntimeError("boom on import")
def model():
    return torch.nn.Linear(3, 1)
"""
IMPORTS_MISSING = """
import no_such_package_for_lrkit_tests
def model():
    return None
"""


@pytest.fixture
def modules(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """Three modules with unique names (a module that failed to import is not cached by Python)."""
    names = {}
    for key, text in (("good", GOOD), ("bad", BAD_IMPORT), ("missing", IMPORTS_MISSING)):
        name = f"lrkit_user_{key}_{uuid.uuid4().hex[:8]}"
        (tmp_path / f"{name}.py").write_text(textwrap.dedent(text))
        names[key] = name
    names["absent"] = f"lrkit_absent_{uuid.uuid4().hex[:8]}"
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    return names


# (flag, spec template, other args, traceback of the user's code allowed)
SPECS = [
    ("--model", "{absent}:model", ["--data", "{good}:data"], False),
    ("--model", "{good}:nope", ["--data", "{good}:data"], False),
    ("--model", "{good}:obj.nope", ["--data", "{good}:data"], False),
    ("--model", "{good}:CONST", ["--data", "{good}:data"], False),
    ("--model", "{bad}:model", ["--data", "{good}:data"], True),
    ("--model", "{missing}:model", ["--data", "{good}:data"], False),
    ("--model", "{good}:raising", ["--data", "{good}:data"], True),
    ("--model", "{good}:needs_two", ["--data", "{good}:data"], False),
    ("--model", "builtins:dict", ["--data", "builtins:list"], False),
    ("--model", "{good}:returns_none", ["--data", "{good}:data"], False),
    ("--model", "{good}:returns_int", ["--data", "{good}:data"], False),
    ("--data", "{good}:raising", ["--model", "{good}:model"], True),
    ("--data", "builtins:list", ["--model", "{good}:model"], False),
    ("--data", "{good}:empty", ["--model", "{good}:model"], False),
    ("--data", "{good}:returns_int", ["--model", "{good}:model"], False),
    ("--data", "{good}:returns_none", ["--model", "{good}:model"], False),
    ("--data", "{good}:returns_str", ["--model", "{good}:model"], False),
    ("--data", "{absent}:data", ["--model", "{good}:model"], False),
    ("--loss", "{good}:CONST", ["--model", "{good}:model", "--data", "{good}:data"], False),
    ("--loss", "{absent}:f", ["--model", "{good}:model", "--data", "{good}:data"], False),
    ("--loss", "{bad}:model", ["--model", "{good}:model", "--data", "{good}:data"], True),
    ("--task", "{absent}:task", [], False),
    ("--task", "{good}:nope", [], False),
    ("--task", "{good}:CONST", [], False),
    ("--task", "{bad}:model", [], True),
    ("--task", "{good}:raising", [], True),
    ("--task", "{good}:model", [], False),
    ("--task", "{good}:returns_none", [], False),
]


@pytest.mark.usefixtures("one_torch_thread")
@pytest.mark.parametrize(
    ("flag", "template", "rest", "user_tb"), SPECS, ids=[f"{f} {t}" for f, t, _, _ in SPECS]
)
def test_bad_user_module(
    modules: dict[str, str],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    flag: str,
    template: str,
    rest: list[str],
    user_tb: bool,
) -> None:
    pytest.importorskip("torch")
    spec = template.format(**modules)
    argv = ["find", flag, spec, *(r.format(**modules) for r in rest), "--num-steps", "10", "--repeats", "1"]
    before = files_under(tmp_path)
    code, out, err = invoke(capsys, [*argv, "--out", "lr.png", "--json", "lr.json"])
    word = "task" if flag == "--task" else flag  # lrkit.tasks says "task 'mod:func': ..."
    line = assert_one_error(code, out, err, word, repr(spec), user_traceback=user_tb)
    if user_tb:
        assert "RuntimeError: boom" in line or "TypeError" in line, line
        assert err.index(line) == 0  # the lrkit line comes first, the user's traceback below it
        assert ".py" in err.partition(line)[2]  # ... and it shows the user's file
    assert [f for f in files_under(tmp_path) if not f.startswith("__pycache__")] == [
        f for f in before if not f.startswith("__pycache__")
    ]


# ---------------------------------------------------------------------------------------------------
# a lab whose experiment cannot run: refused before the header line and before lab.db is created

LAB_FILE_CASES = {
    "two strategies with one label": (
        "task: digits-mlp-sgd\nstrategies:\n  - {label: a, spec: constant(0.1)}\n"
        "  - {label: a, spec: constant(0.2)}\n",
        "experiment: strategies 1 and 2 have the same label 'a'; give each its own (label: ...)",
    ),
    "an empty list of strategies": (
        "task: digits-mlp-sgd\nstrategies: []\n",
        "experiment: strategies is empty; expected at least one spec or mapping",
    ),
    "diverge_factor <= 1": (
        "task: digits-mlp-sgd\nstrategies: ['constant(0.1)']\ndiverge_factor: 0.5\n",
        "experiment: diverge_factor must be a number > 1, got 0.5",
    ),
}


@pytest.mark.parametrize("case", list(LAB_FILE_CASES))
def test_a_lab_file_that_cannot_run_is_refused_before_anything_is_written(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], case: str
) -> None:
    text, words = LAB_FILE_CASES[case]
    monkeypatch.chdir(tmp_path)
    Path("e.yaml").write_text(text)
    assert_one_error(*invoke(capsys, ["lab", "e.yaml", "--out", "out"]), words)
    assert files_under(tmp_path) == ["e.yaml"]


@pytest.mark.parametrize(
    ("strategies", "label"),
    [(["a=constant(0.1)", "a=constant(0.2)"], "a"), (["constant(0.1)"] * 2, "constant(0.1)")],
)
def test_lab_strategies_with_one_label_are_refused_before_anything_is_written(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    strategies: list[str],
    label: str,
) -> None:
    monkeypatch.chdir(tmp_path)
    argv = ["lab", "--out", "out", *(w for s in strategies for w in ("--strategy", s))]
    words = f"--strategy: strategies 1 and 2 have the same label {label!r}; give each its own (--strategy"
    assert_one_error(*invoke(capsys, argv), words)
    assert files_under(tmp_path) == []


def test_a_lab_schedule_that_does_not_fit_the_run_is_refused_before_anything_is_written(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """A wsd whose warmup and decay outlast the run (digits: 45 steps an epoch) was refused after the
    header line, with an empty OUT/lab.db left behind and no word of which strategy it was."""
    monkeypatch.chdir(tmp_path)
    argv = ["lab", "--out", "out", "--epochs", "1", "--strategy", "w=wsd(lr=0.1, warmup=60%, decay=60%)"]
    assert_one_error(
        *invoke(capsys, argv), "strategy 'w': wsd: warmup (27) + decay (27) must fit in steps (45)"
    )
    assert files_under(tmp_path) == []


# ---------------------------------------------------------------------------------------------------
# one word for a directory: the guide's (and the system's: "Is a directory"), never "folder"

DIRECTORY_WORDS = [
    (
        ["plot", "cosine(lr=1)", "--total", "9", "--out", "adir.png"],
        "'adir.png' is a directory; expected a file",
    ),
    (["gallery", "--out", "afile/x.png"], "afile', which is a file, not a directory"),
    (
        ["lab", "--strategy", "constant(0.1)", "--out", "afile"],
        "--out: 'afile' is a file; expected a directory",
    ),
    (["lab", "--strategy", "constant(0.1)", "--out", ""], "--out: expected a directory name, got ''"),
    (["find", "--task", "digits-mlp-sgd", "--out", ""], "--out: expected a file name, got ''"),  # no plot
    (
        ["tune", "--task", "digits-mlp-sgd", "--trials", "1", "--no-report", "--storage", "afile/t.db"],
        "afile', which is a file, not a directory",
    ),
]


@pytest.mark.parametrize(
    ("argv", "words"), DIRECTORY_WORDS, ids=[" ".join(a[:1] + a[-2:]) for a, _ in DIRECTORY_WORDS]
)
def test_path_errors_say_directory(
    workdir: Path, capsys: pytest.CaptureFixture[str], argv: list[str], words: str
) -> None:
    line = assert_one_error(*invoke(capsys, argv), words)
    assert "folder" not in line


def test_no_help_says_folder(capsys: pytest.CaptureFixture[str]) -> None:
    from lrkit.cli import build_parser

    parser = build_parser()
    sub = next(a for a in parser._actions if a.choices and isinstance(a.choices, dict))
    for command, p in sub.choices.items():
        text = p.format_help()
        assert "folder" not in text, (command, [line for line in text.splitlines() if "folder" in line])


EMPTY_PATHS = [
    ["lab", "--strategy", "constant(0.1)", "--epochs", "1", "--out="],
    ["report", "lab.db", "--out="],
    ["tune", "--task", "digits-mlp-sgd", "--trials", "1", "--epochs", "1", "--no-finder", "--out="],
    ["demo", "--quick", "--out="],
    ["auto", "--task", "digits-mlp-sgd", "--epochs", "1", "--json="],
    ["auto", "--task", "digits-mlp-sgd", "--epochs", "1", "--plot="],
]


@pytest.mark.parametrize("argv", EMPTY_PATHS, ids=[" ".join(a[:1] + a[-1:]) for a in EMPTY_PATHS])
def test_an_empty_path_is_refused_not_taken_for_the_current_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], argv: list[str]
) -> None:
    """``--out ''`` was Path('') = '.': lrkit lab wrote its report, CSV files and database into the
    current directory; ``auto --json ''`` wrote no JSON and said nothing."""
    monkeypatch.chdir(tmp_path)
    if argv[0] == "report":  # an lrkit database: the source is checked first, then --out
        from lrkit.lab.store import ResultStore

        ResultStore(tmp_path / "lab.db").close()
    before = files_under(tmp_path)
    code, out, err = invoke(capsys, argv)
    assert code == 2, err
    assert_one_error(code, out, err, argv[-1].rstrip("=") + ": expected a")
    assert files_under(tmp_path) == before
