"""Servers the tests start die with the process that started them, even by SIGKILL.

A stand-in server (moto, Azurite, fake-gcs-server, the Kubernetes and Batch stand-ins,
``metaflowlike ui``, an MLflow server) outlives a test session that ends without running
its fixtures' teardown: pytest killed by a ``timeout``, by the OOM killer or by hand. Each
such server is started with :func:`tether`: the kernel sends it SIGTERM when the thread
that started it dies (Linux's parent-death signal), and a server whose starter is already
gone when it comes up stops at once. The stand-ins pass the same tether on to the
containers they run, and stop those containers' whole process groups on SIGTERM
(:mod:`tests.containers`), so nothing of a killed session keeps running.

``tests/test_tethered.py`` proves it by SIGKILLing a pytest that started them.
"""

from __future__ import annotations

import ctypes
import os
import signal
import sys
from collections.abc import Callable

PR_SET_PDEATHSIG = 1


def _load_prctl() -> Callable[..., int] | None:
    if not sys.platform.startswith("linux"):
        return None
    try:
        return ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None


#: loaded now, so that the ``preexec_fn`` below imports and loads nothing between
#: fork and exec
_PRCTL = _load_prctl()


def tether(parent: int | None = None) -> Callable[[], None]:
    """A ``preexec_fn`` for ``subprocess.Popen``: the child gets SIGTERM when ``parent``
    (default: the calling process) dies, and exits at once if it already has."""
    parent = os.getpid() if parent is None else parent

    def arm() -> None:
        if _PRCTL is not None:
            _PRCTL(PR_SET_PDEATHSIG, signal.SIGTERM)
        if os.getppid() != parent:  # the parent died before the signal was armed
            os._exit(1)

    return arm
