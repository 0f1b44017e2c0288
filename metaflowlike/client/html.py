"""Notebook views: ``_repr_html_`` for Flow, Run, Step, Task and DataArtifact.

Mixed into the client classes so that a notebook cell ending in ``run`` shows the run's
DAG colored by status, its step timings, parameters and artifacts, and a task shows
its artifacts, the tail of its logs and its cards. Plain ``repr`` stays the short
``Run('Flow/123')``. The views only read what they show, and never an artifact's bytes
beyond a small preview.
"""

from __future__ import annotations

import html
from datetime import datetime
from typing import Any

from ..datastore.records import RunRecord

#: artifacts up to this stored size get a value preview in the views
PREVIEW_MAX_BYTES = 4096
MAX_ROWS = 50

STATUS_COLORS = {"ok": "#dafbe1", "failed": "#ffebe9", "running": "#fff8c5"}

STYLE = (
    "<style>.mfl-view table{border-collapse:collapse;margin:4px 0 10px}"
    ".mfl-view th,.mfl-view td{border:1px solid #d0d7de;padding:2px 8px;text-align:left;"
    "vertical-align:top}.mfl-view pre{margin:0;white-space:pre-wrap;max-height:260px;"
    "overflow:auto}.mfl-view svg{max-width:100%;height:auto}"
    ".mfl-view .ok{color:#1a7f37}.mfl-view .failed{color:#cf222e}"
    ".mfl-view .running{color:#9a6700}</style>"
)


def _e(value: Any) -> str:
    return html.escape(str(value), quote=True)


def _when(value: datetime | None) -> str:
    return value.strftime("%Y-%m-%d %H:%M:%S") if value else "-"


def _secs(start: datetime | None, end: datetime | None) -> str:
    if not start or not end:
        return "-"
    return f"{(end - start).total_seconds():.2f} s"


def _table(headers: list[str], rows: list[list[str]], more: int = 0) -> str:
    head = "".join(f"<th>{_e(h)}</th>" for h in headers)
    body = "".join("<tr>" + "".join(f"<td>{c}</td>" for c in row) + "</tr>" for row in rows)
    extra = f"<p>{more} more not shown.</p>" if more > 0 else ""
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>{extra}"


def _view(title: str, *parts: str) -> str:
    return f'{STYLE}<div class="mfl-view"><h3>{_e(title)}</h3>{"".join(parts)}</div>'


def _status_of(task: Any) -> str:
    if not task.finished:
        return "running"
    return "ok" if task.successful else "failed"


def _badge(status: str) -> str:
    return f'<b class="{_e(status)}">{_e(status)}</b>'


def _size(n: int | None) -> str:
    if n is None:
        return "-"
    if n < 1024:
        return f"{n} bytes"
    return f"{n / 1024:.1f} KB" if n < 1 << 20 else f"{n / (1 << 20):.1f} MB"


def _preview(artifact: Any) -> str:
    if artifact.size is None or artifact.size > PREVIEW_MAX_BYTES:
        return ""
    from ..cards.components import preview

    try:
        return f"<pre>{_e(preview(artifact.data, 300))}</pre>"
    except Exception as e:  # noqa: BLE001 - a view shows what it can
        return f"(cannot load: {_e(type(e).__name__)})"


def _artifacts_table(task: Any) -> str:
    arts = sorted(task, key=lambda a: a.id)
    rows = [[f"<b>{_e(a.id)}</b>", _e(a.type), _size(a.size), _preview(a)] for a in arts]
    return _table(["name", "type", "size", "value"], rows[:MAX_ROWS], len(rows) - MAX_ROWS)


def dag_svg(record: RunRecord, statuses: dict[str, str]) -> str:
    """The run's DAG (from the graph shape stored in its record), colored by status."""
    from ..graph_render import GraphvizMissing, render_dot, render_picture, summary_nodes

    summary = record.graph
    if not summary:
        return ""
    styles = {
        step: {"style": "filled,rounded", "fillcolor": STATUS_COLORS[s]}
        for step, s in statuses.items()
        if s in STATUS_COLORS
    }
    dot = render_dot(summary_nodes(summary), name=record.flow or "flow", styles=styles)
    try:
        return render_picture(dot, "svg").decode()
    except GraphvizMissing:
        return "<p>(install Graphviz to see the DAG drawn here)</p>"


class FlowViews:
    def _repr_html_(self) -> str:
        rows = []
        runs = []
        for run in self.runs():  # type: ignore[attr-defined]
            runs.append(run)
            if len(runs) > 10:
                break
        for run in runs[:10]:
            status = "ok" if run.successful else ("running" if not run.finished else "failed")
            rows.append([_e(run.id), _badge(status), _when(run.created_at), _e(run.user or "-")])
        table = _table(["run", "status", "created", "user"], rows) if rows else "<p>No runs.</p>"
        return _view(f"Flow {self.id}", "<h4>Latest runs</h4>", table)  # type: ignore[attr-defined]


class RunViews:
    def _repr_html_(self) -> str:
        step_rows, statuses = [], {}
        for step in self:  # type: ignore[attr-defined]
            tasks = list(step)
            states = [_status_of(t) for t in tasks]
            status = "failed" if "failed" in states else "running" if "running" in states else "ok"
            statuses[step.id] = status
            start = min((t.created_at for t in tasks if t.created_at), default=None)
            ends = [t.finished_at for t in tasks]
            end = max(ends) if ends and all(ends) else None  # type: ignore[type-var]
            step_rows.append(
                [_e(step.id), _badge(status), str(len(tasks)), _when(start), _secs(start, end)]
            )
        record = self._record  # type: ignore[attr-defined]
        status = "ok" if self.successful else ("running" if not self.finished else "failed")  # type: ignore[attr-defined]
        facts = _table(
            ["status", "created", "finished", "user", "tags"],
            [[_badge(status), _when(self.created_at), _when(self.finished_at),  # type: ignore[attr-defined]
              _e(self.user or "-"), _e(", ".join(sorted(self.user_tags)) or "-")]],  # type: ignore[attr-defined]
        )  # fmt: skip
        params = record.param_values
        param_table = (
            _table(["parameter", "value"], [[_e(k), f"<code>{_e(v)}</code>"] for k, v in sorted(params.items())])
            if params
            else "<p>No parameters.</p>"
        )  # fmt: skip
        end = self.end_task  # type: ignore[attr-defined]
        artifacts = (
            _artifacts_table(end) if end is not None and end.finished else "<p>No end task yet.</p>"
        )
        return _view(
            f"Run {self.pathspec}",  # type: ignore[attr-defined]
            facts,
            dag_svg(record, statuses),
            "<h4>Steps</h4>",
            _table(["step", "status", "tasks", "started", "took"], step_rows),
            "<h4>Parameters</h4>",
            param_table,
            "<h4>Artifacts of the end step</h4>",
            artifacts,
        )


class StepViews:
    def _repr_html_(self) -> str:
        tasks = list(self)  # type: ignore[call-overload]
        rows = [
            [
                _e(t.id),
                _badge(_status_of(t)),
                _when(t.created_at),
                _secs(t.created_at, t.finished_at),
            ]
            for t in tasks[:MAX_ROWS]
        ]
        return _view(
            f"Step {self.pathspec}",  # type: ignore[attr-defined]
            _table(["task", "status", "started", "took"], rows, len(tasks) - MAX_ROWS),
        )


def _tail(text: str, lines: int = 40) -> str:
    return "\n".join(text.splitlines()[-lines:])


class TaskViews:
    @property
    def cards(self):
        """The task's cards (``get_cards(task)``)."""
        from ..cards.client import get_cards

        return get_cards(self)

    def _repr_html_(self) -> str:
        status = _status_of(self)
        facts = _table(
            ["status", "attempt", "started", "took"],
            [[_badge(status), _e(self.current_attempt), _when(self.created_at),  # type: ignore[attr-defined]
              _secs(self.created_at, self.finished_at)]],  # type: ignore[attr-defined]
        )  # fmt: skip
        parts = [facts]
        exc = self.exception if self.finished else None  # type: ignore[attr-defined]
        if exc:
            parts.append(f"<h4>Error</h4><pre>{_e(exc.traceback or str(exc))}</pre>")
        parts += ["<h4>Artifacts</h4>", _artifacts_table(self)]
        for stream in ("stdout", "stderr"):
            text = _tail(getattr(self, stream))
            if text:
                parts.append(f"<h4>{stream} (tail)</h4><pre>{_e(text)}</pre>")
        cards = self.cards if self.finished else None  # type: ignore[attr-defined]
        if cards:
            parts.append("<h4>Cards</h4>" + cards._repr_html_())
        return _view(f"Task {self.pathspec}", *parts)  # type: ignore[attr-defined]


class DataArtifactViews:
    def _repr_html_(self) -> str:
        facts = _table(
            ["type", "size", "task"],
            [[_e(self.type), _size(self.size), _e(self._task.pathspec)]],  # type: ignore[attr-defined]
        )
        value = _preview(self) or "<p>(large: read it with <code>.data</code>)</p>"
        return _view(f"Artifact {self.id}", facts, value)  # type: ignore[attr-defined]
