"""``Task.metadata``: the facts a task record holds, named and typed as Metaflow's.

Metaflow keeps these as a list of ``(name, value, created_at, type)`` entries in its
metadata service; code reads them with ``task.metadata_dict['origin-run-id']`` and
friends. Here they are derived from the task's record (its facts and its completion
marker) and the run record, so nothing extra is stored. The record's other facts
(``status``, ``caught``, ``started_at``...) follow under their own names, typed
``metaflowlike``.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

from ..datastore.records import FORMAT

if TYPE_CHECKING:
    from .task import Metadata, Task


#: task record fields that are not facts about the task (or are exposed otherwise)
_NOT_METADATA = frozenset({FORMAT, "artifacts", "environment_info", "exception"})


def task_metadata(task: Task) -> list[Metadata]:
    from .task import Metadata

    info, done = task._task_info(), task._done()
    run = task._step._run
    attempt = task.current_attempt
    started = info.started_at or (done and done.started_at) or run._record.created_at
    created_ms = int((started or 0) * 1000)
    entries: list[tuple[str, object, str]] = []

    def add(name: str, value: object, type_: str | None = None) -> None:
        if value is not None and value != "":
            entries.append((name, value, type_ or name))

    if attempt is not None:
        add("attempt", attempt)
        add("attempt-done", attempt)
        add("attempt_ok", done is not None and done.status == "ok", "internal_attempt_status")
    add("user", info.user or run._record.user)
    add("runtime", info.runtime)
    add("python_version", (info.environment_info or {}).get("python_version_code"))
    add("ds-type", run._store.storage.TYPE)
    add("ds-root", run._store.storage.root)
    add("origin-run-id", run._record.origin_run_id)
    origin = info.origin_task
    if origin:
        add("origin-task-id", origin.rsplit("/", 1)[-1])
    foreach = info.foreach_stack
    if foreach:
        add("foreach-indices", [frame.get("index") for frame in foreach])
    # then every other fact of the task record under its own name (status, caught...)
    named = {n for n, _, _ in entries}
    for name, value in info.to_json().items():
        if name not in named and name not in _NOT_METADATA:
            add(name, value if isinstance(value, str) else json.dumps(value), "metaflowlike")
    return [Metadata(n, str(v), created_ms, t, task) for n, v, t in entries]
