"""The local store heals damaged blobs, survives power loss in order, and has one
permission policy.

Blobs are damaged on disk the way a bad sector or a torn write would damage them; the
flows then run as a user runs them. Durability is checked by recording, in this
process, the ``fsync`` and rename calls the store makes while a task's files are written.
"""

from __future__ import annotations

import os
import stat
import subprocess
import sys

import pytest

from metaflowlike import Flow
from metaflowlike.datastore import local_storage
from metaflowlike.datastore.layout import DAMAGED, LAYOUT
from metaflowlike.datastore.local_storage import LocalStorage
from metaflowlike.datastore.records import DoneMarker, TaskInfo
from metaflowlike.datastore.task_datastore import FlowDatastore

FLOW = """
from metaflowlike import FlowSpec, step


class HealFlow(FlowSpec):
    @step
    def start(self):
        self.values = list(range(5000))
        self.next(self.end)

    @step
    def end(self):
        self.total = sum(self.values)


if __name__ == "__main__":
    HealFlow()
"""


def _blob_of(flow, name="values"):
    run = Flow("HealFlow").latest_run
    key = run["start"].task[name].sha
    return flow.root / LAYOUT.blob(key), key


def test_a_damaged_blob_is_set_aside_and_rewritten_by_the_next_save(make_flow):
    flow = make_flow(FLOW)
    flow.run("run")
    path, key = _blob_of(flow)
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF  # one flipped bit in the middle: only the hash sees it
    path.write_bytes(bytes(data))

    # the start task saves the same value, which exists: end finds it damaged
    proc = flow.run("run", check=False)
    assert proc.returncode == 1
    assert "is corrupt" in proc.stdout + proc.stderr and "moved aside" in proc.stdout + proc.stderr
    assert not path.exists()
    assert list((flow.root / DAMAGED).iterdir())[0].name.startswith(key)

    # the next save of the same value writes it again: the store has healed
    flow.run("run")
    assert Flow("HealFlow").latest_run.data.total == sum(range(5000))
    assert path.read_bytes() != bytes(data)


def test_a_torn_blob_is_rewritten_by_the_next_save(make_flow):
    """A power loss after an un-synced rename can leave an empty or zero-filled file
    under the blob's name: the save that finds it there writes it again."""
    flow = make_flow(FLOW)
    flow.run("run")
    path, _ = _blob_of(flow)
    size = path.stat().st_size
    path.write_bytes(b"\0" * size)
    flow.run("run")
    assert Flow("HealFlow").latest_run.data.total == sum(range(5000))
    assert path.read_bytes().startswith(b"MFLB")


def _record_io(monkeypatch) -> list[tuple[str, str]]:
    events: list[tuple[str, str]] = []
    real_fsync, real_replace, real_link = os.fsync, os.replace, os.link

    def fsync(fd):
        events.append(("fsync", os.readlink(f"/proc/self/fd/{fd}")))
        return real_fsync(fd)

    def replace(src, dst):
        real_replace(src, dst)
        events.append(("rename", os.fspath(dst)))

    monkeypatch.setattr(os, "fsync", fsync)
    monkeypatch.setattr(os, "replace", replace)
    monkeypatch.setattr(os, "link", real_link)
    return events


def test_files_are_synced_before_and_after_their_rename_in_order(tmp_path, monkeypatch):
    monkeypatch.delenv(local_storage.ENV_FSYNC, raising=False)
    fds = FlowDatastore(LocalStorage(str(tmp_path / "ds")))
    events = _record_io(monkeypatch)
    stored = fds.cas.save([("x", list(range(100)))])
    artifacts = {name: a.entry() for name, a in stored.items()}
    fds.write_task("F/1/start/2", 0, TaskInfo(status="ok", artifacts=artifacts))
    fds.mark_done("F/1/start/2", 0, DoneMarker(status="ok"))

    renames = [path for kind, path in events if kind == "rename"]
    blob = str(tmp_path / "ds" / LAYOUT.blob(stored["x"].key))
    task_json = str(tmp_path / "ds/flows/F/1/start/2/0/task.json")
    done = str(tmp_path / "ds/flows/F/1/start/2/0.done")
    assert renames == [blob, task_json, done]  # blob, then record, then marker
    for path in renames:
        i = events.index(("rename", path))
        assert events[i - 1][0] == "fsync" and ".tmp-" in events[i - 1][1]  # data first
        assert events[i + 1] == ("fsync", os.path.dirname(path))  # then the rename
    # a new folder's entry is made durable in its parent
    assert ("fsync", str(tmp_path / "ds/flows/F/1/start/2")) in events


def test_fsync_can_be_turned_off(tmp_path, monkeypatch):
    monkeypatch.setenv(local_storage.ENV_FSYNC, "0")
    fds = FlowDatastore(LocalStorage(str(tmp_path / "ds")))
    events = _record_io(monkeypatch)
    fds.mark_done("F/1/start/2", 0, DoneMarker(status="ok"))
    assert [kind for kind, _ in events] == ["rename"]


@pytest.mark.parametrize("umask", [0o022, 0o077])
def test_every_file_the_datastore_writes_follows_the_umask(make_flow, umask):
    """One policy for blobs, records, markers and logs alike: what ``open`` and
    ``mkdir`` would give under the umask (blobs used to be 0600 and logs 0644)."""
    flow = make_flow(FLOW.replace("self.values = ", "print('log line'); self.values = "))
    cmd = [sys.executable, str(flow.path), "--datastore-root", str(flow.root), "run"]
    subprocess.run(cmd, check=True, capture_output=True, preexec_fn=lambda: os.umask(umask))
    files = dirs = 0
    for path in flow.root.rglob("*"):
        if ".spool" in path.parts:
            continue
        mode = stat.S_IMODE(path.stat().st_mode)
        if path.is_dir():
            dirs += 1
            assert mode == 0o777 & ~umask, path
        else:
            files += 1
            assert mode == 0o666 & ~umask, path
    kinds = {p.suffix or p.name for p in flow.root.rglob("*") if p.is_file()}
    # (a forked task writes no task.json, and no attempt folder if it is silent)
    assert {".json", ".done", ".log"} <= kinds and files > 6 and dirs > 6
