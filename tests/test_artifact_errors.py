"""Artifacts that cannot be stored or loaded are named, with the task they belong to.

Handles (open files, sockets, locks, generators...) are refused when a step ends instead
of being stored as something else; an artifact whose class is missing where it is read
names itself and the task that stored it. Lambdas and closures stay supported.
"""

from __future__ import annotations

import io
import socket
import threading

import pytest

from metaflowlike import Flow
from metaflowlike.datastore.serialization import deserialize, serialize
from metaflowlike.exceptions import ArtifactLoadError, UnserializableArtifact


def _gen():
    yield 1


@pytest.mark.parametrize(
    "value, kind",
    [
        (lambda: open(__file__), "an open file"),
        (lambda: open(__file__, "rb"), "an open file"),
        (lambda: threading.Lock(), "a lock"),
        (lambda: threading.RLock(), "a lock"),
        (lambda: _gen(), "a generator"),
        (lambda: socket.socket(), "a socket"),
        (lambda: {"config": 1, "log": open(__file__)}, "holds an open file"),
        (lambda: threading.Condition(), "holds a lock"),
    ],
)
def test_handles_are_refused_naming_the_artifact(value, kind):
    obj = value()
    try:
        with pytest.raises(UnserializableArtifact, match=f'Artifact "thing" (is )?.*{kind}'):
            serialize(obj, "thing")
    finally:
        for v in [obj] if not isinstance(obj, dict) else obj.values():
            getattr(v, "close", lambda: None)()


def test_values_that_look_like_handles_are_kept():
    for value in (io.BytesIO(b"abc"), io.StringIO("abc")):
        ser = serialize(value, "buf")
        payload = bytes(ser.chunks[1])
        assert (
            deserialize(payload, [bytes(c) for c in ser.chunks[2:]]).getvalue() == value.getvalue()
        )
    factor = 3
    ser = serialize(lambda x: x * factor, "fn")  # a closure: plain pickle refuses it
    payload = bytes(ser.chunks[1])
    assert deserialize(payload, [bytes(c) for c in ser.chunks[2:]])(2) == 6


FLOW = """
import os
import sys

from metaflowlike import FlowSpec, step


class HandleFlow(FlowSpec):
    @step
    def start(self):
        offset = 10
        self.add = lambda x: x + offset  # a closure: stored with cloudpickle
        if os.environ.get("STORE_FILE"):
            self.log = open(__file__)
        if os.environ.get("GADGET_DIR"):
            sys.path.insert(0, os.environ["GADGET_DIR"])
            import gadget

            self.thing = gadget.Gadget()
        self.next(self.end)

    @step
    def end(self):
        self.result = self.add(1)
        if os.environ.get("GADGET_DIR"):
            print(self.thing)


if __name__ == "__main__":
    HandleFlow()
"""


def test_a_step_storing_an_open_file_fails_naming_it(make_flow):
    flow = make_flow(FLOW)
    proc = flow.run("run", check=False, env={"STORE_FILE": "1"})
    assert proc.returncode == 1
    out = proc.stdout + proc.stderr
    assert 'Artifact "log" is an open file (_io.TextIOWrapper)' in out
    task = Flow("HandleFlow").latest_run["start"].task
    assert "open file" in task.exception.message and not task.successful


def test_lambdas_and_closures_stay_artifacts(make_flow):
    flow = make_flow(FLOW)
    flow.run("run")
    run = Flow("HandleFlow").latest_run
    assert run.data.result == 11 and run["start"].task.data.add(5) == 15


def test_unpickling_failures_name_the_artifact_and_its_task(make_flow, tmp_path):
    """``gadget`` is importable only inside ``start`` (it adds its folder to sys.path),
    so the ``end`` task and this process cannot unpickle ``thing``."""
    (tmp_path / "mods").mkdir()
    (tmp_path / "mods" / "gadget.py").write_text("class Gadget:\n    pass\n")
    flow = make_flow(FLOW)
    proc = flow.run("run", check=False, env={"GADGET_DIR": str(tmp_path / "mods")})
    assert proc.returncode == 1
    run = Flow("HandleFlow").latest_run
    start = run["start"].task
    expected = (
        f'Artifact "thing" of type gadget.Gadget from task {start.pathspec} cannot be unpickled'
    )
    assert expected in run["end"].task.exception.message
    assert "No module named 'gadget'" in run["end"].task.exception.message
    with pytest.raises(ArtifactLoadError, match=expected):
        start.data.thing  # noqa: B018
    with pytest.raises(ArtifactLoadError, match=expected):
        start["thing"].data  # noqa: B018
    dump = flow.run("dump", f"{run.id}/start")
    assert "thing (gadget.Gadget" in dump.stdout and "not loadable here" in dump.stdout
