"""Behaviours that must match Metaflow's for a flow to port unchanged: atomic
merge_artifacts, the @catch record, immediate local retries and the line a task killed
by a signal leaves in its stderr. Each runs a real flow and checks it through the client."""

from __future__ import annotations

from metaflowlike import Flow, Task

HEADER = "import os, signal\nfrom metaflowlike import FlowSpec, step, current, retry, catch\n"


def test_merge_artifacts_merges_nothing_when_it_raises(make_flow):
    flow = make_flow(
        HEADER
        + """
class AtomicMergeFlow(FlowSpec):
    @step
    def start(self):
        self.next(self.a, self.b)

    @step
    def a(self):
        self.same = 1
        self.only_a = "a"
        self.clash = "A"
        self.next(self.join)

    @step
    def b(self):
        self.same = 1
        self.clash = "B"
        self.next(self.join)

    @step
    def join(self, inputs):
        try:
            self.merge_artifacts(inputs)
        except Exception as e:
            self.error = type(e).__name__
        self.saw_same = hasattr(self, "same")
        self.saw_only_a = hasattr(self, "only_a")
        self.merge_artifacts(inputs, exclude=["clash"])
        self.next(self.end)

    @step
    def end(self):
        pass

if __name__ == "__main__":
    AtomicMergeFlow()
"""
    )
    flow.run("run")
    data = Flow("AtomicMergeFlow").latest_run["join"].task.data
    assert data.error == "MergeArtifactsError"
    assert data.saw_same is False and data.saw_only_a is False  # nothing merged
    assert data.same == 1 and data.only_a == "a"  # the second call merged them


def test_catch_record_has_metaflows_fields(make_flow, tmp_path):
    (tmp_path / "mylib.py").write_text("class MyError(Exception):\n    pass\n")
    flow = make_flow(
        HEADER
        + """
from mylib import MyError

class CatchRecordFlow(FlowSpec):
    @step
    def start(self):
        self.next(self.risky, self.builtin)

    @catch(var="problem")
    @step
    def risky(self):
        raise MyError("boom")
        self.next(self.join)

    @catch(var="problem", print_exception=False)
    @step
    def builtin(self):
        {}["missing"]
        self.next(self.join)

    @step
    def join(self, inputs):
        self.mine = inputs.risky.problem
        self.theirs = inputs.builtin.problem
        self.next(self.end)

    @step
    def end(self):
        pass

if __name__ == "__main__":
    CatchRecordFlow()
"""
    )
    flow.run("run")
    run = Flow("CatchRecordFlow").latest_run
    mine = run["join"].task.data.mine
    assert mine.type == "mylib.MyError" and mine.exception == "boom"
    assert "Traceback" in mine.stacktrace and 'raise MyError("boom")' in mine.stacktrace
    theirs = run["join"].task.data.theirs
    assert theirs.type == "builtins.KeyError" and theirs.exception == "'missing'"
    assert "@catch caught mylib.MyError: boom" in run["risky"].task.stdout


def test_caught_killed_task_records_failure_handled_by_catch(make_flow):
    flow = make_flow(
        HEADER
        + """
class CaughtKillFlow(FlowSpec):
    @step
    def start(self):
        self.next(self.doomed)

    @catch(var="problem")
    @step
    def doomed(self):
        os.kill(os.getpid(), signal.SIGKILL)
        self.next(self.end)

    @step
    def end(self):
        self.kind = self.problem.type
        self.message = self.problem.exception

if __name__ == "__main__":
    CaughtKillFlow()
"""
    )
    flow.run("run")
    run = Flow("CaughtKillFlow").latest_run
    assert run.successful
    assert run.data.kind == "metaflowlike.builtin_decorators.FailureHandledByCatch"
    assert "killed by signal 9" in run.data.message
    # the attempt that died says so in its own stderr
    first = Task(run["doomed"].task.pathspec, attempt=0)
    assert "killed by signal 9 (SIGKILL)" in first.stderr


def test_retry_is_immediate_on_the_local_runtime(make_flow, tmp_path):
    """minutes_between_retries=30 would hold the run for an hour if it were honoured
    locally: the test finishing at all (within the runner's timeout) is the check."""
    flow = make_flow(
        HEADER
        + """
class FlakyFlow(FlowSpec):
    @retry(times=2, minutes_between_retries=30)
    @step
    def start(self):
        if current.retry_count < 2:
            raise RuntimeError("flaky")
        self.next(self.end)

    @step
    def end(self):
        pass

if __name__ == "__main__":
    FlakyFlow()
"""
    )
    flow.run("run", timeout=120)
    run = Flow("FlakyFlow").latest_run
    assert run.successful and run["start"].task.current_attempt == 2


def test_task_killed_by_a_signal_says_so_in_its_stderr(make_flow):
    flow = make_flow(
        HEADER
        + """
import ctypes

class SegfaultFlow(FlowSpec):
    @step
    def start(self):
        print("about to crash")
        ctypes.string_at(0)
        self.next(self.end)

    @step
    def end(self):
        pass

if __name__ == "__main__":
    SegfaultFlow()
"""
    )
    proc = flow.run("run", check=False)
    assert proc.returncode != 0
    task = Flow("SegfaultFlow").latest_run["start"].task
    assert not task.successful
    assert "killed by signal 11 (SIGSEGV)" in task.stderr
    assert "about to crash" in task.stdout
