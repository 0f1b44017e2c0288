"""Storage in a local folder: the embedded, zero set-up default.

Atomicity comes from writing a temporary file in the destination's folder and
``os.replace``-ing it into place, so a crash leaves at most a ``.tmp-*`` file that no
reader ever lists.

Durability: unless ``METAFLOWLIKE_FSYNC=0``, every object is ``fsync``-ed before it is
renamed into place, and its folder after (and the parent of every folder created), so
that after a power loss an object is either absent or complete, and objects written one
after another (blob, task record, completion marker) survive in that order: a marker
never outlives the records it vouches for.

Permissions: every file and folder gets the mode an ordinary ``open``/``mkdir`` would
give it under the process umask (``0666 & ~umask`` and ``0777 & ~umask``), whichever way
it was written (``mkstemp`` alone would make files 0600 and logs 0644).
"""

from __future__ import annotations

import errno
import os

from ..ids import check_storage_path
from . import scratch
from .storage import Storage, StorageError

TMP_PREFIX = ".tmp-"
ENV_FSYNC = "METAFLOWLIKE_FSYNC"


def _umask() -> int:
    """The process umask, read without changing it where the OS allows (Linux)."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    old = os.umask(0o022)
    os.umask(old)
    return old


def fsync_enabled() -> bool:
    return os.environ.get(ENV_FSYNC, "1").strip().lower() not in ("0", "false", "no", "off")


class LocalStorage(Storage):
    TYPE = "local"
    SCHEMES = ("file",)
    parallelism = 1  # the page cache is faster than a thread pool

    def __init__(self, root: str, durable: bool | None = None) -> None:
        super().__init__(os.path.abspath(os.path.expanduser(root)))
        self.durable = fsync_enabled() if durable is None else durable
        self.file_mode = 0o666 & ~_umask()
        self._spool: str | None = None

    @classmethod
    def default_root(cls) -> str:
        from ..config import local_root

        return local_root()

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

    def _mkstemp(self) -> tuple[int, str]:
        """A temporary file for a write about to be renamed into place. It lives in the
        spool (same filesystem, so the rename stays atomic) under a name that says who
        owns it, so that what a killed writer leaves is swept like every other spool
        entry instead of staying forever in a datastore folder."""
        if self._spool is None:
            self._spool = self.spool_dir()
        return scratch.mkstemp(scratch.PUT, dir=self._spool)

    def _makedirs(self, d: str) -> None:
        try:
            self._ensure_dir(d)
        except OSError as e:
            raise self._error("create folder", d, e) from e

    def _ensure_dir(self, d: str) -> None:
        """``makedirs``, making each new folder's entry durable in its parent."""
        if os.path.isdir(d):
            return
        parent = os.path.dirname(d)
        if parent != d:
            self._ensure_dir(parent)
        try:
            os.mkdir(d)
        except FileExistsError:
            return
        if self.durable:
            _fsync_dir(parent)

    def _error(self, op: str, path: str, e: OSError) -> StorageError:
        return StorageError(f"local datastore: cannot {op} {path}: {describe_os_error(e)}.")

    def exists(self, path: str) -> bool:
        return os.path.exists(self._full(path))

    def _temp_file(self, data: bytes) -> tuple[int, str]:
        """A temporary file holding ``data``, still open (see ``_mkstemp``); nothing is
        left behind if the write fails."""
        fd, tmp = self._mkstemp()
        try:
            _write_all(fd, data)
        except BaseException:
            os.close(fd)
            _silent_unlink(tmp)
            raise
        return fd, tmp

    def _seal(self, fd: int) -> None:
        """Give an open temporary file its mode and make it durable, then close it."""
        try:
            os.fchmod(fd, self.file_mode)
            if self.durable:
                os.fsync(fd)
        finally:
            os.close(fd)

    def _publish(self, fd: int, tmp: str, full: str) -> None:
        """Seal the open temporary file, rename it into place and make the rename
        durable."""
        self._seal(fd)
        os.replace(tmp, full)
        if self.durable:
            _fsync_dir(os.path.dirname(full))

    def put_bytes(self, path: str, data: bytes, overwrite: bool = True) -> None:
        full = self._full(path)
        if not overwrite and os.path.exists(full):
            return
        tmp = None
        try:
            self._ensure_dir(os.path.dirname(full))
            fd, tmp = self._temp_file(data)
            self._publish(fd, tmp, full)
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
            self._ensure_dir(os.path.dirname(full))
            try:  # same filesystem: a rename, no copy
                self._publish(os.open(local_path, os.O_RDONLY), local_path, full)
                return
            except OSError as e:
                if e.errno != errno.EXDEV:
                    raise
            fd, tmp = self._mkstemp()
            try:
                with open(local_path, "rb") as src:
                    while chunk := src.read(8 << 20):
                        _write_all(fd, chunk)
            except BaseException:
                os.close(fd)
                _silent_unlink(tmp)
                raise
            try:
                self._publish(fd, tmp, full)
            except BaseException:
                _silent_unlink(tmp)
                raise
        except OSError as e:
            raise self._error("write", full, e) from e

    def create_bytes(self, path: str, data: bytes) -> bool:
        full = self._full(path)
        tmp = None
        try:
            self._ensure_dir(os.path.dirname(full))
            fd, tmp = self._temp_file(data)
            self._seal(fd)
            try:
                os.link(tmp, full)  # fails if the name exists: an atomic create
            except FileExistsError:
                return self.get_bytes(path) == data  # the same claim again: ours
            if self.durable:
                _fsync_dir(os.path.dirname(full))
            return True
        except OSError as e:
            raise self._error("create", full, e) from e
        finally:
            if tmp:
                _silent_unlink(tmp)

    def move(self, path: str, new_path: str) -> None:
        full, new_full = self._full(path), self._full(new_path)
        try:
            self._ensure_dir(os.path.dirname(new_full))
            os.replace(full, new_full)
        except FileNotFoundError:
            raise
        except OSError as e:
            raise self._error("move", full, e) from e

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


def _fsync_dir(d: str) -> None:
    """Make the entries of folder ``d`` (a rename, a new file) durable."""
    fd = os.open(d, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


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


def _write_all(fd: int, data: bytes) -> None:
    """Write every byte: ``os.write`` may write less than it is given."""
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


def _silent_unlink(path: str) -> None:
    try:
        os.unlink(path)
    except OSError:
        pass
