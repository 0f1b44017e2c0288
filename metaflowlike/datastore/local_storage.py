"""Storage in a local folder: the embedded, zero set-up default.

Atomicity comes from writing a temporary file in the destination's folder and
``os.replace``-ing it into place, so a crash leaves at most a ``.tmp-*`` file that no
reader ever lists.
"""

from __future__ import annotations

import errno
import os
import tempfile

from ..ids import check_storage_path
from .storage import Storage, StorageError

TMP_PREFIX = ".tmp-"


class LocalStorage(Storage):
    TYPE = "local"
    consume_local_file = True
    parallelism = 1  # the page cache is faster than a thread pool

    def __init__(self, root: str) -> None:
        super().__init__(os.path.abspath(os.path.expanduser(root)))

    @classmethod
    def default_root(cls) -> str:
        return os.path.join(os.getcwd(), ".metaflowlike")

    def _full(self, path: str) -> str:
        if not path:
            return self.root
        return os.path.join(self.root, *check_storage_path(path).split("/"))

    def local_path(self, path: str) -> str:
        return self._full(path)

    def spool_dir(self) -> str:
        d = os.path.join(self.root, ".spool")
        self._makedirs(d)
        return d

    def _makedirs(self, d: str) -> None:
        try:
            os.makedirs(d, exist_ok=True)
        except OSError as e:
            raise self._error("create folder", d, e) from e

    def _error(self, op: str, path: str, e: OSError) -> StorageError:
        return StorageError(f"local datastore: cannot {op} {path}: {describe_os_error(e)}.")

    def exists(self, path: str) -> bool:
        return os.path.exists(self._full(path))

    def put_bytes(self, path: str, data: bytes, overwrite: bool = True) -> None:
        full = self._full(path)
        if not overwrite and os.path.exists(full):
            return
        d = os.path.dirname(full)
        tmp = None
        try:
            os.makedirs(d, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=d, prefix=TMP_PREFIX)
            with os.fdopen(fd, "wb") as f:
                f.write(data)
            os.replace(tmp, full)
        except BaseException as e:  # a stopped task unwinds through here too
            if tmp:
                _silent_unlink(tmp)
            if isinstance(e, OSError):
                raise self._error("write", full, e) from e
            raise

    def put_file(self, path: str, local_path: str, overwrite: bool = True) -> None:
        full = self._full(path)
        if not overwrite and os.path.exists(full):
            return
        try:
            os.makedirs(os.path.dirname(full), exist_ok=True)
            try:
                os.replace(local_path, full)  # same filesystem: a rename, no copy
                return
            except OSError as e:
                if e.errno != errno.EXDEV:
                    raise
            fd, tmp = tempfile.mkstemp(dir=os.path.dirname(full), prefix=TMP_PREFIX)
            try:
                with os.fdopen(fd, "wb") as out, open(local_path, "rb") as src:
                    while chunk := src.read(8 << 20):
                        out.write(chunk)
                os.replace(tmp, full)
            except BaseException:
                _silent_unlink(tmp)
                raise
        except OSError as e:
            raise self._error("write", full, e) from e

    def get_bytes(self, path: str) -> bytes:
        with open(self._full(path), "rb") as f:
            return f.read()

    def get_file(self, path: str, local_path: str) -> None:
        with open(self._full(path), "rb") as src, open(local_path, "wb") as out:
            while chunk := src.read(8 << 20):
                out.write(chunk)

    def list_dir(self, path: str) -> list[tuple[str, bool]]:
        try:
            with os.scandir(self._full(path)) as it:
                return [
                    (e.name, e.is_dir())
                    for e in it
                    if not e.name.startswith(TMP_PREFIX) and e.name != ".spool"
                ]
        except FileNotFoundError:
            return []

    def delete(self, path: str) -> None:
        _silent_unlink(self._full(path))


def describe_os_error(e: OSError) -> str:
    """Why a write failed, in words a user acts on (shared with the task's own writes)."""
    if e.errno in (errno.ENOSPC, errno.EDQUOT):
        return "the disk is full"
    if e.errno == errno.EFBIG:
        # a process file size limit (ulimit -f) or the file system's largest file
        return "the file is too large to write there (disk full or file size limit reached)"
    if e.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        return "the datastore is not writable"
    if e.errno == errno.ENOTDIR:
        return "a part of that path is a file, not a folder"
    return os.strerror(e.errno) if e.errno else str(e)


def _silent_unlink(path: str) -> None:
    try:
        os.unlink(path)
    except OSError:
        pass
