"""The one interface every storage backend implements.

The layers above (content-addressed store, task datastore) only ever talk to a
``Storage``; each backend (local folder, S3, Azure Blob, GCS) is one small class.
Paths are always ``/``-separated and relative to the backend's root.

Contract every backend must honour (``tests/test_storage_contract.py`` checks it):

* ``put_*`` is atomic: a reader sees either nothing or the complete object, never a
  partial one, whatever instant the writer dies at.
* ``create_bytes`` is a conditional create, decided by the server in one step: of
  several concurrent callers on one path exactly one gets True.
* ``get_*`` of a missing path raises ``FileNotFoundError``.
* ``list_dir`` is one level deep, like ``os.scandir``: it returns child names and
  whether each is a "directory" (a common prefix) or an object.
* Transient errors are retried inside the backend; a persistent one raises
  ``StorageError`` naming the backend, the URL and the operation (never a secret).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor

from ..exceptions import MetaflowlikeException


class StorageError(MetaflowlikeException):
    """A storage operation failed for good (after retries)."""

    headline = "Storage error"


class StorageUnreachable(StorageError):
    """The store kept failing with transient errors until the retries ran out: further
    operations right now would fail the same way, so callers stop writing."""


class Storage(ABC):
    """Abstract object store rooted at ``root``.

    ``TYPE`` is the name users pass to ``--datastore``; ``default_root()`` gives the
    root when none is configured (only the local backend has one).
    """

    TYPE: str = ""
    #: URL schemes of this backend's roots (``("s3",)`` for ``s3://bucket/prefix``): a
    #: ``--datastore-root`` URL with one of them picks this backend
    SCHEMES: tuple[str, ...] = ()
    #: how many requests the batched helpers run at once
    parallelism: int = 16

    def __init__(self, root: str) -> None:
        self.root = root

    @classmethod
    def default_root(cls) -> str | None:
        return None

    def url(self, path: str = "") -> str:
        """Human readable location of ``path``, for error messages."""
        return self.root.rstrip("/") + ("/" + path if path else "")

    # --- the primitives a backend implements -------------------------------------

    @abstractmethod
    def exists(self, path: str) -> bool: ...

    @abstractmethod
    def put_bytes(self, path: str, data: bytes, overwrite: bool = True) -> None:
        """Store ``data`` at ``path`` atomically. With ``overwrite=False`` an existing
        object is left as is (content-addressed blobs never change)."""

    @abstractmethod
    def put_file(self, path: str, local_path: str, overwrite: bool = True) -> None:
        """Store the local file at ``path`` atomically, streaming it (large blobs).

        A backend may *move* ``local_path`` into place instead of copying it (the local
        one does, within a filesystem), so the caller must not use it afterwards."""

    @abstractmethod
    def create_bytes(self, path: str, data: bytes) -> bool:
        """Store ``data`` at ``path`` only if nothing is there, atomically (S3
        ``If-None-Match: *``, Azure ``if_none_match="*"``, GCS ``if_generation_match=0``,
        a hard link locally). True if this call created it, False if it existed.

        ``data`` should be unique to the caller (a random token in it): a retried request
        whose first attempt did succeed is then recognised as this caller's own."""

    @abstractmethod
    def get_bytes(self, path: str) -> bytes: ...

    @abstractmethod
    def get_file(self, path: str, local_path: str) -> None:
        """Stream the object at ``path`` into the local file ``local_path``."""

    @abstractmethod
    def list_dir(self, path: str) -> list[tuple[str, bool]]:
        """Children of ``path`` as ``(name, is_dir)``; empty if ``path`` is absent."""

    def delete(self, path: str) -> None:  # pragma: no cover - optional
        raise NotImplementedError(f"{type(self).__name__} cannot delete")

    def move(self, path: str, new_path: str) -> None:
        """Move an object to another path (object stores: copy, then delete)."""
        self.put_bytes(new_path, self.get_bytes(path))
        self.delete(path)

    def local_path(self, path: str) -> str | None:
        """A filesystem path where the object can be read directly, if any.

        Lets the local backend hand out files without a copy; remote ones return None."""
        return None

    def spool_dir(self) -> str | None:
        """Where to write temporary files that will become objects (same filesystem
        as the store for the local backend, so that a rename is enough)."""
        return None

    # --- batched helpers: backends may override with something faster -------------

    def _map(self, fn, items: Sequence):
        if len(items) <= 1 or self.parallelism <= 1:
            return [fn(i) for i in items]
        with ThreadPoolExecutor(max_workers=min(self.parallelism, len(items))) as pool:
            return list(pool.map(fn, items))

    def exists_many(self, paths: Sequence[str]) -> list[bool]:
        return self._map(self.exists, list(paths))

    def put_many(self, items: Iterable[tuple[str, bytes]], overwrite: bool = True) -> None:
        self._map(lambda kv: self.put_bytes(kv[0], kv[1], overwrite=overwrite), list(items))

    def get_many(self, paths: Sequence[str]) -> list[bytes]:
        return self._map(self.get_bytes, list(paths))


def join(*parts: str) -> str:
    """Join storage path parts with '/' (never the OS separator)."""
    return "/".join(p.strip("/") for p in parts if p)
