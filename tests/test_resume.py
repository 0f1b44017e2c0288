"""``resume``: reuse what finished, rerun the rest with the current code.

Black-box: real flows run as ``python flow.py run|resume`` subprocesses; results are
read back through the client and, for the "no byte copied" promise, by listing the
blobs under ``<root>/data``. Each step appends its name to a side-effect file, which
tells which tasks really executed (a cloned task runs no user code).
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from metaflowlike import Flow, Run

pytestmark = pytest.mark.timeout(120)

FOUR = """
import os
from metaflowlike import FlowSpec, step, Parameter, current

LOG = @LOG@

def note(name):
    with open(LOG, "a") as f:
        f.write(name + "\\n")

class FourFlow(FlowSpec):
    alpha = Parameter("alpha", default=1, type=int)

    @step
    def start(self):
        note("start")
        self.a = self.alpha * 10
        self.start_origin = current.origin_run_id
        self.next(self.two)

    @step
    def two(self):
        note("two")
        self.b = self.a + 1
        self.payload = list(range(20000))
        self.next(self.three)

    @step
    def three(self):
        note("three")
@THREE@
        self.origin_in_three = current.origin_run_id
        self.next(self.end)

    @step
    def end(self):
        note("end")
        self.d = self.c + 1

if __name__ == "__main__":
    FourFlow()
"""

BROKEN = '        raise ValueError("three is broken")'
FIXED = "        self.c = self.b + 100"


def four_flow(make_flow, tmp_path: Path, three: str, name: str = "four.py"):
    log = tmp_path / "executions.log"
    src = FOUR.replace("@LOG@", repr(str(log))).replace("@THREE@", three)
    return make_flow(src, name=name), log


def executions(log: Path) -> list[str]:
    return log.read_text().split() if log.exists() else []


def blob_keys(root: Path) -> set[str]:
    return {p.name for p in (root / "data").rglob("*") if p.is_file() and ".tmp-" not in p.name}


def run_ids(root: Path, flow: str) -> set[str]:
    d = root / "flows" / flow
    return {p.name for p in d.iterdir() if p.is_dir()} if d.exists() else set()


def test_resume_clones_finished_steps_and_reruns_with_fixed_code(make_flow, tmp_path):
    flow, log = four_flow(make_flow, tmp_path, BROKEN)
    failed = flow.run("run", "--alpha", "5", check=False)
    assert failed.returncode != 0 and "three is broken" in failed.stderr
    origin = Flow("FourFlow").latest_run
    assert not origin.successful
    assert executions(log) == ["start", "two", "three"]
    before = blob_keys(flow.root)

    # fix the code in place: resume must pick up the edited file
    flow.path.write_text(flow.path.read_text().replace(BROKEN, FIXED))
    flow.run("resume")

    run = Flow("FourFlow").latest_run
    assert run.id != origin.id and run.successful
    assert run.origin_pathspec == origin.pathspec
    assert executions(log) == ["start", "two", "three", "three", "end"]

    for step in ("start", "two"):
        new, old = run[step].task, origin[step].task
        assert new.successful and new.origin_pathspec == old.pathspec
        assert {a.id for a in new} == {a.id for a in old}
        assert {a.id: a.sha for a in new} == {a.id: a.sha for a in old}
    assert run["two"].task.data.payload == list(range(20000))
    assert run["start"].task.data.start_origin is None  # it ran in the origin run

    three = run["three"].task
    assert three.origin_pathspec is None and three.successful
    assert three.data.c == 51 + 100  # the fixed code ran
    assert three.data.origin_in_three == origin.id  # current.origin_run_id
    assert run.data.d == 152 and run.data.alpha == 5

    # cloning copies no byte: every new blob belongs to a task that really ran
    new_blobs = blob_keys(flow.root) - before
    ran = {a.sha for step in ("three", "end") for a in run[step].task}
    assert new_blobs and new_blobs <= ran
    cloned = {a.sha for step in ("start", "two") for a in run[step].task}
    assert cloned <= before


FOREACH = """
import os
from metaflowlike import FlowSpec, step

COUNT = @COUNT@
MARKER = @MARKER@

class SplitFlow(FlowSpec):
    @step
    def start(self):
        self.items = list(range(6))
        self.next(self.body, foreach="items")

    @step
    def body(self):
        with open(COUNT, "a") as f:
            f.write(f"{self.input}\\n")
        if self.input == 3 and os.path.exists(MARKER):
            raise RuntimeError("split 3 fails while the marker exists")
        self.sq = self.input * self.input
        self.next(self.join)

    @step
    def join(self, inputs):
        self.total = sum(i.sq for i in inputs)
        self.next(self.end)

    @step
    def end(self):
        pass

if __name__ == "__main__":
    SplitFlow()
"""


def test_foreach_resume_reruns_only_the_failed_split(make_flow, tmp_path):
    count, marker = tmp_path / "count.log", tmp_path / "fail-split-3"
    marker.touch()
    flow = make_flow(
        FOREACH.replace("@COUNT@", repr(str(count))).replace("@MARKER@", repr(str(marker)))
    )
    assert flow.run("run", check=False).returncode != 0
    origin = Flow("SplitFlow").latest_run
    ok = sorted(t.index for t in origin["body"] if t.successful)
    assert ok == [0, 1, 2, 4, 5]
    assert sorted(map(int, count.read_text().split())) == list(range(6))

    marker.unlink()
    count.unlink()
    flow.run("resume")
    assert count.read_text().split() == ["3"]  # exactly one body task executed

    run = Flow("SplitFlow").latest_run
    assert run.successful and run.origin_pathspec == origin.pathspec
    bodies = {t.index: t for t in run["body"]}
    assert sorted(bodies) == list(range(6))
    assert bodies[3].origin_pathspec is None
    for i in (0, 1, 2, 4, 5):
        assert bodies[i].origin_pathspec is not None
        assert Run(origin.pathspec)["body"][bodies[i].origin_pathspec.split("/")[-1]].index == i
        assert bodies[i].data.sq == i * i
    assert run["join"].task.data.total == sum(i * i for i in range(6))


def test_resume_from_a_step_and_from_a_chosen_origin(make_flow, tmp_path):
    flow, log = four_flow(make_flow, tmp_path, FIXED)
    flow.run("run", "--alpha", "1")
    flow.run("run", "--alpha", "2")
    first, second = sorted(Flow("FourFlow").runs(), key=lambda r: int(r.id))
    log.unlink()

    # a successful run can be resumed from a named step: earlier steps are cloned
    flow.run("resume", "three")
    from_latest = Flow("FourFlow").latest_run
    assert from_latest.origin_pathspec == second.pathspec
    assert executions(log) == ["three", "end"]
    assert from_latest.successful and from_latest.data.alpha == 2 and from_latest.data.d == 122
    assert from_latest["two"].task.origin_pathspec == second["two"].task.pathspec
    assert from_latest["three"].task.origin_pathspec is None

    # --origin-run-id picks an older run; its parameters come along
    log.unlink()
    flow.run("resume", "two", "--origin-run-id", first.id)
    picked = Flow("FourFlow").latest_run
    assert picked.origin_pathspec == first.pathspec
    assert executions(log) == ["two", "three", "end"]
    assert picked["start"].task.origin_pathspec == first["start"].task.pathspec
    assert picked.successful and picked.data.alpha == 1 and picked.data.d == 112
    assert picked["three"].task.data.origin_in_three == first.id


def test_resume_inherits_the_origin_parameters(make_flow, tmp_path):
    flow, _ = four_flow(make_flow, tmp_path, BROKEN)
    flow.run("run", "--alpha", "7", check=False)
    origin = Flow("FourFlow").latest_run
    flow.path.write_text(flow.path.read_text().replace(BROKEN, FIXED))
    flow.run("resume")
    run = Flow("FourFlow").latest_run
    assert run.origin_pathspec == origin.pathspec
    assert run.data.alpha == 7 and run["three"].task.data.c == 171
    assert run.parameters == origin.parameters and "alpha" in run.parameters


def test_client_shows_resumed_runs_like_any_other(make_flow, tmp_path):
    flow, _ = four_flow(make_flow, tmp_path, BROKEN)
    flow.run("run", check=False)
    flow.path.write_text(flow.path.read_text().replace(BROKEN, FIXED))
    id_file = tmp_path / "resumed-id"
    flow.run("resume", "--run-id-file", str(id_file))
    resumed_id = id_file.read_text()

    runs = list(Flow("FourFlow"))
    assert len(runs) == 2 and runs[0].id == resumed_id
    origin = runs[1]
    run = Run(f"FourFlow/{resumed_id}")
    assert run == Flow("FourFlow").latest_run == Flow("FourFlow").latest_successful_run
    assert run.successful and run.finished and not origin.successful
    assert [s.id for s in run] == ["end"] + [s.id for s in origin]  # newest first
    assert run.data.d == 112 and run.data.a == 10
    assert run.origin_pathspec == origin.pathspec and origin.origin_pathspec is None
    assert run.user == origin.user and run.tags >= origin.system_tags
    start = run["start"].task
    assert start.finished and start.successful
    assert start.origin_pathspec == origin["start"].task.pathspec
    assert start.data.a == 10 and start["a"].data == 10
    assert [t.pathspec for t in run["three"].task.parent_tasks] == [run["two"].task.pathspec]


# --------------------------------------------------------------------------- errors


@pytest.fixture(scope="module")
def failed_and_ok(tmp_path_factory):
    """One datastore with a failed run and then a successful one of FourFlow."""
    base = tmp_path_factory.mktemp("resume-errors")
    root = base / "ds"
    broken = base / "broken.py"
    fixed = base / "fixed.py"
    src = FOUR.replace("@LOG@", repr(str(base / "log")))
    broken.write_text(src.replace("@THREE@", BROKEN))
    fixed.write_text(src.replace("@THREE@", FIXED))
    assert cli(broken, root, "run").returncode != 0
    failed_id = max(run_ids(root, "FourFlow"), key=int)
    assert cli(fixed, root, "run").returncode == 0
    return base, root, failed_id


def cli(path: Path, root: Path, *args: str) -> subprocess.CompletedProcess:
    cmd = [sys.executable, str(path), "--datastore-root", str(root), *args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=60, cwd=path.parent)


@pytest.mark.parametrize(
    "case",
    ["nothing-failed", "unknown-run", "unknown-step", "renamed-step", "parameter", "no-runs"],
)
def test_resume_refuses_with_one_clear_paragraph(failed_and_ok, case):
    base, root, failed_id = failed_and_ok
    fixed = base / "fixed.py"
    before = run_ids(root, "FourFlow")
    if case == "nothing-failed":  # the latest run succeeded and no step is named
        proc, expect = cli(fixed, root, "resume"), ["finished successfully", "resume end"]
    elif case == "unknown-run":
        proc, expect = cli(fixed, root, "resume", "--origin-run-id", "424242"), ["424242"]
    elif case == "unknown-step":
        proc, expect = cli(fixed, root, "resume", "thre"), ['"thre"', '"three"']
    elif case == "renamed-step":  # "two" exists in the origin run, not in the flow any more
        renamed = base / "renamed.py"
        renamed.write_text(fixed.read_text().replace("two", "second"))
        proc = cli(renamed, root, "resume", "--origin-run-id", failed_id)
        expect = ["two", failed_id]
    elif case == "parameter":
        proc = cli(fixed, root, "resume", "--origin-run-id", failed_id, "--alpha", "3")
        expect = ["--alpha", "parameters of the origin run"]
    else:
        proc, expect = cli(fixed, base / "empty-ds", "resume"), ["no run of FourFlow"]
    err = proc.stderr.strip()
    assert proc.returncode != 0, proc.stdout
    assert "Traceback" not in proc.stderr and "Traceback" not in proc.stdout
    assert err and "\n\n" not in err and len(err.splitlines()) <= 3, err
    for word in expect:
        assert word.lower() in err.lower(), err
    assert run_ids(root, "FourFlow") == before  # no run was started
