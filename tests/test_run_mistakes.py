"""Mistakes found while a flow runs read like ``check``: the user's file and line.

A ``foreach`` over an int, or setting an artifact under a reserved name, is a mistake in
the flow, reported in one paragraph that names the flow's file and line and shows no
frame of the framework. An exception of the user's own code keeps its traceback,
starting at the user's frames.
"""

from __future__ import annotations

import re

import pytest

from metaflowlike import Flow

pytestmark = pytest.mark.timeout(180)

FOREACH_INT = """
from metaflowlike import FlowSpec, step

class MistakeFlow(FlowSpec):
    @step
    def start(self):
        self.n = 3
        self.next(self.body, foreach="n")

    @step
    def body(self):
        self.next(self.join)

    @step
    def join(self, inputs):
        self.next(self.end)

    @step
    def end(self):
        pass

if __name__ == "__main__":
    MistakeFlow()
"""

RESERVED_NAME = """
from metaflowlike import FlowSpec, step

class MistakeFlow(FlowSpec):
    @step
    def start(self):
        self.prepare()
        self.next(self.end)

    def prepare(self):
        self.end = 1

    @step
    def end(self):
        pass

if __name__ == "__main__":
    MistakeFlow()
"""

USER_BUG = """
from metaflowlike import FlowSpec, step

def helper(x):
    return 1 / x

class MistakeFlow(FlowSpec):
    @step
    def start(self):
        self.v = helper(0)
        self.next(self.end)

    @step
    def end(self):
        pass

if __name__ == "__main__":
    MistakeFlow()
"""


def _line_of(source: str, text: str) -> int:
    return next(i for i, line in enumerate(source.splitlines(), 1) if text in line)


@pytest.mark.parametrize("launcher", ["fork", "subprocess"])
@pytest.mark.parametrize(
    "source, marker, message",
    [
        (FOREACH_INT, 'foreach="n"', 'foreach="n" in step "start" needs an iterable, got int'),
        (RESERVED_NAME, "self.end = 1", "Cannot set self.end"),
    ],
    ids=["foreach-over-an-int", "reserved-name"],
)
def test_a_mistake_found_at_run_time_names_the_flows_file_and_line(
    make_flow, launcher, source, marker, message
):
    flow = make_flow(source)
    proc = flow.run("run", "--launcher", launcher, check=False)
    assert proc.returncode != 0
    where = f"{flow.path}:{_line_of(source, marker)}: "
    lines = [line for line in proc.stderr.splitlines() if message in line]
    assert lines and all(where in line for line in lines), proc.stderr
    assert "Traceback" not in proc.stderr, proc.stderr
    assert "metaflowlike/" not in proc.stderr, proc.stderr  # no framework frame or path
    task = Flow("MistakeFlow").latest_run["start"].task
    assert task.exception.user_error and message in task.exception.message
    assert where in task.exception.traceback and "Traceback" not in task.exception.traceback


@pytest.mark.parametrize("launcher", ["fork", "subprocess"])
def test_a_user_exception_keeps_its_traceback_from_the_users_frames(make_flow, launcher):
    flow = make_flow(USER_BUG)
    proc = flow.run("run", "--launcher", launcher, check=False)
    assert proc.returncode != 0
    tb = Flow("MistakeFlow").latest_run["start"].task.exception.traceback
    frames = re.findall(r'File "([^"]+)", line (\d+)', tb)
    assert frames[0] == (str(flow.path), str(_line_of(USER_BUG, "helper(0)"))), tb
    assert frames[-1] == (str(flow.path), str(_line_of(USER_BUG, "1 / x"))), tb
    assert not any("metaflowlike" in f for f, _ in frames), tb
    assert "ZeroDivisionError: division by zero" in tb
    assert "Traceback (most recent call last)" in proc.stderr and "helper(0)" in proc.stderr
    assert "metaflowlike/task.py" not in proc.stderr, proc.stderr
