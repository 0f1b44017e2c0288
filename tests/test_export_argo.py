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

from metaflowlike import Flow, client
from tests.argo_interpreter import Interpreter, WorkflowRun
from tests.cloud_servers import AWS_KEY_ID, AWS_SECRET
from tests.remote_env import KubeCluster

HERE = Path(__file__).resolve().parent
SCHEMA = json.loads((HERE / "schemas" / "argo-workflows.schema.json").read_text())
GOLDEN = HERE / "golden" / "argo"
K8S_VERSION = kubernetes_validate.latest_version()
LAPTOP_KEY = "AKIALAPTOPONLY000002"
LAPTOP_SECRET = "laptop-only-secret-never-in-argo-0123"
ARGO = "/apis/argoproj.io/v1alpha1/namespaces/default"

HEADER = """
import os
from metaflowlike import (
    FlowSpec, JSONType, Parameter, catch, current, environment, kubernetes, resources,
    retry, schedule, step, timeout,
)
"""


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
class ArgoStandIn:
    cluster: KubeCluster
    root: str
    folder: Path
    sdk_python: Path
    s3_url: str
    log_dir: Path

    def flow(self, source: str | None, *args: str, check: bool = True, name: str = "flow.py"):
        path = self.folder / name
        if source is not None:
            path.write_text(textwrap.dedent(HEADER) + textwrap.dedent(source))
        proc = subprocess.run(
            [sys.executable, str(path), *args],
            cwd=self.folder,
            env=self.env(),
            capture_output=True,
            text=True,
            timeout=300,
        )
        if check and proc.returncode != 0:
            raise AssertionError(f"exit {proc.returncode}\n{proc.stdout}\n{proc.stderr}")
        return proc

    def env(self) -> dict[str, str]:
        env = dict(os.environ)
        env.pop("METAFLOWLIKE_DATASTORE", None)
        env.update(
            {
                "AWS_ACCESS_KEY_ID": LAPTOP_KEY,
                "AWS_SECRET_ACCESS_KEY": LAPTOP_SECRET,
                "KUBECONFIG": str(self.cluster.kubeconfig),
                "METAFLOWLIKE_DATASTORE_ROOT": self.root,
                "METAFLOWLIKE_CONFIG": str(self.folder / "no-config.json"),
            }
        )
        return env

    def get(self, plural: str, name: str) -> dict | None:
        return self.cluster.api.call("GET", f"{ARGO}/{plural}/{name}")

    def trigger(self, *args: str, name: str = "flow.py") -> str:
        """Start a Workflow; its name."""
        id_file = self.folder / "run-id"
        self.flow(None, "argo-workflows", "trigger", "--run-id-file", str(id_file), *args, name=name)
        return id_file.read_text().removeprefix("argo-")

    def execute(self, workflow_name: str, secrets: dict | None = None) -> WorkflowRun:
        """Play the Argo controller for the Workflow ``workflow_name``."""
        workflow = self.get("workflows", workflow_name)
        assert workflow is not None
        template_name = workflow["spec"]["workflowTemplateRef"]["name"]
        template = self.get("workflowtemplates", template_name)
        node_env = {
            "AWS_ENDPOINT_URL": self.s3_url,
            "AWS_ACCESS_KEY_ID": AWS_KEY_ID,
            "AWS_SECRET_ACCESS_KEY": AWS_SECRET,
            "AWS_DEFAULT_REGION": "us-east-1",
            "AWS_EC2_METADATA_DISABLED": "true",
            "METAFLOWLIKE_LOG_UPLOAD_INTERVAL": "0.5",
        }
        interpreter = Interpreter(
            python=self.sdk_python, log_dir=self.log_dir, node_env=node_env, secrets=secrets
        )
        result = interpreter.run(workflow, {template_name: template})
        self.interpreter = interpreter
        return result

    def pod_logs(self, result: WorkflowRun) -> str:
        return "\n".join(f"--- {p.node}\n{self.interpreter.log(p)}" for p in result.pods)


@pytest.fixture
def argo(kube_cluster, s3_root, sdk_python, moto_server, tmp_path):
    client.set_datastore("s3", s3_root)
    client.namespace(None)
    folder = tmp_path / "project"
    folder.mkdir()
    yield ArgoStandIn(kube_cluster, s3_root, folder, sdk_python, moto_server.url, tmp_path / "pods")
    client.set_datastore(None, None)
    client.default_namespace()


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
        self.next(self.flaky, self.doomed, self.steady)

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
    created = argo.flow(BRANCHES, "argo-workflows", "create")
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
    where = json.loads(run["steady"].task.metadata_dict["runs_on"])
    assert where["platform"] == "argo-workflows" and where["workflow"] == name
    assert "summary: 0.75" in run["end"].task.stdout  # logs saved by the task itself

    argo.flow(None, "run", *args)
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
    argo.flow(NESTED, "argo-workflows", "create")
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
    argo.flow(None, "run")
    assert snapshot(run) == snapshot(Flow("NestedFlow").latest_run)
