"""The type checker passes: mypy over metaflowlike/, strict on the public API (the
settings are in pyproject.toml). CI runs the test suite, so this is where it runs."""

from __future__ import annotations

import subprocess
import sys
from importlib import resources

from .flowrunner import REPO


def test_mypy_passes():
    proc = subprocess.run(
        [sys.executable, "-m", "mypy", "--no-error-summary", "--hide-error-context"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_the_package_says_it_is_typed():
    assert resources.files("metaflowlike").joinpath("py.typed").is_file()
