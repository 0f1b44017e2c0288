"""How the stand-in compute runs a container: Batch's compute environment, the Kubernetes
node agent and the Argo and Step Functions interpreters all run a task's command the same
way, so they share this.

A "container" is a subprocess in a fresh empty folder, with only the environment its spec
declares on top of :func:`image_env` (the image's Python, which has the cloud SDK but not
metaflowlike, first on ``PATH``; no home; the node's own settings). It leads its own
session, so that stopping it stops every process it started, and it is tethered to the
thread that started it (:mod:`tests.tethered`). A stand-in server calls
:func:`stop_all_on_sigterm` so that its containers end with it.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
from collections.abc import Mapping
from pathlib import Path
from typing import IO

from tests.tethered import tether

#: seconds a stopped container may take to exit after SIGTERM, as a kubelet allows
GRACE = 5.0

_running: set[subprocess.Popen] = set()
_lock = threading.Lock()


def image_env(python: Path | str, node_env: Mapping[str, str]) -> dict[str, str]:
    """What every container starts with before its spec's own environment."""
    env = {"PATH": f"{Path(python).parent}{os.pathsep}/usr/bin:/bin", "HOME": "/nonexistent"}
    env.update(node_env)
    return env


def start(
    command: list[str], env: dict[str, str], workdir: Path | str, log: IO
) -> subprocess.Popen:
    """Start ``command`` in ``workdir`` with exactly ``env``, its output going to ``log``."""
    proc = subprocess.Popen(
        command,
        cwd=workdir,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        start_new_session=True,
        preexec_fn=tether(),
    )
    with _lock:
        _running.add(proc)
    return proc


def wait(proc: subprocess.Popen, timeout: float | None = None) -> int:
    """Wait for the container; its exit code as container runtimes report it (``128 + N``
    for a container killed by signal ``N``). ``TimeoutExpired`` leaves it running."""
    proc.wait(timeout=timeout)
    with _lock:
        _running.discard(proc)
    return exit_code(proc)


def exit_code(proc: subprocess.Popen) -> int:
    code = proc.returncode
    return code if code >= 0 else 128 - code


def stop(proc: subprocess.Popen) -> None:
    """What a kubelet or the ECS agent does: SIGTERM to the container, a grace period,
    then SIGKILL."""
    try:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=GRACE)
    except subprocess.TimeoutExpired:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        proc.wait()
    except ProcessLookupError:
        proc.wait()


def stop_all_on_sigterm() -> None:
    """In a stand-in server: on SIGTERM (its tether, or a test's teardown) kill every
    container still running, then exit."""

    def handler(signum: int, frame: object) -> None:
        with _lock:
            procs = list(_running)
        for proc in procs:
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        sys.stdout.flush()
        os._exit(128 + signum)

    signal.signal(signal.SIGTERM, handler)
