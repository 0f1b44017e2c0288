"""Faults that must lose nothing: kills, Ctrl-C, concurrent runs, a full disk.

Every test runs real ``python flow.py run`` processes, injects the fault from outside
(a signal, a file size limit, a tiny file system, an unusable root), then checks three
promises through the client and the datastore itself: nothing half-written is visible
(every blob under ``<root>/data`` loads and matches its key), the failure is reported
clearly, and ``resume`` finishes the run.
"""

from __future__ import annotations

import hashlib
import os
import queue
import re
import resource
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from metaflowlike import Flow
from metaflowlike.datastore.content_store import ContentStore
from metaflowlike.datastore.local_storage import LocalStorage
from metaflowlike.exceptions import CorruptArtifact

from .flowrunner import FlowFile

pytestmark = pytest.mark.timeout(180)

MB = 1 << 20


# --------------------------------------------------------------------------- helpers


class Running:
    """A ``python flow.py ...`` process whose output lines are read as they come."""

    def __init__(self, flow, *args: str, env: dict | None = None, preexec_fn=None) -> None:
        full_env = {k: v for k, v in os.environ.items() if k != "METAFLOWLIKE_DATASTORE"}
        full_env.update(env or {})
        cmd = [sys.executable, str(flow.path), "--datastore-root", str(flow.root), *args]
        self.proc = subprocess.Popen(
            cmd,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            stdin=subprocess.DEVNULL,
            text=True,
            env=full_env,
            cwd=flow.path.parent,
            preexec_fn=preexec_fn,
        )
        self.pid = self.proc.pid
        self.lines: queue.Queue[str] = queue.Queue()
        self.out: list[str] = []
        self.err: list[str] = []
        self.threads = [
            threading.Thread(target=self._pump, args=(s, b), daemon=True)
            for s, b in ((self.proc.stdout, self.out), (self.proc.stderr, self.err))
        ]
        for t in self.threads:
            t.start()

    def _pump(self, stream, buf: list[str]) -> None:
        for line in stream:
            buf.append(line)
            self.lines.put(line)

    def expect(self, pattern: str, count: int = 1, timeout: float = 60) -> list[re.Match]:
        """Wait (bounded) for ``count`` output lines matching ``pattern``."""
        found: list[re.Match] = []
        deadline = time.monotonic() + timeout
        while len(found) < count:
            left = deadline - time.monotonic()
            try:
                line = self.lines.get(timeout=max(0.01, left))
            except queue.Empty:
                if left <= 0 or self.proc.poll() is not None and self.lines.empty():
                    raise AssertionError(
                        f"no {count} lines matching {pattern!r}:\n{self.output}"
                    ) from None
                continue
            if m := re.search(pattern, line):
                found.append(m)
        return found

    def wait(self, timeout: float = 120) -> int:
        rc = self.proc.wait(timeout=timeout)
        for t in self.threads:
            t.join(timeout=10)
        return rc

    @property
    def output(self) -> str:
        return "".join(self.out) + "\n--- stderr\n" + "".join(self.err)


def alive(pid: int) -> bool:
    """True while ``pid`` runs (a zombie waiting for its reaper counts as gone)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (FileNotFoundError, ProcessLookupError, IndexError):
        return False


def wait_gone(pids: list[int], timeout: float) -> list[int]:
    deadline = time.monotonic() + timeout
    while (left := [p for p in pids if alive(p)]) and time.monotonic() < deadline:
        time.sleep(0.05)
    return left


def verify_blobs(root: Path) -> int:
    """Load every visible blob fully (hash checked); return how many there are."""
    cas = ContentStore(LocalStorage(str(root)))
    keys = [
        p.name for p in (root / "data").rglob("*") if p.is_file() and not p.name.startswith(".tmp-")
    ]
    for key in keys:
        try:
            cas.load(key)
        except CorruptArtifact:
            raise
        except Exception:  # a raw blob (not a pickled artifact): check it as bytes
            cas.load_raw(key)
    return len(keys)


def visible_markers(root: Path, flow: str, run_id: str) -> list[str]:
    return sorted(
        str(p.relative_to(root)) for p in (root / "flows" / flow / run_id).rglob("*.done")
    )


# --------------------------------------------------------------- SIGKILL of a task

KILL_FLOW = """
import hashlib, os, time
from metaflowlike import FlowSpec, launchers, step
from metaflowlike.datastore.task_datastore import FlowDatastore

# fault injection for the test: pause around the manifest write of step "write" (a
# forked task hands its record to the runtime, which stores it with the marker)
POINT = os.environ.get("KILL_POINT", "")
_write_task, _hand_over = FlowDatastore.write_task, launchers._hand_over

def held(step, write):
    hold = step == "write" and POINT.endswith("-manifest")
    if hold and POINT == "before-manifest":
        print("HOLD", flush=True)
        time.sleep(60)
    write()
    if hold and POINT == "after-manifest":
        print("HOLD", flush=True)
        time.sleep(60)

def write_task(self, pathspec, attempt, info):
    held(pathspec.split("/")[2], lambda: _write_task(self, pathspec, attempt, info))

def hand_over(fds, fd, record):
    held(record.step, lambda: _hand_over(fds, fd, record))

FlowDatastore.write_task = write_task
launchers._hand_over = hand_over

class KillResumeFlow(FlowSpec):
    @step
    def start(self):
        self.small = 1
        self.next(self.write)

    @step
    def write(self):
        print("PID", os.getpid(), flush=True)
        self.large = os.urandom(@SIZE@)
        self.digest = hashlib.sha256(self.large).hexdigest()
        self.next(self.end)

    @step
    def end(self):
        assert hashlib.sha256(self.large).hexdigest() == self.digest
        self.n = len(self.large)

if __name__ == "__main__":
    KillResumeFlow()
"""

BIG = 64 * MB


@pytest.mark.parametrize(
    "when",
    ["at-start", "delay-0.1", "delay-0.3", "spool-write", "before-manifest", "after-manifest"],
)
def test_sigkill_of_a_task_loses_nothing_and_resume_completes(make_flow, when):
    flow = make_flow(KILL_FLOW.replace("@SIZE@", str(BIG)))
    env = {"KILL_POINT": when}
    run = Running(flow, "run", env=env)
    pid = int(run.expect(r"PID (\d+)")[0].group(1))
    if when.startswith("delay-"):
        time.sleep(float(when.split("-")[1]))
    elif when == "spool-write":  # the blob is being written to its temporary file
        spool, deadline = flow.root / ".spool", time.monotonic() + 30
        while not list(spool.glob(".tmp-blob-*")):
            assert time.monotonic() < deadline and alive(pid), "never saw the blob's spool file"
            time.sleep(0.001)
    elif when.endswith("-manifest"):
        run.expect("HOLD")
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    rc = run.wait()

    verify_blobs(flow.root)  # nothing partial is visible, whatever the instant
    origin = Flow("KillResumeFlow").latest_run
    task = origin["write"].task
    if task.successful:  # a delay outlived the task: nothing to resume
        assert not when.endswith("-manifest") and when != "at-start"
        assert rc == 0 and origin.data.n == BIG
        return
    assert rc != 0 and not origin.successful, run.output
    assert "killed by signal 9" in str(task.exception)
    if "large" in task:  # killed after the manifest: the artifact is complete
        assert hashlib.sha256(task.data.large).hexdigest() == task.data.digest

    flow.run("resume")  # no KILL_POINT: runs straight through
    resumed = Flow("KillResumeFlow").latest_run
    assert resumed.origin_pathspec == origin.pathspec and resumed.successful
    assert resumed["start"].task.origin_pathspec == origin["start"].task.pathspec
    assert resumed["write"].task.origin_pathspec is None
    assert resumed.data.n == BIG
    assert resumed["end"].task["large"].sha == resumed["write"].task["large"].sha
    verify_blobs(flow.root)


# ---------------------------------------------------------- SIGKILL of the runtime

ORPHAN_FLOW = """
import os, time
from metaflowlike import FlowSpec, step

GO = @GO@

class OrphanFlow(FlowSpec):
    @step
    def start(self):
        self.items = list(range(3))
        self.next(self.body, foreach="items")

    @step
    def body(self):
        print("PID", os.getpid(), flush=True)
        deadline = time.time() + 60
        while os.environ.get("HOLD") and not os.path.exists(GO) and time.time() < deadline:
            time.sleep(0.02)
        if self.input == 0:  # the runtime reading this pipe is gone: EPIPE
            print("still here", flush=True)
        self.blob = os.urandom(16 * 1024 * 1024)
        self.v = self.input * 10
        self.next(self.join)

    @step
    def join(self, inputs):
        self.total = sum(i.v for i in inputs)
        self.sizes = [len(i.blob) for i in inputs]
        self.next(self.end)

    @step
    def end(self):
        pass

if __name__ == "__main__":
    OrphanFlow()
"""


@pytest.mark.parametrize("launcher", ["fork", "subprocess"])
def test_sigkill_of_the_runtime_leaves_nothing_half_done(make_flow, tmp_path, launcher):
    go = tmp_path / "go"
    flow = make_flow(ORPHAN_FLOW.replace("@GO@", repr(str(go))))
    run = Running(flow, "run", "--launcher", launcher, env={"HOLD": "1"})
    pids = [int(m.group(1)) for m in run.expect(r"PID (\d+)", count=3)]
    os.kill(run.pid, signal.SIGKILL)
    assert run.wait() == -signal.SIGKILL

    # The kernel tells the tasks that their runtime died (parent-death signal), and
    # each takes its process group down: nothing keeps running user code behind a
    # later resume, and nothing of theirs becomes visible.
    assert wait_gone(pids, timeout=60) == []
    go.touch()

    origin = Flow("OrphanFlow").latest_run
    assert not origin.successful
    if "body" in origin:
        assert not any(t.finished or t.successful for t in origin["body"])
    assert visible_markers(flow.root, "OrphanFlow", origin.id) == [
        f"flows/OrphanFlow/{origin.id}/start/1/0.done"
    ]
    verify_blobs(flow.root)

    flow.run("resume")
    resumed = Flow("OrphanFlow").latest_run
    assert resumed.successful and resumed.origin_pathspec == origin.pathspec
    assert resumed["start"].task.origin_pathspec is not None
    assert all(t.origin_pathspec is None for t in resumed["body"])
    assert resumed["join"].task.data.total == 30
    assert resumed["join"].task.data.sizes == [16 * MB] * 3
    verify_blobs(flow.root)


# --------------------------------------------------------------------------- Ctrl-C

CTRLC_FLOW = """
import os, subprocess
from metaflowlike import FlowSpec, step

class CtrlCFlow(FlowSpec):
    @step
    def start(self):
        self.items = list(range(3))
        self.next(self.body, foreach="items")

    @step
    def body(self):
        if os.environ.get("HANG"):
            child = subprocess.Popen(["sleep", "60"])
            print("PIDS", os.getpid(), child.pid, flush=True)
            child.wait()
        self.v = self.input + 1
        self.next(self.join)

    @step
    def join(self, inputs):
        self.total = sum(i.v for i in inputs)
        self.next(self.end)

    @step
    def end(self):
        pass

if __name__ == "__main__":
    CtrlCFlow()
"""


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_ctrl_c_stops_every_task_and_its_children(make_flow, sig):
    flow = make_flow(CTRLC_FLOW)
    run = Running(flow, "run", env={"HANG": "1"})
    pids = [int(p) for m in run.expect(r"PIDS (\d+) (\d+)", count=3) for p in m.groups()]
    assert len(pids) == 6 and all(alive(p) for p in pids)
    os.kill(run.pid, sig)  # SIGINT: what Ctrl-C sends to the runtime's process group
    rc = run.wait(timeout=60)
    assert rc != 0, run.output
    assert wait_gone(pids, timeout=10) == [], "tasks or their children survived Ctrl-C"
    assert "Traceback" not in "".join(run.err)

    origin = Flow("CtrlCFlow").latest_run
    assert not origin.successful
    bodies = list(origin["body"])
    assert len(bodies) == 3 and not any(t.successful for t in bodies)
    assert all("interrupted" in str(t.exception) for t in bodies)

    flow.run("resume")
    resumed = Flow("CtrlCFlow").latest_run
    assert resumed.successful and resumed.origin_pathspec == origin.pathspec
    assert resumed["join"].task.data.total == 6


# ------------------------------------------------------------ two runs at once

TWIN_FLOW = """
import hashlib, os
from metaflowlike import FlowSpec, step

class TwinFlow(FlowSpec):
    @step
    def start(self):
        self.shared = bytes(range(256)) * 8192  # the same blob in both runs
        self.items = list(range(4))
        self.next(self.body, foreach="items")

    @step
    def body(self):
        self.mine = os.urandom(4 * 1024 * 1024)
        self.digest = hashlib.sha256(self.mine).hexdigest()
        self.common = [self.input] * 100000  # identical across the runs: raced writes
        self.next(self.join)

    @step
    def join(self, inputs):
        assert all(hashlib.sha256(i.mine).hexdigest() == i.digest for i in inputs)
        self.total = sum(len(i.common) for i in inputs)
        self.size = len(inputs[0].shared)
        self.next(self.end)

    @step
    def end(self):
        pass

if __name__ == "__main__":
    TwinFlow()
"""


def test_two_runs_at_once_share_the_datastore_safely(make_flow, tmp_path):
    flow = make_flow(TWIN_FLOW)
    ids = [tmp_path / "id-a", tmp_path / "id-b"]
    runs = [Running(flow, "run", "--run-id-file", str(f)) for f in ids]
    for r in runs:
        assert r.wait() == 0, r.output
    a, b = (f.read_text() for f in ids)
    assert a != b
    assert {r.id for r in Flow("TwinFlow")} == {a, b}
    for run_id in (a, b):
        run = Flow("TwinFlow")[run_id]
        assert run.successful and run.data.size == 256 * 8192
        assert run["join"].task.data.total == 400000
        assert sorted(t.index for t in run["body"]) == [0, 1, 2, 3]
    assert verify_blobs(flow.root) > 0


# --------------------------------------------------------------- full disk, bad root

DISK_FLOW = """
import os
from metaflowlike import FlowSpec, Parameter, step

class DiskFlow(FlowSpec):
    @PARAM@

    @step
    def start(self):
        self.small = 1
        self.next(self.write)

    @step
    def write(self):
        self.large = os.urandom(@SIZE@)
        self.next(self.end)

    @step
    def end(self):
        self.n = len(self.large)

if __name__ == "__main__":
    DiskFlow()
"""


def _limit_file_size(limit: int):
    def apply() -> None:  # in the child, before exec; inherited by every task
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # EFBIG instead of a kill

    return apply


def _tmpfs(path: Path, size: str) -> bool:
    path.mkdir(parents=True, exist_ok=True)
    cmd = ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)]
    try:
        return subprocess.run(cmd, capture_output=True, timeout=20).returncode == 0
    except (OSError, subprocess.SubprocessError):
        return False


@pytest.mark.parametrize("mechanism", ["file-size-limit", "tmpfs"])
def test_full_disk_fails_the_task_clearly_and_resume_completes(make_flow, tmp_path, mechanism):
    size = 48 * MB
    flow = make_flow(DISK_FLOW.replace("@SIZE@", str(size)).replace("@PARAM@", ""))
    preexec = None
    if mechanism == "tmpfs":  # a real ENOSPC: a 24 MB file system holds the datastore
        if not _tmpfs(flow.root, "24m"):
            pytest.skip("cannot mount a tmpfs here; the file size limit case covers EFBIG")
    else:  # EFBIG for any file over 16 MB: works without privileges
        preexec = _limit_file_size(16 * MB)
    try:
        run = Running(flow, "run", preexec_fn=preexec)
        assert run.wait() != 0, run.output
        err = "".join(run.err)
        # the reason, naming the datastore, reaches the console and the task's log
        clear = re.compile(re.escape(str(flow.root)) + r".*(disk is full|too large)")
        assert clear.search(err), run.output
        assert not list(flow.root.rglob(".tmp-*")), "a temporary file was left behind"
        verify_blobs(flow.root)
        origin = Flow("DiskFlow").latest_run
        task = origin["write"].task
        assert task.current_attempt == 0 and not task.successful and not task.finished
        assert "large" not in task
        assert clear.search(task.stderr), task.stderr

        if mechanism == "tmpfs":  # make room, as the user would
            subprocess.run(["mount", "-o", "remount,size=256m", str(flow.root)], check=True)
        flow.run("resume")
        resumed = Flow("DiskFlow").latest_run
        assert resumed.successful and resumed.origin_pathspec == origin.pathspec
        assert resumed.data.n == size
        verify_blobs(flow.root)
    finally:
        if mechanism == "tmpfs":
            subprocess.run(["umount", "-l", str(flow.root)], capture_output=True)


LOUD_FLOW = """
import os
from metaflowlike import FlowSpec, step

class LoudFlow(FlowSpec):
    @step
    def start(self):
        self.items = list(range(2))
        self.next(self.body, foreach="items")

    @step
    def body(self):
        print("PID", os.getpid(), flush=True)
        if self.input == 0:
            for i in range(40000):  # ~4 MB of output, on a file system with ~2 MB free
                print(f"line {i:06d} " + "x" * 90)
        else:
            import time; time.sleep(1)
        self.v = self.input
        self.next(self.join)

    @step
    def join(self, inputs):
        self.total = sum(i.v for i in inputs)
        self.next(self.end)

    @step
    def end(self):
        pass

if __name__ == "__main__":
    LoudFlow()
"""


def test_a_full_disk_while_spooling_logs_stops_the_run_clearly(make_flow):
    flow = make_flow(LOUD_FLOW)
    if not _tmpfs(flow.root, "2m"):
        pytest.skip("cannot mount a tmpfs here")
    try:
        run = Running(flow, "run")
        pids = [int(m.group(1)) for m in run.expect(r"PID (\d+)", count=2)]
        assert run.wait() != 0
        err = "".join(run.err)
        assert "Traceback" not in err and "disk is full" in err, run.output
        # one paragraph naming the task whose output could not be kept; _done.json is
        # not blamed
        lines = [line for line in err.splitlines() if "disk is full" in line]
        assert len(lines) == 1 and "LoudFlow" in lines[0] and "_done" not in err, err
        assert wait_gone(pids, timeout=30) == [], "a task survived the stop"
        assert not list((flow.root / ".spool").iterdir()), "the log spool was left behind"
        origin = Flow("LoudFlow").latest_run
        assert not origin.successful

        subprocess.run(["mount", "-o", "remount,size=64m", str(flow.root)], check=True)
        flow.run("resume")
        resumed = Flow("LoudFlow").latest_run
        assert resumed.successful and resumed.origin_pathspec == origin.pathspec
        assert resumed["join"].task.data.total == 1
        loud = [t for t in resumed["body"] if t.index == 0][0]
        assert loud.stdout.count("\nline ") == 40000
    finally:
        subprocess.run(["umount", "-l", str(flow.root)], capture_output=True)


@pytest.mark.parametrize("first_write", ["parameter", "run-folder"])
@pytest.mark.parametrize("kind", ["parent-is-a-file", "root-is-a-file", "immutable-folder"])
def test_unusable_datastore_root_fails_at_once_naming_it(make_flow, tmp_path, kind, first_write):
    # with a parameter, its blob is the first write; without, the run's folder is
    param = 'p = Parameter("p", default=3)' if first_write == "parameter" else ""
    flow = make_flow(DISK_FLOW.replace("@SIZE@", "10").replace("@PARAM@", param))
    if kind == "parent-is-a-file":
        (tmp_path / "plain").write_text("not a folder")
        root = tmp_path / "plain" / "ds"
    elif kind == "root-is-a-file":
        root = tmp_path / "plain-root"
        root.write_text("not a folder")
    else:  # root may not even write to it: chattr +i
        root = tmp_path / "frozen"
        root.mkdir()
        if shutil.which("chattr") is None or (
            subprocess.run(["chattr", "+i", str(root)], capture_output=True).returncode != 0
        ):
            pytest.skip("chattr +i is not supported on this file system")
    try:
        proc = FlowFile(flow.path, root).run("run", check=False, timeout=60)
    finally:
        if kind == "immutable-folder":
            subprocess.run(["chattr", "-i", str(root)], capture_output=True)
    err = proc.stderr.strip()
    assert proc.returncode != 0
    assert "Traceback" not in proc.stderr and "Traceback" not in proc.stdout
    assert "Task is starting" not in proc.stdout  # refused before any task ran
    assert err and "\n\n" not in err and len(err.splitlines()) <= 3, err
    assert str(root) in err, err
    assert ("/data/" if first_write == "parameter" else "run folder") in err, err
    if kind == "immutable-folder":
        assert not any(root.iterdir())
