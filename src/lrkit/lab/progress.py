"""Progress of a lab sweep: tqdm bars on a terminal (the sweep: runs done and ETA; one bar per active run:
epoch and metric), plain lines otherwise (one per finished run)."""

from __future__ import annotations

import math
from typing import IO, Any

from .._terminal import printable, stdout
from .._text import plural
from .store import RunRecord

__all__ = ["SweepProgress"]


def _describe(rec: RunRecord, metric_name: str) -> str:
    if rec.status == "diverged":
        return f"diverged at step {rec.diverged_step}"
    m = rec.final_metric
    return f"{metric_name} {m:.4f}" if m is not None and math.isfinite(m) else f"{metric_name} n/a"


class SweepProgress:
    """A ``progress(event, info)`` callback for :func:`lrkit.lab.runner.run_lab`."""

    def __init__(
        self, stream: IO[str] | None = None, *, bars: bool | None = None, metric_name: str = "metric"
    ):
        self.stream = stream or stdout()  # none (pythonw, `>&-`): nothing is shown, as print does
        self.bars = self.stream.isatty() if bars is None else bars
        self.metric_name = metric_name
        self.total = 0
        self._sweep: Any = None
        self._runs: dict[str, Any] = {}
        self._finished = 0

    def __call__(self, event: str, info: dict[str, Any]) -> None:
        getattr(self, f"_on_{event}")(info)

    def _on_start(self, info: dict[str, Any]) -> None:
        self.total, done = int(info["total"]), int(info["done"])
        self._finished = done
        skipped = f" ({done} already in the database, skipped)" if done else ""
        print(f"lab: {plural(self.total, 'run')}{skipped}", file=self.stream, flush=True)
        if self.bars:
            from tqdm.auto import tqdm

            self._sweep = tqdm(total=self.total, initial=done, desc="sweep", unit="run", file=self.stream)

    def _on_tick(self, info: dict[str, Any]) -> None:
        if not self.bars or self._sweep is None:
            return
        from tqdm.auto import tqdm

        done = int(info["done"])
        if done > self._sweep.n:
            self._sweep.update(done - self._sweep.n)
        active: dict[str, dict[str, Any] | None] = info["active"]
        for name in list(self._runs):
            if name not in active:
                self._runs.pop(name).close()
        for name, prog in active.items():
            bar = self._runs.get(name)
            if bar is None:
                bar = tqdm(total=1, desc=printable(name[:40]), unit="ep", leave=False, file=self.stream)
                self._runs[name] = bar
            if prog:
                bar.total = int(prog.get("epochs", 1))
                bar.n = int(prog.get("epoch", 0))
                m = prog.get("metric")
                if isinstance(m, (int, float)) and math.isfinite(m):
                    bar.set_postfix_str(f"{printable(self.metric_name)} {m:.4f}", refresh=False)
                bar.refresh()

    def _on_run(self, info: dict[str, Any]) -> None:
        rec: RunRecord = info["record"]
        self._finished += 1
        where = f"[{self._finished}/{self.total}] {rec.label} / seed {rec.seed}"
        line = printable(f"  {where}: {_describe(rec, self.metric_name)} ({rec.seconds:.1f} s)")
        if self.bars and self._sweep is not None:
            self._sweep.write(line, file=self.stream)
        else:
            print(line, file=self.stream, flush=True)

    def _on_end(self, info: dict[str, Any]) -> None:
        for bar in self._runs.values():
            bar.close()
        self._runs.clear()
        if self._sweep is not None:
            self._sweep.n = self.total
            self._sweep.close()
            self._sweep = None
