"""Live progress on a terminal (driven in a pseudo-terminal), plain lines elsewhere, and
the end-of-run summary in both."""

from __future__ import annotations

import re
import sys

import pytest

from tests.ptyrun import run_in_pty

FLOW = """
from metaflowlike import FlowSpec, step

class FanFlow(FlowSpec):
    @step
    def start(self):
        self.items = list(range(9))
        self.next(self.body, foreach="items")

    @step
    def body(self):
        print(f"working on {self.input}")
        self.out = self.input * 2
        self.next(self.join)

    @step
    def join(self, inputs):
        self.total = sum(i.out for i in inputs)
        print(f"total {self.total}")
        self.next(self.end)

    @step
    def end(self):
        pass

if __name__ == "__main__":
    FanFlow()
"""

ESC = "\x1b["


@pytest.fixture
def fan(make_flow):
    flow = make_flow(FLOW)
    return flow, [sys.executable, str(flow.path), "--datastore-root", str(flow.root)]


def test_terminal_shows_live_progress_and_a_summary(fan):
    flow, cmd = fan
    code, out = run_in_pty(cmd + ["run", "--max-workers", "2"], cwd=flow.path.parent)
    assert code == 0, out
    assert ESC in out  # drawn with terminal control sequences
    assert "steps 4/4" in out and "no failures" in out
    assert "foreach body" in out and "9/9" in out and "ETA" in out
    assert re.search(r"\[\d+/body/\d+\] working on 8", out) and "total 72" in out  # task output
    assert "Task is starting." not in out  # the status block replaces those lines
    assert "Slowest steps: " in out and "body " in out and "(9 tasks)" in out
    assert "Inspect it: python" in out and "FanFlow/" in out
    assert "12 tasks succeeded, 0 retries, 0 failed" in out


@pytest.mark.parametrize(
    "env,args",
    [({"NO_COLOR": "1"}, []), ({"TERM": "dumb"}, []), ({}, ["--quiet"])],
    ids=["NO_COLOR", "TERM=dumb", "--quiet"],
)
def test_terminal_opt_outs_print_plain_lines(fan, env, args):
    flow, cmd = fan
    code, out = run_in_pty(cmd[:4] + args + ["run"], env=env, cwd=flow.path.parent)
    assert code == 0, out
    assert ESC not in out and "ETA" not in out
    assert "working on 3" in out
    if args == ["--quiet"]:
        assert "Task is starting." not in out and "Slowest steps" not in out
    else:
        assert "Task is starting." in out and "Slowest steps: " in out


def test_not_a_terminal_prints_plain_lines_and_the_summary(fan):
    flow, _ = fan
    proc = flow.run("run")
    assert ESC not in proc.stdout and ESC not in proc.stderr
    assert "Task is starting." in proc.stdout and "working on 4" in proc.stdout
    assert "12 tasks succeeded" in proc.stdout and "Slowest steps: " in proc.stdout
    assert "Inspect it: python" in proc.stdout


def test_failures_and_retries_are_counted(make_flow):
    flow = make_flow(
        """
        from metaflowlike import FlowSpec, retry, step

        class FlakyFlow(FlowSpec):
            @retry(times=1, minutes_between_retries=0)
            @step
            def start(self):
                from metaflowlike import current
                if current.retry_count == 0:
                    raise RuntimeError("first try fails")
                self.next(self.end)

            @step
            def end(self):
                raise ValueError("the end fails")

        if __name__ == "__main__":
            FlakyFlow()
        """
    )
    code, out = run_in_pty(
        [sys.executable, str(flow.path), "--datastore-root", str(flow.root), "run"],
        cwd=flow.path.parent,
    )
    assert code == 1
    assert "1 retry" in out and "1 failed" in out and "the end fails" in out
