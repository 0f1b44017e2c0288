"""``RunComparison``: the runs-side-by-side view of ``Flow.compare`` inside a card.

A step that closes a sweep (or a scheduled evaluation flow) appends it to show how the
latest runs compare: the table of ``Flow.compare`` (parameters, final metric values,
chosen artifacts) and, per metric, one curve per run. The runs are read when the
component is made, so a card stored once keeps showing what was true at that moment.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from typing import Any

from .components import CardComponent, Table, VegaChart, escape

#: curves with more points than this are thinned evenly so a card stays small
MAX_POINTS_PER_CURVE = 500


class RunComparison(CardComponent):
    """Runs of a flow side by side, newest first.

    ``runs`` is a client ``Flow`` (or a flow name), filtered with ``tags`` and
    ``where`` as in ``Flow.runs``, or an iterable of ``Run`` objects. ``max_runs`` keeps
    the newest ones.
    """

    needs_vega = True

    def __init__(
        self,
        runs: Any,
        metrics: Iterable[str] = (),
        params: Iterable[str] | None = None,
        artifacts: Iterable[str] = (),
        tags: Iterable[str] = (),
        where: Mapping[str, Any] | None = None,
        max_runs: int = 20,
        curves: bool = True,
    ) -> None:
        from ..tracking.compare import comparison_rows

        super().__init__()
        chosen = _newest(_runs(runs, tags, where), max_runs)
        self.metrics = list(metrics)
        self.rows = comparison_rows(chosen, self.metrics, params, artifacts)
        self.charts = [_curves(chosen, m) for m in self.metrics] if curves else []

    def render(self) -> str:
        if not self.rows:
            return '<p class="mfl-note">No runs to compare.</p>'
        headers = list(self.rows[0])
        table = Table([[_shown(row.get(h)) for h in headers] for row in self.rows], headers)
        charts = "".join(
            f"<h4>{escape(name)}</h4>{chart.render()}"
            for name, chart in zip(self.metrics, self.charts)
            if chart is not None
        )
        return table.render() + charts


def _runs(runs: Any, tags: Iterable[str], where: Mapping[str, Any] | None) -> Iterable[Any]:
    if isinstance(runs, str):
        from ..client import Flow

        runs = Flow(runs)
    if hasattr(runs, "runs") and callable(runs.runs):
        return runs.runs(*tags, **dict(where or {}))
    return runs


def _newest(runs: Iterable[Any], limit: int) -> list[Any]:
    chosen: list[Any] = []
    for run in runs:  # the client yields newest first
        if len(chosen) >= limit:
            break
        chosen.append(run)
    return chosen


def _shown(value: Any) -> Any:
    if isinstance(value, float):
        return "NaN" if math.isnan(value) else f"{value:.6g}"
    return "" if value is None else value


def _curves(runs: list[Any], metric: str) -> VegaChart | None:
    """A Vega-Lite line chart: value by step, one colored line per run."""
    values = []
    for run in runs:
        series = run.metrics.get(metric)
        if series is None or not len(series):
            continue
        stride = max(1, math.ceil(len(series) / MAX_POINTS_PER_CURVE))
        for step, value in list(zip(series.steps, series.values))[::stride]:
            if math.isfinite(value):
                values.append({"run": run.pathspec, "step": step, "value": value})
    if not values:
        return None
    return VegaChart(
        {
            "$schema": "https://vega.github.io/schema/vega-lite/v5.json",
            "data": {"values": values},
            "mark": {"type": "line", "point": len(values) <= 200},
            "encoding": {
                "x": {"field": "step", "type": "quantitative"},
                "y": {"field": "value", "type": "quantitative", "title": metric},
                "color": {"field": "run", "type": "nominal"},
            },
            "width": 480,
            "height": 240,
        }
    )
