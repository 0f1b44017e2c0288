"""Argo Workflows' objects in a cluster, through the ``kubernetes`` client only.

Argo's resources are custom objects (``argoproj.io/v1alpha1``), so the official
client's ``CustomObjectsApi`` creates, updates, reads and deletes them with the kube
config of ``KUBECONFIG`` / ``~/.kube/config`` (or the in-cluster one); no Argo CLI or
Argo server is needed. An update is a JSON merge patch that also removes what the new
document no longer has, so a deployed template always equals the generated one.
"""

from __future__ import annotations

from typing import Any

from metaflowlike.exceptions import MetaflowlikeException
from metaflowlike.plugins import import_sdk

GROUP = "argoproj.io"
VERSION = "v1alpha1"
PLURALS = {
    "WorkflowTemplate": "workflowtemplates",
    "Workflow": "workflows",
    "CronWorkflow": "cronworkflows",
}


class ArgoClusterError(MetaflowlikeException):
    headline = "Argo Workflows"


class ArgoCluster:
    """The Argo objects of one namespace."""

    def __init__(self, namespace: str) -> None:
        k8s = import_sdk(
            "kubernetes",
            needed_by="argo-workflows",
            package="the kubernetes client",
            extra="kubernetes",
        )
        try:
            k8s.config.load_kube_config()
        except Exception:  # noqa: BLE001 - no kube config file: try in-cluster
            try:
                k8s.config.load_incluster_config()
            except k8s.config.ConfigException:
                raise ArgoClusterError(
                    "No Kubernetes configuration: set KUBECONFIG, create ~/.kube/config, or "
                    "run inside a cluster. Nothing was deployed."
                ) from None
        self.k8s = k8s
        self.api = k8s.client.CustomObjectsApi()
        self.namespace = namespace

    def _call(self, what: str, func: Any, *args: Any, **kwargs: Any) -> Any:
        try:
            return func(GROUP, VERSION, self.namespace, *args, **kwargs)
        except self.k8s.client.ApiException as e:
            if e.status == 404:
                raise
            raise ArgoClusterError(
                f"The cluster refused to {what} in namespace {self.namespace} "
                f"(HTTP {e.status} {e.reason}). Is Argo Workflows installed there, and may "
                "this account use its resources?"
            ) from None
        except OSError as e:  # urllib3 errors derive from it: the server is unreachable
            raise ArgoClusterError(
                f"Cannot reach the Kubernetes API server to {what}: {e}."
            ) from None

    def get(self, kind: str, name: str) -> dict | None:
        try:
            return self._call(
                f"read {kind} {name}", self.api.get_namespaced_custom_object, PLURALS[kind], name
            )
        except self.k8s.client.ApiException:
            return None

    def apply(self, doc: dict) -> str:
        """Create ``doc`` or bring the existing object to it; "created" or "updated"."""
        kind, name = doc["kind"], doc["metadata"]["name"]
        old = self.get(kind, name)
        if old is None:
            self.create(doc)
            return "created"
        patch = merge_patch(
            {k: old.get(k) for k in ("metadata", "spec") if k in old},
            {"metadata": _own_metadata(old, doc), "spec": doc["spec"]},
        )
        self._call(
            f"update {kind} {name}",
            self.api.patch_namespaced_custom_object,
            PLURALS[kind],
            name,
            patch,
        )
        return "updated"

    def create(self, doc: dict) -> None:
        kind, name = doc["kind"], doc["metadata"]["name"]
        self._call(
            f"create {kind} {name}", self.api.create_namespaced_custom_object, PLURALS[kind], doc
        )

    def delete(self, kind: str, name: str) -> bool:
        """Delete the object; False if there was none."""
        try:
            self._call(
                f"delete {kind} {name}",
                self.api.delete_namespaced_custom_object,
                PLURALS[kind],
                name,
            )
        except self.k8s.client.ApiException:
            return False
        return True


def _own_metadata(old: dict, doc: dict) -> dict:
    """The new labels and annotations; what the server keeps of its own stays."""
    meta = dict(old.get("metadata") or {})
    for key in ("labels", "annotations"):
        meta[key] = doc["metadata"].get(key, {})
    return meta


def merge_patch(old: Any, new: Any) -> Any:
    """The RFC 7386 JSON merge patch that turns ``old`` into ``new``."""
    if not isinstance(old, dict) or not isinstance(new, dict):
        return new
    patch = {k: None for k in old if k not in new}
    for k, v in new.items():
        if k not in old:
            patch[k] = v
        elif old[k] != v:
            patch[k] = merge_patch(old[k], v)
    return patch
