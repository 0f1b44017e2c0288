"""The client API reads real runs: flows run as subprocesses, read back in this process.

One module-wide datastore holds four runs of ``ClientFlow`` (made once, they take a
few seconds): alice's 50-way foreach, alice's run tagged ``foo``, alice's failing
run, and bob's run. Each test points the client at it and resets the namespace.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from datetime import datetime

import pytest

from metaflowlike import (
    DataArtifact,
    Flow,
    Metaflow,
    Run,
    Step,
    Task,
    client,
    default_namespace,
    get_datastore,
    get_metadata,
    get_namespace,
    namespace,
)
from metaflowlike.datastore.content_store import ContentStore
from metaflowlike.datastore.local_storage import LocalStorage
from metaflowlike.datastore.task_datastore import FlowDatastore
from metaflowlike.exceptions import MetaflowlikeException

FLOW = """
import os
import sys

from metaflowlike import FlowSpec, Parameter, step


class ClientFlow(FlowSpec):
    n = Parameter("n", default=3, type=int)
    fail = Parameter("fail", default=0, type=int)

    @step
    def start(self):
        print("hello from start")
        print("a warning on stderr", file=sys.stderr)
        self.items = list(range(self.n))
        self.blob = b"x" * 1000
        self.next(self.body, foreach="items")

    @step
    def body(self):
        self.sq = self.input * self.input
        self.next(self.join)

    @step
    def join(self, inputs):
        self.total = sum(i.sq for i in inputs)
        self.next(self.end)

    @step
    def end(self):
        if self.fail and not os.environ.get("CLIENT_FIX"):
            raise ValueError(f"boom at total={self.total}")
        self.result = self.total + 1


if __name__ == "__main__":
    ClientFlow()
"""


def run_flow(flow_file, root, *args, user="alice", check=True, extra_env=None):
    """``python flow.py --datastore-root ROOT args...`` as ``user``; returns the run id."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("METAFLOWLIKE_")}
    env.update(USERNAME=user, USER=user, **(extra_env or {}))
    id_file = flow_file.parent / f"run-id-{len(list(flow_file.parent.glob('run-id-*')))}"
    cmd = [sys.executable, str(flow_file), "--quiet", "--datastore-root", str(root), *args]
    if args[0] in ("run", "resume"):
        cmd += ["--run-id-file", str(id_file)]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=120)
    if check and proc.returncode != 0:
        raise AssertionError(f"{cmd} failed:\n{proc.stdout}\n{proc.stderr}")
    return id_file.read_text()


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    base = tmp_path_factory.mktemp("client")
    flow_file = base / "client_flow.py"
    flow_file.write_text(textwrap.dedent(FLOW))
    root = base / "ds"
    ids = {
        "big": run_flow(flow_file, root, "run", "--n", "50"),
        "tagged": run_flow(flow_file, root, "run", "--tag", "foo", "--tag", "bar"),
        "failed": run_flow(flow_file, root, "run", "--fail", "1", check=False),
        "bob": run_flow(flow_file, root, "run", "--n", "2", user="bob"),
    }
    return root, ids


@pytest.fixture(autouse=True)
def reader(runs, monkeypatch):
    """The client reads the module's datastore as alice, in her default namespace."""
    root, _ = runs
    monkeypatch.setenv("METAFLOWLIKE_DATASTORE_ROOT", str(root))
    monkeypatch.delenv("METAFLOWLIKE_DATASTORE", raising=False)
    monkeypatch.setenv("METAFLOWLIKE_USER", "alice")
    client.set_datastore()
    default_namespace()
    yield
    default_namespace()


# --------------------------------------------------------------------------- settings


def test_datastore_and_namespace_settings(runs, tmp_path):
    root, _ = runs
    assert get_metadata() == f"local@{root}"
    assert isinstance(get_datastore(), FlowDatastore)
    assert get_datastore().storage.root == str(root)
    assert get_namespace() == "user:alice"
    assert namespace("user:bob") == "user:bob" and get_namespace() == "user:bob"
    assert namespace(None) is None and get_namespace() is None
    assert default_namespace() == "user:alice" and get_namespace() == "user:alice"

    assert client.set_datastore("local", str(tmp_path / "empty")) == f"local@{tmp_path / 'empty'}"
    assert Metaflow().flows == []
    with pytest.raises(client.MetaflowNotFound):
        Flow("ClientFlow")
    client.set_datastore(None, str(root))
    assert [f.id for f in Metaflow().flows] == ["ClientFlow"]


# --------------------------------------------------------------------------- flows and runs


def test_runs_are_newest_first_and_filtered_by_namespace(runs):
    _, ids = runs
    flow = Flow("ClientFlow")
    assert flow.pathspec == "ClientFlow" and flow.parent is None
    mine = [r.id for r in flow.runs()]
    assert mine == [ids["failed"], ids["tagged"], ids["big"]]
    assert [r.id for r in flow] == mine
    assert flow.latest_run.id == ids["failed"]
    assert flow.latest_successful_run.id == ids["tagged"]

    namespace(None)
    assert [r.id for r in flow.runs()] == [ids["bob"], *mine]
    assert flow.latest_run.id == ids["bob"]
    namespace("user:bob")
    assert [r.id for r in flow] == [ids["bob"]]
    assert Run(f"ClientFlow/{ids['bob']}").user == "bob"
    namespace("user:nobody")
    assert Metaflow().flows == []
    with pytest.raises(client.MetaflowNamespaceMismatch, match="user:nobody"):
        _ = flow.latest_run  # runs exist, none in the namespace: said, not a silent None


def test_run_outside_namespace_is_refused(runs):
    _, ids = runs
    bob = f"ClientFlow/{ids['bob']}"
    for make in (
        lambda: Run(bob),
        lambda: Flow("ClientFlow")[ids["bob"]],
        lambda: Step(f"{bob}/start"),
        lambda: Task(f"{bob}/end/{_end_id(bob)}"),
    ):
        with pytest.raises(client.MetaflowNamespaceMismatch, match="user:bob") as e:
            make()
        assert bob in str(e.value) and isinstance(e.value, MetaflowlikeException)
    namespace(None)
    assert Run(bob).data.result == 2


def _end_id(pathspec):
    flow, run_id = pathspec.split("/")
    return get_datastore().list_tasks(flow, run_id, "end")[0]


def test_tags(runs):
    _, ids = runs
    flow = Flow("ClientFlow")
    assert [r.id for r in flow.runs("foo")] == [ids["tagged"]]
    assert [r.id for r in flow.runs("foo", "bar")] == [ids["tagged"]]
    assert list(flow.runs("foo", "nope")) == []
    run = flow[ids["tagged"]]
    assert run.user_tags == {"foo", "bar"}
    assert "user:alice" in run.system_tags and "user:alice" in run.tags
    assert {"foo", "bar"} <= run.tags and not run.system_tags & {"foo", "bar"}
    assert run["start"].task.tags == run.tags
    namespace("foo")
    assert [r.id for r in flow] == [ids["tagged"]]


def test_run_properties(runs):
    _, ids = runs
    run = Run(f"ClientFlow/{ids['big']}")
    assert run.id == ids["big"] and run.pathspec == f"ClientFlow/{ids['big']}"
    assert run.parent == Flow("ClientFlow")
    assert [s.id for s in run] == ["end", "join", "body", "start"]  # newest first
    assert "body" in run and "nope" not in run
    assert run.successful and run.finished
    assert isinstance(run.created_at, datetime) and run.finished_at >= run.created_at
    assert run.data.result == sum(i * i for i in range(50)) + 1
    assert run.data.total == run["join"].task.data.total
    assert run.end_task == run["end"].task
    assert run.origin_pathspec is None
    with pytest.raises(client.MetaflowNotFound, match='Did you mean "body"'):
        run["bodyy"]
    with pytest.raises(KeyError):
        run["nope"]


def test_failed_run_and_task_exception(runs):
    _, ids = runs
    run = Flow("ClientFlow")[ids["failed"]]
    assert not run.successful and not run.finished
    end = run.end_task
    assert not end.successful and not end.finished and end.current_attempt == 0
    exc = end.exception
    assert exc.type == "builtins.ValueError"
    assert exc.exception == "boom at total=5" and "boom" in exc.stacktrace
    assert exc.message == "boom at total=5" and exc["message"] == exc.message
    assert "Traceback" in exc.traceback and "boom" in exc.traceback
    assert "ValueError: boom at total=5" in end.stderr
    assert run["join"].task.exception is None
    assert "result" not in run.data


def test_not_found_and_bad_pathspecs(runs):
    _, ids = runs
    with pytest.raises(client.MetaflowNotFound, match='Did you mean "ClientFlow"'):
        Flow("ClientFlw")
    with pytest.raises(client.MetaflowNotFound, match="ClientFlow/123"):
        Run("ClientFlow/123")
    with pytest.raises(client.MetaflowNotFound, match='Did you mean "ClientFlow"'):
        Run("ClientFlw/123")
    with pytest.raises(client.MetaflowInvalidPathspec, match="FlowName/RunID"):
        Run("ClientFlow")
    with pytest.raises(client.MetaflowNotFound, match='Did you mean "body"'):
        Step(f"ClientFlow/{ids['big']}/bdy")
    with pytest.raises(client.MetaflowNotFound, match="999"):
        Task(f"ClientFlow/{ids['big']}/body/999")
    with pytest.raises(client.MetaflowNotFound, match="999"):
        Run(f"ClientFlow/{ids['big']}")["body"]["999"]


# --------------------------------------------------------------------------- steps and tasks


def test_steps_tasks_and_foreach_index(runs):
    _, ids = runs
    step = Run(f"ClientFlow/{ids['big']}")["body"]
    assert step.pathspec == f"ClientFlow/{ids['big']}/body" and step.parent.id == ids["big"]
    tasks = list(step)
    assert len(tasks) == 50 == len(list(step.tasks()))
    numbers = [int(t.id) for t in tasks]
    assert numbers == sorted(numbers, reverse=True)  # newest first
    assert step.task == tasks[0]
    assert sorted(t.index for t in tasks) == list(range(50))
    for t in tasks[:5]:
        assert t.data.sq == t.index**2
        assert t.parent == step and t.pathspec == f"{step.pathspec}/{t.id}"
    assert step.finished_at == max(t.finished_at for t in tasks)
    same = step[tasks[7].id]
    assert same == tasks[7] and same.data.sq == tasks[7].data.sq
    start = step.parent["start"].task
    assert start.index is None and tasks[3].parent_tasks == [start]
    assert Step(step.pathspec).task == tasks[0]


def test_task_artifacts_logs_and_status(runs):
    _, ids = runs
    run = Run(f"ClientFlow/{ids['big']}")
    task = Task(run["start"].task.pathspec)
    assert task.successful and task.finished and task.current_attempt == 0
    assert task.finished_at >= task.created_at
    assert task.exception is None and task.origin_pathspec is None
    assert "hello from start" in task.stdout
    assert "a warning on stderr" in task.stderr and "hello" not in task.stderr
    assert task.metadata_dict["attempt"] == "0" and task.metadata_dict["attempt_ok"] == "True"
    assert task.data.items == list(range(50))
    assert task["items"].data == list(range(50))
    assert task.artifacts.items.data == list(range(50))
    assert {a.id for a in task} == {"blob", "fail", "items", "n"}
    assert set(dir(task.data)) == {"blob", "fail", "items", "n", "name"}
    assert task.data.name == "ClientFlow"
    assert "blob" in task and "blob" in task.data and "nope" not in task

    blob = task["blob"]
    assert blob.data == b"x" * 1000 and blob.type == "bytes" and 1000 <= blob.size < 1100
    assert len(blob.sha) == 64 and blob.pathspec == f"{task.pathspec}/blob"
    assert blob.parent == task and isinstance(blob.created_at, datetime)
    # inherited artifacts keep their content key
    body = run["body"].task
    assert body["items"].sha == task["items"].sha and body["sq"].sha != task["items"].sha
    assert DataArtifact(blob.pathspec).data == b"x" * 1000

    with pytest.raises(AttributeError, match='Did you mean "items"'):
        _ = task.data.itemz
    with pytest.raises(client.MetaflowArtifactNotFound, match=task.pathspec):
        _ = task.artifacts.nope
    with pytest.raises(KeyError):
        task["nope"]
    with pytest.raises(client.MetaflowNotFound):
        DataArtifact(f"{task.pathspec}/nope")


def test_objects_are_lazy(runs, monkeypatch):
    """Listing and status read no artifact; each ``.data`` read loads exactly one."""
    _, ids = runs
    loads, reads = [], []
    real_load, real_get = ContentStore.load, LocalStorage.get_bytes
    monkeypatch.setattr(
        ContentStore, "load", lambda self, key: loads.append(key) or real_load(self, key)
    )
    monkeypatch.setattr(
        LocalStorage, "get_bytes", lambda self, p: reads.append(p) or real_get(self, p)
    )

    run = Flow("ClientFlow")[ids["big"]]
    tasks = list(run["body"])
    assert len({t.pathspec for t in tasks}) == 50 and {t.index for t in tasks} == set(range(50))
    assert loads == [] and reads[0] == f"flows/ClientFlow/{ids['big']}/_run.json"
    # a forked task's record (its foreach index) is in its completion marker
    assert all(r.endswith("/0.done") for r in reads[1:]) and len(reads) == 51
    reads.clear()
    assert all(t.successful for t in tasks) and all(t.finished_at for t in tasks)
    assert len(tasks) == 50 and loads == []
    assert not any(r.endswith("task.json") for r in reads)  # status needs only the markers
    assert {a.id for a in tasks[0]} >= {"sq", "items", "blob"} and loads == []
    assert sum(t.data.sq for t in tasks) == sum(i * i for i in range(50))
    assert len(loads) == 50


# --------------------------------------------------------------------------- resume


def test_resumed_run_points_at_its_origin(tmp_path, monkeypatch):
    flow_file = tmp_path / "client_flow.py"
    flow_file.write_text(textwrap.dedent(FLOW))
    root = tmp_path / "ds"
    failed = run_flow(flow_file, root, "run", "--fail", "1", check=False)
    resumed = run_flow(flow_file, root, "resume", extra_env={"CLIENT_FIX": "1"})
    client.set_datastore(None, str(root))

    run = Flow("ClientFlow").latest_run
    assert run.id == resumed and run.successful
    assert run.origin_pathspec == f"ClientFlow/{failed}"
    origin_start = Run(f"ClientFlow/{failed}")["start"].task
    start = run["start"].task
    assert start.origin_pathspec == origin_start.pathspec
    assert start["items"].sha == origin_start["items"].sha
    assert "hello from start" in start.stdout
    assert run.end_task.origin_pathspec is None and run.data.result == 6
    assert Flow("ClientFlow").latest_successful_run == run
