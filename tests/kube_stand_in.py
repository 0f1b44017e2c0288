"""A stand-in Kubernetes cluster for tests: kmock's API server plus a tiny node agent.

kmock serves the Kubernetes API (create, read, merge-patch, delete, list with label
selectors) from memory on 127.0.0.1, but runs no controller. The node agent here plays
the Job controller and the kubelet, talking plain HTTP to the API like a node would:

- for each new Job it creates the Pod (labels ``job-name``, ``controller-uid``);
- it runs the container's command as a subprocess in a fresh empty folder, with only
  the pod spec's environment (``value``, ``fieldRef`` to the pod's name/namespace,
  ``envFrom`` secrets read from the API) plus the node's own credentials, and with the
  "image"'s Python first on PATH: a venv that has the cloud SDK but not metaflowlike;
- it enforces the memory limit (OOMKilled) and ``activeDeadlineSeconds``
  (DeadlineExceeded), stops the process when its Job is deleted, and writes the Pod's
  and the Job's status back (phase, exit code, reason, conditions).

Images ending in ``:no-pod`` never get a pod, images ending in ``:pull-fails`` get a
pod stuck in ErrImagePull and images ending in ``:unschedulable`` get a pod that no node
accepts (``PodScheduled=False``, reason ``Unschedulable``, as the scheduler reports a
request larger than any node), so the launcher's handling of Jobs that never start can be
tested too. The API server also serves Argo Workflows' resources (WorkflowTemplate,
Workflow, CronWorkflow) for the Argo export; nothing runs them. Run
``python -m tests.kube_stand_in --help`` to start one by hand.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
import uuid
from pathlib import Path

from tests import containers

POLL = 0.1
#: how often the node lists the Jobs (new ones to run, deleted ones to stop) and reads
#: a container's memory use: each costs a listing of every Job or a walk of /proc, too
#: much to do every POLL with a hundred Jobs on a 2-core machine
LIST_EVERY = 0.5
RSS_EVERY = 0.5
#: the condition the scheduler writes on a pod that fits no node
UNSCHEDULABLE = {
    "type": "PodScheduled",
    "status": "False",
    "reason": "Unschedulable",
    "message": "0/1 nodes are available: 1 Insufficient cpu.",
}


class Api:
    """Plain HTTP to the stand-in API server."""

    def __init__(self, url: str) -> None:
        self.url = url.rstrip("/")

    def call(self, method: str, path: str, body: dict | None = None) -> dict | None:
        data = json.dumps(body).encode() if body is not None else None
        ctype = "application/merge-patch+json" if method == "PATCH" else "application/json"
        req = urllib.request.Request(
            self.url + path, data=data, method=method, headers={"Content-Type": ctype}
        )
        try:
            with urllib.request.urlopen(req, timeout=30) as resp:
                return json.loads(resp.read() or b"null")
        except urllib.error.HTTPError as e:
            if e.code == 404:
                return None
            raise


class NodeAgent:
    def __init__(
        self, api: Api, python: str, node_env: dict[str, str], log_dir: Path, slots: int = 8
    ) -> None:
        self.api, self.python, self.node_env = api, python, node_env
        self.log_dir = log_dir
        self.handled: set[tuple[str, str]] = set()
        self.procs: dict[tuple[str, str], subprocess.Popen] = {}
        self.slots = threading.Semaphore(slots)  # pods running at once on this node
        self.lock = threading.Lock()

    def run_forever(self) -> None:
        while True:
            try:
                self.tick()
            except Exception as e:  # noqa: BLE001 - a node keeps going
                print(f"node agent: {type(e).__name__}: {e}", file=sys.stderr, flush=True)
            time.sleep(LIST_EVERY)

    def tick(self) -> None:
        listing = self.api.call("GET", "/apis/batch/v1/jobs") or {}
        present = set()
        for job in listing.get("items", []):
            meta = job["metadata"]
            key = (meta.get("namespace") or "default", meta["name"])
            present.add(key)
            if key not in self.handled:
                self.handled.add(key)
                threading.Thread(target=self.run_job, args=(job,), daemon=True).start()
        with self.lock:
            gone = [key for key in self.procs if key not in present]
        for key in gone:  # the Job was deleted: stop its container
            proc = self.procs.pop(key, None)
            if proc is not None:
                containers.stop(proc)

    # --- one Job -------------------------------------------------------------------

    def run_job(self, job: dict) -> None:
        ns = job["metadata"].get("namespace") or "default"
        name = job["metadata"]["name"]
        template = job["spec"]["template"]
        container = template["spec"]["containers"][0]
        image = container.get("image", "")
        if image.endswith(":no-pod"):
            return  # unschedulable without a trace: the launcher must give up on it
        pod_name = f"{name}-{uuid.uuid4().hex[:5]}"
        uid = job["metadata"].get("uid") or str(uuid.uuid4())
        labels = dict(template.get("metadata", {}).get("labels", {}))
        labels.update({"job-name": name, "controller-uid": uid})
        status: dict = {"phase": "Pending"}
        if image.endswith(":pull-fails"):  # visible with its reason from the start
            state = {"waiting": {"reason": "ErrImagePull", "message": f"pull {image}: not found"}}
            status = _pod_status("Pending", image, state)
        elif image.endswith(":unschedulable"):  # the scheduler's verdict, no container yet
            status = {"phase": "Pending", "conditions": [UNSCHEDULABLE]}
        pod = {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": pod_name, "namespace": ns, "labels": labels},
            "spec": template["spec"],
            "status": status,
        }
        self.api.call("POST", f"/api/v1/namespaces/{ns}/pods", pod)
        pod_path = f"/api/v1/namespaces/{ns}/pods/{pod_name}"
        job_path = f"/apis/batch/v1/namespaces/{ns}/jobs/{name}"
        self.api.call("PATCH", job_path, {"status": {"active": 1, "startTime": _now()}})
        if image.endswith((":pull-fails", ":unschedulable")):
            return
        with self.slots:
            if self.api.call("GET", job_path) is None:
                return  # deleted while waiting for a slot
            self.execute(ns, name, pod_name, job, container, pod_path, job_path)

    def execute(self, ns, name, pod_name, job, container, pod_path, job_path) -> None:
        image = container.get("image", "")
        env = self.pod_env(ns, pod_name, container)
        workdir = tempfile.mkdtemp(prefix="pod-")
        log = open(self.log_dir / f"{pod_name}.log", "wb")
        proc = containers.start(container["command"], env, workdir, log)
        with self.lock:
            self.procs[(ns, name)] = proc
        running = {"running": {"startedAt": _now()}}
        self.api.call("PATCH", pod_path, {"status": _pod_status("Running", image, running)})
        limit = _mb_to_bytes(container.get("resources", {}).get("limits", {}).get("memory"))
        deadline = job["spec"].get("activeDeadlineSeconds")
        started = time.time()
        reason = None
        rss_at = started
        while proc.poll() is None:
            if limit and time.time() >= rss_at and _session_rss(proc.pid) > limit:
                reason = "OOMKilled"
                os.killpg(proc.pid, signal.SIGKILL)
            elif deadline and time.time() - started > deadline:
                reason = "DeadlineExceeded"
                containers.stop(proc)
            if time.time() >= rss_at:
                rss_at = time.time() + RSS_EVERY
            time.sleep(POLL)
        code = containers.wait(proc)
        log.close()
        shutil.rmtree(workdir, ignore_errors=True)
        with self.lock:
            deleted = self.procs.pop((ns, name), None) is None
        if deleted:
            self.api.call("DELETE", pod_path)
            return
        ok = code == 0 and reason is None
        term_reason = "Completed" if ok else ("OOMKilled" if reason == "OOMKilled" else "Error")
        state = {"terminated": {"exitCode": code, "reason": term_reason, "finishedAt": _now()}}
        phase = "Succeeded" if ok else "Failed"
        self.api.call("PATCH", pod_path, {"status": _pod_status(phase, image, state)})
        if ok:
            cond = {"type": "Complete", "status": "True"}
            status = {"active": 0, "succeeded": 1, "conditions": [cond]}
        else:
            cond = {
                "type": "Failed",
                "status": "True",
                "reason": "DeadlineExceeded"
                if reason == "DeadlineExceeded"
                else "BackoffLimitExceeded",
                "message": "Job was active longer than specified deadline"
                if reason == "DeadlineExceeded"
                else "Job has reached the specified backoff limit",
            }
            status = {"active": 0, "failed": 1, "conditions": [cond]}
        self.api.call("PATCH", job_path, {"status": status})

    def pod_env(self, ns: str, pod_name: str, container: dict) -> dict[str, str]:
        """Only what the pod spec says, plus the node's own identity and the image PATH."""
        env = containers.image_env(self.python, self.node_env)
        for source in container.get("envFrom", []):
            secret_name = source.get("secretRef", {}).get("name")
            secret = self.api.call("GET", f"/api/v1/namespaces/{ns}/secrets/{secret_name}")
            for k, v in ((secret or {}).get("data") or {}).items():
                env[k] = base64.b64decode(v).decode()
        fields = {"metadata.name": pod_name, "metadata.namespace": ns}
        for item in container.get("env", []):
            if "value" in item:
                env[item["name"]] = str(item["value"])
            else:
                path = item.get("valueFrom", {}).get("fieldRef", {}).get("fieldPath")
                env[item["name"]] = fields.get(path, "")
        return env


def _session_rss(sid: int) -> int:
    """Resident bytes of every process in the container's session."""
    total = 0
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            if int(fields[3]) != sid:  # field 6 of stat: the session id
                continue
            total += int(fields[21]) * os.sysconf("SC_PAGE_SIZE")  # field 24: rss pages
        except (OSError, IndexError, ValueError):
            continue
    return total


def _mb_to_bytes(value: str | None) -> int | None:
    if not value:
        return None
    units = {"M": 10**6, "Mi": 2**20, "G": 10**9, "Gi": 2**30}
    for suffix in ("Mi", "Gi", "M", "G"):
        if value.endswith(suffix):
            return int(float(value[: -len(suffix)]) * units[suffix])
    return int(value)


def _pod_status(phase: str, image: str, state: dict) -> dict:
    return {
        "phase": phase,
        "containerStatuses": [
            {
                "name": "task",
                "image": image,
                "imageID": "",
                "ready": "running" in state,
                "restartCount": 0,
                "state": state,
            }
        ],
    }


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


def write_kubeconfig(path: Path, url: str) -> None:
    path.write_text(
        json.dumps(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "clusters": [{"name": "stand-in", "cluster": {"server": url}}],
                "users": [{"name": "tester", "user": {"token": "stand-in"}}],
                "contexts": [
                    {
                        "name": "stand-in",
                        "context": {
                            "cluster": "stand-in",
                            "user": "tester",
                            "namespace": "default",
                        },
                    }
                ],
                "current-context": "stand-in",
            }
        )
    )


#: Argo Workflows' resources, as a cluster with Argo installed serves them (CRDs)
ARGO_RESOURCES = {
    "kind": "APIResourceList",
    "apiVersion": "v1",
    "groupVersion": "argoproj.io/v1alpha1",
    "resources": [
        {
            "name": plural,
            "singularName": plural[:-1],
            "namespaced": True,
            "kind": kind,
            "verbs": ["create", "delete", "get", "list", "patch", "update", "watch"],
        }
        for plural, kind in (
            ("workflowtemplates", "WorkflowTemplate"),
            ("workflows", "Workflow"),
            ("cronworkflows", "CronWorkflow"),
        )
    ],
}


async def _serve(port: int, ready: threading.Event, holder: dict) -> None:
    import kmock

    emulator = kmock.KubernetesEmulator()
    emulator.resources.load_bundled()
    emulator.resources.load_data(json.dumps([ARGO_RESOURCES]))
    async with emulator, kmock.Server(emulator, host="127.0.0.1", port=port or None) as server:
        holder["url"] = str(server.url).rstrip("/")
        ready.set()
        await asyncio.Event().wait()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--python", required=True, help="The image's Python (cloud SDK only).")
    parser.add_argument("--kubeconfig", default=None, help="Write a kube config here.")
    parser.add_argument("--log-dir", required=True, help="Container logs go here.")
    parser.add_argument("--slots", type=int, default=8, help="Pods running at once.")
    parser.add_argument(
        "--node-env", action="append", default=[], help="KEY=VALUE the node gives every pod."
    )
    args = parser.parse_args(argv)
    containers.stop_all_on_sigterm()
    ready, holder = threading.Event(), {}
    threading.Thread(
        target=lambda: asyncio.run(_serve(args.port, ready, holder)), daemon=True
    ).start()
    if not ready.wait(60):
        raise SystemExit("kmock did not start")
    url = holder["url"]
    if args.kubeconfig:
        write_kubeconfig(Path(args.kubeconfig), url)
    node_env = dict(item.split("=", 1) for item in args.node_env)
    log_dir = Path(args.log_dir)
    log_dir.mkdir(parents=True, exist_ok=True)
    agent = NodeAgent(Api(url), args.python, node_env, log_dir, args.slots)
    print(f"READY {url}", flush=True)
    agent.run_forever()


if __name__ == "__main__":
    main()
