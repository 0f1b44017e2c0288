"""Hostile ids never leave the datastore root and never reach the OS as raw errors.

Every entry point (client pathspecs, ``step``, ``dump``, ``logs``, ``resume``, tags,
checkpoint names) checks what it receives against the one grammar in ``ids.py``; the
storage backends refuse a path that would escape as a last line of defence.
"""

from __future__ import annotations

import pytest

from metaflowlike import Flow, Run, Step, Task
from metaflowlike.client import MetaflowInvalidPathspec, MetaflowNotFound
from metaflowlike.datastore.local_storage import LocalStorage
from metaflowlike.ids import (
    InvalidId,
    check_input_path,
    check_run_id,
    check_storage_path,
    check_tag,
    check_task_id,
)
from tests.flows import two_steps

FLOW = two_steps("IdFlow", "self.x = 1")

HOSTILE = ["..", ".", "../../outside", "a/../b", "x" * 5000, "a\x00b", "_run.json", ".spool", ""]


@pytest.fixture
def flow_run(make_flow, tmp_path):
    flow = make_flow(FLOW)
    flow.run("run", "--run-id-file", str(tmp_path / "rid"))
    return flow, (tmp_path / "rid").read_text()


@pytest.mark.parametrize("bad", HOSTILE)
def test_grammar_refuses_hostile_ids(bad):
    for check in (check_run_id, check_task_id):
        with pytest.raises(InvalidId) as e:
            check(bad)
        assert len(str(e.value)) < 400  # a 5,000-character id is shown shortened
    with pytest.raises(InvalidId):
        check_input_path(f"{bad}/start/1")


def test_grammar_accepts_real_ids():
    for good in ["1733100000000000", "argo-abc.1", "sfn-x_y", "7"]:
        assert check_run_id(good) == good
    assert check_tag("team:ml / experiment 3 ✓") == "team:ml / experiment 3 ✓"
    with pytest.raises(InvalidId, match="control character"):
        check_tag("a\nb")
    with pytest.raises(InvalidId, match="500"):
        check_tag("t" * 501)


def test_storage_refuses_paths_that_escape(tmp_path):
    store = LocalStorage(str(tmp_path / "root"))
    for path in ["flows/../../x", "a//b", "./a", "a\x00", "a\\..\\b"]:
        with pytest.raises(InvalidId):
            store.put_bytes(path, b"no")
        with pytest.raises(InvalidId):
            check_storage_path(path)
    assert not (tmp_path / "x").exists()


def test_client_pathspecs_are_checked(flow_run, tmp_path):
    flow, run_id = flow_run
    root = flow.root
    # a file the pathspec Task('../../outside/t') would have read
    (root.parent / "outside").mkdir()
    for spec in [
        "../../outside/t",
        f"IdFlow/{run_id}/../..",
        f"IdFlow/{run_id}/start/..",
        f"IdFlow/{'9' * 5000}/start/1",
        f"IdFlow/{run_id}/start/1\x00",
    ]:
        with pytest.raises(MetaflowInvalidPathspec):
            Task(spec)
    with pytest.raises(MetaflowInvalidPathspec):
        Step(f"IdFlow/{run_id}/..")
    with pytest.raises(MetaflowInvalidPathspec):
        Run("IdFlow/..")
    with pytest.raises(MetaflowInvalidPathspec):
        Flow("..")
    with pytest.raises(MetaflowInvalidPathspec):
        Flow("IdFlow")["../IdFlow"]
    assert "../../x" not in Flow("IdFlow")
    assert "x" * 5000 not in Flow("IdFlow")
    with pytest.raises(MetaflowNotFound):
        Flow("IdFlow")["123"]
    assert Task(f"IdFlow/{run_id}/start/{Step(f'IdFlow/{run_id}/start').task.id}").data.x == 1


@pytest.mark.parametrize(
    "args",
    [
        ["--task-id", "../../../x"],
        ["--task-id", "y" * 5000],
        ["--task-id", "1", "--input-paths", "../../x/start/1"],
        ["--task-id", "1", "--origin-task", "IdFlow/../start/1"],
        ["--task-id", "1", "--tag", "bad\ntag"],
    ],
)
def test_step_command_checks_its_ids(flow_run, args):
    flow, run_id = flow_run
    before = sorted(flow.root.parent.rglob("*"))
    proc = flow.run("step", "start", "--run-id", run_id, *args, check=False)
    assert proc.returncode == 1
    assert proc.stderr.startswith("Invalid id:"), proc.stderr
    assert "Traceback" not in proc.stderr
    assert sorted(flow.root.parent.rglob("*")) == before  # nothing written anywhere


def test_step_command_refuses_a_run_id_that_escapes(flow_run):
    flow, _ = flow_run
    proc = flow.run("step", "start", "--run-id", "../../..", "--task-id", "1", check=False)
    assert proc.returncode == 1 and proc.stderr.startswith("Invalid id:"), proc.stderr


def test_dump_logs_resume_and_tags_check_ids(flow_run):
    flow, run_id = flow_run
    for cmd in (["dump", f"{run_id}/../.."], ["logs", f"{run_id}/start/{'1' * 5000}"]):
        proc = flow.run(*cmd, check=False)
        assert proc.returncode == 1 and proc.stderr.startswith("Invalid id:"), proc.stderr
    proc = flow.run("resume", "--origin-run-id", "../..", check=False)
    assert proc.returncode == 1 and proc.stderr.startswith("Invalid id:"), proc.stderr
    proc = flow.run("run", "--tag", "x" * 600, check=False)
    assert proc.returncode == 1 and "at most 500" in proc.stderr
    assert "Traceback" not in proc.stderr
