"""A user's project folder on a laptop, for the tests of the cloud integrations.

The Kubernetes, Batch, Argo and Step Functions tests run flows the way a user does,
``python flow.py ...`` in a project folder, with the laptop's own environment: its own
AWS keys (which must never reach a container), the datastore root of the run, no user
config. Each integration adds its settings (:meth:`Laptop.settings`) and the imports its
flows start with (:attr:`Laptop.HEADER`). Meanwhile the test's own client reads the same
datastore (the ``s3_project`` fixture).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import pytest

from metaflowlike import client

#: the laptop's own AWS keys: the tests check that they never reach a container
LAPTOP_KEY = "AKIALAPTOPONLY000001"
LAPTOP_SECRET = "laptop-only-secret-never-in-a-container-0123"
#: what the laptop's shell might hold that would send a run elsewhere
UNSET = ("METAFLOWLIKE_DATASTORE", "AWS_PROFILE", "AWS_ENDPOINT_URL_S3")


@dataclass
class Laptop:
    folder: Path
    root: str

    #: what every flow source of these tests starts with (its imports)
    HEADER: ClassVar[str] = ""

    def settings(self) -> dict[str, str]:
        """The integration's own variables, on top of the laptop's."""
        return {}

    def env(self, extra: dict[str, str] | None = None) -> dict[str, str]:
        env = dict(os.environ)
        for name in UNSET:
            env.pop(name, None)
        env.update(
            {
                "AWS_ACCESS_KEY_ID": LAPTOP_KEY,
                "AWS_SECRET_ACCESS_KEY": LAPTOP_SECRET,
                "METAFLOWLIKE_DATASTORE_ROOT": self.root,
                "METAFLOWLIKE_CONFIG": str(self.folder / "no-config.json"),
            }
        )
        env.update(self.settings())
        env.update(extra or {})
        return env

    def write(self, source: str, name: str = "flow.py") -> Path:
        """Write :attr:`HEADER` and ``source`` to ``name`` in the project folder."""
        path = self.folder / name
        path.write_text(textwrap.dedent(self.HEADER) + textwrap.dedent(source))
        return path

    def invoke(
        self,
        path: Path,
        *args: str,
        check: bool = True,
        env: dict[str, str] | None = None,
        timeout: float = 300,
    ) -> subprocess.CompletedProcess:
        """``python path *args`` in the project folder; fails the test on a non-zero exit
        unless ``check`` is false."""
        proc = subprocess.run(
            [sys.executable, str(path), *args],
            cwd=self.folder,
            env=self.env(env),
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        if check and proc.returncode != 0:
            raise AssertionError(f"exit {proc.returncode}\n{proc.stdout}\n{proc.stderr}")
        return proc

    def run(
        self,
        source: str | None,
        *args: str,
        check: bool = True,
        env: dict[str, str] | None = None,
        name: str = "flow.py",
    ) -> subprocess.CompletedProcess:
        """Write ``source`` (None: keep the last one) to ``name`` and run it."""
        path = self.write(source, name) if source is not None else self.folder / name
        return self.invoke(path, *args, check=check, env=env)

    def interrupt(self, source: str, after: str, while_running: Callable[[], None]) -> str:
        """Run ``source``; once it prints ``after``, call ``while_running()``, then press
        Ctrl-C. The run's output; fails the test unless it exits 130, as on Ctrl-C."""
        runtime = self.start(source, "run")
        try:
            for line in runtime.stdout:  # type: ignore[union-attr]
                if after in line:
                    break
            while_running()
            runtime.send_signal(signal.SIGINT)
            out = runtime.communicate(timeout=60)[0]
        finally:
            if runtime.poll() is None:
                runtime.kill()
        assert runtime.returncode == 130, out
        return out

    def start(self, source: str, *args: str) -> subprocess.Popen:
        """Write ``source`` to flow.py and start it, its output merged on stdout."""
        path = self.write(source)
        return subprocess.Popen(
            [sys.executable, str(path), *args],
            cwd=self.folder,
            env=self.env(),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )


@pytest.fixture
def s3_project(s3_root: str, tmp_path: Path) -> Iterator[Path]:
    """An empty project folder; meanwhile this test's client reads the datastore at
    ``s3_root`` in every namespace."""
    client.set_datastore("s3", s3_root)
    client.namespace(None)
    folder = tmp_path / "project"
    folder.mkdir()
    yield folder
    client.set_datastore(None, None)
    client.default_namespace()
