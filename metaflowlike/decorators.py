"""Step decorators: the base class, the task context, the ``@step`` marker and ``--with``.

A step decorator is a class with a ``name`` and ``defaults``; its hooks take keyword-only
arguments so that new ones can be added without breaking anybody. Built-in decorators
and third-party ones register the same way, through the ``metaflowlike.step_decorators``
entry-point group, and user code may subclass ``StepDecorator`` and apply it directly.
``docs/extending.md`` walks through writing one.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from .exceptions import MetaflowlikeException, UnknownDecorator, did_you_mean

if TYPE_CHECKING:
    from .datastore.task_datastore import FlowDatastore
    from .flowspec import FlowSpec
    from .graph import FlowGraph, StepNode
    from .launchers import LaunchPlan


@dataclass(frozen=True)
class TaskContext:
    """The task a task-side hook runs for, passed to every such hook.

    Everything a decorator may need about its task is here, so that none has to read
    the runtime's globals: the flow object (its artifacts), the graph, which attempt
    this is, and the datastore the task writes to."""

    flow: FlowSpec
    graph: FlowGraph
    step_name: str
    run_id: str
    task_id: str
    #: this attempt, from 0, and how many more the runtime may make after a failure
    retry_count: int
    max_retries: int
    datastore: FlowDatastore
    #: on resume, the origin run's task (``flow/run/step/task``) this one replaces
    origin_task: str | None = None
    #: a join's ``inputs`` (None for other steps, and before the inputs are loaded)
    inputs: Any = None

    @property
    def flow_name(self) -> str:
        return self.graph.name

    @property
    def node(self) -> StepNode:
        return self.graph[self.step_name]

    @property
    def pathspec(self) -> str:
        return f"{self.graph.name}/{self.run_id}/{self.step_name}/{self.task_id}"


class StepDecorator:
    """Base class; override the hooks you need.

    How the decorators of one step combine (the step's own, bottom to top, then those
    added with ``--with``):

    - *Layered hooks* run for every decorator, in that order: ``step_init``,
      ``task_env`` (variables merged, a later one wins), ``task_launch``,
      ``task_pre_step``, ``task_post_step``, ``task_finished``, and ``run_finished``
      (once per decorator class in the run); ``task_decorate``
      wraps the step function, so the topmost decorator's wrapper runs outermost;
      ``task_exception`` is offered to every decorator, and the failure counts as
      handled if any of them returns True.
    - *Single-owner policies* give one answer per step: ``max_retries`` and
      ``retry_delay_seconds`` (the largest asked), ``timeout_seconds`` (the smallest), ``launcher_name`` (the first that
      names one), ``resources`` (per resource, the largest), ``handles_crash``
      (any) and ``caches`` (the first that has an opinion); :class:`StepPolicy`
      combines all but ``launcher_name`` and ``resources``.
    - *Declarations* are class attributes the core reads instead of recognising a
      decorator by its name: ``gang``, ``deploy_refusal`` and ``in_cache_key``.
    """

    name: str = ""
    defaults: dict[str, Any] = {}
    #: may a step carry it more than once (``@card`` can: one card per ``id``)
    allow_multiple: bool = False
    #: does it make its step's tasks a gang (``@parallel``): started together, stopped
    #: together when one fails, never retried member by member nor served from the cache
    gang: bool = False
    #: why no orchestrator can run a step carrying it (None: a deployment may)
    deploy_refusal: str | None = None
    #: do its arguments go into the step cache's key; False for a decorator that cannot
    #: change what a task computes (``@cache`` itself)
    in_cache_key: bool = True

    def __init__(self, **attributes: Any) -> None:
        unknown = set(attributes) - set(self.defaults)
        if unknown:
            bad = sorted(unknown)[0]
            raise MetaflowlikeException(
                f'@{self.name} has no argument "{bad}". Arguments: '
                f"{', '.join(self.defaults) or 'none'}." + did_you_mean(bad, self.defaults)
            )
        self.attributes = {**self.defaults, **attributes}

    def __repr__(self) -> str:
        return f"@{self.name}({', '.join(f'{k}={v!r}' for k, v in self.attributes.items())})"

    # --- layered hooks (keyword-only) --------------------------------------------

    def step_init(self, *, flow_cls: type[FlowSpec], graph: FlowGraph, step_name: str) -> None:
        """Validate the decorator when the flow starts (in the runtime process)."""

    def task_env(self, *, step_name: str) -> dict[str, str]:
        """Environment variables for the task process."""
        return {}

    def task_launch(self, *, plan: LaunchPlan, step_name: str) -> None:
        """Adjust the ``LaunchPlan`` of a task about to start: its launcher, command line
        or environment (see ``launchers.py``). Runs in the runtime process."""

    def task_pre_step(self, *, task: TaskContext) -> None:
        """Inside the task process, before user code."""

    def task_decorate(self, func: Callable[[], None], *, task: TaskContext) -> Callable[[], None]:
        """Wrap the user function (return it unchanged if nothing to do)."""
        return func

    def task_post_step(self, *, task: TaskContext) -> None:
        """Inside the task process, after user code succeeded."""

    def task_exception(self, *, task: TaskContext, exception: BaseException) -> bool:
        """Inside the task process, after user code failed; return True if handled
        (the task then succeeds with what the step stored)."""
        return False

    def task_finished(
        self, *, task: TaskContext, ok: bool, artifacts: dict[str, Any], info: dict[str, Any]
    ) -> None:
        """Inside the task process, after its artifacts are stored, success or not."""

    def run_finished(self, *, fds: FlowDatastore, flow_name: str, run_id: str, ok: bool) -> None:
        """In the runtime process, once per decorator class used in the run, after the
        run's end is recorded (success or not). For what outlives tasks: an external
        record of the whole run (an MLflow run) that only the run's end can close.
        Not called for runs an orchestrator executes (there is no local runtime)."""

    # --- single-owner policies ---------------------------------------------------

    def launcher_name(self) -> str | None:
        """The launcher this decorator runs its step with (``"kubernetes"``...), known
        before the run starts; None leaves the choice to others (see ``launchers.py``)."""
        return None

    def max_retries(self) -> int:
        """How many extra attempts the runtime may make for this step."""
        return 0

    def retry_delay_seconds(self) -> float:
        """How long a scheduler waits before a retry. The local runtime retries at once,
        as Metaflow's does; orchestrators honour it."""
        return 0.0

    def timeout_seconds(self) -> float | None:
        """The longest a task may run before the runtime kills it (None: no limit)."""
        return None

    def resources(self) -> dict[str, float]:
        """What a task asks of the machine it runs on (``cpu``, ``memory`` in MB, ``gpu``,
        ``disk`` in MB): the local scheduler counts the first three, a platform all."""
        return {}

    def handles_crash(self) -> bool:
        """Should a task whose process died (killed, out of memory, timed out hard)
        after its last retry get one more attempt that runs no user code, so that
        ``task_exception`` can record the failure (``@catch``)?"""
        return False

    def caches(self) -> bool | None:
        """Should the step cache serve and record this step's tasks: True opts it in,
        False out, None leaves it to ``run --cache`` (``@cache``)."""
        return None


StepFunction = Callable[..., Any]


@dataclass(frozen=True)
class StepPolicy:
    """What the decorators of one step decide together: the single-owner policies,
    combined here once for the runtime, the launchers and the orchestrators alike."""

    #: the most retries any decorator asks for, and the longest wait before one
    max_retries: int
    retry_delay_seconds: float
    #: the shortest limit any decorator sets (None: no limit)
    timeout_seconds: float | None
    #: does any decorator record a crashed task (``@catch``)
    handles_crash: bool
    #: does any decorator make the step's tasks a gang (``@parallel``)
    gang: bool = False
    #: the first decorator's opinion on caching the step (None: none has one)
    caches: bool | None = None

    @classmethod
    def of(cls, decorators: Iterable[StepDecorator]) -> StepPolicy:
        decos = list(decorators)
        return cls(
            max_retries=max((d.max_retries() for d in decos), default=0),
            retry_delay_seconds=max((d.retry_delay_seconds() for d in decos), default=0.0),
            timeout_seconds=min((t for d in decos if (t := d.timeout_seconds())), default=None),
            handles_crash=any(d.handles_crash() for d in decos),
            gang=any(d.gang for d in decos),
            caches=next((c for d in decos if (c := d.caches()) is not None), None),
        )


def make_decorator(cls: type[StepDecorator]) -> Callable[..., Any]:
    """Turn a decorator class into something usable as ``@name`` and ``@name(k=v)``."""

    def attach(func: StepFunction, **kwargs: Any) -> StepFunction:
        decos = func.__dict__.setdefault("decorators", [])
        if not cls.allow_multiple and any(d.name == cls.name for d in decos):
            raise MetaflowlikeException(f'@{cls.name} is applied twice to step "{func.__name__}".')
        decos.append(cls(**kwargs))
        return func

    @functools.wraps(cls, updated=())
    def decorator(
        func: StepFunction | None = None, **kwargs: Any
    ) -> StepFunction | Callable[[StepFunction], StepFunction]:
        if func is not None and callable(func):
            return attach(func, **kwargs)
        return lambda f: attach(f, **kwargs)

    decorator.__doc__ = cls.__doc__
    decorator.decorator_class = cls  # type: ignore[attr-defined]
    return decorator


def step(func: StepFunction) -> StepFunction:
    """Mark a method of a FlowSpec as a step."""
    func.is_step = True  # type: ignore[attr-defined]
    func.__dict__.setdefault("decorators", [])
    return func


def step_decorators(
    node: StepNode, extra: list[StepDecorator] | None = None
) -> list[StepDecorator]:
    """A step's own decorators, then those added with ``--with`` that the step does not
    already have: ``@retry(times=1)`` in the code wins over ``--with retry``."""
    own = list(node.decorators)
    names = {d.name for d in own}
    return own + [d for d in extra or [] if d.name not in names]


def launcher_decorator(decorators: Iterable[StepDecorator], launcher: str) -> StepDecorator | None:
    """The decorator that runs its step with ``launcher`` (``@kubernetes`` for
    ``"kubernetes"``), whose attributes say how; None when the step carries none."""
    return next((d for d in decorators if d.launcher_name() == launcher), None)


def decorator_class(name: str) -> type[StepDecorator]:
    from . import plugins

    try:
        cls: type[StepDecorator] = plugins.load(plugins.STEP_DECORATORS, name, "decorator")
        return cls
    except plugins.MissingExtra:
        raise
    except MetaflowlikeException as e:
        raise UnknownDecorator(
            str(e).replace("Unknown decorator", "Unknown step decorator")
        ) from None


def parse_with(spec: str) -> StepDecorator:
    """Parse ``--with NAME[:k=v,k=v]`` into a decorator instance."""
    name, _, args = spec.partition(":")
    cls = decorator_class(name.strip())
    kwargs: dict[str, Any] = {}
    if args:
        for item in _split_args(args):
            key, eq, value = item.partition("=")
            if not eq:
                raise MetaflowlikeException(f'--with {spec}: expected key=value, got "{item}".')
            kwargs[key.strip()] = _parse_value(value.strip())
    return cls(**kwargs)


def _split_args(args: str) -> list[str]:
    """Split on commas that are not inside brackets or quotes (``vars={"a":1,"b":2}``)."""
    out, depth, quote, cur = [], 0, "", ""
    for ch in args:
        if quote:
            quote = "" if ch == quote else quote
        elif ch in "'\"":
            quote = ch
        elif ch in "[{(":
            depth += 1
        elif ch in "]})":
            depth -= 1
        elif ch == "," and depth == 0:
            out.append(cur)
            cur = ""
            continue
        cur += ch
    if cur:
        out.append(cur)
    return out


def _parse_value(value: str) -> Any:
    try:
        return json.loads(value)
    except ValueError:
        low = value.lower()
        if low in ("true", "false"):
            return low == "true"
        return value
