"""The port suite: Metaflow flows, written once against ``metaflow``, ported by the
import-line rewrite alone (``tests/porting.py``), run as a user runs them and checked
through the client. Graph shapes (linear, branch, nested foreach) x behaviours
(artifacts, parameters, merge, catch/retry/timeout, resume at each step, tags)."""

from __future__ import annotations

import textwrap

import pytest

from metaflowlike import Flow, Run

from .porting import port

LINEAR = """
from metaflow import FlowSpec, Parameter, JSONType, current, step


class PortLinearFlow(FlowSpec):
    alpha = Parameter("alpha", help="learning rate", default=0.01)
    epochs = Parameter("epochs", default=2)
    config = Parameter("config", type=JSONType, default='{"layers": [4, 2]}')
    label = Parameter("label", default="base")

    @step
    def start(self):
        self.where = (current.flow_name, current.step_name, current.run_id)
        self.history = []
        self.next(self.train)

    @step
    def train(self):
        for epoch in range(self.epochs):
            self.history.append(round(self.alpha * (epoch + 1), 4))
        self.model = {"layers": self.config["layers"], "label": self.label}
        self.next(self.end)

    @step
    def end(self):
        print("trained", self.model)


if __name__ == "__main__":
    PortLinearFlow()
"""

BRANCH = """
from metaflow import FlowSpec, step


class PortBranchFlow(FlowSpec):
    @step
    def start(self):
        self.shared = "same everywhere"
        self.next(self.left, self.right)

    @step
    def left(self):
        self.side = "left"
        self.left_only = 1
        self.next(self.join)

    @step
    def right(self):
        self.side = "right"
        self.right_only = 2
        self.next(self.join)

    @step
    def join(self, inputs):
        self.sides = sorted(i.side for i in inputs)
        self.from_left = inputs.left.left_only
        self.merge_artifacts(inputs, exclude=["side"])
        self.next(self.end)

    @step
    def end(self):
        pass


if __name__ == "__main__":
    PortBranchFlow()
"""

FOREACH = """
from metaflow import FlowSpec, step


class PortForeachFlow(FlowSpec):
    @step
    def start(self):
        self.models = ["a", "b"]
        self.next(self.per_model, foreach="models")

    @step
    def per_model(self):
        self.model = self.input
        self.seeds = [1, 2, 3]
        self.next(self.per_seed, foreach="seeds")

    @step
    def per_seed(self):
        self.score = f"{self.model}{self.input}"
        self.next(self.join_seeds)

    @step
    def join_seeds(self, inputs):
        self.scores = [i.score for i in inputs]
        self.model = inputs[0].model
        self.next(self.join_models)

    @step
    def join_models(self, inputs):
        self.table = {i.model: i.scores for i in inputs}
        self.next(self.end)

    @step
    def end(self):
        pass


if __name__ == "__main__":
    PortForeachFlow()
"""

FAULTS = """
import os
import time

from metaflow import FlowSpec, catch, retry, step, timeout


class PortFaultsFlow(FlowSpec):
    @retry(times=2, minutes_between_retries=0)
    @step
    def start(self):
        marker = os.path.join(os.environ["MARKER_DIR"], "flaky")
        if not os.path.exists(marker):
            open(marker, "w").close()
            raise RuntimeError("flaky the first time")
        self.next(self.risky)

    @catch(var="failure")
    @step
    def risky(self):
        raise ValueError("always fails")
        self.next(self.slow)

    @catch(var="timed_out")
    @timeout(seconds=1)
    @step
    def slow(self):
        while True:
            time.sleep(0.1)
        self.next(self.end)

    @step
    def end(self):
        self.done = True


if __name__ == "__main__":
    PortFaultsFlow()
"""

RESUME = """
import os

from metaflow import FlowSpec, step


class PortResumeFlow(FlowSpec):
    def fail_here(self, name):
        if os.environ.get("FAIL_AT") == name:
            raise RuntimeError("failing at " + name)

    @step
    def start(self):
        self.fail_here("start")
        self.trail = ["start"]
        self.next(self.middle)

    @step
    def middle(self):
        self.fail_here("middle")
        self.trail = self.trail + ["middle"]
        self.next(self.last)

    @step
    def last(self):
        self.fail_here("last")
        self.trail = self.trail + ["last"]
        self.next(self.end)

    @step
    def end(self):
        self.fail_here("end")
        self.final = self.trail + ["end"]


if __name__ == "__main__":
    PortResumeFlow()
"""


def _ported(make_flow, source: str):
    return make_flow(port(source))


def test_the_rewrite_is_only_the_import_line():
    ported = port(LINEAR)
    assert "from metaflowlike import FlowSpec, Parameter, JSONType, current, step" in ported
    assert ported.replace("metaflowlike", "metaflow") == textwrap.dedent(LINEAR)
    assert port("from metaflow.exception import MetaflowNotFound\n").startswith(
        "from metaflowlike.exception import"
    )
    with pytest.raises(ValueError):
        port("from metaflow.plugins import something\n")


def test_linear_artifacts_and_parameters(make_flow):
    flow = _ported(make_flow, LINEAR)
    flow.run("--no-pylint", "run", "--alpha", "0.5", "--config", '{"layers": [8]}')
    run = Flow("PortLinearFlow").latest_run
    assert run.successful and run.data.name == "PortLinearFlow"
    assert run.parameters == {"alpha": 0.5, "epochs": 2, "config": {"layers": [8]}, "label": "base"}
    assert run.data.history == [0.5, 1.0]
    assert run.data.model == {"layers": [8], "label": "base"}
    assert run["start"].task.data.where == ("PortLinearFlow", "start", run.id)
    assert "trained {'layers': [8], 'label': 'base'}" in run["end"].task.stdout
    assert [s.id for s in run] == ["end", "train", "start"]


def test_branch_and_merge_artifacts(make_flow):
    flow = _ported(make_flow, BRANCH)
    flow.run("run")
    run = Flow("PortBranchFlow").latest_run
    data = run.data
    assert data.sides == ["left", "right"] and data.from_left == 1
    assert (data.shared, data.left_only, data.right_only) == ("same everywhere", 1, 2)
    assert "side" not in data
    join = run["join"].task
    assert {t.id for t in join.parent_tasks} == {run["left"].task.id, run["right"].task.id}


def test_nested_foreach(make_flow):
    flow = _ported(make_flow, FOREACH)
    flow.run("run")
    run = Flow("PortForeachFlow").latest_run
    assert run.data.table == {"a": ["a1", "a2", "a3"], "b": ["b1", "b2", "b3"]}
    seeds = list(run["per_seed"])
    assert len(seeds) == 6 and sorted(t.data.score for t in seeds)[0] == "a1"
    assert sorted(t.index for t in seeds) == [0, 0, 1, 1, 2, 2]
    assert len(list(run["per_model"].task.child_tasks)) == 3


def test_retry_catch_and_timeout(make_flow, tmp_path):
    flow = _ported(make_flow, FAULTS)
    flow.run("run", env={"MARKER_DIR": str(tmp_path)})
    run = Flow("PortFaultsFlow").latest_run
    assert run.successful and run.data.done
    start = run["start"].task
    assert start.current_attempt == 1 and start.metadata_dict["attempt"] == "1"
    assert "always fails" in str(run["risky"].task.data.failure)
    assert run["slow"].task.data.timed_out is not None


@pytest.mark.parametrize("fail_at", ["start", "middle", "last", "end"])
def test_resume_at_each_step(make_flow, fail_at):
    flow = _ported(make_flow, RESUME)
    assert flow.run("run", env={"FAIL_AT": fail_at}, check=False).returncode != 0
    failed = Flow("PortResumeFlow").latest_run
    assert not failed.successful and failed[fail_at].task.exception.exception == (
        f"failing at {fail_at}"
    )
    flow.run("resume")
    run = Flow("PortResumeFlow").latest_run
    assert run.successful and run.origin_pathspec == failed.pathspec
    assert run.data.final == ["start", "middle", "last", "end"]
    order = ["start", "middle", "last", "end"]
    for name in order:
        cloned = order.index(name) < order.index(fail_at)
        expected = f"PortResumeFlow/{failed.id}/{name}" if cloned else None
        assert run[name].origin_pathspec == expected, name


def test_tags_on_a_ported_flow(make_flow):
    flow = _ported(make_flow, LINEAR)
    flow.run("run", "--tag", "experiment")
    run = Flow("PortLinearFlow").latest_run
    flow.run("tag", "add", "--run-id", run.id, "reviewed")
    run.replace_tag("experiment", "baseline")
    assert Run(run.pathspec).user_tags == {"reviewed", "baseline"}
    assert [r.id for r in Flow("PortLinearFlow").runs("baseline", "reviewed")] == [run.id]
