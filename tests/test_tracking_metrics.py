"""Metric series: tracked in steps, stored with the task, read back by the client."""

from __future__ import annotations

import math
import os
import subprocess
import sys
import textwrap

import pytest

from tests.cloud_servers import client_env, create_bucket, new_bucket_name, root_url

TRAIN = """
from metaflowlike import FlowSpec, Parameter, current, step


class TrainFlow(FlowSpec):
    lr = Parameter("lr", default=0.1)

    @step
    def start(self):
        self.folds = [0, 1]
        self.next(self.fit, foreach="folds")

    @step
    def fit(self):
        self.fold = self.input
        for epoch in range(5):
            current.track("val_loss", 1.0 / (epoch + 1) + self.input, step=epoch)
        current.track({"acc": 0.5 + self.lr, "f1": float("nan")})
        current.track({"acc": 0.6 + self.lr, "f1": 0.4})
        self.next(self.join)

    @step
    def join(self, inputs):
        self.best = min(i.fold for i in inputs)
        self.next(self.end)

    @step
    def end(self):
        current.track("final", self.lr * 10)


if __name__ == "__main__":
    TrainFlow()
"""


def test_series_round_trip_locally(make_flow):
    from metaflowlike import Flow

    flow = make_flow(TRAIN)
    flow.run("run", "--lr", "0.2")
    run = Flow("TrainFlow").latest_run
    fits = list(run["fit"])
    assert len(fits) == 2
    for task in fits:
        series = task.metrics["val_loss"]
        offset = task.data.fold
        assert series.steps == [0, 1, 2, 3, 4]
        assert series.values == [1.0 / (e + 1) + offset for e in range(5)]
        assert series.timestamps == sorted(series.timestamps)
        assert series.tasks == [task.pathspec] * 5
        assert task.metrics["acc"].steps == [0, 1]  # the dict form numbers steps per name
        assert task.metrics["acc"].last == pytest.approx(0.8)
        f1 = task.metrics["f1"].values
        assert math.isnan(f1[0]) and f1[1] == 0.4
    assert run["start"].task.metrics == {}
    assert run["end"].task.metrics["final"].values == [2.0]
    merged = run.metrics
    assert sorted(merged) == ["acc", "f1", "final", "val_loss"]
    assert len(merged["val_loss"]) == 10
    assert set(merged["val_loss"].tasks) == {t.pathspec for t in fits}


def test_bad_metric_is_a_clear_error(make_flow):
    flow = make_flow(
        """
        from metaflowlike import FlowSpec, current, step

        class BadMetricFlow(FlowSpec):
            @step
            def start(self):
                current.track("loss", "high")
                self.next(self.end)

            @step
            def end(self):
                pass

        if __name__ == "__main__":
            BadMetricFlow()
        """
    )
    proc = flow.run("run", check=False)
    assert proc.returncode != 0
    assert 'current.track("loss", ...) needs a number, got str' in proc.stdout + proc.stderr


def test_series_round_trip_on_s3(moto_server, tmp_path):
    bucket = new_bucket_name()
    create_bucket("s3", moto_server.url, bucket)
    root = root_url("s3", bucket, "runs")
    (tmp_path / "flow.py").write_text(textwrap.dedent(TRAIN))
    env = {k: v for k, v in os.environ.items() if not k.startswith("METAFLOWLIKE_")}
    env.update(client_env("s3", moto_server.url))
    subprocess.run(
        [sys.executable, "flow.py", "--datastore", "s3", "--datastore-root", root, "run"],
        cwd=tmp_path, env=env, check=True, capture_output=True, timeout=300,
    )  # fmt: skip
    reader = textwrap.dedent(
        """
        import json
        from metaflowlike import Flow, namespace
        namespace(None)
        run = Flow("TrainFlow").latest_run
        task = next(iter(run["fit"]))
        s = task.metrics["val_loss"]
        print(json.dumps({"steps": s.steps, "n": len(run.metrics["val_loss"]),
                          "acc": task.metrics["acc"].last}))
        """
    )
    (tmp_path / "reader.py").write_text(reader)
    env.update({"METAFLOWLIKE_DATASTORE": "s3", "METAFLOWLIKE_DATASTORE_ROOT": root})
    out = subprocess.run(
        [sys.executable, "reader.py"], cwd=tmp_path, env=env, check=True,
        capture_output=True, text=True, timeout=120,
    ).stdout  # fmt: skip
    import json

    got = json.loads(out.strip().splitlines()[-1])
    assert got == {"steps": [0, 1, 2, 3, 4], "n": 10, "acc": pytest.approx(0.7)}
