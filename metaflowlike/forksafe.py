"""One place that decides what a forked process keeps of its parent's globals.

The runtime forks a process per task after it has already worked: it hashed a large
parameter on the content store's thread pool, opened SDK clients with pooled
connections, cached records. ``fork`` copies those objects but none of the threads
behind them, and none of the locks' owners: a pool whose workers are gone accepts work
that never runs (the child hangs), a lock held by a parent thread is never released,
and an HTTP connection shared by two processes interleaves their requests.

Every module that keeps such a process-global registers how to reset it here, once;
:func:`_after_fork_in_child` runs every reset in the child right after any ``fork``
(the runtime's, ``multiprocessing``'s, a user's ``os.fork``). Resets only drop
references so the next use builds a fresh object lazily; they must not wait, lock or
do I/O, since they run in a child that may have been forked mid-operation.

What stays on purpose: pure data inherited from the parent (``current``, parsed
graphs, the client's run-record cache, plugin lists) is still correct in the child,
and a user's ``multiprocessing`` worker forked inside a step must keep seeing
``current``.
"""

from __future__ import annotations

import os
import weakref
from collections.abc import Callable
from typing import Protocol


class ForkAware(Protocol):
    def _after_fork(self) -> None:
        """Drop whatever the child must not share with its parent."""


_resets: list[Callable[[], None]] = []
_instances: weakref.WeakSet = weakref.WeakSet()


def reset_in_child(fn: Callable[[], None]) -> Callable[[], None]:
    """Register ``fn`` (a module-level reset) to run in every forked child; usable as a
    decorator."""
    _resets.append(fn)
    return fn


def track(obj: ForkAware) -> None:
    """Call ``obj._after_fork()`` in every forked child while ``obj`` is alive (held
    weakly: tracking never keeps an object alive)."""
    _instances.add(obj)


def _after_fork_in_child() -> None:
    for fn in list(_resets):
        fn()
    for obj in list(_instances):
        obj._after_fork()


if hasattr(os, "register_at_fork"):  # POSIX; elsewhere tasks are never forked
    os.register_at_fork(after_in_child=_after_fork_in_child)
