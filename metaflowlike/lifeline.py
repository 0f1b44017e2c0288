"""How a task process ends: with its runtime, and gracefully when asked to stop.

Two promises hold for every task the local runtime starts, forked or launched as a
``step`` subprocess:

* **It dies with its runtime.** The kernel sends the task SIGTERM when the runtime
  dies (Linux parent-death signal, set before any user code runs), and a task whose
  runtime is already gone when it starts stops at once. Nothing keeps running user code
  behind a later ``resume``.
* **A stop is graceful, then final.** SIGTERM raises :class:`TaskStopped` in the task's
  main thread, so ``finally`` blocks and context managers run (temporary files are
  removed, user code releases what it holds); then the task kills its whole process
  group, children included. A second SIGTERM, or :data:`STOP_GRACE` seconds without
  finishing, kills the group at once.
"""

from __future__ import annotations

import functools
import os
import signal
import sys
from typing import NoReturn

#: seconds a stopping task may spend in its ``finally`` blocks before it is killed
STOP_GRACE = 3.0
#: set by the runtime for the tasks it launches as subprocesses: the runtime's pid
RUNTIME_PID_ENV = "METAFLOWLIKE_RUNTIME_PID"
PR_SET_PDEATHSIG = 1


class TaskStopped(BaseException):
    """The task was asked to stop (SIGTERM). A ``BaseException``, like
    ``KeyboardInterrupt``, so that a step's ``except Exception`` (or ``@catch``) does
    not swallow the stop."""


def become_task(parent: int | None, *, owns_group: bool = True) -> None:
    """Set up the current process as a task of the runtime ``parent``.

    ``owns_group``: the task leads its own process group (the runtime made it so), and
    ends by killing that group; otherwise only this process stops."""
    global _owns_group
    _owns_group = owns_group
    signal.signal(signal.SIGTERM, _stop)
    if parent is not None:
        die_with_parent(parent)


def die_with_parent(parent: int) -> None:
    """Ask the kernel to SIGTERM this process when ``parent`` dies (Linux), and stop now
    if it already has. Safe between fork and exec (``preexec_fn``): no import, no I/O."""
    prctl = _prctl()
    if prctl is not None:
        prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
    if os.getppid() != parent:  # the runtime died before the death signal was armed
        if _owns_group:
            os.killpg(0, signal.SIGKILL)
        os._exit(1)


def end_stopped_task() -> NoReturn:
    """After :class:`TaskStopped` has unwound the task: take the process group down."""
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):
            pass
    if _owns_group:
        os.killpg(0, signal.SIGKILL)
    os._exit(128 + signal.SIGTERM)


def parent_from_env() -> int | None:
    """The runtime pid a ``step`` subprocess was launched with, if any."""
    value = os.environ.get(RUNTIME_PID_ENV, "")
    return int(value) if value.isdigit() else None


_owns_group = True


def _stop(signum, frame) -> None:
    # From now on the task is on its way out: a second SIGTERM or the end of the grace
    # period takes the group down without waiting for the unwinding to finish.
    signal.signal(signal.SIGTERM, _kill_now)
    signal.signal(signal.SIGALRM, _kill_now)
    signal.setitimer(signal.ITIMER_REAL, STOP_GRACE)
    raise TaskStopped("the task was asked to stop (SIGTERM)")


def _kill_now(signum, frame) -> None:
    if _owns_group:
        os.killpg(0, signal.SIGKILL)
    os._exit(128 + signal.SIGTERM)


@functools.cache
def _prctl():
    if not sys.platform.startswith("linux"):
        return None
    try:
        import ctypes

        return ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None


def preload() -> None:
    """Load ``prctl`` in the runtime once, so a forked task or a ``preexec_fn`` finds
    it ready instead of importing ctypes between fork and exec."""
    _prctl()
