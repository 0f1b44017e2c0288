"""Find plugins through Python entry points.

Built-in pieces (the local storage, the standard step decorators) are declared in
``pyproject.toml`` exactly like third-party ones, so the core has no special cases.
Entry points are scanned once, lazily, and only when a name is looked up. A plugin
declares what it is in its own registration: the extra its SDK comes with as the entry
point's extra (``s3 = "metaflowlike_aws.s3_storage:S3Storage [aws]"``), and a storage
backend the URL schemes of its roots as ``Storage.SCHEMES``.
"""

from __future__ import annotations

import functools
import importlib
from importlib import metadata
from types import ModuleType
from typing import Any

from .exceptions import MetaflowlikeException, did_you_mean

DATASTORES = "metaflowlike.datastores"
STEP_DECORATORS = "metaflowlike.step_decorators"
LAUNCHERS = "metaflowlike.launchers"
FLOW_DECORATORS = "metaflowlike.flow_decorators"
#: command groups added to a flow's command line (``step-functions``...)
CLI_COMMANDS = "metaflowlike.cli_commands"


class MissingExtra(MetaflowlikeException):
    headline = "Missing optional dependency"


def import_sdk(
    module: str, *, needed_by: str, package: str, extra: str, distribution: str = "metaflowlike"
) -> ModuleType:
    """Import an optional SDK (``boto3``) when a plugin first needs it, or say in one
    paragraph who needs it and which extra of which distribution installs it."""
    try:
        return importlib.import_module(module)
    except ImportError as e:
        raise MissingExtra(
            f"{needed_by} needs {package} ({e}). Install it with: "
            f'pip install "{distribution}[{extra}]"'
        ) from e


@functools.cache
def _entry_points(group: str) -> dict[str, metadata.EntryPoint]:
    return {ep.name: ep for ep in metadata.entry_points(group=group)}


def names(group: str) -> list[str]:
    return sorted(_entry_points(group))


def extra_of(group: str, name: str) -> str | None:
    """The extra plugin ``name`` of ``group`` needs (its entry point's ``[extra]``)."""
    ep = _entry_points(group).get(name)
    return ep.extras[0] if ep is not None and ep.extras else None


def datastore_for_scheme(scheme: str) -> str | None:
    """The datastore whose storage class declares URL ``scheme`` in ``SCHEMES``.

    The plugin named after the scheme is tried first, so the usual case imports one
    module; a plugin that cannot be imported is skipped, unless it is named after the
    scheme (then loading it later explains what is missing)."""
    eps = _entry_points(DATASTORES)
    for name in sorted(eps, key=lambda n: n != scheme):
        try:
            storage_cls = eps[name].load()
        except ImportError:
            continue
        if scheme in getattr(storage_cls, "SCHEMES", ()):
            return name
    return scheme if scheme in eps else None


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
        needed, dist = extra_of(group, name), eps[name].dist
        package = dist.name if dist is not None else "metaflowlike"
        hint = f' Install it with: pip install "{package}[{needed}]"' if needed else ""
        raise MissingExtra(
            f'The {kind} "{name}" needs a package that is missing ({e}).{hint}'
        ) from e
