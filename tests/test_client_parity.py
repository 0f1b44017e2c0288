"""The client attributes Metaflow code reads, with Metaflow's names and meanings."""

from __future__ import annotations

import pytest

from metaflowlike import Flow, Run, Task, namespace
from metaflowlike.exception import MetaflowNamespaceMismatch

SHAPE_FLOW = """
import os, sys
from metaflowlike import FlowSpec, Parameter, JSONType, step
from mylib import MyError

class ShapeFlow(FlowSpec):
    n = Parameter("n", default=3)
    cfg = Parameter("cfg", type=JSONType, default='{"k": [1, 2]}')

    @step
    def start(self):
        print("line one")
        print("line two")
        print("to stderr", file=sys.stderr)
        self.items = list(range(self.n))
        self.next(self.work, foreach="items")

    @step
    def work(self):
        self.sq = self.input ** 2
        self.next(self.join)

    @step
    def join(self, inputs):
        self.total = sum(i.sq for i in inputs)
        if os.environ.get("FAIL_JOIN"):
            raise MyError("boom in join")
        self.next(self.end)

    @step
    def end(self):
        pass

if __name__ == "__main__":
    ShapeFlow()
"""

MYLIB = "class MyError(Exception):\n    pass\n"


def _flow(make_flow):
    flow = make_flow(SHAPE_FLOW, name="shape_flow.py")
    (flow.path.parent / "mylib.py").write_text(MYLIB)
    return flow


def test_graph_views_and_order(make_flow):
    flow = _flow(make_flow)
    flow.run("run", "--n", "3")
    run = Flow("ShapeFlow").latest_run
    assert [s.id for s in run] == ["end", "join", "work", "start"]
    work = run["work"]
    tasks = list(work)
    assert [int(t.id) for t in tasks] == sorted((int(t.id) for t in tasks), reverse=True)
    assert work.task == tasks[0]
    start, join = run["start"].task, run["join"].task
    assert sorted(start.child_task_pathspecs) == sorted(t.pathspec for t in tasks)
    assert set(start.child_tasks) == set(tasks)
    assert sorted(join.parent_task_pathspecs) == sorted(t.pathspec for t in tasks)
    assert set(join.parent_tasks) == set(tasks) and list(join.child_tasks) == [run["end"].task]
    assert list(tasks[0].parent_task_pathspecs) == [start.pathspec]
    assert join.path_components == ["ShapeFlow", run.id, "join", join.id]
    assert run.path_components == ["ShapeFlow", run.id]
    # the values, typed; and Metaflow's `name` artifact
    assert run.parameters == {"n": 3, "cfg": {"k": [1, 2]}}
    assert run.data.name == "ShapeFlow" and start.data.name == "ShapeFlow"
    assert run.data.total == 0 + 1 + 4


def test_task_metadata_logs_and_environment(make_flow):
    flow = _flow(make_flow)
    flow.run("run")
    task = Flow("ShapeFlow").latest_run["start"].task
    meta = {m.name: m for m in task.metadata}
    assert meta["attempt"].type == "attempt" and meta["attempt"].value == "0"
    assert meta["attempt"].task == task and isinstance(meta["attempt"].created_at, int)
    assert task.metadata_dict["attempt_ok"] == "True" and task.metadata_dict["ds-type"] == "local"
    assert "origin-run-id" not in task.metadata_dict
    assert task.runtime_name == "dev"
    env = task.environment_info
    assert env["python_version_code"].count(".") == 2 and env["type"] == "local"
    assert [line for _, line in task.loglines("stdout")] == ["line one", "line two"]
    assert all(ts is None for ts, _ in task.loglines("stdout"))
    assert list(task.loglines("stderr", as_unicode=False)) == [(None, b"to stderr")]
    assert task.stdout_size == len("line one\nline two\n") and task.stderr_size == 10


def test_failed_task_exception_and_resume_origins(make_flow):
    flow = _flow(make_flow)
    assert flow.run("run", env={"FAIL_JOIN": "1"}, check=False).returncode != 0
    failed = Flow("ShapeFlow").latest_run
    join = failed["join"].task
    assert not join.finished and not join.successful and join.current_attempt == 0
    exc = join.exception
    assert exc.type == "mylib.MyError" and exc.exception == "boom in join"
    assert "Traceback" in exc.stacktrace and "boom in join" in exc.stacktrace
    assert not failed.finished

    flow.run("resume")
    resumed = Flow("ShapeFlow").latest_run
    assert resumed.origin_pathspec == failed.pathspec
    start = resumed["start"].task
    assert start.origin_pathspec == failed["start"].task.pathspec
    assert resumed["start"].origin_pathspec == f"ShapeFlow/{failed.id}/start"
    assert start.metadata_dict["origin-run-id"] == failed.id
    assert start.metadata_dict["origin-task-id"] == failed["start"].task.id
    assert resumed["join"].origin_pathspec is None  # rerun, not cloned
    assert resumed["join"].task.finished and resumed.finished


def test_namespace_check_can_be_skipped(make_flow):
    flow = _flow(make_flow)
    flow.run("run", env={"METAFLOWLIKE_USER": "alice"})
    namespace(None)
    task = Flow("ShapeFlow").latest_run["end"].task
    namespace("user:bob")
    with pytest.raises(MetaflowNamespaceMismatch):
        Task(task.pathspec)
    assert Task(task.pathspec, _namespace_check=False).successful
    assert Run(task.pathspec.rsplit("/", 2)[0], _namespace_check=False).successful
    with pytest.raises(MetaflowNamespaceMismatch, match="alice"):
        _ = Flow("ShapeFlow").latest_run


def test_metaflow_user_sets_the_namespace(make_flow):
    flow = _flow(make_flow)
    env = {"METAFLOW_USER": "carol", "METAFLOWLIKE_USER": ""}
    flow.run("run", env=env)
    namespace(None)
    run = Flow("ShapeFlow").latest_run
    assert run.user == "carol" and "user:carol" in run.system_tags
    # our own variable wins when both are set
    flow.run("run", env={"METAFLOW_USER": "carol", "METAFLOWLIKE_USER": "dave"})
    assert Flow("ShapeFlow").latest_run.user == "dave"
