"""The model registry on the datastore: numbered versions and movable aliases.

Layout under the datastore root, next to ``data/`` and ``flows/``::

    models/<name>/versions/<n>.json             version n: content key, lineage, metadata
    models/<name>/aliases/<alias>/<seq>.json    the alias's moves, one record each

Nothing is ever overwritten. A new version and each alias move is one *conditional
create* (``Storage.create_bytes``): of two writers racing for the same number exactly one
wins, the loser re-reads and takes the next number. Version numbers thus never repeat,
and two processes moving one alias at once both get their move recorded, in a single
order, each naming the version it moved the alias away from: no update is lost. An
alias points where its highest-numbered move says.

The model's bytes are content-addressed blobs (a pickled object, a file, or a folder as
a tar archive), so registering an artifact a run already stored copies nothing.
"""

from __future__ import annotations

import json
import re
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

from ..datastore.task_datastore import FlowDatastore
from ..exceptions import MetaflowlikeException, did_you_mean

_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,99}\Z")


class ModelError(MetaflowlikeException):
    headline = "Model registry"


def check_name(kind: str, value: Any) -> str:
    """Model and alias names: letters, digits, ``_ . -``, up to 100 characters."""
    if not isinstance(value, str) or not _NAME.match(value) or value.isdigit():
        raise ModelError(
            f"{value!r} is not a valid {kind} name: use letters, digits, '_', '.' and '-' "
            "(starting with a letter or digit, not all digits), at most 100 characters."
        )
    return value


@dataclass(frozen=True)
class ModelVersion:
    """One registered version: where its bytes are and where it came from."""

    name: str
    version: int
    key: str  # content key of the bytes
    kind: str  # "object" (pickled), "file" or "folder" (a tar archive)
    filename: str | None = None  # for file and folder: the original base name
    metadata: dict[str, Any] = field(default_factory=dict)
    lineage: dict[str, Any] = field(default_factory=dict)
    created_at: float = 0.0
    created_by: str = ""

    def to_json(self) -> dict[str, Any]:
        return dict(self.__dict__)


@dataclass(frozen=True)
class AliasMove:
    """One move of an alias: who pointed it at which version, when, and from where."""

    alias: str
    seq: int
    version: int
    previous: int | None
    user: str
    at: float


def _dumps(doc: dict[str, Any]) -> bytes:
    return json.dumps(doc, separators=(",", ":"), sort_keys=True, default=str).encode()


class Registry:
    """Reads and writes the registry of one datastore."""

    def __init__(self, fds: FlowDatastore) -> None:
        self.fds, self.storage, self.layout = fds, fds.storage, fds.layout

    def _numbers(self, folder: str) -> list[int]:
        return self.layout.numbers(self.storage.list_dir(folder))

    # --- names and versions ---------------------------------------------------------

    def names(self) -> list[str]:
        return sorted(n for n, is_dir in self.storage.list_dir(self.layout.models()) if is_dir)

    def versions(self, name: str) -> list[int]:
        return self._numbers(self.layout.model_versions(name))

    def add_version(self, name: str, fields: dict[str, Any]) -> ModelVersion:
        """Record a new version of ``name`` with the next free number."""
        check_name("model", name)
        folder = self.layout.model_versions(name)
        existing = self.versions(name)
        number = existing[-1] + 1 if existing else 1
        token = uuid.uuid4().hex  # makes a retried create of our own record recognisable
        while True:
            version = ModelVersion(name=name, version=number, **fields)
            doc = dict(version.to_json(), token=token)
            if self.storage.create_bytes(self.layout.numbered(folder, number), _dumps(doc)):
                return version
            number += 1  # another writer took it: the next one

    def get_version(self, name: str, version: int | None = None) -> ModelVersion:
        """``version`` of ``name``; the newest when ``version`` is None."""
        check_name("model", name)
        numbers = self.versions(name)
        if not numbers:
            raise ModelError(
                f'There is no model "{name}" in {self.storage.url(self.layout.models())}.'
                + did_you_mean(name, self.names())
            )
        number = numbers[-1] if version is None else int(version)
        if number not in numbers:
            raise ModelError(
                f'Model "{name}" has no version {number}: it has versions '
                f"{', '.join(map(str, numbers))}."
            )
        doc = (
            self.fds.read_record(self.layout.numbered(self.layout.model_versions(name), number))
            or {}
        )
        doc.pop("token", None)
        return ModelVersion(**doc)

    # --- aliases --------------------------------------------------------------------

    def aliases(self, name: str) -> dict[str, int]:
        """Every alias of ``name`` and the version it points at now."""
        out = {}
        for alias, is_dir in self.storage.list_dir(self.layout.model_aliases(name)):
            if is_dir:
                moves = self.history(name, alias, last_only=True)
                if moves:
                    out[alias] = moves[-1].version
        return out

    def history(self, name: str, alias: str, last_only: bool = False) -> list[AliasMove]:
        """The moves of ``alias``, oldest first (only the latest with ``last_only``)."""
        folder = self.layout.alias_moves(name, alias)
        seqs = self._numbers(folder)
        if last_only:
            seqs = seqs[-1:]
        moves = []
        for seq in seqs:
            doc = self.fds.read_json(
                self.layout.numbered(folder, seq), f"Alias {name}@{alias} move {seq}"
            )
            if doc is not None:
                moves.append(
                    AliasMove(
                        alias, seq, doc["version"], doc.get("previous"), doc["user"], doc["at"]
                    )
                )
        return moves

    def resolve(self, name: str, alias: str) -> int:
        check_name("model", name)
        check_name("alias", alias)
        moves = self.history(name, alias, last_only=True)
        if not moves:
            raise ModelError(
                f'Model "{name}" has no alias "{alias}".'
                + did_you_mean(alias, list(self.aliases(name)))
            )
        return moves[-1].version

    def move_alias(self, name: str, alias: str, version: int, user: str) -> AliasMove:
        """Point ``alias`` at ``version``: one conditional create of the next move
        record; on a race, re-read who moved it and try the number after."""
        check_name("alias", alias)
        self.get_version(name, version)  # the version must exist
        folder = self.layout.alias_moves(name, alias)
        token, tried = uuid.uuid4().hex, 0
        while True:
            last = self.history(name, alias, last_only=True)
            seq = max(last[-1].seq + 1 if last else 1, tried + 1)
            tried = seq
            previous = last[-1].version if last else None
            at = time.time()
            doc = {"version": int(version), "previous": previous, "user": user, "at": at}
            if self.storage.create_bytes(
                self.layout.numbered(folder, seq), _dumps(dict(doc, token=token))
            ):
                return AliasMove(alias, seq, int(version), previous, user, at)
