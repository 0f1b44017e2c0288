"""``@mlflow`` / ``--with mlflow``: each flow run becomes one MLflow run.

The flow run's MLflow run carries its parameters and tags; every task logs into a run
nested under it (``mlflow.parentRunId``) its tracked metric series (each point with its
step and time) and the artifacts named in ``artifacts=``. Tasks of one flow run find
their parent through a record in the run's datastore folder that the first task creates
with a conditional create: racing tasks agree on a single parent, and a loser deletes
the MLflow run it made.
"""

from __future__ import annotations

import os
import pickle
import tempfile
import time
from typing import TYPE_CHECKING, Any

from metaflowlike.current import current
from metaflowlike.datastore.task_datastore import FlowDatastore
from metaflowlike.decorators import StepDecorator, TaskContext
from metaflowlike.exceptions import MetaflowlikeException
from metaflowlike.tracking import metrics as tracked
from metaflowlike.tracking.compare import parameter_value

from .connection import experiment_id, mlflow_client, tracking_uri

if TYPE_CHECKING:
    from metaflowlike.flowspec import FlowSpec
    from metaflowlike.graph import FlowGraph

PLUGIN = "mlflow"  # names its record of each run in the datastore
_BATCH = 1000  # MLflow's limit of metrics per log_batch call


class MlflowDecorator(StepDecorator):
    """Log this step's tasks to MLflow (``MLFLOW_TRACKING_URI``)."""

    name = "mlflow"
    defaults: dict[str, Any] = {"artifacts": [], "experiment": None}

    def step_init(self, *, flow_cls: type[FlowSpec], graph: FlowGraph, step_name: str) -> None:
        names = self.attributes["artifacts"]
        if isinstance(names, str):
            self.attributes["artifacts"] = names = [n for n in names.split(",") if n]
        if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
            raise MetaflowlikeException(
                f'@mlflow on step "{step_name}": artifacts= takes a list of artifact names.'
            )
        mlflow_client()  # fails here, before the run, when mlflow is missing

    def task_pre_step(self, *, task: TaskContext) -> None:
        self._client = mlflow_client()
        self._parent = _parent_run(self._client, self.attributes["experiment"], task.datastore)
        tags = {
            "mlflow.parentRunId": self._parent,
            "metaflowlike.pathspec": task.pathspec,
            "metaflowlike.attempt": str(task.retry_count),
        }
        run = self._client.create_run(
            self._experiment_id(), run_name=f"{task.step_name}/{task.task_id}", tags=tags
        )
        self._task_run = run.info.run_id

    def _experiment_id(self) -> str:
        return experiment_id(self._client, self.attributes["experiment"] or current.flow_name)

    def task_post_step(self, *, task: TaskContext) -> None:
        self._log_metrics()
        self._log_artifacts(task.flow)
        self._client.set_terminated(self._task_run, "FINISHED")
        if task.step_name == "end":
            self._client.set_terminated(self._parent, "FINISHED")

    def run_finished(self, *, fds: Any, flow_name: str, run_id: str, ok: bool) -> None:
        """Close the flow run's MLflow run, whichever steps carried ``@mlflow`` and however
        the run ended; one the ``end`` step already closed is left as it is."""
        record = fds.read_plugin_record(flow_name, run_id, PLUGIN)
        if record is None:
            return  # no decorated task ran
        client = mlflow_client(record.get("tracking_uri"))
        if client.get_run(record["run_id"]).info.status == "RUNNING":
            client.set_terminated(record["run_id"], "FINISHED" if ok else "FAILED")

    def task_exception(self, *, task: TaskContext, exception: BaseException) -> bool:
        if getattr(self, "_task_run", None):
            self._log_metrics()
            self._client.set_tag(self._task_run, "metaflowlike.exception", repr(exception)[:500])
            self._client.set_terminated(self._task_run, "FAILED")
        return False

    def _log_metrics(self) -> None:
        from mlflow.entities import Metric

        points = [
            Metric(name, value, int(at * 1000), step)
            for name, (steps, values, stamps) in tracked.buffered().items()
            for step, value, at in zip(steps, values, stamps)
        ]
        for i in range(0, len(points), _BATCH):
            self._client.log_batch(self._task_run, metrics=points[i : i + _BATCH])

    def _log_artifacts(self, flow: Any) -> None:
        names = self.attributes["artifacts"]
        if not names:
            return
        with tempfile.TemporaryDirectory(prefix="mfl-mlflow-") as tmp:
            for name in names:
                if name not in flow.__dict__:
                    continue  # this step did not set it (e.g. set by another step)
                value = flow.__dict__[name]
                path = os.path.join(tmp, f"{name}.pkl")
                with open(path, "wb") as f:
                    pickle.dump(value, f)
                self._client.log_artifact(self._task_run, path, artifact_path="artifacts")


def _parent_run(client: Any, experiment: str | None, fds: FlowDatastore) -> str:
    """The MLflow run of this flow run: read from the run folder, or created once."""
    flow, flow_run = current.flow_name, current.run_id
    record = fds.read_plugin_record(flow, flow_run, PLUGIN)
    if record is not None:
        return record["run_id"]
    exp = experiment_id(client, experiment or current.flow_name)
    run_record = fds.read_run(flow, flow_run)
    tags = {
        "metaflowlike.flow": current.flow_name,
        "metaflowlike.run_id": current.run_id,
        "metaflowlike.user": current.username or "",
        "metaflowlike.tags": ", ".join(sorted(current.tags)),
    }
    run = client.create_run(exp, run_name=f"{current.flow_name}/{current.run_id}", tags=tags)
    run_id = run.info.run_id
    doc = {"run_id": run_id, "tracking_uri": tracking_uri(), "created_at": time.time()}
    if not fds.create_plugin_record(flow, flow_run, PLUGIN, doc):
        client.delete_run(run_id)  # another task made the parent first: use theirs
        return (fds.read_plugin_record(flow, flow_run, PLUGIN) or {})["run_id"]
    from mlflow.entities import Param

    params = [
        Param(name, str(parameter_value(shown))[:6000])
        for name, shown in sorted(run_record.param_values.items() if run_record else ())
    ]
    if params:
        client.log_batch(run_id, params=params)
    return run_id
