"""Step decorators as users apply them, in code and with --with."""

from __future__ import annotations

import os

from metaflowlike import Flow

HEADER = "import os, sys, time\nfrom metaflowlike import FlowSpec, step, current, retry, catch, timeout, resources, checkpoint\n"


def test_retry_attempts_and_logs(make_flow):
    flow = make_flow(
        HEADER
        + """
class RetryFlow(FlowSpec):
    @retry(times=2, minutes_between_retries=0)
    @step
    def start(self):
        print("attempt", current.retry_count)
        self.seen_attempt = current.retry_count
        if current.retry_count == 0:
            self.only_in_first = True
        if current.retry_count < 2:
            raise RuntimeError("flaky %d" % current.retry_count)
        self.next(self.end)

    @step
    def end(self):
        pass

if __name__ == "__main__":
    RetryFlow()
"""
    )
    proc = flow.run("run")
    assert "Retrying" in proc.stderr
    run = Flow("RetryFlow").latest_run
    task = run["start"].task
    assert run.successful
    assert task.current_attempt == 2
    assert task.data.seen_attempt == 2
    assert "only_in_first" not in {a.id for a in task}
    for attempt in range(3):
        out = flow.run("logs", f"{run.id}/start/{task.id}", "--attempt", str(attempt)).stdout
        assert f"attempt {attempt}" in out


def test_retry_via_with_and_exhaustion(make_flow):
    flow = make_flow(
        HEADER
        + """
class AlwaysFails(FlowSpec):
    @step
    def start(self):
        print("try", current.retry_count)
        raise ValueError("always")

    @step
    def end(self):
        pass

if __name__ == "__main__":
    AlwaysFails()
"""
    )
    src = flow.path.read_text().replace(
        'raise ValueError("always")', 'raise ValueError("always")\n        self.next(self.end)'
    )
    flow.path.write_text(src)
    proc = flow.run("run", "--with", "retry:times=1,minutes_between_retries=0", check=False)
    assert proc.returncode != 0
    assert proc.stdout.count("] try ") == 2


def test_catch_stores_exception_and_run_goes_on(make_flow):
    flow = make_flow(
        HEADER
        + """
class CatchFlow(FlowSpec):
    @step
    def start(self):
        self.next(self.risky)

    @catch(var="problem")
    @retry(times=1, minutes_between_retries=0)
    @step
    def risky(self):
        self.attempts = current.retry_count
        raise KeyError("missing thing")
        self.next(self.end)

    @step
    def end(self):
        self.saw = str(self.problem)

if __name__ == "__main__":
    CatchFlow()
"""
    )
    flow.run("run")
    run = Flow("CatchFlow").latest_run
    assert run.successful
    assert "KeyError" in run.data.saw and "missing thing" in run.data.saw
    risky = run["risky"].task
    assert risky.current_attempt == 1
    assert "missing thing" in risky.metadata_dict.get("caught")  # failed, but caught


def test_timeout_kills_task_and_children_and_is_retried(make_flow, tmp_path):
    pidfile = tmp_path / "child.pid"
    flow = make_flow(
        HEADER
        + f"""
import subprocess
class TimeoutFlow(FlowSpec):
    @retry(times=1, minutes_between_retries=0)
    @timeout(seconds=1)
    @step
    def start(self):
        child = subprocess.Popen(["sleep", "300"])
        open({str(pidfile)!r} + str(current.retry_count), "w").write(str(child.pid))
        if current.retry_count == 0:
            time.sleep(30)
        child.kill()
        self.next(self.end)

    @step
    def end(self):
        pass

if __name__ == "__main__":
    TimeoutFlow()
"""
    )
    flow.run("run")
    run = Flow("TimeoutFlow").latest_run
    assert run.successful and run["start"].task.current_attempt == 1
    child = int((tmp_path / "child.pid0").read_text())
    assert not _alive(child), "the timed-out task's child process was left running"


def test_timeout_hard_kill_when_signal_is_ignored(make_flow):
    flow = make_flow(
        HEADER
        + """
import signal
class StuckFlow(FlowSpec):
    @timeout(seconds=1)
    @step
    def start(self):
        signal.pthread_sigmask(signal.SIG_BLOCK, [signal.SIGALRM])
        time.sleep(60)
        self.next(self.end)

    @step
    def end(self):
        pass

if __name__ == "__main__":
    StuckFlow()
"""
    )
    proc = flow.run("run", check=False, timeout=60)
    assert proc.returncode != 0
    assert "timed out" in proc.stderr


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:  # a zombie is dead for our purposes
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split()[2] != "Z"
    except FileNotFoundError:
        return False


def test_resources_refuses_oversized_request(make_flow):
    flow = make_flow(
        HEADER
        + """
class BigFlow(FlowSpec):
    @resources(cpu=4096)
    @step
    def start(self):
        self.next(self.end)

    @step
    def end(self):
        pass

if __name__ == "__main__":
    BigFlow()
"""
    )
    proc = flow.run("run", check=False)
    assert proc.returncode != 0 and "Traceback" not in proc.stderr
    assert '"start"' in proc.stderr and "cpu=4096" in proc.stderr


def test_resources_bound_concurrency_and_assign_gpus(make_flow, tmp_path):
    marks = tmp_path / "marks"
    marks.mkdir()
    flow = make_flow(
        HEADER
        + f"""
class GpuFlow(FlowSpec):
    @step
    def start(self):
        self.items = list(range(4))
        self.next(self.body, foreach="items")

    @resources(cpu=2, gpu=1)
    @step
    def body(self):
        d = {str(marks)!r}
        open(os.path.join(d, "%d.start" % self.input), "w").close()
        self.running = len([f for f in os.listdir(d) if f.endswith(".start")]) - \\
                       len([f for f in os.listdir(d) if f.endswith(".end")])
        self.gpus = os.environ.get("CUDA_VISIBLE_DEVICES")
        time.sleep(0.3)
        open(os.path.join(d, "%d.end" % self.input), "w").close()
        self.next(self.join)

    @step
    def join(self, inputs):
        self.max_running = max(i.running for i in inputs)
        self.gpus = sorted(i.gpus for i in inputs)
        self.next(self.end)

    @step
    def end(self):
        pass

if __name__ == "__main__":
    GpuFlow()
"""
    )
    flow.run(
        "run",
        "--max-workers",
        "8",
        env={"METAFLOWLIKE_LOCAL_CPUS": "4", "METAFLOWLIKE_LOCAL_GPUS": "2"},
    )
    data = Flow("GpuFlow").latest_run.data
    assert data.max_running <= 2
    assert set(data.gpus) <= {"0", "1"} and len(data.gpus) == 4


def test_user_defined_decorator_with_keyword_only_hooks(make_flow):
    flow = make_flow("""
from metaflowlike import FlowSpec, StepDecorator, make_decorator, step

class Stamp(StepDecorator):
    name = "stamp"
    defaults = {"label": "x"}

    def task_pre_step(self, *, task):
        task.flow.stamped_before = f"{self.attributes['label']}:{task.step_name}"

    def task_decorate(self, func, *, task):
        def wrapped():
            task.flow.wrapped = True
            func()
        return wrapped

    def task_post_step(self, *, task):
        task.flow.stamped_after = True

stamp = make_decorator(Stamp)

class CustomFlow(FlowSpec):
    @stamp(label="hello")
    @step
    def start(self):
        self.inside = self.stamped_before
        self.next(self.end)

    @step
    def end(self):
        pass

if __name__ == "__main__":
    CustomFlow()
""")
    flow.run("run")
    task = Flow("CustomFlow").latest_run["start"].task
    assert task.data.inside == "hello:start"
    assert task.data.wrapped is True and task.data.stamped_after is True


def test_checkpoint_restored_on_retry(make_flow):
    flow = make_flow(
        HEADER
        + """
class CkptFlow(FlowSpec):
    @retry(times=1, minutes_between_retries=0)
    @checkpoint
    @step
    def start(self):
        path = os.path.join(current.checkpoint.directory, "epoch.txt")
        epoch = int(open(path).read()) if current.checkpoint.is_loaded else 0
        self.resumed_at = epoch
        while epoch < 5:
            epoch += 1
            open(path, "w").write(str(epoch))
            current.checkpoint.save(name="progress", metadata={"epoch": epoch})
            if epoch == 3 and current.retry_count == 0:
                raise RuntimeError("crash after epoch 3")
        self.ckpts = [c["metadata"]["epoch"] for c in current.checkpoint.list(name="progress")]
        self.next(self.end)

    @step
    def end(self):
        pass

if __name__ == "__main__":
    CkptFlow()
"""
    )
    flow.run("run")
    task = Flow("CkptFlow").latest_run["start"].task
    assert task.data.resumed_at == 3
    assert task.data.ckpts == [5, 4, 3, 2, 1]
    listed = task.checkpoints
    assert [c["metadata"]["epoch"] for c in listed] == [5, 4, 3, 2, 1]
    assert {c["attempt"] for c in listed} == {0, 1}
    # identical file contents are stored once: epochs 1..5 give five distinct blobs
    keys = {k for c in listed for k, _ in c["files"].values()}
    assert len(keys) == 5
