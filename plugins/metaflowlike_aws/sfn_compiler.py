"""A flow as an Amazon States Language state machine: one AWS Batch job per task.

The compiler only translates the deployment core's ``DeploymentPlan``: every task is a
``batch:submitJob.sync`` Task state running the step's container command (the
bootstrap, then ``deployed-step``), with the task's ids passed as environment
variables computed inside the workflow (``deployment/entry.py`` reads them).

How the ids travel. The state data is small and the same everywhere::

    {"run_id": "sfn-<execution name>", "tid": "1-0-2", "done": {"step": "a"}, ...}

- ``run_id`` is set once by the first state from the execution's name;
- ``tid`` is the task id: ``1`` outside any foreach, and the parent's id plus
  ``-<index>`` inside each foreach, so a step's tasks have distinct, reproducible ids;
- every Task state leaves ``done.step`` (its step's name) through its ``ResultSelector``,
  so the next step's input path is ``<done.step>/<tid>`` whichever case of a switch ran;
- a foreach step's task writes its split indexes next to itself in the datastore; an
  ``aws-sdk:s3:getObject`` state reads them and a ``Map`` runs the body once per index
  (a ``Map`` inside a ``Map`` for nested foreaches). A switch's choice is read the same
  way, then a ``Choice`` state goes on with the chosen case;
- the body of a foreach and each branch of a static split (a ``Parallel``) end with a
  ``Pass`` that leaves ``{"path": "<step>/<tid>"}``; the join's input paths are the list
  of those, in split order.

``@retry`` becomes a ``Retry`` (the step's count and delay; the attempt number is
``$$.State.RetryCount``), ``@catch`` a ``Catch`` leading to one more attempt that
records the failure without running user code (what the local runtime does after a
hard death), ``@timeout`` the Task's ``TimeoutSeconds`` and the job's own timeout.
"""

from __future__ import annotations

import json
import math
from typing import Any

from metaflowlike import config
from metaflowlike.deployment import entry
from metaflowlike.deployment.plan import DeploymentPlan, StepPlan
from metaflowlike.exceptions import MetaflowlikeException
from metaflowlike.task import RUNS_ON_INDIRECT, RUNS_ON_PREFIX

from .batch_launcher import MIN_TIMEOUT, STARTUP_SLACK, JobDefinitionRequest

#: Step Functions' limit on a state machine definition, in bytes
MAX_DEFINITION = 1_048_576
#: Step Functions' limit on an execution's input, in bytes
MAX_INPUT = 262_144
#: the first state: names the run after the execution
INIT_STATE = "init"


class SfnCompileError(MetaflowlikeException):
    headline = "Cannot export to Step Functions"


def _fmt(template: str, *paths: str) -> str:
    """An intrinsic ``States.Format`` call; ``template`` is escaped for its quotes."""
    escaped = template.replace("\\", "\\\\").replace("'", "\\'")
    return f"States.Format('{escaped}', {', '.join(paths)})"


def _one_path(path_expr: str) -> str:
    """A JSON list holding one input path, as an intrinsic expression."""
    return f"States.JsonToString(States.Array({path_expr}))"


class SfnCompiler:
    """Compiles one ``DeploymentPlan``; ``definition()`` is the ASL document."""

    def __init__(
        self,
        plan: DeploymentPlan,
        *,
        user: str,
        max_workers: int | None = None,
        workflow_timeout: int | None = None,
        settings: Any = None,
    ) -> None:
        self.plan = plan
        self.user = user
        self.max_workers = max_workers
        self.workflow_timeout = workflow_timeout
        self.settings = settings or config.load_settings()
        self.bucket, self.prefix = _split_s3(plan.datastore_root)
        self.requests: dict[str, JobDefinitionRequest] = {}
        self.queues: dict[str, str] = {}

    # --- the document -----------------------------------------------------------------

    def definition(self) -> dict[str, Any]:
        init = {
            "Type": "Pass",
            "Comment": "Name the run after the execution; every task id starts at 1.",
            "Parameters": {
                "run_id.$": _fmt("sfn-{}", "$$.Execution.Name"),
                "params.$": "States.JsonToString($.Parameters)",
                "tid": "1",
            },
            "Next": "start",
        }
        states = {INIT_STATE: init}
        states.update(self.scope("start", stop=None, first_parent=False))
        doc: dict[str, Any] = {
            "Comment": f"{self.plan.flow_name}, exported by metaflowlike: one AWS Batch job "
            "per task, each running the step's command.",
            "StartAt": INIT_STATE,
            "States": states,
        }
        if self.workflow_timeout:
            doc["TimeoutSeconds"] = int(self.workflow_timeout)
        return doc

    def json(self) -> str:
        text = json.dumps(self.definition(), indent=2)
        size = len(text.encode())
        if size > MAX_DEFINITION:
            raise SfnCompileError(
                f"The state machine of {self.plan.flow_name} takes {size} bytes, more than the "
                f"{MAX_DEFINITION} bytes Step Functions accepts: the flow has too many steps "
                "for one state machine."
            )
        return text

    def scope(self, first: str, stop: str | None, first_parent: bool) -> dict[str, Any]:
        """The states from step ``first`` until the join ``stop`` (exclusive) or the end.
        ``first_parent``: ``first`` is the body of a foreach, whose input is the split
        task (``$.parent``) rather than the task before it in this scope."""
        states: dict[str, Any] = {}
        todo, seen = [first], set()
        while todo:
            name = todo.pop(0)
            if name in seen:
                continue
            seen.add(name)
            step = self.plan.steps[name]
            parent_input = first_parent and name == first
            states[name] = None  # the task's place: before the states that follow it
            after = self.after(step, stop, states, todo)
            states[name] = self.task_state(step, after, parent_input)
            if step.catch:
                states[f"{name}.catch"] = self.task_state(step, after, parent_input, fallback=True)
        return states

    def next_of(self, frm: str, target: str, stop: str | None, states: dict, todo: list) -> str:
        """The state that follows step ``frm`` when its next step is ``target``."""
        if target == stop:
            end = f"{frm}.path"
            states[end] = {
                "Type": "Pass",
                "Comment": f"The input path this branch gives {stop}.",
                "Parameters": {"path.$": _fmt("{}/{}", "$.done.step", "$.tid")},
                "End": True,
            }
            return end
        todo.append(target)
        return target

    def after(self, step: StepPlan, stop: str | None, states: dict, todo: list) -> str | None:
        """Add the states between ``step``'s task and the next task; the first of them."""
        name = step.name
        if step.kind == "end":
            return None
        if step.kind in ("linear", "join"):
            return self.next_of(name, step.out_funcs[0], stop, states, todo)
        if step.kind == "branch":
            join = step.matching_join
            states[f"{name}.split"] = {
                "Type": "Parallel",
                "Branches": [
                    {"StartAt": out, "States": self.scope(out, stop=join, first_parent=False)}
                    for out in step.out_funcs
                ],
                "ResultSelector": {"paths.$": "$[*].path"},
                "ResultPath": "$.gathered",
                "Next": self.next_of(name, join, stop, states, todo),
            }
            return f"{name}.split"
        read = f"{name}.output"
        states[read] = self.read_output(step)
        if step.kind == "foreach":
            join = step.matching_join
            body = step.out_funcs[0]
            item = {
                "run_id.$": "$.run_id",
                "tid.$": _fmt("{}-{}", "$.tid", "$$.Map.Item.Value"),
                "split.$": _fmt("{}", "$$.Map.Item.Value"),
                "parent.$": "$.tid",
                "done.$": "$.done",
            }
            map_state: dict[str, Any] = {
                "Type": "Map",
                "ItemsPath": "$.output.doc.splits",
                "ItemSelector": item,
                "ItemProcessor": {
                    "ProcessorConfig": {"Mode": "INLINE"},
                    "StartAt": body,
                    "States": self.scope(body, stop=join, first_parent=True),
                },
                "ResultSelector": {"paths.$": "$[*].path"},
                "ResultPath": "$.gathered",
                "Next": self.next_of(name, join, stop, states, todo),
            }
            if self.max_workers:
                map_state["MaxConcurrency"] = int(self.max_workers)
            states[f"{name}.foreach"] = map_state
            states[read]["Next"] = f"{name}.foreach"
            return read
        # a switch: go on with the case its task chose
        choice = f"{name}.switch"
        states[choice] = {
            "Type": "Choice",
            "Choices": [
                {
                    "Variable": "$.output.doc.next_step",
                    "StringEquals": target,
                    "Next": self.next_of(name, target, stop, states, todo),
                }
                for target in dict.fromkeys(t for _, t in step.switch_cases)
            ],
            "Default": f"{name}.unknown-case",
        }
        states[f"{name}.unknown-case"] = {
            "Type": "Fail",
            "Error": "metaflowlike.UnknownCase",
            "Cause": f"The switch step {name} chose a step this state machine does not have: "
            "the flow changed since it was deployed.",
        }
        states[read]["Next"] = choice
        return read

    def read_output(self, step: StepPlan) -> dict[str, Any]:
        """An S3 GetObject of what the task said (splits, chosen case)."""
        key = "/".join(
            p
            for p in (self.prefix, entry.output_path(self.plan.flow_name, "{}", step.name, "{}"))
            if p
        )
        return {
            "Type": "Task",
            "Comment": f"What {step.name} decided, as its task wrote it next to itself.",
            "Resource": "arn:aws:states:::aws-sdk:s3:getObject",
            "Parameters": {"Bucket": self.bucket, "Key.$": _fmt(key, "$.run_id", "$.tid")},
            "ResultSelector": {"doc.$": "States.StringToJson($.Body)"},
            "ResultPath": "$.output",
            "Retry": [
                {
                    "ErrorEquals": ["States.ALL"],
                    "IntervalSeconds": 2,
                    "MaxAttempts": 3,
                    "BackoffRate": 2.0,
                }
            ],
        }

    # --- one task ---------------------------------------------------------------------

    def task_state(
        self, step: StepPlan, after: str | None, parent_input: bool, fallback: bool = False
    ) -> dict[str, Any]:
        name = step.name
        state: dict[str, Any] = {
            "Type": "Task",
            "Resource": "arn:aws:states:::batch:submitJob.sync",
            "Parameters": self.job_parameters(step, parent_input, fallback),
            "ResultSelector": {"step": name, "job.$": "$.JobId"},
            "ResultPath": "$.done",
        }
        if fallback:
            state["Comment"] = (
                f"The last attempt of {name} died before @catch could act: record the failure."
            )
        timeout = self.job_timeout(step)
        if timeout is not None:
            state["TimeoutSeconds"] = timeout + STARTUP_SLACK  # the job's timeout acts first
        if step.retries and not fallback:
            state["Retry"] = [
                {
                    "ErrorEquals": ["States.ALL"],
                    "IntervalSeconds": max(1, step.retry_delay_seconds),
                    "MaxAttempts": step.retries,
                    "BackoffRate": 1.0,
                }
            ]
        if step.catch and not fallback:
            state["Catch"] = [
                {"ErrorEquals": ["States.ALL"], "ResultPath": "$.error", "Next": f"{name}.catch"}
            ]
        if after is None:
            state["End"] = True
        else:
            state["Next"] = after
        return state

    def job_parameters(self, step: StepPlan, parent_input: bool, fallback: bool) -> dict:
        name = step.name
        env: dict[str, str] = dict(step.env)
        env.update(
            {
                "PYTHONUNBUFFERED": "1",
                "METAFLOWLIKE_USER": self.user,
                f"{RUNS_ON_PREFIX}PLATFORM": "batch",
                f"{RUNS_ON_PREFIX}QUEUE": self.queue(step),
                f"{RUNS_ON_PREFIX}JOB_ID{RUNS_ON_INDIRECT}": "AWS_BATCH_JOB_ID",
            }
        )
        if step.kind in ("foreach", "switch"):
            env[entry.ENV_OUTPUT_TO_DATASTORE] = "1"
        if fallback:
            env[entry.ENV_CATCH_FALLBACK] = "1"
        dynamic: dict[str, str] = {
            entry.ENV_RUN_ID: "$.run_id",
            entry.ENV_TASK_ID: "$.tid",
            entry.ENV_ATTEMPT: _fmt("{}", "$$.State.RetryCount"),
        }
        if name == "start":
            dynamic[entry.ENV_PARAMS] = "$.params"
        elif step.kind == "join":
            dynamic[entry.ENV_INPUT_PATHS] = "States.JsonToString($.gathered.paths)"
        elif parent_input:
            dynamic[entry.ENV_INPUT_PATHS] = _one_path(_fmt("{}/{}", "$.done.step", "$.parent"))
            dynamic[entry.ENV_SPLIT_INDEX] = "$.split"
        else:
            dynamic[entry.ENV_INPUT_PATHS] = _one_path(_fmt("{}/{}", "$.done.step", "$.tid"))
        environment = [{"Name": k, "Value": v} for k, v in sorted(env.items())]
        environment += [{"Name": k, "Value.$": v} for k, v in dynamic.items()]
        params: dict[str, Any] = {
            "JobName.$": _fmt(f"{self.plan.flow_name}-{name}-{{}}", "$.tid"),
            "JobQueue": self.queue(step),
            "JobDefinition": self.request(step).name(),
            "ContainerOverrides": {"Command": self.plan.command(name), "Environment": environment},
        }
        timeout = self.job_timeout(step)
        if timeout is not None:
            params["Timeout"] = {"AttemptDurationSeconds": timeout}
        return params

    # --- what the job asks of AWS Batch (the @batch launcher's own rules) -------------

    def request(self, step: StepPlan) -> JobDefinitionRequest:
        if step.name not in self.requests:
            a, s = step.platform_attributes, self.settings.batch
            res = step.resources
            self.requests[step.name] = JobDefinitionRequest(
                image=a.get("image") or s.image,
                cpu=float(res["cpu"] or 1),
                memory=float(res["memory"] or 4096),
                gpu=float(res["gpu"] or 0),
                iam_role=a.get("iam_role") or s.iam_role,
                execution_role=a.get("execution_role") or s.execution_role,
                shared_memory=a.get("shared_memory"),
                max_swap=a.get("max_swap"),
                swappiness=a.get("swappiness"),
                use_tmpfs=bool(a.get("use_tmpfs")),
            )
        return self.requests[step.name]

    def queue(self, step: StepPlan) -> str:
        queue = step.platform_attributes.get("queue") or self.settings.batch.job_queue
        if not queue:
            raise SfnCompileError(
                f'Step "{step.name}" needs an AWS Batch job queue: pass @batch(queue=...) or '
                "set METAFLOWLIKE_BATCH_JOB_QUEUE or batch_job_queue in "
                "~/.metaflowlike/config.json."
            )
        return queue

    def job_timeout(self, step: StepPlan) -> int | None:
        if step.timeout_seconds is None:
            return None
        return max(MIN_TIMEOUT, math.ceil(step.timeout_seconds) + STARTUP_SLACK)


def _split_s3(root: str) -> tuple[str, str]:
    if not root.startswith("s3://"):
        raise SfnCompileError(
            f"Step Functions reads what foreach and switch steps decide from the datastore, "
            f"which must be on S3; {root} is not. Pass --datastore-root s3://BUCKET/PREFIX."
        )
    bucket, _, prefix = root[len("s3://") :].partition("/")
    return bucket, prefix.strip("/")
