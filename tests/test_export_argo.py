"""``argo-workflows create | trigger | delete``, tested as a user runs them, and executed.

The documents are applied through the ``kubernetes`` client to kmock's API server (which
serves Argo's resources but runs nothing). Every document validates against Argo's
official JSON schema and every container against Kubernetes' own schemas (strict). Then
``tests/argo_interpreter.py`` plays the Argo controller: it reads the Workflow and its
template back from the API server and runs each pod's command in an empty folder, with
only the declared environment and a Python that has boto3 but not metaflowlike, against
S3 on moto. What such a run stores, read through the client, equals what a local ``run``
of the same flow stores.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import textwrap
from dataclasses import dataclass
from pathlib import Path

import jsonschema
import kubernetes_validate
import pytest
import yaml

from metaflowlike import Flow
from tests.argo_interpreter import Interpreter, WorkflowRun
from tests.laptop import LAPTOP_KEY, LAPTOP_SECRET, Laptop
from tests.remote_env import KubeCluster, node_identity

HERE = Path(__file__).resolve().parent
SCHEMA = json.loads((HERE / "schemas" / "argo-workflows.schema.json").read_text())
GOLDEN = HERE / "golden" / "argo"
K8S_VERSION = kubernetes_validate.latest_version()
ARGO = "/apis/argoproj.io/v1alpha1/namespaces/default"


def validate_document(doc: dict) -> None:
    """Argo's schema for the document's kind, our own reference checks, and every
    container as a strict Kubernetes Pod."""
    ref = {"$ref": f"#/definitions/io.argoproj.workflow.v1alpha1.{doc['kind']}"}
    schema = {**ref, "definitions": SCHEMA["definitions"]}
    jsonschema.Draft202012Validator(schema).validate(doc)
    spec = doc["spec"]
    if doc["kind"] == "CronWorkflow":
        return
    names = {t["name"] for t in spec["templates"]}
    assert spec["entrypoint"] in names
    for tpl in spec["templates"]:
        for task in tpl.get("dag", {}).get("tasks", []):
            assert task["template"] in names, task
        if "container" in tpl:
            pod = {
                "apiVersion": "v1",
                "kind": "Pod",
                "metadata": {"name": tpl["name"]},
                "spec": {
                    "restartPolicy": "Never",
                    "containers": [tpl["container"]],
                    "volumes": tpl.get("volumes", []),
                },
            }
            kubernetes_validate.validate(pod, K8S_VERSION, strict=True)


@dataclass
class ArgoStandIn(Laptop):
    cluster: KubeCluster
    sdk_python: Path
    s3_url: str
    log_dir: Path

    HEADER = """
import os
from metaflowlike import (
    FlowSpec, JSONType, Parameter, catch, current, environment, kubernetes, resources,
    retry, schedule, step, timeout,
)
"""

    def settings(self) -> dict[str, str]:
        return {"KUBECONFIG": str(self.cluster.kubeconfig)}

    def get(self, plural: str, name: str) -> dict | None:
        return self.cluster.api.call("GET", f"{ARGO}/{plural}/{name}")

    def trigger(self, *args: str, name: str = "flow.py") -> str:
        """Start a Workflow; its name."""
        id_file = self.folder / "run-id"
        self.run(None, "argo-workflows", "trigger", "--run-id-file", str(id_file), *args, name=name)
        return id_file.read_text().removeprefix("argo-")

    def execute(self, workflow_name: str, secrets: dict | None = None) -> WorkflowRun:
        """Play the Argo controller for the Workflow ``workflow_name``."""
        workflow = self.get("workflows", workflow_name)
        assert workflow is not None
        template_name = workflow["spec"]["workflowTemplateRef"]["name"]
        template = self.get("workflowtemplates", template_name)
        node_env = {**node_identity(self.s3_url), "METAFLOWLIKE_LOG_UPLOAD_INTERVAL": "0.5"}
        interpreter = Interpreter(
            python=self.sdk_python, log_dir=self.log_dir, node_env=node_env, secrets=secrets
        )
        result = interpreter.run(workflow, {template_name: template})
        self.interpreter = interpreter
        return result

    def pod_logs(self, result: WorkflowRun) -> str:
        return "\n".join(f"--- {p.node}\n{self.interpreter.log(p)}" for p in result.pods)


@pytest.fixture
def argo(kube_cluster, s3_project, s3_root, sdk_python, moto_server, tmp_path):
    pods = tmp_path / "pods"
    return ArgoStandIn(s3_project, s3_root, kube_cluster, sdk_python, moto_server.url, pods)


def snapshot(run) -> dict[str, list[str]]:
    """Every task's artifacts, by step, comparable across runs (values as repr, caught
    exceptions as their type and message, tracebacks without folders)."""
    out: dict[str, list[str]] = {}
    for step in run:
        rows = []
        for task in step:
            values = {}
            for art in task:
                value = art.data
                if isinstance(value, BaseException) or type(value).__name__ == "CaughtException":
                    value = f"{type(value).__name__}: {value}"
                # a traceback names the folder the task ran in: keep the file name only
                values[art.id] = re.sub(r'File \\*"[^"]*/', 'File "', repr(value))
            rows.append(json.dumps(values, sort_keys=True))
        out[step.id] = sorted(rows)
    return out


def deployed_documents(argo: ArgoStandIn, name: str) -> list[dict]:
    docs = [argo.get("workflowtemplates", name)]
    cron = argo.get("cronworkflows", name)
    return docs + ([cron] if cron else [])


# --- flows ---------------------------------------------------------------------------

BRANCHES = """
class BranchFlow(FlowSpec):
    alpha = Parameter("alpha", default=0.5, type=float)
    count = Parameter("count", default=3, type=int)
    label = Parameter("label", default="plain")
    flag = Parameter("flag", default=False, type=bool)
    config = Parameter("config", default={"layers": [1, 2]}, type=JSONType)

    @step
    def start(self):
        self.base = self.alpha * self.count
        self.next(self.flaky, self.doomed, self.crashes, self.steady)

    @retry(times=2, minutes_between_retries=0)
    @step
    def flaky(self):
        if current.retry_count == 0:
            raise RuntimeError("the first attempt fails")
        self.attempts = current.retry_count + 1
        self.next(self.join)

    @catch(var="problem")
    @step
    def doomed(self):
        self.before = "set before the failure"
        raise ValueError("always fails")
        self.next(self.join)

    @catch(var="crash")
    @step
    def crashes(self):
        os._exit(3)  # dies without an exception: one more attempt records it for @catch
        self.next(self.join)

    @environment(vars={"GREETING": "hello from @environment"})
    @resources(cpu=0.5, memory=300)
    @timeout(seconds=120)
    @step
    def steady(self):
        self.greeting = os.environ["GREETING"]
        self.settings = (self.label, self.flag, self.config["layers"])
        self.next(self.join)

    @step
    def join(self, inputs):
        self.merge_artifacts(inputs, include=["base"])
        self.attempts = inputs.flaky.attempts
        self.problem = str(inputs.doomed.problem)
        self.crash = str(inputs.crashes.crash)
        self.greeting = inputs.steady.greeting
        self.settings = inputs.steady.settings
        self.next(self.end)

    @step
    def end(self):
        self.summary = f"{self.base} {self.attempts} {self.settings}"
        print("summary:", self.summary)

if __name__ == "__main__":
    BranchFlow()
"""


def test_static_branch_typed_parameters_retry_and_catch_run_as_locally(argo):
    created = argo.run(BRANCHES, "argo-workflows", "create")
    assert "WorkflowTemplate default/branchflow created." in created.stdout
    docs = deployed_documents(argo, "branchflow")
    assert [d["kind"] for d in docs] == ["WorkflowTemplate"]  # no @schedule: no cron
    for doc in docs:
        validate_document(doc)
        text = json.dumps(doc)
        assert LAPTOP_KEY not in text and LAPTOP_SECRET not in text
    args = ["--alpha", "0.25", "--config", '{"layers": [4, 8, 16]}', "--flag", "true"]
    name = argo.trigger(*args)
    result = argo.execute(name)
    assert result.phase == "Succeeded", result.message + argo.pod_logs(result)
    flaky = result.pods_of("step-flaky")
    assert [p.attempt for p in flaky] == [0, 1] and flaky[0].exit_code != 0

    run = Flow("BranchFlow")[f"argo-{name}"]
    assert run.successful and run.finished
    assert run.data.summary == "0.75 2 ('plain', True, [4, 8, 16])"
    assert "always fails" in run.data.problem
    assert "the task process died" in run.data.crash, run.data.crash
    crashes = result.pods_of("step-crashes")
    assert [(p.attempt, p.exit_code) for p in crashes] == [(0, 3), (1, 0)]
    where = json.loads(run["steady"].task.metadata_dict["runs_on"])
    assert where["platform"] == "argo-workflows" and where["workflow"] == name
    assert "summary: 0.75" in run["end"].task.stdout  # logs saved by the task itself

    argo.run(None, "run", *args)
    local = Flow("BranchFlow").latest_run
    assert local.id != run.id and local.successful
    assert snapshot(run) == snapshot(local)


NESTED = """
class NestedFlow(FlowSpec):
    scale = Parameter("scale", default=10, type=int)

    @step
    def start(self):
        self.rows = ["a", "b"]
        self.next(self.row, foreach="rows")

    @step
    def row(self):
        self.row_name = self.input
        self.cols = [1, 2, 3] if self.input == "a" else [4, 5]
        self.next(self.cell, foreach="cols")

    @step
    def cell(self):
        self.value = f"{self.row_name}{self.input * self.scale}"
        self.next(self.join_cols)

    @step
    def join_cols(self, inputs):
        self.values = [i.value for i in inputs]
        self.next(self.join_rows)

    @step
    def join_rows(self, inputs):
        self.table = [i.values for i in inputs]
        self.next(self.end)

    @step
    def end(self):
        print("table:", self.table)

if __name__ == "__main__":
    NestedFlow()
"""


def test_nested_foreach_fans_out_with_param_and_runs_as_locally(argo):
    argo.run(NESTED, "argo-workflows", "create")
    (doc,) = deployed_documents(argo, "nestedflow")
    validate_document(doc)
    dags = {t["name"] for t in doc["spec"]["templates"] if "dag" in t}
    assert dags == {"main", "foreach-start", "foreach-row"}
    name = argo.trigger()
    result = argo.execute(name)
    assert result.phase == "Succeeded", result.message + argo.pod_logs(result)
    assert len(result.pods_of("step-cell")) == 5

    run = Flow("NestedFlow")[f"argo-{name}"]
    assert run.data.table == [["a10", "a20", "a30"], ["b40", "b50"]]
    cells = sorted(t.id for t in run["cell"])
    assert cells == ["t-0-0", "t-0-1", "t-0-2", "t-1-0", "t-1-1"]
    argo.run(None, "run")
    assert snapshot(run) == snapshot(Flow("NestedFlow").latest_run)


SCHEDULED = """
from metaflowlike import project

@schedule(cron="30 6 * * 1-5", timezone="Europe/Paris")
@project(name="fraud_model")
class ScheduledFlow(FlowSpec):
    threshold = Parameter("threshold", default=0.9, type=float)

    @kubernetes(image="registry.example/ml:1.2", secrets=["db-password"], memory=2048, cpu=2)
    @step
    def start(self):
        self.password = os.environ.get("DB_PASSWORD")
        self.next(self.end)

    @step
    def end(self):
        pass

if __name__ == "__main__":
    ScheduledFlow()
"""


def test_schedule_and_project_give_a_cron_workflow_under_the_branch_name(argo):
    out = argo.run(SCHEDULED, "--branch", "nightly", "argo-workflows", "create").stdout
    name = "fraud-model.test.nightly.scheduledflow"
    assert f"WorkflowTemplate default/{name} created." in out
    assert f"CronWorkflow default/{name} created." in out
    template, cron = deployed_documents(argo, name)
    for doc in (template, cron):
        validate_document(doc)
    assert cron["spec"]["schedules"] == ["30 6 * * 1-5"]
    assert cron["spec"]["timezone"] == "Europe/Paris"
    assert cron["spec"]["workflowSpec"] == {"workflowTemplateRef": {"name": name}}
    start = next(t for t in template["spec"]["templates"] if t["name"] == "step-start")
    assert start["container"]["image"] == "registry.example/ml:1.2"
    assert start["container"]["envFrom"] == [{"secretRef": {"name": "db-password"}}]
    # what the same step would ask for as a Kubernetes Job (@kubernetes' own disk default)
    requests = {"cpu": "2", "memory": "2048M", "ephemeral-storage": "10240M"}
    assert start["container"]["resources"]["requests"] == requests

    # what the CronWorkflow starts: a Workflow of the template with its defaults
    scheduled = {
        "apiVersion": "argoproj.io/v1alpha1",
        "kind": "Workflow",
        "metadata": {"name": f"{name}-1733000000"},
        "spec": cron["spec"]["workflowSpec"],
    }
    argo.cluster.api.call("POST", f"{ARGO}/workflows", scheduled)
    result = argo.execute(scheduled["metadata"]["name"], {"db-password": {"DB_PASSWORD": "s3cret"}})
    assert result.phase == "Succeeded", result.message + argo.pod_logs(result)
    run = Flow("ScheduledFlow")[f"argo-{scheduled['metadata']['name']}"]
    assert run.data.password == "s3cret" and run.data.threshold == 0.9
    assert "project_branch:test.nightly" in run.tags

    # without @schedule a new create removes the CronWorkflow; delete removes the rest
    argo.run(SCHEDULED.replace('@schedule(cron="30 6 * * 1-5", timezone="Europe/Paris")', ""),
              "--branch", "nightly", "argo-workflows", "create")  # fmt: skip
    assert argo.get("cronworkflows", name) is None
    gone = argo.run(None, "--branch", "nightly", "argo-workflows", "delete").stdout
    assert f"WorkflowTemplate default/{name} deleted." in gone
    assert argo.get("workflowtemplates", name) is None
    again = argo.run(None, "--branch", "nightly", "argo-workflows", "trigger", check=False)
    assert again.returncode == 1 and "argo-workflows create first" in again.stderr
    assert "Traceback" not in again.stderr


SWITCH = """
class SwitchFlow(FlowSpec):
    @step
    def start(self):
        self.mode = "fast"
        self.next({"fast": self.fast, "slow": self.slow}, condition="mode")

    @step
    def fast(self):
        self.next(self.end)

    @step
    def slow(self):
        self.next(self.end)

    @step
    def end(self):
        pass

if __name__ == "__main__":
    SwitchFlow()
"""


def test_deploy_time_mistakes_are_one_paragraph_each(argo):
    long_name = argo.run(BRANCHES, "argo-workflows", "create", "--name", "x" * 70, check=False)
    assert long_name.returncode == 1 and "DNS-1123" in long_name.stderr
    bad_name = argo.run(None, "argo-workflows", "create", "--name", "Has Spaces", check=False)
    assert bad_name.returncode == 1 and "--name NAME" in bad_name.stderr
    # a value must fit in one environment variable of the start task (128 KiB)
    big = argo.run(None, "argo-workflows", "trigger", "--label", "x" * 131_000, check=False)
    assert big.returncode == 1 and "bytes" in big.stderr and "label" in big.stderr
    big_default = argo.run(
        BRANCHES.replace('default="plain"', 'default="x" * 140_000'),
        "argo-workflows",
        "create",
        check=False,
        name="bigflow.py",
    )
    assert big_default.returncode == 1 and "label" in big_default.stderr
    typo = argo.run(None, "argo-workflows", "trigger", "--alpah", "1", check=False)
    assert typo.returncode == 1 and "--alpha" in typo.stderr
    wrong_type = argo.run(None, "argo-workflows", "trigger", "--count", "many", check=False)
    assert wrong_type.returncode == 1 and '"count"' in wrong_type.stderr
    batch = argo.run(
        BRANCHES.replace("@retry(times=2", "@batch\n    @retry(times=2").replace(
            "class BranchFlow", "from metaflowlike import batch\n\nclass BranchFlow"
        ),
        "argo-workflows",
        "create",
        check=False,
        name="batchflow.py",
    )
    assert batch.returncode == 1 and '@batch on step "flaky"' in batch.stderr
    local = subprocess.run(
        [sys.executable, str(argo.folder / "flow.py"), "--datastore", "local",
         "argo-workflows", "create", "--only-yaml"],
        cwd=argo.folder, env=argo.env(), capture_output=True, text=True,
    )  # fmt: skip
    assert local.returncode == 1 and "s3://BUCKET" in local.stderr
    switch = argo.run(SWITCH, "argo-workflows", "create", check=False, name="switchflow.py")
    assert switch.returncode == 1 and 'switches yet (step "start"' in switch.stderr
    problems = (long_name, bad_name, big, big_default, typo, wrong_type, batch, local, switch)
    for proc in problems:
        assert "Traceback" not in proc.stderr
        assert len(proc.stderr.strip().splitlines()) == 1, proc.stderr


# --- golden files ----------------------------------------------------------------------


def _normalized_yaml(text: str) -> str:
    """The generated YAML without what changes with every code change: the bootstrap's
    source and the code package's content hash."""
    docs = list(yaml.safe_load_all(text))
    for doc in docs:
        for tpl in doc["spec"].get("templates", []):
            command = tpl.get("container", {}).get("command")
            if command:
                command[2] = "<metaflowlike/bootstrap.py>"
                command[3] = re.sub(r"[0-9a-f]{64}", "<sha256>", command[3])
                command[4] = "<sha256>"
    return yaml.safe_dump_all(docs, sort_keys=False, width=100)


@pytest.mark.parametrize(
    "source,filename",
    [(BRANCHES, "branchflow.yaml"), (NESTED, "nestedflow.yaml"), (SCHEDULED, "scheduledflow.yaml")],
)
def test_generated_documents_match_the_golden_files(tmp_path, source, filename):
    flow = tmp_path / "flow.py"
    flow.write_text(textwrap.dedent(ArgoStandIn.HEADER) + textwrap.dedent(source))
    env = {k: v for k, v in os.environ.items() if not k.startswith("METAFLOWLIKE_")}
    env.update({"METAFLOWLIKE_CONFIG": str(tmp_path / "none.json"), "METAFLOWLIKE_USER": "golden"})
    args = ["--datastore-root", "s3://example-bucket/metaflowlike", "argo-workflows", "create"]
    proc = subprocess.run(
        [sys.executable, str(flow), *args, "--only-yaml"],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    for doc in yaml.safe_load_all(proc.stdout):
        validate_document(doc)
    got = _normalized_yaml(proc.stdout)
    golden = GOLDEN / filename
    if os.environ.get("METAFLOWLIKE_UPDATE_GOLDEN") == "1":
        golden.parent.mkdir(parents=True, exist_ok=True)
        golden.write_text(got)
    assert got == golden.read_text(), f"regenerate with METAFLOWLIKE_UPDATE_GOLDEN=1: {golden}"
    as_json = subprocess.run(
        [sys.executable, str(flow), *args, "--only-json"],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    loaded = json.loads(as_json.stdout)
    assert (loaded if isinstance(loaded, list) else [loaded]) == list(
        yaml.safe_load_all(proc.stdout)
    )


RESUMABLE = """
class FixLaterFlow(FlowSpec):
    @step
    def start(self):
        self.items = [1, 2, 3]
        self.next(self.work, foreach="items")

    @step
    def work(self):
        if self.input == 2:
            raise RuntimeError("a bug in production")
        self.out = self.input * 100
        self.pid = os.getpid()
        self.next(self.join)

    @step
    def join(self, inputs):
        self.outs = [i.out for i in inputs]
        self.next(self.end)

    @step
    def end(self):
        pass

if __name__ == "__main__":
    FixLaterFlow()
"""


def test_resume_on_the_laptop_from_a_failed_production_run(argo):
    argo.run(RESUMABLE, "argo-workflows", "create")
    name = argo.trigger()
    result = argo.execute(name)
    assert result.phase == "Failed" and "work" in result.message
    failed = Flow("FixLaterFlow")[f"argo-{name}"]
    assert not failed.successful
    assert sorted(t.data.out for t in failed["work"] if t.successful) == [100, 300]

    fixed = RESUMABLE.replace('raise RuntimeError("a bug in production")', "pass")
    out = argo.run(fixed, "resume", "--origin-run-id", f"argo-{name}").stdout
    resumed = Flow("FixLaterFlow").latest_run
    assert resumed.successful and resumed.data.outs == [100, 200, 300], out
    before = {t.data.out: t.data.pid for t in failed["work"] if t.successful}
    after = {t.data.out: t.data.pid for t in resumed["work"]}
    # the two tasks that succeeded in production are reused as they are, not rerun
    assert after[100] == before[100] and after[300] == before[300]
    assert after[200] not in before.values()
