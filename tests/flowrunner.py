"""Run flows the way a user does: as real `python flow.py ...` subprocesses.

Tests write a flow's source into a temporary folder, run it with its own datastore
root, and check the results through the client API or the command's output.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent


@dataclass
class FlowFile:
    path: Path
    root: Path  # datastore root

    def run(
        self,
        *args: str,
        check: bool = True,
        env: dict | None = None,
        timeout: float = 120,
        top: tuple[str, ...] = (),
    ) -> subprocess.CompletedProcess:
        """`python flow.py --datastore-root ROOT [top] args...`, output captured as text."""
        full_env = dict(os.environ)
        full_env.pop("METAFLOWLIKE_DATASTORE", None)
        full_env.update(env or {})
        cmd = [sys.executable, str(self.path), "--datastore-root", str(self.root), *top, *args]
        proc = subprocess.run(
            cmd, capture_output=True, text=True, env=full_env, cwd=self.path.parent, timeout=timeout
        )
        if check and proc.returncode != 0:
            raise AssertionError(
                f"{' '.join(cmd)} exited {proc.returncode}\n--- stdout\n{proc.stdout}\n--- stderr\n{proc.stderr}"
            )
        return proc


@pytest.fixture
def make_flow(tmp_path, monkeypatch):
    """make_flow(source) -> FlowFile; the client in this process reads the same root."""
    root = tmp_path / "ds"
    monkeypatch.setenv("METAFLOWLIKE_DATASTORE_ROOT", str(root))
    monkeypatch.delenv("METAFLOWLIKE_DATASTORE", raising=False)
    from metaflowlike import client

    client.set_datastore(None, str(root))
    client.namespace(None)
    counter = iter(range(1000))

    def make(source: str, name: str | None = None) -> FlowFile:
        path = tmp_path / (name or f"flow{next(counter)}.py")
        path.write_text(textwrap.dedent(source))
        return FlowFile(path, root)

    yield make
    client.default_namespace()
