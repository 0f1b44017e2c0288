"""What a task records about where it ran: the client's ``runtime_name`` and
``environment_info``, as Metaflow reports them.

``runtime_name`` is ``dev`` for a task run by the local runtime, as in Metaflow; a
launcher that runs tasks elsewhere names itself through ``METAFLOWLIKE_RUNTIME_NAME``
(Metaflow's ``METAFLOW_RUNTIME_NAME`` is honoured too) in the task's environment.
"""

from __future__ import annotations

import functools
import os
import platform
import sys
from typing import Any

DEFAULT_RUNTIME = "dev"


def runtime_name() -> str:
    return (
        os.environ.get("METAFLOWLIKE_RUNTIME_NAME")
        or os.environ.get("METAFLOW_RUNTIME_NAME")
        or DEFAULT_RUNTIME
    )


def environment_info() -> dict[str, Any]:
    return {"type": "local", "runtime": runtime_name(), **_process_facts()}


@functools.cache
def _process_facts() -> dict[str, str]:
    """What cannot change within a process or its forks: worked out once, by the runtime
    before it forks its tasks, rather than again in every task."""
    from . import __version__

    return {
        "platform": platform.system(),
        "python_version": sys.version,
        "python_version_code": platform.python_version(),
        "executable": sys.executable,
        "script": os.path.basename(sys.argv[0]) if sys.argv and sys.argv[0] else "",
        "metaflowlike_version": __version__,
    }


def task_facts() -> dict[str, Any]:
    """The fields the task record keeps about the task's environment."""
    return {"runtime": runtime_name(), "environment_info": environment_info()}
