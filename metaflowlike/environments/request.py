"""What each step asks for: requirement lines and a Python version, before resolution.

One owner for the merging rules: ``@pypi_base`` entries, overridden by name by the
step's ``@pypi`` entries; ``disabled`` on the step wins over the base; metaflowlike's
own runtime dependencies (and the datastore backend's SDK) are added unless the user
pinned them, because the task process imports them inside the environment.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import re
from dataclasses import dataclass
from typing import Any

from ..decorators import step_decorators
from .pypi_decorator import BASE_ATTRIBUTE, PypiDecorator

_OPERATORS = ("==", ">=", "<=", "!=", "~=", ">", "<", "===", "@")


@dataclass(frozen=True)
class EnvRequest:
    """The input of one resolution; equal requests share one resolved lock."""

    requirements: tuple[str, ...]  # requirement lines, sorted
    python: str | None  # a version request ("3.11"), None for the flow's own Python
    where: str  # for messages: '@pypi on step "train"'
    project: str | None = None  # the uv project folder (--environment=uv)

    def digest(self) -> str:
        doc = {"requirements": self.requirements, "python": self.python, "project": self.project}
        return hashlib.sha256(json.dumps(doc, sort_keys=True).encode()).hexdigest()


def normalize(name: str) -> str:
    """PEP 503 name: ``Scikit_Learn`` and ``scikit-learn`` are one package."""
    return re.sub(r"[-_.]+", "-", name).lower().strip()


def requirement_line(name: str, spec: str) -> str:
    """Metaflow's ``{'pandas': '2.2.3'}`` means ``pandas==2.2.3``; a spec with an
    operator (``'>=1.5'``) is used as written and ``''`` means any version."""
    spec = spec.strip()
    if not spec:
        return name.strip()
    if spec.startswith(_OPERATORS) or spec.startswith(","):
        return f"{name.strip()}{spec}"
    return f"{name.strip()}=={spec}"


@functools.cache
def runtime_requirements(datastore: str) -> tuple[str, ...]:
    """What a task needs besides the user's packages: metaflowlike's dependencies
    (click, cloudpickle) and the SDK of the datastore plugin in use."""
    from importlib import metadata

    from ..plugins import DATASTORES, extra_of

    extra = extra_of(DATASTORES, datastore)
    lines = []
    for req in metadata.requires("metaflowlike") or []:
        spec, _, marker = req.partition(";")
        marker = marker.strip().replace("'", '"')
        if not marker or (extra and marker == f'extra == "{extra}"'):
            lines.append(spec.strip())
    return tuple(lines)


def _name_of(line: str) -> str:
    return normalize(re.split(r"[\s<>=!~;\[@(]", line.strip(), maxsplit=1)[0])


def merge(user_lines: list[str], runtime_lines: list[str]) -> tuple[str, ...]:
    """User lines, plus each runtime requirement the user did not name."""
    named = {_name_of(line) for line in user_lines}
    extra = [line for line in runtime_lines if _name_of(line) not in named]
    return tuple(sorted(set(user_lines + extra)))


def step_request(
    flow_cls: type, node: Any, extra_decorators: list, datastore: str
) -> EnvRequest | None:
    """The request of one step under --environment=pypi; None when disabled."""
    base = getattr(flow_cls, BASE_ATTRIBUTE, None) or {}
    own = next(
        (d for d in step_decorators(node, extra_decorators) if isinstance(d, PypiDecorator)),
        None,
    )
    attrs = own.attributes if own is not None else {}
    disabled = attrs.get("disabled") if own is not None else base.get("disabled", False)
    if disabled:
        return None
    packages: dict[str, tuple[str, str]] = {}
    for source in (base.get("packages") or {}, attrs.get("packages") or {}):
        for name, spec in source.items():
            packages[normalize(name)] = (name, spec)
    lines = [requirement_line(name, spec) for name, spec in packages.values()]
    python = attrs.get("python") or base.get("python")
    where = f'@pypi on step "{node.name}"' if own is not None else f'step "{node.name}"'
    where += f" ({_at(node)})"
    return EnvRequest(merge(lines, list(runtime_requirements(datastore))), python, where)


def uses_pypi(flow_cls: type, graph: Any, extra_decorators: list) -> list[str]:
    """Steps that declare ``@pypi`` (and the flow, if it has ``@pypi_base``)."""
    found = [
        f'step "{node.name}" ({_at(node)})'
        for node in graph
        if any(isinstance(d, PypiDecorator) for d in step_decorators(node, extra_decorators))
    ]
    if getattr(flow_cls, BASE_ATTRIBUTE, None) is not None:
        found.insert(0, f"the flow class {flow_cls.__name__} (@pypi_base, {_at(graph)})")
    return found


def _at(where: Any) -> str:
    """file:line of a step (or of the flow class, given the graph)."""
    return f"{os.path.basename(where.source_file)}:{where.lineno}"
