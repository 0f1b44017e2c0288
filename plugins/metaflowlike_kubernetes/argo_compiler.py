"""Translate a flow's deployment plan into Argo Workflows documents (pure, no cluster).

The result is a ``WorkflowTemplate`` (plus a ``CronWorkflow`` when the flow has
``@schedule``). Its shape:

- one ``container`` template per step (``step-<name>``) running the plan's command for
  that step, the same self-sufficient task as ``@kubernetes`` (the pod spec comes from
  ``kubernetes_job.build_pod_spec``); ``@retry`` becomes a ``retryStrategy`` with the
  step's count and delay, ``@timeout`` an ``activeDeadlineSeconds``;
- one ``dag`` template per foreach level: ``main`` for the steps outside any foreach,
  and ``foreach-<split step>`` for the body of each foreach, which the enclosing DAG
  fans out with ``withParam`` over the split step's ``foreach-splits`` output, so a
  nested foreach is a DAG inside a DAG;
- the flow's Parameters as workflow arguments, overridable on submit.

Task ids are decided by position, not by a counter: a task's id is ``t`` followed by
the index of every foreach it runs inside (``t``, ``t-3``, ``t-3-0``), so every
template can spell its own and its inputs' ids without asking anyone, and a retry keeps
its task id. The run id is ``argo-<workflow name>``.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any

from metaflowlike.deployment import entry
from metaflowlike.deployment.naming import kubernetes_name
from metaflowlike.deployment.plan import DeploymentPlan, StepPlan
from metaflowlike.exceptions import MetaflowlikeException
from metaflowlike.task import RUNS_ON_PREFIX

from .kubernetes_job import (
    LABEL_PREFIX,
    STARTUP_SLACK,
    WORKDIR,
    PodRequest,
    build_pod_spec,
    secrets_list,
)

API_VERSION = "argoproj.io/v1alpha1"
RUN_ID = "argo-{{workflow.name}}"
ROOT_TASK = "t"
#: where a task writes its outputs, relative to the container's working directory, so
#: that each output is read from its own file (``outputs.parameters.valueFrom.path``)
OUTPUT_DIR = ".argo-outputs"


class ArgoCompileError(MetaflowlikeException):
    headline = "Cannot export to Argo Workflows"


@dataclass(frozen=True)
class ArgoTarget:
    """Where and how the workflow runs: the cluster-side settings."""

    name: str  # the DNS-1123 name of the WorkflowTemplate
    namespace: str
    image: str
    user: str  # who deployed: the runs' user, and the @project branch user.<user>
    service_account: str | None = None
    secrets: tuple[str, ...] = ()
    labels: dict[str, str] = field(default_factory=dict)


def compile_documents(plan: DeploymentPlan, target: ArgoTarget) -> list[dict[str, Any]]:
    """The documents to apply, in order: the WorkflowTemplate, then its CronWorkflow."""
    docs = [workflow_template(plan, target)]
    if plan.schedule is not None:
        docs.append(cron_workflow(plan, target))
    return docs


# --- the WorkflowTemplate --------------------------------------------------------------


def _levels(plan: DeploymentPlan) -> dict[str, tuple[str, ...]]:
    """For each step, the foreach split steps its tasks run inside, outermost first."""
    levels: dict[str, tuple[str, ...]] = {}
    for step in plan.steps.values():  # topological order
        if not step.in_funcs:
            levels[step.name] = ()
            continue
        parent = plan.steps[step.in_funcs[0]]
        level = levels[parent.name]
        if parent.kind == "foreach":
            level = (*level, parent.name)
        if step.closes_foreach:
            level = level[:-1]
        levels[step.name] = level
    return levels


def _task_name(step: str) -> str:
    return kubernetes_name(step)


def _foreach_task(split: str) -> str:
    return f"{kubernetes_name(split)}-foreach"


def _check_names(plan: DeploymentPlan) -> None:
    seen: dict[str, str] = {}
    for step in plan.steps:
        k8s = kubernetes_name(step)
        if k8s in seen:
            raise ArgoCompileError(
                f'Steps "{seen[k8s]}" and "{step}" both become the Argo name "{k8s}" (names are '
                "lowercase there, with '-' for '_'): rename one of them."
            )
        seen[k8s] = step


def _check_supported(plan: DeploymentPlan) -> None:
    switches = [s.name for s in plan.steps.values() if s.kind == "switch"]
    if switches:
        names = ", ".join(f'"{s}"' for s in switches)
        raise ArgoCompileError(
            f"{plan.flow_name} cannot be deployed to Argo Workflows: the Argo export does "
            f"not support switches yet (step {names} calls self.next({{...}}, condition=...)). "
            "Use static branches, or deploy it to Step Functions."
        )


def workflow_template(plan: DeploymentPlan, target: ArgoTarget) -> dict[str, Any]:
    _check_supported(plan)
    _check_names(plan)
    levels = _levels(plan)
    dags: dict[tuple[str, ...], list[dict]] = {(): []}
    for split, step in plan.steps.items():
        if step.kind == "foreach":
            dags[(*levels[split], split)] = []
    last_in_body: dict[str, str] = {}  # foreach split -> the body step its join reads
    for step in plan.steps.values():
        if step.closes_foreach:
            last_in_body[plan.steps[step.matching_split].name] = step.in_funcs[0]

    for name, step in plan.steps.items():
        level = levels[name]
        dags[level].append(_dag_task(plan, step, level, last_in_body))
        if step.kind == "foreach":
            inner = (*level, name)
            dags[level].append(
                {
                    "name": _foreach_task(name),
                    "template": _dag_name(inner),
                    "dependencies": [_task_name(name)],
                    "withParam": f"{{{{tasks.{_task_name(name)}.outputs.parameters.splits}}}}",
                    "arguments": {
                        "parameters": [
                            {"name": "suffix", "value": f"{_suffix(level)}-{{{{item}}}}"},
                            {"name": "split-index", "value": "{{item}}"},
                            {"name": "input-paths", "value": _paths(_path(name, _suffix(level)))},
                        ]
                    },
                }
            )

    templates = [_dag_template(level, tasks, last_in_body) for level, tasks in dags.items()]
    templates += [
        _step_template(plan, step, target, levels, last_in_body) for step in plan.steps.values()
    ]
    return {
        "apiVersion": API_VERSION,
        "kind": "WorkflowTemplate",
        "metadata": _metadata(plan, target),
        "spec": {
            "entrypoint": "main",
            "arguments": {"parameters": _arguments(plan)},
            **({"serviceAccountName": target.service_account} if target.service_account else {}),
            "templates": templates,
        },
    }


def _dag_name(level: tuple[str, ...]) -> str:
    return "main" if not level else f"foreach-{kubernetes_name(level[-1])}"


def _suffix(level: tuple[str, ...]) -> str:
    return ROOT_TASK if not level else "{{inputs.parameters.suffix}}"


def _path(step: str, suffix: str) -> str:
    """A task of this run as the deployed task's input paths name it: ``step/task_id``."""
    return f"{step}/{suffix}"


def _paths(*paths: str) -> str:
    return json.dumps(list(paths))


def _dag_task(
    plan: DeploymentPlan, step: StepPlan, level: tuple[str, ...], last_in_body: dict[str, str]
) -> dict[str, Any]:
    suffix = _suffix(level)
    params = [{"name": "task-id", "value": suffix}]
    deps: list[str] = []
    if not step.in_funcs:
        pass  # start: no inputs
    elif step.closes_foreach:
        split = step.matching_split
        deps.append(_foreach_task(split))
        params.append(
            {
                "name": "input-paths",
                "value": f"{{{{tasks.{_foreach_task(split)}.outputs.parameters.task-path}}}}",
            }
        )
    elif level and plan.steps[step.in_funcs[0]].kind == "foreach" and step.in_funcs[0] == level[-1]:
        # the first step of a foreach body: its input and index come from the fan-out
        params.append({"name": "input-paths", "value": "{{inputs.parameters.input-paths}}"})
        params.append({"name": "split-index", "value": "{{inputs.parameters.split-index}}"})
    else:
        deps += [_task_name(p) for p in step.in_funcs]
        params.append(
            {"name": "input-paths", "value": _paths(*(_path(p, suffix) for p in step.in_funcs))}
        )
    task: dict[str, Any] = {"name": _task_name(step.name), "template": _template_name(step.name)}
    if deps:
        task["dependencies"] = deps
    task["arguments"] = {"parameters": params}
    return task


def _template_name(step: str) -> str:
    return f"step-{kubernetes_name(step)}"


def _dag_template(
    level: tuple[str, ...], tasks: list[dict], last_in_body: dict[str, str]
) -> dict[str, Any]:
    tpl: dict[str, Any] = {"name": _dag_name(level)}
    if level:
        tpl["inputs"] = {
            "parameters": [{"name": n} for n in ("suffix", "split-index", "input-paths")]
        }
        last = last_in_body[level[-1]]
        tpl["outputs"] = {
            "parameters": [
                {
                    "name": "task-path",
                    "valueFrom": {
                        "parameter": f"{{{{tasks.{_task_name(last)}.outputs.parameters.task-path}}}}"
                    },
                }
            ]
        }
    tpl["dag"] = {"tasks": tasks}
    return tpl


def _step_template(
    plan: DeploymentPlan,
    step: StepPlan,
    target: ArgoTarget,
    levels: dict[str, tuple[str, ...]],
    last_in_body: dict[str, str],
) -> dict[str, Any]:
    a = step.platform_attributes
    inputs = ["task-id"]
    if step.in_funcs:
        inputs.append("input-paths")
    first_in_body = bool(levels[step.name]) and step.in_funcs == (levels[step.name][-1],)
    if first_in_body:
        inputs.append("split-index")
    env = dict(step.env)
    env.update(
        {
            entry.ENV_RUN_ID: RUN_ID,
            entry.ENV_TASK_ID: "{{inputs.parameters.task-id}}",
            entry.ENV_ATTEMPT: "{{retries}}",
            entry.ENV_OUTPUT_DIR: OUTPUT_DIR,
            "PYTHONUNBUFFERED": "1",
            "METAFLOWLIKE_USER": target.user,
            f"{RUNS_ON_PREFIX}PLATFORM": "argo-workflows",
            f"{RUNS_ON_PREFIX}WORKFLOW": "{{workflow.name}}",
            f"{RUNS_ON_PREFIX}NAMESPACE": target.namespace,
        }
    )
    if step.in_funcs:
        env[entry.ENV_INPUT_PATHS] = "{{inputs.parameters.input-paths}}"
    if first_in_body:
        env[entry.ENV_SPLIT_INDEX] = "{{inputs.parameters.split-index}}"
    if not step.in_funcs:  # start: the parameter values, one variable each
        for p in plan.parameters:
            env[entry.ENV_PARAM_PREFIX + p.name] = f"{{{{workflow.parameters.{p.name}}}}}"
        env[entry.ENV_TAGS] = json.dumps([f"argo-workflow-template:{target.name}"])
    pod = build_pod_spec(
        PodRequest(
            command=plan.command(step.name),
            env=env,
            image=a.get("image") or target.image,
            resources=step.resources,
            attributes=a,
            service_account=a.get("service_account") or target.service_account,
            secrets=list(dict.fromkeys([*target.secrets, *secrets_list(a.get("secrets"))])),
        )
    )
    tpl: dict[str, Any] = {
        "name": _template_name(step.name),
        "inputs": {"parameters": [{"name": n} for n in inputs]},
    }
    outs = []
    if step.kind == "foreach":
        outs.append(("splits", "splits"))
    if step.name in last_in_body.values():
        outs.append(("task-path", "task"))
    if outs:
        tpl["outputs"] = {
            "parameters": [
                {"name": name, "valueFrom": {"path": f"{WORKDIR}/{OUTPUT_DIR}/{field_}"}}
                for name, field_ in outs
            ]
        }
    labels = {f"{LABEL_PREFIX}/step": _label(step.name)}
    labels.update({str(k): str(v) for k, v in (a.get("labels") or {}).items()})
    tpl["metadata"] = {"labels": labels}
    if a.get("annotations"):
        tpl["metadata"]["annotations"] = {str(k): str(v) for k, v in a["annotations"].items()}
    (container,) = pod["containers"]
    tpl["container"] = container
    tpl["volumes"] = pod["volumes"]
    for key in ("nodeSelector", "tolerations", "serviceAccountName"):
        if key in pod:
            tpl[key] = pod[key]
    if step.timeout_seconds:
        tpl["activeDeadlineSeconds"] = str(step.timeout_seconds + STARTUP_SLACK)  # IntOrString
    limit = step.retries + (1 if step.catch else 0)
    if limit:
        # an attempt beyond the step's retries only records a hard death for @catch
        tpl["retryStrategy"] = {
            "limit": str(limit),  # an IntOrString, a string in Argo's schema
            "retryPolicy": "Always",
            "backoff": {"duration": f"{step.retry_delay_seconds}s"},
        }
    return tpl


def _label(text: str) -> str:
    value = re.sub(r"[^A-Za-z0-9_.-]+", "_", str(text))[:63]
    return value.strip("_.-") or "x"


def _arguments(plan: DeploymentPlan) -> list[dict[str, Any]]:
    """One workflow argument per Parameter, its default as it would be typed."""
    args = []
    for p in plan.parameters:
        arg: dict[str, Any] = {"name": p.name}
        if p.default is not None:
            arg["value"] = p.default
        elif not p.required:
            arg["value"] = ""  # empty: the parameter's default (None) applies
        if p.help:
            arg["description"] = p.help
        args.append(arg)
    return args


def _metadata(plan: DeploymentPlan, target: ArgoTarget) -> dict[str, Any]:
    labels = {
        "app.kubernetes.io/managed-by": "metaflowlike",
        f"{LABEL_PREFIX}/flow": _label(plan.flow_name),
    }
    if plan.project:
        labels[f"{LABEL_PREFIX}/project"] = _label(plan.project["project_name"])
        labels[f"{LABEL_PREFIX}/branch"] = _label(plan.project["branch_name"])
    labels.update(target.labels)
    return {
        "name": target.name,
        "namespace": target.namespace,
        "labels": labels,
        "annotations": {f"{LABEL_PREFIX}/deployment": plan.name},
    }


# --- the CronWorkflow ------------------------------------------------------------------


def cron_workflow(plan: DeploymentPlan, target: ArgoTarget) -> dict[str, Any]:
    """Starts a Workflow from the template on the flow's @schedule, with the defaults."""
    assert plan.schedule is not None
    spec: dict[str, Any] = {
        "schedules": [plan.schedule.kubernetes_cron()],  # Argo 3.6 and later
        "concurrencyPolicy": "Allow",
        "workflowSpec": {"workflowTemplateRef": {"name": target.name}},
    }
    if plan.schedule.timezone:
        spec["timezone"] = plan.schedule.timezone
    return {
        "apiVersion": API_VERSION,
        "kind": "CronWorkflow",
        "metadata": _metadata(plan, target),
        "spec": spec,
    }
