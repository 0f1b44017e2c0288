"""The deployment core shared by the Step Functions and Argo exporters: @schedule's two
cron dialects, deployment names, parameters as workflow inputs, the neutral plan, and the
``deployed-step`` entry a production container runs (executed here by hand, task by
task, in empty folders with a Python that has boto3 but not metaflowlike, against S3 on
moto; the run then reads through the client like a local run of the same flow)."""

from __future__ import annotations

import importlib.util
import json
import sys
import textwrap

import pytest

from metaflowlike import Flow, client
from metaflowlike.deployment import entry
from metaflowlike.deployment.inputs import (
    DeploymentInputError,
    check_input_size,
    parameter_inputs,
    parse_overrides,
    start_values,
)
from metaflowlike.deployment.naming import (
    DeploymentNameError,
    check_kubernetes_name,
    check_sfn_name,
    deployment_name,
)
from metaflowlike.deployment.plan import DeploymentError, build_plan
from metaflowlike.deployment.schedule import ScheduleError, parse_cron, schedule
from metaflowlike.exceptions import InvalidParameter
from tests.deployed_tasks import run_container

FLOW = """
from metaflowlike import FlowSpec, JSONType, Parameter, project, schedule, step


@schedule(cron="0 6 * * 1-5")
@project(name="demo")
class DeployMe(FlowSpec):
    alpha = Parameter("alpha", default=0.5)
    cfg = Parameter("cfg", default={"k": [1, 2]}, type=JSONType)
    flag = Parameter("flag", default=False)

    @step
    def start(self):
        self.xs = [1, 2, 3]
        self.next(self.work, foreach="xs")

    @step
    def work(self):
        self.y = self.input * self.alpha
        self.next(self.gather)

    @step
    def gather(self, inputs):
        self.ys = sorted(i.y for i in inputs)
        self.next(self.end)

    @step
    def end(self):
        self.summary = {"ys": self.ys, "cfg": self.cfg, "flag": self.flag}


if __name__ == "__main__":
    DeployMe()
"""


# --- @schedule ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "given, kube, aws",
    [
        ("0 6 * * 1-5", "0 6 * * 1-5", "cron(0 6 ? * 2-6 *)"),
        ("0 6 ? * MON-FRI *", "0 6 * * MON-FRI", "cron(0 6 ? * MON-FRI *)"),
        ("30 2 1 * ? *", "30 2 1 * *", "cron(30 2 1 * ? *)"),
        ("*/15 * * * *", "*/15 * * * *", "cron(*/15 * * * ? *)"),
        ("0 0 * * 0", "0 0 * * 0", "cron(0 0 ? * 1 *)"),
    ],
)
def test_cron_dialects(given, kube, aws):
    s = parse_cron(given)
    assert s.kubernetes_cron() == kube
    assert s.eventbridge_cron() == aws


def test_schedule_presets_and_mistakes():
    class A:
        pass

    for kw, kube in [
        ({"hourly": True}, "0 * * * *"),
        ({}, "0 0 * * *"),
        ({"weekly": True}, "0 0 * * 0"),
    ]:
        assert schedule(**kw)(A)._metaflowlike_schedule.kubernetes_cron() == kube
    assert schedule(weekly=True)(A)._metaflowlike_schedule.eventbridge_cron() == "cron(0 0 ? * 1 *)"
    with pytest.raises(ScheduleError, match="not a cron expression"):
        parse_cron("every day")
    with pytest.raises(ScheduleError, match="one of them"):
        parse_cron("0 0 1 * 1").eventbridge_cron()
    with pytest.raises(ScheduleError, match="Kubernetes"):
        parse_cron("0 0 L * ? *").kubernetes_cron()
    assert parse_cron("0 0 L * ? *").eventbridge_cron() == "cron(0 0 L * ? *)"


# --- names ----------------------------------------------------------------------------


def test_names():
    info = {"project_flow_name": "demo.user.ann.DeployMe"}
    assert deployment_name("DeployMe", None, None) == "DeployMe"
    assert deployment_name("DeployMe", info, None) == "demo.user.ann.DeployMe"
    assert deployment_name("DeployMe", info, "given") == "given"
    assert check_sfn_name("demo.prod.DeployMe") == "demo.prod.DeployMe"
    with pytest.raises(DeploymentNameError, match="81 characters"):
        check_sfn_name("x" * 81)
    with pytest.raises(DeploymentNameError, match="letters, digits"):
        check_sfn_name("has space")
    assert check_kubernetes_name("demo.user.ann.Deploy_Me") == "demo.user.ann.deploy-me"
    with pytest.raises(DeploymentNameError, match="DNS-1123"):
        check_kubernetes_name("a" * 64)


# --- parameters -----------------------------------------------------------------------


def _load(tmp_path, source=FLOW):
    path = tmp_path / "deploy_me.py"
    path.write_text(textwrap.dedent(source))
    spec = importlib.util.spec_from_file_location("deploy_me", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return path, module.DeployMe


def test_parameters_as_inputs(tmp_path):
    _, cls = _load(tmp_path)
    inputs = {p.name: p for p in parameter_inputs(cls)}
    assert inputs["alpha"].default == "0.5" and inputs["alpha"].type_name == "float"
    assert json.loads(inputs["cfg"].default) == {"k": [1, 2]}
    assert inputs["flag"].default == "false"
    assert parse_overrides(cls, ["--alpha", "2", "--cfg={}"]) == {"alpha": "2", "cfg": "{}"}
    with pytest.raises(DeploymentInputError, match='Did you mean "alpha"'):
        parse_overrides(cls, ["--alpah", "2"])
    with pytest.raises(InvalidParameter, match='"alpha"'):
        parse_overrides(cls, ["--alpha", "x"])
    values = start_values(cls, {"alpha": "2", "flag": "yes"})
    assert values == {"alpha": 2.0, "cfg": {"k": [1, 2]}, "flag": True}
    with pytest.raises(DeploymentInputError, match="262144 bytes"):
        check_input_size("x" * 300_000, 262144, "Step Functions")


# --- the plan and the deployed-step entry ----------------------------------------------


def _state(path, cls, root, monkeypatch, branch=None):
    from metaflowlike.cli import _State

    monkeypatch.setattr(sys, "argv", [str(path)])
    kind = "s3" if root.startswith("s3://") else None
    state = _State(cls, kind, root, False)
    state.branch = branch
    return state


def test_plan_refuses_the_local_datastore(tmp_path, monkeypatch):
    path, cls = _load(tmp_path)
    state = _state(path, cls, str(tmp_path / "ds"), monkeypatch)
    with pytest.raises(DeploymentError, match="local folder"):
        build_plan(state, target="Step Functions", platform="batch", name="x", refused={})


def test_plan_refuses_what_no_deployment_honours(tmp_path, monkeypatch, s3_root):
    source = FLOW.replace('foreach="xs"', "num_parallel=2")
    source = source.replace("    @step\n    def work", "    @parallel\n    @step\n    def work")
    source = source.replace("self.input * self.alpha", "self.alpha")
    source = source.replace("import FlowSpec,", "import FlowSpec, parallel,")
    path, cls = _load(tmp_path, source)
    state = _state(path, cls, s3_root, monkeypatch)
    with pytest.raises(DeploymentError, match='@parallel on step "work": a gang') as e:
        build_plan(state, target="Step Functions", platform="batch", name="x", refused={"end": ""})
    assert "@kubernetes" not in str(e.value)


THIRD_PARTY = """
from metaflowlike import StepDecorator, make_decorator


class Gpu(StepDecorator):
    name = "gpu_box"
    defaults = {"n": 1}

    def task_env(self, *, step_name):
        return {"GPU_BOX": str(self.attributes["n"])}

    def resources(self):
        return {"gpu": float(self.attributes["n"]), "disk": 500.0}


class Lab(StepDecorator):
    name = "lab_only"
    deploy_refusal = "it reads the lab's file server"


class Slurm(StepDecorator):
    name = "slurm"

    def launcher_name(self):
        return "slurm"


gpu_box, lab_only, slurm = make_decorator(Gpu), make_decorator(Lab), make_decorator(Slurm)
"""


def test_plan_reads_what_a_third_party_decorator_declares(tmp_path, monkeypatch, s3_root):
    """A decorator the core has never heard of takes part by its hooks and declarations:
    its variables and requests reach the plan, and its deploy refusal or foreign
    launcher refuses the flow, with the target's words for a launcher it knows."""
    source = FLOW.replace("@schedule(", THIRD_PARTY + "\n\n@schedule(")
    asks = source.replace("    @step\n    def work", "    @gpu_box(n=2)\n    @step\n    def work")
    path, cls = _load(tmp_path, asks)
    state = _state(path, cls, s3_root, monkeypatch)
    work = build_plan(state, target="test", platform="batch", name="x", refused={}).steps["work"]
    assert work.env == {"GPU_BOX": "2"}
    assert work.resources == {"cpu": 1.0, "memory": 4096.0, "gpu": 2.0, "disk": 500.0}

    refuses = source.replace(
        "    @step\n    def work", "    @lab_only\n    @step\n    def work"
    ).replace("    @step\n    def gather", "    @slurm\n    @step\n    def gather")
    path, cls = _load(tmp_path, refuses)
    state = _state(path, cls, s3_root, monkeypatch)
    with pytest.raises(DeploymentError) as e:
        build_plan(state, target="Argo Workflows", platform="kubernetes", name="x", refused={})
    assert '@lab_only on step "work": it reads the lab\'s file server' in str(e.value)
    assert '@slurm on step "gather": the step runs with the "slurm" launcher' in str(e.value)
    with pytest.raises(DeploymentError, match='@slurm on step "gather": no slurm here'):
        build_plan(state, target="t", platform="k", name="x", refused={"slurm": "no slurm here"})


def test_deployed_tasks_by_hand_equal_a_local_run(
    tmp_path, monkeypatch, s3_root, sdk_python, moto_server, make_flow
):
    """Each container command of the plan, run with the ids an orchestrator would give
    it, in dependency order: the run reads like a local run of the same flow."""
    path, cls = _load(tmp_path)
    state = _state(path, cls, s3_root, monkeypatch, branch="feature")
    plan = build_plan(state, target="test", platform="batch", name="x", refused={})
    from metaflowlike.deployment.plan import upload_package

    upload_package(state, plan)
    assert plan.name == "x" and plan.project["branch_name"] == "test.feature"
    kinds = {s.name: (s.kind, s.foreach_depth) for s in plan.steps.values()}
    assert kinds == {
        "start": ("foreach", 0),
        "work": ("linear", 1),
        "gather": ("join", 0),
        "end": ("end", 0),
    }
    run_id = "sfn-exec-1"
    user = {"METAFLOWLIKE_USER": "ann"}

    def task(step, task_id, inputs, **extra):
        env = {
            entry.ENV_RUN_ID: run_id,
            entry.ENV_TASK_ID: task_id,
            entry.ENV_INPUT_PATHS: json.dumps(inputs),
            **user,
            **extra,
        }
        proc = run_container(sdk_python, plan.command(step), env, moto_server.url)
        assert proc.returncode == 0, proc.stdout + proc.stderr
        return proc

    out = tmp_path / "start.out"
    task(
        "start",
        "1",
        [],
        **{
            entry.ENV_PARAMS: json.dumps({"alpha": "2", "flag": "true"}),
            entry.ENV_OUTPUT_TO_DATASTORE: "1",
            entry.ENV_OUTPUT_FILE: str(out),
        },
    )
    said = json.loads(out.read_text())
    assert said["splits"] == [0, 1, 2] and said["task"] == "start/1"
    stored = state.fds.storage.get_bytes(entry.output_path("DeployMe", run_id, "start", "1"))
    assert json.loads(stored) == said
    for i in said["splits"]:
        task("work", f"1-{i}", ["start/1"], **{entry.ENV_SPLIT_INDEX: str(i)})
    task("gather", "1", [[f"work/1-{i}"] for i in said["splits"]])
    task("end", "1", ["gather/1"])

    client.set_datastore("s3", s3_root)
    client.namespace(None)
    try:
        run = Flow("DeployMe")[run_id]
        assert run.successful
        assert run.data.summary == {"ys": [2.0, 4.0, 6.0], "cfg": {"k": [1, 2]}, "flag": True}
        assert "project_branch:test.feature" in run.tags
        assert run["work"].task.stdout is not None
        local = make_flow(FLOW)
        local.run("--branch", "feature", "run", "--alpha", "2", "--flag", "true")
        client.set_datastore(None, str(local.root))
        assert Flow("DeployMe").latest_run.data.summary == run.data.summary
    finally:
        client.set_datastore(None, None)
        client.default_namespace()


def test_schedule_is_importable_and_help_lists_plugin_commands(make_flow):
    from metaflowlike import schedule as imported

    assert imported is schedule
    flow = make_flow(FLOW)
    helped = flow.run("--help").stdout
    assert "deployed-step" not in helped  # hidden: only containers run it
    proc = flow.run("deployed-step", "start", check=False)
    assert proc.returncode == 1
    assert "METAFLOWLIKE_DEPLOY_RUN_ID is not set" in proc.stderr
    assert "Traceback" not in proc.stderr
