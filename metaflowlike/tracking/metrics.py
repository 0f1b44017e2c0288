"""The per-task metric buffer behind ``current.track``.

Training loops call ``track`` every iteration, so a call must cost a few list appends and
no I/O. Points collect in memory, one column list per name, and the task writes them in
one record inside its attempt folder when the step ends (successfully or not).
The attempt's completion marker is written after it, so readers see a task's metrics
exactly when they see its artifacts, and a task killed mid-step leaves none behind.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Mapping
from numbers import Integral, Real
from typing import Any

from ..exceptions import MetaflowlikeException
from ..forksafe import reset_in_child


class TrackingError(MetaflowlikeException):
    headline = "Invalid metric"


class MetricBuffer:
    """Columns per metric name: steps, values, timestamps (kept in call order)."""

    def __init__(self) -> None:
        self.series: dict[str, tuple[list, list, list]] = {}
        self._auto_step: dict[str, int] = {}

    def add(self, name: str, value: Any, step: int | None, at: float) -> None:
        if type(name) is not str or not name:
            raise TrackingError(f"current.track needs a metric name (a string), got {name!r}.")
        if type(value) is not float and (isinstance(value, bool) or not isinstance(value, Real)):
            try:  # numpy scalars, 0-d arrays and the like
                value = float(value)
            except (TypeError, ValueError):
                raise TrackingError(
                    f'current.track("{name}", ...) needs a number, got '
                    f"{type(value).__name__} {value!r}."
                ) from None
        if step is None:
            step = self._auto_step.get(name, 0)
        elif type(step) is not int:
            if isinstance(step, bool) or not isinstance(step, Integral):
                raise TrackingError(
                    f'current.track("{name}", ..., step={step!r}) needs an integer step.'
                )
            step = int(step)  # numpy integers
        self._auto_step[name] = step + 1
        steps, values, stamps = self.series.setdefault(name, ([], [], []))
        steps.append(step)
        values.append(float(value))
        stamps.append(at)

    def to_json(self) -> bytes:
        doc = {
            name: {"steps": s, "values": [_finite(v) for v in v_], "timestamps": t}
            for name, (s, v_, t) in self.series.items()
        }
        return json.dumps(doc, separators=(",", ":")).encode()

    def clear(self) -> None:
        self.series.clear()
        self._auto_step.clear()


def _finite(v: float) -> float | str:
    """JSON has no NaN or infinity: spell them as strings the reader turns back."""
    return v if math.isfinite(v) else repr(v)


_buffer = MetricBuffer()


@reset_in_child
def _fresh_buffer() -> None:
    """A forked task starts with no points of its parent (or of an earlier task)."""
    _buffer.clear()


def track(name: str | Mapping[str, Any], value: Any = None, step: int | None = None) -> None:
    """Record ``value`` of metric ``name`` at ``step`` (default: the metric's previous
    step + 1, starting at 0). ``track({"loss": 0.3, "acc": 0.9}, step=3)`` records
    several metrics at once."""
    at = time.time()
    if type(name) is not str and isinstance(name, Mapping):
        if value is not None:
            raise TrackingError(
                "current.track(dict, ...) takes the values from the dict; pass step= "
                "as a keyword, not a second positional value."
            )
        for key, val in name.items():
            _buffer.add(key, val, step, at)
        return
    if value is None:
        raise TrackingError(f'current.track("{name}") needs a value: current.track("{name}", 0.5).')
    _buffer.add(name, value, step, at)


def buffered() -> dict[str, tuple[list, list, list]]:
    """The points this task tracked so far: name -> (steps, values, timestamps). For
    plugins that forward metrics elsewhere (the lists are live: copy to keep)."""
    return _buffer.series


def save(fds: Any, pathspec: str, attempt: int) -> None:
    """Store the buffer of this task with its attempt, then empty it. Nothing is
    written when nothing was tracked."""
    if not _buffer.series:
        return
    fds.write_metrics(pathspec, attempt, _buffer.to_json())
    _buffer.clear()
