"""``python flow.py step-functions create|trigger|list-runs|delete``.

Thin: it parses the options, asks the deployment core for the plan, the compiler for
the definition and ``sfn_deploy`` for the API calls, and prints what happened.
"""

from __future__ import annotations

import json
from typing import Any

import click

from metaflowlike import config
from metaflowlike.deployment.inputs import check_input_size, parse_overrides
from metaflowlike.deployment.naming import check_sfn_name, deployment_name
from metaflowlike.deployment.plan import build_plan, upload_package
from metaflowlike.exceptions import MetaflowlikeException

#: what a Step Functions deployment cannot honour, and why
REFUSED = {
    "kubernetes": "every step of a Step Functions deployment runs on AWS Batch; remove "
    "@kubernetes, or export the flow with argo-workflows instead",
}


def _name(state: Any, name: str | None) -> str:
    state.graph  # noqa: B018 - works out the @project branch
    name = name or click.get_current_context().meta.get("sfn_name")
    return check_sfn_name(deployment_name(state.flow_cls.__name__, state.project, name))


def _check_schedule(state: Any) -> str | None:
    from metaflowlike.deployment.schedule import flow_schedule

    sched = flow_schedule(state.flow_cls)
    if sched is None:
        return None
    if sched.timezone:
        raise MetaflowlikeException(
            f"@schedule(timezone={sched.timezone!r}): Amazon EventBridge schedules run in UTC "
            "and Step Functions cannot honour a timezone; write the cron expression in UTC "
            "and remove timezone=, or export with argo-workflows."
        )
    return sched.eventbridge_cron()


def command(flow_cls: type) -> click.Group:
    """The ``step-functions`` command group (registered as a CLI plugin)."""

    @click.group("step-functions")
    @click.option("--name", default=None, help="State machine name (also per command).")
    @click.pass_context
    def sfn(ctx: click.Context, name: str | None) -> None:
        """Deploy this flow to AWS Step Functions and run it there."""
        ctx.meta["sfn_name"] = name  # Metaflow's spelling: step-functions --name N create

    @sfn.command()
    @click.option("--name", default=None, help="State machine name (default: the flow's).")
    @click.option("--only-json", is_flag=True, help="Print the definition; deploy nothing.")
    @click.option("--max-workers", type=int, default=None, help="Tasks of a foreach at once.")
    @click.option(
        "--workflow-timeout", type=int, default=None, help="Seconds a whole run may take."
    )
    @click.pass_obj
    def create(state, name, only_json, max_workers, workflow_timeout) -> None:
        """Create or update the state machine (and its schedule)."""
        from .sfn_compiler import SfnCompiler

        name = _name(state, name)
        cron = _check_schedule(state)
        plan = build_plan(
            state, target="Step Functions", platform="batch", name=name, refused=REFUSED
        )
        compiler = SfnCompiler(
            plan,
            user=config.get_username(),
            max_workers=max_workers,
            workflow_timeout=workflow_timeout,
        )
        definition = compiler.json()
        if only_json:
            click.echo(definition)
            return
        from .batch_launcher import BatchLauncher
        from .sfn_deploy import StepFunctions

        sent = upload_package(state, plan)
        batch = BatchLauncher(None)
        for request in {r.digest(): r for r in compiler.requests.values()}.values():
            batch.job_definition(request)
        api = StepFunctions()
        tags = {"metaflowlike:flow": plan.flow_name}
        if plan.project:
            tags["metaflowlike:project"] = plan.project["project_name"]
            tags["metaflowlike:branch"] = plan.project["branch_name"]
        arn, new = api.deploy(name, definition, tags)
        api.schedule(name, arn, cron)
        click.echo(
            f"{'Created' if new else 'Updated'} state machine {name} ({arn}); code package "
            f"{'uploaded' if sent else 'unchanged'} at {plan.package_url}."
        )
        click.echo(f"Scheduled: {cron}." if cron else "Not scheduled: start it with trigger.")

    @sfn.command(context_settings={"ignore_unknown_options": True, "allow_extra_args": True})
    @click.option("--name", default=None, help="State machine name (default: the flow's).")
    @click.argument("params", nargs=-1, type=click.UNPROCESSED)
    @click.pass_obj
    def trigger(state, name, params) -> None:
        """Start a run on Step Functions: trigger [--PARAM VALUE ...]."""
        from .sfn_compiler import MAX_INPUT
        from .sfn_deploy import StepFunctions

        name = _name(state, name)
        overrides = parse_overrides(state.flow_cls, params)
        payload = json.dumps({"Parameters": overrides})
        check_input_size(payload, MAX_INPUT, "Step Functions")
        run = StepFunctions().trigger(name, payload)
        click.echo(f"Started run {state.flow_cls.__name__}/{run.run_id} on {name}.")

    @sfn.command("list-runs")
    @click.option("--name", default=None, help="State machine name (default: the flow's).")
    @click.pass_obj
    def list_runs(state, name) -> None:
        """List the runs (executions) of the state machine, newest first."""
        from .sfn_deploy import StepFunctions

        name = _name(state, name)
        runs = StepFunctions().executions(name)
        if not runs:
            click.echo(f"No run of {name} yet.")
        for run in runs:
            when = run.started.isoformat(timespec="seconds") if run.started else "-"
            click.echo(f"{run.run_id}  {run.status:<10} started {when}")

    @sfn.command()
    @click.option("--name", default=None, help="State machine name (default: the flow's).")
    @click.pass_obj
    def delete(state, name) -> None:
        """Delete the state machine and its schedule (runs stay in the datastore)."""
        from .sfn_deploy import StepFunctions

        name = _name(state, name)
        StepFunctions().delete(name)
        click.echo(f"Deleted state machine {name} and its schedule.")

    return sfn
