"""A damaged JSON record makes its task or run unreadable, never a raw traceback.

The records are damaged the way a torn write or a stray file would: truncated,
garbled, replaced by a JSON list, or a ``notes.done`` next to the real markers. The
client warns and treats the task as unfinished (or skips the run), ``dump`` and
``logs`` print one warning line, and ``resume`` runs the damaged task again.
"""

from __future__ import annotations

import pytest

from metaflowlike import Flow, Run, Task
from metaflowlike.exceptions import DamagedRecordWarning

FLOW = """
import os

from metaflowlike import FlowSpec, step


class RecFlow(FlowSpec):
    @step
    def start(self):
        print("start ran")
        self.x = 41
        self.next(self.end)

    @step
    def end(self):
        if os.environ.get("FAIL_END"):
            raise RuntimeError("end fails")
        self.y = self.x + 1


if __name__ == "__main__":
    RecFlow()
"""

DAMAGES = {
    "truncated": lambda b: b[: len(b) // 2],
    "garbled": lambda b: b"\xff\xfe" + b[2:],
    "not an object": lambda b: b"[1, 2]",
    "empty": lambda b: b"",
}


def _failed_run(make_flow, tmp_path, *options):
    flow = make_flow(FLOW)
    rid = str(tmp_path / "rid")
    flow.run("run", "--run-id-file", rid, *options, env={"FAIL_END": "1"}, check=False)
    run_id = (tmp_path / "rid").read_text()
    task_dir = next((flow.root / "flows" / "RecFlow" / run_id / "start").iterdir())
    return flow, run_id, task_dir


@pytest.fixture
def failed_run(make_flow, tmp_path):
    return _failed_run(make_flow, tmp_path)


def _damage(path, how):
    path.write_bytes(DAMAGES[how](path.read_bytes()))


# A forked task's record travels in its marker; a ``step`` subprocess writes task.json.
@pytest.mark.parametrize(
    "record,options", [("0/task.json", ("--launcher", "subprocess")), ("0.done", ())]
)
@pytest.mark.parametrize("how", list(DAMAGES))
def test_damaged_task_record_is_unreadable_not_a_traceback(
    make_flow, tmp_path, record, options, how
):
    flow, run_id, task_dir = _failed_run(make_flow, tmp_path, *options)
    _damage(task_dir / record, how)
    pathspec = f"RecFlow/{run_id}/start/{task_dir.name}"
    with pytest.warns(DamagedRecordWarning, match=f"Task {pathspec} is unreadable"):
        task = Task(pathspec)
        with pytest.raises(AttributeError, match="unreadable"):
            task.data.x  # noqa: B018
        assert not task.finished and not task.successful
    for cmd in ("dump", "logs"):
        proc = flow.run(cmd, f"{run_id}/start", check=False)
        assert f"Warning: Task {pathspec} is unreadable" in proc.stderr, proc.stderr
        assert "Traceback" not in proc.stderr and "Error" not in proc.stderr
        assert proc.returncode == 0

    # resume runs the damaged task again instead of aborting or cloning it
    proc = flow.run("resume", "--origin-run-id", run_id)
    assert "start ran" in proc.stdout
    assert "is unreadable" in proc.stderr
    new = Flow("RecFlow").latest_run
    assert new.id != run_id and new.successful and new.data.y == 42
    assert new["start"].task.origin_pathspec is None  # ran, not cloned


def test_damaged_run_record_is_skipped_by_listings(failed_run, tmp_path):
    flow, bad_id, _ = failed_run
    flow.run("run", "--run-id-file", str(tmp_path / "rid2"))
    good_id = (tmp_path / "rid2").read_text()
    _damage(flow.root / "flows" / "RecFlow" / bad_id / "_run.json", "truncated")
    with pytest.warns(DamagedRecordWarning, match=f"Run RecFlow/{bad_id} is unreadable"):
        assert [r.id for r in Flow("RecFlow")] == [good_id]
        with pytest.raises(KeyError, match="does not exist"):
            Run(f"RecFlow/{bad_id}")
    proc = flow.run("dump", f"{bad_id}/start", check=False)
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    assert f"Warning: Run RecFlow/{bad_id} is unreadable" in proc.stderr


def test_stray_done_file_is_not_an_attempt(failed_run):
    flow, run_id, task_dir = failed_run
    (task_dir / "notes.done").write_text("not a marker")
    (task_dir / "-1.done").write_text("{}")
    task = Task(f"RecFlow/{run_id}/start/{task_dir.name}")
    assert task.finished and task.current_attempt == 0 and task.data.x == 41
    proc = flow.run("dump", f"{run_id}/start/{task_dir.name}")
    assert "x (int" in proc.stdout
    proc = flow.run("resume", "--origin-run-id", run_id)
    assert "start ran" not in proc.stdout  # the good task is still cloned
    assert Flow("RecFlow").latest_run.data.y == 42
