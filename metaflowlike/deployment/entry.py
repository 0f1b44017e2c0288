"""``flow.py [TOP] deployed-step STEP``: what a deployed task's container runs.

An orchestrator decides a task's ids inside the workflow (the run id from the
execution's name, the task id from its place in the foreaches, the input paths from
the tasks before it, the attempt from its own retry counter), so they cannot be
written into a command fixed at deploy time. The compilers pass them as environment
variables (the ``ENV_*`` names below, the one contract between them and this module),
and this command turns them into the usual ``TaskSpec`` and runs the usual
self-sufficient task (``task_supervisor.supervise``: logs and completion marker in the
datastore). It also does the two things a local runtime would have done around it:

- the ``start`` task first writes the run record, with the parameter values of the
  workflow input converted as ``run`` converts them (a retried start keeps the first);
- after a foreach or switch step, it says what the orchestrator must do next (the
  split indexes, the chosen step) in a small JSON document written to a local file
  (``ENV_OUTPUT_FILE``), one file per field (``ENV_OUTPUT_DIR``, read by Argo) and,
  for ``ENV_OUTPUT_TO_DATASTORE``, next to the task in the datastore (``output_path``,
  read by Step Functions);
- after ``end`` succeeds, it writes the run's end record.
"""

from __future__ import annotations

import json
import os
import sys
import time
from typing import Any

from .. import config, ids
from ..datastore.records import RunEnd, TaskInfo
from ..decorators import StepPolicy, step_decorators
from ..environments.deployed import load as load_environments
from ..exceptions import MetaflowlikeException
from ..task import TaskSpec

ENV_PREFIX = "METAFLOWLIKE_DEPLOY_"
ENV_RUN_ID = ENV_PREFIX + "RUN_ID"  # the whole run id: "sfn-<execution>", "argo-<workflow>"
ENV_TASK_ID = ENV_PREFIX + "TASK_ID"
#: JSON list of "step/task_id" of this run (nested lists are flattened: a Map's output)
ENV_INPUT_PATHS = ENV_PREFIX + "INPUT_PATHS"
ENV_SPLIT_INDEX = ENV_PREFIX + "SPLIT_INDEX"
ENV_ATTEMPT = ENV_PREFIX + "ATTEMPT"  # the orchestrator's retry count, 0 first
ENV_PARAMS = ENV_PREFIX + "PARAMS"  # start only: JSON object {parameter: value as typed}
ENV_CATCH_FALLBACK = ENV_PREFIX + "CATCH_FALLBACK"  # set: the last attempt died, record it
ENV_OUTPUT_FILE = ENV_PREFIX + "OUTPUT_FILE"
#: a folder where each field of the output is also written as its own file ("splits",
#: "task"...): Argo reads every output parameter from a file of its own
ENV_OUTPUT_DIR = ENV_PREFIX + "OUTPUT_DIR"
#: start only: one variable per parameter (``..._PARAM_<name>``), for orchestrators that
#: keep each parameter apart (Argo's workflow arguments); an empty one means "not given"
ENV_PARAM_PREFIX = ENV_PREFIX + "PARAM_"
ENV_OUTPUT_TO_DATASTORE = ENV_PREFIX + "OUTPUT_TO_DATASTORE"
ENV_TAGS = ENV_PREFIX + "TAGS"  # JSON list of extra run tags (the deployment's name...)


class DeployedTaskError(MetaflowlikeException):
    headline = "Cannot start the deployed task"


def output_path(flow: str, run_id: str, step: str, task_id: str) -> str:
    """Where ``ENV_OUTPUT_TO_DATASTORE`` puts a task's output, relative to the root."""
    from ..datastore.layout import LAYOUT

    return LAYOUT.deployed_output(f"{flow}/{run_id}/{step}/{task_id}")


def _need(env: dict[str, str], name: str) -> str:
    value = env.get(name, "")
    if not value:
        raise DeployedTaskError(f"{name} is not set: this command is run by a deployed workflow.")
    return value


def _flatten(items: Any) -> list[str]:
    if isinstance(items, str):
        return [items]
    out: list[str] = []
    for item in items or []:
        out += _flatten(item)
    return out


def task_spec(state: Any, step: str, env: dict[str, str]) -> TaskSpec:
    """The ``TaskSpec`` that the environment describes (the run record must exist)."""
    flow = state.flow_cls.__name__
    run_id = ids.check_run_id(_need(env, ENV_RUN_ID), ENV_RUN_ID)
    task_id = ids.check_task_id(_need(env, ENV_TASK_ID), ENV_TASK_ID)
    raw = env.get(ENV_INPUT_PATHS) or "[]"
    try:
        paths = _flatten(json.loads(raw))
    except (json.JSONDecodeError, TypeError):
        raise DeployedTaskError(f"{ENV_INPUT_PATHS} is not a JSON list: {raw[:200]!r}.") from None
    inputs = [ids.check_input_path(f"{run_id}/{p}") for p in paths]
    split = env.get(ENV_SPLIT_INDEX, "")
    run = state.fds.read_run(flow, run_id)
    if run is None:
        raise DeployedTaskError(
            f"Run {flow}/{run_id} has no run record in {state.fds.storage.url()}: its start "
            "task has not run."
        )
    state.use_stored_configs(run.configs)
    decos = step_decorators(state.graph[step], [])
    policy = StepPolicy.of(decos)
    retries = policy.max_retries
    attempt = int(env.get(ENV_ATTEMPT) or 0)
    fallback = None
    if env.get(ENV_CATCH_FALLBACK) or (policy.handles_crash and attempt > retries):
        # an attempt beyond the step's retries exists only to record the failure, with
        # what the died attempt's marker says, in the local runtime's words otherwise
        attempt = retries + 1
        died = state.fds.read_marker(f"{flow}/{run_id}/{step}/{task_id}", retries, warn=True)
        fallback = (died.reason if died else None) or "the task process died"
    return TaskSpec(
        flow_name=flow,
        run_id=run_id,
        step_name=step,
        task_id=task_id,
        attempt=attempt,
        input_paths=inputs,
        split_index=int(split) if split != "" else None,
        user=run.user or "",
        tags=run.tags,
        namespace=run.namespace,
        max_retries=retries,
        catch_fallback=fallback,
    )


def init_run(state: Any, run_id: str, env: dict[str, str], environments: str | None = None) -> None:
    """Write the run record of a deployed run, unless an earlier attempt did.

    ``environments`` is where the deployment stored its steps' environment locks: the
    record keeps them, so the client shows what each task ran with."""
    from ..project_decorator import project_tags
    from ..run import run_record, store_params, system_tags
    from .inputs import start_values

    flow, fds = state.flow_cls.__name__, state.fds
    if fds.read_run(flow, run_id) is not None:
        return
    raw = env.get(ENV_PARAMS) or "{}"
    try:
        given = json.loads(raw)
        if not isinstance(given, dict):
            raise ValueError
    except ValueError:
        raise DeployedTaskError(f"{ENV_PARAMS} is not a JSON object: {raw[:200]!r}.") from None
    for key, value in env.items():
        if key.startswith(ENV_PARAM_PREFIX) and value != "":
            given[key[len(ENV_PARAM_PREFIX) :]] = value
    state.graph  # noqa: B018 - reads the configs and the project before the record
    values = start_values(state.flow_cls, given)
    user = config.get_username()
    extra = json.loads(env.get(ENV_TAGS) or "[]")
    tags = system_tags(user) + project_tags(state.project) + list(extra)
    record = run_record(
        state,
        run_id,
        user,
        tags,
        store_params(fds, values),
        values,
        user_tags=list(extra),
        with_specs=[],
        origin_run_id=None,
        environment=load_environments(fds, environments) if environments else None,
    )
    fds.write_run(record)


def task_output(state: Any, spec: TaskSpec) -> dict[str, Any]:
    """What the orchestrator needs from a finished task."""
    info = state.fds.read_task_info(spec.pathspec, spec.attempt, warn=True) or TaskInfo()
    out: dict[str, Any] = {"task": f"{spec.step_name}/{spec.task_id}", "task_id": spec.task_id}
    node = state.graph[spec.step_name]
    if node.split_type == "foreach":
        n = int(info.foreach_num_splits or 0)
        if n == 0:
            raise DeployedTaskError(
                f'foreach="{node.foreach_param}" in step "{node.name}" produced no splits.'
            )
        out["splits"] = list(range(n))
    if node.is_switch:
        out["next_step"] = info.next_step
    return out


def run_deployed_step(
    state: Any, step: str, env: dict[str, str] | None = None, environments: str | None = None
) -> int:
    """Run one deployed task; the process's exit code. ``environments``: the stored
    locks of the deployment's environments (the environment bootstrap already started
    this process in the step's own)."""
    from ..task_supervisor import supervise

    env = dict(os.environ if env is None else env)
    if step not in state.graph:
        raise DeployedTaskError(f'No step "{step}" in {state.flow_cls.__name__}.')
    if step == "start":
        init_run(state, ids.check_run_id(_need(env, ENV_RUN_ID), ENV_RUN_ID), env, environments)
    spec = task_spec(state, step, env)
    code = supervise(state, spec, [])
    if code != 0:
        return code
    output = task_output(state, spec)
    data = json.dumps(output, sort_keys=True).encode()
    if env.get(ENV_OUTPUT_FILE):
        with open(env[ENV_OUTPUT_FILE], "wb") as f:
            f.write(data)
    if env.get(ENV_OUTPUT_DIR):
        os.makedirs(env[ENV_OUTPUT_DIR], exist_ok=True)
        for key, value in output.items():
            text = value if isinstance(value, str) else json.dumps(value)
            with open(os.path.join(env[ENV_OUTPUT_DIR], key), "w") as f:
                f.write(text)
    if env.get(ENV_OUTPUT_TO_DATASTORE):
        path = output_path(spec.flow_name, spec.run_id, step, spec.task_id)
        state.fds.storage.put_bytes(path, data)
    if step == "end":
        state.fds.write_run_end(spec.flow_name, spec.run_id, RunEnd("ok", time.time()))
    return 0


def command(flow_cls: type) -> Any:
    """The hidden ``deployed-step`` click command (registered as a CLI plugin)."""
    import click

    @click.command("deployed-step", hidden=True)
    @click.argument("step")
    @click.option("--environments", default=None, help="The deployment's environment locks.")
    @click.pass_obj
    def deployed_step(state: Any, step: str, environments: str | None) -> None:
        """Run one task of a deployed flow (its ids come from the environment)."""
        sys.exit(run_deployed_step(state, step, environments=environments))

    return deployed_step
