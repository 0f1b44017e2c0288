"""Find plugins through Python entry points.

Built-in pieces (the local storage, the standard step decorators) are declared in
``pyproject.toml`` exactly like third-party ones, so the core has no special cases.
Entry points are scanned once, lazily, and only when a name is looked up.
"""

from __future__ import annotations

import functools
from importlib import metadata
from typing import Any

from .exceptions import MetaflowlikeException, did_you_mean

DATASTORES = "metaflowlike.datastores"
STEP_DECORATORS = "metaflowlike.step_decorators"
LAUNCHERS = "metaflowlike.launchers"
FLOW_DECORATORS = "metaflowlike.flow_decorators"
#: command groups added to a flow's command line (``step-functions``...)
CLI_COMMANDS = "metaflowlike.cli_commands"

#: extra to install for each plugin whose SDK is optional
EXTRAS = {
    "s3": "aws",
    "aws-secrets-manager": "aws",
    "azure": "azure",
    "gs": "gcp",
    "kubernetes": "kubernetes",
    "batch": "aws",
    "step-functions": "aws",
    "argo-workflows": "kubernetes",
}


class MissingExtra(MetaflowlikeException):
    headline = "Missing optional dependency"


@functools.cache
def _entry_points(group: str) -> dict[str, metadata.EntryPoint]:
    return {ep.name: ep for ep in metadata.entry_points(group=group)}


def names(group: str) -> list[str]:
    return sorted(_entry_points(group))


def load(group: str, name: str, kind: str) -> Any:
    """Load plugin ``name`` of ``group``; ``kind`` words the error ("datastore")."""
    eps = _entry_points(group)
    if name not in eps:
        raise MetaflowlikeException(
            f'Unknown {kind} "{name}". Known: {", ".join(sorted(eps)) or "none"}.'
            + did_you_mean(name, eps)
        )
    try:
        return eps[name].load()
    except ImportError as e:
        extra = EXTRAS.get(name)
        hint = f' Install it with: pip install "metaflowlike[{extra}]"' if extra else ""
        raise MissingExtra(
            f'The {kind} "{name}" needs a package that is missing ({e}).{hint}'
        ) from e
