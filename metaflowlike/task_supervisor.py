"""The self-sufficient task: a task that records its own logs and completion marker.

Locally the runtime supervises every task: it captures the output, saves the logs and
writes the completion marker. A task in a pod, a Batch job or a production
orchestrator has no such supervisor on its machine, so the ``step`` command supervises
itself when ``METAFLOWLIKE_SELF_SUFFICIENT=1`` is set: it runs the very same ``step``
command as a child process, passes its output through (so the platform's own log view
works), saves stdout/stderr to the datastore every few seconds while the task runs (so
the laptop can stream them) and once more at the end, and writes the completion marker
after the task's artifacts and logs. A task that finished remotely is therefore
complete and readable even if the laptop that launched it died meanwhile.

Running the task as a child, rather than in this process, means a task that crashes
hard (a segfault, ``os._exit``) is still recorded with its exit status.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import traceback
from typing import Any

from .datastore.records import TaskInfo
from .step_command import task_command
from .task import TaskSpec, completion_marker

SELF_SUFFICIENT_ENV = "METAFLOWLIKE_SELF_SUFFICIENT"
#: seconds between two uploads of a running task's logs
LOG_INTERVAL_ENV = "METAFLOWLIKE_LOG_UPLOAD_INTERVAL"
DEFAULT_LOG_INTERVAL = 2.0


class _Capture:
    """Copies one pipe of the child to a spool file and to our own descriptor."""

    def __init__(self, pipe: Any, path: str, passthrough_fd: int) -> None:
        self.pipe, self.path, self.fd = pipe, path, passthrough_fd
        self.file = open(path, "wb")
        self.lock = threading.Lock()
        self.size = 0
        self.thread = threading.Thread(target=self._pump, daemon=True)
        self.thread.start()

    def _pump(self) -> None:
        while True:
            data = self.pipe.read1(65536)
            if not data:
                break
            with self.lock:
                self.file.write(data)
                self.file.flush()
                self.size += len(data)
            try:
                os.write(self.fd, data)
            except OSError:
                pass  # nobody reads our own output any more: the file still has it

    def close(self) -> None:
        self.thread.join()
        self.pipe.close()
        self.file.close()


def supervise(state: Any, spec: TaskSpec, with_specs: list[str]) -> int:
    """Run the task of ``spec`` as a child and record it; returns the exit code."""
    fds = state.fds
    started = time.time()
    interval = float(os.environ.get(LOG_INTERVAL_ENV) or DEFAULT_LOG_INTERVAL)
    command = task_command(sys.executable, sys.argv[0], state.top_args(), spec, with_specs)
    env = {k: v for k, v in os.environ.items() if k != SELF_SUFFICIENT_ENV}
    spool = tempfile.mkdtemp(prefix="mfl-task-")
    proc = subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL, env=env
    )
    # the platform stops the task with SIGTERM (a deleted pod, a cancelled job)
    signal.signal(signal.SIGTERM, lambda signum, frame: proc.send_signal(signal.SIGTERM))
    streams = {
        "stdout": _Capture(proc.stdout, os.path.join(spool, "stdout"), 1),
        "stderr": _Capture(proc.stderr, os.path.join(spool, "stderr"), 2),
    }
    uploaded = {name: -1 for name in streams}

    def upload() -> None:
        for name, cap in streams.items():
            with cap.lock:
                if cap.size == uploaded[name]:
                    continue
                size = cap.size
                shutil.copyfile(cap.path, cap.path + ".up")
            fds.write_log(spec.pathspec, spec.attempt, name, cap.path + ".up")
            uploaded[name] = size

    try:
        while True:
            try:
                code = proc.wait(timeout=interval)
                break
            except subprocess.TimeoutExpired:
                try:
                    upload()
                except Exception:  # noqa: BLE001 - a missed interim upload is not fatal
                    traceback.print_exc()
        for cap in streams.values():
            cap.close()
        upload()
        info = fds.read_task_info(spec.pathspec, spec.attempt, warn=True) or TaskInfo()
        marker = completion_marker(spec, info, exit_status=code, started=started)
        fds.mark_done(spec.pathspec, spec.attempt, marker)
    finally:
        shutil.rmtree(spool, ignore_errors=True)
    if code < 0:
        return 128 - code  # killed by a signal: report it the way a shell does
    return code
