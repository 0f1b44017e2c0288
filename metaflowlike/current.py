"""``current``: facts about the task that is running, readable from step code.

One module-level object; the task runner fills it in before user code runs. Plugins
(checkpoint, card, ...) attach their own attributes with ``current._update``.
"""

from __future__ import annotations

from typing import Any, NamedTuple


class Parallel(NamedTuple):
    """``current.parallel`` inside a ``@parallel`` step: this task's place in its gang."""

    main_ip: str  # where the control task (node 0) listens
    num_nodes: int
    node_index: int


class Current:
    flow_name: str | None = None
    run_id: str | None = None
    step_name: str | None = None
    task_id: str | None = None
    retry_count: int = 0
    origin_run_id: str | None = None
    namespace: str | None = None
    username: str | None = None
    tags: frozenset[str] = frozenset()
    is_running_flow: bool = False
    #: set inside a ``@parallel`` step only
    parallel: Parallel | None = None
    #: attribute names of the flow's parameters (``getattr(self, name)`` reads each)
    parameter_names: list[str] = []
    #: set when the flow has ``@project(name=...)``
    project_name: str | None = None
    branch_name: str | None = None
    is_production: bool | None = None
    project_flow_name: str | None = None

    @property
    def pathspec(self) -> str | None:
        if not self.is_running_flow:
            return None
        return f"{self.flow_name}/{self.run_id}/{self.step_name}/{self.task_id}"

    def _update(self, **values: Any) -> None:
        for name, value in values.items():
            setattr(self, name, value)

    def __repr__(self) -> str:
        if not self.is_running_flow:
            return "<current: not inside a running task>"
        return f"<current {self.pathspec} attempt {self.retry_count}>"


current = Current()
