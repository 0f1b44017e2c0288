"""``@project(name=...)``: runs of several flows grouped under one project and branch.

Branch names follow Metaflow: ``user.<username>`` by default, ``test.<branch>`` with
``--branch``, ``prod`` with ``--production`` (``prod.<branch>`` with both). The run is
tagged ``project:<name>`` and ``project_branch:<branch>``, and step code reads the
names from ``current``.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from .exceptions import MetaflowlikeException

_PROJECT_NAME = re.compile(r"^[a-z0-9_]{1,128}$")
_BRANCH_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$")


class ProjectError(MetaflowlikeException):
    headline = "Invalid project"


class ProjectDecorator:
    """The flow decorator object; ``attributes`` may hold config expressions until the
    configs are read (``@project(name=cfg.project)``)."""

    name = "project"

    def __init__(self, name: Any) -> None:
        self.attributes = {"name": name}

    def __repr__(self) -> str:
        return f"@project(name={self.attributes['name']!r})"


def project(name: Any = None) -> Callable[[type], type]:
    """Put the flow in project ``name``: ``@project(name="fraud_model")`` above the class."""

    def attach(flow_cls: type) -> type:
        decos = dict(getattr(flow_cls, "_flow_decorators", {}))
        decos["project"] = ProjectDecorator(name)
        setattr(flow_cls, "_flow_decorators", decos)  # noqa: B010 - not declared on type
        return flow_cls

    if name is None or isinstance(name, type):
        raise ProjectError('@project needs a name: write @project(name="my_project").')
    return attach


def project_info(
    flow_cls: type, user: str, branch: str | None, production: bool
) -> dict[str, Any] | None:
    """``current``'s project fields for this run, or None when the flow has no @project."""
    deco = getattr(flow_cls, "_flow_decorators", {}).get("project")
    if deco is None:
        if branch or production:
            option = "--branch" if branch else "--production"
            raise ProjectError(
                f"{option} only applies to a flow decorated with @project(name=...); "
                f"{flow_cls.__name__} has no @project."
            )
        return None
    name = deco.attributes["name"]
    if not isinstance(name, str) or not _PROJECT_NAME.match(name):
        raise ProjectError(
            f"@project(name={name!r}) on {flow_cls.__name__}: a project name is 1 to 128 "
            "lowercase letters, digits and underscores."
        )
    if branch is not None and not _BRANCH_NAME.match(branch):
        raise ProjectError(
            f"--branch {branch!r}: a branch name is letters, digits, '_', '.' and '-', "
            "starting with a letter, digit or '_'."
        )
    if branch:
        branch_name = ("prod." if production else "test.") + branch
    else:
        branch_name = "prod" if production else f"user.{user}"
    return {
        "project_name": name,
        "branch_name": branch_name,
        "is_production": bool(production),
        "project_flow_name": f"{name}.{branch_name}.{flow_cls.__name__}",
    }


def project_tags(info: dict[str, Any] | None) -> list[str]:
    if not info:
        return []
    return [f"project:{info['project_name']}", f"project_branch:{info['branch_name']}"]
