"""The finder on loaders and data as users bring them: a stream without a length, a sample that is not
finite, a loader that does not shuffle, models whose outputs or inputs are not ``(x, y)``."""

from __future__ import annotations

import textwrap
from pathlib import Path
from typing import Any

import pytest

torch = pytest.importorskip("torch")

from torch.utils.data import DataLoader, IterableDataset, TensorDataset  # noqa: E402

import lrkit  # noqa: E402
from lrkit.finder import NoSuggestionError, find_lr  # noqa: E402

F = torch.nn.functional

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _data(n: int = 512) -> tuple[Any, Any]:
    g = torch.Generator().manual_seed(0)
    x = torch.randn(n, 10, generator=g)
    return x, (x[:, 0] > 0).long()


class Stream(IterableDataset):  # type: ignore[misc]
    """A streaming dataset: batches in a new random order each pass, and no ``__len__``, so that
    ``len(DataLoader(Stream()))`` raises TypeError (a DataLoader always has ``__len__``)."""

    def __init__(self, n: int = 512) -> None:
        self.x, self.y = _data(n)

    def __iter__(self) -> Any:
        p = torch.randperm(len(self.x))
        for i in range(0, len(self.x), 32):
            yield self.x[p[i : i + 32]], self.y[p[i : i + 32]]


def _model() -> tuple[Any, Any]:
    torch.manual_seed(0)
    m = torch.nn.Sequential(torch.nn.Linear(10, 32), torch.nn.ReLU(), torch.nn.Linear(32, 2))
    return m, torch.optim.SGD(m.parameters(), lr=0.1, momentum=0.9)


# --- 1. a loader without a length -----------------------------------------------------------------


def test_a_loader_over_an_iterable_dataset_without_a_length_is_tested_as_one_without_len() -> None:
    """It raised ``TypeError: object of type 'Stream' has no len()``: a DataLoader has ``__len__``,
    which raises for such a dataset. With planned_steps the budget is then 10% of them (no epoch)."""
    from lrkit.finder._data import known_length

    loader = DataLoader(Stream(), batch_size=None)
    with pytest.raises(TypeError):
        len(loader)
    assert known_length(loader) is None and known_length([1, 2]) == 2
    res = find_lr(*_model(), loader, F.cross_entropy, num_steps=30, repeats=2, planned_steps=500)
    assert res.repeats == 2 and res.budget == 50


@pytest.mark.filterwarnings("ignore:lrkit.auto. the LR search took")
def test_auto_on_a_stream_takes_steps_per_epoch_and_its_separate_test_runs() -> None:
    """auto's separate test (a fallback of the in-run ramp too) crashed on the same len()."""
    loader = DataLoader(Stream(), batch_size=None)
    with pytest.raises(TypeError, match=r"train_loader \(DataLoader\) has no len\(\); pass steps_per_epoch"):
        lrkit.auto(*_model(), loader, F.cross_entropy, epochs=3, verbose=False)
    res = lrkit.auto(
        *_model(), loader, F.cross_entropy, epochs=3, steps_per_epoch=16, search="separate", verbose=False
    )
    assert res.search == "separate" and res.peak_lr > 0


STREAM_SETUP = textwrap.dedent(
    """
    import torch
    from torch.utils.data import DataLoader, IterableDataset

    class Stream(IterableDataset):
        def __iter__(self):
            g = torch.Generator().manual_seed(0)
            x = torch.randn(512, 10, generator=g)
            y = (x[:, 0] > 0).long()
            p = torch.randperm(len(x))
            for i in range(0, len(x), 32):
                yield x[p[i : i + 32]], y[p[i : i + 32]]

    def model():
        torch.manual_seed(0)
        return torch.nn.Sequential(torch.nn.Linear(10, 32), torch.nn.ReLU(), torch.nn.Linear(32, 2))

    def data():
        return DataLoader(Stream(), batch_size=None)
    """
)


def test_lrkit_find_on_a_stream_is_not_bad_input(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """``lrkit find --data`` of a stream exited 2 ("bad input") on its len()."""
    from lrkit.cli import main

    (tmp_path / "stream_setup.py").write_text(STREAM_SETUP)
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    argv = ["find", "--model", "stream_setup:model", "--data", "stream_setup:data", "--loss", "cross_entropy"]
    code = main([*argv, "--num-steps", "40", "--repeats", "2", "--epochs", "3", "--out", "none"])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    assert captured.out.startswith("suggested LR")


# --- 2. a sample that is not finite -----------------------------------------------------------------


def _state(model: Any, opt: Any) -> tuple[dict[str, Any], Any]:
    import copy

    return {k: v.clone() for k, v in model.state_dict().items()}, copy.deepcopy(opt.state_dict())


def _same(a: tuple[dict[str, Any], Any], b: tuple[dict[str, Any], Any]) -> bool:
    return all(torch.equal(a[0][k], b[0][k]) for k in a[0]) and repr(a[1]) == repr(b[1])


def _bad_loader(bad: float = float("inf"), shuffle: bool = False) -> Any:
    x, y = _data(512)
    x[100, 3] = bad  # one sample of 512: batch 3 (of 32), its row 4
    return DataLoader(TensorDataset(x, y), batch_size=32, shuffle=shuffle)


@pytest.mark.parametrize("bad", [float("inf"), float("nan")])
def test_a_sample_that_is_not_finite_is_named_not_taken_for_a_blow_up(bad: float) -> None:
    """The ramp "blew up" wherever the batch came (even at 1e-7), escalation narrowed the ramp to
    1e-7 .. 2.8e-7 and the verdict said flat / lower start_lr. Now: the batch, the tensor, the index."""
    model, opt = _model()
    before = _state(model, opt)
    with pytest.raises(ValueError) as info:
        find_lr(model, opt, _bad_loader(bad), F.cross_entropy, num_steps=40, repeats=2, budget=500)
    text = str(info.value)
    assert text.startswith(
        f"batch 3 (counting from 0) of a pass over train_loader holds {bad} at batch[0][4, 3]"
    )
    assert "(1 of 320 values in batch[0] not finite)" in text and "no learning rate fixes this" in text
    assert "clean the data" in text
    assert _same(before, _state(model, opt))  # restored, as after any error


def test_the_value_is_found_in_nested_batches_and_in_val_data() -> None:
    x, y = _data(64)
    x2 = x.clone()
    x2[33, 1] = float("-inf")
    batches = [{"inputs": (x[i : i + 32], x2[i : i + 32]), "labels": y[i : i + 32]} for i in (0, 32)]

    def forward(model: Any, batch: Any) -> Any:
        a, b = batch["inputs"]
        return F.cross_entropy(model(a + b), batch["labels"])

    where = r"^batch 1 \(counting from 0\) of a pass over train_loader holds -inf at "
    with pytest.raises(ValueError, match=where + r"batch\['inputs'\]\[1\]\[1, 1\]"):
        find_lr(*_model(), batches, forward=forward, num_steps=20, repeats=1)
    with pytest.raises(ValueError, match=r"^val_data's batch 1 holds -inf at batch\['inputs'\]\[1\]\[1, 1\]"):
        find_lr(*_model(), batches[:1], forward=forward, val_data=batches, num_steps=20, repeats=1)


def test_auto_and_lrkit_find_name_the_data_not_a_missing_signal(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """auto raised NoSuggestionError and lrkit find exited 3 ("a larger --budget may find a signal")."""
    from lrkit.cli import main

    for search in ("in_run", "separate"):
        model, opt = _model()
        before = _state(model, opt)
        with pytest.raises(ValueError, match=r"holds inf at batch\[0\]\[4, 3\]") as info:
            lrkit.auto(model, opt, _bad_loader(), F.cross_entropy, epochs=10, search=search, verbose=False)
        assert not isinstance(info.value, NoSuggestionError)
        assert _same(before, _state(model, opt))
    (tmp_path / "bad_setup.py").write_text(
        STREAM_SETUP
        + textwrap.dedent(
            """
            from torch.utils.data import TensorDataset

            def bad_data():
                g = torch.Generator().manual_seed(0)
                x = torch.randn(512, 10, generator=g)
                y = (x[:, 0] > 0).long()
                x[100, 3] = float("inf")
                return DataLoader(TensorDataset(x, y), batch_size=32)
            """
        )
    )
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    argv = ["find", "--model", "bad_setup:model", "--data", "bad_setup:bad_data", "--out", "none"]
    assert main([*argv, "--num-steps", "40", "--epochs", "10"]) == 2
    assert "holds inf at batch[0][4, 3]" in capsys.readouterr().err


def test_a_blow_up_on_finite_data_ends_the_ramp_as_before() -> None:
    """The check reads the batch only when the loss is not finite, and finds nothing in finite data: the
    ramp ends at the blow-up with a result, as it did."""
    x, _ = _data(256)
    y = x.sum(dim=1, keepdim=True) * 100
    torch.manual_seed(0)
    model = torch.nn.Linear(10, 1)
    opt = torch.optim.SGD(model.parameters(), lr=0.01)
    loader = DataLoader(TensorDataset(x, y), batch_size=32, shuffle=True)
    res = find_lr(model, opt, loader, F.mse_loss, num_steps=60, end_lr=1e3, diverge_factor=None, repeats=2)
    assert all(not torch.isfinite(torch.tensor(c.losses[-1])) for c in res.curves)
    assert all(c.stopped_at == c.losses.size - 1 for c in res.curves)


def test_data_whose_loss_masks_missing_values_is_not_refused_when_the_model_blows_up() -> None:
    """Targets with NaN where a value is missing, masked by the loss: every batch holds NaN, and the
    loss was finite on the batch before; a NaN loss at a high LR is then the model's, not the data's."""
    x, _ = _data(256)
    y = x[:, :2].sum(dim=1, keepdim=True).repeat(1, 2) * 100
    y[::8, 1] = float("nan")  # in every batch of 32

    def masked(out: Any, target: Any) -> Any:
        ok = torch.isfinite(target)
        return F.mse_loss(out[ok], target[ok])

    torch.manual_seed(0)
    model = torch.nn.Linear(10, 2)
    opt = torch.optim.SGD(model.parameters(), lr=0.01)
    loader = DataLoader(TensorDataset(x, y), batch_size=32, shuffle=True)
    res = find_lr(model, opt, loader, masked, num_steps=60, end_lr=1e3, diverge_factor=None, repeats=1)
    assert not torch.isfinite(torch.tensor(res.losses[-1])) and res.losses.size > 10


# --- 3. a loader that does not shuffle ----------------------------------------------------------------


def _plain_loader(shuffle: bool) -> Any:
    x, _ = _data(1024)
    g = torch.Generator().manual_seed(1)
    y = (x[:, 0] + 0.5 * torch.randn(1024, generator=g) > 0).long()
    return DataLoader(TensorDataset(x, y), batch_size=32, shuffle=shuffle)  # torch's default: no shuffle


def test_repeats_over_a_loader_that_does_not_shuffle_are_said_to_be_alike_not_an_interval() -> None:
    """Three identical curves gave a zero-width "interval 0.0559 .. 0.0559", trusted, 3x the compute, no
    warning. Now a warning, a note, ``distinct_repeats`` 1 and no interval, as for one repeat."""
    from lrkit.finder.cli import FLAGS

    with pytest.warns(UserWarning, match=r"the 3 repeats saw the same batches in the same order") as rec:
        res = find_lr(*_model(), _plain_loader(shuffle=False), F.cross_entropy, num_steps=50)
    assert "shuffle them (shuffle=True), or run 1 repeat for 1/3 of the compute" in str(rec[0].message)
    assert res.repeats == 3 and res.distinct_repeats == 1
    one = find_lr(*_model(), _plain_loader(shuffle=False), F.cross_entropy, num_steps=50, repeats=1)
    assert res.suggestion == one.suggestion and res.trusted == one.trusted and res.interval == one.interval
    text = str(res)
    assert "3 repeats, all alike)" in text.splitlines()[0] and "interval" not in text.splitlines()[0]
    assert "  note: the 3 repeats saw the same batches in the same order" in text
    assert "or run 1 repeat (repeats) for 1/3 of the compute" in text
    assert "or run 1 repeat (--repeats N) for 1/3" in str(res.phrased_for(FLAGS))
    d = res.to_dict()
    assert d["distinct_repeats"] == 1 and d["notes"] == list(res.notes) and len(res.notes) == 1
    pytest.importorskip("matplotlib")
    from lrkit.finder.plot import plot_result

    title = plot_result(res).get_title()  # the plot's title says so too; it draws no band
    assert title.startswith("LR range test (exp ramp, 3 repeats, all alike)\n")


def test_repeats_over_a_shuffled_loader_keep_their_interval_and_say_nothing_more() -> None:
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        res = find_lr(*_model(), _plain_loader(shuffle=True), F.cross_entropy, num_steps=50)
    assert res.distinct_repeats == 3 and res.notes == () and res.to_dict()["notes"] == []
    lo, hi = res.interval
    assert lo < hi and f"interval {lo:.3g} .. {hi:.3g}" in str(res) and "note:" not in str(res)


def test_a_loss_that_depends_on_nothing_is_alike_over_any_batches_and_gets_no_note() -> None:
    """A model whose output ignores its weights: every curve is log(2) throughout, over a loader that
    shuffles. Nothing is said about the batches (the verdict, flat, says what is wrong)."""
    import warnings

    class Frozen(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.lin = torch.nn.Linear(10, 2)

        def forward(self, x: Any) -> Any:
            return 0.0 * self.lin(x)

    model = Frozen()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        res = find_lr(model, _sgd(model), _plain_loader(shuffle=True), F.cross_entropy, num_steps=30)
    assert res.distinct_repeats == 1 and not res.repeats_alike and res.notes == ()
    assert "flat" in res.problem_kinds and "note:" not in str(res)


@pytest.mark.parametrize("name", ["finder_runs_v2.json", "builtin_finder.json", "fresh_finder.json"])
def test_the_stored_benchmark_results_have_no_repeats_alike(name: str) -> None:
    """Their loaders shuffle: every repeat's curve differs, so no stored result gets the note (and the
    verdict, which does not read it, is as stored)."""
    import json
    import math

    import numpy as np

    from lrkit.finder import FinderResult
    from lrkit.finder.result import Curve

    path = Path(__file__).resolve().parents[1] / "bench" / "results" / name
    runs = json.loads(path.read_text())
    assert len(runs) >= 12
    for key, run in runs.items():
        curves = []
        for c in run["curves"]:
            losses = np.array([math.nan if v is None else v for v in c["losses"]])
            curves.append(Curve(np.array(c["lrs"], dtype=float), losses, losses, c["stopped_at"]))
        res = FinderResult.from_curves(curves)
        assert res.distinct_repeats == res.repeats == len(run["curves"]) and res.notes == (), key


# --- 4. outputs and inputs that are not (x, y) ---------------------------------------------------------


class DictNet(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.l = torch.nn.Linear(10, 2)

    def forward(self, x: Any) -> Any:
        return {"hidden": x.sum(1).long(), "logits": self.l(x)}


class TupleNet(DictNet):
    def forward(self, x: Any) -> Any:
        return self.l(x), x


class TwoInputs(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.a, self.b = torch.nn.Linear(5, 2), torch.nn.Linear(5, 2)

    def forward(self, x1: Any, x2: Any) -> Any:
        return self.a(x1) + self.b(x2)


def _sgd(model: Any) -> Any:
    return torch.optim.SGD(model.parameters(), lr=0.1)


def _hint(exc: BaseException) -> str:
    text = " ".join([str(exc), *getattr(exc, "__notes__", [])])
    return text.split("forward=", 1)[1]


def test_a_model_returning_a_dict_gets_a_hint_that_works_when_followed() -> None:
    """The hint was ``loss_fn(model(batch[0])[0], batch[1])``: KeyError 0 on a dict."""
    x, y = _data(256)
    loader = DataLoader(TensorDataset(x, y), batch_size=32, shuffle=True)
    model = DictNet()
    with pytest.raises(TypeError, match=r"model\(x\) returned a dict with keys \['hidden', 'logits'\]") as e:
        find_lr(model, _sgd(model), loader, F.cross_entropy, num_steps=10, repeats=1)
    hint = _hint(e.value)
    want = "lambda model, batch: loss_fn(model(batch[0])['logits'], batch[1])"
    assert hint.startswith(want + " (or whichever entry the loss takes)")
    forward = eval(hint.split(" (or")[0], {"loss_fn": F.cross_entropy})  # the hint as written
    assert find_lr(model, _sgd(model), loader, forward=forward, num_steps=10, repeats=1).steps == 10
    tup = TupleNet()
    with pytest.raises(TypeError, match=r"returned a tuple of 2") as e:
        find_lr(tup, _sgd(tup), loader, F.cross_entropy, num_steps=10, repeats=1)
    assert _hint(e.value).startswith(
        "lambda model, batch: loss_fn(model(batch[0])[0], batch[1]) (or whichever"
    )


def test_a_model_taking_two_inputs_gets_a_note_naming_forward() -> None:
    """``(x1, x2, y)`` batches: the model's raw "missing 1 required positional argument", no note."""
    x, y = _data(256)
    model = TwoInputs()
    flat = DataLoader(TensorDataset(x[:, :5], x[:, 5:], y), batch_size=32, shuffle=True)
    with pytest.raises(TypeError, match="missing 1 required positional argument") as e:
        find_lr(model, _sgd(model), flat, F.cross_entropy, num_steps=10, repeats=1)
    note = e.value.__notes__[0]
    assert "on a batch of 3 (the elements after the first two are not used)" in note
    hint = _hint(e.value)
    assert hint.startswith("lambda model, batch: loss_fn(model(*batch[:-1]), batch[-1]) for (x1, x2, ..., y)")
    forward = eval(hint.split(" for ")[0], {"loss_fn": F.cross_entropy})  # the hint as written
    assert find_lr(model, _sgd(model), flat, forward=forward, num_steps=10, repeats=1).steps == 10
    nested = [((x[i : i + 32, :5], x[i : i + 32, 5:]), y[i : i + 32]) for i in range(0, 256, 32)]
    with pytest.raises(TypeError, match="missing 1 required positional argument") as e:
        find_lr(model, _sgd(model), nested, F.cross_entropy, num_steps=10, repeats=1)
    assert _hint(e.value).startswith(
        "lambda model, batch: loss_fn(model(*batch[0]), batch[1]) (batch[0] is a tuple"
    )


def test_a_type_error_raised_inside_a_model_that_took_its_input_gets_no_note() -> None:
    class Inside(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.l = torch.nn.Linear(10, 2)

        def forward(self, x: Any) -> Any:
            raise TypeError("boom inside the model: missing 1 required positional argument")

    x, y = _data(64)
    model = Inside()
    with pytest.raises(TypeError, match="boom inside the model") as e:
        find_lr(model, _sgd(model), [(x, y, y)], F.cross_entropy, num_steps=10, repeats=1)
    assert not getattr(e.value, "__notes__", [])
