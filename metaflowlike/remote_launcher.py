"""The base of launchers that run a task on another machine (Kubernetes, AWS Batch).

A remote task runs the same ``step`` command as a local one, through the bootstrap
(``bootstrap.py``) that first fetches the run's code package, and in self-sufficient
mode (``task_supervisor.py``): it saves its own logs and completion marker.

One poller per run and platform
-------------------------------
All the remote tasks a run starts on one platform are followed by **one poller
process**, forked from the runtime when the first of them starts. It holds the run's
only API client, submits each job, reads the status of all of them with a few batched
calls per interval (Kubernetes: Jobs and pods listed by the run's labels; Batch:
``describe_jobs`` with up to 100 ids), relays the logs of the tasks that are running,
and cancels jobs. A watcher process per task, each with its own client and its own
polling, cost the runtime seconds of CPU per task (measured in
``docs/benchmarks.md``); the poller costs it a few milliseconds.

The runtime still sees every task as a local process with stdout/stderr pipes and an
exit status (the contract of ``launchers.py``), so nothing in the scheduler knows about
remote jobs: each task's process is a tiny **stand-in** forked from the runtime that
only writes what the poller sends it (log lines, which the runtime prefixes
``[run/step/task]``) and exits with the job's status. Stopping the stand-in (Ctrl-C,
``@timeout`` of a gang, the runtime dying) tells the poller to cancel its job: by a
message on SIGTERM, and by its socket closing if it is killed outright. The poller
itself dies with the runtime (parent-death signal) and then cancels every job it still
follows. How a task ended, when the task could not say it itself (never scheduled, out
of memory, deadline), is written to a small result file the runtime reads to record the
attempt.

The poller reads statuses every ``METAFLOWLIKE_REMOTE_POLL_INTERVAL`` seconds (default
1). It relays the saved logs of a running task as often as the task saves them (every
2 seconds, or the poll interval if longer) while the task prints, backing off to five
times that while it is quiet, and reads at most ``LOG_RELAYS_PER_POLL`` tasks' logs per
poll, so that a wide foreach does not turn into a storm of datastore reads; every
task's logs are relayed in full when it ends.

A platform plugin subclasses :class:`RemoteLauncher` and implements ``submit`` (start
one job, return a handle), ``poll_all`` (the :class:`RemoteStatus` of many jobs, in as
few API calls as the platform allows) and ``cancel``; ``submitted_note`` may say how the
submission is announced. They run in the poller process. Everything else - packaging,
the bootstrap, logs, Ctrl-C, the refusal of the local datastore - is here, once.
"""

from __future__ import annotations

import json
import os
import pickle
import queue
import selectors
import signal
import socket
import struct
import sys
import threading
import time
from abc import abstractmethod
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from . import code_package, forksafe, lifeline
from .bootstrap import bootstrap_command
from .exceptions import MetaflowlikeException
from .launchers import Launcher, LaunchPlan, Started, close_inherited, exit_child, fork_task
from .task import TaskSpec
from .task_supervisor import DEFAULT_LOG_INTERVAL, SELF_SUFFICIENT_ENV

POLL_INTERVAL_ENV = "METAFLOWLIKE_REMOTE_POLL_INTERVAL"
DEFAULT_POLL_INTERVAL = 1.0
#: while a task is quiet (no new output), its logs are read each time this much later
#: than the last, up to POLL_BACKOFF_CAP times the interval
POLL_BACKOFF = 1.5
POLL_BACKOFF_CAP = 5.0
#: consecutive failed status requests after which the jobs are given up
POLL_ERRORS_TOLERATED = 5
#: running tasks whose logs are read per poll interval (the longest-waiting first)
LOG_RELAYS_PER_POLL = 8
#: API calls the poller makes at once (submitting, cancelling, reading logs): one slow
#: request must not hold up the others
POLLER_THREADS = 8
#: seconds the runtime waits, at its end, for the poller to finish cancelling jobs
POLLER_EXIT_WAIT = 30.0

# Frames from the poller to a task's stand-in: one kind byte and a length.
_FRAME = struct.Struct("!cI")
_STDOUT, _STDERR, _EXIT = b"o", b"e", b"x"
#: what a stand-in sends the poller when it is asked to stop
_CANCEL = b"c"


class RemoteDatastoreRequired(MetaflowlikeException):
    headline = "A remote step needs a remote datastore"


@dataclass
class RemoteStatus:
    """What the platform says about a job."""

    finished: bool
    exit_code: int | None = None
    reason: str | None = None  # why it failed, in the platform's words
    running: bool = False  # its container has started: its logs are worth reading
    note: str | None = None  # news for the task's output ("Pod ns/x created.")


class RemoteLauncher(Launcher):
    """Runs tasks elsewhere; subclasses talk to one platform."""

    self_sufficient = True
    uses_local_resources = False
    enforces_local_deadline = False  # the platform enforces it (activeDeadlineSeconds...)
    #: the interpreter the container image provides
    interpreter = "python"

    _package_lock = threading.Lock()

    def __init__(self, context: Any) -> None:
        super().__init__(context)
        self._poller: tuple[int, socket.socket] | None = None  # (pid, control socket)
        forksafe.track(self)

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

    # --- what a platform plugin implements (called in the poller process) -----------

    @abstractmethod
    def submit(self, spec: TaskSpec, plan: LaunchPlan, command: list[str], env: dict) -> Any:
        """Start the job that runs ``command`` with ``env``; return its handle."""

    @abstractmethod
    def poll_all(self, jobs: list[Any]) -> list[RemoteStatus]:
        """The current state of each of ``jobs`` (in their order), read in as few
        requests as the platform allows: this is called every poll interval."""

    @abstractmethod
    def cancel(self, job: Any) -> None:
        """Stop the job and forget it (Ctrl-C, or the runtime stopping)."""

    def submitted_note(self, job: Any) -> str:
        """The line the task's output starts with once its job is submitted."""
        return f"{self.name} job {job} submitted."

    # --- the shared machinery (in the runtime) ---------------------------------------

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
        control = self._control(inherited_fds)
        ours, theirs = socket.socketpair()
        try:
            pid, fds = fork_task(
                lambda: _stand_in(ours), {}, [*inherited_fds, theirs.fileno(), control.fileno()]
            )
            request = pickle.dumps((spec, plan, command, env, result_file))
            socket.send_fds(control, [request], [theirs.fileno()])
        finally:
            ours.close()
            theirs.close()
        return Started(pid, fds, result_file=result_file)

    def close(self) -> None:
        """The run is over: let the poller finish (it has nothing left to follow, or
        is cancelling what the runtime stopped) and reap it."""
        if self._poller is None:
            return
        pid, control = self._poller
        self._poller = None
        control.close()  # the poller sees the end of its requests
        deadline = time.monotonic() + POLLER_EXIT_WAIT
        while time.monotonic() < deadline:
            if os.waitpid(pid, os.WNOHANG)[0] != 0:
                return
            time.sleep(0.02)
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)

    def _after_fork(self) -> None:
        """A forked child (a task, the poller) must not hold the runtime's end of the
        poller's requests, or the poller would not see the runtime close it."""
        if self._poller is not None:
            self._poller[1].close()
            self._poller = None

    def _control(self, inherited_fds: list[int]) -> socket.socket:
        """The socket the runtime sends the poller its requests on; forks the poller
        at the first remote task of the run."""
        if self._poller is None:
            ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
            parent = os.getpid()
            sys.stdout.flush()
            sys.stderr.flush()
            pid = os.fork()
            if pid == 0:  # the poller process
                code = 1
                try:
                    ours.close()
                    close_inherited(inherited_fds)
                    os.setpgid(0, 0)  # the terminal's Ctrl-C is the runtime's to handle
                    signal.signal(signal.SIGINT, signal.SIG_IGN)
                    lifeline.die_with_parent(parent)
                    _Poller(self, theirs).serve()
                    code = 0
                except BaseException:  # noqa: BLE001 - say why, then exit
                    import traceback

                    traceback.print_exc()
                finally:
                    exit_child(code)
            theirs.close()
            self._poller = (pid, ours)
        return self._poller[1]


# --- the stand-in: a remote task's local process ------------------------------------


def _stand_in(sock: socket.socket) -> bool:
    """Write what the poller sends to stdout/stderr; end with the job's status. A
    SIGTERM asks the poller to cancel the job; its answer ends the process."""

    def stop(signum, frame):
        try:
            sock.send(_CANCEL)
        except OSError:
            pass

    signal.signal(signal.SIGTERM, stop)
    while True:
        header = _read_exactly(sock, _FRAME.size)
        if header is None:
            print("[metaflowlike] The remote poller stopped.", file=sys.stderr, flush=True)
            return False
        kind, size = _FRAME.unpack(header)
        payload = _read_exactly(sock, size) if size else b""
        if payload is None:
            return False
        if kind == _EXIT:
            return payload == b"0"
        fd = 1 if kind == _STDOUT else 2
        view = memoryview(payload)
        while view:
            view = view[os.write(fd, view) :]


def _read_exactly(sock: socket.socket, size: int) -> bytes | None:
    data = b""
    while len(data) < size:
        chunk = sock.recv(size - len(data))
        if not chunk:
            return None
        data += chunk
    return data


# --- the poller ----------------------------------------------------------------------


class _Stop(Exception):
    """Raised in the poller by SIGTERM (the runtime died)."""


@dataclass
class _Task:
    """One task attempt the poller follows."""

    sock: socket.socket
    spec: TaskSpec
    plan: LaunchPlan
    command: list[str]
    env: dict
    result_file: str
    relay: LogRelay
    job: Any = None
    running: bool = False
    logs_at: float = 0.0  # when its logs are next read
    logs_every: float = 0.0
    done: bool = False
    queued: bool = field(default=True)  # not submitted yet


class _Poller:
    """Submits, follows and cancels every job of one run on one platform."""

    def __init__(self, launcher: RemoteLauncher, control: socket.socket) -> None:
        self.launcher, self.control = launcher, control
        self.tasks: dict[int, _Task] = {}  # stand-in socket fd -> task
        self.selector = selectors.DefaultSelector()
        self.interval = launcher.poll_interval()
        #: a task saves its logs every DEFAULT_LOG_INTERVAL seconds: reading them more
        #: often finds nothing new
        self.logs_interval = max(self.interval, DEFAULT_LOG_INTERVAL)
        self.next_poll = 0.0
        self.errors = 0
        self.pool = ThreadPoolExecutor(POLLER_THREADS, thread_name_prefix="remote-poller")
        #: requests taken from the runtime by the receiving thread; None: it has closed
        self.inbox: queue.SimpleQueue = queue.SimpleQueue()
        self.wake_r, self.wake_w = os.pipe()

    def serve(self) -> None:
        def stop(signum, frame):
            raise _Stop

        signal.signal(signal.SIGTERM, stop)
        self.selector.register(self.wake_r, selectors.EVENT_READ, None)
        threading.Thread(target=self._receive, name="remote-poller-inbox", daemon=True).start()
        try:
            while True:
                following = any(t.job is not None for t in self.tasks.values())
                timeout = max(0.0, self.next_poll - time.monotonic()) if following else None
                for key, _ in self.selector.select(timeout):
                    if key.data is None:
                        if not self._take_requests():
                            return self._cancel_all()
                    else:
                        self._stop_requested(key.data)
                self._submit_queued()
                if time.monotonic() >= self.next_poll:
                    self._poll()
        except _Stop:
            signal.signal(signal.SIGTERM, signal.SIG_IGN)
            self._cancel_all()

    # --- requests ----------------------------------------------------------------

    def _receive(self) -> None:
        """The receiving thread: takes the runtime's requests as they come, so that the
        runtime never waits for the poller to finish an API call."""
        while True:
            try:
                data, fds, _flags, _addr = socket.recv_fds(self.control, 1 << 20, 1)
            except OSError:
                data, fds = b"", []
            self.inbox.put((data, fds[0]) if data and fds else None)
            os.write(self.wake_w, b".")
            if not data:
                return

    def _take_requests(self) -> bool:
        """Adopt every task received so far; False once the runtime has closed."""
        os.read(self.wake_r, 4096)
        while True:
            try:
                item = self.inbox.get_nowait()
            except queue.Empty:
                return True
            if item is None:
                return False
            data, fd = item
            spec, plan, command, env, result_file = pickle.loads(data)
            sock = socket.socket(fileno=fd)
            relay = LogRelay(self.launcher, spec)
            task = _Task(sock, spec, plan, command, env, result_file, relay)
            relay.write = lambda stream, data, t=task: self._send(
                t, _STDOUT if stream == "stdout" else _STDERR, data
            )
            self.tasks[sock.fileno()] = task
            self.selector.register(sock, selectors.EVENT_READ, task)

    def _stop_requested(self, task: _Task) -> None:
        """The stand-in asked to stop, or is gone: cancel the job."""
        try:
            task.sock.recv(64)
        except OSError:
            pass
        self._cancel(task)

    def _cancel_all(self) -> None:
        tasks = list(self.tasks.values())
        for task, error in zip(tasks, self.pool.map(self._cancel_job, tasks)):
            self._cancelled(task, error)

    def _cancel(self, task: _Task) -> None:
        self._cancelled(task, self._cancel_job(task))

    def _cancel_job(self, task: _Task) -> Exception | None:
        if task.job is None:
            return None
        try:
            self.launcher.cancel(task.job)
        except Exception as e:  # noqa: BLE001 - reported, the run is stopping anyway
            return e
        return None

    def _cancelled(self, task: _Task, error: Exception | None) -> None:
        if error is not None:
            self._say(task, _STDERR, f"could not cancel the job: {type(error).__name__}: {error}")
        self._finish(task, 1, "stopped: the remote job was cancelled")

    # --- submitting and following ----------------------------------------------------

    def _submit_queued(self) -> None:
        queued = [t for t in self.tasks.values() if t.queued]
        for task, error in zip(queued, self.pool.map(self._submit, queued)):
            if error is not None:
                reason = (
                    f"could not submit the {self.launcher.name} job: "
                    f"{type(error).__name__}: {error}"
                )
                self._say(task, _STDERR, reason)
                self._finish(task, 1, reason)
                continue
            self._say(task, _STDOUT, self.launcher.submitted_note(task.job))
            task.logs_every = self.logs_interval

    def _submit(self, task: _Task) -> Exception | None:
        task.queued = False
        try:
            task.job = self.launcher.submit(task.spec, task.plan, task.command, task.env)
        except Exception as e:  # noqa: BLE001 - the platform refused or is unreachable
            return e
        return None

    def _poll(self) -> None:
        now = time.monotonic()
        self.next_poll = now + self.interval
        live = [t for t in self.tasks.values() if t.job is not None]
        if not live:
            return
        try:
            statuses = self.launcher.poll_all([t.job for t in live])
            self.errors = 0
        except Exception as e:  # noqa: BLE001 - a passing API error: ask again
            self.errors += 1
            if self.errors >= POLL_ERRORS_TOLERATED:
                reason = f"could not follow the {self.launcher.name} job: {type(e).__name__}: {e}"
                for task in live:
                    self._say(task, _STDERR, reason)
                    try:
                        self.launcher.cancel(task.job)
                    except Exception:  # noqa: BLE001 - it is reported already
                        pass
                    self._finish(task, 1, reason)
            return
        ended = []
        for task, status in zip(live, statuses):
            if status.note:
                self._say(task, _STDOUT, status.note)
            task.running = task.running or status.running
            if status.finished:
                ended.append((task, status))
        # the tasks saved their last logs before they ended: relay all of it
        list(self.pool.map(lambda t: t.relay.pump(), [task for task, _ in ended]))
        for task, status in ended:
            self._finish(task, 0 if status.exit_code == 0 else 1, status.reason)
        due = [t for t in live if not t.done and t.running and t.logs_at <= now]
        due.sort(key=lambda t: t.logs_at)
        due = due[:LOG_RELAYS_PER_POLL]
        for task, relayed in zip(due, self.pool.map(lambda t: t.relay.pump(), due)):
            if relayed:  # output arrives: keep streaming it promptly
                task.logs_every = self.logs_interval
            else:
                task.logs_every = min(
                    task.logs_every * POLL_BACKOFF, self.logs_interval * POLL_BACKOFF_CAP
                )
            task.logs_at = now + task.logs_every

    # --- talking to the stand-ins ----------------------------------------------------

    def _say(self, task: _Task, kind: bytes, line: str) -> None:
        self._send(task, kind, (line + "\n").encode())

    def _send(self, task: _Task, kind: bytes, data: bytes) -> None:
        try:
            task.sock.sendall(_FRAME.pack(kind, len(data)) + data)
        except OSError:
            pass  # the stand-in is gone: the runtime records the task without it

    def _finish(self, task: _Task, code: int, reason: str | None) -> None:
        if task.done:
            return
        task.done = True
        _write_result(task.result_file, reason)
        self._send(task, _EXIT, str(code).encode())
        self.selector.unregister(task.sock)
        del self.tasks[task.sock.fileno()]
        task.sock.close()


class LogRelay:
    """Relays what a remote task saved of its logs since the last call."""

    def __init__(self, launcher: RemoteLauncher, spec: TaskSpec) -> None:
        self.fds, self.spec = launcher.context.fds, spec
        self.offsets = {"stdout": 0, "stderr": 0}
        #: where relayed bytes go (``stream`` is "stdout" or "stderr"); replaceable
        self.write: Callable[..., object] = lambda stream, data: os.write(
            1 if stream == "stdout" else 2, data
        )

    def pump(self) -> int:
        """Relay what is new; the number of bytes relayed."""
        relayed = 0
        for stream in ("stdout", "stderr"):
            try:
                data = self.fds.read_log(self.spec.pathspec, self.spec.attempt, stream)
            except Exception:  # noqa: BLE001 - the next call tries again
                continue
            new = data[self.offsets[stream] :]
            if new:
                self.write(stream, new)
                self.offsets[stream] = len(data)
                relayed += len(new)
        return relayed


def _write_result(path: str, reason: str | None) -> None:
    tmp = path + ".tmp"
    try:
        with open(tmp, "w") as f:
            json.dump({"reason": reason}, f)
        os.replace(tmp, path)
    except OSError:
        pass  # the run's spool is gone: the runtime has recorded the task already
