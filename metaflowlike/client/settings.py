"""Process-wide client settings (datastore, namespace), the errors, and the base object.

The datastore is resolved once with ``config.open_datastore()`` and kept for the whole
process, with the caches that are safe to share: run records never change once
written. ``set_datastore`` swaps it (and the caches) for another one.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from typing import Any, TypeVar

from .. import config
from ..datastore.records import RunRecord
from ..datastore.task_datastore import FlowDatastore
from ..exceptions import MetaflowlikeException, NotFound
from ..ids import InvalidId, check_pathspec_parts, shown

Obj = TypeVar("Obj", bound="MetaflowObject")


class MetaflowNotFound(NotFound, KeyError):
    """A flow, run, step, task or artifact does not exist (also a KeyError, like Metaflow)."""

    headline = "Not found"


class MetaflowArtifactNotFound(MetaflowlikeException, AttributeError):
    """``task.data.name`` for an artifact the task does not have."""

    headline = "No such artifact"


class MetaflowNamespaceMismatch(MetaflowlikeException):
    headline = "Not in the current namespace"


class MetaflowInvalidPathspec(InvalidId):
    headline = "Invalid pathspec"


# --- process-wide settings ------------------------------------------------------------


class _Store:
    """A datastore plus the caches that are safe to share: run records and flow names."""

    def __init__(self, fds: FlowDatastore) -> None:
        self.fds = fds
        self.storage = fds.storage
        self.records: dict[tuple[str, str], RunRecord] = {}
        self.flow_names: list[str] | None = None

    def run_record(self, flow: str, run_id: str) -> RunRecord | None:
        rec = self.records.get((flow, run_id))
        if rec is None:
            rec = self.fds.read_run(flow, run_id)
            if rec is not None:  # a missing record may appear later: do not cache that
                self.records[(flow, run_id)] = rec
        return rec

    def flows(self, refresh: bool = False) -> list[str]:
        if self.flow_names is None or refresh:
            self.flow_names = self.fds.list_flows()
        return self.flow_names


_STORE: _Store | None = None
_UNSET = object()
_NAMESPACE: Any = _UNSET


def _store() -> _Store:
    global _STORE
    if _STORE is None:
        _STORE = _Store(config.open_datastore())
    return _STORE


def set_datastore(type: str | None = None, root: str | None = None) -> str:
    """Read runs from another datastore, e.g. ``set_datastore('s3', 's3://bucket/p')``.

    Without arguments the configuration (environment, config file) is resolved again.
    Returns the new ``get_metadata()`` string."""
    global _STORE
    _STORE = _Store(config.open_datastore(type, root))
    return get_metadata()


def read_from(fds: FlowDatastore) -> None:
    """Read runs from ``fds``: a task calls this at its start, so a step that looks at
    other runs (``Flow("Train").latest_run``) reads the datastore its own run writes to,
    whatever the configuration says; ``set_datastore`` in the step still wins."""
    global _STORE
    if _STORE is None or _STORE.fds is not fds:
        _STORE = _Store(fds)


def get_datastore() -> FlowDatastore:
    """The ``FlowDatastore`` the client reads."""
    return _store().fds


def get_metadata() -> str:
    """Where the client reads runs from, as ``type@root`` (``local@/home/me/.metaflowlike``)."""
    storage = _store().storage
    return f"{storage.TYPE}@{storage.root}"


def default_namespace() -> str:
    """Reset the namespace to ``user:<username>`` and return it."""
    global _NAMESPACE
    _NAMESPACE = f"user:{config.get_username()}"
    return _NAMESPACE


def namespace(ns: str | None) -> str | None:
    """Only see runs tagged ``ns`` (e.g. ``user:anne``); ``None`` sees every run."""
    global _NAMESPACE
    if ns is not None and not isinstance(ns, str):
        raise MetaflowlikeException(f"namespace() takes a tag string or None, not {ns!r}.")
    _NAMESPACE = ns
    return ns


def get_namespace() -> str | None:
    return default_namespace() if _NAMESPACE is _UNSET else _NAMESPACE


# --- helpers --------------------------------------------------------------------------


def _parse(pathspec: str, n: int, kind: str, example: str) -> list[str]:
    parts = str(pathspec).strip("/").split("/") if pathspec else []
    if len(parts) != n or not all(parts):
        raise MetaflowInvalidPathspec(
            f'A {kind} pathspec looks like "{example}", got {shown(pathspec)}.'
        )
    try:  # every part becomes a path in the datastore: check it against the grammar
        check_pathspec_parts(parts, f"the {kind} pathspec")
    except InvalidId as e:
        raise MetaflowInvalidPathspec(str(e)) from None
    return parts


def _when(ts: float | None) -> datetime | None:
    return None if ts is None else datetime.fromtimestamp(ts)


def _id_key(task_or_run_id: str) -> tuple:
    if task_or_run_id.isdigit():
        return (1, int(task_or_run_id), "")
    return (0, 0, task_or_run_id)


class MetaflowObject:
    """What every client object shares: ``id``, ``pathspec``, tags, equality, and its
    place in the hierarchy ``Flow > Run > Step > Task > DataArtifact``.

    The hierarchy is declared once, here: a class names the attribute that holds its
    parent (``_PARENT``) and says which ids its children have (``_child_ids``, a fresh
    listing in iteration order) and how to make one (``_child``); iteration, ``in``,
    ``[]`` and ``parent`` follow. A listing is kept on the object that made it and
    refreshed on a miss, so an object of a run in progress sees its new children."""

    _NAME = "object"
    #: the attribute holding the parent object; None at the top of the hierarchy
    _PARENT: str | None = None
    id: str
    pathspec: str
    _listed: list[str] | None = None  # the ids of the last listing of the children

    @classmethod
    def _make(cls: type[Obj], *args: Any) -> Obj:
        """An object over what the caller already knows: no check, no I/O (the public
        constructors check that it exists and is in the namespace)."""
        obj = cls.__new__(cls)
        obj._init(*args)
        return obj

    def _init(self, *args: Any) -> None:
        raise TypeError(f"{type(self).__name__} is made by its own constructor")

    @property
    def parent(self) -> MetaflowObject | None:
        return getattr(self, self._PARENT) if self._PARENT else None

    # --- children -----------------------------------------------------------------

    def _child_ids(self) -> list[str]:
        """The ids of the children, listed afresh, in the order iteration yields them."""
        return []

    def _child(self, child_id: str) -> MetaflowObject:
        raise MetaflowNotFound(self._no_child(child_id))

    def _no_child(self, child_id: str) -> str:
        """What to say when ``self[child_id]`` does not exist."""
        return f"{self._NAME} {self.pathspec} has no {child_id!r}."

    def _listing(self, refresh: bool = False) -> list[str]:
        if self._listed is None or refresh:
            self._listed = self._child_ids()
        return self._listed

    def __iter__(self) -> Iterator[Any]:
        for child_id in self._listing(refresh=True):
            yield self._child(child_id)

    def __contains__(self, child_id: object) -> bool:
        child_id = str(child_id)
        return child_id in self._listing() or child_id in self._listing(refresh=True)

    def __getitem__(self, child_id: str) -> Any:
        if child_id in self:
            return self._child(str(child_id))
        raise MetaflowNotFound(self._no_child(str(child_id)))

    def __repr__(self) -> str:
        return f"{type(self).__name__}('{self.pathspec}')"

    def __eq__(self, other: object) -> bool:
        return type(other) is type(self) and other.pathspec == self.pathspec  # type: ignore[attr-defined]

    def __hash__(self) -> int:
        return hash((type(self).__name__, self.pathspec))

    def _run_record(self) -> RunRecord:
        return self._run_obj()._record

    def _run_obj(self) -> Any:
        """The ``Run`` this object belongs to (tags and namespace are the run's)."""
        parent = self.parent
        if parent is None:
            raise TypeError(f"{type(self).__name__} belongs to no run")
        return parent._run_obj()

    @property
    def path_components(self) -> list[str]:
        """The parts of the pathspec: ``['Flow', 'run', 'step', 'task']``."""
        return self.pathspec.split("/")

    @property
    def tags(self) -> frozenset[str]:
        """All tags of the run this object belongs to (system and user tags)."""
        return self.system_tags | self.user_tags

    @property
    def user_tags(self) -> frozenset[str]:
        """Tags given with ``run --tag`` or added later (``add_tags``, ``tag add``)."""
        return frozenset(self._run_obj()._current_user_tags())

    @property
    def system_tags(self) -> frozenset[str]:
        """Tags the runtime set (``user:...``, ``python_version:...``); never change."""
        return frozenset(self._run_record().system_tags)

    def is_in_namespace(self) -> bool:
        ns = get_namespace()
        return ns is None or ns in self.tags


def _check_namespace(obj: MetaflowObject) -> None:
    ns = get_namespace()
    if ns is not None and not obj.is_in_namespace():
        owner = obj._run_record().user or "?"
        raise MetaflowNamespaceMismatch(
            f"{obj._NAME} {obj.pathspec} is not in the current namespace '{ns}' (it was "
            f"run by {owner}). Call namespace('user:{owner}') or namespace(None) to see it."
        )
