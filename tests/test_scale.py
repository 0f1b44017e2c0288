"""What keeps the cost of a task flat as a run grows: counted, never timed.

Each test counts what the code reads or writes (read system calls, files, storage
calls) for a small and a larger case of the same shape: a cost that grows with the
width of a run shows up as a count that grows, whatever the load of the machine.
"""

from __future__ import annotations

import os
import shutil

import pytest

WIDE = """
from metaflowlike import FlowSpec, Parameter, step


def reads():
    with open("/proc/self/io") as f:
        return int(dict(line.split(": ") for line in f)["syscr"])


class WideFlow(FlowSpec):
    n = Parameter("n", default=2, type=int)

    @step
    def start(self):
        self.items = list(range(self.n))
        self.next(self.body, foreach="items")

    @step
    def body(self):
        self.sq = self.input * self.input
        if self.input == 0:
            print("the first split speaks")
            import gc

            from metaflowlike.task import TaskSpec

            gc.unfreeze()  # what the runtime held when it forked this task
            self.specs_in_runtime = sum(isinstance(o, TaskSpec) for o in gc.get_objects())
        self.next(self.join)

    @step
    def join(self, inputs):
        self.reads_before_code = reads()
        self.first = inputs[0].sq
        self.inputs_seen = len(inputs)
        self.next(self.end)

    @step
    def end(self):
        import gc

        self.frozen = gc.get_freeze_count()


if __name__ == "__main__":
    WideFlow()
"""


@pytest.mark.skipif(not os.path.exists("/proc/self/io"), reason="counts reads in /proc")
def test_a_join_reads_only_the_inputs_it_touches(make_flow):
    """A join that looks at one input of 40 reads what it reads for 2: the records of
    the other inputs are read only when the step touches them."""
    from metaflowlike import Flow

    flow = make_flow(WIDE)
    counts = {}
    for n in (2, 40):
        flow.run("run", "--n", str(n), "--max-workers", "2")
        data = Flow("WideFlow").latest_run["join"].task.data
        assert data.inputs_seen == n and data.first == 0
        counts[n] = data.reads_before_code
    # reading every input's record would cost 3 reads (listing, marker, manifest) each
    assert counts[40] - counts[2] < 3 * 38 / 4, counts


def test_the_runtime_makes_a_fanouts_tasks_as_they_start(make_flow):
    """A foreach of 40 does not hold 40 task specs in the runtime while they wait: every
    fork copies the runtime's memory, so that memory must not grow with the width."""
    from metaflowlike import Flow

    flow = make_flow(WIDE)
    flow.run("run", "--n", "40", "--max-workers", "2")
    first = next(t for t in Flow("WideFlow").latest_run["body"] if t.index == 0)
    assert first.data.specs_in_runtime <= 4, first.data.specs_in_runtime


def test_a_silent_stream_stores_no_log(make_flow):
    """The runtime spools a task's stream from its first byte: a task that prints
    nothing costs no log file, and its log still reads as empty."""
    from metaflowlike import Flow

    flow = make_flow(WIDE)
    flow.run("run", "--n", "3")
    run = Flow("WideFlow").latest_run
    tasks = {t.index: t for t in run["body"]}
    assert tasks[0].stdout == "the first split speaks\n"
    assert tasks[1].stdout == "" and tasks[1].stderr == "" and tasks[1].stdout_size == 0
    # nor an attempt folder: the forked task's record is in its marker
    assert os.listdir(flow.root / "flows" / tasks[1].pathspec) == ["0.done"]
    assert "stdout.log" in os.listdir(flow.root / "flows" / tasks[0].pathspec / "0")


def test_tasks_do_not_collect_what_they_inherited(make_flow):
    """A forked task starts with the runtime's objects frozen: its garbage collector
    never walks them, which would write to (and so copy) every page they live on."""
    from metaflowlike import Flow

    flow = make_flow(WIDE)
    flow.run("run")
    assert Flow("WideFlow").latest_run.data.frozen > 1000


def test_latest_run_reads_a_few_records_of_many_runs(make_flow):
    """``latest_run`` and ``latest_successful_run`` read the newest runs only: with 60
    runs they read what they read with one, while listing every run reads them all."""
    from metaflowlike import Flow
    from metaflowlike.client.settings import _store

    flow = make_flow(WIDE)
    flow.run("run")
    flow_dir = flow.root / "flows" / "WideFlow"
    (first,) = [r for r in os.listdir(flow_dir) if not r.startswith(".")]
    storage = _store().fds.storage
    calls = []
    for name in ("get_bytes", "list_dir", "get_file"):
        real = getattr(storage, name)
        setattr(storage, name, lambda *a, _r=real, **k: calls.append(a) or _r(*a, **k))

    def reads(question) -> int:
        _store().records.clear()
        calls.clear()
        question()
        return len(calls)

    def ask():
        return {
            "latest": reads(lambda: Flow("WideFlow").latest_run),
            "successful": reads(lambda: Flow("WideFlow").latest_successful_run),
            "all": reads(lambda: list(Flow("WideFlow").runs())),
        }

    ask()  # the list of flows, read once per client
    one = ask()
    for i in range(1, 60):  # the same finished run, under 59 newer run ids
        shutil.copytree(flow_dir / first, flow_dir / str(int(first) + i))
    many = ask()
    assert Flow("WideFlow").latest_run.id == str(int(first) + 59)
    assert many["latest"] == one["latest"] and many["successful"] == one["successful"]
    assert many["all"] >= one["all"] + 59
