"""The ``--environment`` top-level option and the ``environment`` command group.

``register(cli)`` adds both to a flow's command line. The option's value is kept in
the click context (``selected_kind``), so commands read it without the top-level
callback having to know about environments.
"""

from __future__ import annotations

import os
import sys
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # the modules behind the option load only when a command needs them
    from .plan import EnvironmentPlan

KINDS = ("local", "pypi", "uv", "conda")
_META_KEY = "metaflowlike.environments"
DEFAULT_ENV_VAR = "METAFLOWLIKE_ENVIRONMENT"


def selected_kind() -> str:
    """The ``--environment`` of the command being run (``local`` outside click)."""
    import click

    ctx = click.get_current_context(silent=True)
    if ctx is not None and ctx.meta.get(_META_KEY):
        return ctx.meta[_META_KEY]
    return os.environ.get(DEFAULT_ENV_VAR) or "local"


def plan_for_run(
    state: Any,
    with_decorators: list | None,
    origin_run_id: str | None = None,
    launcher: str = "fork",
) -> EnvironmentPlan:
    """The environments of a run (or resume) about to start: resolved, and built when a
    step runs on this machine. A step whose launcher runs it on another machine
    (``@kubernetes``, ``@batch``; ``launcher`` is the run's default) only needs its
    lock here: the container builds its environment from the saved lock."""
    from .plan import EnvironmentPlan, plan_environments

    kind = selected_kind()
    if kind == "local" and not _declares_pypi(state, with_decorators):
        return EnvironmentPlan(kind)  # the common case: nothing to import or check
    origin = state.fds.read_run(state.flow_cls.__name__, origin_run_id) if origin_run_id else None
    plan = plan_environments(
        kind,
        state.flow_cls,
        state.graph,
        list(with_decorators or []),
        datastore=state.fds.storage.TYPE,
        flow_file=sys.argv[0],
        origin=origin,
    )
    plan.remote_steps = _remote_steps(state.graph, list(with_decorators or []), launcher)
    plan.build(say=lambda s: None if state.quiet else _say(s))
    return plan


def _remote_steps(graph: Any, with_decorators: list, launcher: str) -> frozenset[str]:
    """Steps whose tasks run on another machine (a remote launcher's)."""
    from ..decorators import step_decorators
    from ..launchers import launcher_class, step_launcher_name
    from ..remote_launcher import RemoteLauncher

    return frozenset(
        node.name
        for node in graph
        if issubclass(
            launcher_class(step_launcher_name(step_decorators(node, with_decorators), launcher)),
            RemoteLauncher,
        )
    )


def _declares_pypi(state: Any, with_decorators: list | None) -> bool:
    from .request import uses_pypi

    return bool(uses_pypi(state.flow_cls, state.graph, list(with_decorators or [])))


def _say(text: str) -> None:
    sys.stderr.write(text + "\n")
    sys.stderr.flush()


def register(cli: Any) -> None:
    """Add ``--environment`` and ``environment resolve|show`` to a flow's CLI group."""
    import click

    def remember(ctx: click.Context, param: click.Parameter, value: str | None) -> str | None:
        if value:
            ctx.meta[_META_KEY] = value
        return value

    cli.params.append(
        click.Option(
            ["--environment"],
            type=click.Choice(KINDS),
            default=None,
            expose_value=False,
            is_eager=True,
            callback=remember,
            help="Where steps run: local (the current interpreter, default), pypi (per-step "
            "environments from @pypi/@pypi_base) or uv (the project's uv.lock).",
        )
    )

    @cli.group()
    def environment():
        """Resolve and show the Python environment of each step."""

    @environment.command()
    @click.option("--force", is_flag=True, help="Resolve again, ignoring cached resolutions.")
    @click.pass_obj
    def resolve(state: Any, force: bool):
        """Resolve every step's environment (cached for later runs) and print it."""
        click.echo(describe(_plan_now(state, force=force), state.graph))

    @environment.command()
    @click.option("--run-id", default=None, help="Show what this run's tasks ran with.")
    @click.pass_obj
    def show(state: Any, run_id: str | None):
        """Print the environment of each step: resolved now (from the cache if
        possible), or as saved by the run given with --run-id."""
        from .plan import EnvironmentPlan, _saved_environment, _saved_locks

        if run_id:
            flow = state.flow_cls.__name__
            record = state.fds.read_run(flow, run_id)
            if record is None:
                from ..exceptions import MetaflowlikeException

                raise MetaflowlikeException(f"No run {flow}/{run_id} in {state.fds.storage.url()}.")
            env = _saved_environment(record)
            plan = EnvironmentPlan(env.get("type") or "local", _saved_locks(record))
        else:
            plan = _plan_now(state)
        click.echo(describe(plan, state.graph))


def describe(plan: EnvironmentPlan, graph: Any) -> str:
    """Per step: the environment key, Python, platform, whether it is built, and pins."""
    from .build import is_built

    lines = [f"Environment: {plan.kind}"]
    for node in graph:
        lock = plan.locks.get(node.name)
        if lock is None:
            lines.append(f"Step {node.name}: the flow's own interpreter ({sys.executable})")
            continue
        state = "built" if is_built(lock.key) else "not built yet"
        lines.append(
            f"Step {node.name}: environment {lock.key[:12]} "
            f"(Python {lock.python}, {lock.platform}, {state})"
        )
        lines += [f"    {name}=={version}" for name, version in lock.packages().items()]
    return "\n".join(lines)


def _plan_now(state: Any, force: bool = False) -> Any:
    """The environments the selected ``--environment`` gives every step of the flow
    now (cached resolutions reused unless ``force``), without ``--with`` decorators."""
    from .plan import plan_environments

    return plan_environments(
        selected_kind(),
        state.flow_cls,
        state.graph,
        [],
        datastore=state.fds.storage.TYPE,
        flow_file=sys.argv[0],
        force=force,
    )
