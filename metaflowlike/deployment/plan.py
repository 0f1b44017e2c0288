"""The flow as an orchestrator sees it: one neutral description both exporters walk.

A compiler (Step Functions, Argo) should only *translate*: which steps exist, what
kind each is, how deep in foreaches its tasks run, what the orchestrator must do
around it (retries and their delay, a deadline, a fallback after a hard death, the
resources to ask for, its variables) and the one container command that runs any of
its tasks. All of that is decided here, once, from the flow's decorators; the
compilers never read a decorator themselves. The common deploy-time checks live here
too, so both targets refuse the same flows with the same words. Decorators are known
by what they declare (``launcher_name``, ``task_env``, ``deploy_refusal``...), never by
their name, so a third-party one takes part as a built-in does.
"""

from __future__ import annotations

import base64
import zlib
from dataclasses import dataclass, field
from typing import Any

from .. import code_package
from ..bootstrap import bootstrap_command
from ..decorators import StepDecorator, StepPolicy, launcher_decorator, step_decorators
from ..environments import deployed
from ..environments.deployed import DeployedEnvironments
from ..exceptions import MetaflowlikeException
from ..remote_requests import larger_requests
from ..task import closes_foreach
from .inputs import ParameterInput, check_schedulable, parameter_inputs
from .schedule import Schedule, flow_schedule

#: the hidden command a deployed task's container runs (see ``entry.py``)
ENTRY_COMMAND = "deployed-step"
#: its option naming the stored environment locks (read by the environment bootstrap)
ENVIRONMENTS_OPTION = "--environments"
#: every resource request a platform may read, with the floor when nothing asks
RESOURCE_FLOOR: dict[str, float | None] = {"cpu": 1.0, "memory": 4096.0, "gpu": 0.0, "disk": None}


class DeploymentError(MetaflowlikeException):
    headline = "Cannot deploy this flow"


@dataclass(frozen=True)
class StepPlan:
    """One step, as every orchestrator needs it."""

    name: str
    #: 'linear' | 'branch' (static split) | 'foreach' | 'switch' | 'join' | 'end';
    #: the start step is whichever of the first four it does
    kind: str
    out_funcs: tuple[str, ...]
    in_funcs: tuple[str, ...]
    #: foreaches this step's tasks run inside (a foreach step does not count its own)
    foreach_depth: int
    matching_join: str | None  # for a branch/foreach: the join closing it
    matching_split: str | None  # for a join: the split it closes
    closes_foreach: bool  # a join gathering a foreach's tasks
    switch_cases: tuple[tuple[Any, str], ...]  # (condition value, step) for a switch
    retries: int  # orchestrator-level retries (attempts after the first)
    retry_delay_seconds: int
    timeout_seconds: int | None  # the platform deadline for one attempt
    catch: bool  # @catch: after a hard death, one more attempt records the failure
    resources: dict[str, float | None]  # cpu, memory (MB), gpu, disk (MB)
    env: dict[str, str]  # the decorators' task variables (@environment)
    decorators: tuple[str, ...]  # names, for messages
    platform_attributes: dict[str, Any] = field(default_factory=dict)  # @batch/@kubernetes


@dataclass(frozen=True)
class DeploymentPlan:
    """The whole flow to deploy; ``command(step)`` is a task's container command."""

    flow_name: str
    name: str  # the deployment name (before the target's own spelling rules)
    steps: dict[str, StepPlan]  # topological order, start first
    parameters: tuple[ParameterInput, ...]
    schedule: Schedule | None
    project: dict[str, Any] | None
    datastore_type: str
    datastore_root: str
    top_args: tuple[str, ...]  # the flow's top options (datastore, branch...)
    package_url: str
    package_sha256: str
    flow_file: str  # the flow file's name inside the code package
    package: Any = field(default=None, repr=False, compare=False)  # code_package.CodePackage
    #: the steps' resolved environments (--environment=pypi|uv), stored beside the code
    #: package; None when every step runs in the image's own Python
    environments: DeployedEnvironments | None = field(default=None, compare=False)

    def command(self, step: str, interpreter: str = "python") -> list[str]:
        """The container command of every task of ``step``: the bootstrap fetches the
        code package and runs ``flow.py [TOP] deployed-step STEP``, which reads the
        task's ids from its environment (``entry.py``) and runs the usual ``step``
        command. No part of it depends on the task, so an orchestrator needs one per
        step.

        With environments, every step's command also goes through the environment
        bootstrap, which builds the step's environment from the stored locks with uv
        and runs ``deployed-step`` in it (a step without a lock runs unchanged)."""
        args = [*self.top_args, ENTRY_COMMAND, step]
        wrapper: tuple[str, ...] = ()
        if self.environments is not None:
            from ..environments.bootstrap import remote_wrapper

            args += [ENVIRONMENTS_OPTION, self.environments.key]
            wrapper = remote_wrapper(self.flow_name)
        command = bootstrap_command(
            interpreter, self.package_url, self.package_sha256, self.flow_file, args, wrapper
        )
        command[2] = packed_source(command[2])
        return command


def packed_source(source: str) -> str:
    """``python -c`` source as one short line that unpacks and runs ``source``.

    The bootstrap is sent once per step in the workflow document; compressed it takes a
    third of the room (Step Functions caps a definition at 1 MB), and a single line
    keeps the document valid for tools that refuse multi-line strings (asl-validator)."""
    packed = base64.b64encode(zlib.compress(source.encode(), 9)).decode()
    return f"import base64,zlib;exec(zlib.decompress(base64.b64decode('{packed}')))"


def _kind(node: Any) -> str:
    if node.type == "end":
        return "end"
    if node.is_join:
        return "join"
    if node.split_type == "foreach":
        return "foreach"
    if node.split_type == "switch":
        return "switch"
    if node.split_type == "split":
        return "branch"
    return "linear"


def _foreach_depth(graph: Any, node: Any) -> int:
    return sum(1 for s in node.split_parents if graph[s].split_type == "foreach")


def step_plan(graph: Any, node: Any, platform: str) -> StepPlan:
    """The orchestrator's view of ``node``, from its decorators; ``platform`` is the
    launcher every task runs with (``batch``, ``kubernetes``): the decorator naming it
    gives its attributes, and its requests join @resources'."""
    decos = step_decorators(node, [])
    policy = StepPolicy.of(decos)
    retries, timeout = policy.max_retries, policy.timeout_seconds
    env: dict[str, str] = {}
    for d in decos:  # merged as the local runtime merges them: a later one wins
        env.update(d.task_env(step_name=node.name))
    own = launcher_decorator(decos, platform)
    return StepPlan(
        name=node.name,
        kind=_kind(node),
        out_funcs=tuple(node.out_funcs),
        in_funcs=tuple(node.in_funcs),
        foreach_depth=_foreach_depth(graph, node),
        matching_join=node.matching_join,
        matching_split=node.matching_split,
        closes_foreach=node.is_join and closes_foreach(graph, node),
        switch_cases=tuple(node.switch_cases),
        retries=retries,
        retry_delay_seconds=int(policy.retry_delay_seconds),
        timeout_seconds=None if timeout is None else int(-(-timeout // 1)),
        catch=policy.handles_crash,
        # the platform decorator's own values (its defaults included) are the floor when
        # it is there, so a deployed step asks for what the same step asks for when it
        # bursts to that platform: @kubernetes(memory=2048) is 2048 MB, not 4096
        resources=larger_requests(
            decos, platform, RESOURCE_FLOOR if own is None else dict.fromkeys(RESOURCE_FLOOR)
        ),
        env=env,
        decorators=tuple(d.name for d in decos),
        platform_attributes=dict(own.attributes) if own is not None else {},
    )


def check_flow(
    state: Any,
    target: str,
    refused: dict[str, str],
    *,
    platform: str | None = None,
    allow_switch: bool = True,
) -> None:
    """The deploy-time checks every target shares: a cloud datastore, no loops, no
    decorator that refuses deployment (its ``deploy_refusal``) or that runs its step
    with another launcher than ``platform`` (``refused``: launcher name -> why, for the
    target's own words), no foreach whose width is decided by a gang. All problems are
    named at once."""
    graph, fds = state.graph, state.fds
    problems = []
    if fds.storage.TYPE == "local":
        problems.append(
            f"its datastore is the local folder {fds.storage.url()}, which {target} tasks "
            "cannot reach: pass --datastore-root s3://BUCKET/PREFIX (or azure://, gs://) "
            "before the command, or set METAFLOWLIKE_DATASTORE_ROOT"
        )
    if graph.cycles:
        loops = "; ".join(" -> ".join(c) for c in graph.cycles)
        problems.append(f"{target} cannot run a step that loops back ({loops})")
    if not allow_switch and any(n.is_switch for n in graph):
        names = ", ".join(f'"{n.name}"' for n in graph if n.is_switch)
        problems.append(f"{target} export does not support the switch step {names}")
    for node in graph:
        for d in step_decorators(node, []):
            why = d.deploy_refusal or _foreign_launcher(d, target, platform, refused)
            if why:
                problems.append(f'@{d.name} on step "{node.name}": {why}')
        if node.is_parallel:
            problems.append(
                f'step "{node.name}" starts a gang (num_parallel=) whose width {target} '
                "cannot know when the workflow is created"
            )
    if problems:
        raise DeploymentError(
            f"{graph.name} cannot be deployed to {target}: " + "; ".join(problems) + "."
        )


def _foreign_launcher(
    deco: StepDecorator, target: str, platform: str | None, refused: dict[str, str]
) -> str | None:
    """Why ``deco`` cannot be deployed to ``target`` because it runs its step with a
    launcher other than the target's ``platform``, or None."""
    launcher = deco.launcher_name()
    if launcher in refused:
        return refused[launcher]
    if launcher is None or platform is None or launcher == platform:
        return None
    return (
        f'the step runs with the "{launcher}" launcher, but every task of {target} runs '
        f'with "{platform}"'
    )


def build_plan(
    state: Any, *, target: str, platform: str, name: str, refused: dict[str, str]
) -> DeploymentPlan:
    """Check the flow and describe it. The code package is built here but not uploaded
    (``upload_package`` does that, only when deploying for real)."""
    state.validate()
    check_flow(state, target, refused, platform=platform)
    graph, fds = state.graph, state.fds
    for node in graph:
        for deco in step_decorators(node, []):
            deco.step_init(flow_cls=state.flow_cls, graph=graph, step_name=node.name)
    sched = flow_schedule(state.flow_cls)
    if sched is not None:
        check_schedulable(state.flow_cls)
    # resolved (not built) here, so an unknown package or a conflict stops the deploy
    # before anything is uploaded or created
    environments = deployed.resolve_for_deployment(state, _flow_file())
    pkg = code_package.build(_flow_file(), state.package_suffixes)
    top = [a for a in state.top_args() if a != "--quiet"]
    return DeploymentPlan(
        flow_name=graph.name,
        name=name,
        steps={n.name: step_plan(graph, n, platform) for n in graph},
        parameters=tuple(parameter_inputs(state.flow_cls)),
        schedule=sched,
        project=state.project,
        datastore_type=fds.storage.TYPE,
        datastore_root=fds.storage.root,
        top_args=tuple(top),
        package_url=code_package.package_url(fds, pkg),
        package_sha256=pkg.sha256,
        flow_file=pkg.flow_file,
        package=pkg,
        environments=environments,
    )


def upload_package(state: Any, plan: DeploymentPlan) -> int:
    """Upload the plan's code package and environment locks; content-addressed, so an
    unchanged flow uploads nothing (returns the bytes sent)."""
    sent = code_package.upload(state.fds, plan.package)
    if plan.environments is not None:
        sent += deployed.upload(state.fds, plan.environments)
    return sent


def _flow_file() -> str:
    import sys

    return sys.argv[0]
