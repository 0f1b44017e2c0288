"""Find the ``uv`` binary and run it.

uv comes from the ``uv`` package on PyPI (the ``pypi`` extra), so installing
``metaflowlike[pypi]`` is all the set-up a user does. Every call goes through ``run_uv``
so that one place decides the flags that make runs reproducible and quiet: no managed
Python downloads unless the user allowed them with ``UV_PYTHON_DOWNLOADS``.
"""

from __future__ import annotations

import functools
import os
import shutil
import subprocess
from collections.abc import Sequence

from .errors import MissingUv


@functools.cache
def uv_binary() -> str:
    """The uv executable: the one the ``uv`` package ships, else one on PATH."""
    try:
        import uv  # the PyPI package: a Python wrapper around the bundled binary

        return uv.find_uv_bin()
    except (ImportError, FileNotFoundError):
        pass
    found = shutil.which("uv")
    if found:
        return found
    raise MissingUv(
        "Per-step Python environments (--environment=pypi or uv) are built with uv, which "
        'is not installed. Install it with: pip install "metaflowlike[pypi]"'
    )


def uv_env() -> dict[str, str]:
    """The process environment for uv: quiet, no colour, no Python downloads unless the
    user asked for them (a download needs network access to the Python builds)."""
    env = dict(os.environ)
    env.setdefault("UV_PYTHON_DOWNLOADS", "never")
    env["NO_COLOR"] = "1"
    env.pop("VIRTUAL_ENV", None)  # never let an activated venv stand in for --python
    return env


def run_uv(args: Sequence[str], *, cwd: str | None = None) -> subprocess.CompletedProcess:
    """Run ``uv ARGS``; output is captured as text and the caller reads the exit code."""
    return subprocess.run(
        [uv_binary(), *args],
        capture_output=True,
        text=True,
        env=uv_env(),
        cwd=cwd,
        stdin=subprocess.DEVNULL,
    )


def uv_message(proc: subprocess.CompletedProcess) -> str:
    """uv's own explanation of a failure, as one paragraph (interpreter-discovery noise
    from shims on PATH left out)."""
    lines = []
    keep = True
    for raw in proc.stderr.splitlines():
        line = raw.strip()
        if line.startswith("warning:"):
            keep = False  # a warning block runs until the next error/cause line
            continue
        if line.lower().startswith(("error:", "cause:", "hint:", "×", "╰─▶")):
            keep = True
        if keep and line:
            lines.append(line)
    text = " ".join(lines).strip()
    for prefix in ("error: ", "Error: "):
        text = text.removeprefix(prefix)
    return text.replace(" cause: ", ": ") or f"uv exited with status {proc.returncode}"
