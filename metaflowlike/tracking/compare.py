"""Runs side by side: parameters, final metric values and chosen artifacts per run.

``Flow("Train").compare(metrics=["val_loss"], params=["lr"])`` returns one row per run,
as a pandas DataFrame when pandas is installed (a list of dicts otherwise), with the
column names MLflow users know from ``search_runs``: ``params.<name>``,
``metrics.<name>`` (the last tracked value) and ``artifacts.<name>``.
:func:`plot_metric` draws one metric's curve per run with matplotlib.
"""

from __future__ import annotations

import ast
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

from ..datastore.records import RunRecord
from ..exceptions import MetaflowlikeException

if TYPE_CHECKING:
    from ..client.objects import Run


class OptionalPackageMissing(MetaflowlikeException):
    headline = "Optional package missing"


def parameter_value(shown: str) -> Any:
    """A run record keeps each parameter as its ``repr``: numbers, strings, lists and
    the like come back as values, anything else stays the text."""
    try:
        return ast.literal_eval(shown)
    except (ValueError, SyntaxError, MemoryError, RecursionError):
        return shown


def parameters_match(record: RunRecord, wanted: Mapping[str, Any]) -> bool:
    """True if the run record's parameters equal every value in ``wanted``."""
    have = record.param_values
    for name, value in wanted.items():
        if name not in have:
            return False
        shown = have[name]
        if shown != repr(value) and parameter_value(shown) != value:
            return False
    return True


def comparison_rows(
    runs: Iterable[Run],
    metrics: Iterable[str] = (),
    params: Iterable[str] | None = None,
    artifacts: Iterable[str] = (),
) -> list[dict[str, Any]]:
    """One dict per run. ``params=None`` takes every parameter the runs have."""
    metrics, artifacts = list(metrics), list(artifacts)
    rows = []
    for run in runs:
        row: dict[str, Any] = {
            "run": run.pathspec,
            "created_at": run.created_at,
            "successful": run.successful,
        }
        values = run.parameters
        for name in params if params is not None else sorted(values):
            row[f"params.{name}"] = values.get(name)
        if metrics:
            series = run.metrics
            for name in metrics:
                row[f"metrics.{name}"] = series[name].last if name in series else None
        if artifacts:
            end = run.end_task
            for name in artifacts:
                row[f"artifacts.{name}"] = (
                    end[name].data if end is not None and name in end else None
                )
        rows.append(row)
    return rows


def _pandas():
    try:
        import pandas
    except ImportError:
        return None
    return pandas


class CompareMixin:
    """Adds ``compare`` and ``plot_metric`` to the client's Flow."""

    runs: Any  # Flow.runs(*tags, **params)

    def compare(
        self,
        metrics: Iterable[str] = (),
        params: Iterable[str] | None = None,
        artifacts: Iterable[str] = (),
        tags: Iterable[str] = (),
        where: Mapping[str, Any] | None = None,
    ) -> Any:
        """A table of this flow's runs (newest first) carrying every tag in ``tags`` and
        the parameter values in ``where``: a pandas DataFrame indexed by run pathspec
        when pandas is installed, else a list of dicts."""
        runs = self.runs(*tags, **dict(where or {}))
        rows = comparison_rows(runs, metrics, params, artifacts)
        pandas = _pandas()
        if pandas is None:
            return rows
        frame = pandas.DataFrame(rows)
        return frame.set_index("run") if rows else frame

    def plot_metric(
        self,
        metric: str,
        tags: Iterable[str] = (),
        where: Mapping[str, Any] | None = None,
        ax: Any = None,
    ) -> Any:
        """Draw ``metric`` (value by step) for each matching run on one matplotlib axes;
        returns the axes."""
        return plot_metric(self.runs(*tags, **dict(where or {})), metric, ax)


def plot_metric(runs: Iterable[Run], metric: str, ax: Any = None) -> Any:
    """One line per run that tracked ``metric``, labelled with the run's pathspec."""
    try:
        if ax is None:
            import matplotlib.pyplot as plt

            _, ax = plt.subplots()
    except ImportError:
        raise OptionalPackageMissing(
            "Plotting metric curves needs matplotlib: pip install 'metaflowlike[tracking]'."
        ) from None
    for run in runs:
        series = run.metrics.get(metric)
        if series is not None and len(series):
            ax.plot(series.steps, series.values, label=run.pathspec)
    ax.set_xlabel("step")
    ax.set_ylabel(metric)
    if ax.get_legend_handles_labels()[0]:
        ax.legend()
    return ax
