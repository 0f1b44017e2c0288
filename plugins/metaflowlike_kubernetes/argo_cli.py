"""``python flow.py argo-workflows create | trigger | delete``: the flow on Argo Workflows.

``create`` checks the flow, uploads its code package and applies the WorkflowTemplate
(and the CronWorkflow of its ``@schedule``) through the ``kubernetes`` client;
``--only-json`` / ``--only-yaml`` print the documents instead and deploy nothing.
``trigger`` starts a Workflow from the deployed template (``--PARAM value`` overrides a
default) and prints its run id; ``delete`` removes what ``create`` applied.
"""

from __future__ import annotations

import json
import secrets
import sys
from typing import Any

import click

from metaflowlike import config
from metaflowlike.deployment.inputs import check_input_size, parse_overrides
from metaflowlike.deployment.naming import (
    K8S_LABEL_MAX,
    check_kubernetes_name,
    deployment_name,
)
from metaflowlike.deployment.plan import build_plan

from .argo_compiler import RUN_ID, ArgoTarget, compile_documents

TARGET = "Argo Workflows"
#: a Workflow's name is the template's plus "-" and this many random characters, and
#: both must stay valid label values (63 characters)
SUFFIX_LEN = 6
NAME_MAX = K8S_LABEL_MAX - 1 - SUFFIX_LEN
#: Linux refuses to start a process with an environment string over 128 KiB, and each
#: parameter reaches the start task as one variable
PARAM_VALUE_MAX = 128 * 1024 - 100
#: decorators a task on Argo cannot honour, and why
REFUSED = {
    "batch": "the step asks for AWS Batch, but every task of an Argo workflow runs as a "
    "Kubernetes pod; use @kubernetes (or @resources) instead",
}


def command(flow_cls: type) -> click.Command:
    """The ``argo-workflows`` command group of ``flow_cls`` (a CLI plugin factory)."""

    @click.group("argo-workflows")
    def argo() -> None:
        """Deploy this flow to Argo Workflows, start it, remove it."""

    @argo.command()
    @click.option("--name", default=None, help="Deploy under this name (default: the flow's).")
    @click.option("--only-json", is_flag=True, help="Print the documents as JSON; deploy nothing.")
    @click.option("--only-yaml", is_flag=True, help="Print the documents as YAML; deploy nothing.")
    @click.pass_obj
    def create(state: Any, name: str | None, only_json: bool, only_yaml: bool) -> None:
        """Compile the flow and apply it to the cluster."""
        target = _target(state, name)
        plan = build_plan(
            state, target=TARGET, platform="kubernetes", name=target.name, refused=REFUSED
        )
        for p in plan.parameters:
            if p.default is not None:
                check_input_size(p.default, PARAM_VALUE_MAX, f"{TARGET} (parameter {p.name})")
        docs = compile_documents(plan, target)
        if only_json or only_yaml:
            click.echo(_render(docs, "yaml" if only_yaml else "json"))
            return
        from metaflowlike.deployment.plan import upload_package

        from .argo_client import ArgoCluster

        cluster = ArgoCluster(target.namespace)
        sent = upload_package(state, plan)
        click.echo(f"Code package {plan.package_url} ({sent} bytes uploaded).")
        for doc in docs:
            what = cluster.apply(doc)
            click.echo(f"{doc['kind']} {target.namespace}/{doc['metadata']['name']} {what}.")
        if plan.schedule is None:
            removed = cluster.delete("CronWorkflow", target.name)
            if removed:
                click.echo(f"CronWorkflow {target.namespace}/{target.name} deleted (no @schedule).")
        click.echo(f"Start it with: python {sys.argv[0]} argo-workflows trigger")

    @argo.command(context_settings={"ignore_unknown_options": True})
    @click.option("--name", default=None, help="The deployment's name (default: the flow's).")
    @click.option("--run-id-file", default=None, help="Write the run id to this file.")
    @click.argument("params", nargs=-1, type=click.UNPROCESSED)
    @click.pass_obj
    def trigger(state: Any, name: str | None, run_id_file: str | None, params: tuple) -> None:
        """Start a run of the deployed flow: --PARAM VALUE overrides a default."""
        from .argo_client import ArgoCluster, ArgoClusterError

        target = _target(state, name)
        values = parse_overrides(flow_cls, params)
        for key, value in values.items():
            check_input_size(value, PARAM_VALUE_MAX, f"{TARGET} (parameter {key})")
        cluster = ArgoCluster(target.namespace)
        if cluster.get("WorkflowTemplate", target.name) is None:
            raise ArgoClusterError(
                f"No WorkflowTemplate {target.namespace}/{target.name} is deployed: run "
                f"python {sys.argv[0]} argo-workflows create first."
            )
        workflow_name = f"{target.name}-{secrets.token_hex(SUFFIX_LEN)[:SUFFIX_LEN]}"
        cluster.create(workflow(target, workflow_name, values))
        run_id = RUN_ID.replace("{{workflow.name}}", workflow_name)
        if run_id_file:
            with open(run_id_file, "w") as f:
                f.write(run_id)
        click.echo(f"Workflow {target.namespace}/{workflow_name} submitted.")
        click.echo(f"Run id: {run_id} (pathspec {flow_cls.__name__}/{run_id}).")

    @argo.command()
    @click.option("--name", default=None, help="The deployment's name (default: the flow's).")
    @click.pass_obj
    def delete(state: Any, name: str | None) -> None:
        """Remove the deployed WorkflowTemplate and its CronWorkflow."""
        from .argo_client import ArgoCluster

        target = _target(state, name)
        cluster = ArgoCluster(target.namespace)
        found = False
        for kind in ("CronWorkflow", "WorkflowTemplate"):
            if cluster.delete(kind, target.name):
                found = True
                click.echo(f"{kind} {target.namespace}/{target.name} deleted.")
        if not found:
            click.echo(f"Nothing named {target.name} is deployed in {target.namespace}.")

    return argo


def _target(state: Any, name: str | None) -> ArgoTarget:
    """The deployment's Kubernetes name and the cluster settings of the configuration."""
    state.graph  # noqa: B018 - reads the configs and works out the project branch
    full = deployment_name(state.flow_cls.__name__, state.project, name)
    k8s = check_kubernetes_name(full, NAME_MAX)
    settings = config.load_settings().kubernetes
    return ArgoTarget(
        name=k8s,
        namespace=settings.namespace,
        image=settings.image,
        user=config.get_username(),
        service_account=settings.service_account,
        secrets=tuple(settings.secrets),
    )


def workflow(target: ArgoTarget, name: str, values: dict[str, str]) -> dict[str, Any]:
    """A Workflow of the deployed template, with the given parameter values."""
    spec: dict[str, Any] = {"workflowTemplateRef": {"name": target.name}}
    if values:
        spec["arguments"] = {"parameters": [{"name": k, "value": v} for k, v in values.items()]}
    return {
        "apiVersion": "argoproj.io/v1alpha1",
        "kind": "Workflow",
        "metadata": {"name": name, "namespace": target.namespace},
        "spec": spec,
    }


def _render(docs: list[dict], fmt: str) -> str:
    if fmt == "json":
        return json.dumps(docs[0] if len(docs) == 1 else docs, indent=2)
    import yaml

    class Dumper(yaml.SafeDumper):
        """Multi-line strings (the bootstrap's source) as readable literal blocks."""

    def text(dumper: yaml.SafeDumper, value: str) -> yaml.Node:
        style = "|" if "\n" in value else None
        return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)

    Dumper.add_representer(str, text)
    return yaml.dump_all(docs, Dumper=Dumper, sort_keys=False, width=100).rstrip()
