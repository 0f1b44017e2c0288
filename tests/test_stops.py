"""Stopping a run cleans up after itself; what a crash leaves is reclaimed later.

SIGTERM (to the runtime, or a timeout) unwinds each task: its ``finally`` blocks run
and its temporary files go, then its process group is killed. SIGKILL cannot be
cleaned up after, so the next run sweeps the temporary entries whose owner process is
gone, and never those of a process still writing.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from metaflowlike import Flow
from metaflowlike.datastore import scratch

from .test_faults import Running, alive, verify_blobs, wait_gone

pytestmark = pytest.mark.timeout(240)

MB = 1 << 20

FINALLY_FLOW = """
import os, subprocess, time
from metaflowlike import FlowSpec, step

MARK = @MARK@

class FinallyFlow(FlowSpec):
    @step
    def start(self):
        child = subprocess.Popen(["sleep", "60"])
        try:
            print("PIDS", os.getpid(), child.pid, flush=True)
            time.sleep(60)
        finally:
            with open(MARK, "w") as f:
                f.write("cleaned up")
        self.next(self.end)

    @step
    def end(self):
        pass

if __name__ == "__main__":
    FinallyFlow()
"""


@pytest.mark.parametrize("launcher", ["fork", "subprocess"])
def test_sigterm_runs_the_tasks_finally_blocks_then_kills_their_children(
    make_flow, tmp_path, launcher
):
    mark = tmp_path / "mark"
    flow = make_flow(FINALLY_FLOW.replace("@MARK@", repr(str(mark))))
    run = Running(flow, "run", "--launcher", launcher)
    pids = [int(p) for p in run.expect(r"PIDS (\d+) (\d+)")[0].groups()]
    os.kill(run.pid, signal.SIGTERM)
    assert run.wait(timeout=60) != 0
    assert wait_gone(pids, timeout=30) == [], "the task or its child survived"
    assert mark.read_text() == "cleaned up", run.output
    assert "Traceback" not in "".join(run.err), run.output
    origin = Flow("FinallyFlow").latest_run
    assert not origin.successful
    assert "interrupted" in str(origin["start"].task.exception)


TIMEOUT_FLOW = FINALLY_FLOW.replace(
    "    @step\n    def start", "    @timeout(seconds=2)\n    @step\n    def start"
).replace("import FlowSpec, step", "import FlowSpec, step, timeout")


def test_a_timeout_stops_the_task_gracefully(make_flow, tmp_path):
    mark = tmp_path / "mark"
    flow = make_flow(TIMEOUT_FLOW.replace("@MARK@", repr(str(mark))))
    proc = flow.run("run", check=False)
    assert proc.returncode != 0
    assert mark.read_text() == "cleaned up", proc.stderr
    task = Flow("FinallyFlow").latest_run["start"].task
    assert "timed out" in str(task.exception)


BLOB_FLOW = """
import os
from metaflowlike import FlowSpec, step

class BlobFlow(FlowSpec):
    @step
    def start(self):
        print("PID", os.getpid(), flush=True)
        self.large = os.urandom(@SIZE@)
        self.next(self.end)

    @step
    def end(self):
        self.n = len(self.large)

if __name__ == "__main__":
    BlobFlow()
"""


def _spool_entries(root: Path) -> list[str]:
    spool = root / ".spool"
    return sorted(p.name for p in spool.iterdir()) if spool.exists() else []


def _wait_for_blob_spool(root: Path, pid: int) -> None:
    deadline = time.monotonic() + 60
    while not any(n.startswith(scratch.BLOB) for n in _spool_entries(root)):
        assert time.monotonic() < deadline and alive(pid), "never saw the blob's spool file"
        time.sleep(0.001)


def test_sigterm_while_a_blob_is_spooled_leaves_no_temporary_file(make_flow):
    flow = make_flow(BLOB_FLOW.replace("@SIZE@", str(128 * MB)))
    run = Running(flow, "run")
    pid = int(run.expect(r"PID (\d+)")[0].group(1))
    _wait_for_blob_spool(flow.root, pid)
    os.kill(run.pid, signal.SIGTERM)
    assert run.wait() != 0
    assert wait_gone([pid], timeout=30) == []
    assert _spool_entries(flow.root) == [], "a stopped run left temporary entries"
    verify_blobs(flow.root)
    flow.run("resume")
    assert Flow("BlobFlow").latest_run.data.n == 128 * MB


def test_what_sigkilled_processes_leave_is_swept_by_the_next_run(make_flow):
    flow = make_flow(BLOB_FLOW.replace("@SIZE@", str(128 * MB)))
    run = Running(flow, "run")
    pid = int(run.expect(r"PID (\d+)")[0].group(1))
    _wait_for_blob_spool(flow.root, pid)
    os.kill(run.pid, signal.SIGSTOP)  # frozen: it cannot clean up after the task
    os.kill(pid, signal.SIGKILL)  # the task, mid-write: its blob's spool file stays
    os.kill(run.pid, signal.SIGKILL)  # the runtime: its log spool stays behind
    run.wait()
    assert wait_gone([pid], timeout=30) == []
    left = _spool_entries(flow.root)
    assert any(n.startswith(scratch.BLOB) for n in left), left
    assert any(n.startswith(scratch.LOGS) for n in left), left

    flow.run("resume")  # the next run reclaims them before it starts
    assert Flow("BlobFlow").latest_run.data.n == 128 * MB
    assert _spool_entries(flow.root) == []
    verify_blobs(flow.root)


def test_the_sweep_leaves_live_owners_alone(tmp_path):
    folder = tmp_path / "tmp"
    folder.mkdir()
    mine = scratch.mkdtemp(scratch.LOGS, dir=str(folder))  # this process: alive
    # a process that has exited: its entries are abandoned
    code = (
        "import sys; sys.path[:0] = sys.argv[1:2]\n"
        "from metaflowlike.datastore import scratch\n"
        "fd, p = scratch.mkstemp(scratch.BLOB, dir=sys.argv[2])\n"
        "import os; os.write(fd, b'x' * 1000)\n"
        "print(p)"
    )
    repo = str(Path(__file__).resolve().parent.parent)
    out = subprocess.run(
        [sys.executable, "-c", code, repo, str(folder)], capture_output=True, text=True
    )
    dead = out.stdout.strip()
    assert os.path.exists(dead), out.stderr
    # a live process's entry: a sleeping child writes it and stays alive
    child = subprocess.Popen(
        [sys.executable, "-c", code + "; import time; time.sleep(60)", repo, str(folder)],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        live = child.stdout.readline().strip()
        assert os.path.exists(live)
        unrelated = folder / "user-file"
        unrelated.write_text("not ours")
        swept = scratch.sweep([str(folder), str(tmp_path / "missing")])
        assert (swept.entries, swept.bytes) == (1, 1000)
        assert not os.path.exists(dead)
        assert os.path.exists(live) and os.path.exists(mine) and unrelated.exists()
    finally:
        child.kill()
        child.wait()
    assert scratch.sweep([str(folder)]).entries == 1  # the child is gone now
    assert not os.path.exists(live) and os.path.exists(mine)
