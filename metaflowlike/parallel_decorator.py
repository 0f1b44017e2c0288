"""``@parallel``: a step run as a gang of tasks that work together (distributed
training), started with ``self.next(self.train, num_parallel=N)``.

The graph treats the gang like a foreach over ``range(N)``: every member is a task of
the step with its own index, and the join after it receives one input per member, in
node order. The local runtime starts the members of a gang together (they may wait on
one another) and stops the rest of a gang when one member fails, so that none waits
forever. Inside a member, ``current.parallel`` says who it is: node 0 is the control
task, whose address ``main_ip`` the others connect to (``127.0.0.1`` locally).
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

from .current import Parallel, current
from .decorators import StepDecorator, StepPolicy, TaskContext
from .exceptions import MetaflowlikeException

if TYPE_CHECKING:
    from .flowspec import FlowSpec
    from .graph import FlowGraph

#: where every member of a local gang finds the control task
LOCAL_MAIN_IP = "127.0.0.1"


class ParallelDecorator(StepDecorator):
    """Mark a step as a gang member: ``@parallel`` above ``@step``."""

    name = "parallel"
    defaults: dict[str, Any] = {}
    gang = True
    deploy_refusal = (
        "a gang of tasks started together (num_parallel=) has no counterpart in a "
        "workflow of independent tasks"
    )

    def step_init(self, *, flow_cls: type[FlowSpec], graph: FlowGraph, step_name: str) -> None:
        if StepPolicy.of(graph[step_name].decorators).max_retries:
            raise MetaflowlikeException(
                f'@retry on the @parallel step "{step_name}" is not supported yet: a gang '
                "cannot be retried member by member. Retry the run with `resume` instead."
            )

    def task_pre_step(self, *, task: TaskContext) -> None:
        stack = task.flow.foreach_stack()
        if not stack:
            raise MetaflowlikeException(
                f'Step "{task.step_name}" is @parallel but was not started with num_parallel=.'
            )
        index, num_nodes, _ = stack[-1]
        info = Parallel(main_ip=LOCAL_MAIN_IP, num_nodes=num_nodes, node_index=index)
        current._update(parallel=info)
        # the variables Metaflow sets, which launchers of distributed frameworks read
        os.environ.update(
            MF_PARALLEL_MAIN_IP=info.main_ip,
            MF_PARALLEL_NUM_NODES=str(num_nodes),
            MF_PARALLEL_NODE_INDEX=str(index),
        )
