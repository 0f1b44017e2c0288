"""Console output of a run: the runtime emits events, this renders them.

Task output is streamed line by line with a ``[run_id/step/task_id]`` prefix; stderr
lines go to the console's stderr. Swap the reporter (JSON, progress bars, quiet) without
touching the scheduler: :func:`make_reporter` picks the live progress display
(``progress.py``) on a terminal and these plain lines everywhere else. Both end a run
with the same short summary.
"""

from __future__ import annotations

import os
import sys
import time
from dataclasses import dataclass, field
from typing import Any

#: a partial line longer than this is printed without waiting for its newline
MAX_PARTIAL = 64 << 10


def _prefix(spec: Any) -> bytes:
    return f"[{spec.run_id}/{spec.step_name}/{spec.task_id}] ".encode()


@dataclass
class StepStats:
    first_start: float = 0.0
    last_end: float = 0.0
    tasks: int = 0
    running: int = 0


@dataclass
class RunStats:
    """What the end-of-run summary (and the progress display) counts."""

    started: float = field(default_factory=time.time)
    steps: dict[str, StepStats] = field(default_factory=dict)
    tasks: int = 0
    running: int = 0
    retries: int = 0
    failed: int = 0
    reused: int = 0  # tasks resume cloned from the origin run
    cached: int = 0  # tasks not executed: an earlier task had the same cache key

    def step(self, name: str) -> StepStats:
        if name not in self.steps:
            self.steps[name] = StepStats()
        return self.steps[name]

    def task_started(self, spec: Any) -> None:
        st = self.step(spec.step_name)
        if not st.first_start:
            st.first_start = time.time()
        st.running += 1
        self.running += 1

    def task_ended(self, spec: Any, ok: bool | None) -> None:
        st = self.step(spec.step_name)
        st.running = max(0, st.running - 1)
        self.running = max(0, self.running - 1)
        st.last_end = time.time()
        if ok is None:
            self.retries += 1
        elif ok:
            st.tasks += 1
            self.tasks += 1
        else:
            self.failed += 1

    def summary(self, flow: str, run_id: str) -> list[str]:
        wall = time.time() - self.started
        retries = f"{self.retries} retr{'y' if self.retries == 1 else 'ies'}"
        lines = [
            f"Run {flow}/{run_id} took {wall:.1f}s: {self.tasks} task"
            f"{'' if self.tasks == 1 else 's'} succeeded, {retries}, {self.failed} failed"
            + (f", {self.reused} reused from the origin run" if self.reused else "")
            + (f", {self.cached} cached" if self.cached else "")
            + "."
        ]
        spans = sorted(
            ((st.last_end - st.first_start, name, st.tasks) for name, st in self.steps.items()),
            reverse=True,
        )
        if spans:
            slowest = ", ".join(
                f"{name} {span:.1f}s" + (f" ({n} tasks)" if n > 1 else "")
                for span, name, n in spans[:3]
            )
            lines.append(f"Slowest steps: {slowest}.")
        script = os.path.basename(sys.argv[0]) or "flow.py"
        lines.append(
            f"Inspect it: python {script} dump {run_id}/end, python {script} card list "
            f"{run_id}, or Run('{flow}/{run_id}') in Python."
        )
        return lines


def use_live_progress(quiet: bool, stream: Any = None) -> bool:
    """The live display only on a terminal that wants it: never with --quiet, NO_COLOR
    (any value) or TERM=dumb, never when output goes to a file or a pipe."""
    stream = stream or sys.stdout
    if quiet or os.environ.get("NO_COLOR") is not None:
        return False
    if os.environ.get("TERM", "") == "dumb":
        return False
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False


def make_reporter(quiet: bool = False, graph: Any = None) -> Reporter:
    if use_live_progress(quiet):
        from .progress import ProgressReporter  # imports rich: only for a terminal

        return ProgressReporter(graph)
    return Reporter(quiet=quiet)


class Reporter:
    def __init__(self, quiet: bool = False, out=None, err=None) -> None:
        self.quiet = quiet
        self.out = out or sys.stdout.buffer
        self.err = err or sys.stderr.buffer
        self.stats = RunStats()

    def _line(self, text: str, err: bool = False) -> None:
        stream = self.err if err else self.out
        stream.write(text.encode() + b"\n")
        stream.flush()

    def _task_line(self, spec: Any, text: str, err: bool = False) -> None:
        self._line(_prefix(spec).decode() + text, err)

    def run_started(
        self, flow: str, run_id: str, user: str, resumed_from: str | None = None
    ) -> None:
        stamp = time.strftime("%Y-%m-%d %H:%M:%S")
        extra = f", resuming run {resumed_from}" if resumed_from else ""
        self._line(f"{stamp} Workflow starting (run-id {run_id}{extra}) as user {user}:")

    def task_started(self, spec: Any) -> None:
        self.stats.task_started(spec)
        if not self.quiet:
            retry = f" (retry {spec.attempt})" if spec.attempt else ""
            self._task_line(spec, f"Task is starting{retry}.")

    def code_package(self, url: str, size: int, uploaded: int) -> None:
        if not self.quiet:
            stored = (
                f"uploaded {uploaded} bytes" if uploaded else "already stored, 0 bytes uploaded"
            )
            self._line(f"Code package {url} ({size} bytes): {stored}.")

    def task_cloned(self, spec: Any, origin: str) -> None:
        self.stats.reused += 1
        if not self.quiet:
            self._task_line(spec, f"Cloned from {origin}.")

    def task_cached(self, spec: Any, origin: str) -> None:
        self.stats.cached += 1
        if not self.quiet:
            self._task_line(spec, f"Not executed: cached from {origin}.")

    def cache_unavailable(self, spec: Any, why: str) -> None:
        self._task_line(
            spec, f"Cache not used for this task: its key cannot be computed ({why}).", err=True
        )

    def task_output(self, spec: Any, stream: str, data: bytes, partial: dict) -> None:
        """Print complete lines with the task's prefix; keep the rest for later.

        Only the new bytes are searched for a newline, and a pending partial line longer
        than MAX_PARTIAL is printed as it is (a progress bar that only writes ``\r``), so
        output costs the same whatever its shape."""
        buf = partial.setdefault(stream, bytearray())
        buf += data
        end = buf.rfind(b"\n", len(buf) - len(data)) + 1
        if not end and len(buf) > MAX_PARTIAL:
            buf += b"\n"
            end = len(buf)
        if end:
            lines = bytes(buf[: end - 1]).split(b"\n")
            del buf[:end]
            self._task_lines(spec, stream, lines)

    def _task_lines(self, spec: Any, stream: str, lines: list[bytes]) -> None:
        pre = _prefix(spec)
        out = self.err if stream == "stderr" else self.out
        out.write(b"".join(pre + line + b"\n" for line in lines))
        out.flush()

    def task_output_flush(self, spec: Any, partial: dict) -> None:
        for stream, rest in partial.items():
            if rest:
                self.task_output(spec, stream, b"\n", {stream: bytearray(rest)})
        partial.clear()

    def foreach_started(self, spec: Any, step: str, num_splits: int) -> None:
        """``spec`` fanned out into ``num_splits`` tasks of ``step``."""

    def task_finished(self, spec: Any, started: float) -> None:
        self.stats.task_ended(spec, True)
        if not self.quiet:
            self._task_line(spec, f"Task finished successfully ({time.time() - started:.2f}s).")

    def task_retry(self, spec: Any, reason: str | None) -> None:
        self.stats.task_ended(spec, None)
        why = f": {reason}" if reason else ""
        self._task_line(spec, f"Task failed{why}. Retrying.", err=True)

    def task_failed(self, spec: Any, reason: str | None, exception: dict | None) -> None:
        self.stats.task_ended(spec, False)
        why = f": {reason}" if reason else ""
        if exception and exception.get("location"):  # a mistake in the flow's code
            why = f": {exception['location']}: {exception['message']}"
        elif exception:
            why = f": {exception['type']}: {exception['message']}"
        self._task_line(spec, f"Task failed{why}", err=True)

    def run_error(self, spec: Any, message: str) -> None:
        self._task_line(spec, message, err=True)

    def warning(self, text: str) -> None:
        """A problem that does not change the run's outcome (on stderr)."""
        self._line(f"Warning: {text}", err=True)

    def interrupted(self) -> None:
        self._line("Interrupted: stopping all tasks.", err=True)

    def run_finished(self, ok: bool, flow: str, run_id: str) -> None:
        if ok:
            self._line(f"Done! Read the results with Run('{flow}/{run_id}').")
        else:
            self._line(f"Run {flow}/{run_id} failed.", err=True)
        if not self.quiet:
            for line in self.stats.summary(flow, run_id):
                self._line(line)
