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
    env = {"PATH": f"{sdk_python.parent}{os.pathsep}/usr/bin:/bin", "HOME": "/nonexistent"}
    env.update(extra)
    return env


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


def node_identity(s3_url: str) -> dict[str, str]:
    """What every container of a stand-in node gets besides its own spec: the node's
    credentials (an instance role's, never the laptop's) and its network settings."""
    from tests.cloud_servers import AWS_KEY_ID, AWS_SECRET

    return {
        "AWS_ENDPOINT_URL": s3_url,
        "AWS_ACCESS_KEY_ID": AWS_KEY_ID,
        "AWS_SECRET_ACCESS_KEY": AWS_SECRET,
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_EC2_METADATA_DISABLED": "true",
        **network_settings(),
    }


def start_kube_stand_in(sdk_python: Path, s3_url: str, base: Path, slots: int = 8) -> KubeCluster:
    """kmock's API server and the node agent; pods reach S3 at ``s3_url`` with the node's
    own credentials (``AWS_KEY_ID``), never with the laptop's."""
    from tests.cloud_servers import _spawn, free_port
    from tests.kube_stand_in import Api, write_kubeconfig

    port = free_port()
    node_env = node_identity(s3_url)
    argv = [
        sys.executable,
        str(Path(__file__).parent / "kube_stand_in.py"),
        "--port",
        str(port),
        "--python",
        str(sdk_python),
        "--log-dir",
        str(base / "pods"),
        "--slots",
        str(slots),
    ]
    for k, v in node_env.items():
        argv += ["--node-env", f"{k}={v}"]
    server = _spawn("kubernetes", argv, port, "/version")
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
        import boto3

        from tests.cloud_servers import AWS_KEY_ID, AWS_SECRET

        return boto3.client(
            service,
            endpoint_url=self.server.url,
            region_name="us-east-1",
            aws_access_key_id=AWS_KEY_ID,
            aws_secret_access_key=AWS_SECRET,
        )

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
    from tests.cloud_servers import _spawn, free_port

    port = free_port()
    argv = [
        sys.executable,
        str(Path(__file__).parent / "batch_stand_in.py"),
        "--port",
        str(port),
        "--python",
        str(sdk_python),
        "--log-dir",
        str(base / "jobs"),
    ]
    if fail_after is not None:
        argv += ["--fail-after", fail_after]
    for k, v in node_identity(s3_url).items():
        argv += ["--node-env", f"{k}={v}"]
    server = _spawn("batch", argv, port, "/moto-api/")
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
