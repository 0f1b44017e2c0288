"""The card types: ``default`` (everything about the task) and ``blank`` (only what
the step appends). A type turns a task's facts plus its components into a page."""

from __future__ import annotations

import html
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from ..datastore.records import ArtifactEntry
from .components import CardComponent, preview
from .page import page, render_components

#: an artifact is previewed (its bytes loaded) only up to this stored size
PREVIEW_MAX_BYTES = 4096


@dataclass
class CardContext:
    """What a card type may show about the task (filled in by the decorator)."""

    pathspec: str
    attempt: int
    step_name: str
    flow: Any
    fds: Any
    dag_svg: Callable[[], str]
    log_tail: Callable[[], str]
    artifacts: dict[str, ArtifactEntry] | None = None  # once stored
    info: dict[str, Any] = field(default_factory=dict)  # the task's facts, once finished
    refresh_interval: float | None = None


def _esc(value: Any) -> str:
    return html.escape(str(value), quote=True)


def _when(ts: float | None) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(ts)) if ts else "-"


def _size(n: float | None) -> str:
    if n is None:
        return "-"
    for unit in ("bytes", "KB", "MB", "GB"):
        if n < 1024 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "bytes" else f"{n:.1f} {unit}"
        n /= 1024
    return str(n)


def _kv_table(rows: list[tuple[str, str]]) -> str:
    body = "".join(f"<tr><th>{_esc(k)}</th><td>{v}</td></tr>" for k, v in rows)
    return f'<table class="mfl-table">{body}</table>'


def _head(ctx: CardContext, title: str) -> str:
    return (
        f"<header><h1>{_esc(title)}</h1>"
        f'<p class="mfl-note">{_esc(ctx.pathspec)} &middot; attempt {ctx.attempt}</p></header>'
    )


def _meta_head(ctx: CardContext) -> str:
    interval = ctx.refresh_interval or 5
    return f'<meta name="mfl-refresh-interval" content="{float(interval):g}">'


def _status(ctx: CardContext) -> str:
    status = ctx.info.get("status")
    if status is None:
        return "running"
    return "succeeded" if status == "ok" else status


def _task_section(ctx: CardContext) -> str:
    info = ctx.info
    started, finished = info.get("started_at"), info.get("finished_at")
    duration = f"{finished - started:.2f} s" if started and finished else "-"
    rows = [
        ("Task", _esc(ctx.pathspec)),
        ("Status", _esc(_status(ctx))),
        ("Attempt", _esc(ctx.attempt)),
        ("Started", _esc(_when(started))),
        ("Finished", _esc(_when(finished))),
        ("Duration", _esc(duration)),
        ("User", _esc(info.get("user") or "-")),
        ("Tags", _esc(", ".join(info.get("tags") or []) or "-")),
    ]
    return f"<section><h2>Task</h2>{_kv_table(rows)}</section>"


def _parameters_section(ctx: CardContext) -> str:
    flow, run_id = ctx.pathspec.split("/")[:2]
    try:
        record = ctx.fds.read_run(flow, run_id)
    except Exception:  # noqa: BLE001 - a card shows what it can
        record = None
    values = record.param_values if record is not None else {}
    if not values:
        return '<section><h2>Parameters</h2><p class="mfl-note">This flow has no parameters.</p></section>'
    rows = [(name, f"<code>{_esc(v)}</code>") for name, v in sorted(values.items())]
    return f"<section><h2>Parameters</h2>{_kv_table(rows)}</section>"


def _artifact_rows(ctx: CardContext) -> list[list[str]]:
    rows = []
    if ctx.artifacts is not None:
        for name in sorted(ctx.artifacts):
            if name.startswith("_"):
                continue
            entry = ctx.artifacts[name]
            key, size, type_name = entry.key, entry.size, entry.type
            shown = ""
            if size is not None and size <= PREVIEW_MAX_BYTES:
                try:
                    shown = preview(ctx.fds.cas.load(key), 300)
                except Exception as e:  # noqa: BLE001
                    shown = f"(cannot load: {type(e).__name__})"
            rows.append([name, type_name, _size(size), shown])
        return rows
    for name, value in sorted(vars(ctx.flow).items()):  # live: what the step set so far
        if not name.startswith("_"):
            rows.append([name, type(value).__name__, "-", preview(value, 300)])
    return rows


def _artifacts_section(ctx: CardContext) -> str:
    rows = _artifact_rows(ctx)
    if not rows:
        return '<section><h2>Artifacts</h2><p class="mfl-note">No artifacts.</p></section>'
    head = "<thead><tr><th>Name</th><th>Type</th><th>Size</th><th>Value</th></tr></thead>"
    body = "".join(
        f"<tr><td><strong>{_esc(n)}</strong></td><td>{_esc(t)}</td><td>{_esc(s)}</td>"
        f"<td><pre>{_esc(v)}</pre></td></tr>"
        for n, t, s, v in rows
    )
    return f'<section><h2>Artifacts</h2><table class="mfl-table">{head}<tbody>{body}</tbody></table></section>'


def _dag_section(ctx: CardContext) -> str:
    return f'<section class="mfl-dag"><h2>Flow</h2>{ctx.dag_svg()}</section>'


def _logs_section(ctx: CardContext) -> str:
    tail = ctx.log_tail()
    text = _esc(tail) if tail else "(nothing printed)"
    return f'<section><h2>Logs (tail)</h2><pre class="mfl-logs">{text}</pre></section>'


def _exception_section(ctx: CardContext) -> str:
    exc = ctx.info.get("exception")
    if not exc:
        return ""
    return (
        f'<section><h2>Error</h2><div class="mfl-error"><strong>{_esc(exc.get("type"))}: '
        f"{_esc(exc.get('message'))}</strong><pre>{_esc(exc.get('traceback', ''))}</pre></div></section>"
    )


def render_default(ctx: CardContext, components: list[CardComponent]) -> tuple[str, list[str]]:
    body, vega, failures = render_components(components)
    user = f"<section>{body}</section>" if components else ""
    content = (
        _head(ctx, f"{ctx.step_name}")
        + user
        + _task_section(ctx)
        + _exception_section(ctx)
        + _parameters_section(ctx)
        + _artifacts_section(ctx)
        + _dag_section(ctx)
        + _logs_section(ctx)
    )
    return page(f"{ctx.pathspec}", content, vega=vega, extra_head=_meta_head(ctx)), failures


def render_blank(ctx: CardContext, components: list[CardComponent]) -> tuple[str, list[str]]:
    body, vega, failures = render_components(components)
    return page(f"{ctx.pathspec}", body, vega=vega, extra_head=_meta_head(ctx)), failures


CARD_TYPES: dict[str, Callable[[CardContext, list[CardComponent]], tuple[str, list[str]]]] = {
    "default": render_default,
    "blank": render_blank,
}
