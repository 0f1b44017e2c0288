"""``metaflowlike gc``: old runs and unreferenced blobs go, nothing referenced is lost,
also while other runs are writing."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from metaflowlike import Flow, Run
from metaflowlike.config import open_datastore
from metaflowlike.datastore.layout import LAYOUT
from metaflowlike.datastore.records import DoneMarker, RunEnd, RunRecord, TaskInfo
from metaflowlike.datastore_gc import collect
from metaflowlike.owners import me

from .cloud_servers import SERVER_FIXTURES, client_env, create_bucket, new_bucket_name, root_url

FLOW = """
import os, time
from metaflowlike import FlowSpec, Parameter, step


class GcFlow(FlowSpec):
    size = Parameter("size", default=1)
    wait_for = Parameter("wait_for", default="")

    @step
    def start(self):
        self.data = "x" * 1000 * self.size
        self.shared = "same in every run"
        self.next(self.middle)

    @step
    def middle(self):
        if self.wait_for:
            open(self.wait_for + ".started", "w").close()
            while not os.path.exists(self.wait_for):
                time.sleep(0.05)
        self.result = len(self.data)
        self.old_value = "x" * 1000  # the bytes of size=1's `data`, maybe set aside meanwhile
        self.next(self.end)

    @step
    def end(self):
        print("result", self.result)


if __name__ == "__main__":
    GcFlow()
"""


def _gc(root, *args: str) -> subprocess.CompletedProcess:
    script = Path(sys.executable).parent / "metaflowlike"  # the console script, as users run it
    cmd = [str(script), "gc", "--datastore-root", str(root)]
    proc = subprocess.run([*cmd, *args], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    return proc


def _run_id(proc: subprocess.CompletedProcess) -> str:
    return re.search(r"run-id (\d+)", proc.stdout).group(1)


def _blob_files(root) -> set[str]:
    return {p.name for p in (root / "data").glob("[0-9a-f][0-9a-f]/*")}


def _all_artifacts_load(run: Run) -> None:
    for step in run:
        for task in step:
            for artifact in task:
                artifact.data  # noqa: B018 - raises if a blob is missing


def test_keep_last_dry_run_then_removes_old_runs_and_their_blobs(make_flow):
    f = make_flow(FLOW)
    ids = [
        f.run("run", "--size", str(n)).stdout.split("run-id ")[1].split(")")[0] for n in (1, 2, 3)
    ]
    before = _blob_files(f.root)
    dry = _gc(f.root, "--keep-last", "1", "--dry-run").stdout
    assert f"Would remove 2 runs of GcFlow: {ids[1]}, {ids[0]}." in dry
    assert "Nothing was changed" in dry
    assert _blob_files(f.root) == before and len(list(Flow("GcFlow").runs())) == 3
    out = _gc(f.root, "--keep-last", "1").stdout
    assert "Removed 2 run(s) and " in out
    assert [r.id for r in Flow("GcFlow").runs()] == [ids[2]]
    after = _blob_files(f.root)
    assert after < before  # the old runs' own values are gone...
    _all_artifacts_load(Run(f"GcFlow/{ids[2]}"))  # ...everything the kept run uses is not
    assert not list((f.root / "data" / "_gc").glob("*"))  # nothing was running: purged


def test_gc_while_a_run_is_writing_loses_nothing(make_flow, tmp_path):
    f = make_flow(FLOW)
    f.run("run", "--size", "1")
    f.run("run", "--size", "2")
    gate = tmp_path / "gate"
    cmd = [sys.executable, str(f.path), "--datastore-root", str(f.root), "run", "--size", "3"]
    running = subprocess.Popen(
        [*cmd, "--wait_for", str(gate)], cwd=f.path.parent, stdout=subprocess.DEVNULL
    )
    try:
        deadline = time.time() + 60
        while not (tmp_path / "gate.started").exists():
            assert running.poll() is None and time.time() < deadline
            time.sleep(0.05)
        # gc everything it may: keep no finished run at all
        out = _gc(f.root, "--keep-last", "0").stdout
        assert "Kept because they may still be running: GcFlow/" in out
        assert "deleted by the next gc after those runs end" in out
        assert len(list(Flow("GcFlow").runs())) == 1
        # size=1's `data` was set aside: not referenced by any record, but the running
        # task is about to store the same bytes as `old_value`
        gate.touch()
        assert running.wait(timeout=120) == 0
    finally:
        if running.poll() is None:
            running.kill()
            running.wait()
    (run,) = Flow("GcFlow").runs()
    assert run.successful
    _all_artifacts_load(run)
    assert run["middle"].task.data.old_value == "x" * 1000
    # the next gc finishes what the first one left waiting, and keeps what is referenced
    out = _gc(f.root, "--keep-last", "1").stdout
    assert "may still be running" not in out
    _all_artifacts_load(Run(run.pathspec))
    assert not list((f.root / "data" / "_gc").glob("*"))


def test_a_blob_found_present_then_set_aside_is_never_lost(make_flow):
    """The race a content store without locks has: a writer finds a blob present (so
    writes nothing), gc sets it aside, then the writer's record refers to it."""
    f = make_flow(FLOW)
    f.run("run", "--size", "1")
    fds = open_datastore(None, str(f.root))
    # a run that is running (its runtime, this process, is alive; no end record)
    fds.claim_run("GcFlow", "1")
    fds.write_run(RunRecord(flow="GcFlow", run_id="1", runtime=me().record()))
    value = "x" * 1000  # exactly what the finished run stored as `data`
    stored = fds.cas.save([("data", value)])["data"]
    assert not stored.new  # present: the writer relies on the existing blob
    collect(fds, keep_last=0, dry_run=False, say=lambda s: None)  # drops the finished run
    assert not (f.root / LAYOUT.blob(stored.key)).exists()  # set aside, not deleted
    assert (f.root / LAYOUT.collected_blob(stored.key)).exists()
    # the writer now records its task, and a reader loads the value: it comes back
    fds.write_task("GcFlow/1/start/1", 0, TaskInfo(status="ok", artifacts={"data": stored.entry()}))
    fds.mark_done("GcFlow/1/start/1", 0, DoneMarker(status="ok"))
    assert fds.cas.load(stored.key) == value
    assert (f.root / LAYOUT.blob(stored.key)).exists()
    # once the run ended, gc purges what is really unreferenced and keeps this one
    fds.write_run_end("GcFlow", "1", RunEnd("ok"))
    collect(fds, keep_last=None, dry_run=False, say=lambda s: None)
    assert fds.cas.load(stored.key) == value


@pytest.mark.parametrize("kind", ["s3", "azure", "gs"])
def test_gc_on_object_stores(kind, request, tmp_path):
    server = request.getfixturevalue(SERVER_FIXTURES[kind])
    bucket = new_bucket_name()
    create_bucket(kind, server.url, bucket)
    root = root_url(kind, bucket, "g")
    (tmp_path / "flow.py").write_text(textwrap.dedent(FLOW))
    env = {k: v for k, v in os.environ.items() if not k.startswith("METAFLOWLIKE_")}
    env.update(client_env(kind, server.url))
    where = ["--datastore", kind, "--datastore-root", root]

    def run(*args: str) -> str:
        proc = subprocess.run(args, cwd=tmp_path, env=env, capture_output=True, text=True)
        assert proc.returncode == 0, proc.stderr
        return proc.stdout

    script = str(Path(sys.executable).parent / "metaflowlike")
    for size in ("1", "2"):
        run(sys.executable, "flow.py", *where, "run", "--size", size)
    out = run(script, "gc", *where, "--keep-last", "1")
    assert "Removing 1 run of GcFlow" in out
    # the first run's own values (its `size` and `result`) had no other reference
    assert int(re.search(r"Removed 1 run\(s\) and (\d+) blob", out).group(1)) >= 2
    reader = (
        "import sys\n"
        "from metaflowlike import Flow, namespace, set_datastore\n"
        "set_datastore(sys.argv[1], sys.argv[2]); namespace(None)\n"
        "(run,) = Flow('GcFlow').runs()\n"
        "print(sorted((a.id, a.data if a.id != 'data' else len(a.data)) "
        "for s in run for t in s for a in t))\n"
    )
    (tmp_path / "reader.py").write_text(reader)
    loaded = run(sys.executable, "reader.py", kind, root)
    assert "('data', 2000)" in loaded and "('result', 2000)" in loaded


def test_max_size_drops_the_oldest_runs_until_the_rest_fits(make_flow):
    f = make_flow(FLOW)
    ids = [_run_id(f.run("run", "--size", str(n))) for n in (1, 2, 3)]
    # the newest run refers to about 4.1 KB (its 3,000-character `data`, the shared
    # `old_value`...); the one before adds 2 KB more
    dry = _gc(f.root, "--max-size", "4.5KB", "--dry-run").stdout
    assert f"Would remove 2 runs of GcFlow: {ids[1]}, {ids[0]}." in dry
    assert "The kept runs refer to 4." in dry
    _gc(f.root, "--max-size", "4.5KB")
    assert [r.id for r in Flow("GcFlow").runs()] == [ids[2]]
    _all_artifacts_load(Run(f"GcFlow/{ids[2]}"))
    script = Path(sys.executable).parent / "metaflowlike"
    bad = subprocess.run([str(script), "gc", "--max-size", "lots"], capture_output=True, text=True)
    assert bad.returncode == 1 and "--max-size 'lots' is not a size" in bad.stderr
    assert "Traceback" not in bad.stderr
