"""``@checkpoint``: progress inside a long task that survives a crash, a retry or a resume.

A step decorated with ``@checkpoint`` gets ``current.checkpoint``: a local
``directory`` to write into, and ``save()`` which stores that folder (or any path)
content-addressed, file by file, so an unchanged 2 GB weights file saved every epoch is
uploaded once. Before user code runs on a retry, the latest checkpoint of the same task
is restored into the directory; on ``resume``, the latest checkpoint of the origin run's
matching task. A training loop then only has to look at ``current.checkpoint.is_loaded``.

Records live beside the task, one per checkpoint (the datastore's layout says where).
"""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Sequence
from typing import Any

from .current import current
from .datastore import scratch
from .datastore.task_datastore import FlowDatastore
from .decorators import StepDecorator, TaskContext
from .exceptions import MetaflowlikeException
from .ids import check_checkpoint_name, check_task_pathspec


class CheckpointError(MetaflowlikeException):
    headline = "Checkpoint error"


def list_checkpoints(fds: FlowDatastore, pathspec: str, name: str | None = None) -> list[dict]:
    """Checkpoint records of the task ``pathspec`` (Flow/run/step/task), newest first."""
    records = [r for r in fds.checkpoint_records(pathspec) if name is None or r.get("name") == name]
    return sorted(records, key=lambda r: (r["created_at"], r["id"]), reverse=True)


class Checkpointer:
    """The object behind ``current.checkpoint`` inside a task."""

    def __init__(
        self, fds: FlowDatastore, pathspec: str, attempt: int, root: str | None = None
    ) -> None:
        self._fds, self._pathspec, self._attempt = fds, pathspec, attempt
        self.directory = scratch.mkdtemp(scratch.CHECKPOINT, dir=root)
        self.is_loaded = False
        self.info: dict | None = None
        self._counter = 0

    def save(
        self,
        path: str | None = None,
        name: str = "mfchckpt",
        metadata: dict | None = None,
        latest: bool = True,
    ) -> dict:
        """Store ``path`` (default: ``directory``) and return its reference record."""
        check_checkpoint_name(name, "current.checkpoint.save")
        path = path or self.directory
        if not os.path.exists(path):
            raise CheckpointError(f"Cannot save checkpoint {name!r}: {path} does not exist.")
        files: dict[str, list] = {}
        cas = self._fds.cas
        if os.path.isdir(path):
            for dirpath, _, filenames in os.walk(path):
                for fn in sorted(filenames):
                    full = os.path.join(dirpath, fn)
                    files[os.path.relpath(full, path)] = list(cas.save_file(full))
            kind = "directory"
        else:
            files[os.path.basename(path)] = list(cas.save_file(path))
            kind = "file"
        self._counter += 1
        ckpt_id = f"{int(time.time() * 1e6)}-a{self._attempt}-{self._counter}"
        record = {
            "id": ckpt_id,
            "name": name,
            "kind": kind,
            "files": files,
            "metadata": metadata or {},
            "created_at": time.time(),
            "attempt": self._attempt,
            "task": self._pathspec,
            "latest": latest,
            "size": sum(size for _, size in files.values()),
        }
        self._fds.write_checkpoint(self._pathspec, ckpt_id, record)
        return record

    def load(self, reference: dict | str, path: str | None = None) -> str:
        """Restore a checkpoint (a record from ``save``/``list``, or its id) into ``path``."""
        record = self._resolve(reference)
        target = path or self.directory
        if record["kind"] == "file" and path is not None and not os.path.isdir(path):
            ((_, (key, _)),) = record["files"].items()
            self._fds.cas.load_file(key, path)
            return path
        os.makedirs(target, exist_ok=True)
        for rel, (key, _) in record["files"].items():
            dest = os.path.join(target, rel)
            os.makedirs(os.path.dirname(dest), exist_ok=True)
            self._fds.cas.load_file(key, dest)
        return target

    def list(self, name: str | None = None, task: Any = None) -> list[dict]:
        """Checkpoints of this task (or of ``task``: a pathspec or a client Task)."""
        pathspec = self._pathspec if task is None else getattr(task, "pathspec", task)
        check_task_pathspec(str(pathspec), "current.checkpoint.list(task=...)")
        return list_checkpoints(self._fds, pathspec, name)

    def _resolve(self, reference: dict | str) -> dict:
        if isinstance(reference, dict):
            return reference
        for rec in self.list():
            if rec["id"] == reference:
                return rec
        raise CheckpointError(f"No checkpoint {reference!r} in task {self._pathspec}.")

    def _restore_latest(self, pathspecs: Sequence[str]) -> None:
        for pathspec in pathspecs:
            records = [r for r in list_checkpoints(self._fds, pathspec) if r.get("latest", True)]
            if records:
                self.load(records[0])
                self.is_loaded = True
                self.info = records[0]
                return

    def cleanup(self) -> None:
        shutil.rmtree(self.directory, ignore_errors=True)


class CheckpointDecorator(StepDecorator):
    """``@checkpoint``: gives the step ``current.checkpoint`` and restores the latest
    checkpoint of the task (or of the task it resumes) before user code runs.

    ``load_policy``: ``"fresh"`` (default: restore on retry and resume), or ``"none"``."""

    name = "checkpoint"
    defaults = {"load_policy": "fresh", "temp_dir_root": None}

    def task_pre_step(self, *, task: TaskContext) -> None:
        ckpt = Checkpointer(
            task.datastore, task.pathspec, task.retry_count, self.attributes["temp_dir_root"]
        )
        current._update(checkpoint=ckpt)
        if self.attributes["load_policy"] == "none":
            return
        sources = [task.pathspec] if task.retry_count > 0 else []
        if task.origin_task:
            sources.append(task.origin_task)
        ckpt._restore_latest(sources)

    def task_post_step(self, *, task: TaskContext) -> None:
        self._cleanup()

    def task_exception(self, *, task: TaskContext, exception: BaseException) -> bool:
        self._cleanup()
        return False

    @staticmethod
    def _cleanup() -> None:
        """The local folder is a scratch copy: what matters was saved to the datastore."""
        ckpt = getattr(current, "checkpoint", None)
        if isinstance(ckpt, Checkpointer):
            ckpt.cleanup()
