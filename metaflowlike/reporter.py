"""Console output of a run: the runtime emits events, this renders them.

Task output is streamed line by line with a ``[run_id/step/task_id]`` prefix; stderr
lines go to the console's stderr. Swap the reporter (JSON, progress bars, quiet) without
touching the scheduler.
"""

from __future__ import annotations

import sys
import time
from typing import Any

#: a partial line longer than this is printed without waiting for its newline
MAX_PARTIAL = 64 << 10


def _prefix(spec: Any) -> bytes:
    return f"[{spec.run_id}/{spec.step_name}/{spec.task_id}] ".encode()


class Reporter:
    def __init__(self, quiet: bool = False, out=None, err=None) -> None:
        self.quiet = quiet
        self.out = out or sys.stdout.buffer
        self.err = err or sys.stderr.buffer

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
        if not self.quiet:
            self._task_line(spec, f"Cloned from {origin}.")

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
            pre = _prefix(spec)
            out = self.err if stream == "stderr" else self.out
            out.write(b"".join(pre + line + b"\n" for line in lines))
            out.flush()

    def task_output_flush(self, spec: Any, partial: dict) -> None:
        for stream, rest in partial.items():
            if rest:
                self.task_output(spec, stream, b"\n", {stream: bytearray(rest)})
        partial.clear()

    def task_finished(self, spec: Any, started: float) -> None:
        if not self.quiet:
            self._task_line(spec, f"Task finished successfully ({time.time() - started:.2f}s).")

    def task_retry(self, spec: Any, reason: str | None) -> None:
        why = f": {reason}" if reason else ""
        self._task_line(spec, f"Task failed{why}. Retrying.", err=True)

    def task_failed(self, spec: Any, reason: str | None, exception: dict | None) -> None:
        why = f": {reason}" if reason else ""
        if exception:
            why = f": {exception['type']}: {exception['message']}"
        self._task_line(spec, f"Task failed{why}", err=True)

    def run_error(self, spec: Any, message: str) -> None:
        self._task_line(spec, message, err=True)

    def interrupted(self) -> None:
        self._line("Interrupted: stopping all tasks.", err=True)

    def run_finished(self, ok: bool, flow: str, run_id: str) -> None:
        if ok:
            self._line(f"Done! Read the results with Run('{flow}/{run_id}').")
        else:
            self._line(f"Run {flow}/{run_id} failed.", err=True)
