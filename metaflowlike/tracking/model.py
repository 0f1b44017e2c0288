"""Saving models from a step (``current.model``) and loading them anywhere (``Model``).

``current.model.save(clf, name="ranker", metadata={...})`` registers a new version whose
lineage (flow, run, step, task, parameters, final metrics so far, Python and platform)
comes from the running task. ``Model("ranker@champion").load()`` works the same in a
step, a script or a notebook: a pipeline that loads by alias picks up whichever version
the alias points at when it runs, with no code change.
"""

from __future__ import annotations

import io
import os
import platform
import sys
import tarfile
import tempfile
import time
from typing import TYPE_CHECKING, Any

from ..config import get_username
from ..current import current
from .registry import AliasMove, ModelError, ModelVersion, Registry, check_name

if TYPE_CHECKING:
    from ..client.task import DataArtifact
    from ..datastore.task_datastore import FlowDatastore


def _datastore() -> FlowDatastore:
    """Inside a task: the run's datastore; elsewhere: the one the client reads."""
    fds = getattr(current, "_datastore", None) if current.is_running_flow else None
    if fds is not None:
        return fds
    from ..client import get_datastore

    return get_datastore()


def _environment() -> dict[str, str]:
    return {"python": platform.python_version(), "platform": sys.platform}


def _folder_archive(path: str) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        tar.add(path, arcname=".")
    return buf.getvalue()


def store_model(fds: FlowDatastore, obj_or_path: Any) -> dict[str, Any]:
    """Put the model's bytes in the content store; return the version fields that say
    how to read them back."""
    if isinstance(obj_or_path, os.PathLike) or (
        isinstance(obj_or_path, str) and os.path.exists(obj_or_path)
    ):
        path = os.fspath(obj_or_path)
        filename = os.path.basename(os.path.normpath(path))
        if os.path.isdir(path):
            return {"key": fds.cas.save_bytes_blob(_folder_archive(path)), "kind": "folder",
                    "filename": filename}  # fmt: skip
        if not os.path.isfile(path):
            raise ModelError(f"Cannot register {path}: it is neither a file nor a folder.")
        key, _ = fds.cas.save_file(path)
        return {"key": key, "kind": "file", "filename": filename}
    key = fds.cas.save([("model", obj_or_path)])["model"].key
    return {"key": key, "kind": "object"}


class TaskModels:
    """``current.model`` inside a running step."""

    def save(self, obj_or_path: Any, name: str, metadata: dict[str, Any] | None = None) -> Model:
        """Register ``obj_or_path`` (any picklable object, or a file or folder path) as
        the next version of ``name``, with this task's lineage."""
        check_name("model", name)
        if not current.is_running_flow:
            raise ModelError(
                "current.model.save works inside a running step; elsewhere use "
                "register_artifact(Task(...)['name'], name=...)."
            )
        fds = _datastore()
        fields = store_model(fds, obj_or_path)
        return _register(fds, name, fields, metadata, task_lineage())

    def load(self, spec: str) -> Any:
        """``current.model.load("ranker@champion")``: the same as ``Model(spec).load()``."""
        return Model(spec).load()


def task_lineage() -> dict[str, Any]:
    """Where a model saved by the running task comes from."""
    from .metrics import _buffer

    record = _datastore().read_run(current.flow_name or "", current.run_id or "")
    params = dict(record.param_values) if record is not None else {}
    return {
        "flow": current.flow_name,
        "run": current.run_id,
        "step": current.step_name,
        "task": current.task_id,
        "pathspec": current.pathspec,
        "attempt": current.retry_count,
        "parameters": params,
        "metrics": {n: cols[1][-1] for n, cols in _buffer.series.items() if cols[1]},
        "environment": _environment(),
    }


def _register(
    fds: FlowDatastore,
    name: str,
    fields: dict[str, Any],
    metadata: dict[str, Any] | None,
    lineage: dict[str, Any],
) -> Model:
    if metadata is not None and not isinstance(metadata, dict):
        raise ModelError(f"metadata= takes a dict, got {type(metadata).__name__}.")
    version = Registry(fds).add_version(
        name,
        dict(
            fields,
            metadata=dict(metadata or {}),
            lineage=lineage,
            created_at=time.time(),
            created_by=get_username(),
        ),
    )
    return Model._of(fds, version)


def register_artifact(
    artifact: DataArtifact, name: str, metadata: dict[str, Any] | None = None
) -> Model:
    """Register an artifact a finished task stored (``Task(...)["clf"]``) as the next
    version of ``name``; its bytes are not copied."""
    task: Any = artifact.parent  # the client's parent is typed generically: a Task
    entry = task._manifest()[artifact.id]
    run: Any = task.parent.parent
    lineage = {
        "flow": run.parent.id,
        "run": run.id,
        "step": task.parent.id,
        "task": task.id,
        "pathspec": task.pathspec,
        "artifact": artifact.id,
        "parameters": run.parameters,
        "metrics": {n: s.last for n, s in task.metrics.items()},
        "environment": _environment(),
    }
    fds = task._fds
    return _register(fds, name, {"key": entry.key, "kind": "object"}, metadata, lineage)


def parse_spec(spec: str) -> tuple[str, str | None, int | None]:
    """``name``, ``name@alias`` or ``name/7`` -> (name, alias, version)."""
    if not isinstance(spec, str):
        raise ModelError(f"A model is named by a string like 'ranker@champion', got {spec!r}.")
    if "@" in spec:
        name, alias = spec.split("@", 1)
        return check_name("model", name), check_name("alias", alias), None
    if "/" in spec:
        name, number = spec.split("/", 1)
        if not number.isdigit():
            raise ModelError(f"In {spec!r}, the version after '/' must be a number.")
        return check_name("model", name), None, int(number)
    return check_name("model", spec), None, None


class Model:
    """A registered model version: ``Model("ranker@champion")``, ``Model("ranker/7")``,
    ``Model("ranker")`` (the newest) or ``Model("ranker", version=7)``."""

    def __init__(self, spec: str, version: int | None = None) -> None:
        name, alias, number = parse_spec(spec)
        if version is not None:
            number = int(version)
        fds = _datastore()
        registry = Registry(fds)
        if alias is not None:
            number = registry.resolve(name, alias)
        self._fds = fds
        self._version = registry.get_version(name, number)

    @classmethod
    def _of(cls, fds: FlowDatastore, version: ModelVersion) -> Model:
        obj = cls.__new__(cls)
        obj._fds, obj._version = fds, version
        return obj

    name = property(lambda self: self._version.name)
    version = property(lambda self: self._version.version)
    metadata = property(lambda self: dict(self._version.metadata))
    lineage = property(lambda self: dict(self._version.lineage))
    kind = property(lambda self: self._version.kind)
    created_at = property(lambda self: self._version.created_at)
    created_by = property(lambda self: self._version.created_by)

    @property
    def aliases(self) -> list[str]:
        """The aliases that point at this version now."""
        held = Registry(self._fds).aliases(self.name)
        return sorted(a for a, v in held.items() if v == self.version)

    def load(self, path: str | None = None) -> Any:
        """The model: the object itself, or for a file or folder the local path it was
        written to (under ``path``, default a new temporary folder)."""
        if self.kind == "object":
            return self._fds.cas.load(self._version.key)
        target = path or tempfile.mkdtemp(prefix=f"model-{self.name}-{self.version}-")
        os.makedirs(target, exist_ok=True)
        if self.kind == "file":
            out = os.path.join(target, self._version.filename or self.name)
            self._fds.cas.load_file(self._version.key, out)
            return out
        out = os.path.join(target, self._version.filename or self.name)
        with tarfile.open(fileobj=io.BytesIO(self._fds.cas.load_raw(self._version.key))) as tar:
            tar.extractall(out, filter="data")
        return out

    def set_alias(self, alias: str) -> AliasMove:
        """Point ``alias`` at this version (atomically; the move is recorded)."""
        return Registry(self._fds).move_alias(self.name, alias, self.version, get_username())

    def __repr__(self) -> str:
        return f"<Model {self.name} version {self.version}>"


def set_alias(name: str, alias: str, version: int) -> AliasMove:
    """``set_alias("ranker", "champion", 7)``: point ``ranker@champion`` at version 7."""
    check_name("model", name)
    return Registry(_datastore()).move_alias(name, alias, int(version), get_username())


def alias_history(name: str, alias: str) -> list[AliasMove]:
    """Every move of ``name@alias``, oldest first."""
    check_name("model", name)
    check_name("alias", alias)
    return Registry(_datastore()).history(name, alias)


def list_models() -> dict[str, list[int]]:
    """Registered model names and their version numbers."""
    registry = Registry(_datastore())
    return {name: registry.versions(name) for name in registry.names()}
