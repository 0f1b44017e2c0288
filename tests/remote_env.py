"""What a bare container has: a Python with the cloud SDK and nothing of metaflowlike.

Remote tasks must run from the code package alone. Tests prove it by running container
commands with this interpreter, in an empty folder, with only the declared environment.
The venv is created once per test session with uv (from the ``dev`` extra).
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.cloud_servers import REPO_ROOT, Server, _spawn, aws_client, client_env, free_port
from tests.containers import image_env

#: what the stand-in "image" holds: the cloud SDK, and pip as in python:3.x images
SDK_PACKAGES = ("boto3", "pip")


def uv() -> str:
    return str(Path(sys.executable).parent / "uv")


def make_sdk_python(venv: Path) -> Path:
    """Create (or reuse) a venv at ``venv`` with the cloud SDK only; its Python."""
    python = venv / "bin" / "python"
    if not python.exists():
        subprocess.run([uv(), "venv", "-q", str(venv), "--python", sys.executable], check=True)
    subprocess.run(
        [uv(), "pip", "install", "-q", "--python", str(python), *SDK_PACKAGES], check=True
    )
    probe = subprocess.run(
        [str(python), "-c", "import metaflowlike"], capture_output=True, cwd=venv, env={}
    )
    assert probe.returncode != 0, "the SDK-only venv must not see metaflowlike"
    return python


@pytest.fixture(scope="session")
def sdk_python(tmp_path_factory) -> Path:
    """Path of a Python that has boto3 and pip but not metaflowlike, click, cloudpickle
    or uv."""
    return make_sdk_python(tmp_path_factory.mktemp("sdk-venv"))


def container_env(sdk_python: Path, extra: dict[str, str]) -> dict[str, str]:
    """The environment of a container whose image put ``sdk_python`` first on PATH."""
    return image_env(sdk_python, extra)


# --- the stand-in Kubernetes cluster ---------------------------------------------------


@dataclass
class KubeCluster:
    server: Any
    kubeconfig: Path
    pod_logs: Path
    api: Any  # kube_stand_in.Api

    def jobs(self) -> list[dict]:
        return (self.api.call("GET", "/apis/batch/v1/jobs") or {}).get("items", [])

    def pods(self) -> list[dict]:
        return (self.api.call("GET", "/api/v1/pods") or {}).get("items", [])


def network_settings() -> dict[str, str]:
    """The package index and certificate settings of this machine's network, which a
    node on the same network has too (the pods install uv and packages through it)."""
    keep = ("PIP_", "UV_", "SSL_CERT_")
    return {k: v for k, v in os.environ.items() if k.startswith(keep)}


def node_credentials(s3_url: str) -> dict[str, str]:
    """A node's own credentials for S3 at ``s3_url``: an instance role's, never the
    laptop's."""
    return client_env("s3", s3_url)


def node_identity(s3_url: str) -> dict[str, str]:
    """What every container of a stand-in node gets besides its own spec: the node's
    credentials and its network settings."""
    return {**node_credentials(s3_url), **network_settings()}


def stand_in_argv(
    module: str, port: int, sdk_python: Path, log_dir: Path, s3_url: str
) -> list[str]:
    """The command line of a stand-in server (``tests/kube_stand_in.py``,
    ``tests/batch_stand_in.py``): where it listens, the image's Python, where container
    logs go, and what the node gives every container."""
    argv = [sys.executable, "-m", f"tests.{module}", "--port", str(port)]
    argv += ["--python", str(sdk_python), "--log-dir", str(log_dir)]
    for k, v in node_identity(s3_url).items():
        argv += ["--node-env", f"{k}={v}"]
    return argv


def _spawn_stand_in(kind: str, argv: list[str], port: int, ready_path: str) -> Server:
    """Start a stand-in with ``tests`` importable, whatever the current folder."""
    path = os.pathsep.join(p for p in (str(REPO_ROOT), os.environ.get("PYTHONPATH")) if p)
    return _spawn(kind, argv, port, ready_path, env={**os.environ, "PYTHONPATH": path})


def start_kube_stand_in(sdk_python: Path, s3_url: str, base: Path, slots: int = 8) -> KubeCluster:
    """kmock's API server and the node agent; pods reach S3 at ``s3_url`` with the node's
    own credentials (``AWS_KEY_ID``), never with the laptop's."""
    from tests.kube_stand_in import Api, write_kubeconfig

    port = free_port()
    argv = stand_in_argv("kube_stand_in", port, sdk_python, base / "pods", s3_url)
    server = _spawn_stand_in("kubernetes", argv + ["--slots", str(slots)], port, "/version")
    kubeconfig = base / "kubeconfig"
    write_kubeconfig(kubeconfig, server.url)
    return KubeCluster(server, kubeconfig, base / "pods", Api(server.url))


@pytest.fixture(scope="session")
def kube_cluster(sdk_python, moto_server, tmp_path_factory) -> Iterator[KubeCluster]:
    cluster = start_kube_stand_in(sdk_python, moto_server.url, tmp_path_factory.mktemp("kube"))
    try:
        yield cluster
    finally:
        cluster.server.stop()


# --- the stand-in AWS Batch ------------------------------------------------------------


@dataclass
class BatchService:
    server: Any
    job_logs: Path
    queue: str

    def client(self, service: str = "batch") -> Any:
        return aws_client(service, self.server.url)

    def add_queue(self, name: str) -> None:
        """A job queue ``name`` on a compute environment of its own (made once)."""
        batch = self.client()
        if batch.describe_job_queues(jobQueues=[name])["jobQueues"]:
            return
        role = self.client("iam").create_role(
            RoleName=f"batch-service-{name}", AssumeRolePolicyDocument="{}"
        )["Role"]["Arn"]
        env_arn = batch.create_compute_environment(
            computeEnvironmentName=f"compute-{name}",
            type="UNMANAGED",
            state="ENABLED",
            serviceRole=role,
        )["computeEnvironmentArn"]
        batch.create_job_queue(
            jobQueueName=name,
            state="ENABLED",
            priority=1,
            computeEnvironmentOrder=[{"order": 1, "computeEnvironment": env_arn}],
        )


def start_batch_stand_in(
    sdk_python: Path, s3_url: str, base: Path, *, fail_after: str | None = None
) -> BatchService:
    """moto's Batch API with a compute environment that really runs each job's command
    (``tests/batch_stand_in.py``) and one job queue; jobs reach S3 at ``s3_url`` with the
    node's own credentials, never with the laptop's. ``fail_after`` sets moto's
    ``MOTO_SIMPLE_BATCH_FAIL_AFTER``: every job then fails without running."""
    port = free_port()
    argv = stand_in_argv("batch_stand_in", port, sdk_python, base / "jobs", s3_url)
    if fail_after is not None:
        argv += ["--fail-after", fail_after]
    server = _spawn_stand_in("batch", argv, port, "/moto-api/")
    service = BatchService(server, base / "jobs", "test-queue")
    try:
        service.add_queue(service.queue)
    except BaseException:
        server.stop()
        raise
    return service


@pytest.fixture(scope="session")
def batch_service(sdk_python, moto_server, tmp_path_factory) -> Iterator[BatchService]:
    """The stand-in AWS Batch, one per session, with one job queue."""
    service = start_batch_stand_in(sdk_python, moto_server.url, tmp_path_factory.mktemp("batch"))
    try:
        yield service
    finally:
        service.server.stop()
