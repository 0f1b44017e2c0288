"""The base of launchers that run a task on another machine (Kubernetes, AWS Batch).

A remote task runs the same ``step`` command as a local one, through the bootstrap
(``bootstrap.py``) that first fetches the run's code package, and in self-sufficient
mode (``task_supervisor.py``): it saves its own logs and completion marker.

On the laptop each remote task is watched by one forked process, so the runtime treats
it like any local task: the watcher submits the job, relays the task's logs from the
datastore to its stdout/stderr (the runtime prefixes them ``[run/step/task]``), and
exits when the job ends. It polls every ``METAFLOWLIKE_REMOTE_POLL_INTERVAL`` seconds
(default 1) while the task prints, backing off to five times that while it is quiet. A SIGTERM (Ctrl-C on the runtime, or the runtime dying) makes
the watcher cancel the job it started. How the task ended, when the task could not say
it itself (never scheduled, out of memory, deadline), is written to a small result file
the runtime reads to record the attempt.

A platform plugin subclasses :class:`RemoteLauncher` and implements three methods:
``submit`` (start the job, return a handle), ``poll`` (a :class:`RemoteStatus`) and
``cancel``. Everything else - packaging, bootstrap, logs, Ctrl-C, the refusal of the
local datastore - is here, once.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import threading
import time
from abc import abstractmethod
from dataclasses import dataclass
from typing import Any

from . import code_package
from .bootstrap import bootstrap_command
from .exceptions import MetaflowlikeException
from .launchers import Launcher, LaunchPlan, Started, fork_task
from .task import TaskSpec
from .task_supervisor import SELF_SUFFICIENT_ENV

POLL_INTERVAL_ENV = "METAFLOWLIKE_REMOTE_POLL_INTERVAL"
DEFAULT_POLL_INTERVAL = 1.0
#: while a job is quiet (no new output), each poll waits this much longer than the last,
#: up to POLL_BACKOFF_CAP times the interval: a wide foreach whose jobs wait for nodes
#: costs the laptop (and the API server) a fraction of polling every second
POLL_BACKOFF = 1.5
POLL_BACKOFF_CAP = 5.0
#: consecutive failed status requests after which the job is given up
POLL_ERRORS_TOLERATED = 5


class RemoteDatastoreRequired(MetaflowlikeException):
    headline = "A remote step needs a remote datastore"


@dataclass
class RemoteStatus:
    """What the platform says about a job."""

    finished: bool
    exit_code: int | None = None
    reason: str | None = None  # why it failed, in the platform's words


class _Stop(Exception):
    """Raised in the watcher by SIGTERM."""


class RemoteLauncher(Launcher):
    """Runs tasks elsewhere; subclasses talk to one platform."""

    self_sufficient = True
    uses_local_resources = False
    enforces_local_deadline = False  # the platform enforces it (activeDeadlineSeconds...)
    #: the interpreter the container image provides
    interpreter = "python"

    _package_lock = threading.Lock()

    @classmethod
    def preflight(cls, *, fds: Any, steps: list[str]) -> None:
        if fds.storage.TYPE != "local":
            return
        names = ", ".join(f'"{s}"' for s in steps)
        raise RemoteDatastoreRequired(
            f"Step {names} runs on {cls.name}, which cannot read the local datastore "
            f"{fds.storage.url()} of this machine. Use a cloud datastore: pass "
            "--datastore-root s3://BUCKET/PREFIX (or azure://, gs://) before the command, "
            "or set METAFLOWLIKE_DATASTORE_ROOT, or datastore_root in "
            "~/.metaflowlike/config.json. Nothing was started."
        )

    # --- what a platform plugin implements ------------------------------------------

    @abstractmethod
    def submit(self, spec: TaskSpec, plan: LaunchPlan, command: list[str], env: dict) -> Any:
        """Start the job that runs ``command`` with ``env``; return its handle."""

    @abstractmethod
    def poll(self, job: Any) -> RemoteStatus:
        """The job's current state."""

    @abstractmethod
    def cancel(self, job: Any) -> None:
        """Stop the job and forget it (Ctrl-C, or the runtime stopping)."""

    # --- the shared machinery --------------------------------------------------------

    def code_package(self) -> code_package.CodePackage:
        """The run's code package, built and uploaded once per run (per runtime)."""
        ctx = self.context
        with self._package_lock:
            pkg = ctx.extras.get("code_package")
            if pkg is None:
                pkg = code_package.build(ctx.flow_file, ctx.package_suffixes)
                uploaded = code_package.upload(ctx.fds, pkg)
                ctx.extras["code_package"] = pkg
                ctx.extras["code_package_uploaded"] = uploaded
                if ctx.reporter is not None:
                    ctx.reporter.code_package(
                        code_package.package_url(ctx.fds, pkg), len(pkg.data), uploaded
                    )
            return pkg

    def remote_command(self, spec: TaskSpec, plan: LaunchPlan) -> list[str]:
        """The container command: bootstrap, then the task's own ``step`` command."""
        pkg = self.code_package()
        return bootstrap_command(
            self.interpreter,
            code_package.package_url(self.context.fds, pkg),
            pkg.sha256,
            pkg.flow_file,
            plan.command[2:],  # without the laptop's interpreter and flow path
            plan.remote_wrapper,  # e.g. building the step's Python environment first
        )

    def remote_env(self, spec: TaskSpec, plan: LaunchPlan) -> dict[str, str]:
        """The container's environment: the step's own, plus self-sufficient mode.
        Nothing of the laptop's environment (credentials least of all) is copied, nor
        ``plan.local_env`` (paths that only exist on this machine)."""
        env = dict(plan.env)
        env[SELF_SUFFICIENT_ENV] = "1"
        env["PYTHONUNBUFFERED"] = "1"
        env["METAFLOWLIKE_USER"] = spec.user
        return env

    def poll_interval(self) -> float:
        return float(os.environ.get(POLL_INTERVAL_ENV) or DEFAULT_POLL_INTERVAL)

    def start(self, spec: TaskSpec, plan: LaunchPlan, *, inherited_fds: list[int]) -> Started:
        command = self.remote_command(spec, plan)  # in the runtime: packs once per run
        env = self.remote_env(spec, plan)
        result_file = os.path.join(self.context.spool, f"{spec.task_id}.{spec.attempt}.result")
        pid, fds = fork_task(
            lambda: self._watch(spec, plan, command, env, result_file), {}, inherited_fds
        )
        return Started(pid, fds, result_file=result_file)

    def _watch(
        self, spec: TaskSpec, plan: LaunchPlan, command: list[str], env: dict, result_file: str
    ) -> bool:
        """The watcher process: submit, relay logs, wait; cancel on SIGTERM."""

        def stop(signum, frame):
            raise _Stop

        signal.signal(signal.SIGTERM, stop)
        job = None
        relay = LogRelay(self.context.fds, spec)
        try:
            job = self.submit(spec, plan, command, env)
            base = interval = self.poll_interval()
            errors = 0
            while True:
                try:
                    status = self.poll(job)
                    errors = 0
                except _Stop:
                    raise
                except Exception:  # noqa: BLE001 - a passing API error: ask again
                    errors += 1
                    if errors >= POLL_ERRORS_TOLERATED:
                        raise
                    time.sleep(interval)
                    continue
                if relay.pump():  # output arrives: keep streaming it promptly
                    interval = base
                else:
                    interval = min(interval * POLL_BACKOFF, base * POLL_BACKOFF_CAP)
                if status.finished:
                    break
                time.sleep(interval)
            relay.pump()
            _write_result(result_file, status.reason)
            return status.exit_code == 0
        except _Stop:
            signal.signal(signal.SIGTERM, signal.SIG_IGN)
            if job is not None:
                self.cancel(job)
            _write_result(result_file, "stopped: the remote job was cancelled")
            return False
        except Exception as e:  # noqa: BLE001 - the platform refused or is unreachable
            what = "submit" if job is None else "follow"
            reason = f"could not {what} the {self.name} job: {type(e).__name__}: {e}"
            print(reason, file=sys.stderr, flush=True)
            if job is not None:
                try:
                    self.cancel(job)
                except Exception:  # noqa: BLE001 - it is reported already
                    pass
            _write_result(result_file, reason)
            return False


class LogRelay:
    """Prints what a remote task saved of its logs since the last call."""

    def __init__(self, fds: Any, spec: TaskSpec) -> None:
        self.fds, self.spec = fds, spec
        self.offsets = {"stdout": 0, "stderr": 0}

    def pump(self) -> int:
        """Relay what is new; the number of bytes relayed."""
        relayed = 0
        for stream, fd in (("stdout", 1), ("stderr", 2)):
            try:
                data = self.fds.read_log(self.spec.pathspec, self.spec.attempt, stream)
            except Exception:  # noqa: BLE001 - the next call tries again
                continue
            new = data[self.offsets[stream] :]
            if new:
                os.write(fd, new)
                self.offsets[stream] = len(data)
                relayed += len(new)
        return relayed


def _write_result(path: str, reason: str | None) -> None:
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        json.dump({"reason": reason}, f)
    os.replace(tmp, path)
