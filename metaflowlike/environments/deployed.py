"""The environments of a deployed flow: resolved at deploy time, stored with the deployment.

``step-functions create`` and ``argo-workflows create`` under ``--environment=pypi|uv``
resolve every step's lock on the laptop (the same resolution as ``run``, so mistakes
are reported before anything is created) but build nothing here. The locks go to the
datastore as one JSON document, content-addressed beside the code package, and each
deployed step's container command names it (``deployed-step STEP --environments KEY``):
the environment bootstrap builds the step's environment from it with uv before the
task starts, and the ``start`` task copies it into the run record, where the client
reads what every task ran with, as for a local run.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any

from ..exceptions import MetaflowlikeException


class DeployedEnvironmentMissing(MetaflowlikeException):
    headline = "Cannot read the deployment's environments"


@dataclass(frozen=True)
class DeployedEnvironments:
    """The environment record of a deployment (what a run record's ``environment``
    holds: kind, step -> lock key, the locks) and where it is stored."""

    record: dict[str, Any]
    data: bytes  # the stored bytes; their hash names them
    key: str  # path in the datastore, relative to its root

    @classmethod
    def of(cls, record: dict[str, Any]) -> DeployedEnvironments:
        from ..datastore.layout import LAYOUT

        data = json.dumps(record, sort_keys=True, separators=(",", ":")).encode()
        return cls(record, data, LAYOUT.deployed_environments(hashlib.sha256(data).hexdigest()))


def resolve_for_deployment(state: Any, flow_file: str) -> DeployedEnvironments | None:
    """Resolve the environment of every step of the flow for the selected
    ``--environment``, without building any; None when every step runs in the image's
    own Python (``--environment=local``, or no step with packages)."""
    import click

    from .commands import selected_kind
    from .plan import plan_environments

    ctx = click.get_current_context(silent=True)
    command = " ".join(ctx.command_path.split()[1:]) if ctx is not None else "create"
    plan = plan_environments(
        selected_kind(),
        state.flow_cls,
        state.graph,
        [],
        datastore=state.fds.storage.TYPE,
        flow_file=flow_file,
        command=command,
    )
    record = plan.record()
    return DeployedEnvironments.of(record) if record else None


def upload(fds: Any, environments: DeployedEnvironments) -> int:
    """Store the document unless the datastore has it; the bytes uploaded."""
    if fds.storage.exists(environments.key):
        return 0
    fds.storage.put_bytes(environments.key, environments.data)
    return len(environments.data)


def load(fds: Any, key: str) -> dict[str, Any]:
    """The environment record stored at ``key``, checked against the hash in its name."""
    from ..datastore.layout import LAYOUT

    try:
        data = fds.storage.get_bytes(key)
    except FileNotFoundError:
        raise DeployedEnvironmentMissing(
            f"The deployment's environment locks {fds.storage.url(key)} are not in the "
            "datastore. Deploy the flow again (create) to store them."
        ) from None
    if LAYOUT.deployed_environments(hashlib.sha256(data).hexdigest()) != key:
        raise DeployedEnvironmentMissing(
            f"The deployment's environment locks {fds.storage.url(key)} are damaged (their "
            "content does not match their name). Deploy the flow again (create)."
        )
    return json.loads(data)
