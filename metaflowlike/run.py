"""Start a run: allocate its id, store its parameters, write its record, execute it.

Shared by ``run`` and ``resume`` so both produce runs the client reads the same way.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from . import config
from .datastore.records import ArtifactEntry, RunEnd, RunRecord
from .datastore.storage import StorageError, StorageUnreachable
from .decorators import step_decorators
from .environments.commands import plan_for_run
from .graph_render import graph_summary
from .launchers import preflight_run
from .owners import me
from .project_decorator import project_tags
from .reporter import make_reporter
from .runtime import Runtime, check_resources, new_run_id

if TYPE_CHECKING:
    from .cli import _State


def system_tags(user: str) -> list[str]:
    return [f"user:{user}", f"python_version:{sys.version.split()[0]}"]


def run_record(
    state: _State,
    run_id: str,
    user: str,
    tags: list[str],
    params: dict[str, ArtifactEntry],
    param_values: dict[str, Any],
    *,
    user_tags: list[str],
    with_specs: list[str],
    origin_run_id: str | None,
    environment: dict[str, Any] | None,
    runtime: dict[str, Any] | None = None,
) -> RunRecord:
    """The run record of a new run: written by the local runtime, and by the first task
    of a run started by a production orchestrator (no runtime owns it then, so
    ``runtime`` is None and the run never counts as running on a laptop)."""
    graph = state.graph
    return RunRecord(
        flow=graph.name,
        run_id=run_id,
        user=user,
        tags=tags,
        user_tags=user_tags,
        namespace=f"user:{user}",
        created_at=time.time(),
        params=params,
        param_values={k: repr(v)[:200] for k, v in param_values.items()},
        origin_run_id=origin_run_id,
        steps=graph.sorted_nodes(),
        graph=graph_summary(graph),  # lets notebooks draw a past run's DAG
        with_specs=with_specs,
        configs=getattr(state, "configs", None) or {},
        project=getattr(state, "project", None),
        runtime=runtime,  # while it lives and the run has no end record: running
        environment=environment,
    )


def store_params(fds: Any, param_values: dict[str, Any]) -> dict[str, ArtifactEntry]:
    """Save the parameter values as artifacts; the run record keeps their keys."""
    stored = fds.cas.save(list(param_values.items()))
    return {name: a.entry() for name, a in stored.items()}


def execute(
    state: _State,
    params: dict[str, ArtifactEntry],
    param_values: dict[str, Any],
    *,
    max_workers: int = 16,
    max_num_splits: int = 10000,
    tags: list[str] | None = None,
    run_id_file: str | None = None,
    with_decorators: list | None = None,
    with_specs: list[str] | None = None,
    launcher: str = "fork",
    origin_run_id: str | None = None,
    clone: Callable | None = None,
    cache: bool = False,
) -> bool:
    fds, graph, flow_cls = state.fds, state.graph, state.flow_cls
    flow = graph.name
    user = config.get_username()
    for node in graph:
        for deco in step_decorators(node, with_decorators):
            deco.step_init(flow_cls=flow_cls, graph=graph, step_name=node.name)
    check_resources(graph, with_decorators, launcher)  # a refused run must leave no record
    preflight_run(graph, with_decorators or [], launcher, fds)
    environments = plan_for_run(state, with_decorators, origin_run_id, launcher)
    run_id = new_run_id(fds, flow)
    project = getattr(state, "project", None)
    all_tags = system_tags(user) + project_tags(project) + list(tags or [])
    fds.write_run(
        run_record(
            state,
            run_id,
            user,
            all_tags,
            params,
            param_values,
            user_tags=list(tags or []),
            with_specs=list(with_specs or []),
            origin_run_id=origin_run_id,
            environment=environments.record(),
            runtime=me().record(),
        ),
    )
    if run_id_file:
        with open(run_id_file, "w") as f:
            f.write(run_id)
    reporter = make_reporter(state.quiet, graph)
    reporter.run_started(flow, run_id, user, origin_run_id)

    runtime = Runtime(
        flow_cls,
        graph,
        fds,
        run_id=run_id,
        params=params,
        max_workers=max_workers,
        max_num_splits=max_num_splits,
        user=user,
        tags=all_tags,
        namespace=f"user:{user}",
        with_decorators=with_decorators,
        reporter=reporter,
        launcher=launcher,
        flow_file=sys.argv[0],
        top_args=state.top_args(),
        with_specs=with_specs,
        package_suffixes=state.package_suffixes,
        origin_run_id=origin_run_id,
        task_interpreter=environments.launch,
    )
    if clone is not None:
        runtime.clone = lambda spec: clone(runtime, spec)
    runtime.cache = step_cache(state, params, with_decorators or [], environments, cache)
    try:
        ok = runtime.execute()
    except StorageUnreachable:
        raise  # recording the end of the run would only fail again
    except BaseException as e:
        try:
            fds.write_run_end(flow, run_id, RunEnd("failed", time.time()))
        except StorageError:
            if not isinstance(e, StorageError):
                raise
            # the store's own failure (a full disk...) is what the user must read; the
            # run counts as ended anyway once its runtime is gone
        _tell_decorators(graph, with_decorators, fds, run_id, False, reporter)
        reporter.run_finished(False, flow, run_id)
        raise
    else:
        fds.write_run_end(flow, run_id, RunEnd("ok" if ok else "failed", time.time()))
        _tell_decorators(graph, with_decorators, fds, run_id, ok, reporter)
        reporter.run_finished(ok, flow, run_id)
    return ok


def _tell_decorators(
    graph: Any, with_decorators: list | None, fds: Any, run_id: str, ok: bool, reporter: Any
) -> None:
    """Call ``run_finished`` once per decorator class of the run. The run's outcome is
    already recorded: a hook that fails is reported as a warning, not as a failed run."""
    seen: set[type] = set()
    for node in graph:
        for deco in step_decorators(node, with_decorators):
            if type(deco) in seen:
                continue
            seen.add(type(deco))
            try:
                deco.run_finished(fds=fds, flow_name=graph.name, run_id=run_id, ok=ok)
            except Exception as e:
                reporter.warning(f"@{deco.name} could not record the end of the run: {e}")


def start_run(state: _State, param_values: dict[str, Any], **kwargs: Any) -> bool:
    params = store_params(state.fds, param_values)
    return execute(state, params, param_values, **kwargs)


def step_cache(
    state: _State, params: dict, with_decorators: list, environments: Any, run_wide: bool
):
    """The run's ``StepCache`` if ``--cache`` or some ``@cache`` turns caching on."""
    from .stepcache.key import KeyMaker
    from .stepcache.step_cache import StepCache

    if not StepCache.any_enabled(state.graph, with_decorators, run_wide):
        return None
    keys = KeyMaker(
        state.fds,
        state.flow_cls,
        state.graph,
        params=params,
        with_decorators=with_decorators,
        environment=environments.record(),
        configs=getattr(state, "configs", None),
        project_root=os.path.dirname(os.path.abspath(sys.argv[0])),
    )
    return StepCache(keys, run_wide=run_wide)
