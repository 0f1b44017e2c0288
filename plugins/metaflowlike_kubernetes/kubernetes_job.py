"""The Job manifest of one task attempt: a pure function of the task and its settings.

Kept apart from the API calls so that the manifest can be checked on its own (tests run
every generated Job through ``kubernetes-validate --strict``). The container gets only
the environment the step asked for and what the bootstrap needs; credentials come from
the pod's service account or from named secrets (``envFrom``), never from the laptop.
"""

from __future__ import annotations

import hashlib
import math
import re
from dataclasses import dataclass, field
from typing import Any

from metaflowlike.task import RUNS_ON_PREFIX, TaskSpec

#: where the container unpacks the code package and runs the task
WORKDIR = "/metaflowlike"
TMPFS_PATH = "/metaflowlike_temp"
#: time the pod may take to bootstrap, on top of the step's @timeout
STARTUP_SLACK = 30
LABEL_PREFIX = "metaflowlike.dev"


@dataclass
class JobRequest:
    """Everything the manifest depends on."""

    spec: TaskSpec
    command: list[str]
    env: dict[str, str]
    image: str
    namespace: str
    resources: dict[str, float | None]  # cpu, memory (MB), disk (MB), gpu
    attributes: dict[str, Any]  # the @kubernetes arguments
    service_account: str | None = None
    secrets: list[str] = field(default_factory=list)
    timeout_seconds: float | None = None


def job_name(spec: TaskSpec) -> str:
    """A DNS-1123 name, unique per task attempt, readable at a glance."""
    digest = hashlib.sha1(f"{spec.pathspec}/{spec.attempt}".encode()).hexdigest()[:10]
    readable = _slug(f"{spec.flow_name}-{spec.step_name}")[:36].strip("-")
    return f"mfl-{readable}-{spec.task_id}-{spec.attempt}-{digest}"[:63].rstrip("-")


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9-]+", "-", text.lower()).strip("-") or "x"


def _label_value(text: str) -> str:
    value = re.sub(r"[^A-Za-z0-9_.-]+", "_", str(text))[:63]
    return value.strip("_.-") or "x"


def _mb(value: float) -> str:
    """Metaflow's MB, spelt exactly: 4096 -> "4096M"."""
    return f"{int(value)}M" if float(value).is_integer() else f"{value}M"


def _cpu(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else f"{int(value * 1000)}m"


@dataclass
class PodRequest:
    """What a pod that runs one task needs, whoever creates it (a Job, an Argo template)."""

    command: list[str]
    env: dict[str, str]
    image: str
    resources: dict[str, float | None]  # cpu, memory (MB), disk (MB), gpu
    attributes: dict[str, Any]  # the @kubernetes arguments
    service_account: str | None = None
    secrets: list[str] = field(default_factory=list)


def build_pod_spec(req: PodRequest) -> dict[str, Any]:
    """The pod spec of a task: one container running ``req.command`` with only ``req.env``
    (plus the pod's own name), its resources, volumes, secrets and placement."""
    a = req.attributes
    env_list: list[dict[str, Any]] = [{"name": k, "value": v} for k, v in sorted(req.env.items())]
    env_list.append(
        {
            "name": f"{RUNS_ON_PREFIX}POD",
            "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}},
        }
    )

    r = req.resources
    requests: dict[str, str] = {"cpu": _cpu(r["cpu"] or 1), "memory": _mb(r["memory"] or 4096)}
    limits: dict[str, str] = {"memory": _mb(r["memory"] or 4096)}
    if r.get("disk"):
        requests["ephemeral-storage"] = limits["ephemeral-storage"] = _mb(r["disk"])
    if r.get("gpu"):
        vendor = a.get("gpu_vendor") or "nvidia"
        limits[f"{vendor}.com/gpu"] = str(int(r["gpu"]))

    volumes: list[dict[str, Any]] = [{"name": "workdir", "emptyDir": {}}]
    mounts: list[dict[str, Any]] = [{"name": "workdir", "mountPath": WORKDIR}]
    if a.get("use_tmpfs"):
        volumes.append({"name": "tmpfs", "emptyDir": {"medium": "Memory"}})
        mounts.append({"name": "tmpfs", "mountPath": TMPFS_PATH})
        env_list.append({"name": "METAFLOWLIKE_TEMPDIR", "value": TMPFS_PATH})
    if a.get("shared_memory"):
        volumes.append(
            {"name": "dshm", "emptyDir": {"medium": "Memory", "sizeLimit": _mb(a["shared_memory"])}}
        )
        mounts.append({"name": "dshm", "mountPath": "/dev/shm"})
    for i, (claim, path) in enumerate(sorted((a.get("persistent_volume_claims") or {}).items())):
        volumes.append({"name": f"pvc-{i}", "persistentVolumeClaim": {"claimName": claim}})
        mounts.append({"name": f"pvc-{i}", "mountPath": path})

    container: dict[str, Any] = {
        "name": "task",
        "image": req.image,
        "command": req.command,
        "workingDir": WORKDIR,
        "env": env_list,
        "resources": {"requests": requests, "limits": limits},
        "volumeMounts": mounts,
    }
    if req.secrets:
        container["envFrom"] = [{"secretRef": {"name": s}} for s in req.secrets]

    pod_spec: dict[str, Any] = {
        "restartPolicy": "Never",
        "containers": [container],
        "volumes": volumes,
    }
    if req.service_account:
        pod_spec["serviceAccountName"] = req.service_account
    if a.get("node_selector"):
        pod_spec["nodeSelector"] = {str(k): str(v) for k, v in a["node_selector"].items()}
    if a.get("tolerations"):
        pod_spec["tolerations"] = list(a["tolerations"])
    return pod_spec


def build_job(req: JobRequest) -> dict[str, Any]:
    spec, a = req.spec, req.attributes
    name = job_name(spec)
    labels = {
        "app.kubernetes.io/managed-by": "metaflowlike",
        f"{LABEL_PREFIX}/flow": _label_value(spec.flow_name),
        f"{LABEL_PREFIX}/run-id": _label_value(spec.run_id),
        f"{LABEL_PREFIX}/step": _label_value(spec.step_name),
        f"{LABEL_PREFIX}/task-id": _label_value(spec.task_id),
        f"{LABEL_PREFIX}/attempt": str(spec.attempt),
    }
    labels.update({str(k): str(v) for k, v in (a.get("labels") or {}).items()})
    annotations = {f"{LABEL_PREFIX}/pathspec": spec.pathspec, f"{LABEL_PREFIX}/user": spec.user}
    annotations.update({str(k): str(v) for k, v in (a.get("annotations") or {}).items()})

    env = dict(req.env)
    env.update(
        {
            f"{RUNS_ON_PREFIX}PLATFORM": "kubernetes",
            f"{RUNS_ON_PREFIX}NAMESPACE": req.namespace,
            f"{RUNS_ON_PREFIX}JOB": name,
        }
    )
    pod_spec = build_pod_spec(
        PodRequest(
            command=req.command,
            env=env,
            image=req.image,
            resources=req.resources,
            attributes=a,
            service_account=req.service_account,
            secrets=req.secrets,
        )
    )
    job_spec: dict[str, Any] = {
        "backoffLimit": 0,  # a retry is a new Job, made by the runtime (@retry)
        "ttlSecondsAfterFinished": 7 * 24 * 3600,
        "template": {
            "metadata": {"labels": dict(labels), "annotations": dict(annotations)},
            "spec": pod_spec,
        },
    }
    if req.timeout_seconds:
        job_spec["activeDeadlineSeconds"] = int(math.ceil(req.timeout_seconds)) + STARTUP_SLACK
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {
            "name": name,
            "namespace": req.namespace,
            "labels": labels,
            "annotations": annotations,
        },
        "spec": job_spec,
    }


def secrets_list(value: Any) -> list[str]:
    if not value:
        return []
    if isinstance(value, str):
        return [s.strip() for s in value.split(",") if s.strip()]
    return [str(s) for s in value]
