"""Per run: which environment each step runs in, resolved and built before any task.

``plan_environments`` turns ``--environment`` and the flow's ``@pypi``/``@pypi_base``
declarations into a lock per step (resolving only what the cache lacks, and reusing
the origin run's locks on resume), ``EnvironmentPlan.build`` makes sure every
distinct environment exists, and ``EnvironmentPlan.launch`` tells the runtime how to
start a step's task inside its environment. ``record`` is what the run saves, so the
client can say what each task ran with and a remote machine can rebuild it.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from ..datastore.records import RunRecord
from ..exceptions import MetaflowlikeException
from ..launchers import StepEnvironment
from .build import ensure_built, env_python, is_built, shim_dir
from .lock import Lock, resolve
from .request import EnvRequest, runtime_requirements, step_request, uses_pypi


class UnsupportedEnvironment(MetaflowlikeException):
    headline = "Unsupported environment"


class PypiNotEnabled(MetaflowlikeException):
    headline = "@pypi needs --environment=pypi"


@dataclass
class EnvironmentPlan:
    kind: str
    locks: dict[str, Lock] = field(default_factory=dict)  # step -> lock
    requests: dict[str, EnvRequest] = field(default_factory=dict)
    flow: str = ""  # the flow's name, under which the run record holds the locks
    #: steps that run on another machine: their environments are built there, not here
    remote_steps: frozenset[str] = frozenset()
    _launch: dict[str, StepEnvironment] = field(default_factory=dict, repr=False)

    def record(self) -> dict[str, Any] | None:
        if not self.locks:
            return None
        return {
            "type": self.kind,
            "steps": {step: lock.key for step, lock in self.locks.items()},
            "locks": {lock.key: lock.to_dict() for lock in self.locks.values()},
        }

    def build(self, say: Callable[[str], None] = lambda s: None) -> None:
        """Build every environment a step running on this machine needs that the cache
        does not have yet."""
        done: set[str] = set()
        for step, lock in self.locks.items():
            if lock.key in done or step in self.remote_steps:
                continue
            done.add(lock.key)
            if not is_built(lock.key):
                pins = ", ".join(f"{k}=={v}" for k, v in lock.packages().items())
                say(f"Building environment {lock.key[:12]} for step {step} ({pins})...")
                ensure_built(lock)

    def launch(self, step: str) -> StepEnvironment | None:
        """How a task of ``step`` starts in its environment, here and on a remote
        machine (which rebuilds it from the saved lock), or None when the step runs in
        the flow's own interpreter."""
        lock = self.locks.get(step)
        if lock is None:
            return None
        if step not in self._launch:
            from .bootstrap import remote_wrapper  # it reads saved locks with this module

            if step in self.remote_steps:
                # the launcher sends only the step's arguments and the wrapper: the
                # interpreter and variables of this machine stay unused and unbuilt
                self._launch[step] = StepEnvironment(sys.executable, {}, remote_wrapper(self.flow))
            else:
                python = env_python(ensure_built(lock))
                code = shim_dir() or _code_path()
                self._launch[step] = StepEnvironment(
                    python,
                    {"PYTHONPATH": code, "PYTHONNOUSERSITE": "1"},
                    remote_wrapper(self.flow),
                )
        return self._launch[step]


def plan_environments(
    kind: str,
    flow_cls: type,
    graph: Any,
    extra_decorators: list,
    *,
    datastore: str,
    flow_file: str,
    origin: RunRecord | None = None,
    force: bool = False,
    command: str = "run",
) -> EnvironmentPlan:
    """Check the declarations against ``kind`` and resolve a lock per step
    (``command``, e.g. ``step-functions create``, is named in the messages).

    Every mistake (an ``@pypi`` without --environment=pypi, an unknown package, an
    unsatisfiable set, a missing Python) is raised here, before a run id exists."""
    if kind == "conda":
        raise UnsupportedEnvironment(
            "--environment=conda is not supported: metaflowlike builds per-step environments "
            "from PyPI packages with uv. Use @pypi/@pypi_base with --environment=pypi (or "
            "--environment=uv to use your project's pyproject.toml and uv.lock); for "
            "packages that only exist on conda channels, install them in the image or "
            "interpreter that runs the flow and use --environment=local."
        )
    declared = uses_pypi(flow_cls, graph, extra_decorators)
    if kind == "local":
        if declared and _any_enabled(flow_cls, graph, extra_decorators, datastore):
            raise PypiNotEnabled(
                f"{declared[0][0].upper()}{declared[0][1:]} declares packages with @pypi, "
                f"which only takes "
                f"effect with the pypi environment: run `python "
                f"{os.path.basename(flow_file)} --environment=pypi {command}` (or remove "
                f"@pypi)."
            )
        return EnvironmentPlan(kind)
    plan = EnvironmentPlan(kind, flow=graph.name)
    if kind == "uv":
        if declared:
            raise MetaflowlikeException(
                f"--environment=uv takes every package from the project's pyproject.toml "
                f"and uv.lock, but {declared[0]} declares @pypi. Remove the @pypi "
                f"decorators, or run with --environment=pypi instead."
            )
        project = find_uv_project(flow_file)
        request = EnvRequest(
            runtime_requirements(datastore),
            None,
            f"the uv project {project}",
            project=project,
        )
        for node in graph:
            plan.requests[node.name] = request
    else:
        for node in graph:
            asked = step_request(flow_cls, node, extra_decorators, datastore)
            if asked is not None:
                plan.requests[node.name] = asked
    saved = _saved_locks(origin)
    resolved: dict[str, Lock] = {}
    for step, request in plan.requests.items():
        digest = request.digest()
        if digest not in resolved:
            reuse = saved.get(step)
            if reuse is not None and reuse.request == digest and not force:
                resolved[digest] = reuse  # resume: exactly what the origin run used
            else:
                resolved[digest] = resolve(request, force=force)
        plan.locks[step] = resolved[digest]
    return plan


def _any_enabled(flow_cls, graph, extra_decorators, datastore) -> bool:
    from ..decorators import step_decorators
    from .pypi_decorator import BASE_ATTRIBUTE, PypiDecorator

    base = getattr(flow_cls, BASE_ATTRIBUTE, None)
    if base is not None and not base.get("disabled"):
        return True
    return any(
        isinstance(d, PypiDecorator) and not d.attributes.get("disabled")
        for node in graph
        for d in step_decorators(node, extra_decorators)
    )


def _saved_locks(record: RunRecord | None) -> dict[str, Lock]:
    env = _saved_environment(record)
    locks = env.get("locks") or {}
    return {
        step: Lock.from_dict(locks[key])
        for step, key in (env.get("steps") or {}).items()
        if key in locks
    }


def _saved_environment(record: RunRecord | None) -> dict[str, Any]:
    return (record.environment if record is not None else None) or {}


def saved_lock(record: RunRecord | None, step: str) -> dict[str, Any] | None:
    """The lock a run saved for ``step`` (what the client shows), or None."""
    return lock_in(_saved_environment(record), step)


def lock_in(env: dict[str, Any], step: str) -> dict[str, Any] | None:
    """The lock of ``step`` in an environment record (``EnvironmentPlan.record``)."""
    key = (env.get("steps") or {}).get(step)
    lock = (env.get("locks") or {}).get(key) if key else None
    return dict(lock, type=env.get("type")) if lock else None


def find_uv_project(flow_file: str) -> str:
    """The nearest folder at or above the flow file holding pyproject.toml + uv.lock."""
    start = os.path.dirname(os.path.abspath(flow_file))
    here = start
    while True:
        if os.path.exists(os.path.join(here, "pyproject.toml")):
            if os.path.exists(os.path.join(here, "uv.lock")):
                return here
            raise MetaflowlikeException(
                f"--environment=uv found {os.path.join(here, 'pyproject.toml')} but no uv.lock "
                f"beside it: run `uv lock` in {here} first."
            )
        parent = os.path.dirname(here)
        if parent == here:
            raise MetaflowlikeException(
                f"--environment=uv needs a uv project: no pyproject.toml with a uv.lock in "
                f"{start} or any folder above it. Create one with `uv init` and `uv add "
                f"PACKAGE`, or use @pypi with --environment=pypi."
            )
        here = parent


def _code_path() -> str:
    """Where metaflowlike is imported from when it is not installed (a code package)."""
    import metaflowlike

    return os.path.dirname(os.path.dirname(os.path.abspath(metaflowlike.__file__)))
