"""``@batch(...)``: run this step as an AWS Batch job, with Metaflow's arguments.

This module imports no AWS SDK: the decorator is also parsed inside the container (by
``--with batch`` on the step command), where only the code package exists.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from metaflowlike.decorators import StepDecorator
from metaflowlike.exceptions import MetaflowlikeException
from metaflowlike.remote_requests import check_numbers, larger_requests

if TYPE_CHECKING:
    from metaflowlike.flowspec import FlowSpec
    from metaflowlike.graph import FlowGraph


class BatchDecoratorError(MetaflowlikeException):
    headline = "Invalid @batch"


#: the resource fields that @resources and @batch both set: the larger wins
RESOURCE_FIELDS = ("cpu", "memory", "gpu")


class BatchDecorator(StepDecorator):
    """Run the step on AWS Batch. Memory and shared memory are in MB (as in Metaflow);
    unset image, queue and roles come from the configuration (``METAFLOWLIKE_BATCH_*``
    or ``~/.metaflowlike/config.json``)."""

    name = "batch"
    defaults: dict[str, Any] = {
        "cpu": 1,
        "memory": 4096,
        "gpu": 0,
        "image": None,
        "queue": None,
        "iam_role": None,
        "execution_role": None,
        "shared_memory": None,
        "max_swap": None,
        "swappiness": None,
        "use_tmpfs": False,
    }

    def launcher_name(self) -> str | None:
        return "batch"

    def step_init(self, *, flow_cls: type[FlowSpec], graph: FlowGraph, step_name: str) -> None:
        a = self.attributes
        where = f'@batch on step "{step_name}"'
        check_numbers(
            a,
            ("cpu", "memory", "gpu", "shared_memory", "max_swap", "swappiness"),
            where,
            BatchDecoratorError,
        )
        if a["swappiness"] is not None and not 0 <= float(a["swappiness"]) <= 100:
            raise BatchDecoratorError(
                f"{where}: swappiness must be between 0 and 100, got {a['swappiness']!r}."
            )


def merged_resources(decorators: list) -> dict[str, float]:
    """cpu, memory (MB), gpu: for each, the larger of @batch and @resources (Metaflow's
    rule); @batch's defaults only where neither asks. A smaller value than the default
    asked for on @batch alone (``@batch(memory=512)``) is used as asked, as in Metaflow."""
    asked = larger_requests(decorators, "batch", dict.fromkeys(RESOURCE_FIELDS))
    return {
        k: float(BatchDecorator.defaults[k]) if v is None else float(v) for k, v in asked.items()
    }
