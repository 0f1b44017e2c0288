"""Deploy a compiled state machine with boto3: create or update it, schedule it with
an Amazon EventBridge rule, start executions, list them, delete everything.

Only this module talks to the Step Functions and EventBridge APIs; it knows nothing
of flows (the compiler made the definition, the CLI decides what to do).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any

from metaflowlike import config
from metaflowlike.exceptions import MetaflowlikeException
from metaflowlike.plugins import import_sdk

#: EventBridge's limit on rule names
MAX_RULE_NAME = 64
#: the id of our target on the schedule rule
TARGET_ID = "metaflowlike"
#: what a scheduled execution starts with: no parameter given, every default applies
SCHEDULED_INPUT = json.dumps({"Parameters": {}})


class SfnDeployError(MetaflowlikeException):
    headline = "Step Functions deployment failed"


def rule_name(name: str) -> str:
    """The schedule rule of state machine ``name`` (shortened with a hash if needed)."""
    if len(name) <= MAX_RULE_NAME:
        return name
    digest = hashlib.sha256(name.encode()).hexdigest()[:12]
    return f"{name[: MAX_RULE_NAME - 13]}-{digest}"


@dataclass
class Execution:
    name: str
    status: str
    started: Any
    stopped: Any

    @property
    def run_id(self) -> str:
        return f"sfn-{self.name}"


class StepFunctions:
    """The Step Functions and EventBridge APIs, as a deployment needs them."""

    def __init__(self) -> None:
        boto3 = import_sdk("boto3", needed_by="step-functions", package="boto3", extra="aws")
        self.sfn = boto3.client("stepfunctions")
        self.events = boto3.client("events")

    def find(self, name: str) -> str | None:
        """The ARN of the state machine called ``name``, or None."""
        for page in self.sfn.get_paginator("list_state_machines").paginate():
            for machine in page["stateMachines"]:
                if machine["name"] == name:
                    return machine["stateMachineArn"]
        return None

    def need(self, name: str) -> str:
        arn = self.find(name)
        if arn is None:
            raise SfnDeployError(
                f'No state machine "{name}" is deployed: run "step-functions create" first '
                "(with the same --name, --branch and --production)."
            )
        return arn

    def deploy(self, name: str, definition: str, tags: dict[str, str]) -> tuple[str, bool]:
        """Create or update the state machine; its ARN and whether it was new."""
        role = config.setting("sfn_iam_role")
        if not role:
            raise SfnDeployError(
                "Step Functions needs an IAM role to run the state machine with (it submits "
                "AWS Batch jobs and reads the datastore): set METAFLOWLIKE_SFN_IAM_ROLE or "
                "sfn_iam_role in ~/.metaflowlike/config.json."
            )
        arn = self.find(name)
        if arn is None:
            made = self.sfn.create_state_machine(
                name=name,
                definition=definition,
                roleArn=role,
                type="STANDARD",
                tags=[{"key": k, "value": v} for k, v in sorted(tags.items())],
            )
            return made["stateMachineArn"], True
        self.sfn.update_state_machine(stateMachineArn=arn, definition=definition, roleArn=role)
        return arn, False

    def schedule(self, name: str, arn: str, expression: str | None) -> None:
        """Run the state machine on ``expression`` (``cron(...)``), or remove its
        schedule when None."""
        rule = rule_name(name)
        if expression is None:
            self._unschedule(rule)
            return
        role = config.setting("events_sfn_access_iam_role")
        if not role:
            raise SfnDeployError(
                "The flow has @schedule, and Amazon EventBridge needs an IAM role allowed to "
                "start the state machine: set METAFLOWLIKE_EVENTS_SFN_ACCESS_IAM_ROLE or "
                "events_sfn_access_iam_role in ~/.metaflowlike/config.json."
            )
        self.events.put_rule(
            Name=rule,
            ScheduleExpression=expression,
            State="ENABLED",
            Description=f"Starts the state machine {name} (metaflowlike @schedule).",
        )
        self.events.put_targets(
            Rule=rule,
            Targets=[{"Id": TARGET_ID, "Arn": arn, "RoleArn": role, "Input": SCHEDULED_INPUT}],
        )

    def schedule_of(self, name: str) -> str | None:
        try:
            return self.events.describe_rule(Name=rule_name(name)).get("ScheduleExpression")
        except self.events.exceptions.ResourceNotFoundException:
            return None

    def _unschedule(self, rule: str) -> None:
        try:
            self.events.remove_targets(Rule=rule, Ids=[TARGET_ID])
            self.events.delete_rule(Name=rule)
        except self.events.exceptions.ResourceNotFoundException:
            pass

    def trigger(self, name: str, payload: str) -> Execution:
        arn = self.need(name)
        started = self.sfn.start_execution(stateMachineArn=arn, input=payload)
        exec_name = started["executionArn"].rsplit(":", 1)[-1]
        return Execution(exec_name, "RUNNING", started.get("startDate"), None)

    def executions(self, name: str) -> list[Execution]:
        arn = self.need(name)
        out = []
        for page in self.sfn.get_paginator("list_executions").paginate(stateMachineArn=arn):
            for e in page["executions"]:
                out.append(Execution(e["name"], e["status"], e.get("startDate"), e.get("stopDate")))
        return out

    def delete(self, name: str) -> None:
        arn = self.need(name)
        self._unschedule(rule_name(name))
        self.sfn.delete_state_machine(stateMachineArn=arn)
