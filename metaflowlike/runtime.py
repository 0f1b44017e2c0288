"""The local scheduler: turns a flow graph into task processes, at most N at a time.

Each task is its own process, started by a launcher (``launchers.py``). By default the
runtime, which has already imported the flow and built its graph, *forks* a child per
task: the child starts in a millisecond with everything imported, yet keeps its own
memory, logs, process group (so a timeout or Ctrl-C kills it with its children) and
crash isolation. ``--launcher subprocess`` (or on platforms without fork) starts
``python flow.py step ...`` instead: the very command a pod or a Batch job runs. A step
decorator may pick another launcher for its step (``@kubernetes``), whose local process
then watches the remote task.

A step can need another interpreter: ``task_interpreter(step)`` (given by ``run.py``
from the run's environment plan, see ``metaflowlike.environments``) returns the
``StepEnvironment`` of that step's tasks, or None. A step with an interpreter
always starts as ``<that python> flow.py step ...``, whatever the launcher.

The scheduler prints nothing itself; it emits events to a reporter.
"""

from __future__ import annotations

import json
import os
import selectors
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import traceback
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from . import lifeline
from .datastore import scratch
from .datastore.local_storage import describe_os_error
from .datastore.records import ArtifactEntry, DoneMarker, TaskInfo
from .datastore.storage import StorageError
from .datastore.task_datastore import FlowDatastore, TaskRecord
from .decorators import StepDecorator, StepPolicy, step_decorators
from .environment_info import task_facts
from .exceptions import MetaflowlikeException
from .flowspec import FlowSpec
from .graph import FlowGraph
from .launchers import (
    RECORD,
    LaunchContext,
    Launcher,
    StepEnvironment,
    launcher_class,
    plan_task,
    step_launcher_name,
)
from .reporter import Reporter
from .step_command import task_command
from .task import TaskSpec, closes_foreach, completion_marker
from .task_supervisor import DEFAULT_LOG_INTERVAL, LOG_INTERVAL_ENV


@dataclass
class Worker:
    """One running task process and the logs it is producing."""

    spec: TaskSpec
    pid: int
    fds: dict[int, str]  # read end of pipe -> "stdout" / "stderr"
    logs: dict[str, Any]  # stream -> open spool file, opened at its first byte
    started: float
    deadline: float | None = None
    proc: subprocess.Popen | None = None
    partial: dict[str, bytearray] = field(default_factory=dict)
    exit_status: int | None = None
    killed_reason: str | None = None
    need: dict[str, float] = field(default_factory=dict)
    gpus: list[int] = field(default_factory=list)
    pidfd: int | None = None  # readable when the process exits (Linux)
    launcher: Launcher | None = None
    result_file: str | None = None  # what a launcher reports about the task's end
    uploaded: dict[str, int] = field(default_factory=dict)  # stream -> bytes saved so far
    upload_at: float = 0.0  # when its logs are next saved while it runs
    record: bytearray | None = None  # what a forked task handed over (launchers.RECORD)


@dataclass
class _Splits:
    """The tasks of a foreach fan-out that have not started, made one at a time as they
    start: the runtime holds one of these, not 10,000 ``TaskSpec`` objects, since every
    fork pays for the runtime's memory. Their task ids are reserved when it is queued."""

    step_name: str
    input_path: str
    first_id: int  # task id of split 0
    count: int
    done: int = 0  # splits already taken from the queue


class Runtime:
    def __init__(
        self,
        flow_cls: type[FlowSpec],
        graph: FlowGraph,
        fds: FlowDatastore,
        *,
        run_id: str,
        params: dict[str, ArtifactEntry],
        max_workers: int = 16,
        max_num_splits: int = 10000,
        user: str = "",
        tags: list[str] | None = None,
        namespace: str | None = None,
        with_decorators: list | None = None,
        reporter: Reporter | None = None,
        launcher: str = "fork",
        flow_file: str = "",
        top_args: list[str] | None = None,
        with_specs: list[str] | None = None,
        package_suffixes: tuple[str, ...] = (".py",),
        origin_run_id: str | None = None,
        task_interpreter: Callable[[str], StepEnvironment | None] | None = None,
    ) -> None:
        self.flow_cls, self.graph, self.fds = flow_cls, graph, fds
        self.flow_name = graph.name
        self.run_id = run_id
        self.params = params
        self.max_workers = max(1, max_workers)
        self.max_num_splits = max_num_splits
        self.user, self.tags, self.namespace = user, list(tags or []), namespace
        self.with_decorators = list(with_decorators or [])
        self.reporter = reporter or Reporter()
        self.launcher = launcher if hasattr(os, "fork") else "subprocess"
        self.flow_file = flow_file or sys.argv[0]
        self.top_args = list(top_args or [])
        self.with_specs = list(with_specs or [])
        self.launchers: dict[str, Launcher] = {}
        #: step -> (interpreter, variables) for a step that runs in its own Python
        #: environment (--environment=pypi|uv): such a task starts as a subprocess
        self.task_interpreter = task_interpreter
        self.origin_run_id = origin_run_id
        self.queue: deque[TaskSpec | _Splits] = deque()
        self.capacity = machine_capacity()
        self.used = {"cpu": 0.0, "memory": 0.0, "gpu": 0.0}
        self.free_gpus = list(range(int(self.capacity["gpu"])))
        self.running: dict[int, Worker] = {}
        self.joins: dict[tuple, dict[int, str]] = {}
        self.task_counter = 0
        self.failed: list[str] = []
        self.selector = selectors.DefaultSelector()
        lifeline.preload()  # once here, not in every forked task
        task_facts()  # likewise: what every task records about its interpreter
        spool_dir = fds.storage.spool_dir()
        # what killed runs and tasks left behind, here and in $TMPDIR (remote stores)
        self.swept = scratch.sweep([spool_dir, tempfile.gettempdir()])
        self.spool = scratch.mkdtemp(scratch.LOGS, dir=spool_dir)
        self.log_interval = float(os.environ.get(LOG_INTERVAL_ENV) or DEFAULT_LOG_INTERVAL)
        self.context = LaunchContext(
            flow_cls=flow_cls,
            graph=graph,
            fds=fds,
            params=params,
            with_decorators=self.with_decorators,
            with_specs=self.with_specs,
            flow_file=self.flow_file,
            top_args=self.top_args,
            spool=self.spool,
            reporter=self.reporter,
            package_suffixes=package_suffixes,
        )
        #: hook for resume: returns a finished record to reuse instead of running
        self.clone: Callable[[TaskSpec], Any] | None = None
        #: step caching (``metaflowlike.cache.StepCache``): lookup before, record after
        self.cache: Any = None

    # --- graph walking -------------------------------------------------------------

    def _new_task(self, step: str, inputs: list[str]) -> None:
        self.task_counter += 1
        self.queue.append(self._spec(step, inputs, None, self.task_counter))

    def _spec(
        self, step: str, inputs: list[str], split_index: int | None, task_id: int
    ) -> TaskSpec:
        decos = self._decorators(step)
        # a gang is not retried member by member (@parallel refuses its own @retry;
        # one added with --with does not apply to gang members)
        policy = StepPolicy.of(decos)
        retries = 0 if policy.gang else policy.max_retries
        return TaskSpec(
            flow_name=self.flow_name,
            run_id=self.run_id,
            step_name=step,
            task_id=str(task_id),
            input_paths=inputs,
            split_index=split_index,
            max_num_splits=self.max_num_splits,
            user=self.user,
            tags=self.tags,
            origin_run_id=self.origin_run_id,
            namespace=self.namespace,
            max_retries=retries,
        )

    def _pop(self) -> TaskSpec:
        """The next task of the queue, made now if it is one of a fan-out's splits."""
        head = self.queue[0]
        if isinstance(head, TaskSpec):
            self.queue.popleft()
            return head
        index = head.done
        head.done += 1
        if head.done == head.count:
            self.queue.popleft()
            # every split is made: a retried one reads the record back from the store
            self.context.records.pop(head.input_path, None)
        return self._spec(head.step_name, [head.input_path], index, head.first_id + index)

    def _in_gang(self, step: str) -> bool:
        """Tasks of a @parallel step run as a gang: started together, stopped together."""
        return StepPolicy.of(self._decorators(step)).gang

    def _successors(self, spec: TaskSpec, info: TaskInfo, marker: DoneMarker | None = None) -> None:
        """Queue what follows the finished task ``spec``; ``marker``: the one just
        written for it, if any (its record is then kept for the splits it fans out to)."""
        node = self.graph[spec.step_name]
        path = f"{spec.run_id}/{spec.step_name}/{spec.task_id}"
        stack = info.foreach_stack
        if node.type == "end":
            return
        if node.split_type == "foreach":
            n = info.foreach_num_splits or 0
            if n == 0:
                self._fail(
                    spec,
                    f'foreach="{node.foreach_param}" in step "{node.name}" produced no splits.',
                )
                return
            self.reporter.foreach_started(spec, node.out_funcs[0], n)
            if marker is not None and marker.task is not None:
                # the record a forked split would otherwise read back: the one just
                # stored (one per fan-out, dropped once its last split has started)
                self.context.records[path] = TaskRecord(spec.pathspec, spec.attempt, marker, info)
            self.queue.append(_Splits(node.out_funcs[0], path, self.task_counter + 1, n))
            self.task_counter += n
            return
        # a switch goes on with the one case its task picked
        outs = list(node.out_funcs)
        if node.is_switch:
            assert info.next_step is not None  # a switch's task that succeeded picked one
            outs = [info.next_step]
        for out in outs:
            target = self.graph[out]
            if not target.is_join:
                self._new_task(out, [path])
                continue
            if closes_foreach(self.graph, target):
                key = (out, tuple(f["index"] for f in stack[:-1]))
                slot, expected = stack[-1]["index"], stack[-1]["num_splits"]
            else:
                # one input per branch of the split it closes: after a switch inside a
                # branch, any of several steps may be the one that ends it
                key = (out, tuple(f["index"] for f in stack))
                assert target.matching_split is not None  # checked: a join closes a split
                branches = self.graph[target.matching_split].out_funcs
                branch = dict(target.join_branches)[spec.step_name]
                slot, expected = branches.index(branch), len(branches)
            arrived = self.joins.setdefault(key, {})
            arrived[slot] = path
            if len(arrived) == expected:
                del self.joins[key]
                self._new_task(out, [arrived[i] for i in sorted(arrived)])

    def _fail(self, spec: TaskSpec, message: str) -> None:
        self.failed.append(spec.pathspec)
        self.reporter.run_error(spec, message)

    # --- main loop -----------------------------------------------------------------

    def execute(self) -> bool:
        """Run the whole flow; True if every task succeeded."""
        self._new_task("start", [])
        interrupted = False
        old_term = signal.signal(signal.SIGTERM, _raise_interrupt)
        try:
            while self.queue or self.running:
                self._start_ready()
                if self.failed and not self.running:
                    break
                self._pump(timeout=0.5)
        except KeyboardInterrupt:
            interrupted = True
            self.reporter.interrupted()
            self._kill_all("interrupted (Ctrl-C)")
        except StorageError:
            # The datastore is out of reach or full: stop the tasks without trying to
            # record them (they stay invisible, so a resume reruns them) and report it
            # once.
            self._kill_all("the datastore cannot be written", record=False)
            raise
        finally:
            signal.signal(signal.SIGTERM, old_term)
            self._kill_all("the runtime stopped")
            for launcher in self.launchers.values():
                launcher.close()
            self.selector.close()
            shutil.rmtree(self.spool, ignore_errors=True)
        if interrupted:
            raise KeyboardInterrupt
        return not self.failed and not self.queue

    def _start_ready(self) -> None:
        """Launch queued tasks while workers and machine resources allow."""
        skipped: list[TaskSpec] = []
        while self.queue and not self.failed:
            # members of a gang may wait on one another: all of them start at once,
            # whatever the worker limit and the resources still free
            gang = self._in_gang(self.queue[0].step_name)
            if len(self.running) >= self.max_workers and not gang:
                break
            spec = self._pop()
            if self.clone is not None and self._try_clone(spec):
                continue
            if self.cache is not None and self._try_cache(spec):
                continue
            need = self._request(spec)
            if not gang and any(self.used[k] + need[k] > self.capacity[k] for k in need if need[k]):
                skipped.append(spec)  # waits for running tasks to free resources
                continue
            self._launch(spec, need)
        self.queue.extendleft(reversed(skipped))

    def _decorators(self, step: str) -> list:
        return step_decorators(self.graph[step], self.with_decorators)

    def _launcher(self, name: str) -> Launcher:
        if name not in self.launchers:
            self.launchers[name] = launcher_class(name)(self.context)
        return self.launchers[name]

    def _runs_here(self, step: str) -> bool:
        """True if the step's tasks use this machine's CPUs, memory and GPUs."""
        name = step_launcher_name(self._decorators(step), self.launcher)
        return self._launcher(name).uses_local_resources

    def _request(self, spec: TaskSpec) -> dict[str, float]:
        if not self._runs_here(spec.step_name):
            # runs elsewhere: its requests go to the remote platform
            return {"cpu": 0.0, "memory": 0.0, "gpu": 0.0}
        return _need(self._decorators(spec.step_name))

    def _try_clone(self, spec: TaskSpec) -> bool:
        assert self.clone is not None
        info = self.clone(spec)
        if info is None:
            return False
        self._successors(spec, info)
        return True

    def _try_cache(self, spec: TaskSpec) -> bool:
        info = self.cache.lookup(self, spec)
        if info is None:
            return False
        self._successors(spec, info)
        return True

    def _launch(self, spec: TaskSpec, need: dict[str, float]) -> None:
        self.reporter.task_started(spec)
        decos = self._decorators(spec.step_name)
        timeout = StepPolicy.of(decos).timeout_seconds
        command = task_command(sys.executable, self.flow_file, self.top_args, spec, self.with_specs)
        inside = self.task_interpreter(spec.step_name) if self.task_interpreter else None
        plan = plan_task(
            spec, decos, default_launcher=self.launcher, command=command, interpreter=inside
        )
        gpus = [self.free_gpus.pop(0) for _ in range(int(need["gpu"]))]
        if need["gpu"]:
            plan.env["CUDA_VISIBLE_DEVICES"] = ",".join(map(str, gpus))
        launcher = self._launcher(plan.launcher)
        started = launcher.start(
            spec, plan, inherited_fds=[k.fd for k in self.selector.get_map().values()]
        )
        pid, fds = started.pid, started.fds
        worker = Worker(spec, pid, fds, {}, time.time(), proc=started.proc, need=need, gpus=gpus)
        worker.upload_at = worker.started + self.log_interval
        worker.launcher, worker.result_file = launcher, started.result_file
        if RECORD in fds.values():
            worker.record = bytearray()
        for k, v in need.items():
            self.used[k] += v
        if timeout and launcher.enforces_local_deadline:
            worker.deadline = worker.started + timeout
        for fd, stream in fds.items():
            os.set_blocking(fd, False)
            self.selector.register(fd, selectors.EVENT_READ, (worker, stream))
        if hasattr(os, "pidfd_open"):
            try:
                worker.pidfd = os.pidfd_open(pid)
                self.selector.register(worker.pidfd, selectors.EVENT_READ, (worker, "exit"))
            except OSError:
                worker.pidfd = None
        self.running[pid] = worker

    def _pump(self, timeout: float) -> None:
        """Move log bytes from pipes to spool files and the console; reap exits.

        A task's exit is seen through a pidfd in the same select() as its pipes, so the
        runtime reacts to a finished task at once instead of polling for it."""
        events = self.selector.select(timeout=self._tick(timeout))
        for key, _ in events:
            worker, stream = key.data
            if stream == "exit":
                self.selector.unregister(key.fd)
                os.close(key.fd)
                worker.pidfd = None
                worker.exit_status = _poll(worker, block=True)
            else:
                self._read(worker, key.fd, stream)
        now = time.time()
        for worker in list(self.running.values()):
            if worker.deadline and now > worker.deadline and worker.exit_status is None:
                if worker.killed_reason is None:  # stop it gracefully, then for good
                    worker.killed_reason = (
                        f"timed out after {worker.deadline - worker.started:.0f} seconds"
                    )
                    _killpg(worker.pid, signal.SIGTERM)
                    worker.deadline = now + lifeline.STOP_GRACE + 1
                else:
                    _killpg(worker.pid, signal.SIGKILL)
            if worker.exit_status is None and worker.pidfd is None:
                worker.exit_status = _poll(worker)
            if worker.exit_status is None:
                if now >= worker.upload_at:
                    self._upload_logs(worker, now)
                continue
            # The task exited: everything it wrote is in the pipes already.
            for fd, stream in list(worker.fds.items()):
                self._read(worker, fd, stream)
            if worker.fds:  # a child of the task still holds the pipes: stop it too
                _killpg(worker.pid, signal.SIGKILL)
                for fd in list(worker.fds):
                    self._close(worker, fd)
            self._finish(worker)

    def _upload_logs(self, worker: Worker, now: float) -> None:
        """Save the logs of a task that is still running, every ``log_interval``
        seconds while it writes: ``logs`` and the run browser follow it. The first save
        also makes the running attempt visible. A task whose launcher saves its own
        logs (a remote one) is left alone."""
        worker.upload_at = now + self.log_interval
        if worker.launcher is not None and worker.launcher.self_sufficient:
            return
        for stream in ("stdout", "stderr"):  # a silent task too is seen as running
            if stream not in worker.logs:
                self._spool_log(worker, stream, b"")
        for stream, f in worker.logs.items():
            if worker.uploaded.get(stream) == f.tell():
                continue
            try:
                f.flush()
                copy = f"{f.name}.up"
                shutil.copyfile(f.name, copy)
                self.fds.write_log(worker.spec.pathspec, worker.spec.attempt, stream, copy)
                worker.uploaded[stream] = f.tell()
            except (OSError, StorageError):
                pass  # a missed interim save is not fatal: the final one follows
            finally:
                if os.path.exists(f"{f.name}.up"):
                    os.unlink(f"{f.name}.up")

    def _tick(self, timeout: float) -> float:
        if any(w.pidfd is None and w.exit_status is None for w in self.running.values()):
            timeout = min(timeout, 0.005)  # no pidfd on this platform: poll for exits
        if self.running:  # wake up for the next interim save of a running task's logs
            upload = min(w.upload_at for w in self.running.values())
            timeout = max(0.0, min(timeout, upload - time.time()))
        deadlines = [w.deadline for w in self.running.values() if w.deadline]
        if deadlines:
            timeout = max(0.0, min(timeout, min(deadlines) - time.time()))
        return timeout

    def _read(self, worker: Worker, fd: int, stream: str) -> None:
        while True:
            try:
                data = os.read(fd, 65536)
            except BlockingIOError:
                return
            if not data:
                self._close(worker, fd)
                return
            if stream == RECORD:
                assert worker.record is not None  # made with the pipe, in _launch
                worker.record += data
                continue
            self._spool_log(worker, stream, data)
            self.reporter.task_output(worker.spec, stream, data, worker.partial)

    def _spool_log(self, worker: Worker, stream: str, data: bytes) -> None:
        """Append ``data`` to the task's spooled ``stream``. The spool file is created at
        the first byte: a silent stream costs no file, and no log is stored for it (a
        missing log reads as empty)."""
        spec = worker.spec
        f = worker.logs.get(stream)
        path = f.name if f else os.path.join(self.spool, f"{spec.task_id}.{spec.attempt}.{stream}")
        try:
            if f is None:
                f = worker.logs[stream] = open(path, "wb")
            f.write(data)
        except OSError as e:
            raise _spool_error(spec, path, e) from None

    def _close(self, worker: Worker, fd: int) -> None:
        self.selector.unregister(fd)
        del worker.fds[fd]
        if worker.proc is None:
            os.close(fd)  # our own pipe end
        elif not worker.fds:
            for pipe in (worker.proc.stdout, worker.proc.stderr):
                if pipe is not None:
                    pipe.close()  # Popen owns its pipe ends

    def _finish(self, worker: Worker) -> None:
        del self.running[worker.pid]
        for k, v in worker.need.items():
            self.used[k] -= v
        self.free_gpus.extend(worker.gpus)
        spec = worker.spec
        self.reporter.task_output_flush(spec, worker.partial)
        result = _read_result(worker.result_file)
        # A self-sufficient task saved its own logs and marker; only a task that never
        # got that far (killed, never scheduled) is recorded here, from what we saw.
        marker = None
        if worker.launcher is not None and worker.launcher.self_sufficient:
            marker = self.fds.read_marker(spec.pathspec, spec.attempt, warn=True)
        death = _death_line(worker)
        if death and marker is None:
            self._spool_log(worker, "stderr", death.encode())
        for stream, f in worker.logs.items():
            try:
                f.close()
            except OSError as e:
                raise _spool_error(spec, f.name, e) from None
            if marker is None:
                self.fds.write_log(spec.pathspec, spec.attempt, stream, f.name)
            if os.path.exists(f.name):
                os.unlink(f.name)
        handed = None  # the record a forked task handed over, stored in its marker
        if worker.record is not None:
            handed = self.fds.decode_task_info(worker.record) if worker.record else None
            info = handed or TaskInfo()
        else:
            info = self.fds.read_task_info(spec.pathspec, spec.attempt, warn=True) or TaskInfo()
        if marker is None:
            marker = completion_marker(
                spec,
                info,
                exit_status=worker.exit_status,
                started=worker.started,
                reason=worker.killed_reason or result.get("reason"),
            )
            self.fds.mark_done(
                spec.pathspec, spec.attempt, marker, worker.record if handed else None
            )
            marker.task = handed
        if self.cache is not None:
            self.cache.finished(spec, info, marker)  # indexed only after its marker
        if marker.status == "ok":
            self.reporter.task_finished(spec, worker.started)
            self._successors(spec, info, marker)
        elif spec.attempt < spec.max_retries:
            # at once, as Metaflow's local runtime does (minutes_between_retries is
            # for remote schedulers)
            self.reporter.task_retry(spec, marker.reason)
            spec.attempt += 1
            self.queue.appendleft(spec)
        elif (
            not spec.catch_fallback
            and StepPolicy.of(self._decorators(spec.step_name)).handles_crash
        ):
            # The task died before @catch could act inside it (killed, timed out hard,
            # out of memory): one more attempt records the failure without user code.
            self.reporter.task_retry(spec, marker.reason)
            spec.attempt += 1
            spec.catch_fallback = marker.reason or "the task process died"
            self.queue.appendleft(spec)
        else:
            self.failed.append(spec.pathspec)
            self.reporter.task_failed(spec, marker.reason, info.exception)
            if self._in_gang(spec.step_name):
                self._stop_gang(spec)

    def _stop_gang(self, failed: TaskSpec) -> None:
        """Kill the members of ``failed``'s gang still running: they could wait for it
        forever (a barrier, a collective)."""
        for worker in self.running.values():
            other = worker.spec
            if (
                other.step_name == failed.step_name
                and other.input_paths == failed.input_paths
                and worker.exit_status is None
            ):
                worker.killed_reason = f"task {failed.task_id} of its gang failed"
                _killpg(worker.pid, signal.SIGKILL)

    def _kill_all(self, reason: str, record: bool = True) -> None:
        """Stop every running task (with its children) and record the attempts as failed."""
        if not self.running:
            return
        for worker in self.running.values():
            _killpg(worker.pid, signal.SIGTERM)
        deadline = time.time() + lifeline.STOP_GRACE + 1  # each task ends itself within STOP_GRACE
        while time.time() < deadline:
            for w in self.running.values():
                w.exit_status = _poll(w)
            if all(w.exit_status is not None for w in self.running.values()):
                break
            time.sleep(0.02)
        for worker in list(self.running.values()):
            _killpg(worker.pid, signal.SIGKILL)
            if worker.exit_status is None:
                worker.exit_status = _poll(worker, block=True)
            if worker.pidfd is not None:
                self.selector.unregister(worker.pidfd)
                os.close(worker.pidfd)
                worker.pidfd = None
            worker.killed_reason = reason
            for fd in list(worker.fds):
                try:
                    self._read(worker, fd, worker.fds[fd])
                except (OSError, KeyError, StorageError):
                    pass
                if fd in worker.fds:
                    self._close(worker, fd)
            worker.spec.max_retries = 0
            if not record:
                self._forget(worker)
                continue
            try:
                self._finish(worker)
            except StorageError:
                record = False  # the store failed: record none of the others either
                self._forget(worker)
            except Exception:
                traceback.print_exc()

    def _forget(self, worker: Worker) -> None:
        """Drop a stopped task without recording it: a resume reruns it."""
        self.running.pop(worker.pid, None)
        for f in worker.logs.values():
            try:
                f.close()
            except OSError:
                pass  # its spool folder is removed as a whole at the end


def _death_line(worker: Worker) -> str | None:
    """The line a task killed from outside gets at the end of its stderr, so that its
    logs (and the client) say why it stopped when the process could not say it itself."""
    status = worker.exit_status
    if worker.killed_reason:
        return f"\n[metaflowlike] The task was stopped: {worker.killed_reason}.\n"
    if status is None or status >= 0:
        return None
    try:
        name = signal.Signals(-status).name
    except ValueError:
        name = f"signal {-status}"
    return f"\n[metaflowlike] The task process was killed by signal {-status} ({name}).\n"


def _read_result(path: str | None) -> dict:
    """The launcher's note about how the task ended (reason...), if it left one."""
    if not path:
        return {}
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, ValueError):
        return {}
    finally:
        try:
            os.unlink(path)
        except OSError:
            pass


def _need(decorators: list) -> dict[str, float]:
    """What a step's decorators ask of the machine, per resource."""
    need = {"cpu": 0.0, "memory": 0.0, "gpu": 0.0}
    for deco in decorators:
        for k, v in deco.resources().items():
            if k in need:  # what this machine has; a platform counts the rest (disk)
                need[k] = max(need[k], v)
    return need


def check_resources(
    graph: FlowGraph,
    with_decorators: list[StepDecorator] | None = None,
    default_launcher: str = "fork",
) -> None:
    """Refuse up front a step that asks for more than this machine has (before the run
    exists: a refused run leaves nothing behind). A step that runs elsewhere
    (``@kubernetes``) asks its platform, not this machine."""
    capacity = machine_capacity()
    for node in graph:
        decorators = step_decorators(node, with_decorators or [])
        name = step_launcher_name(decorators, default_launcher)
        if not launcher_class(name).uses_local_resources:
            continue
        for k, v in _need(decorators).items():
            if v > capacity[k]:
                unit = " MB" if k == "memory" else ""
                raise MetaflowlikeException(
                    f'Step "{node.name}" asks for {k}={v:g}{unit} but this machine has '
                    f"{capacity[k]:g}{unit}. Lower the @resources request or run the "
                    f"step remotely (e.g. --with kubernetes)."
                )


def _spool_error(spec: TaskSpec, path: str, e: OSError) -> StorageError:
    return StorageError(
        f"Cannot keep the output of task {spec.pathspec} in {path}: {describe_os_error(e)}. "
        "The run was stopped; make room and `resume` it."
    )


def _raise_interrupt(signum, frame):
    raise KeyboardInterrupt


def machine_capacity() -> dict[str, float]:
    """CPUs, memory (MB) and GPUs of this machine; METAFLOWLIKE_LOCAL_{CPUS,MEMORY,GPUS}
    override the detection (e.g. to keep a share of the machine free)."""
    cpus = float(os.cpu_count() or 1)
    try:
        memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**20
    except (ValueError, OSError, AttributeError):
        memory = 4096.0
    env = os.environ
    return {
        "cpu": float(env.get("METAFLOWLIKE_LOCAL_CPUS", cpus)),
        "memory": float(env.get("METAFLOWLIKE_LOCAL_MEMORY", memory)),
        "gpu": float(env.get("METAFLOWLIKE_LOCAL_GPUS", _count_gpus())),
    }


def _count_gpus() -> int:
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    if visible is not None:
        return len([d for d in visible.split(",") if d.strip()])
    try:
        out = subprocess.run(
            ["nvidia-smi", "--list-gpus"], capture_output=True, text=True, timeout=5
        )
    except (OSError, subprocess.SubprocessError):
        return 0
    return len([line for line in out.stdout.splitlines() if line.startswith("GPU")])


def _killpg(pid: int, sig: int) -> None:
    try:
        os.killpg(pid, sig)
    except (ProcessLookupError, PermissionError):
        pass


def _poll(worker: Worker, block: bool = False) -> int | None:
    """Exit status (negative: killed by that signal) or None while running."""
    if worker.exit_status is not None:
        return worker.exit_status
    if worker.proc is not None:
        return worker.proc.wait() if block else worker.proc.poll()
    try:
        pid, status = os.waitpid(worker.pid, 0 if block else os.WNOHANG)
    except ChildProcessError:
        return -1
    if pid == 0:
        return None
    return os.waitstatus_to_exitcode(status)


def new_run_id(fds: FlowDatastore, flow_name: str) -> str:
    """A run id: microseconds since the epoch, claimed atomically in the datastore, so
    unique even for runs started together (on any backend)."""
    candidate = int(time.time() * 1e6)
    while not fds.claim_run(flow_name, str(candidate)):
        candidate += 1
    return str(candidate)
