"""The command line as a user meets it: check, show, params, errors, logs, dump."""

from __future__ import annotations

import subprocess
import sys

import pytest

from metaflowlike import Flow
from metaflowlike.client import MetaflowNotFound

HEADER = "from metaflowlike import FlowSpec, step, Parameter, JSONType, IncludeFile\n"

PARAMS_FLOW = (
    HEADER
    + """
class ParamFlow(FlowSpec):
    count = Parameter("count", default=3, help="how many")
    ratio = Parameter("ratio", default=0.5)
    name = Parameter("name", default="x")
    flag = Parameter("flag", default=False)
    cfg = Parameter("cfg", type=JSONType, default='{"a": 1}')
    needed = Parameter("needed", required=True, type=int)
    doc = IncludeFile("doc", default=None)

    @step
    def start(self):
        self.seen = dict(count=self.count, ratio=self.ratio, name=self.name, flag=self.flag,
                         cfg=self.cfg, needed=self.needed, doc=self.doc)
        print("to stdout")
        import sys
        print("to stderr", file=sys.stderr)
        self.next(self.end)

    @step
    def end(self):
        pass

if __name__ == "__main__":
    ParamFlow()
"""
)


def test_parameters_parsed_by_type(make_flow, tmp_path):
    flow = make_flow(PARAMS_FLOW)
    doc = tmp_path / "doc.txt"
    doc.write_text("file contents")
    flow.run(
        "run",
        "--count",
        "7",
        "--ratio",
        "0.25",
        "--name",
        "bob",
        "--flag",
        "true",
        "--cfg",
        '{"b": [1, 2]}',
        "--needed",
        "4",
        "--doc",
        str(doc),
    )
    doc.unlink()  # the run keeps the contents, not the path
    seen = Flow("ParamFlow").latest_run["start"].task.data.seen
    assert seen == dict(
        count=7, ratio=0.25, name="bob", flag=True, cfg={"b": [1, 2]}, needed=4, doc="file contents"
    )


def test_parameter_defaults(make_flow):
    flow = make_flow(PARAMS_FLOW)
    flow.run("run", "--needed", "1")
    seen = Flow("ParamFlow").latest_run["start"].task.data.seen
    assert seen["count"] == 3 and seen["cfg"] == {"a": 1} and seen["flag"] is False
    assert seen["doc"] is None


def _user_error(proc, *fragments):
    assert proc.returncode != 0
    assert "Traceback" not in proc.stderr, proc.stderr
    for frag in fragments:
        assert frag in proc.stderr, proc.stderr


def test_bad_parameter_values_name_the_parameter(make_flow):
    flow = make_flow(PARAMS_FLOW)
    _user_error(flow.run("run", "--needed", "1", "--count", "many", check=False), '"count"', "int")
    _user_error(flow.run("run", "--needed", "1", "--flag", "maybe", check=False), '"flag"')
    _user_error(flow.run("run", "--needed", "1", "--cfg", "{nope", check=False), '"cfg"', "JSON")
    _user_error(flow.run("run", check=False), '"needed"')
    _user_error(flow.run("run", "--needed", "1", "--doc", "/no/such/file", check=False), '"doc"')
    _user_error(flow.run("run", "--needed", "1", "--cuont", "3", check=False), "--count")
    # nothing above started a run: every mistake was caught before a run id existed
    with pytest.raises(MetaflowNotFound):
        Flow("ParamFlow")


def test_unknown_decorator_did_you_mean(make_flow):
    flow = make_flow(PARAMS_FLOW)
    _user_error(
        flow.run("run", "--needed", "1", "--with", "environmnet", check=False),
        "environmnet",
        "environment",
    )


def test_with_environment_decorator(make_flow):
    flow = make_flow("""
import os
from metaflowlike import FlowSpec, step, environment

class EnvFlow(FlowSpec):
    @environment(vars={"FROM_DECO": "yes"})
    @step
    def start(self):
        self.deco = os.environ.get("FROM_DECO")
        self.cli = os.environ.get("FROM_CLI")
        self.next(self.end)

    @step
    def end(self):
        self.cli_end = os.environ.get("FROM_CLI")

if __name__ == "__main__":
    EnvFlow()
""")
    flow.run("run", "--with", 'environment:vars={"FROM_CLI":"1"}')
    run = Flow("EnvFlow").latest_run
    assert run["start"].task.data.deco == "yes"
    assert run.data.cli_end == "1"


def test_logs_are_streamed_with_prefix_and_saved(make_flow):
    flow = make_flow(PARAMS_FLOW)
    proc = flow.run("run", "--needed", "1")
    run = Flow("ParamFlow").latest_run
    task = run["start"].task
    assert f"[{run.id}/start/{task.id}] to stdout" in proc.stdout
    assert f"[{run.id}/start/{task.id}] to stderr" in proc.stderr
    assert task.stdout == "to stdout\n"
    assert task.stderr == "to stderr\n"
    # as Metaflow: every stream on stdout, under a header naming the task
    head = f"ParamFlow/{run.id}/start/{task.id} (attempt 0) ---\n"
    logs = flow.run("logs", f"{run.id}/start")
    assert logs.stdout == f"--- stdout of {head}to stdout\n--- stderr of {head}to stderr\n"
    only_err = flow.run("logs", f"{run.id}/start/{task.id}", "--stderr").stdout
    assert only_err == f"--- stderr of {head}to stderr\n"
    assert flow.run("--quiet", "logs", f"{run.id}/start", "--stdout").stdout == "to stdout\n"


def test_dump_prints_artifacts(make_flow):
    flow = make_flow(PARAMS_FLOW)
    flow.run("run", "--needed", "9")
    run = Flow("ParamFlow").latest_run
    out = flow.run("dump", f"{run.id}/start").stdout
    assert "needed (int" in out and "= 9" in out and "seen (dict" in out
    _user_error(flow.run("dump", "12345/start", check=False), "12345")


def test_failed_task_shows_traceback_and_fails_the_run(make_flow):
    flow = make_flow(
        HEADER
        + """
class FailFlow(FlowSpec):
    @step
    def start(self):
        self.next(self.boom)

    @step
    def boom(self):
        self.partial_result = 41
        raise ValueError("kaboom")
        self.next(self.end)

    @step
    def end(self):
        pass

if __name__ == "__main__":
    FailFlow()
"""
    )
    proc = flow.run("run", check=False)
    assert proc.returncode != 0
    assert "Traceback" in proc.stderr and "ValueError: kaboom" in proc.stderr
    run = Flow("FailFlow").latest_run
    assert not run.successful
    task = run["boom"].task
    assert not task.successful
    assert "kaboom" in str(task.exception)
    assert task.data.partial_result == 41  # a failed task's artifacts stay inspectable
    assert "ValueError" in task.stderr


def test_show_and_check(make_flow):
    flow = make_flow(PARAMS_FLOW)
    assert "start" in flow.run("show").stdout
    assert "digraph" in flow.run("show", "--format", "dot").stdout
    assert "flowchart" in flow.run("show", "--format", "mermaid").stdout
    assert flow.run("check").returncode == 0


def test_check_reports_every_problem_with_step_and_line(make_flow):
    flow = make_flow(
        HEADER
        + """
class BadFlow(FlowSpec):
    @step
    def start(self):
        self.next(self.a, self.b)

    @step
    def a(self):
        self.next(self.joinn)

    @step
    def b(self):
        self.next(self.join)

    @step
    def join(self, inputs):
        self.next(self.end)

    @step
    def orphan(self):
        self.next(self.end)

    @step
    def end(self):
        self.next(self.start)

if __name__ == "__main__":
    BadFlow()
"""
    )
    for command in ("check", "run"):
        proc = flow.run(command, check=False)
        _user_error(proc, 'step "a"', "joinn", 'step "orphan"', 'step "end"')
        text = proc.stderr
        lines = flow.path.read_text().splitlines()
        a_line = next(i for i, s in enumerate(lines, 1) if "self.next(self.joinn)" in s)
        assert f"{flow.path}:{a_line}:" in text or f"{flow.path.name}:{a_line}:" in text, text


def test_import_pulls_in_no_cloud_sdk():
    code = (
        "import sys, metaflowlike\n"
        "from metaflowlike import FlowSpec, step, Parameter, current\n"
        "bad = [m for m in sys.modules if m.split('.')[0] in "
        "('boto3', 'botocore', 'azure', 'google', 'kubernetes')]\n"
        "print(bad)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
