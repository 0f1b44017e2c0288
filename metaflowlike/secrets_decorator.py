"""``@secrets(sources=[...])``: secrets fetched inside the task, set as its environment.

Each source names a provider type and a secret id, as in Metaflow:
``{"type": "aws-secrets-manager", "id": "db-creds"}``, or a bare id string that uses
the default type (``METAFLOWLIKE_DEFAULT_SECRETS_BACKEND_TYPE`` or
``METAFLOW_DEFAULT_SECRETS_BACKEND_TYPE``). A provider returns a dict of environment
variables. Providers register through the ``metaflowlike.secrets_providers`` entry
point group; two local ones come built in:

- ``env-file``: ``id`` is the path of a file of ``NAME=value`` lines (``#`` comments);
- ``inline``: the variables are given in ``options={"env_vars": {...}}``.

The secrets are fetched in the task process itself (on a remote machine: there, with
that machine's credentials) and never stored as artifacts or logged.
"""

from __future__ import annotations

import os
import re
from typing import TYPE_CHECKING, Any

from .decorators import StepDecorator, TaskContext
from .exceptions import MetaflowlikeException

if TYPE_CHECKING:
    from .flowspec import FlowSpec
    from .graph import FlowGraph

PROVIDERS = "metaflowlike.secrets_providers"
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


class SecretsError(MetaflowlikeException):
    headline = "Cannot fetch secrets"


def _default_type() -> str | None:
    return os.environ.get("METAFLOWLIKE_DEFAULT_SECRETS_BACKEND_TYPE") or os.environ.get(
        "METAFLOW_DEFAULT_SECRETS_BACKEND_TYPE"
    )


def normalize_source(source: Any, step_name: str) -> dict[str, Any]:
    """``{"type", "id", "options", "role"}`` from a string or dict source."""
    if isinstance(source, str):
        kind = _default_type()
        if not kind:
            raise SecretsError(
                f'@secrets on step "{step_name}": the source "{source}" has no type. Write '
                f'{{"type": "aws-secrets-manager", "id": "{source}"}} or set '
                "METAFLOWLIKE_DEFAULT_SECRETS_BACKEND_TYPE."
            )
        return {"type": kind, "id": source, "options": {}, "role": None}
    if isinstance(source, dict):
        unknown = set(source) - {"type", "id", "options", "role"}
        if unknown:
            raise SecretsError(
                f'@secrets on step "{step_name}": unknown key {sorted(unknown)[0]!r} in a '
                "source; keys are type, id, options and role."
            )
        kind = source.get("type") or _default_type()
        if not kind:
            raise SecretsError(f'@secrets on step "{step_name}": a source has no "type".')
        return {
            "type": kind,
            "id": source.get("id"),
            "options": dict(source.get("options") or {}),
            "role": source.get("role"),
        }
    raise SecretsError(
        f'@secrets on step "{step_name}": a source is a secret id or a dict, not {source!r}.'
    )


def fetch(source: dict[str, Any], role: str | None) -> dict[str, str]:
    from . import plugins

    provider = plugins.load(PROVIDERS, source["type"], "secrets provider")
    values = provider().get_secret_as_dict(
        source["id"], options=source["options"], role=source["role"] or role
    )
    for name in values:
        if not _ENV_NAME.match(str(name)):
            raise SecretsError(
                f'The secret "{source["id"]}" ({source["type"]}) has the key {name!r}, which '
                "cannot be an environment variable name."
            )
    return {str(k): str(v) for k, v in values.items()}


class SecretsDecorator(StepDecorator):
    """``@secrets(sources=["db-creds"])``: each secret's keys become environment
    variables of the task, fetched before the step's code runs."""

    name = "secrets"
    defaults = {"sources": [], "role": None}

    def step_init(self, *, flow_cls: type[FlowSpec], graph: FlowGraph, step_name: str) -> None:
        sources = self.attributes["sources"]
        if not isinstance(sources, (list, tuple)):
            raise SecretsError(f'@secrets on step "{step_name}": sources must be a list.')
        for s in sources:
            normalize_source(s, step_name)

    def task_pre_step(self, *, task: TaskContext) -> None:
        step_name = task.step_name
        env: dict[str, str] = {}
        origin: dict[str, str] = {}
        for raw in self.attributes["sources"]:
            source = normalize_source(raw, step_name)
            label = f'{source["type"]} "{source["id"]}"'
            for name, value in fetch(source, self.attributes["role"]).items():
                if name in env:
                    raise SecretsError(
                        f'@secrets on step "{step_name}": {label} and {origin[name]} both '
                        f"set {name}."
                    )
                env[name], origin[name] = value, label
        os.environ.update(env)


class EnvFileProvider:
    """``env-file``: a local file of ``NAME=value`` lines (quotes around values removed)."""

    def get_secret_as_dict(self, secret_id: Any, options: dict, role: str | None = None):
        path = os.path.expanduser(str(secret_id))
        try:
            with open(path, encoding="utf-8") as f:
                lines = f.read().splitlines()
        except OSError as e:
            raise SecretsError(
                f'Cannot read the env-file secret "{secret_id}": {e.strerror}.'
            ) from None
        values = {}
        for n, line in enumerate(lines, 1):
            line = line.strip()
            if not line or line.startswith("#"):
                continue
            name, eq, value = line.removeprefix("export ").partition("=")
            if not eq:
                raise SecretsError(f"{secret_id}, line {n}: expected NAME=value.")
            value = value.strip()
            if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
                value = value[1:-1]
            values[name.strip()] = value
        return values


class InlineProvider:
    """``inline``: the variables are in the source itself (handy for tests and demos)."""

    def get_secret_as_dict(self, secret_id: Any, options: dict, role: str | None = None):
        env = options.get("env_vars")
        if not isinstance(env, dict):
            raise SecretsError('An "inline" secret source needs options={"env_vars": {...}}.')
        return env
