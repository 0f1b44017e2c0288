"""MLflow interop against MLflow itself: a real tracking server on 127.0.0.1 with a
SQLite backend (and the embedded default store), read back with MLflow's own client."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.cloud_servers import Server, _wait_ready, free_port
from tests.tethered import tether

pytestmark = pytest.mark.timeout(1200)  # an MLflow server starts slowly on a busy machine

FLOW = """
from metaflowlike import FlowSpec, Parameter, current, mlflow, step


class MlflowTrain(FlowSpec):
    lr = Parameter("lr", default=0.1)
    kind = Parameter("kind", default="tree")

    @step
    def start(self):
        self.folds = [0, 1]
        self.next(self.fit, foreach="folds")

    @mlflow(artifacts=["weights"])
    @step
    def fit(self):
        for epoch in range(3):
            current.track("val_loss", 1.0 / (epoch + 1) + self.input, step=epoch)
        self.weights = {"fold": self.input, "lr": self.lr}
        self.next(self.join)

    @step
    def join(self, inputs):
        self.next(self.end)

    @step
    def end(self):
        current.track("final_score", 0.9)
        current.model.save({"lr": self.lr}, name="mlflow-ranker", metadata={"stage": "test"})


if __name__ == "__main__":
    MlflowTrain()
"""


@pytest.fixture(scope="module")
def mlflow_server() -> Iterator[Server]:
    """``mlflow server`` with a SQLite backend store, bound to 127.0.0.1."""
    folder = tempfile.mkdtemp(prefix="mfl-mlflow-")
    port = free_port()
    log_path = os.path.join(folder, "server.log")
    argv = [
        str(Path(sys.executable).parent / "mlflow"), "server",
        "--backend-store-uri", f"sqlite:///{folder}/mlflow.db",
        "--artifacts-destination", f"{folder}/artifacts",
        "--host", "127.0.0.1", "--port", str(port), "--workers", "1",
    ]  # fmt: skip
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(
            argv, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, cwd=folder,
            start_new_session=True, preexec_fn=tether(),
        )  # fmt: skip
    server = Server(kind="mlflow", proc=proc, port=port, log_path=log_path)
    try:
        _wait_ready(server, "/health", timeout=900)
        yield server
    finally:
        if proc.poll() is None:  # the server and its uvicorn worker: its process group
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=20)


def _check_logged_runs(client, experiment: str, run_pathspec: str) -> None:
    from mlflow.entities import ViewType

    exp = client.get_experiment_by_name(experiment)
    runs = client.search_runs([exp.experiment_id], run_view_type=ViewType.ACTIVE_ONLY)
    parents = [r for r in runs if "mlflow.parentRunId" not in r.data.tags]
    assert [p.info.run_name for p in parents] == [run_pathspec]  # one MLflow run per flow run
    parent = parents[0]
    assert parent.data.params == {"lr": "0.3", "kind": "forest"}
    assert parent.info.status == "FINISHED"  # closed at the run's end: `end` has no @mlflow
    assert parent.data.tags["metaflowlike.run_id"] == run_pathspec.split("/")[1]
    assert "exp:blue" in parent.data.tags["metaflowlike.tags"]
    children = [r for r in runs if r.data.tags.get("mlflow.parentRunId") == parent.info.run_id]
    assert len(children) == 2  # one nested run per foreach task of the @mlflow step
    for child in children:
        assert child.info.status == "FINISHED"
        history = client.get_metric_history(child.info.run_id, "val_loss")
        assert [m.step for m in sorted(history, key=lambda m: m.step)] == [0, 1, 2]
        assert child.data.tags["metaflowlike.pathspec"].startswith(f"{run_pathspec}/fit/")
        files = [f.path for f in client.list_artifacts(child.info.run_id, "artifacts")]
        assert files == ["artifacts/weights.pkl"]
    finals = sorted(c.data.metrics["val_loss"] for c in children)
    assert finals == pytest.approx([1 / 3, 1 / 3 + 1])


def test_runs_logged_to_a_real_tracking_server(make_flow, mlflow_server, tmp_path):
    from metaflowlike_mlflow.push import push_model
    from mlflow import MlflowClient

    from metaflowlike import Flow, Model

    flow = make_flow(FLOW)
    env = {"MLFLOW_TRACKING_URI": mlflow_server.url}
    flow.run("run", "--tag", "exp:blue", "--lr", "0.3", "--kind", "forest", env=env,
             timeout=600)  # fmt: skip
    run = Flow("MlflowTrain").latest_run
    client = MlflowClient(tracking_uri=mlflow_server.url)
    _check_logged_runs(client, "MlflowTrain", run.pathspec)

    # a registered model goes to MLflow's Model Registry, aliases included
    Model("mlflow-ranker/1").set_alias("champion")
    pushed = push_model("mlflow-ranker@champion", uri=mlflow_server.url)
    got = client.get_model_version_by_alias("mlflow-ranker", "champion")
    assert got.version == pushed.version
    assert got.tags["metaflowlike.version"] == "1"
    import pickle

    local = client.download_artifacts(got.run_id, "model/model.pkl", str(tmp_path))
    with open(local, "rb") as f:
        assert pickle.load(f) == {"lr": 0.3}


def test_default_store_is_an_embedded_sqlite_file(make_flow):
    """Without MLFLOW_TRACKING_URI, ``--with mlflow`` needs no server."""
    from mlflow import MlflowClient

    from metaflowlike import Flow

    flow = make_flow(FLOW.replace('@mlflow(artifacts=["weights"])', ""))
    env = {k: "" for k in ("MLFLOW_TRACKING_URI",)}
    flow.run("run", "--with", "mlflow:artifacts=weights", "--tag", "exp:blue", "--lr", "0.3",
             "--kind", "forest", env=env, timeout=600)  # fmt: skip
    run = Flow("MlflowTrain").latest_run
    db = flow.path.parent / "mlflow.db"
    assert db.exists()
    client = MlflowClient(tracking_uri=f"sqlite:///{db}")
    exp = client.get_experiment_by_name("MlflowTrain")
    runs = client.search_runs([exp.experiment_id])
    parent = next(r for r in runs if "mlflow.parentRunId" not in r.data.tags)
    assert parent.info.run_name == run.pathspec
    assert parent.info.status == "FINISHED"  # closed by the end step
    # --with applies to every step: start, 2 x fit, join, end
    assert len([r for r in runs if "mlflow.parentRunId" in r.data.tags]) == 5
    end = next(r for r in runs if r.info.run_name.startswith("end/"))
    assert end.data.metrics["final_score"] == 0.9


def test_a_failed_flow_marks_its_mlflow_run_failed(make_flow):
    """The flow run's MLflow run is closed at the run's end even when the failing step
    does not carry ``@mlflow``: it never stays RUNNING."""
    from mlflow import MlflowClient

    from metaflowlike import Flow

    failing = FLOW.replace(
        "    def join(self, inputs):\n",
        "    def join(self, inputs):\n        raise ValueError('boom')\n",
    )
    flow = make_flow(failing)
    proc = flow.run("run", env={"MLFLOW_TRACKING_URI": ""}, check=False, timeout=600)
    assert proc.returncode != 0 and "boom" in proc.stderr
    client = MlflowClient(tracking_uri=f"sqlite:///{flow.path.parent / 'mlflow.db'}")
    exp = client.get_experiment_by_name("MlflowTrain")
    runs = client.search_runs([exp.experiment_id])
    parent = next(r for r in runs if "mlflow.parentRunId" not in r.data.tags)
    assert parent.info.run_name == Flow("MlflowTrain").latest_run.pathspec
    assert parent.info.status == "FAILED"
    children = [r for r in runs if "mlflow.parentRunId" in r.data.tags]
    assert [c.info.status for c in children] == ["FINISHED"] * 2  # the two fit tasks
