"""Typed records and their one owner: old records still read, new fields do not break
readers, and no module outside the datastore layer knows a path.

The compatibility tests run a real flow, then rewrite its records on disk the way a
previous version of metaflowlike wrote them (no ``format`` field) or a later one might
(a newer format with fields this version does not know), and read them back through
the client, ``dump`` and ``resume``, as a user would.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from metaflowlike import Flow, Task
from metaflowlike.datastore.layout import LAYOUT
from metaflowlike.datastore.local_storage import LocalStorage
from metaflowlike.datastore.records import (
    FORMAT,
    ArtifactEntry,
    DoneMarker,
    MalformedRecord,
    RunRecord,
    TaskInfo,
)
from metaflowlike.datastore.task_datastore import FlowDatastore
from metaflowlike.exceptions import DamagedRecordWarning

from .test_client import FLOW  # ClientFlow: start -> foreach body -> join -> end

REPO = Path(__file__).resolve().parent.parent


def _records(root: Path) -> list[Path]:
    flows = root / "flows"
    return [
        p for p in flows.rglob("*") if p.is_file() and (p.suffix == ".done" or p.name in
        ("task.json", "_run.json", "_done.json"))
    ]  # fmt: skip


def _docs(root: Path) -> list[dict]:
    """Every record, those a marker carries (a forked task's) included."""
    docs = [json.loads(p.read_text()) for p in _records(root)]
    return docs + [d["task"] for d in docs if "task" in d]


def _rewrite(root: Path, change) -> int:
    count = 0
    for path in _records(root):
        doc = change(json.loads(path.read_text()))
        if "task" in doc:
            doc["task"] = change(doc["task"])
            count += 1
        path.write_text(json.dumps(doc))
        count += 1
    return count


def _as_older_version(doc: dict) -> dict:
    """What the previous version wrote: the same fields, no format number."""
    doc.pop(FORMAT)
    return doc


def _as_older_layout(root: Path) -> int:
    """What the previous version wrote for a forked task: its record in
    ``<attempt>/task.json``, beside a marker that does not carry it."""
    count = 0
    for marker in root.joinpath("flows").rglob("*.done"):
        doc = json.loads(marker.read_text())
        if "task" in doc:
            attempt = marker.parent / marker.name[: -len(".done")]
            attempt.mkdir(exist_ok=True)
            (attempt / "task.json").write_text(json.dumps(doc.pop("task")))
            marker.write_text(json.dumps(doc))
            count += 1
    return count


def _as_newer_version(doc: dict) -> dict:
    """A later format with fields this version does not know, here and in entries."""
    doc[FORMAT] = 7
    doc["shiny_new_field"] = {"nested": [1, 2]}
    for entries in (doc.get("artifacts"), doc.get("params")):
        for name, entry in (entries or {}).items():
            entries[name] = entry[:3] + [entry[3] if len(entry) > 3 else None, "sha256"]
    return doc


@pytest.fixture
def finished(make_flow, tmp_path):
    flow = make_flow(FLOW)
    flow.run("run", "--run-id-file", str(tmp_path / "rid"))
    return flow, (tmp_path / "rid").read_text()


def _check_client(run_id: str) -> None:
    run = Flow("ClientFlow")[run_id]
    assert run.successful and run.data.total == 5 and run.data.result == 6
    assert run.parameters == {"n": 3, "fail": 0}
    assert sorted(t.data.sq for t in run["body"]) == [0, 1, 4]
    assert [t.index for t in sorted(run["body"], key=lambda t: t.index)] == [0, 1, 2]
    total = run["end"].task["total"]
    assert total.size > 0 and total.type == "int" and total.preview == "5"
    assert "user" in run["end"].task.metadata_dict


def test_records_say_their_format(finished):
    flow, _ = finished
    docs = _docs(flow.root)
    markers = [d for d in docs if "exit_status" in d]
    assert markers and all(d[FORMAT] == DoneMarker.VERSION == 2 for d in markers)
    assert all("task" in d for d in markers)  # forked tasks: the record in the marker
    assert docs and all(doc[FORMAT] == 1 for doc in docs if "exit_status" not in doc)
    start = next(d for d in docs if d.get("step") == "start")
    assert start["artifacts"]["items"][2:] == ["list", "[0, 1, 2]"]  # with its preview
    assert len(start["artifacts"]["blob"]) == 3  # bytes: no preview


def test_records_of_the_previous_version_read_and_resume(finished):
    flow, run_id = finished
    assert _as_older_layout(flow.root) > 5
    assert _rewrite(flow.root, _as_older_version) > 10
    assert not any("task" in d for d in _docs(flow.root))
    _check_client(run_id)
    out = flow.run("dump", f"{run_id}/join").stdout
    assert "total (int," in out and "= 5" in out
    flow.run("resume", "--origin-run-id", run_id, "join")  # clones start and body
    new = Flow("ClientFlow").latest_run
    assert new.id != run_id and new.successful and new.data.total == 5
    assert new["body"].task.origin_pathspec.startswith(f"ClientFlow/{run_id}/body/")


def test_records_of_a_newer_format_read_and_keep_unknown_fields(finished):
    flow, run_id = finished
    _rewrite(flow.root, _as_newer_version)
    _check_client(run_id)
    flow.run("resume", "--origin-run-id", run_id, "end")
    new = Flow("ClientFlow").latest_run
    assert new.successful and new.data.total == 5
    # the cloned task's record keeps what this version did not understand
    cloned = new["join"].task
    doc = json.loads((flow.root / LAYOUT.task_record(cloned.pathspec, 0)).read_text())
    assert doc["shiny_new_field"] == {"nested": [1, 2]}
    assert doc["artifacts"]["total"][2:] == ["int", "5"]  # the preview kept, "sha256" not


def test_a_malformed_manifest_makes_the_task_unreadable(make_flow, tmp_path):
    flow = make_flow(FLOW)
    flow.run("run", "--fail", "1", "--run-id-file", str(tmp_path / "rid"), check=False)
    run_id = (tmp_path / "rid").read_text()
    (start,) = (flow.root / "flows/ClientFlow" / run_id / "start").iterdir()
    record = start / "0.done"  # a forked task's record is in its marker
    doc = json.loads(record.read_text())
    doc["task"]["artifacts"]["items"] = ["short"]
    record.write_text(json.dumps(doc))
    with pytest.warns(DamagedRecordWarning, match="artifact entry"):
        task = Task(f"ClientFlow/{run_id}/start/{start.name}")
        assert "items" not in task
    assert not task.finished and task.current_attempt == 0
    # reruns the unreadable start, and with the fix the failed end
    out = flow.run("resume", "--origin-run-id", run_id, env={"CLIENT_FIX": "1"})
    assert "is unreadable" in out.stderr and "artifact entry" in out.stderr
    assert Flow("ClientFlow").latest_run.data.result == 6


def test_artifact_entry_forms():
    assert ArtifactEntry.from_json(["k", 3, "int"]) == ArtifactEntry("k", 3, "int")
    with_preview = ArtifactEntry("k", 3, "int", preview="3")
    assert with_preview.to_json() == ["k", 3, "int", "3"]
    assert ArtifactEntry.from_json(with_preview.to_json()) == with_preview
    assert ArtifactEntry.from_json(["k", 3, "int", "3", {"later": 1}]) == with_preview
    assert ArtifactEntry.from_json({"key": "k", "size": 3, "type": "int", "x": 1}).key == "k"
    for bad in (["k", 3], [1, 2, 3], "k", None):
        with pytest.raises(MalformedRecord):
            ArtifactEntry.from_json(bad)


def test_records_round_trip_through_one_writer(tmp_path):
    fds = FlowDatastore(LocalStorage(str(tmp_path)))
    run = RunRecord(flow="F", run_id="1", tags=["user:a", "t"], user_tags=["t"], with_specs=["x"])
    fds.write_run(run)
    assert fds.read_run("F", "1") == run and run.system_tags == ["user:a"]
    assert json.loads((tmp_path / LAYOUT.run_record("F", "1")).read_text())["with"] == ["x"]
    info = TaskInfo(status="ok", artifacts={"a": ArtifactEntry("k", 1, "int")})
    fds.write_task("F/1/start/1", 0, info)
    fds.mark_done("F/1/start/1", 0, DoneMarker(status="ok", exit_status=0))
    rec = fds.read_task("F/1/start/1")
    assert rec is not None and rec.info == info and rec.status == "ok"
    assert rec.done.exit_status == 0 and fds.attempts("F/1/start/1") == [0]


def test_a_marker_carries_a_forked_tasks_record(tmp_path):
    """A forked task hands its record over a pipe; the marker carries it. A record cut
    short (the task killed while handing it over) is refused, never half-read; a copy
    made by ``resume`` or the step cache keeps its own record, not its source's."""
    fds = FlowDatastore(LocalStorage(str(tmp_path)))
    info = TaskInfo(status="ok", artifacts={"a": ArtifactEntry("k", 1, "int", "1")})
    raw = fds.encode_task_info(info)
    assert fds.decode_task_info(bytearray(raw)) == info
    for cut in (0, 1, len(raw) // 2, len(raw) - 1):
        assert fds.decode_task_info(raw[:cut]) is None
    fds.mark_done("F/1/start/1", 0, DoneMarker(status="ok", task=info))
    assert not (tmp_path / LAYOUT.attempt_dir("F/1/start/1", 0)).exists()
    rec = fds.read_task("F/1/start/1")
    assert rec is not None and rec.info == info and rec.done.task == info
    assert fds.read_task_info("F/1/start/1", 0) == info
    # as the runtime stores it: the handed bytes as they came, the same marker
    fds.mark_done("F/1/start/3", 0, DoneMarker(status="ok", exit_status=0), bytearray(raw))
    assert fds.read_task("F/1/start/3").done == DoneMarker(status="ok", exit_status=0, task=info)
    stored = json.loads(fds.storage.get_bytes(LAYOUT.done_marker("F/1/start/3", 0)))
    assert stored == DoneMarker(status="ok", exit_status=0, task=info).to_json()
    copy = TaskInfo(status="ok", origin_task="F/1/start/1", artifacts=info.artifacts)
    fds.copy_task(rec, "F/2/start/1", copy, rec.done)
    again = fds.read_task("F/2/start/1")
    assert again is not None and again.info == copy and again.done.task is None


#: path fragments only the datastore layer may know
FRAGMENTS = re.compile(
    r"task\.json|[}>\"'0-9]\.done\b|_done\.json|_run\.json|_claim\.json|_cache\.json"
    r"|[\"'/]_checkpoints|metrics\.json|[\"']flows/|\bFLOWS\b|\}/cards\b|_tags\."
    r"|stdout\.log|stderr\.log|\{stream\}\.log|[\"'/](models|code|data|cache|gc)/"
)


def test_only_the_datastore_layer_knows_paths():
    """Every path of a record, log, card, checkpoint or blob is built by
    ``datastore/layout.py`` (through ``FlowDatastore``): no other module of the
    package or its plugins spells one."""
    offenders = []
    for folder in ("metaflowlike", "plugins"):
        for path in (REPO / folder).rglob("*.py"):
            if path.parent.name == "datastore" and path.parent.parent.name == "metaflowlike":
                continue
            for n, line in enumerate(path.read_text().splitlines(), 1):
                if FRAGMENTS.search(line):
                    offenders.append(f"{path.relative_to(REPO)}:{n}: {line.strip()}")
    assert offenders == []
