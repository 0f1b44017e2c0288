"""The datastore of runs and tasks: every record read or written goes through here.

``FlowDatastore`` wires one storage backend to its content store and to the path
scheme (``layout.Layout``), and reads and writes the typed records of
``records.py``. Nothing else builds a path or parses a record, so the layout and the
record formats each have one owner (``docs/datastore-layout.md`` describes both).

``<attempt>.done`` is written last, after the manifest and the logs: readers ignore
every attempt without it, so a task killed at any instant is simply invisible and a
resume runs it again. Every file is written atomically by the storage layer. A task
forked by the local runtime hands its record to the runtime instead of writing
``task.json``, and the marker carries it (``DoneMarker.task``): one file, one atomic
write, where two were needed; the readers here take the record from either place.
"""

from __future__ import annotations

import dataclasses
import json
import os
import socket
import uuid
import warnings
from dataclasses import dataclass
from typing import Any, TypeVar

from ..exceptions import DamagedRecordWarning
from .content_store import ContentStore
from .layout import LAYOUT, Layout
from .records import DoneMarker, MalformedRecord, Record, RunEnd, RunRecord, TaskInfo
from .storage import Storage, StorageError

R = TypeVar("R", bound=Record)


class DamagedRecord(Exception):
    """A JSON record exists but cannot be read (truncated, garbled, not an object)."""


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
    """What a finished attempt left behind: its ``.done`` marker and its ``task.json``
    (None for a task killed before it wrote one: it is known by its marker alone)."""

    pathspec: str
    attempt: int
    done: DoneMarker
    info: TaskInfo | None

    @property
    def status(self) -> str:
        return self.done.status

    @property
    def artifacts(self) -> dict:
        return self.info.artifacts if self.info is not None else {}


class FlowDatastore:
    """Wiring: one storage, its content store, and the records of runs and tasks."""

    layout: Layout = LAYOUT

    def __init__(self, storage: Storage) -> None:
        self.storage = storage
        self.cas = ContentStore(storage)

    # --- generic JSON records ---------------------------------------------------------

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

    def write_json(self, path: str, doc: dict[str, Any]) -> None:
        self.storage.put_bytes(path, _dumps(doc))

    def create_json(self, path: str, doc: dict[str, Any]) -> bool:
        """Write ``doc`` at ``path`` unless something is there: True if this call
        created it (a conditional create, decided by the store in one step)."""
        return self.storage.create_bytes(path, _dumps(doc))

    def _load(self, path: str, cls: type[R]) -> R | None:
        """The typed record at ``path``; ``DamagedRecord`` if its fields are malformed."""
        doc = self.read_record(path)
        if doc is None:
            return None
        try:
            return cls.from_json(doc)
        except MalformedRecord as e:
            raise DamagedRecord(str(e)) from None

    def _load_or_warn(self, path: str, cls: type[R], what: str) -> R | None:
        try:
            return self._load(path, cls)
        except DamagedRecord as e:
            warn_damaged(what, self.storage.url(path), str(e))
            return None

    # --- runs -------------------------------------------------------------------------

    def claim_run(self, flow: str, run_id: str) -> bool:
        """Claim ``run_id`` for a new run with a conditional create: of several
        runtimes trying the same id at once, exactly one gets True."""
        claim = {"host": socket.gethostname(), "pid": os.getpid(), "token": uuid.uuid4().hex}
        try:
            return self.create_json(self.layout.run_claim(flow, run_id), claim)
        except StorageError as e:
            raise StorageError(
                f"Cannot create the run folder {self.storage.url(self.layout.run_dir(flow, run_id))}. {e}"
            ) from None

    def read_claim(self, flow: str, run_id: str) -> dict[str, Any] | None:
        """Who claimed ``run_id`` (``host``, ``pid``), or None."""
        return self.read_json(self.layout.run_claim(flow, run_id))

    def write_run(self, record: RunRecord) -> None:
        self.write_json(self.layout.run_record(record.flow, record.run_id), record.to_json())

    def write_run_end(self, flow: str, run_id: str, end: RunEnd) -> None:
        self.write_json(self.layout.run_end(flow, run_id), end.to_json())

    def read_run(self, flow: str, run_id: str) -> RunRecord | None:
        path = self.layout.run_record(flow, run_id)
        return self._load_or_warn(path, RunRecord, f"Run {flow}/{run_id}")

    def read_run_end(self, flow: str, run_id: str) -> RunEnd | None:
        path = self.layout.run_end(flow, run_id)
        return self._load_or_warn(path, RunEnd, f"The end record of run {flow}/{run_id}")

    def read_plugin_record(self, flow: str, run_id: str, plugin: str) -> dict[str, Any] | None:
        """A plugin's own record of a run (``create_plugin_record``), or None."""
        path = self.layout.run_plugin_record(flow, run_id, plugin)
        return self.read_json(path, f"The {plugin} record of run {flow}/{run_id}")

    def create_plugin_record(self, flow: str, run_id: str, plugin: str, doc: dict) -> bool:
        """Write a plugin's record of a run once: False if another process was first."""
        return self.create_json(self.layout.run_plugin_record(flow, run_id, plugin), doc)

    def list_flows(self) -> list[str]:
        return sorted(n for n, is_dir in self.storage.list_dir(self.layout.flows()) if is_dir)

    def list_runs(self, flow: str) -> list[str]:
        return [n for n, is_dir in self.storage.list_dir(self.layout.flow_dir(flow)) if is_dir]

    def list_steps(self, flow: str, run_id: str) -> list[str]:
        return [n for n, d in self.storage.list_dir(self.layout.run_dir(flow, run_id)) if d]

    def list_tasks(self, flow: str, run_id: str, step: str) -> list[str]:
        return [n for n, d in self.storage.list_dir(self.layout.step_dir(flow, run_id, step)) if d]

    # --- tag operations ---------------------------------------------------------------

    def tag_operations(self, flow: str) -> dict[str, list[str]]:
        """The tag operations of the flow's runs, by run id, oldest first (one listing)."""
        entries = self.storage.list_dir(self.layout.flow_dir(flow))
        return self.layout.tag_operations(flow, entries)

    def add_tag_operation(self, flow: str, run_id: str, doc: dict[str, Any]) -> None:
        self.write_json(self.layout.new_tag_operation(flow, run_id), doc)

    # --- tasks ------------------------------------------------------------------------

    def task_url(self, pathspec: str) -> str:
        """Where the task's files are, for messages."""
        return self.storage.url(self.layout.task_dir(pathspec))

    def task_entries(self, pathspec: str) -> list[tuple[str, bool]]:
        """The task folder's entries: empty until its first attempt starts."""
        return self.storage.list_dir(self.layout.task_dir(pathspec))

    def attempts(self, pathspec: str) -> list[int]:
        """Attempt numbers whose completion marker exists, ascending."""
        return self.layout.finished_attempts(self.task_entries(pathspec))

    def attempt_states(self, pathspec: str) -> tuple[list[int], list[int]]:
        """``(started, finished)`` attempt numbers, ascending, from one folder listing.

        An attempt has started once its folder exists (its first log upload or its
        record), and finished once its completion marker exists; one that started
        without finishing is running, or died with its runtime."""
        entries = self.task_entries(pathspec)
        finished = self.layout.finished_attempts(entries)
        return sorted({*self.layout.started_attempts(entries), *finished}), finished

    def write_task(self, pathspec: str, attempt: int, info: TaskInfo) -> None:
        self.write_json(self.layout.task_record(pathspec, attempt), info.to_json())

    @staticmethod
    def encode_task_info(info: TaskInfo) -> bytes:
        """A task record as the bytes a forked task hands its runtime (see
        :meth:`decode_task_info`), to be stored in its marker."""
        return _dumps(info.to_json())

    @staticmethod
    def decode_task_info(raw: bytes | bytearray) -> TaskInfo | None:
        """The record :meth:`encode_task_info` made; None if ``raw`` is not a whole one
        (the task was killed while handing it over: the attempt then has no record)."""
        try:
            doc = json.loads(raw)
            return TaskInfo.from_json(doc) if isinstance(doc, dict) else None
        except (ValueError, MalformedRecord):
            return None

    def read_task_info(self, pathspec: str, attempt: int, warn: bool = False) -> TaskInfo | None:
        """The attempt's record: its ``task.json``, else the one its marker carries;
        None if there is neither. A damaged one raises ``DamagedRecord``, or with
        ``warn`` is reported and counts as missing."""
        where = self.layout.task_record(pathspec, attempt)
        try:
            info = self._load(where, TaskInfo)
            if info is None:
                where = self.layout.done_marker(pathspec, attempt)
                marker = self._load(where, DoneMarker)
                info = marker.task if marker is not None else None
        except DamagedRecord as e:
            if not warn:
                raise
            warn_damaged(f"Task {pathspec}", self.storage.url(where), str(e))
            return None
        return info

    def mark_done(
        self,
        pathspec: str,
        attempt: int,
        marker: DoneMarker,
        handed: bytes | bytearray | None = None,
    ) -> None:
        """Write the attempt's marker. ``handed``: the record its task handed over
        (:meth:`encode_task_info`, already checked whole by :meth:`decode_task_info`),
        stored as the marker's ``task`` as it came, not decoded and encoded again."""
        path = self.layout.done_marker(pathspec, attempt)
        if handed is None:
            self.write_json(path, marker.to_json())
            return
        doc = marker.to_json()
        doc.pop("task", None)
        head = _dumps(doc)  # never empty: it has "format"
        self.storage.put_bytes(path, b"".join((head[:-1], b',"task":', handed, b"}")))

    def read_marker(self, pathspec: str, attempt: int, warn: bool = False) -> DoneMarker | None:
        """The attempt's ``.done`` marker, None if there is none (yet). A damaged one
        raises ``DamagedRecord``, or with ``warn`` is reported and counts as missing."""
        path = self.layout.done_marker(pathspec, attempt)
        if warn:
            return self._load_or_warn(path, DoneMarker, f"Task {pathspec}")
        return self._load(path, DoneMarker)

    def read_task(self, pathspec: str, attempt: int | None = None) -> TaskRecord | None:
        """The record of ``attempt`` (default: the latest finished one), or None.

        A damaged marker or manifest makes the attempt unreadable: None, with a warning,
        so that listings skip it and ``resume`` runs the task again."""
        if attempt is None:
            done = self.attempts(pathspec)
            if not done:
                return None
            attempt = done[-1]
        try:
            marker = self.read_marker(pathspec, attempt)
            if marker is None:
                return None
            info = marker.task or self._load(self.layout.task_record(pathspec, attempt), TaskInfo)
        except DamagedRecord as e:
            where = self.storage.url(self.layout.attempt_dir(pathspec, attempt))
            warn_damaged(f"Task {pathspec}", where, str(e))
            return None
        return TaskRecord(pathspec, attempt, marker, info)

    def copy_task(
        self, source: TaskRecord, pathspec: str, info: TaskInfo, marker: DoneMarker
    ) -> None:
        """Record ``pathspec`` as a copy of the finished task ``source`` (``resume`` and
        the step cache reuse tasks this way): its record ``info``, the logs, tracked
        metrics and cards of ``source``, then its marker, as attempt 0. No artifact byte
        is copied."""
        self.write_task(pathspec, 0, info)
        for stream in ("stdout", "stderr"):
            data = self.read_log(source.pathspec, source.attempt, stream)
            if data:
                self.write_log_bytes(pathspec, 0, stream, data)
        try:
            metrics = self.storage.get_bytes(self.layout.metrics(source.pathspec, source.attempt))
        except FileNotFoundError:
            pass  # the task tracked nothing
        else:
            self.write_metrics(pathspec, 0, metrics)
        for card_type, card_id in self.list_cards(source.pathspec, source.attempt):
            html = self.read_card(source.pathspec, source.attempt, card_type, card_id)
            self.write_card(pathspec, 0, card_type, card_id, html)
        # the copy's record is the one just written: never the source's, which a marker
        # made from the source's may carry
        self.mark_done(pathspec, 0, dataclasses.replace(marker, task=None))

    # --- logs, metrics, cards ---------------------------------------------------------

    def write_log(self, pathspec: str, attempt: int, stream: str, local_file: str) -> None:
        self.storage.put_file(self.layout.log(pathspec, attempt, stream), local_file)

    def write_log_bytes(self, pathspec: str, attempt: int, stream: str, data: bytes) -> None:
        self.storage.put_bytes(self.layout.log(pathspec, attempt, stream), data)

    def read_log(self, pathspec: str, attempt: int, stream: str) -> bytes:
        try:
            return self.storage.get_bytes(self.layout.log(pathspec, attempt, stream))
        except FileNotFoundError:
            return b""

    def log_size(self, pathspec: str, attempt: int, stream: str) -> int:
        """The size of a saved log, without reading it where the store is a disk."""
        local = self.storage.local_path(self.layout.log(pathspec, attempt, stream))
        if local is None:
            return len(self.read_log(pathspec, attempt, stream))
        try:
            return os.path.getsize(local)
        except OSError:
            return 0

    def write_metrics(self, pathspec: str, attempt: int, data: bytes) -> None:
        self.storage.put_bytes(self.layout.metrics(pathspec, attempt), data)

    def read_metrics(self, pathspec: str, attempt: int) -> dict[str, Any] | None:
        """The series an attempt tracked; ``DamagedRecord`` if they cannot be read."""
        return self.read_record(self.layout.metrics(pathspec, attempt))

    def metrics_url(self, pathspec: str, attempt: int) -> str:
        return self.storage.url(self.layout.metrics(pathspec, attempt))

    def write_card(
        self, pathspec: str, attempt: int, card_type: str, card_id: str | None, html: str
    ) -> None:
        path = self.layout.card(pathspec, attempt, card_type, card_id)
        self.storage.put_bytes(path, html.encode("utf-8"))

    def read_card(self, pathspec: str, attempt: int, card_type: str, card_id: str | None) -> str:
        path = self.layout.card(pathspec, attempt, card_type, card_id)
        return self.storage.get_bytes(path).decode("utf-8")

    def list_cards(self, pathspec: str, attempt: int) -> list[tuple[str, str | None]]:
        """``(type, id)`` of the cards an attempt made."""
        entries = self.storage.list_dir(self.layout.cards_dir(pathspec, attempt))
        return self.layout.cards(entries)

    # --- step cache (``metaflowlike.stepcache``) --------------------------------------

    def write_task_cache_key(self, pathspec: str, record: dict[str, Any]) -> None:
        """What the cache made of a task: its key, the key's parts, hit or miss."""
        self.write_json(self.layout.task_cache_key(pathspec), record)

    def read_task_cache_key(self, pathspec: str) -> dict[str, Any] | None:
        path = self.layout.task_cache_key(pathspec)
        return self.read_json(path, f"The cache key of {pathspec}")

    def write_cache_entry(self, flow: str, step: str, key: str, entry: dict[str, Any]) -> None:
        """Index ``key`` -> the task that computed it; written after its done marker, so
        an entry never names a task that could still fail."""
        self.write_json(self.layout.cache_entry(flow, step, key), entry)

    def read_cache_entry(self, flow: str, step: str, key: str) -> dict[str, Any] | None:
        path = self.layout.cache_entry(flow, step, key)
        return self.read_json(path, f"The cache entry {key[:12]} of step {step}")

    def list_cache_entries(self, flow: str, step: str) -> list[str]:
        """Keys indexed for ``step``."""
        entries = self.storage.list_dir(self.layout.cache_dir(flow, step))
        return self.layout.json_names(entries)

    def list_cached_steps(self, flow: str) -> list[str]:
        entries = self.storage.list_dir(self.layout.cache_dir(flow))
        return [n for n, is_dir in entries if is_dir]

    def delete_cache_entry(self, flow: str, step: str, key: str) -> None:
        try:
            self.storage.delete(self.layout.cache_entry(flow, step, key))
        except FileNotFoundError:
            pass

    # --- checkpoints ------------------------------------------------------------------

    def write_checkpoint(self, pathspec: str, ckpt_id: str, record: dict[str, Any]) -> None:
        self.write_json(self.layout.checkpoint(pathspec, ckpt_id), record)

    def checkpoint_records(self, pathspec: str) -> list[dict[str, Any]]:
        """Every readable checkpoint record of the task (a damaged one is skipped with
        a warning), in no particular order."""
        entries = self.storage.list_dir(self.layout.checkpoints_dir(pathspec))
        out = []
        for ckpt_id, path in self.layout.checkpoints(pathspec, entries):
            rec = self.read_json(path, f"Checkpoint {ckpt_id}")
            if rec:
                out.append(rec)
        return out
