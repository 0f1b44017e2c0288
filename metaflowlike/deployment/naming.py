"""The name a flow is deployed under, and each orchestrator's rules for names.

As in Metaflow, a flow without ``@project`` deploys under its class name and one with
``@project(name=...)`` under ``<project>.<branch>.<FlowName>``, where the branch comes
from ``--branch`` / ``--production`` (``project_decorator.py`` owns that rule);
``--name`` overrides both. Each target then checks the name against its own grammar
before anything is deployed: a name that the orchestrator would refuse, or silently
change, is an error that says what to pass instead.
"""

from __future__ import annotations

import re
from typing import Any

from ..exceptions import MetaflowlikeException

#: Step Functions state machine names (and EventBridge rule names, which we derive)
SFN_MAX = 80
_SFN_NAME = re.compile(r"^[A-Za-z0-9_.\-]+$")
#: Kubernetes object names: DNS-1123 subdomains (labels: 63)
K8S_MAX = 253
K8S_LABEL_MAX = 63
_DNS_1123 = re.compile(r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$")


class DeploymentNameError(MetaflowlikeException):
    headline = "Invalid deployment name"


def deployment_name(flow_name: str, project: dict[str, Any] | None, name: str | None) -> str:
    """``--name`` if given, else ``project.branch.Flow`` under ``@project``, else the
    flow's name. ``project`` is ``project_decorator.project_info``'s result."""
    if name:
        return name
    if project:
        return str(project["project_flow_name"])
    return flow_name


def check_sfn_name(name: str, option_hint: str = "--name") -> str:
    """A Step Functions state machine name: 1 to 80 letters, digits, '-', '_' and '.'."""
    if not name or len(name) > SFN_MAX or not _SFN_NAME.match(name):
        too_long = f" ({len(name)} characters)" if len(name) > SFN_MAX else ""
        raise DeploymentNameError(
            f'"{name}"{too_long} cannot name a Step Functions state machine: a name is 1 to '
            f"{SFN_MAX} letters, digits, '-', '_' and '.'. Pass a shorter or simpler one "
            f"with {option_hint} NAME."
        )
    return name


def kubernetes_name(name: str) -> str:
    """The DNS-1123 spelling of a deployment name: lowercase, '_' as '-'."""
    return name.lower().replace("_", "-")


def check_kubernetes_name(
    name: str, max_len: int = K8S_LABEL_MAX, option_hint: str = "--name"
) -> str:
    """``name`` made DNS-1123 (lowercase, '_' as '-') and checked against ``max_len``
    (63 for anything that is also used as a label value)."""
    k8s = kubernetes_name(name)
    if not k8s or len(k8s) > max_len or not _DNS_1123.match(k8s):
        too_long = f" ({len(k8s)} characters)" if len(k8s) > max_len else ""
        raise DeploymentNameError(
            f'"{name}" gives the Kubernetes name "{k8s}"{too_long}, which is not a valid '
            f"DNS-1123 name of at most {max_len} characters (lowercase letters, digits, '-' "
            f"and '.', starting and ending with a letter or digit). Pass another with "
            f"{option_hint} NAME."
        )
    return k8s
