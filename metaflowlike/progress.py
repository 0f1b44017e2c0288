"""The live progress display of a run on a terminal (rich).

One compact block stays at the bottom of the terminal: steps done out of the flow's
steps, tasks running, retries and failures, elapsed time, and a bar per foreach with
done/total and an ETA. The tasks' own output scrolls above it with the usual
``[run/step/task]`` prefix. Events only update counters; rich redraws the block a few
times a second in its own thread, so a run with many small tasks is not slowed down by
drawing. Only imported when the output is a terminal (see ``reporter.make_reporter``).
"""

from __future__ import annotations

import os
import sys
from typing import Any

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    SpinnerColumn,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.text import Text

from .reporter import Reporter, _prefix


class ProgressReporter(Reporter):
    def __init__(self, graph: Any = None) -> None:
        super().__init__(quiet=False)
        self.total_steps = len(graph) if graph is not None else 0
        # rich draws from its own thread. It writes to a file object of its own (on a
        # copy of the terminal's descriptor), never to sys.stdout: a task forked while
        # a redraw is half-written must not inherit that text in its own sys.stdout.
        self._term = open(os.dup(sys.stdout.fileno()), "w", encoding="utf-8", errors="replace")
        self.console = Console(file=self._term, highlight=False)
        self.err_console = (
            self.console if sys.stderr.isatty() else Console(file=sys.stderr, highlight=False)
        )
        self.progress = Progress(
            SpinnerColumn(),
            TextColumn("{task.description}"),
            BarColumn(bar_width=30),
            MofNCompleteColumn(),
            TextColumn("ETA"),
            TimeRemainingColumn(),
            TimeElapsedColumn(),
            console=self.console,
            refresh_per_second=4,
            transient=False,
            redirect_stdout=False,  # tasks print to their own pipes, never through rich
            redirect_stderr=False,
        )
        self.overall: TaskID | None = None
        self.bars: dict[str, TaskID] = {}  # foreach body step -> its bar
        self.done_steps: set[str] = set()

    # --- drawing ---------------------------------------------------------------------

    def _status(self) -> str:
        s = self.stats
        parts = [f"steps {len(self.done_steps)}/{self.total_steps}", f"{s.running} running"]
        if s.retries:
            parts.append(f"{s.retries} retr{'y' if s.retries == 1 else 'ies'}")
        parts.append(f"{s.failed} failed" if s.failed else "no failures")
        return " · ".join(parts)

    def _update(self) -> None:
        if self.overall is not None:
            self.progress.update(
                self.overall, description=self._status(), completed=len(self.done_steps)
            )

    def _bar(self, bar: TaskID):
        return next(t for t in self.progress.tasks if t.id == bar)

    def _line(self, text: str, err: bool = False) -> None:
        console = self.err_console if err else self.console
        console.print(Text(text, style="red" if err else ""), soft_wrap=True)

    def _task_lines(self, spec: Any, stream: str, lines: list[bytes]) -> None:
        pre = _prefix(spec).decode()
        console = self.err_console if stream == "stderr" else self.console
        text = "\n".join(pre + line.decode(errors="replace") for line in lines)
        console.print(Text(text), soft_wrap=True)

    # --- events ----------------------------------------------------------------------

    def run_started(self, flow: str, run_id: str, user: str, resumed_from: str | None = None):
        super().run_started(flow, run_id, user, resumed_from)
        self.overall = self.progress.add_task(self._status(), total=self.total_steps or None)
        self.progress.start()

    def task_started(self, spec: Any) -> None:
        self.stats.task_started(spec)
        self._update()

    def task_cloned(self, spec: Any, origin: str) -> None:
        self.stats.reused += 1
        self.done_steps.add(spec.step_name)
        self._update()

    def task_cached(self, spec: Any, origin: str) -> None:
        self.stats.cached += 1
        self.done_steps.add(spec.step_name)
        self._update()

    def foreach_started(self, spec: Any, step: str, num_splits: int) -> None:
        bar = self.bars.get(step)
        if bar is None:
            self.bars[step] = self.progress.add_task(f"foreach {step}", total=num_splits)
        else:
            total = self._bar(bar).total or 0
            self.progress.update(bar, total=total + num_splits)

    def task_finished(self, spec: Any, started: float) -> None:
        self.stats.task_ended(spec, True)
        bar = self.bars.get(spec.step_name)
        if bar is not None:
            self.progress.advance(bar)
        st = self.stats.step(spec.step_name)
        if st.running == 0 and (bar is None or self._bar(bar).finished):
            self.done_steps.add(spec.step_name)
        self._update()

    def task_retry(self, spec: Any, reason: str | None) -> None:
        super().task_retry(spec, reason)
        self._update()

    def task_failed(self, spec: Any, reason: str | None, exception: dict | None) -> None:
        super().task_failed(spec, reason, exception)
        self._update()

    def interrupted(self) -> None:
        self.progress.stop()
        super().interrupted()

    def run_finished(self, ok: bool, flow: str, run_id: str) -> None:
        self._update()
        self.progress.stop()
        super().run_finished(ok, flow, run_id)
        self._term.flush()
