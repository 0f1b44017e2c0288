"""``Task`` and its artifacts: where the bytes are, read only when asked for.

A task learns its latest finished attempt from one folder listing, its status from the
small completion marker and its artifact manifest from its task record, each read at
most once per object and only when a property needs it. ``DataArtifact.data`` is
the one place artifact bytes are loaded.
"""

from __future__ import annotations

import builtins
from collections import namedtuple
from collections.abc import Callable, Iterator
from datetime import datetime
from typing import TYPE_CHECKING, Any, TypeVar

from ..datastore.records import ArtifactEntry, DoneMarker, TaskInfo
from ..datastore.task_datastore import DamagedRecord, FlowDatastore, warn_damaged
from ..exceptions import ArtifactLoadError, MetaflowlikeException, did_you_mean
from ..tracking.series import TaskMetricsMixin
from .html import DataArtifactViews, TaskViews
from .settings import (
    MetaflowArtifactNotFound,
    MetaflowNotFound,
    MetaflowObject,
    _parse,
    _when,
    get_metadata,
)

if TYPE_CHECKING:
    from .objects import Step

R = TypeVar("R")

#: one fact recorded about a task, as Metaflow's client returns them (``created_at`` in
#: milliseconds since the epoch, ``value`` a string)
Metadata = namedtuple("Metadata", ["name", "value", "created_at", "type", "task"])


class TaskException:
    """The exception a failed task raised.

    Metaflow's fields: ``type`` (module-qualified, ``builtins.ValueError``),
    ``exception`` (the message) and ``stacktrace``; ``message`` and ``traceback``
    are the same values under our own names."""

    def __init__(self, info: dict) -> None:
        stored = info.get("type", "")
        # task records name builtins bare ("ValueError"); Metaflow qualifies them
        qualify = "." not in stored and isinstance(getattr(builtins, stored, None), type)
        self.type: str = f"builtins.{stored}" if qualify else stored
        self.message: str = info.get("message", "")
        self.traceback: str = info.get("traceback", "")
        self.user_error: bool = bool(info.get("user_error", False))
        self.exception: str = self.message
        self.stacktrace: str = self.traceback

    def __getitem__(self, key: str) -> Any:
        return getattr(self, key)

    def __str__(self) -> str:
        return f"{self.type}: {self.message}" if self.message else self.type

    def __repr__(self) -> str:
        return f"TaskException({self.type!r}, {self.message!r})"


class Task(TaskViews, TaskMetricsMixin, MetaflowObject):
    """One task: its artifacts, logs, status and timing (latest finished attempt)."""

    _NAME = "Task"
    _PARENT = "_step"
    _attempts: list[int] | None  # finished attempts, read when first needed
    _attempt: int | None

    def __init__(
        self, pathspec: str, attempt: int | None = None, _namespace_check: bool = True
    ) -> None:
        from .objects import Run, Step

        flow, run_id, step, task_id = _parse(pathspec, 4, "task", "FlowName/RunID/StepName/TaskID")
        run = Run(f"{flow}/{run_id}", _namespace_check=_namespace_check)
        self._init(Step._make(run, step), task_id)
        entries = self._fds.task_entries(self.pathspec)
        if not entries:  # the folder appears when the first attempt starts
            raise MetaflowNotFound(f"Task {self.pathspec} does not exist in {get_metadata()}.")
        self._attempts = self._fds.layout.finished_attempts(entries)
        if attempt is not None:
            if attempt not in self._attempts:
                raise MetaflowNotFound(f"Task {self.pathspec} has no finished attempt {attempt}.")
            self._attempt = attempt

    def _init(self, step: Step, task_id: str) -> None:
        self._step, self.id = step, task_id
        self.pathspec = f"{step.pathspec}/{task_id}"
        self._fds: FlowDatastore = step._run._store.fds
        self._attempts = None
        self._attempt = None
        self._records: dict[str, Any] = {}  # "done" / "info" -> the record, once read
        self._damaged = False

    # --- lazily read records ---------------------------------------------------------

    @property
    def current_attempt(self) -> int | None:
        """The latest finished attempt (None while the first one is running)."""
        if self._attempt is None:
            if self._attempts is None:
                self._attempts = self._fds.attempts(self.pathspec)
            self._attempt = self._attempts[-1] if self._attempts else None
        return self._attempt

    def _read(self, name: str, read: Callable[[str, int], R | None]) -> R | None:
        """One record of the current attempt, read lazily, at most once. A damaged one
        (a torn or garbled file) makes the task unreadable: a warning says so, and the
        task then looks unfinished, as it does to ``resume``."""
        if name not in self._records:
            attempt = self.current_attempt
            try:
                self._records[name] = None if attempt is None else read(self.pathspec, attempt)
            except DamagedRecord as e:
                self._damaged, self._records[name] = True, None
                warn_damaged(f"Task {self.pathspec}", self._fds.task_url(self.pathspec), str(e))
        return self._records[name]

    def _done(self) -> DoneMarker | None:
        """The completion marker of the current attempt; None while none ended."""
        return self._read("done", self._fds.read_marker)

    def _task_info(self) -> TaskInfo:
        """The task record of the current attempt (empty if it has none): the one its
        marker carries (a forked task's), else its own record file."""
        done = self._done()
        if done is not None and done.task is not None:
            return done.task
        if self._damaged:
            return TaskInfo()
        return self._read("info", self._fds.read_task_info) or TaskInfo()

    def _manifest(self) -> dict[str, ArtifactEntry]:
        info = self._task_info()  # first: a damaged manifest makes the task unfinished
        return info.artifacts if self._ended() else {}

    def _load(self, key: str, name: str) -> Any:
        try:
            return self._fds.cas.load(key)
        except ArtifactLoadError as e:
            entry = self._manifest().get(name)
            raise e.naming(name, self.pathspec, entry.type if entry else "") from None

    # --- artifacts -------------------------------------------------------------------

    @property
    def data(self) -> MetaflowData:
        """Artifact values by attribute: ``task.data.accuracy``."""
        return MetaflowData(self)

    @property
    def artifacts(self) -> MetaflowArtifacts:
        """``DataArtifact`` objects by attribute: ``task.artifacts.accuracy.data``."""
        return MetaflowArtifacts(self)

    def _child_ids(self) -> list[str]:
        return sorted(self._manifest())

    def _child(self, name: str) -> DataArtifact:
        return DataArtifact._make(self, name, self._manifest()[name])

    def _no_child(self, name: str) -> str:
        if self._damaged:
            return (
                f"Task {self.pathspec} is unreadable (its record is damaged): no artifact '{name}'."
            )
        if self.current_attempt is None:
            return f"Task {self.pathspec} has not finished: it has no artifact '{name}' yet."
        return f"Task {self.pathspec} has no artifact '{name}'." + did_you_mean(
            name, self._manifest()
        )

    # --- status ----------------------------------------------------------------------

    @property
    def finished(self) -> bool:
        """True once the task completed successfully (False while running or if it
        failed, as in Metaflow; ``current_attempt`` tells whether an attempt ended)."""
        return self.successful

    def _ended(self) -> bool:
        """An attempt ended (well or not) and left a readable record."""
        return self._done() is not None and not self._damaged

    @property
    def successful(self) -> bool:
        done = self._done()
        return done is not None and done.status == "ok" and not self._damaged

    @property
    def created_at(self) -> datetime | None:
        done = self._done()
        return _when((done and done.started_at) or self._task_info().started_at)

    @property
    def finished_at(self) -> datetime | None:
        done = self._done()
        return _when(done.finished_at if done is not None else None)

    @property
    def exception(self) -> TaskException | None:
        """What made the task fail (type, message, traceback); None if it succeeded."""
        if not self._ended() or self.successful:
            return None
        exc = self._task_info().exception
        if exc:
            return TaskException(exc)
        done = self._done()
        assert done is not None  # the attempt ended
        reason = done.reason or f"exit status {done.exit_status}"
        return TaskException({"type": "TaskKilled", "message": f"The task process died: {reason}."})

    @property
    def index(self) -> int | None:
        """The index of the innermost foreach this task runs in, if any."""
        stack = self._task_info().foreach_stack
        return stack[-1].get("index") if stack else None

    @property
    def origin_pathspec(self) -> str | None:
        """The task of the origin run this one was cloned from by ``resume``."""
        return self._task_info().origin_task

    @property
    def checkpoints(self) -> list[dict]:
        """Records of the checkpoints ``@checkpoint`` saved in this task, newest first."""
        from ..checkpoint_decorator import list_checkpoints

        return list_checkpoints(self._fds, self.pathspec)

    @property
    def environment(self) -> dict[str, Any] | None:
        """The Python environment this task ran in, as its run saved it (None when the
        step ran in the flow's own interpreter): ``type`` (pypi or uv), ``key``,
        ``python``, ``platform``, ``packages`` (name -> exact version) and
        ``requirements`` (the lock: every package with its version and hashes)."""
        from ..environments.plan import saved_lock

        return saved_lock(self._run_record(), self._step.id)

    @property
    def metadata(self) -> list[Metadata]:
        """What was recorded about the task, under Metaflow's names and types."""
        from .task_metadata import task_metadata

        return task_metadata(self)

    @property
    def metadata_dict(self) -> dict[str, str]:
        """``{name: value}`` of ``metadata`` (the latest value of each name)."""
        return {m.name: m.value for m in sorted(self.metadata, key=lambda m: m.created_at)}

    @property
    def runtime_name(self) -> str | None:
        """Where the task ran: ``dev`` for the local runtime (as in Metaflow)."""
        return self._task_info().runtime

    @property
    def environment_info(self) -> dict[str, Any]:
        """The Python, platform and version the task ran with."""
        return dict(self._task_info().environment_info or {})

    @property
    def parent_task_pathspecs(self) -> Iterator[str]:
        """Pathspecs of the tasks whose output this task started from."""
        flow = self._step._run._flow_name
        for path in self._task_info().input_paths:
            yield f"{flow}/{path}"

    @property
    def parent_tasks(self) -> list[Task]:
        """The tasks whose output this task started from."""
        from .objects import Step

        run = self._step._run
        out = []
        for path in self._task_info().input_paths:
            _, step, task_id = path.split("/")
            out.append(Task._make(Step._make(run, step), task_id))
        return out

    @property
    def child_task_pathspecs(self) -> Iterator[str]:
        """Pathspecs of the tasks that started from this task's output."""
        for task in self.child_tasks:
            yield task.pathspec

    @property
    def child_tasks(self) -> list[Task]:
        """The tasks that started from this task's output.

        Task records name their inputs, not their successors: this reads the records
        of the tasks of every other step of the run (once per Task object)."""
        run = self._step._run
        me = f"{run.id}/{self._step.id}/{self.id}"
        return [
            t
            for step in run
            if step.id != self._step.id
            for t in step
            if me in t._task_info().input_paths
        ]

    def _log(self, stream: str) -> str:
        attempt = self.current_attempt
        if attempt is None:
            return ""
        return self._fds.read_log(self.pathspec, attempt, stream).decode("utf-8", "replace")

    @property
    def stdout(self) -> str:
        return self._log("stdout")

    @property
    def stderr(self) -> str:
        return self._log("stderr")

    def _log_size(self, stream: str) -> int:
        attempt = self.current_attempt
        return 0 if attempt is None else self._fds.log_size(self.pathspec, attempt, stream)

    @property
    def stdout_size(self) -> int:
        """Size of the saved stdout in bytes (without reading it, locally)."""
        return self._log_size("stdout")

    @property
    def stderr_size(self) -> int:
        return self._log_size("stderr")

    def loglines(
        self, stream: str, as_unicode: bool = True
    ) -> Iterator[tuple[datetime | None, str | bytes]]:
        """The lines of ``stream`` (``stdout`` or ``stderr``) as ``(timestamp, line)``.

        Logs are saved as the task wrote them, without a time per line, so the
        timestamp is always None here (Metaflow's has the time each line was written)."""
        if stream not in ("stdout", "stderr"):
            raise MetaflowlikeException(f'loglines() takes "stdout" or "stderr", not {stream!r}.')
        attempt = self.current_attempt
        data = b"" if attempt is None else self._fds.read_log(self.pathspec, attempt, stream)
        for line in data.splitlines():
            yield None, line.decode("utf-8", "replace") if as_unicode else line

    code = None


# --- artifacts ------------------------------------------------------------------------


class DataArtifact(DataArtifactViews, MetaflowObject):
    """One named value of a task; ``.data`` reads it, the rest is free."""

    _NAME = "DataArtifact"
    _PARENT = "_task"

    def __init__(
        self, pathspec: str, attempt: int | None = None, _namespace_check: bool = True
    ) -> None:
        parts = _parse(pathspec, 5, "artifact", "FlowName/RunID/StepName/TaskID/name")
        task = Task("/".join(parts[:4]), attempt, _namespace_check=_namespace_check)
        manifest = task._manifest()
        if parts[4] not in manifest:
            raise MetaflowNotFound(task._no_child(parts[4]))
        self._init(task, parts[4], manifest[parts[4]])

    def _init(self, task: Task, name: str, entry: ArtifactEntry) -> None:
        self._task, self.id = task, name
        self.pathspec = f"{task.pathspec}/{name}"
        self.sha, self.size, self.type = entry.key, entry.size, entry.type
        #: repr of a small JSON-safe value, written when it was saved (None otherwise):
        #: shows what the artifact holds without unpickling it
        self.preview: str | None = entry.preview

    @property
    def data(self) -> Any:
        """The value, read from the datastore on every access."""
        return self._task._load(self.sha, self.id)

    @property
    def created_at(self) -> datetime | None:
        return self._task.finished_at

    finished_at = created_at


class _ArtifactView:
    """A task's artifacts as attributes: what ``task.data`` and ``task.artifacts``
    share. Each says what an attribute gives; both look names up in the manifest."""

    __slots__ = ("_task",)

    def __init__(self, task: Task) -> None:
        self._task = task

    def _entry(self, name: str) -> ArtifactEntry | None:
        if name.startswith("__"):  # copy/pickle probing for dunders: not artifacts
            raise AttributeError(name)
        return self._task._manifest().get(name)

    def __repr__(self) -> str:
        return f"<{type(self).__name__}: {', '.join(sorted(self._task._manifest()))}>"


class MetaflowData(_ArtifactView):
    """``task.data``: artifact values as attributes, loaded on access."""

    __slots__ = ()

    def __getattr__(self, name: str) -> Any:
        entry = self._entry(name)
        if entry is None:
            if name == "name" and self._task.current_attempt is not None:
                return self._task._step._run._flow_name  # Metaflow's `name` artifact
            raise MetaflowArtifactNotFound(self._task._no_child(name))
        return self._task._load(entry.key, name)

    def __contains__(self, name: str) -> bool:
        return name in self._task._manifest() or name == "name"

    def __dir__(self) -> list[str]:
        return sorted({*self._task._manifest(), "name"})


class MetaflowArtifacts(_ArtifactView):
    """``task.artifacts``: ``DataArtifact`` objects as attributes."""

    __slots__ = ()

    def __getattr__(self, name: str) -> DataArtifact:
        entry = self._entry(name)
        if entry is None:
            raise MetaflowArtifactNotFound(self._task._no_child(name))
        return DataArtifact._make(self._task, name, entry)

    def __iter__(self) -> Iterator[DataArtifact]:
        return iter(self._task)

    def __len__(self) -> int:
        return len(self._task._manifest())

    def __contains__(self, name: str) -> bool:
        return name in self._task._manifest()

    def __dir__(self) -> list[str]:
        return sorted(self._task._manifest())
