"""How a task runs: the launcher interface, and the hook through which a step chooses one.

The scheduler (``runtime.py``) decides *what* runs next; a launcher decides *how* one
task runs. Whatever the launcher, the runtime sees the same thing: a local process
(its pid) whose stdout/stderr pipes carry the task's output and whose exit status is the
task's. Three kinds exist:

- ``fork`` (the default): the runtime forks and the child calls ``run_task`` directly,
  with the flow already imported.
- ``subprocess``: the child executes the task's ``step`` command line (see
  ``step_command.py``), possibly with another interpreter or environment.
- remote launchers (``RemoteLauncher`` in ``remote_launcher.py``; Kubernetes, Batch):
  the same ``step`` command runs on a cluster, submitted and followed by one poller
  process per run and platform; the local process is a small stand-in that writes the
  task's relayed logs and exits with the job's status. The remote task is
  *self-sufficient*: it saves its own logs and completion marker.

Launchers are found by name through the ``metaflowlike.launchers`` entry-point group,
the built-in ones included.

The step-decorator hook
-----------------------
Before each task starts, the runtime builds a :class:`LaunchPlan` - the launcher name
(``--launcher``, default ``fork``), the task's full ``step`` command line and the extra
environment from ``task_env`` - and passes it to every decorator of the step, in order::

    class MyDecorator(StepDecorator):
        def task_launch(self, *, plan: LaunchPlan, step_name: str) -> None:
            plan.launcher = "kubernetes"             # (a) choose how the step runs
            plan.command[0] = "/opt/venv/bin/python"  # (b) change interpreter/command
            plan.env["PYTHONHASHSEED"] = "0"          #     or environment

A decorator may also say which launcher its step uses before anything runs, by
overriding ``launcher_name()``; the runtime uses it to check the run up front (a remote
step needs a remote datastore). If the command was changed, the ``fork`` launcher cannot
honour it and the task runs through ``subprocess`` instead: no decorator needs to know.

The step's own Python environment
---------------------------------
A step whose tasks run in another Python environment (``--environment=pypi|uv``) is
given a :class:`StepEnvironment` before the decorators run. On this machine it replaces
the interpreter (``plan.command[0]``) and adds ``plan.local_env``, variables that only
make sense here (paths of this machine) and that no remote job receives. Its
``remote_wrapper`` goes to ``plan.remote_wrapper``: interpreter arguments (such as
``-m some.module ARGS --``) that a remote machine runs the step's own arguments
through, after it has unpacked the code package, to build the same environment there
and start the step in it. Remote launchers put it in the container command; local
ones ignore it. Anything else that must prepare a remote machine can use the same
field.
"""

from __future__ import annotations

import functools
import gc
import io
import os
import signal
import subprocess
import sys
import traceback
from abc import ABC, abstractmethod
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, NoReturn

from . import lifeline, plugins
from .datastore.records import ArtifactEntry
from .task import TaskSpec, run_task


@dataclass
class LaunchPlan:
    """How one task is about to be started; step decorators may change it."""

    launcher: str
    command: list[str]  # interpreter, flow file, top options, "step", step options
    env: dict[str, str] = field(default_factory=dict)  # added to the task's environment
    default_command: tuple[str, ...] = ()  # the command before any decorator changed it
    #: variables for a process on this machine only (never sent to a remote job)
    local_env: dict[str, str] = field(default_factory=dict)
    #: interpreter arguments a remote machine runs ``flow.py step ...`` through
    remote_wrapper: list[str] = field(default_factory=list)

    @property
    def command_changed(self) -> bool:
        return tuple(self.command) != self.default_command


@dataclass(frozen=True)
class StepEnvironment:
    """The Python environment a step's tasks run in instead of the runtime's own."""

    python: str  # its interpreter on this machine
    env: dict[str, str]  # what that interpreter needs on this machine (PYTHONPATH...)
    #: interpreter arguments that build the same environment on a remote machine and
    #: run the step's arguments (``flow.py ... step ...``) there, which follow them
    remote_wrapper: tuple[str, ...] = ()


@dataclass
class Started:
    """A launched task as the runtime tracks it: a local process and its pipes."""

    pid: int
    fds: dict[int, str]  # read end of a pipe -> "stdout" / "stderr"
    proc: subprocess.Popen | None = None
    result_file: str | None = None  # JSON the launcher leaves about the task's end


@dataclass
class LaunchContext:
    """What every launcher of one run may need; built once by the runtime."""

    flow_cls: type
    graph: Any
    fds: Any  # FlowDatastore
    params: dict[str, ArtifactEntry]
    with_decorators: list
    with_specs: list[str]
    flow_file: str
    top_args: list[str]
    spool: str  # folder for per-task scratch files of the runtime
    reporter: Any = None
    package_suffixes: tuple[str, ...] = (".py",)  # flow-dir files in the code package
    extras: dict[str, Any] = field(default_factory=dict)  # launchers' per-run memory
    #: finished tasks' records the runtime holds, by input path ("run_id/step/task_id"):
    #: a forked task takes its input's from here rather than reading it back (the
    #: parent of a fan-out, whose record each of its splits would read again)
    records: dict[str, Any] = field(default_factory=dict)


class Launcher(ABC):
    """Starts a task as a local process; subclasses say how."""

    name = ""
    #: the task saves its own logs and completion marker (no local supervisor needed)
    self_sufficient = False
    #: the task uses this machine's CPUs, memory and GPUs (counted against its capacity)
    uses_local_resources = True
    #: the runtime enforces ``@timeout`` by killing the local process at the deadline
    enforces_local_deadline = True

    def __init__(self, context: LaunchContext) -> None:
        self.context = context

    @classmethod
    def preflight(cls, *, fds: Any, steps: list[str]) -> None:
        """Refuse, before the run exists, what this launcher cannot do for ``steps``;
        local launchers accept everything."""
        return None

    @abstractmethod
    def start(self, spec: TaskSpec, plan: LaunchPlan, *, inherited_fds: list[int]) -> Started:
        """Start the task; ``inherited_fds`` are the runtime's own descriptors, which a
        forked child must close."""

    def close(self) -> None:
        """The run is over (every task it started has ended): release what the
        launcher holds for the whole run, such as a remote launcher's poller."""
        return None


#: the stream over which a forked task hands its record to the runtime
RECORD = "record"


class ForkLauncher(Launcher):
    """Fork the runtime: the child runs the task with everything already imported.

    The child does not write its task record: it hands it to the runtime over a
    third pipe (:data:`RECORD`), and the runtime stores it inside the completion marker,
    which it writes anyway. One file instead of two, and no attempt folder for a task
    that printed nothing: the cost per task that matters when tasks are trivial."""

    name = "fork"

    def start(self, spec: TaskSpec, plan: LaunchPlan, *, inherited_fds: list[int]) -> Started:
        ctx = self.context
        r_rec, w_rec = os.pipe()
        try:
            pid, fds = fork_task(
                lambda: run_task(
                    ctx.flow_cls,
                    ctx.graph,
                    spec,
                    ctx.fds,
                    ctx.params,
                    ctx.with_decorators,
                    hand_over=functools.partial(_hand_over, ctx.fds, w_rec),
                    known_inputs=ctx.records,
                ),
                {**plan.local_env, **plan.env},
                [*inherited_fds, r_rec],
            )
        except BaseException:
            os.close(r_rec)
            raise
        finally:
            os.close(w_rec)
        fds[r_rec] = RECORD
        return Started(pid, fds)


def _hand_over(fds: Any, fd: int, record: Any) -> None:
    """In a forked task: write the task's record to the runtime's pipe, whole, then
    close it (a record cut short by a kill is refused by the runtime)."""
    view = memoryview(fds.encode_task_info(record))
    try:
        while view:
            view = view[os.write(fd, view) :]
    finally:
        os.close(fd)


class SubprocessLauncher(Launcher):
    """Execute the task's ``step`` command line: the command a pod or a Batch job runs."""

    name = "subprocess"

    def start(self, spec: TaskSpec, plan: LaunchPlan, *, inherited_fds: list[int]) -> Started:
        proc = subprocess.Popen(
            plan.command,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
            # the task dies with the runtime, as a forked one does
            preexec_fn=functools.partial(lifeline.die_with_parent, os.getpid()),
            env={
                **os.environ,
                **plan.local_env,
                **plan.env,
                lifeline.RUNTIME_PID_ENV: str(os.getpid()),
            },
        )
        assert proc.stdout is not None and proc.stderr is not None  # both are PIPEs
        return Started(
            proc.pid, {proc.stdout.fileno(): "stdout", proc.stderr.fileno(): "stderr"}, proc
        )


def fork_task(body, env: dict[str, str], inherited_fds: list[int]) -> tuple[int, dict[int, str]]:
    """Fork a child in its own process group whose stdout/stderr are new pipes and which
    exits with 0 if ``body()`` returns True, 1 if False, 2 if it raises."""
    r_out, w_out = os.pipe()
    r_err, w_err = os.pipe()
    sys.stdout.flush()
    sys.stderr.flush()
    parent = os.getpid()
    # The child's garbage collector must not walk the objects it inherited: walking
    # writes to each object's header, copying every page the runtime owns (measured in
    # docs/benchmarks.md). Frozen objects are skipped by the child's collections; the
    # runtime unfreezes its own at once, so its garbage is still collected.
    gc.freeze()
    try:
        pid = os.fork()
    finally:
        if os.getpid() == parent:
            gc.unfreeze()
    if pid == 0:  # the task process
        code = 2
        try:
            os.setpgid(0, 0)
            signal.signal(signal.SIGINT, signal.SIG_DFL)
            # SIGTERM (from the runtime, or sent by the kernel when the runtime dies)
            # unwinds the task, then takes its whole process group down.
            lifeline.become_task(parent)
            os.dup2(w_out, 1)
            os.dup2(w_err, 2)
            for fd in (r_out, w_out, r_err, w_err):
                os.close(fd)
            close_inherited(inherited_fds)
            for stream in (sys.stdout, sys.stderr):
                if isinstance(stream, io.TextIOWrapper):
                    stream.reconfigure(line_buffering=True)
            os.environ.update(env)
            code = 0 if body() else 1
        except lifeline.TaskStopped:
            lifeline.end_stopped_task()
        except BaseException:
            traceback.print_exc()
        finally:
            exit_child(code)
    os.close(w_out)
    os.close(w_err)
    return pid, {r_out: "stdout", r_err: "stderr"}


def close_inherited(fds: Iterable[int]) -> None:
    """Close, in a forked child, the descriptors it inherited but must not hold (the
    pipes of other tasks: holding them would keep those tasks' readers from seeing EOF)."""
    for fd in fds:
        try:
            os.close(fd)
        except OSError:
            pass


def exit_child(code: int) -> NoReturn:
    """End a forked child: flush what it printed, then leave without running the
    parent's ``atexit`` handlers or finalisers, which are not the child's to run."""
    try:
        sys.stdout.flush()
        sys.stderr.flush()
    finally:
        os._exit(code)


def launcher_class(name: str) -> type[Launcher]:
    """The launcher registered as ``name`` in the ``metaflowlike.launchers`` group."""
    return plugins.load(plugins.LAUNCHERS, name, "launcher")


def step_launcher_name(decorators: list, default: str) -> str:
    """The launcher a step's decorators ask for up front, or ``default``. The first
    decorator that names one wins: the step's own come before those added with
    ``--with``, so ``@batch`` in the code wins over ``--with kubernetes``."""
    for deco in decorators:
        chosen = deco.launcher_name()
        if chosen:
            return chosen
    return default


def plan_task(
    spec: TaskSpec,
    decorators: list,
    *,
    default_launcher: str,
    command: list[str],
    interpreter: StepEnvironment | None = None,
) -> LaunchPlan:
    """Build the task's plan and let every decorator of its step adjust it.

    ``interpreter`` is the step's own Python environment (``--environment``); it
    replaces the runtime's interpreter before decorators run."""
    env: dict[str, str] = {}
    for deco in decorators:
        env.update(deco.task_env(step_name=spec.step_name))
    plan = LaunchPlan(
        launcher=step_launcher_name(decorators, default_launcher),
        command=list(command),
        env=env,
        default_command=tuple(command),
    )
    if interpreter is not None:
        plan.command[0] = interpreter.python
        plan.local_env.update(interpreter.env)
        plan.remote_wrapper = list(interpreter.remote_wrapper)
    for deco in decorators:
        deco.task_launch(plan=plan, step_name=spec.step_name)
    if plan.launcher == "fork" and plan.command_changed:
        plan.launcher = "subprocess"  # fork can only run the runtime's own interpreter
    return plan


def preflight_run(graph: Any, with_decorators: list, default_launcher: str, fds: Any) -> None:
    """Let each launcher the run will use refuse it before anything starts."""
    from .decorators import step_decorators

    steps: dict[str, list[str]] = {}
    for node in graph:
        name = step_launcher_name(step_decorators(node, with_decorators), default_launcher)
        steps.setdefault(name, []).append(node.name)
    for name, names in steps.items():
        launcher_class(name).preflight(fds=fds, steps=names)
