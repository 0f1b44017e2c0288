"""Run a deployed task's container command the way a production node would.

Shared by the tests of the deployment core and of each exporter's interpreter: the
command runs as a subprocess in a fresh empty folder, with a Python that has the cloud
SDK but not metaflowlike first on PATH, and with only the environment the workflow
declares plus the node's own credentials for S3 on moto and its network's package index
settings (a task building its Python environment installs through them).
"""

from __future__ import annotations

import subprocess
import tempfile
from pathlib import Path

from tests.remote_env import container_env, node_identity


def run_container(
    sdk_python: Path,
    command: list[str],
    env: dict[str, str],
    s3_url: str,
    timeout: float = 180,
) -> subprocess.CompletedProcess:
    """Run ``command`` as a container would; returns the finished process (text)."""
    with tempfile.TemporaryDirectory(prefix="container-") as workdir:
        full = container_env(sdk_python, {**node_identity(s3_url), **env})
        return subprocess.run(
            command,
            cwd=workdir,
            env=full,
            capture_output=True,
            text=True,
            timeout=timeout,
            stdin=subprocess.DEVNULL,
        )
