"""``step-functions`` end to end.

Every exported definition passes statelint and asl-validator; create, update, trigger,
list-runs and delete go through moto's Step Functions and EventBridge APIs in server
mode; and exports are *executed*: ``tests/sfn_interpreter.py`` runs the state machine,
each Batch task's container command in an empty folder with only its declared
environment and a Python without metaflowlike, against S3 on moto. The artifacts of
such a run, read through the client, equal those of a local ``run`` of the same flow.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from metaflowlike import Flow
from tests.cloud_servers import AWS_KEY_ID, AWS_SECRET, aws_client
from tests.laptop import Laptop as BaseLaptop
from tests.sfn_interpreter import Interpreter

REPO = Path(__file__).resolve().parent.parent
GOLDEN = Path(__file__).parent / "golden"
ASL_VALIDATOR = REPO / "node_modules" / ".bin" / "asl-validator"
SFN_ROLE = "arn:aws:iam::123456789012:role/sfn-runs-flows"
EVENTS_ROLE = "arn:aws:iam::123456789012:role/events-start-sfn"

#: a flow with every shape and decorator the export must carry
BIG = """
import os
from metaflowlike import (
    FlowSpec, JSONType, Parameter, catch, current, environment, project, retry, schedule, step,
)


@schedule(cron="0 6 * * 1-5")
@project(name="demo")
class BigFlow(FlowSpec):
    alpha = Parameter("alpha", default=0.5)
    count = Parameter("count", default=2)
    cfg = Parameter("cfg", default={"scale": 10}, type=JSONType)
    loud = Parameter("loud", default=False)
    phrase = Parameter("phrase", default="none")

    @step
    def start(self):
        self.outer = list(range(self.count))
        self.next(self.left, self.right)

    @retry(times=2, minutes_between_retries=0)
    @step
    def left(self):
        if current.retry_count == 0:
            raise RuntimeError("flaky the first time")
        self.side = "left"
        self.attempts = current.retry_count
        self.next(self.join_sides)

    @catch(var="failure")
    @step
    def right(self):
        self.side = "right"
        if self.count > 0:
            raise ValueError("right always fails, and is caught")
        self.next(self.join_sides)

    @step
    def join_sides(self, inputs):
        self.sides = sorted(i.side for i in inputs)
        self.caught = [str(i.failure) for i in inputs if getattr(i, "failure", None)]
        self.outer = inputs[0].outer
        self.next(self.fan)

    @step
    def fan(self):
        self.next(self.outer_step, foreach="outer")

    @step
    def outer_step(self):
        self.o = self.input
        self.inner = ["a", "b"][: self.o + 1]
        self.next(self.inner_step, foreach="inner")

    @environment(vars={"GREETING": "hello"})
    @step
    def inner_step(self):
        self.word = f"{os.environ['GREETING']}-{self.o}-{self.input}-{self.alpha * self.cfg['scale']}"
        self.next(self.inner_join)

    @step
    def inner_join(self, inputs):
        self.words = [i.word for i in inputs]
        self.o = inputs[0].o
        self.next(self.outer_join)

    @step
    def outer_join(self, inputs):
        self.all_words = [w for i in inputs for w in i.words]
        self.next(self.route)

    @step
    def route(self):
        self.way = "loud" if self.loud else "quiet"
        self.next({"loud": self.shout, "quiet": self.whisper}, condition="way")

    @step
    def shout(self):
        self.said = self.phrase.upper()
        self.next(self.end)

    @step
    def whisper(self):
        self.said = self.phrase.lower()
        self.next(self.end)

    @step
    def end(self):
        self.summary = {"words": self.all_words, "said": self.said}


if __name__ == "__main__":
    BigFlow()
"""

SMALL = """
from metaflowlike import FlowSpec, Parameter, step


class SmallFlow(FlowSpec):
    n = Parameter("n", default=2)

    @step
    def start(self):
        self.items = list(range(self.n))
        self.next(self.work, foreach="items")

    @step
    def work(self):
        self.y = self.input * 10
        self.next(self.gather)

    @step
    def gather(self, inputs):
        self.total = sum(i.y for i in inputs)
        self.next(self.end)

    @step
    def end(self):
        pass


if __name__ == "__main__":
    SmallFlow()
"""


@dataclass
class Laptop(BaseLaptop):
    """A user's folder: flow files run as ``python flow.py --datastore s3 ...``."""

    moto_url: str

    def settings(self) -> dict[str, str]:
        return {
            "AWS_ENDPOINT_URL": self.moto_url,
            "AWS_ACCESS_KEY_ID": AWS_KEY_ID,
            "AWS_SECRET_ACCESS_KEY": AWS_SECRET,
            "AWS_DEFAULT_REGION": "us-east-1",
            "METAFLOWLIKE_USER": "ann",
            "METAFLOWLIKE_BATCH_IMAGE": "python:3.11-slim",
            "METAFLOWLIKE_BATCH_JOB_QUEUE": "prod-queue",
            "METAFLOWLIKE_SFN_IAM_ROLE": SFN_ROLE,
            "METAFLOWLIKE_EVENTS_SFN_ACCESS_IAM_ROLE": EVENTS_ROLE,
        }

    def run(self, path: Path, *args: str, check: bool = True, **extra: str):
        return self.invoke(path, "--datastore", "s3", *args, check=check, env=extra, timeout=600)

    def export(self, path: Path, *top: str, **extra: str) -> dict:
        proc = self.run(path, *top, "step-functions", "create", "--only-json", **extra)
        validate(proc.stdout, self.folder)
        return json.loads(proc.stdout)

    def deploy(self, path: Path, *top: str) -> dict:
        """``step-functions create`` for real; the definition as moto stored it."""
        out = self.run(path, *top, "step-functions", "create")
        name = re.search(r"state machine (\S+) \(", out.stdout).group(1)
        sfn = aws_client("stepfunctions", self.moto_url)
        machines = sfn.list_state_machines()["stateMachines"]
        arn = next(m["stateMachineArn"] for m in machines if m["name"] == name)
        text = sfn.describe_state_machine(stateMachineArn=arn)["definition"]
        validate(text, self.folder)
        return json.loads(text)


def validate(text: str, folder: Path) -> None:
    """Both validators, each catching what the other misses."""
    path = folder / "definition.json"
    path.write_text(text)
    lint = subprocess.run(
        [str(Path(sys.executable).parent / "statelint"), str(path)], capture_output=True, text=True
    )
    assert lint.returncode == 0, lint.stdout + lint.stderr
    asl = subprocess.run(
        [str(ASL_VALIDATOR), "--json-path", str(path)], capture_output=True, text=True
    )
    assert asl.returncode == 0, asl.stdout + asl.stderr


@pytest.fixture
def laptop(s3_project, s3_root, moto_server):
    return Laptop(s3_project, s3_root, moto_server.url)


def interpret(laptop: Laptop, definition: dict, sdk_python: Path, params: dict, name: str):
    s3 = aws_client("s3", laptop.moto_url)
    machine = Interpreter(definition, sdk_python=sdk_python, s3_url=laptop.moto_url, s3_client=s3)
    return machine.start({"Parameters": params}, name=name)


def _where_neutral(text: str) -> str:
    """A traceback's file names without the folder they ran in (laptop or container)."""
    return re.sub(r'File \\?"[^"]*?/(metaflowlike/[^"\\]+|flow\.py)\\?"', r"File \1", text)


def artifacts_by_step(run) -> dict[str, list[dict]]:
    """Each step's tasks' artifacts (as repr), in a stable order: task ids differ
    between a local run and a production one, the data must not."""
    out = {}
    for step in run:
        tasks = []
        for task in step:
            tasks.append({a.id: _where_neutral(repr(a.data)) for a in task.artifacts})
        out[step.id] = sorted(tasks, key=lambda t: json.dumps(t, sort_keys=True))
    return out


@pytest.mark.timeout(1200)
def test_big_flow_runs_on_the_interpreter_like_a_local_run(laptop, sdk_python):
    """Static branch, nested foreach, typed parameters, a @retry that succeeds on the
    second attempt, a @catch, @environment and a switch: exported, validated,
    executed; the run reads through the client exactly like a local run."""
    path = laptop.write(BIG)
    definition = laptop.deploy(path, "--branch", "nightly")
    params = {"alpha": "0.2", "count": "2", "cfg": '{"scale": 100}', "loud": "true", "phrase": "Hi"}
    execution = interpret(laptop, definition, sdk_python, params, "exec-big-1")
    assert execution.status == "SUCCEEDED", "\n".join(
        j.output for j in execution.jobs if j.returncode
    )

    # the retry happened at the orchestrator level: two jobs for "left", attempt 0 and 1
    left = [j for j in execution.jobs if j.name.startswith("BigFlow-left-")]
    assert len(left) == 2 and ("left", 1) in execution.retry_intervals
    # nested foreach: 2 outer splits, 1 + 2 inner ones
    inner = [j for j in execution.jobs if j.name.startswith("BigFlow-inner_step-")]
    task_ids = sorted(j.env["METAFLOWLIKE_DEPLOY_TASK_ID"] for j in inner)
    assert task_ids == ["1-0-0", "1-1-0", "1-1-1"]
    # only the declared environment reached the containers: no laptop setting
    for job in execution.jobs:
        assert "METAFLOWLIKE_DATASTORE_ROOT" not in job.env
        assert job.env["METAFLOWLIKE_USER"] == "ann"

    run = Flow("BigFlow")["sfn-exec-big-1"]
    assert run.successful
    assert "project_branch:test.nightly" in run.tags
    assert run.data.summary["said"] == "HI"
    assert run["left"].task.data.attempts == 1
    assert "right always fails" in str(run["right"].task.data.failure)
    production = artifacts_by_step(run)

    args = [f"--{k}={v}" for k, v in params.items()]
    laptop.run(path, "--branch", "nightly", "run", *args)
    local = [r for r in Flow("BigFlow").runs() if not r.id.startswith("sfn-")][0]
    assert local.successful
    got = artifacts_by_step(local)
    differing = {
        s: (got.get(s), production.get(s))
        for s in got.keys() | production.keys()
        if got.get(s) != production.get(s)
    }
    assert not differing, json.dumps(differing, indent=1)


@pytest.mark.timeout(600)
def test_a_hard_death_under_catch_is_recorded_by_the_catch_state(laptop, sdk_python):
    """A task that dies (no exception for @catch to catch) fails its Batch job; the
    Catch state runs one more attempt that records the failure, as locally."""
    source = """
    import os
    from metaflowlike import FlowSpec, catch, step


    class DiesFlow(FlowSpec):
        @step
        def start(self):
            self.next(self.die)

        @catch(var="failure")
        @step
        def die(self):
            os._exit(3)
            self.next(self.end)

        @step
        def end(self):
            self.seen = str(self.failure)


    if __name__ == "__main__":
        DiesFlow()
    """
    path = laptop.write(source)
    definition = laptop.deploy(path)
    execution = interpret(laptop, definition, sdk_python, {}, "exec-dies")
    assert execution.status == "SUCCEEDED", execution.error
    assert "die.catch" in execution.visited
    run = Flow("DiesFlow")["sfn-exec-dies"]
    assert run.successful and run.data.seen
    laptop.run(path, "run")
    local = [r for r in Flow("DiesFlow").runs() if not r.id.startswith("sfn-")][0]
    # the same words for the same death
    assert _where_neutral(local.data.seen) == _where_neutral(run.data.seen)


@pytest.mark.timeout(600)
def test_resume_from_a_failed_production_run(laptop, sdk_python):
    source = SMALL.replace(
        "self.y = self.input * 10",
        (
            "if self.input == 1 and not os.path.exists('fixed'):\n"
            "            raise RuntimeError('broken in production')\n"
            "        self.y = self.input * 10"
        ),
    ).replace("from metaflowlike", "import os\nfrom metaflowlike")
    path = laptop.write(source)
    definition = laptop.deploy(path)
    execution = interpret(laptop, definition, sdk_python, {"n": "3"}, "exec-fails")
    assert execution.status == "FAILED"
    run = Flow("SmallFlow")["sfn-exec-fails"]
    assert not run.successful
    (laptop.folder / "fixed").write_text("")
    proc = laptop.run(path, "resume", "--origin-run-id", "sfn-exec-fails")
    resumed = Flow("SmallFlow").latest_run
    assert resumed.id != "sfn-exec-fails" and resumed.successful, proc.stdout + proc.stderr
    assert resumed["gather"].task.data.total == 30
    assert resumed.origin_pathspec == "SmallFlow/sfn-exec-fails"


def test_create_update_trigger_list_delete_through_moto(laptop):
    path = laptop.write(BIG)
    sfn, events, batch, s3 = (
        aws_client(s, laptop.moto_url) for s in ("stepfunctions", "events", "batch", "s3")
    )
    name = "demo.prod.BigFlow"
    exported = laptop.export(path, "--production")

    out = laptop.run(path, "--production", "step-functions", "create", "--max-workers", "4")
    assert f"Created state machine {name}" in out.stdout
    assert "Scheduled: cron(0 6 ? * 2-6 *)" in out.stdout
    arn = next(
        m["stateMachineArn"]
        for m in sfn.list_state_machines()["stateMachines"]
        if m["name"] == name
    )
    described = sfn.describe_state_machine(stateMachineArn=arn)
    deployed = json.loads(described["definition"])
    assert described["roleArn"] == SFN_ROLE
    assert deployed["States"].keys() == exported["States"].keys()
    assert deployed["States"]["fan.foreach"]["MaxConcurrency"] == 4
    rule = events.describe_rule(Name=name)
    assert rule["ScheduleExpression"] == "cron(0 6 ? * 2-6 *)"
    target = events.list_targets_by_rule(Rule=name)["Targets"][0]
    assert target["Arn"] == arn and target["RoleArn"] == EVENTS_ROLE
    assert json.loads(target["Input"]) == {"Parameters": {}}
    # the job definition the states name is registered, and the code package uploaded
    job_def = deployed["States"]["init"]["Next"]
    definition_name = deployed["States"]["start"]["Parameters"]["JobDefinition"]
    assert job_def == "start"
    assert batch.describe_job_definitions(jobDefinitionName=definition_name)["jobDefinitions"]
    url = deployed["States"]["start"]["Parameters"]["ContainerOverrides"]["Command"][3]
    bucket, key = url[len("s3://") :].split("/", 1)
    assert s3.head_object(Bucket=bucket, Key=key)

    again = laptop.run(path, "--production", "step-functions", "create")
    assert f"Updated state machine {name}" in again.stdout and "unchanged" in again.stdout

    started = laptop.run(
        path, "--production", "step-functions", "trigger", "--alpha", "3", "--cfg", '{"scale": 1}'
    )
    run_id = re.search(r"BigFlow/(sfn-\S+) on", started.stdout).group(1)
    execution = next(e for e in sfn.list_executions(stateMachineArn=arn)["executions"])
    assert f"sfn-{execution['name']}" == run_id
    given = json.loads(sfn.describe_execution(executionArn=execution["executionArn"])["input"])
    assert given == {"Parameters": {"alpha": "3", "cfg": '{"scale": 1}'}}
    listed = laptop.run(path, "--production", "step-functions", "list-runs")
    assert run_id in listed.stdout

    gone = laptop.run(path, "--production", "step-functions", "delete")
    assert f"Deleted state machine {name}" in gone.stdout
    assert not [m for m in sfn.list_state_machines()["stateMachines"] if m["name"] == name]
    with pytest.raises(events.exceptions.ResourceNotFoundException):
        events.describe_rule(Name=name)
    missing = laptop.run(path, "--production", "step-functions", "trigger", check=False)
    assert missing.returncode == 1 and "No state machine" in missing.stderr
    assert "Traceback" not in missing.stderr


def test_deploy_time_mistakes_are_one_paragraph(laptop):
    path = laptop.write(BIG)
    cases = [
        (["step-functions", "create", "--only-json", "--name", "x" * 81], "81 characters"),
        (["step-functions", "trigger", "--alpah", "1"], 'Did you mean "alpha"'),
        (["step-functions", "--name", "has space", "create", "--only-json"], "letters, digits"),
        (["step-functions", "trigger", "--count", "many"], 'parameter "count"'),
    ]
    for args, expected in cases:
        proc = laptop.run(path, *args, check=False)
        assert proc.returncode == 1 and expected in proc.stderr, proc.stderr
        assert "Traceback" not in proc.stderr
    zoned = laptop.write(
        BIG.replace('cron="0 6 * * 1-5"', 'cron="0 6 * * 1-5", timezone="Europe/Paris"'), "zoned.py"
    )
    proc = laptop.run(zoned, "step-functions", "create", "--only-json", check=False)
    assert "cannot honour a timezone" in proc.stderr
    kube = laptop.write(
        SMALL.replace(
            "    @step\n    def work", "    @kubernetes\n    @step\n    def work"
        ).replace("import FlowSpec,", "import FlowSpec, kubernetes,"),
        "kube.py",
    )
    proc = laptop.run(kube, "step-functions", "create", "--only-json", check=False)
    assert '@kubernetes on step "work"' in proc.stderr and "Traceback" not in proc.stderr
    local = subprocess.run(
        [
            sys.executable,
            str(path),
            "--datastore-root",
            str(laptop.folder / "ds"),
            "step-functions",
            "create",
            "--only-json",
        ],
        cwd=laptop.folder,
        env={**laptop.env(), "METAFLOWLIKE_DATASTORE_ROOT": ""},
        capture_output=True,
        text=True,
    )
    assert local.returncode == 1 and "local folder" in local.stderr
    # 100 kB on the command line, 300 kB as the JSON input (each é is \\u00e9 there)
    big = laptop.run(path, "step-functions", "trigger", "--phrase", "é" * 50_000, check=False)
    assert "262144 bytes" in big.stderr


def test_definition_size_limit(laptop, monkeypatch):
    from metaflowlike_aws import sfn_compiler

    path = laptop.write(SMALL)
    monkeypatch.setattr(sfn_compiler, "MAX_DEFINITION", 1000)
    import importlib.util

    from metaflowlike.cli import _State
    from metaflowlike.deployment.plan import build_plan

    spec = importlib.util.spec_from_file_location("small_flow", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    monkeypatch.setattr(sys, "argv", [str(path)])
    state = _State(module.SmallFlow, "s3", laptop.root, False)
    monkeypatch.setenv("METAFLOWLIKE_BATCH_JOB_QUEUE", "q")
    plan = build_plan(
        state, target="Step Functions", platform="batch", name="SmallFlow", refused={}
    )
    with pytest.raises(sfn_compiler.SfnCompileError, match="more than the 1000 bytes"):
        sfn_compiler.SfnCompiler(plan, user="ann").json()


def _normalized(definition: dict) -> dict:
    """The definition without what changes with the code and the machine."""
    text = json.dumps(definition, indent=2)
    text = re.sub(r"import base64,zlib;exec\([^\"]*\)\)\)", "<bootstrap>", text)
    text = re.sub(r"s3://[^/\"]+/root/code/[0-9a-f]{64}\.tar\.gz", "<code package>", text)
    text = re.sub(r"\"[0-9a-f]{64}\"", '"<sha256>"', text)
    text = re.sub(r"s3://mfl-[0-9a-f]+/root", "s3://<bucket>/root", text)
    text = re.sub(r"\"mfl-[0-9a-f]+\"", '"<bucket>"', text)
    text = re.sub(r"metaflowlike-[0-9a-f]{16}", "metaflowlike-<digest>", text)
    return json.loads(text)


def test_golden_definition(laptop):
    """The exported document stays stable and readable (UPDATE_GOLDEN=1 rewrites it)."""
    path = laptop.write(SMALL)
    got = _normalized(laptop.export(path))
    golden = GOLDEN / "sfn_small_flow.json"
    if os.environ.get("UPDATE_GOLDEN"):
        golden.parent.mkdir(exist_ok=True)
        golden.write_text(json.dumps(got, indent=2) + "\n")
    assert got == json.loads(golden.read_text())
