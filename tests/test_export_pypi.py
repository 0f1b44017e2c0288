"""``@pypi`` and ``--environment=uv`` in production exports, executed.

``python flow.py --environment=pypi step-functions create`` (and ``argo-workflows
create``) resolve each step's lock with uv on the laptop, store the locks beside the
code package and make every container command build the step's environment from them
before ``deployed-step`` runs. The exported documents pass the validators; the test
interpreters run each container command in an empty folder with only its declared
environment and a Python without metaflowlike or uv (uv is installed from the package
index once, into the node's environment cache), against S3 on moto. Resolutions and
installs are real, with small pure-Python packages from the package index.
"""

from __future__ import annotations

import json
import re
import textwrap
from pathlib import Path

import boto3
import pytest
import yaml

from metaflowlike import Flow, config
from tests import test_export_argo as argo_export
from tests import test_export_sfn as sfn_export
from tests.cloud_servers import AWS_KEY_ID, AWS_SECRET

# the exporters' own stand-ins (fixtures) and checks
argo, laptop = argo_export.argo, sfn_export.laptop
deployed_documents, snapshot = argo_export.deployed_documents, argo_export.snapshot
validate_document, interpret = argo_export.validate_document, sfn_export.interpret

pytestmark = pytest.mark.timeout(900)

#: two steps pinning different versions of six; ``end`` runs in the image's own Python
TWO_SIXES = """
from metaflowlike import FlowSpec, environment, pypi, pypi_base, step

#: the node's environment cache (a volume a real node would mount there)
CACHE = {"METAFLOWLIKE_ENVS_DIR": "NODE_CACHE"}


@pypi_base(packages={"six": "1.16.0"})
class TwoSixesFlow(FlowSpec):
    @environment(vars=CACHE)
    @step
    def start(self):
        import six

        self.start_six = six.__version__
        self.next(self.older)

    @environment(vars=CACHE)
    @pypi(packages={"six": "1.15.0"})
    @step
    def older(self):
        import six

        self.older_six = six.__version__
        print("older sees six", six.__version__)
        self.next(self.end)

    @pypi(disabled=True)
    @step
    def end(self):
        self.seen = [self.start_six, self.older_six]


if __name__ == "__main__":
    TwoSixesFlow()
"""


@pytest.fixture(scope="module")
def laptop_envs(tmp_path_factory) -> Path:
    """The laptop's environment cache, shared by this module's tests."""
    return tmp_path_factory.mktemp("laptop-envs")


@pytest.fixture(autouse=True)
def _laptop_cache(laptop_envs, monkeypatch):
    monkeypatch.setenv("METAFLOWLIKE_ENVS_DIR", str(laptop_envs))
    monkeypatch.delenv("METAFLOWLIKE_ENVIRONMENT", raising=False)


def _source(node_cache: Path) -> str:
    return TWO_SIXES.replace("NODE_CACHE", str(node_cache))


def _stored_locks(definition_text: str) -> str:
    """The datastore key of the locks every container command names."""
    keys = set(re.findall(r'"--environments", "([^"]+)"', definition_text))
    assert len(keys) == 1, keys
    return keys.pop()


def _assert_versions(run) -> None:
    assert run.successful
    assert run["start"].task.data.start_six == "1.16.0"
    assert run["older"].task.data.older_six == "1.15.0"
    assert run.data.seen == ["1.16.0", "1.15.0"]
    # the client shows what each production task ran with, as for a local run
    start_env, older_env = run["start"].task.environment, run["older"].task.environment
    assert start_env["type"] == "pypi" and start_env["packages"]["six"] == "1.16.0"
    assert older_env["packages"]["six"] == "1.15.0" and older_env["key"] != start_env["key"]
    assert run["end"].task.environment is None  # @pypi(disabled=True)


def test_step_functions_builds_each_steps_environment_from_the_stored_locks(
    laptop, sdk_python, tmp_path
):
    """Deploy with --environment=pypi, execute through the interpreter: each step sees
    its own six, the client shows each task's environment, and the artifacts equal a
    local run's. The node's cache makes the second job install nothing new."""
    node_cache = tmp_path / "node-envs"
    path = laptop.write(_source(node_cache))
    definition = laptop.deploy(path, "--environment=pypi")  # both validators pass
    key = _stored_locks(json.dumps(definition))
    assert re.fullmatch(r"code/[0-9a-f]{64}\.environments\.json", key)

    execution = interpret(laptop, definition, sdk_python, {}, "exec-pypi-1")
    assert execution.status == "SUCCEEDED", "\n".join(j.output for j in execution.jobs)
    jobs = {j.name.split("-")[1]: j for j in execution.jobs}
    for job in jobs.values():
        assert "-m" in job.command and "metaflowlike.environments.bootstrap" in job.command
        assert "PYTHONPATH" not in job.env and str(laptop.folder) not in json.dumps(job.env)
    assert "Installing uv" in jobs["start"].output
    assert "Installing uv" not in jobs["older"].output  # uv came from the node's cache
    run = Flow("TwoSixesFlow")["sfn-exec-pypi-1"]
    _assert_versions(run)
    assert "older sees six 1.15.0" in run["older"].task.stdout
    built = {p.name for p in node_cache.iterdir() if len(p.name) == 32}
    assert built == {run["start"].task.environment["key"], run["older"].task.environment["key"]}

    shown = laptop.run(path, "environment", "show", "--run-id", "sfn-exec-pypi-1").stdout
    assert "Environment: pypi" in shown and "six==1.15.0" in shown and "six==1.16.0" in shown

    laptop.run(path, "--environment=pypi", "run")
    local = [r for r in Flow("TwoSixesFlow").runs() if not r.id.startswith("sfn-")][0]
    _assert_versions(local)
    assert snapshot(local) == snapshot(run)
    assert local["older"].task.environment["key"] == run["older"].task.environment["key"]


def test_argo_builds_each_steps_environment_from_the_stored_locks(argo, tmp_path):
    """The same flow through argo-workflows create/trigger and the Argo interpreter."""
    node_cache = tmp_path / "node-envs"
    source = _source(node_cache)
    created = argo.run(source, "--environment=pypi", "argo-workflows", "create")
    assert "WorkflowTemplate default/twosixesflow created." in created.stdout
    docs = deployed_documents(argo, "twosixesflow")
    for doc in docs:
        validate_document(doc)
    key = _stored_locks(json.dumps(docs[0]))
    stored = json.loads(config.open_datastore("s3", argo.root).storage.get_bytes(key))
    assert stored["type"] == "pypi" and set(stored["steps"]) == {"start", "older"}

    name = argo.trigger()
    result = argo.execute(name)
    assert result.phase == "Succeeded", result.message + argo.pod_logs(result)
    run = Flow("TwoSixesFlow")[f"argo-{name}"]
    _assert_versions(run)

    argo.run(None, "--environment=pypi", "run")
    local = Flow("TwoSixesFlow").latest_run
    assert local.id != run.id
    _assert_versions(local)
    assert snapshot(local) == snapshot(run)


UV_FLOW = """
from metaflowlike import FlowSpec, environment, step


class UvDeployFlow(FlowSpec):
    @environment(vars={"METAFLOWLIKE_ENVS_DIR": "NODE_CACHE"})
    @step
    def start(self):
        import six

        self.six = six.__version__
        self.next(self.end)

    @environment(vars={"METAFLOWLIKE_ENVS_DIR": "NODE_CACHE"})
    @step
    def end(self):
        pass


if __name__ == "__main__":
    UvDeployFlow()
"""


def test_uv_environment_deploys_the_projects_lock(laptop, sdk_python, tmp_path):
    """--environment=uv: every deployed step runs in the project's uv.lock."""
    from metaflowlike.environments.uv_tool import run_uv

    python = ".".join(map(str, __import__("sys").version_info[:2]))
    (laptop.folder / "pyproject.toml").write_text(
        textwrap.dedent(
            f"""
            [project]
            name = "uv-deploy"
            version = "0.1.0"
            requires-python = ">={python}"
            dependencies = ["six==1.15.0"]
            """
        )
    )
    (laptop.folder / ".python-version").write_text(python + "\n")
    locked = run_uv(["lock", "--project", str(laptop.folder)])
    assert locked.returncode == 0, locked.stderr
    path = laptop.write(UV_FLOW.replace("NODE_CACHE", str(tmp_path / "node-envs")))
    definition = laptop.deploy(path, "--environment=uv")
    execution = interpret(laptop, definition, sdk_python, {}, "exec-uv-1")
    assert execution.status == "SUCCEEDED", "\n".join(j.output for j in execution.jobs)
    run = Flow("UvDeployFlow")["sfn-exec-uv-1"]
    assert run.successful and run["start"].task.data.six == "1.15.0"
    env = run["start"].task.environment
    assert env["type"] == "uv" and env["packages"]["six"] == "1.15.0"
    assert run["end"].task.environment["key"] == env["key"]


UNKNOWN = """
from metaflowlike import FlowSpec, pypi, step


class UnknownPackageFlow(FlowSpec):
    @pypi(packages={"metaflowlike-no-such-package-xyz": "1.0"})
    @step
    def start(self):
        self.next(self.end)

    @step
    def end(self):
        pass


if __name__ == "__main__":
    UnknownPackageFlow()
"""


def test_a_resolution_error_stops_the_deploy_before_anything_is_created(laptop):
    path = laptop.write(UNKNOWN)
    for target in ("step-functions", "argo-workflows"):
        proc = laptop.run(path, "--environment=pypi", target, "create", check=False)
        assert proc.returncode == 1 and "Traceback" not in proc.stderr, proc.stderr
        assert '"metaflowlike-no-such-package-xyz"' in proc.stderr
        assert 'step "start"' in proc.stderr
    sfn = boto3.client(
        "stepfunctions",
        endpoint_url=laptop.moto_url,
        region_name="us-east-1",
        aws_access_key_id=AWS_KEY_ID,
        aws_secret_access_key=AWS_SECRET,
    )
    names = [m["name"] for m in sfn.list_state_machines()["stateMachines"]]
    assert not any("UnknownPackage" in n for n in names)
    storage = config.open_datastore("s3", laptop.root).storage
    assert storage.list_dir("code") == []  # no code package, no locks uploaded


def test_at_pypi_without_the_pypi_environment_is_refused_at_deploy_time(laptop):
    """Metaflow's spelling is --environment=pypi before the command; without it the
    deploy says to add it, as run does."""
    path = laptop.write(_source(Path("/unused")))
    proc = laptop.run(path, "step-functions", "create", "--only-json", check=False)
    assert proc.returncode == 1 and "Traceback" not in proc.stderr, proc.stderr
    assert "--environment=pypi step-functions create`" in proc.stderr


def test_tutorial_07_compiles_for_argo_with_its_environments(laptop):
    """The deploy section of tutorial 07: its flow prints Argo documents whose every
    container builds the step's environment from the stored locks."""
    import shutil

    tutorial = Path(__file__).resolve().parent.parent / "tutorials" / "07-dependencies"
    path = laptop.folder / "dependencies.py"
    shutil.copy(tutorial / "dependencies.py", path)
    proc = laptop.run(path, "--environment=pypi", "argo-workflows", "create", "--only-yaml")
    docs = [d for d in yaml.safe_load_all(proc.stdout) if d]
    for doc in docs:
        validate_document(doc)
    containers = [t["container"] for t in docs[0]["spec"]["templates"] if "container" in t]
    assert containers
    for container in containers:
        assert "metaflowlike.environments.bootstrap" in container["command"]
        assert "--environments" in container["command"]
