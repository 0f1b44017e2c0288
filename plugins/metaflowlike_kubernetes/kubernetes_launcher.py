"""The ``kubernetes`` launcher: each task attempt is one Kubernetes Job.

Talks to the cluster only through the official client's typed APIs (``BatchV1Api``,
``CoreV1Api``) with the kube config of ``KUBECONFIG`` / ``~/.kube/config``, or the
in-cluster one. Packaging, the bootstrap, log relay and Ctrl-C are the shared
``RemoteLauncher``'s; this module turns a task into a Job, reads the run's Jobs and
pods back (two list calls per poll, whatever the width, read as plain JSON: the
client's typed objects cost more CPU than the requests), and names why a Job failed.
"""

from __future__ import annotations

import json
import os
import threading
import time
from dataclasses import dataclass
from typing import Any

from metaflowlike import config
from metaflowlike.decorators import StepPolicy, launcher_decorator, step_decorators
from metaflowlike.plugins import import_sdk
from metaflowlike.remote_launcher import RemoteLauncher, RemoteStatus

from .kubernetes_decorator import KubernetesDecorator, merged_resources
from .kubernetes_job import LABEL_PREFIX, JobRequest, build_job, secrets_list

#: seconds a Job may go without a running container before it is reported and deleted
POD_START_TIMEOUT_ENV = "METAFLOWLIKE_KUBERNETES_POD_START_TIMEOUT"
DEFAULT_POD_START_TIMEOUT = 600.0
#: waiting reasons that will not fix themselves
_FATAL_WAITING = {"InvalidImageName", "CreateContainerConfigError", "ErrImageNeverPull"}
#: the labels that select every Job (and pod) of one run
FLOW_LABEL = f"{LABEL_PREFIX}/flow"
RUN_LABEL = f"{LABEL_PREFIX}/run-id"


@dataclass
class Job:
    name: str
    namespace: str
    submitted: float
    manifest: dict[str, Any]
    selector: str  # the labels of every Job of its run
    pod: str | None = None
    last_problem: str | None = None
    listed: bool = False  # a listing has shown it (missing later: it was deleted)

    @property
    def key(self) -> tuple[str, str]:
        return (self.namespace, self.name)


class KubernetesLauncher(RemoteLauncher):
    name = "kubernetes"

    def __init__(self, context: Any) -> None:
        super().__init__(context)
        # imported once here: the forked poller inherits it
        self.k8s = import_sdk(
            "kubernetes",
            needed_by="@kubernetes",
            package="the kubernetes client",
            extra="kubernetes",
        )
        self.settings = config.load_settings()
        self._apis: tuple[Any, Any, int] | None = None
        self._apis_lock = threading.Lock()  # the poller's threads share one client

    # --- client ----------------------------------------------------------------------

    def _clients(self) -> tuple[Any, Any]:
        """Typed API objects for this process (the run's poller makes its own)."""
        with self._apis_lock:
            return self._make_clients()

    def _make_clients(self) -> tuple[Any, Any]:
        if self._apis is None or self._apis[2] != os.getpid():
            k8s = self.k8s
            try:
                k8s.config.load_kube_config()
            except Exception:  # noqa: BLE001 - no kube config file: try in-cluster
                try:
                    k8s.config.load_incluster_config()
                except k8s.config.ConfigException as e:
                    raise RuntimeError(
                        "no Kubernetes configuration: set KUBECONFIG, create ~/.kube/config, "
                        f"or run inside a cluster ({e})"
                    ) from None
            api = k8s.client.ApiClient()
            self._apis = (k8s.client.BatchV1Api(api), k8s.client.CoreV1Api(api), os.getpid())
        return self._apis[0], self._apis[1]

    # --- the manifest ----------------------------------------------------------------

    def job_request(self, spec, plan, command: list[str], env: dict) -> JobRequest:
        ctx = self.context
        decos = step_decorators(ctx.graph[spec.step_name], ctx.with_decorators)
        own = launcher_decorator(decos, self.name) or KubernetesDecorator()
        a = own.attributes
        k = self.settings.kubernetes
        timeout = StepPolicy.of(decos).timeout_seconds
        return JobRequest(
            spec=spec,
            command=command,
            env=env,
            image=a["image"] or k.image,
            namespace=a["namespace"] or k.namespace,
            resources=merged_resources(decos),
            attributes=a,
            service_account=a["service_account"] or k.service_account,
            secrets=list(dict.fromkeys([*k.secrets, *secrets_list(a["secrets"])])),
            timeout_seconds=timeout,
        )

    # --- RemoteLauncher (in the run's poller) -------------------------------------

    def submit(self, spec, plan, command: list[str], env: dict) -> Job:
        manifest = build_job(self.job_request(spec, plan, command, env))
        meta = manifest["metadata"]
        batch, _ = self._clients()
        # the response is not turned into client objects: that costs more than the call
        batch.create_namespaced_job(meta["namespace"], manifest, _preload_content=False)
        labels = meta["labels"]
        selector = ",".join(f"{k}={labels[k]}" for k in (FLOW_LABEL, RUN_LABEL))
        return Job(meta["name"], meta["namespace"], time.time(), manifest, selector)

    def submitted_note(self, job: Job) -> str:
        return f"Kubernetes Job {job.namespace}/{job.name} submitted."

    def poll_all(self, jobs: list[Job]) -> list[RemoteStatus]:
        """Two list calls per namespace for all the run's Jobs: its Jobs and its pods,
        selected by the run's labels (a pod carries its Job template's labels)."""
        batch, core = self._clients()
        found: dict[tuple[str, str], dict] = {}
        pods: dict[tuple[str, str], dict] = {}
        for namespace, selector in {(j.namespace, j.selector) for j in jobs}:
            listed = batch.list_namespaced_job(
                namespace, label_selector=selector, _preload_content=False
            )
            for item in json.loads(listed.data).get("items") or []:
                found[(namespace, item["metadata"]["name"])] = item
            listed = core.list_namespaced_pod(
                namespace, label_selector=selector, _preload_content=False
            )
            for pod in json.loads(listed.data).get("items") or []:
                owner = (pod["metadata"].get("labels") or {}).get("job-name")
                if owner:
                    pods[(namespace, owner)] = pod  # the latest one listed
        return [self._status(j, found.get(j.key), pods.get(j.key)) for j in jobs]

    def _status(self, job: Job, found: dict | None, pod: dict | None) -> RemoteStatus:
        note = None
        if pod is not None and pod["metadata"]["name"] != job.pod:
            job.pod = pod["metadata"]["name"]
            note = f"Pod {job.namespace}/{job.pod} created."
        if found is None:
            if job.listed:
                return RemoteStatus(
                    True, None, f"Kubernetes Job {job.namespace}/{job.name} was deleted"
                )
            status: dict = {}
        else:
            job.listed = True
            status = found.get("status") or {}
        started = _container_started(pod)
        failed = _condition(status, "Failed")
        if status.get("succeeded") or _condition(status, "Complete"):
            return RemoteStatus(True, 0, note=note)
        if failed is not None or status.get("failed"):
            return RemoteStatus(True, _exit_code(pod), _failure(job, failed, pod), note=note)
        if not started:
            job.last_problem = _pending_problem(pod) or job.last_problem
            fatal = job.last_problem and job.last_problem.split(":", 1)[0] in _FATAL_WAITING
            if fatal or time.time() - job.submitted > self.pod_start_timeout():
                self.cancel(job)
                what = job.last_problem or (
                    f"its pod {job.pod} is still pending"
                    if job.pod
                    else "no pod was created for it"
                )
                return RemoteStatus(
                    True,
                    None,
                    f"Kubernetes Job {job.namespace}/{job.name} did not start within "
                    f"{self.pod_start_timeout():g} seconds: {what}",
                    note=note,
                )
        return RemoteStatus(False, running=started, note=note)

    def cancel(self, job: Job) -> None:
        batch, _ = self._clients()
        try:
            batch.delete_namespaced_job(
                job.name, job.namespace, propagation_policy="Background", _preload_content=False
            )
        except self.k8s.client.ApiException as e:
            if e.status != 404:
                raise

    def pod_start_timeout(self) -> float:
        return float(os.environ.get(POD_START_TIMEOUT_ENV) or DEFAULT_POD_START_TIMEOUT)


def _condition(status: dict, kind: str) -> dict | None:
    for cond in status.get("conditions") or []:
        if cond.get("type") == kind and cond.get("status") == "True":
            return cond
    return None


def _container_states(pod: dict | None) -> list[dict]:
    status = (pod or {}).get("status") or {}
    return [cs.get("state") or {} for cs in status.get("containerStatuses") or []]


def _terminated(pod: dict | None) -> dict | None:
    for state in _container_states(pod):
        if state.get("terminated"):
            return state["terminated"]
    return None


def _exit_code(pod: dict | None) -> int | None:
    term = _terminated(pod)
    return term.get("exitCode") if term is not None else None


def _failure(job: Job, failed: dict | None, pod: dict | None) -> str:
    """Why the Job failed, in Kubernetes' words: "OOMKilled (exit code 137)"..."""
    parts = []
    term = _terminated(pod)
    if term is not None:
        parts.append(f"{term.get('reason') or 'Error'} (exit code {term.get('exitCode')})")
    reason = (failed or {}).get("reason")
    if reason and reason != "BackoffLimitExceeded":
        message = failed.get("message") if failed else None
        parts.append(reason + (f": {message}" if message else ""))
    if not parts:
        parts.append("the Job failed")
    return f"Kubernetes Job {job.namespace}/{job.name}: " + ", ".join(parts)


def _container_started(pod: dict | None) -> bool:
    if pod is None or not pod.get("status"):
        return False
    for state in _container_states(pod):
        if state.get("running") or state.get("terminated"):
            return True
    return pod["status"].get("phase") in ("Running", "Succeeded", "Failed")


def _pending_problem(pod: dict | None) -> str | None:
    """What keeps a pod from starting: an image pull error, unschedulable..."""
    if pod is None or not pod.get("status"):
        return None
    for state in _container_states(pod):
        waiting = state.get("waiting")
        if waiting and waiting.get("reason") not in (None, "ContainerCreating"):
            return f"{waiting['reason']}: {waiting.get('message') or ''}".rstrip(": ")
    for cond in pod["status"].get("conditions") or []:
        if cond.get("type") == "PodScheduled" and cond.get("status") == "False":
            reason, message = cond.get("reason") or "Unschedulable", cond.get("message") or ""
            return f"{reason}: {message}".rstrip(": ")
    return None
