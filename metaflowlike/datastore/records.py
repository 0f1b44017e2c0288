"""The JSON records of runs and tasks, as typed values: one reader and one writer each.

``_run.json`` (:class:`RunRecord`), ``_done.json`` (:class:`RunEnd`), ``task.json``
(:class:`TaskInfo`, which holds the artifact manifest of :class:`ArtifactEntry`) and
``<attempt>.done`` (:class:`DoneMarker`, which may carry the attempt's ``TaskInfo``
instead of a ``task.json``) are read and written only through these classes, so every
module agrees on their fields.

Each record carries ``"format": <n>``; a record without it is format 1 (what was
written before records said so: the same fields). Readers are tolerant: a field they do
not know is kept in ``extra`` and written back unchanged when the record is copied (as
``resume`` does), and a missing field takes its default. A newer writer can therefore
add fields without breaking older readers, and the other way round.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Any, ClassVar, TypeVar

FORMAT = "format"

R = TypeVar("R", bound="Record")


class MalformedRecord(ValueError):
    """A record is JSON but its fields do not have the shape the format gives them."""


@dataclass(slots=True)
class ArtifactEntry:
    """Where one artifact's bytes are: its content key, size in bytes and type name,
    and for small plain data a ``preview`` (its ``repr``, cut short: ``preview.py``)
    that shows the value without unpickling it.

    Written as ``[key, size, type]`` or ``[key, size, type, preview]`` (compact: a
    foreach task's manifest repeats every inherited entry). Readers ignore elements
    after the fourth, so a later format can append optional ones."""

    key: str
    size: int
    type: str
    preview: str | None = None

    @classmethod
    def from_json(cls, doc: Any) -> ArtifactEntry:
        # a task reads the manifests of its inputs, every entry of them: keep this lean
        if type(doc) is dict:  # a self-describing form, accepted for readers' ease
            doc = [doc.get("key"), doc.get("size"), doc.get("type"), doc.get("preview")]
        if type(doc) is not list or len(doc) < 3 or type(doc[0]) is not str:
            raise MalformedRecord(f"an artifact entry is {doc!r}, not [key, size, type]")
        if len(doc) == 3:
            return cls(doc[0], doc[1], doc[2])
        return cls(doc[0], doc[1], doc[2], doc[3] if type(doc[3]) is str else None)

    def to_json(self) -> list[Any]:
        entry: list[Any] = [self.key, self.size, self.type]
        return entry if self.preview is None else [*entry, self.preview]


def _manifest_from_json(doc: Any) -> dict[str, ArtifactEntry]:
    if not isinstance(doc, dict):
        raise MalformedRecord("its artifact manifest is not an object")
    return {name: ArtifactEntry.from_json(entry) for name, entry in doc.items()}


#: the metadata of a field that maps names to artifact entries
MANIFEST = {"manifest": True}


def _nested(cls: type[Record]) -> dict[str, Any]:
    """The metadata of a field that holds a whole record of type ``cls``."""
    return {"record": cls}


@dataclass
class Record:
    """What every record shares: a format version and tolerance of unknown fields.

    Subclasses declare their fields as dataclass fields, with ``metadata={"json": name}``
    when the JSON name is not a Python identifier, ``MANIFEST`` for a field that maps
    names to artifact entries and ``_nested(cls)`` for one that holds a whole record;
    every other field is plain JSON."""

    VERSION: ClassVar[int] = 1

    #: fields of the JSON object this version does not know, kept as they were read
    extra: dict[str, Any] = field(default_factory=dict, kw_only=True, repr=False)

    @classmethod
    def from_json(cls: type[R], doc: dict[str, Any]) -> R:
        if not isinstance(doc, dict):
            raise MalformedRecord(f"a JSON {type(doc).__name__} instead of an object")
        rest = dict(doc)
        rest.pop(FORMAT, None)
        known: dict[str, Any] = {}
        for f in fields(cls):
            key = f.metadata.get("json", f.name)
            if f.name != "extra" and key in rest:
                value = rest.pop(key)
                if f.metadata.get("manifest"):
                    value = _manifest_from_json(value)
                elif "record" in f.metadata and value is not None:
                    value = f.metadata["record"].from_json(value)
                known[f.name] = value
        return cls(**known, extra=rest)

    def to_json(self) -> dict[str, Any]:
        doc: dict[str, Any] = {FORMAT: self.VERSION}
        for f in fields(self):
            value = getattr(self, f.name)
            if f.name != "extra" and value is not None:
                if f.metadata.get("manifest"):
                    value = {name: entry.to_json() for name, entry in value.items()}
                elif "record" in f.metadata:
                    value = value.to_json()
                doc[f.metadata.get("json", f.name)] = value
        doc.update((k, v) for k, v in self.extra.items() if k not in doc)
        return doc


@dataclass
class RunRecord(Record):
    """``_run.json``: what a run was started with. Written once, never changed."""

    flow: str = ""
    run_id: str = ""
    user: str | None = None
    tags: list[str] = field(default_factory=list)  # system tags + user_tags
    user_tags: list[str] = field(default_factory=list)  # given with ``run --tag``
    namespace: str | None = None
    created_at: float | None = None
    params: dict[str, ArtifactEntry] = field(default_factory=dict, metadata=MANIFEST)
    param_values: dict[str, str] = field(default_factory=dict)  # name -> repr, shortened
    origin_run_id: str | None = None
    steps: list[str] = field(default_factory=list)  # in graph order
    graph: dict[str, Any] | None = None  # graph_summary(), to draw the DAG later
    with_specs: list[str] = field(default_factory=list, metadata={"json": "with"})
    configs: dict[str, Any] = field(default_factory=dict)
    project: dict[str, Any] | None = None
    runtime: dict[str, Any] | None = None  # the owner process, while it runs
    environment: dict[str, Any] | None = None  # environments.plan record

    @property
    def system_tags(self) -> list[str]:
        """Tags the runtime set: every tag of the record but those of ``run --tag``."""
        user = set(self.user_tags)
        return [t for t in self.tags if t not in user]


@dataclass
class RunEnd(Record):
    """``_done.json``: how and when a run ended."""

    status: str = "failed"
    finished_at: float | None = None


@dataclass
class TaskInfo(Record):
    """``task.json``: the artifact manifest of one attempt and the facts of the task.

    Written by the task itself when its step ended (successfully or not), or by
    ``resume`` when it reuses a task of an earlier run."""

    step: str | None = None
    attempt: int | None = None
    input_paths: list[str] = field(default_factory=list)  # "run_id/step/task_id"
    started_at: float | None = None
    pid: int | None = None
    user: str | None = None
    tags: list[str] = field(default_factory=list)
    resumed_from: str | None = None  # on resume: the origin task this one reruns
    runtime: str | None = None
    environment_info: dict[str, Any] | None = None
    runs_on: dict[str, str] | None = None  # where a launcher ran it
    foreach_stack: list[dict[str, Any]] = field(default_factory=list)
    caught: str | None = None  # the exception a decorator (@catch) handled
    next_step: str | None = None  # the case a switch step picked
    produced: list[str] | None = None  # what the step set, not only read (step cache)
    foreach_num_splits: int | None = None
    foreach_values: str | None = None  # content key of a frozen foreach list
    exception: dict[str, Any] | None = None  # task_errors.describe(), on failure
    status: str | None = None  # "ok" or "failed"
    finished_at: float | None = None
    origin_task: str | None = None  # on resume: the task this one was cloned from
    cloned_at: float | None = None
    cached_from: str | None = None  # the step cache reused this task of an earlier run
    artifacts: dict[str, ArtifactEntry] = field(default_factory=dict, metadata=MANIFEST)

    @property
    def split_index(self) -> int | None:
        """The index of this task in the foreach its input split into, if any."""
        stack, inputs = self.foreach_stack, self.input_paths
        if stack and inputs and stack[-1].get("task") == inputs[0]:
            return stack[-1]["index"]
        return None


@dataclass
class DoneMarker(Record):
    """``<attempt>.done``: the attempt ended, how and when. Written last, after the
    logs and ``task.json``, by whoever supervised the task process.

    Format 2 adds ``task``: the attempt's whole ``TaskInfo``, for a task that handed
    its record to its supervisor instead of writing ``task.json`` (a task forked by
    the local runtime): one file then says both that the attempt ended and what it
    left, written in one atomic step. Readers take it from here when it is present and
    from ``task.json`` otherwise, so markers of format 1 read as before."""

    VERSION: ClassVar[int] = 2

    status: str = "unknown"
    input_paths: list[str] = field(default_factory=list)  # lets resume match a task
    split_index: int | None = None  # that died before writing task.json
    attempt: int | None = None
    started_at: float | None = None
    finished_at: float | None = None
    exit_status: int | None = None
    reason: str | None = None  # why the process died, when it did
    cloned_from: str | None = None  # resume reused this task of an earlier run
    cached_from: str | None = None  # the step cache reused this task of an earlier run
    task: TaskInfo | None = field(default=None, metadata=_nested(TaskInfo))  # format 2
