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

SDK_PACKAGES = ("boto3",)


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
    """Path of a Python that has boto3 but not metaflowlike, click or cloudpickle."""
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


def _stand_in_argv(
    script: str, port: int, sdk_python: Path, log_dir: Path, s3_url: str, *extra: str
) -> list[str]:
    """The command line of a stand-in platform (``kube_stand_in.py``, ``batch_stand_in.py``)
    whose tasks reach S3 at ``s3_url`` with the node's own credentials (``AWS_KEY_ID``),
    never with the laptop's."""
    from tests.cloud_servers import AWS_KEY_ID, AWS_SECRET

    node_env = {
        "AWS_ENDPOINT_URL": s3_url,
        "AWS_ACCESS_KEY_ID": AWS_KEY_ID,
        "AWS_SECRET_ACCESS_KEY": AWS_SECRET,
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_EC2_METADATA_DISABLED": "true",
    }
    argv = [sys.executable, str(Path(__file__).parent / script), "--port", str(port)]
    argv += ["--python", str(sdk_python), "--log-dir", str(log_dir), *extra]
    for k, v in node_env.items():
        argv += ["--node-env", f"{k}={v}"]
    return argv


def start_kube_stand_in(sdk_python: Path, s3_url: str, base: Path, slots: int = 8) -> KubeCluster:
    """kmock's API server and the node agent; pods reach S3 at ``s3_url``."""
    from tests.cloud_servers import _spawn, free_port
    from tests.kube_stand_in import Api, write_kubeconfig

    port = free_port()
    argv = _stand_in_argv(
        "kube_stand_in.py", port, sdk_python, base / "pods", s3_url, "--slots", str(slots)
    )
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


@pytest.fixture(scope="session")
def batch_service(sdk_python, moto_server, tmp_path_factory) -> Iterator[BatchService]:
    """moto's Batch API with a compute environment that really runs each job's command
    (``tests/batch_stand_in.py``), one per session, with one job queue; jobs reach S3 on
    ``moto_server`` with the node's own credentials, never with the laptop's."""
    from tests.cloud_servers import _spawn, free_port

    base = tmp_path_factory.mktemp("batch")
    port = free_port()
    argv = _stand_in_argv("batch_stand_in.py", port, sdk_python, base / "jobs", moto_server.url)
    server = _spawn("batch", argv, port, "/moto-api/")
    service = BatchService(server, base / "jobs", "test-queue")
    try:
        batch = service.client()
        role = service.client("iam").create_role(
            RoleName="batch-service", AssumeRolePolicyDocument="{}"
        )["Role"]["Arn"]
        env_arn = batch.create_compute_environment(
            computeEnvironmentName="test-compute",
            type="UNMANAGED",
            state="ENABLED",
            serviceRole=role,
        )["computeEnvironmentArn"]
        batch.create_job_queue(
            jobQueueName=service.queue,
            state="ENABLED",
            priority=1,
            computeEnvironmentOrder=[{"order": 1, "computeEnvironment": env_arn}],
        )
        yield service
    finally:
        server.stop()
