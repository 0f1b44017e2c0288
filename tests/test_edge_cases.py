"""Edge cases found in review, each once a real bug."""

from __future__ import annotations

import glob
import os
import tempfile

from metaflowlike import Flow
from tests.flows import two_steps

HEADER = "import os, sys\nfrom metaflowlike import FlowSpec, step, Parameter, current, retry, checkpoint\n"


def test_join_inputs_do_not_share_objects(make_flow):
    flow = make_flow(
        HEADER
        + """
class AliasFlow(FlowSpec):
    @step
    def start(self):
        self.items = [1, 2, 3]
        self.next(self.body, foreach="items")

    @step
    def body(self):
        self.found = ["x"]
        self.next(self.join)

    @step
    def join(self, inputs):
        acc = inputs[0].found
        for i in inputs[1:]:
            acc += i.found
        self.total = acc
        self.next(self.end)

    @step
    def end(self):
        pass

if __name__ == "__main__":
    AliasFlow()
"""
    )
    flow.run("run")
    assert Flow("AliasFlow").latest_run.data.total == ["x", "x", "x"]


def test_foreach_over_a_set_is_the_same_order_in_every_process(make_flow):
    flow = make_flow(
        HEADER
        + """
class SetFlow(FlowSpec):
    @step
    def start(self):
        self.names = {"alpha%d" % i for i in range(8)}
        self.next(self.body, foreach="names")

    @step
    def body(self):
        self.name_seen = self.input
        self.next(self.join)

    @step
    def join(self, inputs):
        self.seen = sorted(i.name_seen for i in inputs)
        self.next(self.end)

    @step
    def end(self):
        pass

if __name__ == "__main__":
    SetFlow()
"""
    )
    flow.run("run", env={"METAFLOWLIKE_LAUNCHER": "subprocess", "PYTHONHASHSEED": "random"})
    assert Flow("SetFlow").latest_run.data.seen == sorted(f"alpha{i}" for i in range(8))


def test_reading_an_artifact_keeps_its_key(make_flow):
    flow = make_flow(
        HEADER
        + """
class ReadFlow(FlowSpec):
    @step
    def start(self):
        self.tags_ = {"t%d" % i for i in range(50)}
        self.next(self.a, self.b)

    @step
    def a(self):
        self.n = len(self.tags_)
        self.next(self.join)

    @step
    def b(self):
        self.next(self.join)

    @step
    def join(self, inputs):
        self.merge_artifacts(inputs, exclude=["n"])
        self.next(self.end)

    @step
    def end(self):
        pass

if __name__ == "__main__":
    ReadFlow()
"""
    )
    flow.run("run", env={"METAFLOWLIKE_LAUNCHER": "subprocess", "PYTHONHASHSEED": "random"})
    run = Flow("ReadFlow").latest_run
    assert run["a"].task["tags_"].sha == run["start"].task["tags_"].sha
    assert len(run.data.tags_) == 50


def test_with_does_not_override_the_steps_own_decorator(make_flow):
    flow = make_flow(
        HEADER
        + """
class OwnRetryFlow(FlowSpec):
    @retry(times=1, minutes_between_retries=0)
    @step
    def start(self):
        print("attempt", current.retry_count)
        raise RuntimeError("always")
        self.next(self.end)

    @step
    def end(self):
        pass

if __name__ == "__main__":
    OwnRetryFlow()
"""
    )
    proc = flow.run("run", "--with", "retry", check=False, timeout=60)
    assert proc.returncode != 0
    assert proc.stdout.count("] attempt ") == 2  # the step's times=1, not --with's default


def test_parameters_and_reserved_names_cannot_be_assigned(make_flow):
    flow = make_flow(
        HEADER
        + """
class AssignFlow(FlowSpec):
    rate = Parameter("rate", default=0.5)

    @step
    def start(self):
        try:
            self.rate = 5
        except Exception as e:
            self.rate_error = str(e)
        try:
            self.index = 3
        except Exception as e:
            self.index_error = str(e)
        self.next(self.end)

    @step
    def end(self):
        self.rate_seen = self.rate

if __name__ == "__main__":
    AssignFlow()
"""
    )
    flow.run("run")
    data = Flow("AssignFlow").latest_run
    start = data["start"].task.data
    assert "Parameter" in start.rate_error and "self.rate" in start.rate_error
    assert "index" in start.index_error
    assert data.data.rate_seen == 0.5


def test_branch_steps_named_like_list_methods(make_flow):
    flow = make_flow(
        HEADER
        + """
class NamesFlow(FlowSpec):
    @step
    def start(self):
        self.next(self.copy, self.count)

    @step
    def copy(self):
        self.x = "from copy"
        self.next(self.join)

    @step
    def count(self):
        self.x = "from count"
        self.next(self.join)

    @step
    def join(self, inputs):
        self.got = (inputs.copy.x, inputs.count.x, len(inputs), [i.x for i in inputs])
        self.next(self.end)

    @step
    def end(self):
        pass

if __name__ == "__main__":
    NamesFlow()
"""
    )
    flow.run("run")
    got = Flow("NamesFlow").latest_run.data.got
    assert got[:3] == ("from copy", "from count", 2)


def test_checkpoint_of_a_hard_killed_task_is_restored_on_resume(make_flow, tmp_path):
    flow = make_flow(
        HEADER
        + """
class KilledCkptFlow(FlowSpec):
    @checkpoint
    @step
    def start(self):
        path = os.path.join(current.checkpoint.directory, "n")
        self.restored = current.checkpoint.is_loaded
        n = int(open(path).read()) if current.checkpoint.is_loaded else 0
        self.started_at = n
        while n < 3:
            n += 1
            open(path, "w").write(str(n))
            current.checkpoint.save()
            if n == 2 and os.environ.get("KILL"):
                os.kill(os.getpid(), 9)
        self.next(self.end)

    @step
    def end(self):
        pass

if __name__ == "__main__":
    KilledCkptFlow()
"""
    )
    before = set(glob.glob(os.path.join(tempfile.gettempdir(), "mfl-checkpoint-*")))
    assert flow.run("run", env={"KILL": "1"}, check=False).returncode != 0
    flow.run("resume")
    task = Flow("KilledCkptFlow").latest_run["start"].task
    assert task.data.restored is True and task.data.started_at == 2
    after = set(glob.glob(os.path.join(tempfile.gettempdir(), "mfl-checkpoint-*")))
    # the killed attempt could not clean up; the finished one did
    assert len(after - before) <= 1


def test_long_output_without_newlines_is_streamed_and_saved(make_flow):
    flow = make_flow(
        HEADER
        + """
class ProgressFlow(FlowSpec):
    @step
    def start(self):
        for i in range(20000):
            sys.stdout.write("\\rprogress %05d" % i)
        sys.stdout.write("\\ndone\\n")
        self.next(self.end)

    @step
    def end(self):
        pass

if __name__ == "__main__":
    ProgressFlow()
"""
    )
    proc = flow.run("run")
    task = Flow("ProgressFlow").latest_run["start"].task
    assert task.stdout.endswith("progress 19999\ndone\n")
    assert len(task.stdout) == 20000 * 15 + 6
    # (text mode turned the \r into newlines here; the console got every byte)
    assert "progress 19999" in proc.stdout and "] done" in proc.stdout


def test_missing_task_in_logs_and_dump_is_an_error(make_flow):
    flow = make_flow(two_steps("TinyFlow"))
    flow.run("run")
    run_id = Flow("TinyFlow").latest_run.id
    for command in ("logs", "dump"):
        proc = flow.run(command, f"{run_id}/start/999", check=False)
        assert proc.returncode != 0 and "999" in proc.stderr and "Traceback" not in proc.stderr


def test_resume_of_an_unfinished_resume_reuses_the_older_run(make_flow, tmp_path):
    counts = tmp_path / "counts"
    counts.mkdir()
    flow = make_flow(
        HEADER
        + f"""
class ChainFlow(FlowSpec):
    @step
    def start(self):
        self.items = list(range(6))
        self.next(self.body, foreach="items")

    @step
    def body(self):
        with open(os.path.join({str(counts)!r}, str(self.input)), "a") as f:
            f.write("x")
        if self.input == 3 and os.environ.get("FAIL"):
            raise RuntimeError("split 3 is broken")
        self.v = self.input * 10
        self.next(self.join)

    @step
    def join(self, inputs):
        self.total = sum(i.v for i in inputs)
        self.next(self.end)

    @step
    def end(self):
        pass

if __name__ == "__main__":
    ChainFlow()
"""
    )
    assert flow.run("run", env={"FAIL": "1"}, check=False).returncode != 0
    # this resume stops at the first failure: splits 4 and 5 are never reached in it
    assert flow.run("resume", "--max-workers", "1", env={"FAIL": "1"}, check=False).returncode
    middle = Flow("ChainFlow").latest_run
    assert {t.index for t in middle["body"]} == {0, 1, 2, 3}
    flow.run("resume")
    run = Flow("ChainFlow").latest_run
    assert run.successful and run.data.total == 150
    executions = {int(p.name): len(p.read_text()) for p in counts.iterdir()}
    assert executions == {0: 1, 1: 1, 2: 1, 3: 3, 4: 1, 5: 1}
    cloned = {t.index for t in run["body"] if t.origin_pathspec}
    assert cloned == {0, 1, 2, 4, 5}
