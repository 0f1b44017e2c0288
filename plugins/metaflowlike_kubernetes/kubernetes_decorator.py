"""``@kubernetes(...)``: run this step as a Kubernetes Job, with Metaflow's arguments.

This module imports no Kubernetes SDK: the decorator is also parsed inside the pod (by
``--with kubernetes`` on the step command), where only the code package exists.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from metaflowlike.decorators import StepDecorator
from metaflowlike.exceptions import MetaflowlikeException
from metaflowlike.remote_requests import check_numbers, larger_requests

if TYPE_CHECKING:
    from metaflowlike.flowspec import FlowSpec
    from metaflowlike.graph import FlowGraph


class KubernetesDecoratorError(MetaflowlikeException):
    headline = "Invalid @kubernetes"


#: the resource fields that @resources and @kubernetes both set: the larger wins
RESOURCE_FIELDS = ("cpu", "memory", "disk", "gpu")


class KubernetesDecorator(StepDecorator):
    """Run the step on Kubernetes. Memory, disk and shared memory are in MB (as in
    Metaflow); unset image, namespace, service account and secrets come from the
    configuration (``METAFLOWLIKE_KUBERNETES_*`` or ``~/.metaflowlike/config.json``)."""

    name = "kubernetes"
    defaults: dict[str, Any] = {
        "cpu": 1,
        "memory": 4096,
        "disk": 10240,
        "gpu": None,
        "gpu_vendor": "nvidia",
        "image": None,
        "namespace": None,
        "service_account": None,
        "secrets": None,
        "node_selector": None,
        "tolerations": None,
        "labels": None,
        "annotations": None,
        "use_tmpfs": False,
        "shared_memory": None,
        "persistent_volume_claims": None,
    }

    def launcher_name(self) -> str | None:
        return "kubernetes"

    def step_init(self, *, flow_cls: type[FlowSpec], graph: FlowGraph, step_name: str) -> None:
        a = self.attributes
        where = f'@kubernetes on step "{step_name}"'
        check_numbers(
            a, ("cpu", "memory", "disk", "gpu", "shared_memory"), where, KubernetesDecoratorError
        )
        if a["gpu_vendor"] not in ("nvidia", "amd"):
            raise KubernetesDecoratorError(
                f'{where}: gpu_vendor must be "nvidia" or "amd", got {a["gpu_vendor"]!r}.'
            )
        for key in ("node_selector", "labels", "annotations", "persistent_volume_claims"):
            if a[key] is not None and not isinstance(a[key], dict):
                raise KubernetesDecoratorError(
                    f"{where}: {key} must be a dict, got {type(a[key]).__name__}."
                )
        if a["secrets"] is not None and not isinstance(a["secrets"], (list, tuple, str)):
            raise KubernetesDecoratorError(f"{where}: secrets must be a list of secret names.")
        if a["tolerations"] is not None and not isinstance(a["tolerations"], list):
            raise KubernetesDecoratorError(f"{where}: tolerations must be a list of dicts.")


def merged_resources(decorators: list) -> dict[str, float | None]:
    """cpu, memory (MB), disk (MB), gpu: for each, the larger of @kubernetes and
    @resources (Metaflow's rule)."""
    return larger_requests(decorators, "kubernetes", dict.fromkeys(RESOURCE_FIELDS))
