"""Metric series as the client returns them: ``task.metrics`` and ``run.metrics``."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

from ..datastore.task_datastore import DamagedRecord, warn_damaged

if TYPE_CHECKING:
    from ..client.objects import Run
    from ..client.task import Task


@dataclass(frozen=True)
class MetricSeries:
    """One metric's points in the order they were tracked. ``tasks`` names the task of
    each point (the same task throughout for ``task.metrics``)."""

    name: str
    steps: list[int] = field(default_factory=list)
    values: list[float] = field(default_factory=list)
    timestamps: list[float] = field(default_factory=list)
    tasks: list[str] = field(default_factory=list)

    @property
    def last(self) -> float | None:
        """The final value (what a comparison table shows), None if empty."""
        return self.values[-1] if self.values else None

    @property
    def times(self) -> list[datetime]:
        return [datetime.fromtimestamp(t, timezone.utc) for t in self.timestamps]

    def __len__(self) -> int:
        return len(self.values)

    def __iter__(self):
        """``for step, value in series``."""
        return iter(zip(self.steps, self.values))

    def __repr__(self) -> str:
        return f"<MetricSeries {self.name}: {len(self)} points, last={self.last}>"


def _number(v: Any) -> float:
    return float(v)  # "nan", "inf" and "-inf" come back from their spelled-out form


def task_metrics(task: Task) -> dict[str, MetricSeries]:
    """The series the task's latest finished attempt tracked (empty if none)."""
    attempt = task.current_attempt
    if attempt is None or not task.finished:
        return {}
    try:
        doc = task._fds.read_metrics(task.pathspec, attempt) or {}
        out = {}
        for name, cols in doc.items():
            steps, values, stamps = cols["steps"], cols["values"], cols["timestamps"]
            out[name] = MetricSeries(
                name,
                [int(s) for s in steps],
                [_number(v) for v in values],
                [float(t) for t in stamps],
                [task.pathspec] * len(values),
            )
        return out
    except (DamagedRecord, KeyError, TypeError, ValueError) as e:
        why = str(e) if isinstance(e, DamagedRecord) else "malformed series"
        where = task._fds.metrics_url(task.pathspec, attempt)
        warn_damaged(f"The metrics of task {task.pathspec}", where, why)
        return {}


def run_metrics(run: Run) -> dict[str, MetricSeries]:
    """Every task's series merged per name, in step order then time order."""
    points: dict[str, list[tuple[float, int, float, str]]] = {}
    for step in run:
        for task in step:
            for name, s in task_metrics(task).items():
                points.setdefault(name, []).extend(zip(s.timestamps, s.steps, s.values, s.tasks))
    out = {}
    for name, pts in points.items():
        pts.sort(key=lambda p: p[0])
        out[name] = MetricSeries(
            name,
            [p[1] for p in pts],
            [p[2] for p in pts],
            [p[0] for p in pts],
            [p[3] for p in pts],
        )
    return out


class TaskMetricsMixin:
    """Adds ``.metrics`` to the client's Task."""

    @property
    def metrics(self) -> dict[str, MetricSeries]:
        """Metric series by name: ``task.metrics["val_loss"].values``."""
        return task_metrics(self)  # type: ignore[arg-type]


class RunMetricsMixin:
    """Adds ``.metrics`` to the client's Run: the series of all its tasks."""

    @property
    def metrics(self) -> dict[str, MetricSeries]:
        """Metric series by name, merged over the run's tasks in time order."""
        return run_metrics(self)  # type: ignore[arg-type]
