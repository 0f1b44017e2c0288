"""What the object-store backends (S3, Azure Blob, GCS) have in common.

Each cloud backend is a :class:`RemoteStorage`: a root URL ``<scheme>://bucket/prefix``,
one SDK client and one thread pool that are created lazily, shared by every thread and
dropped in a forked child (neither survives a fork: see ``forksafe``), and every
operation wrapped in the shared :class:`~.retry.RetryPolicy`. Pure Python: the SDKs are
imported by the plugins.
"""

from __future__ import annotations

import os
import threading
import uuid
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

from .. import forksafe
from ..ids import check_storage_path
from .retry import RetryPolicy
from .storage import Storage, StorageError, join

T = TypeVar("T")

_in_pool = threading.local()


def parse_root(root: str, scheme: str) -> tuple[str, str]:
    """``("bucket", "prefix")`` from ``scheme://bucket/prefix`` (prefix may be empty)."""
    head = f"{scheme}://"
    if not isinstance(root, str) or not root.startswith(head):
        raise StorageError(
            f"{scheme} datastore: invalid root {root!r}: expected {head}bucket/optional/prefix."
        )
    bucket, _, prefix = root[len(head) :].partition("/")
    if not bucket or "\\" in bucket or any(c.isspace() for c in bucket):
        raise StorageError(
            f"{scheme} datastore: invalid root {root!r}: the bucket name is missing or "
            f"malformed (expected {head}bucket/optional/prefix)."
        )
    prefix = "/".join(p for p in prefix.split("/") if p)
    return bucket, prefix


class RemoteStorage(Storage):
    """Base of the object-store backends; subclasses set ``TYPE`` and implement the
    primitives plus :meth:`_new_client` and :meth:`_is_transient`."""

    parallelism = 16

    def __init__(self, root: str) -> None:
        self.bucket, self.prefix = parse_root(root, self.TYPE)
        super().__init__(
            f"{self.TYPE}://{self.bucket}" + (f"/{self.prefix}" if self.prefix else "")
        )
        self.retry = RetryPolicy(
            backend=self.TYPE, is_transient=self._is_transient, secrets=self._secrets
        )
        self._lock = threading.Lock()
        self._client_obj: Any = None
        self._pool_obj: ThreadPoolExecutor | None = None
        forksafe.track(self)

    # --- hooks for the subclasses ----------------------------------------------------

    def _new_client(self) -> Any:
        """Build the SDK client (called once per process, on first use)."""
        raise NotImplementedError

    def _is_transient(self, exc: BaseException) -> bool:
        raise NotImplementedError

    def _create(self, path: str, data: bytes) -> bool:
        """One conditional PUT: True if it created the object, False on the backend's
        "precondition failed" answer (the object exists)."""
        raise NotImplementedError

    def create_bytes(self, path: str, data: bytes) -> bool:
        def create() -> bool:
            if self._create(path, data):
                return True
            # exists: ours if an earlier attempt of this very call got through unanswered
            try:
                return self.get_bytes(path) == data
            except FileNotFoundError:
                return False

        return self._call("create", path, create)

    def _secrets(self) -> list[str]:
        """Credential values that must never appear in an error message."""
        return []

    # --- shared machinery ------------------------------------------------------------

    def key(self, path: str) -> str:
        """The object name of ``path`` inside the bucket."""
        path = path.strip("/")
        if path:
            check_storage_path(path)
        return join(self.prefix, path) if self.prefix else path

    def dir_key(self, path: str) -> str:
        """The listing prefix of directory ``path`` ('' or ending with '/')."""
        k = self.key(path)
        return k + "/" if k else ""

    def _after_fork(self) -> None:
        """In a forked child: the pool's threads do not exist there, the client's
        connections are shared with the parent and a lock may be held by a thread that
        did not survive. Start from scratch (lazily)."""
        self._lock = threading.Lock()
        self._client_obj = None
        self._pool_obj = None

    @property
    def client(self) -> Any:
        """The SDK client: thread safe, so one per process is shared by all threads."""
        with self._lock:
            if self._client_obj is None:
                self._client_obj = self._new_client()
            return self._client_obj

    def _pool(self) -> ThreadPoolExecutor:
        with self._lock:
            if self._pool_obj is None:
                self._pool_obj = ThreadPoolExecutor(
                    max_workers=self.parallelism,
                    thread_name_prefix=f"mfl-{self.TYPE}",
                    initializer=_mark_pool_thread,
                )
            return self._pool_obj

    def _map(self, fn: Callable[[Any], T], items: Sequence) -> list[T]:
        # Reuse one pool (threads and their warm HTTP connections) for every batch; a
        # batch started from inside the pool runs inline instead of deadlocking it.
        if len(items) <= 1 or self.parallelism <= 1 or getattr(_in_pool, "yes", False):
            return [fn(i) for i in items]
        return list(self._pool().map(fn, items))

    def _call(self, op: str, path: str, fn: Callable[[], T]) -> T:
        """Run ``fn`` with retries; errors name ``op`` and the URL of ``path``."""
        return self.retry.call(op, self.url(path), fn)

    @staticmethod
    def _into_file(local_path: str, download: Callable[[str], None]) -> None:
        """Run ``download(tmp)`` and rename ``tmp`` to ``local_path``: a failed download
        (or one being retried) never leaves a truncated ``local_path`` behind."""
        tmp = f"{local_path}.tmp-{uuid.uuid4().hex[:8]}"
        try:
            download(tmp)
            os.replace(tmp, local_path)
        except BaseException:
            try:
                os.unlink(tmp)
            except OSError:
                pass
            raise

    def close(self) -> None:
        """Release the thread pool (the client's connections close with it)."""
        with self._lock:
            pool, self._pool_obj = self._pool_obj, None
        if pool is not None:
            pool.shutdown(wait=False)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.root!r})"


def _mark_pool_thread() -> None:
    _in_pool.yes = True
