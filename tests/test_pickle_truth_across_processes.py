"""lrkit's errors and results cross process boundaries as real training code sends them.

A guarded run that diverged in a ``multiprocessing.Pool`` worker hung the Pool (its result handler died
unpickling the ``DivergenceError``: ``__init__`` wanted ``event`` and ``events``), and
``ProcessPoolExecutor`` broke; a ``FinderResult`` (and the ``NoSuggestionError`` and ``AutoResult`` that
carry one) could not be pickled, deep-copied or ``torch.save``'d at all (its default ``settings`` was a
``MappingProxyType``). The workers here are spawned, as on macOS and Windows, and run the guard and the
finder for real; the parent compares what arrives with the same run made in-process.
"""

from __future__ import annotations

import concurrent.futures as cf
import copy
import dataclasses
import io
import math
import multiprocessing as mp
import pickle
import warnings
from typing import Any

import numpy as np
import pytest

torch = pytest.importorskip("torch")

import lrkit  # noqa: E402
from lrkit.control import DivergenceError, DivergenceEvent, DivergenceGuard  # noqa: E402
from lrkit.finder.result import Curve, FinderResult, NoSuggestionError  # noqa: E402

TIMEOUT = 120  # seconds; the old code hung the Pool for ever


def diverge(nan_from: int) -> None:
    """A guarded SGD run whose loss is NaN from step ``nan_from`` on: the guard rolls back once, then
    gives up with a DivergenceError (the worker of the tests below)."""
    warnings.simplefilter("ignore")
    torch.manual_seed(0)
    model = torch.nn.Linear(4, 1)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    sched = lrkit.torch.scheduler(opt, "cosine(lr=0.1)", total_steps=50)
    guard = DivergenceGuard(model, opt, sched, max_recoveries=1, snapshot_every=1)
    for step in range(10):
        loss = model(torch.randn(2, 4)).pow(2).mean()
        if step >= nan_from:
            loss = loss * float("nan")
        loss.backward()
        if guard.check(loss, step):
            opt.step()
            sched.step()
        opt.zero_grad()


def find(seed: int) -> FinderResult:
    """A real range test of a small classifier."""
    warnings.simplefilter("ignore")
    torch.manual_seed(seed)
    x = torch.randn(256, 10)
    y = (x[:, 0] > 0).long()
    loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(x, y), batch_size=32, shuffle=True)
    model = torch.nn.Sequential(torch.nn.Linear(10, 16), torch.nn.ReLU(), torch.nn.Linear(16, 2))
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    return lrkit.find_lr(model, opt, loader, torch.nn.functional.cross_entropy)


def no_suggestion(n: int) -> None:
    """Raise the NoSuggestionError of a flat curve, its FinderResult with it."""
    lrs = np.geomspace(1e-5, 1.0, n)
    flat = np.full(n, 2.0)
    FinderResult.from_curves([Curve(lrs, flat, flat)]).require()


def _raised(fn: Any, *args: Any) -> BaseException:
    with pytest.raises(BaseException) as info:
        fn(*args)
    return info.value


def _same_error(got: BaseException, want: DivergenceError) -> None:
    assert type(got) is type(want) and str(got) == str(want) and got.args == want.args
    assert isinstance(got, DivergenceError)
    # frozen dataclasses, by value (repr: their loss is NaN, and nan != nan)
    assert repr(got.event) == repr(want.event) and repr(got.events) == repr(want.events)
    assert all(type(e) is DivergenceEvent for e in got.events)
    assert got.finding == want.finding and got.remedies == want.remedies and got.advice() == want.advice()


def _same_result(got: FinderResult, want: FinderResult) -> None:
    assert type(got) is FinderResult and str(got) == str(want)
    for f in dataclasses.fields(FinderResult):
        a, b = getattr(got, f.name), getattr(want, f.name)
        if f.name == "curves":
            assert len(a) == len(b)
            for ca, cb in zip(a, b, strict=True):
                for name in ("lrs", "losses", "smoothed"):
                    assert np.array_equal(getattr(ca, name), getattr(cb, name), equal_nan=True)
                assert ca.stopped_at == cb.stopped_at
        elif f.name == "per_repeat":
            assert a.keys() == b.keys()
            assert all(np.array_equal(a[k], b[k], equal_nan=True) for k in a)
        else:
            assert a == b, f.name
    assert got.suggestion == want.suggestion or (got.suggestion is None and want.suggestion is None)
    assert got.interval == want.interval or all(math.isnan(v) for v in (*got.interval, *want.interval))


def test_a_divergence_error_keeps_every_attribute_through_pickle_and_deepcopy() -> None:
    want = _raised(diverge, 3)
    assert isinstance(want, DivergenceError) and want.event is not None and len(want.events) == 2
    assert "training diverged at step 4" in str(want)
    want.add_note("a note added on the way")
    for got in (pickle.loads(pickle.dumps(want)), copy.deepcopy(want)):
        _same_error(got, want)
        assert got.__notes__ == ["a note added on the way"]
    # the guard's errors without an event (a NaN before any snapshot) too
    early = _raised(diverge, 0)
    assert isinstance(early, DivergenceError) and early.event is None
    _same_error(pickle.loads(pickle.dumps(early)), early)


def test_task_diverged_error_pickles_through_the_same_mechanism() -> None:
    """A subclass with its own ``__init__`` (lrkit.auto's TaskDivergedError) needs nothing of its own:
    its extra attribute travels in ``__dict__`` like the others."""
    from lrkit.auto import TaskDivergedError

    cause = _raised(diverge, 3)
    assert isinstance(cause, DivergenceError)
    want = TaskDivergedError(cause, {"metric": None, "diverged": cause.finding})
    for got in (pickle.loads(pickle.dumps(want)), copy.deepcopy(want)):
        _same_error(got, want)
        assert isinstance(got, TaskDivergedError) and got.outcome == want.outcome


def test_a_guard_that_gives_up_in_a_spawned_pool_worker_raises_its_error_in_the_parent() -> None:
    want = _raised(diverge, 3)
    assert isinstance(want, DivergenceError)
    ctx = mp.get_context("spawn")
    with ctx.Pool(1) as pool:
        pending = pool.apply_async(diverge, (3,))
        try:
            got = _raised(pending.get, TIMEOUT)
        finally:
            pool.terminate()
    assert not isinstance(got, mp.TimeoutError), "the Pool hung: its result handler died unpickling"
    _same_error(got, want)
    with cf.ProcessPoolExecutor(1, mp_context=ctx) as ex:
        got = _raised(ex.submit(diverge, 3).result, TIMEOUT)
    _same_error(got, want)


def test_a_finder_result_round_trips_through_pickle_deepcopy_and_torch_save() -> None:
    want = find(0)
    assert want.suggestion is not None
    buf = io.BytesIO()
    torch.save(want, buf)
    buf.seek(0)
    saved = torch.load(buf, weights_only=False)
    for got in (pickle.loads(pickle.dumps(want)), copy.deepcopy(want), saved):
        _same_result(got, want)
    # phrased for a command line, it keeps that phrasing
    flags = want.phrased_for({"repeats": "--repeats N", "budget": "--budget B"})
    assert pickle.loads(pickle.dumps(flags)).settings == flags.settings


def test_an_auto_result_pickles_with_its_finder_result() -> None:
    torch.manual_seed(0)
    x = torch.randn(128, 10)
    y = (x[:, 0] > 0).long()
    loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(x, y), batch_size=32, shuffle=True)
    model = torch.nn.Sequential(torch.nn.Linear(10, 16), torch.nn.ReLU(), torch.nn.Linear(16, 2))
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        run = lrkit.auto(model, opt, loader, torch.nn.functional.cross_entropy, epochs=2, verbose=False)
    got = pickle.loads(pickle.dumps(run))
    _same_result(got.finder, run.finder)
    assert got.peak_lr == run.peak_lr and got.summary == run.summary


def test_a_finder_result_and_a_no_suggestion_error_cross_a_spawned_process() -> None:
    want_result = find(0)
    want_error = _raised(no_suggestion, 40)
    assert isinstance(want_error, NoSuggestionError) and want_error.result is not None
    with cf.ProcessPoolExecutor(1, mp_context=mp.get_context("spawn")) as ex:
        got_result = ex.submit(find, 0).result(TIMEOUT)
        got_error = _raised(ex.submit(no_suggestion, 40).result, TIMEOUT)
    _same_result(got_result, want_result)
    assert type(got_error) is NoSuggestionError and str(got_error) == str(want_error)
    assert got_error.result is not None
    _same_result(got_error.result, want_error.result)
    assert got_error.result.why_none == want_error.result.why_none
