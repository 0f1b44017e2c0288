"""Which process owns something, and whether that process still exists.

Temporary entries (``datastore/scratch``) and running runs (in their run record) record
their owner as a pid, the pid's start time (so that a recycled pid is not taken for the
owner) and a short hash of the host name (a folder may be shared by machines or
containers whose processes cannot be checked from here). ``alive()`` answers True,
False, or None when it cannot tell.
"""

from __future__ import annotations

import functools
import hashlib
import os
import re
import socket
from dataclasses import dataclass
from typing import Any

from . import forksafe

_TAG = re.compile(r"(\d+)\.(\d+)\.([0-9a-f]{8})")


@dataclass(frozen=True)
class Owner:
    pid: int
    start: int  # clock ticks since boot (Linux); 0 where unknown
    host: str  # host_hash() of the owner's machine

    @property
    def tag(self) -> str:
        """``<pid>.<start>.<host>``: safe in a file name."""
        return f"{self.pid}.{self.start}.{self.host}"

    @classmethod
    def from_tag(cls, text: str) -> Owner | None:
        m = _TAG.fullmatch(text)
        return m and cls(int(m.group(1)), int(m.group(2)), m.group(3))

    def record(self) -> dict[str, Any]:
        return {"pid": self.pid, "start": self.start, "host": self.host}

    @classmethod
    def from_record(cls, rec: Any) -> Owner | None:
        try:
            return cls(int(rec["pid"]), int(rec["start"]), str(rec["host"]))
        except (TypeError, KeyError, ValueError):
            return None

    def alive(self) -> bool | None:
        """True while the owner runs, False once it is gone, None if it is on another
        host (or container) and cannot be checked from here."""
        if self.host != host_hash():
            return None
        return _alive(self.pid, self.start)


_me: Owner | None = None


@forksafe.reset_in_child
def _forget_me() -> None:
    """A forked child is a new owner."""
    global _me
    _me = None


def me() -> Owner:
    """The owner record of this process."""
    global _me
    if _me is None:
        pid = os.getpid()
        _me = Owner(pid, _start_time(pid) or 0, host_hash())
    return _me


@functools.cache
def host_hash() -> str:
    return hashlib.sha256(socket.gethostname().encode()).hexdigest()[:8]


def _alive(pid: int, start: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
    except FileNotFoundError:
        return False
    except OSError:  # no /proc (macOS...): the pid alone has to do
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            return True
        return True
    if fields[0] == "Z":  # exited, waiting to be reaped: does nothing any more
        return False
    return not start or int(fields[19]) == start


def _start_time(pid: int) -> int | None:
    """Start time of ``pid`` in clock ticks since boot (Linux), else None."""
    try:  # read as bytes: a forked task asks once, and a text file costs it far more
        with open(f"/proc/{pid}/stat", "rb") as f:
            return int(f.read().rsplit(b")", 1)[1].split()[19])
    except (OSError, IndexError, ValueError):
        return None
