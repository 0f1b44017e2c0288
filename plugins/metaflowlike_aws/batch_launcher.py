"""The ``batch`` launcher: each task attempt is one AWS Batch job.

Talks to Batch only through ``boto3``. Packaging, the bootstrap, log relay and Ctrl-C
are the shared ``RemoteLauncher``'s; this module registers the job definition, submits
the job with the task's command and environment, reads the statuses of the run's jobs
back (100 per ``describe_jobs`` call), and names why a job failed (Batch's status
reason, the container's exit code and reason).

A job definition is registered once per image, resources and roles: its name carries a
hash of those, and an active definition of that name is reused instead of registering
a new revision for every task.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import threading
from dataclasses import dataclass
from typing import Any

from metaflowlike import config
from metaflowlike.decorators import StepPolicy, launcher_decorator, step_decorators
from metaflowlike.exceptions import MetaflowlikeException
from metaflowlike.plugins import import_sdk
from metaflowlike.remote_launcher import RemoteLauncher, RemoteStatus
from metaflowlike.task import RUNS_ON_INDIRECT, RUNS_ON_PREFIX

from .batch_decorator import BatchDecorator, merged_resources

#: prefix of the job definitions this launcher registers
JOB_DEFINITION_PREFIX = "metaflowlike-"
#: Batch's minimum job timeout, in seconds
MIN_TIMEOUT = 60
#: time the container may take to bootstrap, on top of the step's @timeout (the task
#: enforces @timeout itself and reports it; Batch's timeout is the backstop)
STARTUP_SLACK = 30
#: job ids one ``describe_jobs`` call accepts
DESCRIBE_LIMIT = 100


class BatchConfigError(MetaflowlikeException):
    headline = "AWS Batch is not configured"


@dataclass
class BatchJob:
    job_id: str
    name: str
    queue: str


@dataclass(frozen=True)
class JobDefinitionRequest:
    """What a job definition is made of; two tasks that agree on it share one."""

    image: str
    cpu: float
    memory: float
    gpu: float
    iam_role: str | None
    execution_role: str | None
    shared_memory: float | None
    max_swap: float | None
    swappiness: float | None
    use_tmpfs: bool

    def digest(self) -> str:
        body = json.dumps(self.__dict__, sort_keys=True, default=str)
        return hashlib.sha256(body.encode()).hexdigest()[:16]

    def name(self) -> str:
        return JOB_DEFINITION_PREFIX + self.digest()

    def container_properties(self) -> dict[str, Any]:
        props: dict[str, Any] = {
            "image": self.image,
            "command": ["true"],  # every job overrides it with its task's command
            "resourceRequirements": [
                {"type": "VCPU", "value": _number(self.cpu)},
                {"type": "MEMORY", "value": str(int(self.memory))},
            ],
        }
        if self.gpu:
            props["resourceRequirements"].append({"type": "GPU", "value": str(int(self.gpu))})
        if self.iam_role:
            props["jobRoleArn"] = self.iam_role
        if self.execution_role:
            props["executionRoleArn"] = self.execution_role
        linux: dict[str, Any] = {}
        if self.shared_memory:
            linux["sharedMemorySize"] = int(self.shared_memory)
        if self.max_swap is not None:
            linux["maxSwap"] = int(self.max_swap)
        if self.swappiness is not None:
            linux["swappiness"] = int(self.swappiness)
        if self.use_tmpfs:
            linux["tmpfs"] = [{"containerPath": "/metaflowlike_temp", "size": int(self.memory)}]
        if linux:
            props["linuxParameters"] = linux
        return props


def _number(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else str(value)


class BatchLauncher(RemoteLauncher):
    name = "batch"

    def __init__(self, context: Any) -> None:
        super().__init__(context)
        # imported once here: the forked poller inherits it
        self.boto3 = import_sdk("boto3", needed_by="@batch", package="boto3", extra="aws")
        self.settings = config.load_settings()
        self._client: tuple[Any, int] | None = None
        self._client_lock = threading.Lock()
        self._definitions: dict[str, str] = {}  # digest -> ARN, resolved in the runtime
        self._definitions_lock = threading.Lock()

    def batch(self) -> Any:
        """A Batch client for this process (the run's poller makes its own, which its
        threads share: boto3 clients are thread safe, their creation is not)."""
        with self._client_lock:
            if self._client is None or self._client[1] != os.getpid():
                self._client = (self.boto3.session.Session().client("batch"), os.getpid())
            return self._client[0]

    # --- what a task asks for ---------------------------------------------------------

    def _decorators(self, spec: Any) -> list:
        ctx = self.context
        return step_decorators(ctx.graph[spec.step_name], ctx.with_decorators)

    def definition_request(self, spec: Any) -> JobDefinitionRequest:
        decos = self._decorators(spec)
        own = launcher_decorator(decos, self.name) or BatchDecorator()
        a, s = own.attributes, self.settings.batch
        image = a["image"] or s.image
        if not image:
            raise BatchConfigError(
                f'Step "{spec.step_name}" runs on AWS Batch but no image is set: pass '
                "@batch(image=...), or set METAFLOWLIKE_BATCH_IMAGE or batch_image in "
                "~/.metaflowlike/config.json."
            )
        res = merged_resources(decos)
        return JobDefinitionRequest(
            image=image,
            cpu=res["cpu"],
            memory=res["memory"],
            gpu=res["gpu"],
            iam_role=a["iam_role"] or s.iam_role,
            execution_role=a["execution_role"] or s.execution_role,
            shared_memory=a["shared_memory"],
            max_swap=a["max_swap"],
            swappiness=a["swappiness"],
            use_tmpfs=bool(a["use_tmpfs"]),
        )

    def queue(self, spec: Any) -> str:
        own = launcher_decorator(self._decorators(spec), self.name)
        queue = (own.attributes["queue"] if own else None) or self.settings.batch.job_queue
        if not queue:
            raise BatchConfigError(
                f'Step "{spec.step_name}" runs on AWS Batch but no job queue is set: pass '
                "@batch(queue=...) or --with batch:queue=NAME, or set "
                "METAFLOWLIKE_BATCH_JOB_QUEUE or batch_job_queue in ~/.metaflowlike/config.json."
            )
        return queue

    def timeout(self, spec: Any) -> int | None:
        decos = self._decorators(spec)
        seconds = StepPolicy.of(decos).timeout_seconds
        if seconds is None:
            return None
        return max(MIN_TIMEOUT, math.ceil(seconds) + STARTUP_SLACK)

    def job_definition(self, request: JobDefinitionRequest) -> str:
        """The ARN of the active job definition for ``request``, registered if new.
        Called in the runtime before the task is handed to the poller, so that a
        configuration mistake is reported at once and tasks of one run share one
        definition instead of racing to register revisions."""
        with self._definitions_lock:
            arn = self._definitions.get(request.digest())
            if arn is None:
                arn = self._definitions[request.digest()] = self._find_or_register(request)
            return arn

    def _find_or_register(self, request: JobDefinitionRequest) -> str:
        batch = self.batch()
        name = request.name()
        found = batch.describe_job_definitions(jobDefinitionName=name, status="ACTIVE")
        for d in found.get("jobDefinitions", []):
            return d["jobDefinitionArn"]
        made = batch.register_job_definition(
            jobDefinitionName=name,
            type="container",
            containerProperties=request.container_properties(),
            tags={"metaflowlike:definition": request.digest()},
        )
        return made["jobDefinitionArn"]

    # --- RemoteLauncher --------------------------------------------------------------

    def start(self, spec, plan, *, inherited_fds: list[int]):
        self.queue(spec)  # configuration mistakes are reported before anything is submitted
        self.job_definition(self.definition_request(spec))
        return super().start(spec, plan, inherited_fds=inherited_fds)

    def submit(self, spec, plan, command: list[str], env: dict) -> BatchJob:
        request = self.definition_request(spec)
        queue = self.queue(spec)
        name = _job_name(spec)
        env = dict(env)
        env[f"{RUNS_ON_PREFIX}PLATFORM"] = "batch"
        env[f"{RUNS_ON_PREFIX}QUEUE"] = queue
        env[f"{RUNS_ON_PREFIX}JOB_ID{RUNS_ON_INDIRECT}"] = "AWS_BATCH_JOB_ID"
        kwargs: dict[str, Any] = {
            "jobName": name,
            "jobQueue": queue,
            "jobDefinition": self.job_definition(request),
            "containerOverrides": {
                "command": command,
                "environment": [{"name": k, "value": v} for k, v in sorted(env.items())],
            },
            "tags": {
                "metaflowlike:pathspec": spec.pathspec,
                "metaflowlike:attempt": str(spec.attempt),
            },
        }
        timeout = self.timeout(spec)
        if timeout is not None:
            kwargs["timeout"] = {"attemptDurationSeconds": timeout}
        job_id = self.batch().submit_job(**kwargs)["jobId"]
        return BatchJob(job_id, name, queue)

    def submitted_note(self, job: BatchJob) -> str:
        return f"AWS Batch job {job.job_id} ({job.name}) submitted to queue {job.queue}."

    def poll_all(self, jobs: list[BatchJob]) -> list[RemoteStatus]:
        """One ``describe_jobs`` call per 100 jobs, Batch's limit."""
        found: dict[str, dict[str, Any]] = {}
        ids = [job.job_id for job in jobs]
        for first in range(0, len(ids), DESCRIBE_LIMIT):
            chunk = ids[first : first + DESCRIBE_LIMIT]
            for desc in self.batch().describe_jobs(jobs=chunk).get("jobs", []):
                found[desc["jobId"]] = desc
        return [_status(job, found.get(job.job_id)) for job in jobs]

    def cancel(self, job: BatchJob) -> None:
        self.batch().terminate_job(jobId=job.job_id, reason="cancelled by metaflowlike")


def _status(job: BatchJob, desc: dict[str, Any] | None) -> RemoteStatus:
    if desc is None:
        return RemoteStatus(True, None, f"AWS Batch job {job.job_id} disappeared")
    status = desc.get("status")
    if status == "SUCCEEDED":
        return RemoteStatus(True, 0)
    if status == "FAILED":
        container = desc.get("container") or {}
        return RemoteStatus(True, container.get("exitCode"), _failure(job, desc))
    return RemoteStatus(False, running=status == "RUNNING")


def _job_name(spec: Any) -> str:
    """Batch job names: up to 128 letters, digits, hyphens and underscores."""
    raw = f"{spec.flow_name}-{spec.run_id}-{spec.step_name}-{spec.task_id}-{spec.attempt}"
    return "".join(c if c.isalnum() or c in "-_" else "-" for c in raw)[:128]


def _failure(job: BatchJob, desc: dict[str, Any]) -> str:
    """Why the job failed, in Batch's words: status reason, exit code, container reason."""
    parts = []
    if desc.get("statusReason"):
        parts.append(desc["statusReason"])
    container = desc.get("container") or {}
    if container.get("exitCode") is not None:
        parts.append(f"exit code {container['exitCode']}")
    if container.get("reason"):
        parts.append(container["reason"])
    return f"AWS Batch job {job.job_id}: " + (", ".join(parts) or "the job failed")
