"""Run a command in a pseudo-terminal, as if a person ran it in a terminal window."""

from __future__ import annotations

import os
import pty
import subprocess


def run_in_pty(args: list[str], env: dict | None = None, cwd=None, timeout: float = 120):
    """(exit code, everything written to the terminal)."""
    master, slave = pty.openpty()
    full_env = {**os.environ, "TERM": "xterm-256color", "COLUMNS": "120", **(env or {})}
    full_env.pop("NO_COLOR", None) if "NO_COLOR" not in (env or {}) else None
    proc = subprocess.Popen(
        args, stdout=slave, stderr=slave, stdin=subprocess.DEVNULL, env=full_env, cwd=cwd
    )
    os.close(slave)
    chunks = []
    try:
        while True:
            try:
                data = os.read(master, 65536)
            except OSError:  # the terminal closed: every writer has exited
                break
            if not data:
                break
            chunks.append(data)
    finally:
        os.close(master)
    return proc.wait(timeout=timeout), b"".join(chunks).decode(errors="replace")
