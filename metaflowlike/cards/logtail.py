"""Keep the last lines a task printed, for the default card's log tail.

The task's logs are saved by whoever supervises the process, after it exits: too late
for a card rendered inside the task. So while a step with a card runs, ``sys.stdout``
and ``sys.stderr`` pass every write through unchanged and keep a bounded tail.
"""

from __future__ import annotations

import sys
from collections import deque
from typing import Any

MAX_CHUNKS = 400


class _Tee:
    def __init__(self, stream: Any, tail: deque, label: str) -> None:
        self._stream, self._tail, self._label = stream, tail, label

    def write(self, text: str) -> int:
        self._tail.append((self._label, text))
        return self._stream.write(text)

    def writelines(self, lines) -> None:
        for line in lines:
            self.write(line)

    def __getattr__(self, name: str) -> Any:  # flush, fileno, buffer, isatty...
        return getattr(self._stream, name)


class LogTail:
    """Installs the pass-through once per task; ``text()`` is the tail so far."""

    def __init__(self) -> None:
        self.chunks: deque[tuple[str, str]] = deque(maxlen=MAX_CHUNKS)
        if not isinstance(sys.stdout, _Tee):
            sys.stdout = _Tee(sys.stdout, self.chunks, "stdout")
        if not isinstance(sys.stderr, _Tee):
            sys.stderr = _Tee(sys.stderr, self.chunks, "stderr")

    def text(self, max_lines: int = 60) -> str:
        lines = "".join(text for _, text in self.chunks).splitlines()
        return "\n".join(lines[-max_lines:])
