"""The datastore's promises: content addressing, dedup, laziness, crash safety."""

from __future__ import annotations

import hashlib
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from metaflowlike import Flow
from metaflowlike.datastore.content_store import ContentStore
from metaflowlike.datastore.layout import LAYOUT
from metaflowlike.datastore.local_storage import LocalStorage
from metaflowlike.exceptions import CorruptArtifact, UnserializableArtifact

HEADER = "from metaflowlike import FlowSpec, step, Parameter\n"


def blobs(root: Path) -> list[Path]:
    data = root / "data"
    return [p for p in data.rglob("*") if p.is_file() and not p.name.startswith(".tmp-")]


def test_round_trip_and_dedup_in_process(tmp_path):
    np = pytest.importorskip("numpy")
    cas = ContentStore(LocalStorage(str(tmp_path)))
    arr = np.arange(1_000_000, dtype="float64")
    objects = [("n", 1), ("s", "x" * 3_000_000), ("arr", arr), ("lam", lambda x: x + 1)]
    stored = cas.save(objects)
    assert all(a.new for a in stored.values())
    assert (cas.load(stored["arr"].key) == arr).all()
    assert cas.load(stored["lam"].key)(1) == 2
    again = cas.save([("other_name", arr)])
    assert again["other_name"].key == stored["arr"].key and not again["other_name"].new
    assert len(blobs(tmp_path)) == 4


def test_unserializable_artifact_names_artifact_and_type(tmp_path):
    import threading

    cas = ContentStore(LocalStorage(str(tmp_path)))
    with pytest.raises(UnserializableArtifact) as e:
        cas.save([("my_lock", threading.Lock())])
    assert '"my_lock"' in str(e.value) and "lock" in str(e.value).lower()


def test_corrupt_blob_is_reported_on_read(tmp_path):
    cas = ContentStore(LocalStorage(str(tmp_path)))
    key = cas.save([("x", list(range(100000)))])["x"].key
    path = tmp_path / LAYOUT.blob(key)
    raw = bytearray(path.read_bytes())
    raw[len(raw) // 2] ^= 0xFF
    path.write_bytes(bytes(raw))
    with pytest.raises(CorruptArtifact) as e:
        cas.load(key)
    assert key in str(e.value)


def test_key_is_hash_of_bytes(tmp_path):
    cas = ContentStore(LocalStorage(str(tmp_path)))
    key = cas.save_bytes_blob(b"hello world")
    # the SHA-256 of the SHA-256 digests of its (here: one) 4 MiB pieces
    assert key == hashlib.sha256(hashlib.sha256(b"hello world").digest()).hexdigest()
    big = bytes(range(256)) * (40 * 4096)  # 40 MiB: ten pieces
    digests = b"".join(
        hashlib.sha256(big[i : i + (4 << 20)]).digest() for i in range(0, len(big), 4 << 20)
    )
    assert cas.save_bytes_blob(big) == hashlib.sha256(digests).hexdigest()
    assert cas.load_raw(hashlib.sha256(digests).hexdigest()) == big
    assert cas.load_raw(key) == b"hello world"


def test_unpicklable_artifact_fails_the_task_naming_it(make_flow):
    flow = make_flow(
        HEADER
        + """
import threading
class LockFlow(FlowSpec):
    @step
    def start(self):
        self.fine = 1
        self.lock = threading.Lock()
        self.next(self.end)

    @step
    def end(self):
        pass

if __name__ == "__main__":
    LockFlow()
"""
    )
    proc = flow.run("run", check=False)
    assert proc.returncode != 0
    assert '"lock"' in proc.stderr and "_thread.lock" in proc.stderr
    task = Flow("LockFlow").latest_run["start"].task
    assert not task.successful and '"lock"' in str(task.exception)


DEDUP_FLOW = (
    HEADER
    + """
class DedupFlow(FlowSpec):
    @step
    def start(self):
        self.big = bytes(range(256)) * 4096
        self.table = {i: str(i) for i in range(1000)}
        self.next(self.end)

    @step
    def end(self):
        self.copy = self.big

if __name__ == "__main__":
    DedupFlow()
"""
)


def test_identical_artifacts_are_stored_once_across_runs(make_flow):
    flow = make_flow(DEDUP_FLOW)
    flow.run("run")
    first = {p.name for p in blobs(flow.root)}
    flow.run("run")
    second = {p.name for p in blobs(flow.root)}
    runs = list(Flow("DedupFlow").runs())
    assert len(runs) == 2
    keys = {r["start"].task["big"].sha for r in runs}
    assert len(keys) == 1
    # the second run wrote no new artifact blob
    assert second == first
    assert runs[0]["end"].task["copy"].sha == runs[0]["start"].task["big"].sha


def test_downstream_tasks_pass_untouched_artifacts_by_key(make_flow):
    flow = make_flow(
        HEADER
        + """
class PassFlow(FlowSpec):
    @step
    def start(self):
        self.payload = list(range(100000))
        self.next(self.middle)

    @step
    def middle(self):
        # Any read of an artifact's bytes from here on would raise.
        from metaflowlike.datastore import content_store
        def refuse(self, key):
            raise RuntimeError("middle read artifact bytes")
        content_store.ContentStore.load = refuse
        self.note = "did not touch payload"
        self.next(self.end)

    @step
    def end(self):
        self.length = len(self.payload)

if __name__ == "__main__":
    PassFlow()
"""
    )
    flow.run("run")
    run = Flow("PassFlow").latest_run
    assert run.data.length == 100000
    assert "payload" in {a.id for a in run["middle"].task}
    assert run["middle"].task["payload"].sha == run["start"].task["payload"].sha


KILL_FLOW = (
    HEADER
    + """
import os, sys
class KillFlow(FlowSpec):
    @step
    def start(self):
        self.small = 1
        self.next(self.write)

    @step
    def write(self):
        self.large = os.urandom(96 * 1024 * 1024)
        self.other = list(range(1000))
        print("PID", os.getpid(), flush=True)
        self.next(self.end)

    @step
    def end(self):
        pass

if __name__ == "__main__":
    KillFlow()
"""
)


@pytest.mark.parametrize("delay", [0.0, 0.05, 0.15, 0.3, 0.6])
def test_sigkill_while_writing_leaves_no_partial_artifact(make_flow, delay):
    flow = make_flow(KILL_FLOW)
    proc = subprocess.Popen(
        [sys.executable, str(flow.path), "--datastore-root", str(flow.root), "run"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=flow.path.parent,
    )
    pid = None
    for line in proc.stdout:
        if "PID" in line:
            pid = int(line.split("PID")[1])
            break
    assert pid is not None
    time.sleep(delay + random.random() * 0.02)
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    proc.communicate(timeout=120)
    # Every visible blob is complete and matches its key.
    cas = ContentStore(LocalStorage(str(flow.root)))
    for blob in blobs(flow.root):
        _verify(cas, blob.name)
    run = Flow("KillFlow").latest_run
    task = run["write"].task
    if task.successful:  # the kill came after the task finished writing
        assert len(task.data.large) == 96 * 1024 * 1024
        return
    assert proc.returncode != 0
    if "large" in task:
        # killed after its manifest was stored, before it exited: the attempt failed, and
        # like any failed task it shows what it stored, whole (never a part of it)
        assert len(task.data.large) == 96 * 1024 * 1024
        assert task.data.other == list(range(1000))
    else:
        with pytest.raises(AttributeError):
            _ = task.data.large


def _verify(cas: ContentStore, key: str) -> None:
    """Load a blob fully, checking its hash (works for artifacts and raw blobs)."""
    try:
        cas.load(key)
    except CorruptArtifact:
        raise
    except Exception:
        cas.load_raw(key)
