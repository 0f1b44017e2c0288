"""One poller per run follows all of its remote Jobs: against the stand-in cluster
(kmock's API server and the node agent of ``tests/kube_stand_in.py``), S3 on moto.

The runtime's API calls go through a small counting proxy in front of the API server,
so the tests see how many requests one run makes, whatever its width."""

from __future__ import annotations

import http.client
import json
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from metaflowlike import Flow, Run, client
from tests.kube_stand_in import write_kubeconfig

HEADER = """
import os
import sys
import time
from metaflowlike import FlowSpec, step, kubernetes, catch
"""


class CountingProxy:
    """Forwards HTTP requests to the API server and remembers each one's method and
    path (with its query)."""

    def __init__(self, upstream: str) -> None:
        target = urllib.parse.urlsplit(upstream)
        self.requests: list[tuple[str, str]] = []
        lock = threading.Lock()
        seen = self.requests

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def forward(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else None
                with lock:
                    seen.append((self.command, self.path))
                conn = http.client.HTTPConnection(target.hostname, target.port, timeout=60)
                headers = {k: v for k, v in self.headers.items() if k.lower() != "host"}
                conn.request(self.command, self.path, body=body, headers=headers)
                resp = conn.getresponse()
                data = resp.read()
                conn.close()
                self.send_response(resp.status)
                for k, v in resp.getheaders():
                    if k.lower() not in ("transfer-encoding", "connection", "content-length"):
                        self.send_header(k, v)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            do_GET = do_POST = do_PATCH = do_DELETE = do_PUT = forward

            def log_message(self, *args) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def calls(self, method: str, kind: str, listing: bool) -> list[str]:
        """Paths of ``method`` requests on ``kind`` ("jobs", "pods"): the listings of a
        collection, or the requests on single objects."""
        found = []
        for m, path in self.requests:
            route = urllib.parse.urlsplit(path).path.rstrip("/")
            if m == method and (route.endswith(f"/{kind}") == listing) and f"/{kind}" in route:
                found.append(path)
        return found


class Cluster:
    """Runs flows against the stand-in cluster through the counting proxy."""

    def __init__(self, cluster, root: str, folder: Path, proxy: CountingProxy) -> None:
        self.cluster, self.root, self.folder, self.proxy = cluster, root, folder, proxy
        self.kubeconfig = folder / "kubeconfig"
        write_kubeconfig(self.kubeconfig, proxy.url)

    def write(self, source: str) -> Path:
        path = self.folder / "flow.py"
        path.write_text(textwrap.dedent(HEADER + source))
        return path

    def env(self) -> dict[str, str]:
        env = dict(os.environ)
        env.pop("METAFLOWLIKE_DATASTORE", None)
        env.update(
            KUBECONFIG=str(self.kubeconfig),
            METAFLOWLIKE_DATASTORE_ROOT=self.root,
            METAFLOWLIKE_CONFIG=str(self.folder / "no-config.json"),
            METAFLOWLIKE_REMOTE_POLL_INTERVAL="0.5",
        )
        return env

    def start(self, source: str, *args: str) -> subprocess.Popen:
        return subprocess.Popen(
            [sys.executable, str(self.write(source)), "run", *args],
            cwd=self.folder,
            env=self.env(),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )

    def jobs(self, run_id: str) -> list[dict]:
        return [
            j
            for j in self.cluster.jobs()
            if j["metadata"]["labels"].get("metaflowlike.dev/run-id") == run_id
        ]


@pytest.fixture
def kube(kube_cluster, s3_root, tmp_path):
    client.set_datastore("s3", s3_root)
    client.namespace(None)
    folder = tmp_path / "project"
    folder.mkdir()
    proxy = CountingProxy(kube_cluster.server.url)
    yield Cluster(kube_cluster, s3_root, folder, proxy)
    proxy.close()
    client.set_datastore(None, None)
    client.default_namespace()


WIDE = """
class WideFlow(FlowSpec):
    @step
    def start(self):
        self.items = list(range(WIDTH))
        self.next(self.body, foreach="items")

    @kubernetes(cpu=0.1, memory=256)
    @step
    def body(self):
        print(f"split {self.input} says hello")
        self.out = self.input * 2
        self.next(self.join)

    @step
    def join(self, inputs):
        self.outs = sorted(i.out for i in inputs)
        self.next(self.end)

    @step
    def end(self):
        pass

if __name__ == "__main__":
    WideFlow()
"""


def test_one_poller_follows_many_jobs_with_a_few_list_calls(kube):
    width = 12
    began = time.monotonic()
    runtime = kube.start(WIDE.replace("WIDTH", str(width)), "--max-workers", str(width))
    out = runtime.communicate(timeout=600)[0]
    wall = time.monotonic() - began
    assert runtime.returncode == 0, out
    run = Flow("WideFlow").latest_run
    assert run["join"].task.data.outs == [2 * i for i in range(width)]
    assert f"[{run.id}/body/" in out  # the tasks' logs reached the console, prefixed
    for i in range(width):
        assert f"split {i} says hello" in out
    tasks = list(run["body"])
    assert len(tasks) == width
    for task in tasks:
        assert f"split {task.index} says hello" in task.stdout
        assert json.loads(task.metadata_dict["runs_on"])["platform"] == "kubernetes"

    created = kube.proxy.calls("POST", "jobs", listing=True)
    assert len(created) == width
    # statuses come from listings of the run's Jobs and pods, never one read per Job
    assert kube.proxy.calls("GET", "jobs", listing=False) == []
    assert kube.proxy.calls("GET", "pods", listing=False) == []
    job_lists = kube.proxy.calls("GET", "jobs", listing=True)
    pod_lists = kube.proxy.calls("GET", "pods", listing=True)
    assert job_lists and len(job_lists) == len(pod_lists)
    for path in job_lists + pod_lists:
        query = urllib.parse.parse_qs(urllib.parse.urlsplit(path).query)
        assert query["labelSelector"] == [
            f"metaflowlike.dev/flow=WideFlow,metaflowlike.dev/run-id={run.id}"
        ]
    # one poller: one listing per poll interval (0.5 s) at most, whatever the width
    assert len(job_lists) <= wall / 0.5 + 2, (len(job_lists), wall)


MIXED = """
class MixedFlow(FlowSpec):
    @step
    def start(self):
        self.items = list(range(6))
        self.next(self.body, foreach="items")

    @kubernetes(memory=300)
    @step
    def body(self):
        if self.input == 3:
            block = bytearray(600 * 1024 * 1024)
            for i in range(0, len(block), 4096):
                block[i] = 1
            time.sleep(30)
        print(f"split {self.input} done")
        self.next(self.join)

    @step
    def join(self, inputs):
        self.next(self.end)

    @step
    def end(self):
        pass

if __name__ == "__main__":
    MixedFlow()
"""


def test_a_failing_job_among_many_is_reported_with_its_reason(kube):
    runtime = kube.start(MIXED, "--max-workers", "6")
    out = runtime.communicate(timeout=600)[0]
    assert runtime.returncode == 1, out
    run = Flow("MixedFlow").latest_run
    assert sorted(t.index for t in run["body"] if t.successful) == [0, 1, 2, 4, 5]
    failed = [t for t in run["body"] if not t.successful]
    assert len(failed) == 1  # split 3, which never stored its artifacts
    assert "OOMKilled (exit code 137)" in str(failed[0].exception), out
    assert "OOMKilled (exit code 137)" in out
    for i in (0, 1, 2, 4, 5):
        assert f"split {i} done" in out
    assert "split 3 done" not in out


SLEEPERS = """
class SleepyFlow(FlowSpec):
    @step
    def start(self):
        self.items = list(range(WIDTH))
        self.next(self.nap, foreach="items")

    @kubernetes(cpu=0.1, memory=256)
    @step
    def nap(self):
        print("napping", flush=True)
        time.sleep(300)
        self.next(self.join)

    @step
    def join(self, inputs):
        self.next(self.end)

    @step
    def end(self):
        pass

if __name__ == "__main__":
    SleepyFlow()
"""


def _start_sleepers(kube, width: int) -> tuple[subprocess.Popen, str]:
    """A run whose ``width`` Jobs all exist and at least one of which is running."""
    runtime = kube.start(SLEEPERS.replace("WIDTH", str(width)), "--max-workers", str(width))
    assert runtime.stdout is not None
    for line in runtime.stdout:
        if "napping" in line:
            break
    run_id = Flow("SleepyFlow").latest_run.id
    deadline = time.monotonic() + 120
    while len(kube.jobs(run_id)) < width and time.monotonic() < deadline:
        time.sleep(0.2)
    assert len(kube.jobs(run_id)) == width
    return runtime, run_id


def _wait_gone(kube, run_id: str) -> list[dict]:
    deadline = time.monotonic() + 60
    while kube.jobs(run_id) and time.monotonic() < deadline:
        time.sleep(0.2)
    return kube.jobs(run_id)


def test_ctrl_c_with_many_jobs_running_deletes_them_all(kube):
    runtime, run_id = _start_sleepers(kube, 10)
    try:
        runtime.send_signal(signal.SIGINT)
        out = runtime.communicate(timeout=120)[0]
    finally:
        if runtime.poll() is None:
            runtime.kill()
    assert runtime.returncode == 130, out
    assert _wait_gone(kube, run_id) == []
    assert len(kube.proxy.calls("DELETE", "jobs", listing=False)) == 10
    assert not Run(f"SleepyFlow/{run_id}").successful


def test_runtime_death_deletes_every_job_of_the_run(kube):
    runtime, run_id = _start_sleepers(kube, 4)
    try:
        runtime.kill()  # no chance to clean up: the poller must notice on its own
        runtime.communicate(timeout=60)
    finally:
        if runtime.poll() is None:
            runtime.kill()
    assert _wait_gone(kube, run_id) == []
