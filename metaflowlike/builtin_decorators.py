"""The standard step decorators: resources, environment, retry, catch, timeout.

They register through entry points like any third-party decorator (see
``pyproject.toml``) and only use the public hooks of ``StepDecorator``.
"""

from __future__ import annotations

import signal
import traceback
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from .decorators import StepDecorator, TaskContext
from .exceptions import MetaflowlikeException

if TYPE_CHECKING:
    from .flowspec import FlowSpec
    from .graph import FlowGraph


class ResourcesDecorator(StepDecorator):
    """What a task needs: ``@resources(cpu=2, memory=4096, gpu=1)`` (memory in MB).

    Unlike Metaflow, the local scheduler honours it: tasks whose summed requests would
    exceed the machine's CPUs, memory or GPUs wait, and a GPU task gets its own devices."""

    name = "resources"
    defaults = {"cpu": 1, "memory": 4096, "gpu": 0, "disk": None, "shared_memory": None}

    def resources(self) -> dict[str, float]:
        # what is set; the local scheduler counts cpu, memory and gpu, platforms disk too
        return {
            k: float(v)
            for k in ("cpu", "memory", "gpu", "disk")
            if (v := self.attributes[k]) is not None
        }


class EnvironmentDecorator(StepDecorator):
    """Set environment variables in the task's process: ``@environment(vars={...})``."""

    name = "environment"
    defaults = {"vars": {}}

    def task_env(self, *, step_name: str) -> dict[str, str]:
        return {str(k): str(v) for k, v in (self.attributes["vars"] or {}).items()}


class RetryDecorator(StepDecorator):
    """Run a failed task again: ``@retry(times=3, minutes_between_retries=2)``.

    The local runtime retries at once, as Metaflow's does: ``minutes_between_retries``
    is accepted (so flows port unchanged) but a local retry never waits for it, which
    would turn a one-second flaky step into a two-minute run."""

    name = "retry"
    defaults = {"times": 3, "minutes_between_retries": 2}

    def step_init(self, *, flow_cls: type[FlowSpec], graph: FlowGraph, step_name: str) -> None:
        times = self.attributes["times"]
        if not isinstance(times, int) or not 0 <= times <= 100:
            raise MetaflowlikeException(
                f'@retry on step "{step_name}": times must be an integer from 0 to 100.'
            )

    def max_retries(self) -> int:
        return int(self.attributes["times"])

    def retry_delay_seconds(self) -> float:
        return float(self.attributes["minutes_between_retries"] or 0) * 60


def qualified_name(exc_type: type) -> str:
    """``module.Class`` of an exception type, as Metaflow records it (``builtins.KeyError``,
    ``mylib.MyError``), so code comparing ``.type`` ports unchanged."""
    return f"{exc_type.__module__}.{exc_type.__qualname__}"


class CaughtException:
    """What ``@catch`` stores, with the fields of Metaflow's record: ``type`` (module
    qualified), ``exception`` (the message only) and ``stacktrace``. Picklable even when
    the original exception is not, since only strings are kept."""

    def __init__(self, exc_type: str, message: str, stacktrace: str | None) -> None:
        self.type, self.exception, self.stacktrace = exc_type, message, stacktrace

    def __str__(self) -> str:
        if self.stacktrace:
            return self.stacktrace
        return f"[no stacktrace]\n{self.type}: {self.exception}"

    def __repr__(self) -> str:
        return f"CaughtException({self.type}: {self.exception!r})"


class FailureHandledByCatch(MetaflowlikeException):
    """Recorded by ``@catch`` when the task process died (killed, out of memory, timed
    out hard) without raising: there was no exception of the user's to record."""

    headline = "Task execution failed but @catch handled it"


class CatchDecorator(StepDecorator):
    """Once retries are exhausted, store the exception and let the run go on:
    ``@catch(var='error', print_exception=True)``."""

    name = "catch"
    defaults = {"var": None, "print_exception": True}

    def step_init(self, *, flow_cls: type[FlowSpec], graph: FlowGraph, step_name: str) -> None:
        if graph[step_name].is_switch:  # as in Metaflow: no case to go on with
            raise MetaflowlikeException(
                f'@catch cannot be used on the switch step "{step_name}": a caught failure '
                "leaves no condition value to pick the next step. Catch in the steps of "
                "its cases instead."
            )

    def task_exception(self, *, task: TaskContext, exception: BaseException) -> bool:
        if task.retry_count < task.max_retries:
            return False
        self.record(
            task.flow, qualified_name(type(exception)), str(exception), traceback.format_exc()
        )
        return True

    def handles_crash(self) -> bool:
        return True

    def record(self, flow: Any, exc_type: str, message: str, tb: str) -> None:
        if self.attributes["print_exception"]:
            print(f"@catch caught {exc_type}: {message}\n{tb}", flush=True)
        var = self.attributes["var"]
        if var:
            flow.__dict__[var] = CaughtException(exc_type, message, tb)


class TimeoutException(MetaflowlikeException):
    headline = "Step timed out"


class TimeoutDecorator(StepDecorator):
    """Fail a task that runs too long: ``@timeout(seconds=, minutes=, hours=)``.

    The task gets a ``TimeoutException`` raised in it at the limit (so ``@retry`` and
    ``@catch`` apply); if it does not stop within a few more seconds (stuck in C code),
    the runtime kills its whole process group."""

    name = "timeout"
    defaults = {"seconds": 0, "minutes": 0, "hours": 0}
    GRACE = 5.0

    def limit(self) -> float:
        a = self.attributes
        return (
            float(a["seconds"] or 0) + 60 * float(a["minutes"] or 0) + 3600 * float(a["hours"] or 0)
        )

    def step_init(self, *, flow_cls: type[FlowSpec], graph: FlowGraph, step_name: str) -> None:
        if self.limit() <= 0:
            raise MetaflowlikeException(f'@timeout on step "{step_name}" needs a positive limit.')

    def timeout_seconds(self) -> float | None:
        return self.limit() + self.GRACE

    def task_decorate(self, func: Callable[[], None], *, task: TaskContext) -> Callable[[], None]:
        limit, step_name = self.limit(), task.step_name

        def on_alarm(signum: int, frame: object) -> None:
            raise TimeoutException(f'Step "{step_name}" timed out after {limit:g} seconds.')

        def run() -> None:
            old = signal.signal(signal.SIGALRM, on_alarm)
            signal.setitimer(signal.ITIMER_REAL, limit)
            try:
                func()
            finally:
                signal.setitimer(signal.ITIMER_REAL, 0)
                signal.signal(signal.SIGALRM, old)

        return run
