"""How experiment files are read: YAML by YAML 1.2's rules (PyYAML's YAML 1.1 ones turned ``on:`` into
True, ``012`` into 10 and ``1:30`` into 90), and a file that is not valid YAML or TOML reported on one
line as ``FILE:LINE:COLUMN: not valid YAML: PROBLEM``."""

from __future__ import annotations

import tempfile
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lrkit.lab.experiment import Experiment, load_experiment

TASK = "digits-mlp-sgd"
#: every spelling PyYAML reads as a YAML 1.1 boolean, besides true and false
YAML11_BOOLS = [w for word in ("yes", "no", "on", "off") for w in (word, word.title(), word.upper())]


def _load(tmp_path: Path, text: str, suffix: str = ".yaml") -> Experiment:
    path = tmp_path / ("e" + suffix)
    path.write_text(text, encoding="utf-8")
    return load_experiment(path)


def _error(tmp_path: Path, text: str, suffix: str = ".yaml") -> str:
    with pytest.raises(ValueError) as info:
        _load(tmp_path, text, suffix)
    return str(info.value)


# --- syntax errors: one line, FILE:LINE:COLUMN ------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "where", "words"),
    [
        (  # the guide's example: a value holding ': ' unquoted
            "task: t\nstrategies:\n  - spec: warmup(5%) >> cosine(lr: 0.1)\n",
            "3:34",
            ["mapping values are not allowed here", "quote a value that holds ': '"],
        ),
        (
            "task: t\nstrategies:\n  b: {spec: x\n  c: key: v\n",
            "4:4",
            ["expected ',' or '}', but got ':'", "(while parsing a flow mapping at 3:6)"],
        ),
        (
            "task: t\nstrategies:\n  - label: a\n    spec: cosine\n   bad: 1\n",
            "5:4",
            ["expected <block end>", "(while parsing a block collection at 3:3)"],
        ),
        ('task: "t\n', "2:1", ["found unexpected end of stream", "(while scanning a quoted scalar at 1:7)"]),
        ("task: t\n\tstrategies: []\n", "2:1", ["'\\t' that cannot start any token", "spaces, not tabs"]),
        ("task: t\nstrategies: [a, *nope]\n", "2:17", ["found undefined alias 'nope'"]),
        ("task: a\x07b\n", "1:8", ["unacceptable character #x0007"]),
        ("task: !!python/object:os.system x\n", "1:7", ["could not determine a constructor for the tag"]),
    ],
)
def test_a_yaml_syntax_error_is_one_line_naming_file_line_and_column(
    tmp_path: Path, text: str, where: str, words: list[str]
) -> None:
    msg = _error(tmp_path, text)
    assert msg.startswith(f"experiment: {tmp_path / 'e.yaml'}:{where}: not valid YAML: "), msg
    assert "\n" not in msg and "<unicode string>" not in msg, msg
    assert all(w in msg for w in words), msg


@pytest.mark.parametrize(
    ("text", "where", "problem"),
    [
        ('task = "t"\nstrategies = [\n"a"\nfoo\n', "4:1", "Unclosed array"),
        (
            'task = "t"\n[strategies]\na = "constant(0.1)"\na = "constant(0.2)"\n',
            "4:20",
            "Cannot overwrite a value",
        ),
        ('task = "t"\nepochs = 1e\n', "2:11", "Expected newline or end of document after a statement"),
    ],
)
def test_a_toml_syntax_error_names_file_line_and_column_too(
    tmp_path: Path, text: str, where: str, problem: str
) -> None:
    msg = _error(tmp_path, text, ".toml")
    assert msg.startswith(f"experiment: {tmp_path / 'e.toml'}:{where}: not valid TOML: {problem}"), msg
    assert "(at line" not in msg, msg


# --- YAML 1.1's booleans are text -------------------------------------------------------------------


@pytest.mark.parametrize("word", YAML11_BOOLS)
def test_every_yaml11_boolean_spelling_is_text_as_a_key_a_label_and_a_name(tmp_path: Path, word: str) -> None:
    mapping = f"name: {word}\ntask: {TASK}\nstrategies:\n  {word}: {{label: {word}, spec: constant(0.1)}}\n"
    e = _load(tmp_path, mapping)
    assert e.name == word and [s.label for s in e.strategies] == [word]
    listed = _load(tmp_path, f"task: {TASK}\nstrategies:\n  - {{label: {word}, spec: constant(0.1)}}\n")
    assert [s.label for s in listed.strategies] == [word]


@pytest.mark.parametrize("word", YAML11_BOOLS)
def test_a_yaml11_boolean_where_a_boolean_goes_is_refused_naming_the_key_and_the_fix(
    tmp_path: Path, word: str
) -> None:
    """``nesterov: no`` is the text 'no' (not False): refused, with what to write, not taken as truthy."""
    fix = "true" if word.lower() in ("yes", "on") else "false"
    msg = _error(
        tmp_path,
        f"task: {TASK}\nstrategies:\n  a:\n    spec: constant(0.1)\n    optimizer: sgd\n"
        f"    optimizer_params: {{momentum: 0.9, nesterov: {word}}}\n",
    )
    assert msg == (
        f"experiment: strategies.a.optimizer_params.nesterov: {word!r} is text here (only true and false are "
        f"booleans, as in YAML 1.2 and TOML); write {fix}"
    ), msg
    msg = _error(
        tmp_path,
        f"task: {TASK}\nstrategies:\n  a: {{spec: {{type: one_cycle, max_lr: 0.1, three_phase: {word}}}}}\n",
    )
    assert (
        msg == f"experiment: strategies.a.spec: one_cycle: three_phase must be true or false, got {word!r}"
    ), msg


def test_true_and_false_are_booleans_still(tmp_path: Path) -> None:
    e = _load(
        tmp_path,
        f"task: {TASK}\nstrategies:\n  a:\n    spec: {{type: one_cycle, max_lr: 0.1, three_phase: true}}\n"
        "    optimizer: sgd\n    optimizer_params: {momentum: 0.9, nesterov: True}\n",
    )
    assert e.strategies[0].spec == "one_cycle(max_lr=0.1, three_phase=true)"
    assert e.strategies[0].optimizer_params == {"momentum": 0.9, "nesterov": True}


@pytest.mark.parametrize(
    ("written", "fix"), [("true", "'true'"), ("FALSE", "'false'"), ("1", "'1'"), ("0.5", "'0.5'")]
)
def test_a_label_that_yaml_reads_as_no_text_says_to_quote_it_as_written(
    tmp_path: Path, written: str, fix: str
) -> None:
    msg = _error(tmp_path, f"task: {TASK}\nstrategies:\n  {written}: constant(0.1)\n")
    assert f"quote it ({fix}: ...)" in msg, msg
    msg = _error(tmp_path, f"task: {TASK}\nstrategies:\n  - {{label: {written}, spec: constant(0.1)}}\n")
    assert (
        msg.startswith("experiment: strategies[0].label must be a non-empty string")
        and f"quote it ({fix})" in msg
    )


# --- numbers and other YAML 1.1 readings -------------------------------------------------------------


@pytest.mark.parametrize(
    ("seeds", "epochs", "expected_seeds", "expected_epochs"),
    [
        ("[007, 010, 012]", "012", [7, 10, 12], 12),  # YAML 1.1: octal, [7, 8, 10] and 10
        ("[0o17, 0x1f]", "0o10", [15, 31], 8),  # YAML 1.2's octal and hex
        ("[1_000, +3]", "1_000", [1000, 3], 1000),  # digit separators, as Python and TOML write them
    ],
)
def test_integers_are_read_as_written(
    tmp_path: Path, seeds: str, epochs: str, expected_seeds: list[int], expected_epochs: int
) -> None:
    e = _load(tmp_path, f"task: {TASK}\nseeds: {seeds}\nepochs: {epochs}\nstrategies: [constant(0.1)]\n")
    assert (e.seeds, e.epochs) == (expected_seeds, expected_epochs)


@pytest.mark.parametrize(("written", "key"), [("1:30", "seeds[0]"), ("0b11", "seeds[0]")])
def test_yaml11_only_integers_are_text_and_refused_naming_the_key(
    tmp_path: Path, written: str, key: str
) -> None:
    """``1:30`` was 90 (base 60) in YAML 1.1, silently a seed nobody wrote."""
    msg = _error(tmp_path, f"task: {TASK}\nseeds: [{written}]\nstrategies: [constant(0.1)]\n")
    assert msg == f"experiment: {key} must be an integer >= 0, got {written!r}", msg


@pytest.mark.parametrize("written", ["2024-05-01", "=", "1:30", "12:00:00"])
def test_dates_times_and_the_equals_sign_are_text(tmp_path: Path, written: str) -> None:
    e = _load(tmp_path, f"name: {written}\ntask: {TASK}\nstrategies:\n  {written}: constant(0.1)\n")
    assert e.name == written and [s.label for s in e.strategies] == [written]


def test_a_key_and_its_quoted_spelling_are_one_key(tmp_path: Path) -> None:
    """``on:`` and ``'on':`` are the same label now (YAML 1.1 had True and 'on': two strategies)."""
    msg = _error(tmp_path, f"task: {TASK}\nstrategies:\n  on: constant(0.1)\n  'on': constant(0.2)\n")
    assert msg.endswith(
        ":4:3: the key 'on' is written twice in one mapping (first on line 3); "
        "give each key once (YAML keeps only the last)"
    ), msg


_digits = st.integers(0, 10**6).map(lambda n: f"{n:_}" if n % 2 else str(n))  # 1_000 half the time
_mantissa = st.one_of(
    _digits,
    st.tuples(_digits, st.integers(0, 999)).map(lambda p: f"{p[0]}.{p[1]}"),
    _digits.map(lambda d: f"{d}."),
    st.integers(0, 999).map(lambda n: f".{n}"),
)
_exponent = st.tuples(st.sampled_from("eE"), st.sampled_from(["", "-", "+"]), st.integers(0, 12)).map(
    lambda p: f"{p[0]}{p[1]}{p[2]}"
)


@settings(max_examples=80, deadline=None)
@given(
    number=st.tuples(_mantissa, _exponent).map("".join), zeros=st.integers(0, 3), seed=st.integers(0, 10**6)
)
def test_numbers_mean_what_python_reads(number: str, zeros: int, seed: int) -> None:
    """A float written with an exponent, with or without a dot (``1e-3``, ``2.E5``, ``.5e1``, ``1_000e-6``),
    is the float Python reads; an integer with leading zeros (``010``) is that decimal integer."""
    text = (
        f"task: {TASK}\nseeds: [{'0' * zeros}{seed}]\nepochs: {'0' * zeros}{seed + 1}\n"
        "strategies:\n  a: {spec: constant(0.1), optimizer: sgd, "
        f"optimizer_params: {{weight_decay: {number}}}}}\n"
    )
    with tempfile.TemporaryDirectory() as tmp:
        e = _load(Path(tmp), text)
    assert e.seeds == [seed] and e.epochs == seed + 1
    assert e.strategies[0].optimizer_params == {"weight_decay": float(number)}


@pytest.mark.parametrize("lang", ["en", "ko"])
def test_the_guides_syntax_error_is_what_lrkit_prints(
    lang: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    guide = (Path(__file__).parent.parent / "docs" / lang / "lab.md").read_text(encoding="utf-8")
    named = guide.split("# named.yaml  ->  lrkit lab named.yaml\n", 1)[1].split("```", 1)[0]
    quoted = '    spec: "warmup(5%) >> cosine(lr=3e-4)"\n'
    assert named.splitlines(keepends=True)[9] == quoted  # line 11 of the file, after its comment line
    shown = guide.split("```text\nexperiment: named.yaml:", 1)[1].split("\n", 1)[0]
    monkeypatch.chdir(tmp_path)
    Path("named.yaml").write_text(
        "# named.yaml\n" + named.replace(quoted, "    spec: warmup(5%) >> cosine(lr: 3e-4)\n"),
        encoding="utf-8",
    )
    with pytest.raises(ValueError) as info:
        load_experiment("named.yaml")
    assert str(info.value) == f"experiment: named.yaml:{shown}"
