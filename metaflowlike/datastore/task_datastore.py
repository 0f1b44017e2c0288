"""Per-run and per-task records: which artifact names map to which content keys.

Layout under the datastore root (see ``docs/datastore-layout.md``)::

    data/<k[:2]>/<key>                                  blobs (content_store)
    flows/<Flow>/<run_id>/_run.json                     run record, written at start
    flows/<Flow>/<run_id>/_done.json                    run end record
    flows/<Flow>/<run_id>/<step>/<task_id>/<attempt>/task.json    manifest + task facts
    flows/<Flow>/<run_id>/<step>/<task_id>/<attempt>/stdout.log   (and stderr.log)
    flows/<Flow>/<run_id>/<step>/<task_id>/<attempt>.done         completion marker
    flows/<Flow>/<run_id>/<step>/<task_id>/_cache.json  the task's cache key and its parts
    cache/<Flow>/<step>/<key>.json                      cache index: key -> task that made it
    gc/<stamp>.json                                     gc journal (``datastore_gc``)

``<attempt>.done`` is written last, after the manifest and the logs: readers ignore
every attempt without it, so a task killed at any instant is simply invisible and a
resume runs it again. Every file is written atomically by the storage layer.
"""

from __future__ import annotations

import json
import os
import re
import socket
import uuid
import warnings
from dataclasses import dataclass, field
from typing import Any

from ..exceptions import DamagedRecordWarning
from .content_store import ContentStore, StoredArtifact
from .storage import Storage, StorageError

FLOWS = "flows"
CACHE = "cache"
#: ``metaflowlike gc`` journals: blobs set aside and the runs to wait for
GC_JOURNALS = "gc"
#: a completion marker: ``<attempt>.done``; any other ``*.done`` is not one
_MARKER = re.compile(r"(0|[1-9][0-9]{0,5})\.done\Z")


class DamagedRecord(Exception):
    """A JSON record exists but cannot be read (truncated, garbled, not an object)."""


def finished_attempts(names: list[tuple[str, bool]]) -> list[int]:
    """Attempt numbers of the completion markers among a task folder's entries."""
    return sorted(int(n[:-5]) for n, is_dir in names if not is_dir and _MARKER.match(n))


def warn_damaged(what: str, path: str, why: str) -> None:
    """Say once that ``what`` is unreadable and is treated as if it did not exist."""
    warnings.warn(
        f"{what} is unreadable and is skipped: its record {path} is damaged ({why}).",
        DamagedRecordWarning,
        stacklevel=3,
    )


def _dumps(obj: Any) -> bytes:
    return json.dumps(obj, separators=(",", ":"), default=str).encode()


@dataclass
class TaskRecord:
    """What a finished attempt left behind (``task.json`` + its ``.done`` marker)."""

    pathspec: str
    attempt: int
    artifacts: dict[str, list]  # name -> [key, size, type] or [key, size, type, preview]
    info: dict[str, Any] = field(default_factory=dict)  # task.json minus artifacts
    done: dict[str, Any] = field(default_factory=dict)  # the marker's content

    @property
    def status(self) -> str:
        return self.done.get("status", "unknown")


class FlowDatastore:
    """Wiring: one storage, its content store, and the path scheme for runs and tasks."""

    def __init__(self, storage: Storage) -> None:
        self.storage = storage
        self.cas = ContentStore(storage)

    # --- paths -------------------------------------------------------------------

    @staticmethod
    def run_dir(flow: str, run_id: str) -> str:
        return f"{FLOWS}/{flow}/{run_id}"

    @staticmethod
    def task_dir(flow: str, run_id: str, step: str, task_id: str) -> str:
        return f"{FLOWS}/{flow}/{run_id}/{step}/{task_id}"

    # --- runs --------------------------------------------------------------------

    def claim_run(self, flow: str, run_id: str) -> bool:
        """Claim ``run_id`` for a new run with a conditional create: of several
        runtimes trying the same id at once, exactly one gets True."""
        claim = {"host": socket.gethostname(), "pid": os.getpid(), "token": uuid.uuid4().hex}
        run_dir = self.run_dir(flow, run_id)
        try:
            return self.storage.create_bytes(f"{run_dir}/_claim.json", _dumps(claim))
        except StorageError as e:
            raise StorageError(
                f"Cannot create the run folder {self.storage.url(run_dir)}. {e}"
            ) from None

    def write_run(self, flow: str, run_id: str, record: dict[str, Any]) -> None:
        self.storage.put_bytes(f"{self.run_dir(flow, run_id)}/_run.json", _dumps(record))

    def write_run_done(self, flow: str, run_id: str, record: dict[str, Any]) -> None:
        self.storage.put_bytes(f"{self.run_dir(flow, run_id)}/_done.json", _dumps(record))

    def read_record(self, path: str) -> dict[str, Any] | None:
        """The JSON object at ``path``; None if it is missing; ``DamagedRecord`` if it
        exists but is not a readable JSON object (a torn or garbled file)."""
        try:
            raw = self.storage.get_bytes(path)
        except FileNotFoundError:
            return None
        try:
            doc = json.loads(raw)
        except json.JSONDecodeError as e:
            where = "it is empty" if not raw.strip() else f"invalid JSON at byte {e.pos}"
            raise DamagedRecord(f"{where}: truncated or garbled") from None
        except ValueError:  # bytes that are not UTF-8 text
            raise DamagedRecord("not text: garbled") from None
        if not isinstance(doc, dict):
            raise DamagedRecord(f"a JSON {type(doc).__name__} instead of an object")
        return doc

    def read_json(self, path: str, what: str = "") -> dict[str, Any] | None:
        """Like :meth:`read_record`, but a damaged record counts as missing, with a
        warning naming ``what`` it belonged to."""
        try:
            return self.read_record(path)
        except DamagedRecord as e:
            warn_damaged(what or f"The record {path}", self.storage.url(path), str(e))
            return None

    def read_run(self, flow: str, run_id: str) -> dict[str, Any] | None:
        path = f"{self.run_dir(flow, run_id)}/_run.json"
        return self.read_json(path, f"Run {flow}/{run_id}")

    def read_run_done(self, flow: str, run_id: str) -> dict[str, Any] | None:
        path = f"{self.run_dir(flow, run_id)}/_done.json"
        return self.read_json(path, f"The end record of run {flow}/{run_id}")

    def list_flows(self) -> list[str]:
        return sorted(n for n, is_dir in self.storage.list_dir(FLOWS) if is_dir)

    def list_runs(self, flow: str) -> list[str]:
        return [n for n, is_dir in self.storage.list_dir(f"{FLOWS}/{flow}") if is_dir]

    def list_steps(self, flow: str, run_id: str) -> list[str]:
        return [n for n, d in self.storage.list_dir(self.run_dir(flow, run_id)) if d]

    def list_tasks(self, flow: str, run_id: str, step: str) -> list[str]:
        return [n for n, d in self.storage.list_dir(f"{self.run_dir(flow, run_id)}/{step}") if d]

    # --- tasks -------------------------------------------------------------------

    def attempts(self, flow: str, run_id: str, step: str, task_id: str) -> list[int]:
        """Attempt numbers whose completion marker exists, ascending."""
        return finished_attempts(self.storage.list_dir(self.task_dir(flow, run_id, step, task_id)))

    def attempt_states(
        self, flow: str, run_id: str, step: str, task_id: str
    ) -> tuple[list[int], list[int]]:
        """``(started, finished)`` attempt numbers, ascending, from one folder listing.

        An attempt has started once its folder exists (its first log upload or its
        record), and finished once its completion marker exists; one that started
        without finishing is running, or died with its runtime."""
        names = self.storage.list_dir(self.task_dir(flow, run_id, step, task_id))
        started = sorted(int(n) for n, is_dir in names if is_dir and n.isdigit())
        finished = finished_attempts(names)
        return sorted(set(started) | set(finished)), finished

    def read_done(self, pathspec: str, attempt: int) -> dict[str, Any] | None:
        """The completion marker of one attempt (status, times, exit status), or None.

        Cheaper than :meth:`read_task` when only the outcome is needed: the marker is a
        few hundred bytes, the manifest grows with the artifacts."""
        path = f"{_task_path(pathspec)}/{attempt}.done"
        return self.read_json(path, f"Task {pathspec}")

    def write_task(
        self,
        pathspec: str,
        attempt: int,
        artifacts: dict[str, StoredArtifact | list],
        info: dict[str, Any],
    ) -> None:
        manifest = {
            name: a.entry() if isinstance(a, StoredArtifact) else list(a)
            for name, a in artifacts.items()
        }
        doc = dict(info, artifacts=manifest)
        self.storage.put_bytes(f"{_task_path(pathspec)}/{attempt}/task.json", _dumps(doc))

    def write_log(self, pathspec: str, attempt: int, stream: str, local_file: str) -> None:
        self.storage.put_file(f"{_task_path(pathspec)}/{attempt}/{stream}.log", local_file)

    def read_log(self, pathspec: str, attempt: int, stream: str) -> bytes:
        try:
            return self.storage.get_bytes(f"{_task_path(pathspec)}/{attempt}/{stream}.log")
        except FileNotFoundError:
            return b""

    def mark_done(self, pathspec: str, attempt: int, record: dict[str, Any]) -> None:
        self.storage.put_bytes(f"{_task_path(pathspec)}/{attempt}.done", _dumps(record))

    def read_task(self, pathspec: str, attempt: int | None = None) -> TaskRecord | None:
        """The record of ``attempt`` (default: the latest finished one), or None.

        A damaged marker or manifest makes the attempt unreadable: None, with a warning,
        so that listings skip it and ``resume`` runs the task again."""
        flow, run_id, step, task_id = pathspec.split("/")
        if attempt is None:
            done = self.attempts(flow, run_id, step, task_id)
            if not done:
                return None
            attempt = done[-1]
        base = _task_path(pathspec)
        try:
            marker = self.read_record(f"{base}/{attempt}.done")
            if marker is None:
                return None
            # a task killed before writing task.json is known by its marker alone
            info = self.read_record(f"{base}/{attempt}/task.json") or {}
            artifacts = info.pop("artifacts", {})
            if not is_manifest(artifacts):
                raise DamagedRecord("its artifact manifest is malformed")
        except DamagedRecord as e:
            warn_damaged(f"Task {pathspec}", self.storage.url(f"{base}/{attempt}"), str(e))
            return None
        return TaskRecord(pathspec, attempt, artifacts, info, marker)

    # --- step cache (``metaflowlike.cache``) ------------------------------------------

    def write_task_cache_key(self, pathspec: str, record: dict[str, Any]) -> None:
        """What the cache made of a task: its key, the key's parts, hit or miss."""
        self.storage.put_bytes(f"{_task_path(pathspec)}/_cache.json", _dumps(record))

    def read_task_cache_key(self, pathspec: str) -> dict[str, Any] | None:
        return self.read_json(f"{_task_path(pathspec)}/_cache.json", f"The cache key of {pathspec}")

    @staticmethod
    def cache_dir(flow: str, step: str | None = None) -> str:
        return f"{CACHE}/{flow}" + (f"/{step}" if step else "")

    def write_cache_entry(self, flow: str, step: str, key: str, entry: dict[str, Any]) -> None:
        """Index ``key`` -> the task that computed it; written after its done marker, so
        an entry never names a task that could still fail."""
        self.storage.put_bytes(f"{self.cache_dir(flow, step)}/{key}.json", _dumps(entry))

    def read_cache_entry(self, flow: str, step: str, key: str) -> dict[str, Any] | None:
        path = f"{self.cache_dir(flow, step)}/{key}.json"
        return self.read_json(path, f"The cache entry {key[:12]} of step {step}")

    def list_cache_entries(self, flow: str, step: str) -> list[str]:
        """Keys indexed for ``step``."""
        names = self.storage.list_dir(self.cache_dir(flow, step))
        return [n[:-5] for n, is_dir in names if not is_dir and n.endswith(".json")]

    def list_cached_steps(self, flow: str) -> list[str]:
        return [n for n, is_dir in self.storage.list_dir(self.cache_dir(flow)) if is_dir]

    def delete_cache_entry(self, flow: str, step: str, key: str) -> None:
        try:
            self.storage.delete(f"{self.cache_dir(flow, step)}/{key}.json")
        except FileNotFoundError:
            pass


def is_manifest(artifacts: object) -> bool:
    """Entries are ``[key, size, type]``, or with a fourth item: the value's preview."""
    return isinstance(artifacts, dict) and all(
        isinstance(v, list) and len(v) in (3, 4) and isinstance(v[0], str)
        for v in artifacts.values()
    )


def _task_path(pathspec: str) -> str:
    return f"{FLOWS}/{pathspec}"
