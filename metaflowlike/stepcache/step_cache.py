"""The runtime's side of step caching: look a task up before launching it, record it
after it succeeded.

A hit is *cloned by reference*: the new task's manifest is what it inherits in this
run (exactly as if it had run) plus the artifacts the earlier task set, by content key,
so no artifact byte is read or written. The earlier task must have succeeded without
``@catch`` catching anything, and its blobs must still be there.
"""

from __future__ import annotations

import time
from dataclasses import replace
from typing import Any

from ..datastore.records import DoneMarker, TaskInfo
from ..datastore.task_datastore import TaskRecord
from ..decorators import StepPolicy, step_decorators
from ..task import TaskSpec
from .key import KeyMaker, key_of


def caching_enabled(decorators: list, run_wide: bool) -> bool:
    """``@cache`` opts a step in, ``@cache(enabled=False)`` out; otherwise ``--cache``.
    A ``@parallel`` gang is never cached: its members wait for one another, so a gang
    partly served from the cache would wait forever for the members that were not."""
    policy = StepPolicy.of(decorators)
    if policy.gang:
        return False
    return run_wide if policy.caches is None else policy.caches


class StepCache:
    """Plugged into ``Runtime.cache`` by ``run.py`` when some step caches."""

    def __init__(self, keys: KeyMaker, *, run_wide: bool) -> None:
        self.keys = keys
        self.fds = keys.fds
        self.flow = keys.graph.name
        self.run_wide = run_wide
        self.pending: dict[str, tuple[str, dict]] = {}  # pathspec -> (key, parts)

    def enabled(self, step: str) -> bool:
        node = self.keys.graph[step]
        return caching_enabled(step_decorators(node, self.keys.with_decorators), self.run_wide)

    @staticmethod
    def any_enabled(graph: Any, with_decorators: list, run_wide: bool) -> bool:
        return any(
            caching_enabled(step_decorators(node, with_decorators), run_wide) for node in graph
        )

    # --- before a task runs ----------------------------------------------------------

    def lookup(self, runtime: Any, spec: TaskSpec) -> TaskInfo | None:
        """Clone an earlier task with the same key and return the new task's info, or
        None (the task runs; its key is kept to index it when it succeeds)."""
        if not self.enabled(spec.step_name) or spec.attempt or spec.catch_fallback:
            return None
        if spec.pathspec in self.pending:
            return None  # looked up already; it waited for resources since
        try:
            parts, source = self.keys.parts(spec)
        except Exception as e:  # noqa: BLE001 - caching is an optimisation: run the task
            runtime.reporter.cache_unavailable(spec, f"{type(e).__name__}: {e}")
            return None
        key = key_of(parts)
        self.pending[spec.pathspec] = (key, parts)
        earlier = self._usable(spec.step_name, key)
        if earlier is None:
            return None
        return self._clone(runtime, spec, key, parts, source, earlier)

    def _usable(self, step: str, key: str) -> TaskRecord | None:
        entry = self.fds.read_cache_entry(self.flow, step, key)
        if entry is None:
            return None
        rec = self.fds.read_task(entry["task"])
        if rec is None or rec.info is None or rec.status != "ok" or rec.info.caught:
            return None
        produced = rec.info.produced
        if produced is None:
            return None
        keys = sorted({rec.artifacts[n].key for n in produced if n in rec.artifacts})
        if not all(self.fds.cas.exist_many(keys)):
            return None  # removed since (gc, damage): compute it again
        return rec

    def _clone(
        self, runtime: Any, spec: TaskSpec, key: str, parts: dict, source: Any, rec: TaskRecord
    ) -> TaskInfo:
        assert rec.info is not None and rec.info.produced is not None  # checked by _usable
        manifest = dict(source.manifest)
        for name in rec.info.produced:
            if name in rec.artifacts:
                manifest[name] = rec.artifacts[name]
        now = time.time()
        info = replace(
            rec.info,
            # where and how the earlier task ran does not describe this one
            resumed_from=None,
            origin_task=None,
            cloned_at=None,
            runs_on=None,
            pid=None,
            input_paths=list(spec.input_paths),
            foreach_stack=source.foreach_stack,
            cached_from=rec.pathspec,
            started_at=now,
            finished_at=now,
            user=spec.user,
            tags=spec.tags,
            attempt=0,
            artifacts=manifest,
        )
        marker = DoneMarker(
            status="ok",
            input_paths=list(spec.input_paths),
            split_index=spec.split_index,
            attempt=0,
            started_at=now,
            finished_at=now,
            exit_status=0,
            cached_from=rec.pathspec,
        )
        fds = self.fds
        fds.copy_task(rec, spec.pathspec, info, marker)
        fds.write_task_cache_key(
            spec.pathspec, {"key": key, "parts": parts, "hit": rec.pathspec, "at": now}
        )
        self.pending.pop(spec.pathspec, None)
        runtime.reporter.task_cached(spec, rec.pathspec)
        return info

    # --- after a task ran ------------------------------------------------------------

    def finished(self, spec: TaskSpec, info: TaskInfo, marker: DoneMarker) -> None:
        """Record the key of a task that ran; index it if it succeeded for real (a
        failure, or one that ``@catch`` turned into a success, is never reused)."""
        pending = self.pending.get(spec.pathspec)
        if pending is None:
            return
        key, parts = pending
        ok = marker.status == "ok" and not info.caught
        if marker.status != "ok" and spec.attempt < spec.max_retries:
            return  # will be retried: the last attempt decides
        self.pending.pop(spec.pathspec, None)
        now = time.time()
        record = {"key": key, "parts": parts, "hit": None, "at": now, "indexed": ok}
        self.fds.write_task_cache_key(spec.pathspec, record)
        if ok and info.produced is not None:
            entry = {"task": spec.pathspec, "parts": parts, "at": now}
            self.fds.write_cache_entry(self.flow, spec.step_name, key, entry)
