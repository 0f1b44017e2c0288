"""Temporary files and folders that a crash cannot leak for good.

A process killed at the wrong instant leaves its temporary entries behind: a large
blob being spooled before its rename (``.tmp-blob-*``, as large as the artifact), a
file of the local datastore written before its rename into place (``.tmp-put-*``), a
download from a remote store (``.tmp-get-*``), the runtime's log spool
(``mfl-logs-*``), a checkpoint folder (``mfl-checkpoint-*``). Their names therefore say
who owns them::

    <prefix><pid>.<start>.<host>-<random>

(see ``owners``: a recycled pid is not taken for the owner, and the entries of
another machine or container sharing the folder cannot be checked from here). :func:`sweep`
removes the entries whose owner is gone and leaves every other one alone, so it is safe
while other runs write; entries of another host are only removed once they are a day
old. Each sweep looks at a bounded number of entries, so it costs little even in a
crowded ``$TMPDIR``.
"""

from __future__ import annotations

import os
import re
import shutil
import tempfile
import time
from collections.abc import Iterable
from dataclasses import dataclass

from ..owners import Owner, me

BLOB = ".tmp-blob-"
DOWNLOAD = ".tmp-get-"
PUT = ".tmp-put-"
LOGS = "mfl-logs-"
CHECKPOINT = "mfl-checkpoint-"
PREFIXES = (BLOB, PUT, DOWNLOAD, LOGS, CHECKPOINT)

#: an entry of another host is only considered abandoned after this many seconds
FOREIGN_AGE = 24 * 3600
#: at most this many directory entries are examined per folder and sweep
SCAN_LIMIT = 20000

_NAME = re.compile("^(?:" + "|".join(map(re.escape, PREFIXES)) + r")([0-9.a-f]+)-")


def mkstemp(prefix: str, dir: str | None = None) -> tuple[int, str]:
    """``tempfile.mkstemp`` with an owned name (see the module docstring).

    The random part comes from ``os.urandom``: ``tempfile`` seeds a generator of its own
    in each new process, which a forked task would pay for at its first write."""
    folder = tempfile.gettempdir() if dir is None else dir
    flags = os.O_RDWR | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0)
    flags |= getattr(os, "O_CLOEXEC", 0) | getattr(os, "O_BINARY", 0)
    while True:
        path = os.path.join(folder, f"{prefix}{me().tag}-{os.urandom(6).hex()}")
        try:
            return os.open(path, flags, 0o600), path
        except FileExistsError:
            continue


def mkdtemp(prefix: str, dir: str | None = None) -> str:
    """``tempfile.mkdtemp`` with an owned name (see the module docstring)."""
    return tempfile.mkdtemp(prefix=f"{prefix}{me().tag}-", dir=dir)


@dataclass
class Swept:
    """What a sweep reclaimed."""

    entries: int = 0
    bytes: int = 0

    def __iadd__(self, other: Swept) -> Swept:
        self.entries += other.entries
        self.bytes += other.bytes
        return self


def sweep(folders: Iterable[str | None]) -> Swept:
    """Remove the temporary entries in ``folders`` whose owner process is gone."""
    total = Swept()
    for folder in dict.fromkeys(f for f in folders if f):
        total += _sweep_folder(folder)
    return total


def abandoned(name: str, mtime: float) -> bool:
    """True if the entry called ``name`` belongs to a process that no longer exists."""
    m = _NAME.match(name)
    owner = m and Owner.from_tag(m.group(1))
    if owner is None:
        return False  # not ours, or from a version that did not name its owner
    alive = owner.alive()
    if alive is None:  # another host: only an old entry counts as abandoned
        return time.time() - mtime > FOREIGN_AGE
    return not alive


def _sweep_folder(folder: str) -> Swept:
    swept = Swept()
    try:
        with os.scandir(folder) as it:
            for n, entry in enumerate(it):
                if n >= SCAN_LIMIT:
                    break
                if not entry.name.startswith(PREFIXES):
                    continue
                try:
                    st = entry.stat(follow_symlinks=False)
                    if not abandoned(entry.name, st.st_mtime):
                        continue
                    size = _remove(entry)
                except OSError:
                    continue  # gone meanwhile, or not ours to remove
                swept.entries += 1
                swept.bytes += size
    except OSError:
        pass  # a missing or unreadable folder holds nothing to reclaim
    return swept


def _remove(entry: os.DirEntry) -> int:
    if entry.is_dir(follow_symlinks=False):
        size = 0
        for dirpath, _, files in os.walk(entry.path):
            for f in files:
                try:
                    size += os.lstat(os.path.join(dirpath, f)).st_size
                except OSError:
                    pass
        shutil.rmtree(entry.path)
        return size
    size = entry.stat(follow_symlinks=False).st_size
    os.unlink(entry.path)
    return size
