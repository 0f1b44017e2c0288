"""user_step_decorator as Metaflow documents it, and the mutators we say we lack."""

from __future__ import annotations

from metaflowlike import Flow

FLOW = """
import os
from metaflowlike import FlowSpec, step, user_step_decorator, current

@user_step_decorator
def record(step_name, flow, inputs=None, attributes=None):
    flow.before = (step_name, current.step_name, dict(attributes or {}))
    if inputs is not None:
        flow.n_inputs = len(inputs)
    yield
    flow.after = "ran after " + step_name

@user_step_decorator
def forgive(step_name, flow, inputs=None, attributes=None):
    try:
        yield
    except ValueError as e:
        flow.forgiven = str(e)
        flow.next(flow.join)  # the step stopped before its own self.next()

class UserDecoFlow(FlowSpec):
    @record(tag="x")
    @step
    def start(self):
        self.seen_before = self.before
        self.next(self.a, self.b)

    @forgive
    @step
    def a(self):
        self.value = int("not a number")
        self.next(self.join)

    @step
    def b(self):
        self.next(self.join)

    @record
    @step
    def join(self, inputs):
        self.next(self.end)

    @step
    def end(self):
        if os.environ.get("STRICT"):
            raise RuntimeError("never forgiven")

if __name__ == "__main__":
    UserDecoFlow()
"""


def test_user_step_decorator_runs_before_after_and_sees_failures(make_flow):
    flow = make_flow(FLOW)
    flow.run("run")
    run = Flow("UserDecoFlow").latest_run
    start = run["start"].task.data
    assert start.seen_before == ("start", "start", {"tag": "x"})
    assert start.after == "ran after start"
    assert "not a number" in run["a"].task.data.forgiven
    join = run["join"].task.data
    assert join.n_inputs == 2
    assert join.before == ("join", "join", {})


def test_a_decorator_that_re_raises_fails_the_task(make_flow):
    flow = make_flow(
        """
from metaflowlike import FlowSpec, step, user_step_decorator

@user_step_decorator
def note(step_name, flow, inputs=None, attributes=None):
    try:
        yield
    except Exception:
        print("decorator saw the failure")
        raise

class ReRaiseFlow(FlowSpec):
    @note
    @step
    def start(self):
        {}["boom"]
        self.next(self.end)

    @step
    def end(self):
        pass

if __name__ == "__main__":
    ReRaiseFlow()
"""
    )
    assert flow.run("run", check=False).returncode == 1
    task = Flow("ReRaiseFlow").latest_run["start"].task
    assert "decorator saw the failure" in task.stdout
    assert "KeyError" in task.stderr
