"""Tasks take the batches the LR finder takes, by the same function (lrkit._forward): dict batches
(Hugging Face style), a model that computes its own loss (loss_fn=None), (x, y, ...) tuples, in training,
evaluation, val_loss, Task.check, lrkit.auto's training and the CLI; and the task fingerprint's metric
entry says the accuracy kind whose formula changed (per token, binary, -100 not counted)."""

from __future__ import annotations

import math
import textwrap
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lrkit._forward import TARGET_KEYS
from lrkit.tasks import Task, TaskParts
from lrkit.tasks.base import fingerprint_changes, task_fingerprint, train_loop

torch = pytest.importorskip("torch")
nn = torch.nn
F = nn.functional


class Out:
    """A Hugging Face-style model output: ``.loss`` (None without labels) and ``.logits``."""

    def __init__(self, loss: Any, logits: Any) -> None:
        self.loss, self.logits = loss, logits


class TinyHF(nn.Module):
    """A Hugging Face-style classifier: ``forward(input_ids, attention_mask, labels=None)``; with ``seq``
    one prediction per token ``(batch, seq, classes)``, else per sequence. ``own_loss``: returns
    :class:`Out` with the loss of its labels (-100 ignored); else the logits alone (for a loss_fn)."""

    def __init__(self, seq: bool = False, own_loss: bool = True, classes: int = 3) -> None:
        super().__init__()
        self.emb = nn.Embedding(20, 8)
        self.head = nn.Linear(8, classes)
        self.seq, self.own_loss, self.classes = seq, own_loss, classes

    def forward(self, input_ids: Any, attention_mask: Any = None, labels: Any = None) -> Any:
        h = self.emb(input_ids) * attention_mask[..., None]
        logits = self.head(h) if self.seq else self.head(h.mean(1))
        if not self.own_loss:
            return logits
        loss = (
            None if labels is None else F.cross_entropy(logits.reshape(-1, self.classes), labels.reshape(-1))
        )
        return Out(loss, logits)


def _dicts(seed: int, n: int, seq: bool, key: str = "labels", ignored: float = 0.0) -> list[dict[str, Any]]:
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(0, 3, (n, 1), generator=g) + 3 * torch.randint(0, 6, (n, 6), generator=g)
    labels = ids % 3 if seq else ids[:, 0] % 3  # every token of a sequence says its class
    flip = torch.rand(labels.shape, generator=g) < 0.2  # but one label in 5 is another
    labels = torch.where(flip, (labels + 1) % 3, labels)
    labels = torch.where(torch.rand(labels.shape, generator=g) < ignored, -100, labels)
    if not seq:  # at least one target per batch counted
        labels[::8] = ids[::8, 0] % 3
    mask = torch.ones_like(ids)
    return [
        {"input_ids": ids[i : i + 8], "attention_mask": mask[i : i + 8], key: labels[i : i + 8]}
        for i in range(0, n, 8)
    ]


def _hand_accuracy(model: nn.Module, batches: list[dict[str, Any]], key: str, own: bool) -> float:
    right = counted = 0
    model.eval()
    with torch.no_grad():
        for b in batches:
            logits = model(**b).logits if own else model(**{k: v for k, v in b.items() if k != key})
            keep = b[key] != -100
            right += int(((logits.argmax(-1) == b[key]) & keep).sum())
            counted += int(keep.sum())
    return right / counted


# ---- 1. dict batches and loss_fn=None: training, accuracy, losses as a hand loop ----------------------


@settings(max_examples=12, deadline=None)
@given(
    seq=st.booleans(),
    own=st.booleans(),
    key=st.sampled_from(TARGET_KEYS),
    ignored=st.sampled_from([0.0, 0.3]),
    seed=st.integers(0, 3),
)
def test_dict_batches_train_and_score_as_a_hand_loop(
    seq: bool, own: bool, key: str, ignored: float, seed: int
) -> None:
    """A dict batch's target is the first of TARGET_KEYS; with a loss_fn the other entries go to the model
    as keywords, with loss_fn=None the model gets them all and its .loss is trained. The task's training
    losses, accuracy (-100 not counted) and val loss equal a hand loop's."""
    key = "labels" if own else key  # a model computing its own loss takes its labels by its own name
    train, val = _dicts(seed, 32, seq, key, ignored), _dicts(seed + 10, 24, seq, key, ignored)

    def ce(logits: Any, t: Any) -> Any:
        return F.cross_entropy(logits.reshape(-1, 3), t.reshape(-1))

    def factory(s: int) -> TaskParts:
        torch.manual_seed(s)
        return TaskParts(
            TinyHF(seq, own), train, val, loss_fn=None if own else ce, epochs=2, optimizer="adam"
        )

    task = Task("hf", factory)
    task.check()
    parts = task.build(seed)
    run = train_loop(parts, parts.make_optimizer(0.05), 2, evaluate_every_epoch=False)

    hand = task.build(seed)
    opt = hand.make_optimizer(0.05)
    losses = []
    for _ in range(2):
        for b in train:
            opt.zero_grad()
            loss = (
                hand.model(**b).loss
                if own
                else ce(hand.model(**{k: v for k, v in b.items() if k != key}), b[key])
            )
            loss.backward()
            opt.step()
            losses.append(float(loss.detach()))
    assert run.losses == losses
    assert run.metric == _hand_accuracy(hand.model, val, key, own) == parts.evaluate()
    with torch.no_grad():
        sizes = [len(b[key]) for b in val]
        per = [
            float(
                hand.model(**b).loss
                if own
                else ce(hand.model(**{k: v for k, v in b.items() if k != key}), b[key])
            )
            for b in val
        ]
    want = sum(p * n for p, n in zip(per, sizes, strict=True)) / sum(sizes)
    assert parts.val_loss() == pytest.approx(want, rel=1e-6)
    loss_parts = TaskParts(parts.model, train, val, loss_fn=parts.loss_fn, metric="loss")
    assert loss_parts.evaluate() == pytest.approx(want, rel=1e-6)


def test_task_api_train_run_and_find_lr_on_a_model_with_its_own_loss() -> None:
    """Task.train_run trains a loss_fn=None task (its accuracy a hand count), and Task.find_lr runs on it."""
    train, val = _dicts(0, 64, False), _dicts(1, 32, False)

    def factory(seed: int) -> TaskParts:
        torch.manual_seed(seed)
        return TaskParts(TinyHF(), train, val, loss_fn=None, epochs=3, optimizer="adam")

    task = Task("hf", factory)
    run = task.train_run(0.03)
    assert run.steps == 24 and not run.diverged and run.losses[-1] < run.losses[0]
    parts = task.build(0)
    train_loop(parts, parts.make_optimizer(0.03), 3, evaluate_every_epoch=False)
    assert run.metric == _hand_accuracy(parts.model, val, "labels", True)
    found = task.find_lr(num_steps=20, repeats=1)
    assert len(found.losses) > 0


def test_tuple_batches_train_as_before_and_extra_elements_are_refused() -> None:
    """(x, y) batches train as loss_fn(model(x), y) did; (x, y, w) is refused: a task trains on it, and
    weights left unused would change the result without a word (the finder, which only ranks LRs, takes
    them)."""
    g = torch.Generator().manual_seed(0)
    x, y = torch.randn(32, 4, generator=g), torch.randint(0, 3, (32,), generator=g)
    pairs = [(x[i : i + 8], y[i : i + 8]) for i in range(0, 32, 8)]
    triples = [(a, b, torch.rand(8, generator=g)) for a, b in pairs]

    def run(batches: list[Any]) -> list[float]:
        def factory(seed: int) -> TaskParts:
            torch.manual_seed(seed)
            return TaskParts(nn.Linear(4, 3), batches, batches, loss_fn=F.cross_entropy, epochs=2)

        task = Task("t", factory)
        task.check()
        return task.train_run(0.1).losses

    torch.manual_seed(0)
    model = nn.Linear(4, 3)
    opt = torch.optim.AdamW(model.parameters(), lr=0.1)
    hand = []
    for _ in range(2):
        for a, b in pairs:
            opt.zero_grad()
            loss = F.cross_entropy(model(a), b)
            loss.backward()
            opt.step()
            hand.append(float(loss))
    assert run(pairs) == hand
    with pytest.raises(
        TypeError, match=r"a tuple of 3; a task takes \(input, target\) pairs.*sample weights"
    ):
        run(triples)


def test_a_batch_encoding_from_a_collator_is_a_dict_batch() -> None:
    """Hugging Face's collators return a BatchEncoding (a UserDict, not a dict): the same as its dict."""
    from transformers import BatchEncoding

    g = torch.Generator().manual_seed(1)
    batches = [
        {"x": torch.randn(8, 4, generator=g), "labels": torch.randint(0, 3, (8,), generator=g)}
        for _ in range(4)
    ]

    class Net(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.lin = nn.Linear(4, 3)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.lin(x)

    def run(wrap: Any) -> tuple[list[float], float]:
        def factory(seed: int) -> TaskParts:
            torch.manual_seed(seed)
            data = [wrap(b) for b in batches]
            return TaskParts(Net(), data, data, loss_fn=F.cross_entropy, epochs=2)

        task = Task("t", factory)
        task.check()
        r = task.train_run(0.1)
        return r.losses, r.metric

    assert run(BatchEncoding) == run(dict)


def test_lrkit_auto_trains_a_dict_batch_task() -> None:
    from lrkit.auto import train_task

    train, val = _dicts(0, 64, False), _dicts(1, 32, False)
    torch.manual_seed(0)
    parts = TaskParts(TinyHF(), train, val, loss_fn=None, epochs=4, optimizer="adam")
    out = train_task(parts)
    assert out["diverged"] is None and out["train_steps"] > 0
    assert out["metric"] == _hand_accuracy(parts.model, val, "labels", True)


# ---- 2. refusals name the keys seen and what was expected ---------------------------------------------


def _check(model: nn.Module, batches: list[Any], loss_fn: Any, **kw: Any) -> None:
    Task("mine", lambda seed: TaskParts(model, batches, batches, loss_fn=loss_fn, **kw)).check()


def test_a_dict_batch_without_a_target_key_and_a_loss_fn_is_refused_naming_keys() -> None:
    batches = [{"input_ids": torch.randint(0, 20, (4, 6)), "attention_mask": torch.ones(4, 6)}]
    with pytest.raises(
        ValueError,
        match=r"task 'mine': the first training batch: a dict batch needs a target under one of "
        r"\['labels', 'label', 'targets', 'target', 'y'\] when loss_fn is given, got keys "
        r"\['attention_mask', 'input_ids'\]; or give loss_fn=None",
    ):
        _check(TinyHF(own_loss=False), batches, F.cross_entropy)


def test_a_model_output_without_loss_when_loss_fn_is_none_is_refused_naming_keys() -> None:
    class LogitsOnly(TinyHF):
        def forward(self, input_ids: Any, attention_mask: Any = None, labels: Any = None) -> Any:
            return {"logits": super().forward(input_ids, attention_mask, labels).logits}

    with pytest.raises(
        TypeError,
        match=r"task 'mine': the first training batch: loss_fn is None, so the model must compute the loss, "
        r"but model\(\*\*batch\) \(batch keys \['attention_mask', 'input_ids', 'labels'\]\) returned a dict "
        r"with keys \['logits'\]; expected the loss .*a dict with 'loss' or an object with \.loss",
    ):
        _check(LogitsOnly(), _dicts(0, 8, False), None)


def test_a_hf_model_given_no_labels_is_refused_saying_to_add_them() -> None:
    batches = [{k: v for k, v in b.items() if k != "labels"} for b in _dicts(0, 8, False)]
    with pytest.raises(
        ValueError, match=r"returned a loss of None for a batch with keys \['attention_mask', "
    ):
        _check(TinyHF(), batches, None)


def test_accuracy_needs_a_target_key_in_the_dict_batch() -> None:
    class LM(TinyHF):  # its own loss from its inputs (predict the next token): no target key in the batch
        def forward(self, input_ids: Any, attention_mask: Any = None) -> Any:
            logits = self.head(self.emb(input_ids))
            return Out(
                F.cross_entropy(logits[:, :-1].reshape(-1, 3), input_ids[:, 1:].reshape(-1) % 3), logits
            )

    batches = [{k: v for k, v in b.items() if k != "labels"} for b in _dicts(0, 8, True)]
    with pytest.raises(
        TypeError,
        match=r"task 'mine': TaskParts: metric 'accuracy' .* a dict batch with keys \['attention_mask', "
        r"'input_ids'\] has none; expected it under one of \['labels',",
    ):
        _check(LM(seq=True), batches, None)
    _check(LM(seq=True), batches, None, metric="loss")  # its own loss is a metric


def test_loss_fn_none_with_tuple_batches_is_refused() -> None:
    x, y = torch.randn(8, 4), torch.randint(0, 3, (8,))
    with pytest.raises(
        TypeError, match=r"loss_fn is None but the batch is a tuple of 2 \(x, y, \.\.\.\); give loss_fn"
    ):
        _check(nn.Linear(4, 3), [(x, y)], None)


# ---- 3. the fingerprint says the accuracy kind whose formula changed ----------------------------------


def _old_style(fp: dict[str, Any], parts: TaskParts) -> dict[str, Any]:
    """The fingerprint a lab database from before stored: the metric as name and direction only."""
    return {
        **fp,
        "metric": f"{parts.metric_name} ({'higher' if parts.higher_is_better else 'lower'} is better)",
    }


def _fp_parts(model: nn.Module, batches: list[Any], loss_fn: Any = F.cross_entropy) -> TaskParts:
    torch.manual_seed(0)
    return TaskParts(model, batches, batches, loss_fn=loss_fn)


def test_a_plain_tasks_old_fingerprint_still_compares_equal() -> None:
    x, y = torch.randn(8, 4), torch.randint(0, 3, (8,))
    parts = _fp_parts(nn.Linear(4, 3), [(x, y)])
    fp = task_fingerprint(parts)
    assert fp["metric"] == "val accuracy (higher is better)"
    assert fingerprint_changes(_old_style(fp, parts), fp) == []


@pytest.mark.parametrize(
    ("kind", "words"),
    [("seq", "per token"), ("binary", "binary accuracy"), ("ignored", "not -100")],
)
def test_an_old_fingerprint_of_a_changed_accuracy_kind_is_kept_with_a_warning(kind: str, words: str) -> None:
    x = torch.randint(0, 20, (8, 6))
    if kind == "seq":
        parts = _fp_parts(
            TinyHF(seq=True, own_loss=False), [{"input_ids": x, "attention_mask": x > -1, "labels": x % 3}]
        )
    elif kind == "binary":
        xs = torch.randn(8, 4)
        parts = _fp_parts(nn.Linear(4, 1), [(xs, (xs[:, 0] > 0).float())], F.binary_cross_entropy_with_logits)
    else:
        xs, y = torch.randn(8, 4), torch.randint(0, 3, (8,))
        y[0] = -100
        parts = _fp_parts(nn.Linear(4, 3), [(xs, y)])
    state = torch.get_rng_state()
    fp = task_fingerprint(parts)
    assert torch.equal(torch.get_rng_state(), state) and parts.model.training  # nothing the run uses moved
    assert "[" in fp["metric"]
    # the stored fingerprint cannot say whether its lrkit counted as now (42b0825 on, the previous stop
    # included) or before: the runs are kept, with a warning that names the kind and the way out
    with pytest.warns(UserWarning, match=r"does not name the accuracy kind.*--fresh") as seen:
        assert fingerprint_changes(_old_style(fp, parts), fp) == []
    assert words in str(seen[0].message)
    assert fingerprint_changes(fp, task_fingerprint(parts)) == []


def test_the_fingerprint_of_a_model_with_its_own_loss() -> None:
    fp = task_fingerprint(_fp_parts(TinyHF(), _dicts(0, 8, False), None))
    assert fp["loss"] == "the model's own (loss_fn=None)"
    assert fp["batch"] == "attention_mask: int64[8, 6], input_ids: int64[8, 6], labels: int64[8]"


# ---- 4. the command line: lab, tune, find --task, auto --task on a dict-batch task file ------------------


TASK_FILE = """
import torch
import torch.nn.functional as F
from lrkit.tasks import TaskParts


class Out:
    def __init__(self, loss, logits):
        self.loss, self.logits = loss, logits


class HF(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.emb = torch.nn.Embedding(20, 8)
        self.head = torch.nn.Linear(8, 3)

    def forward(self, input_ids, attention_mask, labels=None):
        logits = self.head((self.emb(input_ids) * attention_mask[..., None]).mean(1))
        return Out(None if labels is None else F.cross_entropy(logits, labels), logits)


def _dicts(seed, n):
    g = torch.Generator().manual_seed(seed)
    y = torch.randint(0, 3, (n,), generator=g)
    ids = y[:, None] + 3 * torch.randint(0, 6, (n, 6), generator=g)
    y = torch.where(torch.rand(n, generator=g) < 0.2, (y + 1) % 3, y)
    return [{"input_ids": ids[i:i + 8], "attention_mask": torch.ones(8, 6, dtype=torch.long),
             "labels": y[i:i + 8]} for i in range(0, n, 8)]


def task(seed):
    return TaskParts(HF(), _dicts(0, 64), _dicts(1, 32), loss_fn=None, epochs=4, optimizer="adam")
"""


@pytest.mark.usefixtures("one_torch_thread")
def test_the_commands_take_a_dict_batch_task(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import json

    from lrkit.cli import main

    monkeypatch.chdir(tmp_path)
    name = "s31_dict_task_mod"
    (tmp_path / f"{name}.py").write_text(textwrap.dedent(TASK_FILE))
    monkeypatch.syspath_prepend(str(tmp_path))
    task = f"{name}:task"
    lab = ["lab", "--task", task, "--strategy", "a=constant(0.03)", "--workers", "1", "--out", "lab-out"]
    tune = ["tune", "--task", task, "--trials", "2", "--no-finder", "--storage", "t.db", "--out", "t-out"]
    find = ["find", "--task", task, "--out", "f.png", "--json", "f.json", "--repeats", "1"]
    auto = ["auto", "--task", task, "--json", "a.json"]
    for argv in (lab, tune, find, auto):
        code = main(argv)
        err = capsys.readouterr().err
        assert code == 0, (argv, err)
    assert math.isfinite(json.loads((tmp_path / "a.json").read_text())["metric"])
    assert (tmp_path / "f.json").exists() and (tmp_path / "lab-out" / "lab.db").exists()


# ---- 5. factory builds: Task.check on seed 0 is the probe the task's properties read -------------------


def test_check_on_seed_0_is_the_probe_and_training_builds_anew() -> None:
    builds: list[int] = []
    x, y = torch.randn(16, 4), torch.randint(0, 3, (16,))

    def factory(seed: int) -> TaskParts:
        builds.append(seed)
        return TaskParts(nn.Linear(4, 3), [(x, y)], [(x, y)], loss_fn=F.cross_entropy, epochs=2)

    task = Task("count", factory)
    task.check()
    assert (task.optimizer, task.epochs, task.steps_per_epoch, task.metric_name) == (
        "adamw",
        2,
        1,
        "val accuracy",
    )
    assert builds == [0]  # was [0, 0]: check's build, then the probe's
    before = [p.detach().clone() for p in task._probe.model.parameters()]
    task.train_run(0.1)
    assert builds == [0, 0]  # training builds its own model: the checked one is never trained
    assert all(torch.equal(a, b) for a, b in zip(before, task._probe.model.parameters(), strict=True))
    other = Task("count", factory)
    other.check(seed=3)
    assert other.epochs == 2 and builds == [0, 0, 3, 0]  # another seed's build is not the probe
