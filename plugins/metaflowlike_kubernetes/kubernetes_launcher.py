"""The ``kubernetes`` launcher: each task attempt is one Kubernetes Job.

Talks to the cluster only through the official client's typed APIs (``BatchV1Api``,
``CoreV1Api``) with the kube config of ``KUBECONFIG`` / ``~/.kube/config``, or the
in-cluster one. Packaging, the bootstrap, log relay and Ctrl-C are the shared
``RemoteLauncher``'s; this module turns a task into a Job, reads the Job and its pod
back, and names why a Job failed.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from typing import Any

from metaflowlike import config
from metaflowlike.decorators import StepPolicy, step_decorators
from metaflowlike.plugins import MissingExtra
from metaflowlike.remote_launcher import RemoteLauncher, RemoteStatus

from .kubernetes_decorator import KubernetesDecorator, merged_resources
from .kubernetes_job import JobRequest, build_job, secrets_list

#: seconds a Job may go without a running container before it is reported and deleted
POD_START_TIMEOUT_ENV = "METAFLOWLIKE_KUBERNETES_POD_START_TIMEOUT"
DEFAULT_POD_START_TIMEOUT = 600.0
#: waiting reasons that will not fix themselves
_FATAL_WAITING = {"InvalidImageName", "CreateContainerConfigError", "ErrImageNeverPull"}


def _import_client() -> Any:
    try:
        import kubernetes
    except ImportError as e:
        raise MissingExtra(
            f'@kubernetes needs the kubernetes client ({e}). Install it with: pip install "metaflowlike[kubernetes]"'
        ) from e
    return kubernetes


@dataclass
class Job:
    name: str
    namespace: str
    submitted: float
    manifest: dict[str, Any]
    pod: str | None = None
    last_problem: str | None = None
    seen: set[str] = field(default_factory=set)


class KubernetesLauncher(RemoteLauncher):
    name = "kubernetes"

    def __init__(self, context: Any) -> None:
        super().__init__(context)
        self.k8s = _import_client()  # imported once here: the forked watchers inherit it
        self.settings = config.load_settings()
        self._apis: tuple[Any, Any, int] | None = None

    # --- client ----------------------------------------------------------------------

    def _clients(self) -> tuple[Any, Any]:
        """Typed API objects for this process (a forked watcher makes its own)."""
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
        own = next((d for d in decos if d.name == "kubernetes"), None) or KubernetesDecorator()
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

    # --- RemoteLauncher --------------------------------------------------------------

    def submit(self, spec, plan, command: list[str], env: dict) -> Job:
        manifest = build_job(self.job_request(spec, plan, command, env))
        meta = manifest["metadata"]
        batch, _ = self._clients()
        batch.create_namespaced_job(meta["namespace"], manifest)
        print(f"Kubernetes Job {meta['namespace']}/{meta['name']} submitted.", flush=True)
        return Job(meta["name"], meta["namespace"], time.time(), manifest)

    def poll(self, job: Job) -> RemoteStatus:
        batch, core = self._clients()
        status = batch.read_namespaced_job_status(job.name, job.namespace).status
        listed = core.list_namespaced_pod(job.namespace, label_selector=f"job-name={job.name}")
        # filter again: a server that ignores the selector must not lend us another pod
        pods = [p for p in listed.items if (p.metadata.labels or {}).get("job-name") == job.name]
        pod = pods[-1] if pods else None
        if pod is not None and pod.metadata.name != job.pod:
            job.pod = pod.metadata.name
            print(f"Pod {job.namespace}/{job.pod} created.", flush=True)
        failed = _condition(status, "Failed")
        if status is not None and (status.succeeded or _condition(status, "Complete")):
            return RemoteStatus(True, 0)
        if failed is not None or (status is not None and status.failed):
            return RemoteStatus(True, _exit_code(pod), _failure(job, failed, pod))
        started = _container_started(pod)
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
                    f"Job {job.namespace}/{job.name} did not start within "
                    f"{self.pod_start_timeout():g} seconds: {what}",
                )
        return RemoteStatus(False)

    def cancel(self, job: Job) -> None:
        batch, _ = self._clients()
        try:
            batch.delete_namespaced_job(job.name, job.namespace, propagation_policy="Background")
        except self.k8s.client.ApiException as e:
            if e.status != 404:
                raise

    def pod_start_timeout(self) -> float:
        return float(os.environ.get(POD_START_TIMEOUT_ENV) or DEFAULT_POD_START_TIMEOUT)


def _condition(status: Any, kind: str) -> Any:
    for cond in (status.conditions or []) if status is not None else []:
        if cond.type == kind and cond.status == "True":
            return cond
    return None


def _terminated(pod: Any) -> Any:
    if pod is None or pod.status is None:
        return None
    for cs in pod.status.container_statuses or []:
        if cs.state is not None and cs.state.terminated is not None:
            return cs.state.terminated
    return None


def _exit_code(pod: Any) -> int | None:
    term = _terminated(pod)
    return term.exit_code if term is not None else None


def _failure(job: Job, failed: Any, pod: Any) -> str:
    """Why the Job failed, in Kubernetes' words: "OOMKilled (exit code 137)"..."""
    parts = []
    term = _terminated(pod)
    if term is not None:
        parts.append(f"{term.reason or 'Error'} (exit code {term.exit_code})")
    if failed is not None and failed.reason and failed.reason not in ("BackoffLimitExceeded",):
        parts.append(failed.reason + (f": {failed.message}" if failed.message else ""))
    if not parts:
        parts.append("the Job failed")
    return f"Kubernetes Job {job.namespace}/{job.name}: " + ", ".join(parts)


def _container_started(pod: Any) -> bool:
    if pod is None or pod.status is None:
        return False
    for cs in pod.status.container_statuses or []:
        if cs.state is not None and (cs.state.running or cs.state.terminated):
            return True
    return pod.status.phase in ("Running", "Succeeded", "Failed")


def _pending_problem(pod: Any) -> str | None:
    """What keeps a pod from starting: an image pull error, unschedulable..."""
    if pod is None or pod.status is None:
        return None
    for cs in pod.status.container_statuses or []:
        waiting = cs.state.waiting if cs.state is not None else None
        if waiting is not None and waiting.reason not in (None, "ContainerCreating"):
            return f"{waiting.reason}: {waiting.message or ''}".rstrip(": ")
    for cond in pod.status.conditions or []:
        if cond.type == "PodScheduled" and cond.status == "False":
            return f"{cond.reason or 'Unschedulable'}: {cond.message or ''}".rstrip(": ")
    return None
