"""What a run refuses, it refuses before it exists; resume picks a run that ended.

A run refused up front (a step asking for more than the machine has) leaves no run
record, so a later ``resume`` cannot pick it. ``resume`` without ``--origin-run-id``
takes the latest run that *ended* and says which; it never resumes a run whose runtime
is still at work.
"""

from __future__ import annotations

import pytest

from metaflowlike import Flow

from .test_faults import Running

pytestmark = pytest.mark.timeout(180)

SIMPLE_FLOW = """
import os, time
from metaflowlike import FlowSpec, step

GO = @GO@

class RefusalFlow(FlowSpec):
    @step
    def start(self):
        self.x = 1
        self.next(self.end)

    @step
    def end(self):
        if os.environ.get("FAIL"):
            raise ValueError("asked to fail")
        if os.environ.get("HOLD"):
            print("HOLDING", flush=True)
            while not os.path.exists(GO):
                time.sleep(0.02)
        self.y = self.x + 1

if __name__ == "__main__":
    RefusalFlow()
"""


def test_a_refused_run_leaves_no_run_record(make_flow, tmp_path):
    flow = make_flow(SIMPLE_FLOW.replace("@GO@", repr(str(tmp_path / "go"))))
    env = {"METAFLOWLIKE_LOCAL_CPUS": "2"}
    proc = flow.run("run", "--with", "resources:cpu=64", check=False, env=env)
    assert proc.returncode != 0
    assert "cpu=64" in proc.stderr and "Traceback" not in proc.stderr, proc.stderr
    assert not list((flow.root / "flows").rglob("_run.json"))

    proc = flow.run("resume", check=False)  # nothing to resume: it never existed
    assert proc.returncode != 0 and "no run of RefusalFlow" in proc.stderr, proc.stderr


def test_resume_picks_the_latest_run_that_ended_and_refuses_a_running_one(make_flow, tmp_path):
    go = tmp_path / "go"
    flow = make_flow(SIMPLE_FLOW.replace("@GO@", repr(str(go))))
    failed = flow.run(
        "run", "--run-id-file", str(tmp_path / "failed"), check=False, env={"FAIL": "1"}
    )
    assert failed.returncode != 0
    failed_id = (tmp_path / "failed").read_text()

    holding = Running(flow, "run", "--run-id-file", str(tmp_path / "held"), env={"HOLD": "1"})
    try:
        holding.expect("HOLDING")
        held_id = (tmp_path / "held").read_text()
        assert Flow("RefusalFlow").latest_run.id == held_id  # the newest run is running

        proc = flow.run("resume", "--origin-run-id", held_id, check=False)
        assert proc.returncode != 0 and "still running" in proc.stderr, proc.stderr
        assert "Traceback" not in proc.stderr

        proc = flow.run("resume")  # the run still executing is passed over, and said so
        assert f"Resuming run RefusalFlow/{failed_id}, the latest run that ended" in proc.stdout
        resumed = Flow("RefusalFlow").latest_run
        assert resumed.successful and resumed.origin_pathspec == f"RefusalFlow/{failed_id}"
    finally:
        go.touch()
        assert holding.wait() == 0, holding.output
