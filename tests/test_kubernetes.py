"""@kubernetes end to end: a real API server (kmock) and a node agent that runs each pod's
command in an empty folder with a Python that has boto3 but not metaflowlike; S3 on moto.

Flows run as `python flow.py run` with the laptop's own AWS keys; the pods only ever get
the node's keys, and a test checks that no laptop credential reaches a manifest."""

from __future__ import annotations

import base64
import json
import sys
import time
from dataclasses import dataclass

import kubernetes_validate
import pytest

from metaflowlike import Flow, Run
from tests.flows import sleepy_flow
from tests.laptop import LAPTOP_KEY, LAPTOP_SECRET, Laptop
from tests.remote_env import KubeCluster

K8S_VERSION = kubernetes_validate.latest_version()


@dataclass
class Kube(Laptop):
    cluster: KubeCluster

    HEADER = """
import os
import sys
import time
from metaflowlike import FlowSpec, step, current, kubernetes, resources, retry, catch, timeout
"""

    def settings(self) -> dict[str, str]:
        return {
            "KUBECONFIG": str(self.cluster.kubeconfig),
            "METAFLOWLIKE_REMOTE_POLL_INTERVAL": "0.2",
        }

    def jobs(self, run_id: str) -> list[dict]:
        return [
            j
            for j in self.cluster.jobs()
            if j["metadata"]["labels"].get("metaflowlike.dev/run-id") == run_id
        ]


@pytest.fixture
def kube(kube_cluster, s3_project, s3_root):
    return Kube(s3_project, s3_root, kube_cluster)


def assert_clean_manifests(jobs: list[dict]) -> None:
    """Every Job validates strictly and carries no credential of the laptop."""
    assert jobs
    for job in jobs:
        kubernetes_validate.validate(job, K8S_VERSION, strict=True)
        text = json.dumps(job)
        assert LAPTOP_KEY not in text and LAPTOP_SECRET not in text


FOREACH = """
class FanFlow(FlowSpec):
    @step
    def start(self):
        self.items = list(range(5))
        self.local_pid = os.getpid()
        self.next(self.square, foreach="items")

    @resources(memory=6000, cpu=0.25)
    @kubernetes(cpu=0.5, memory=1000, disk=2048, labels={"team": "ml"})
    @step
    def square(self):
        print(f"squaring {self.input}")
        print(f"on stderr {self.input}", file=sys.stderr)
        self.sq = self.input ** 2
        self.cwd = os.getcwd()
        self.pod = os.environ.get("METAFLOWLIKE_RUNS_ON_POD")
        self.next(self.join)

    @step
    def join(self, inputs):
        self.squares = [i.sq for i in inputs]
        self.cwds = {i.cwd for i in inputs}
        self.next(self.end)

    @step
    def end(self):
        self.end_cwd = os.getcwd()

if __name__ == "__main__":
    FanFlow()
"""


def test_foreach_body_on_kubernetes(kube):
    proc = kube.run(FOREACH, "run", "--max-workers", "5")
    run = Flow("FanFlow").latest_run
    assert run.successful
    assert run.data.squares == [0, 1, 4, 9, 16]
    assert str(kube.folder) not in run.data.cwds  # ran in the pods' own folders
    assert len(run.data.cwds) == 5
    assert run.data.end_cwd == str(kube.folder)  # start, join and end stayed local
    # the remote logs were streamed with the usual prefix and saved for `logs`
    for i in range(5):
        assert f"squaring {i}" in proc.stdout
        assert f"on stderr {i}" in proc.stderr
    assert f"[{run.id}/square/" in proc.stdout
    tasks = list(run["square"])
    assert len(tasks) == 5
    for task in tasks:
        where = json.loads(task.metadata_dict["runs_on"])  # metadata values are strings
        assert where["platform"] == "kubernetes" and where["namespace"] == "default"
        assert where["pod"].startswith(where["job"]) and task.data.pod == where["pod"]
        assert f"squaring {task.index}" in task.stdout
    assert "runs_on" not in run["start"].task.metadata_dict
    logs = kube.run(None, "logs", f"{run.id}/square")
    assert "squaring 3" in logs.stdout
    # one Job per task; for each resource the larger of @resources and @kubernetes wins
    jobs = kube.jobs(run.id)
    assert len(jobs) == 5
    assert_clean_manifests(jobs)
    container = jobs[0]["spec"]["template"]["spec"]["containers"][0]
    assert container["resources"] == {
        "requests": {"cpu": "500m", "memory": "6000M", "ephemeral-storage": "2048M"},
        "limits": {"memory": "6000M", "ephemeral-storage": "2048M"},
    }
    assert jobs[0]["metadata"]["labels"]["team"] == "ml"


LINEAR = """
class WholeFlow(FlowSpec):
    @step
    def start(self):
        self.a = 1
        self.next(self.middle)

    @step
    def middle(self):
        self.b = self.a + 1
        self.next(self.end)

    @step
    def end(self):
        self.c = self.a + self.b
        self.token = os.environ.get("TEAM_TOKEN")

if __name__ == "__main__":
    WholeFlow()
"""


def test_with_kubernetes_runs_every_step_remotely(kube):
    token = base64.b64encode(b"from-a-secret").decode()
    kube.cluster.api.call(
        "POST",
        "/api/v1/namespaces/default/secrets",
        {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": "team-token"},
            "data": {"TEAM_TOKEN": token},
        },
    )
    first = kube.run(LINEAR, "run", "--with", 'kubernetes:memory=512,secrets=["team-token"]')
    run = Flow("WholeFlow").latest_run
    assert run.successful and run.data.c == 3
    assert run.data.token == "from-a-secret"  # mounted from the secret by envFrom
    for job in kube.jobs(run.id):
        container = job["spec"]["template"]["spec"]["containers"][0]
        assert container["envFrom"] == [{"secretRef": {"name": "team-token"}}]
        assert container["resources"]["limits"]["memory"] == "512M"
    for name in ("start", "middle", "end"):
        assert json.loads(run[name].task.metadata_dict["runs_on"])["platform"] == "kubernetes"
    assert "bytes uploaded" in first.stdout or "uploaded" in first.stdout
    # unchanged code: the second run finds its code package already stored
    second = kube.run(LINEAR, "run", "--with", "kubernetes")
    assert "already stored, 0 bytes uploaded" in second.stdout
    assert_clean_manifests(kube.jobs(Flow("WholeFlow").latest_run.id))


RETRY_CATCH = """
class FlakyFlow(FlowSpec):
    @step
    def start(self):
        self.next(self.flaky)

    @kubernetes
    @retry(times=1, minutes_between_retries=0)
    @step
    def flaky(self):
        if current.retry_count == 0:
            raise RuntimeError("first attempt fails")
        self.attempt = current.retry_count
        self.next(self.doomed)

    @kubernetes
    @catch(var="problem")
    @step
    def doomed(self):
        raise ValueError("always")
        self.next(self.end)

    @step
    def end(self):
        pass

if __name__ == "__main__":
    FlakyFlow()
"""


def test_retry_makes_a_new_job_and_catch_records(kube):
    kube.run(RETRY_CATCH, "run")
    run = Flow("FlakyFlow").latest_run
    assert run.successful
    assert run["flaky"].task.data.attempt == 1
    assert "ValueError: always" in str(run["doomed"].task.data.problem)
    flaky_jobs = [
        j for j in kube.jobs(run.id) if j["metadata"]["labels"]["metaflowlike.dev/step"] == "flaky"
    ]
    assert sorted(j["metadata"]["labels"]["metaflowlike.dev/attempt"] for j in flaky_jobs) == [
        "0",
        "1",
    ]


TIMEOUT = """
class SlowFlow(FlowSpec):
    @step
    def start(self):
        self.next(self.slow)

    @kubernetes
    @timeout(seconds=2)
    @step
    def slow(self):
        time.sleep(SLEEP)
        self.done = True
        self.next(self.end)

    @step
    def end(self):
        pass

if __name__ == "__main__":
    SlowFlow()
"""


def test_timeout_then_resume_of_the_failed_remote_step(kube):
    proc = kube.run(TIMEOUT.replace("SLEEP", "60"), "run", check=False)
    assert proc.returncode == 1
    failed = Flow("SlowFlow").latest_run
    assert not failed.successful
    task = failed["slow"].task
    assert "timed out after 2 seconds" in str(task.exception)
    (job,) = kube.jobs(failed.id)
    assert job["spec"]["activeDeadlineSeconds"] >= 2
    resumed = kube.run(TIMEOUT.replace("SLEEP", "0"), "resume")
    assert "Cloned from" in resumed.stdout
    run = Flow("SlowFlow").latest_run
    assert run.successful and run.id != failed.id
    assert run["slow"].task.data.done is True


NEVER = """
class StuckFlow(FlowSpec):
    @step
    def start(self):
        self.next(self.stuck)

    @kubernetes(image=IMAGE)
    @step
    def stuck(self):
        self.next(self.end)

    @step
    def end(self):
        pass

if __name__ == "__main__":
    StuckFlow()
"""


@pytest.mark.parametrize(
    "image, cause",
    [
        ("example/none:no-pod", "no pod was created"),
        ("example/gone:pull-fails", "ErrImagePull"),
        ("example/huge:unschedulable", "Unschedulable: 0/1 nodes are available"),
    ],
)
def test_job_that_never_starts_is_reported_and_deleted(kube, image, cause):
    proc = kube.run(
        NEVER.replace("IMAGE", repr(image)),
        "run",
        check=False,
        env={"METAFLOWLIKE_KUBERNETES_POD_START_TIMEOUT": "3"},
    )
    assert proc.returncode == 1
    assert "did not start within 3 seconds" in proc.stdout + proc.stderr
    assert cause in proc.stdout + proc.stderr
    run = Flow("StuckFlow").latest_run
    assert cause in str(run["stuck"].task.exception)
    assert kube.jobs(run.id) == []  # given up on, and deleted


OOM = """
class HungryFlow(FlowSpec):
    @step
    def start(self):
        self.next(self.hungry)

    @kubernetes(memory=300)
    @step
    def hungry(self):
        block = bytearray(600 * 1024 * 1024)
        for i in range(0, len(block), 4096):
            block[i] = 1
        time.sleep(30)
        self.next(self.end)

    @step
    def end(self):
        pass

if __name__ == "__main__":
    HungryFlow()
"""


def test_out_of_memory_is_named(kube):
    proc = kube.run(OOM, "run", check=False)
    assert proc.returncode == 1
    run = Flow("HungryFlow").latest_run
    message = str(run["hungry"].task.exception)
    assert "OOMKilled (exit code 137)" in message, proc.stdout + proc.stderr


def test_remote_step_with_local_datastore_is_refused(kube):
    proc = kube.run(
        LINEAR,
        "--datastore",
        "local",
        "--datastore-root",
        str(kube.folder / "ds"),
        "run",
        "--with",
        "kubernetes",
        check=False,
    )
    assert proc.returncode == 1
    assert "A remote step needs a remote datastore" in proc.stderr
    assert "--datastore-root s3://" in proc.stderr and "Traceback" not in proc.stderr
    assert not (kube.folder / "ds" / "flows").exists()


def test_ctrl_c_deletes_the_jobs_it_started(kube):
    def one_job() -> None:
        assert len(kube.jobs(Flow("SleepyFlow").latest_run.id)) == 1

    kube.interrupt(sleepy_flow("@kubernetes"), "napping", one_job)
    run_id = Flow("SleepyFlow").latest_run.id
    deadline = time.monotonic() + 30
    while kube.jobs(run_id) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert kube.jobs(run_id) == []
    assert not Run(f"SleepyFlow/{run_id}").successful


PINNED = """
from metaflowlike import environment, pypi

CACHE = {"METAFLOWLIKE_ENVS_DIR": "POD_CACHE"}  # as if a volume were mounted there


class PinnedFlow(FlowSpec):
    @step
    def start(self):
        self.next(self.remote)

    @kubernetes
    @environment(vars=CACHE)
    @pypi(packages={"six": "1.15.0"})
    @step
    def remote(self):
        import six

        print("remote sees six", six.__version__)
        self.six = six.__version__
        self.python = sys.executable
        try:
            import kubernetes  # on the laptop and in its runtime, but not declared
            self.undeclared = kubernetes.__file__
        except ImportError:
            self.undeclared = None
        self.next(self.again)

    @kubernetes
    @environment(vars=CACHE)
    @pypi(packages={"six": "1.15.0"})
    @step
    def again(self):
        import six

        self.again_six = six.__version__
        self.next(self.end)

    @step
    def end(self):
        pass

if __name__ == "__main__":
    PinnedFlow()
"""


def test_pypi_environment_is_built_in_the_pod_from_the_saved_lock(kube, tmp_path):
    """The pod has a Python with boto3 and pip only: its command unpacks the code
    package, installs uv from the package index, builds the step's environment from
    the lock the run saved, and runs the step in it; a pod that finds the environment
    in the cache it was given reuses it."""
    pod_cache = tmp_path / "pod-envs"
    laptop_cache = tmp_path / "laptop-envs"
    kube.run(
        PINNED.replace("POD_CACHE", str(pod_cache)),
        "--environment=pypi",
        "run",
        env={"METAFLOWLIKE_ENVS_DIR": str(laptop_cache)},
    )
    run = Flow("PinnedFlow").latest_run
    assert run.successful
    remote = run["remote"].task
    assert remote.data.six == "1.15.0" and run["again"].task.data.again_six == "1.15.0"
    assert "remote sees six 1.15.0" in remote.stdout
    assert remote.data.undeclared is None
    key = remote.environment["key"]
    assert remote.data.python.startswith(str(pod_cache / key))  # the pod's own build
    assert {p.name for p in pod_cache.iterdir() if len(p.name) == 32} == {key}
    jobs = {j["metadata"]["labels"]["metaflowlike.dev/step"]: j for j in kube.jobs(run.id)}
    assert_clean_manifests(list(jobs.values()))
    for job in jobs.values():
        container = job["spec"]["template"]["spec"]["containers"][0]
        command = container["command"]
        wrapper = ["-m", "metaflowlike.environments.bootstrap", "PinnedFlow", "--", "flow.py"]
        assert command[5:10] == wrapper, command[:2] + command[3:]
        text = json.dumps(container)
        assert str(laptop_cache) not in text and "PYTHONPATH" not in text
    logs = {
        step: "".join(
            p.read_text() for p in kube.cluster.pod_logs.glob(f"{job['metadata']['name']}-*.log")
        )
        for step, job in jobs.items()
    }
    assert "Installing uv" in logs["remote"]
    assert "Installing uv" not in logs["again"]  # uv and the environment were cached


UV_PROJECT = """
class UvFlow(FlowSpec):
    @step
    def start(self):
        self.next(self.remote)

    @kubernetes
    @step
    def remote(self):
        import six

        self.six = six.__version__
        self.python = sys.executable
        self.next(self.end)

    @step
    def end(self):
        pass

if __name__ == "__main__":
    UvFlow()
"""


def test_uv_project_environment_is_built_in_the_pod(kube, tmp_path):
    """--environment=uv: the pod builds the project's locked environment too."""
    from metaflowlike.environments.uv_tool import run_uv

    here = f"{sys.version_info.major}.{sys.version_info.minor}"
    (kube.folder / "pyproject.toml").write_text(
        "[project]\nname = 'uv-flow'\nversion = '0.1.0'\n"
        f"requires-python = '>={here}'\ndependencies = ['six==1.16.0']\n"
    )
    (kube.folder / ".python-version").write_text(here + "\n")
    locked = run_uv(["lock", "--project", str(kube.folder)])
    assert locked.returncode == 0, locked.stderr
    kube.run(UV_PROJECT, "--environment=uv", "run", env={"METAFLOWLIKE_ENVS_DIR": str(tmp_path)})
    run = Flow("UvFlow").latest_run
    remote = run["remote"].task
    assert run.successful and remote.data.six == "1.16.0"
    assert remote.environment["type"] == "uv"
    key = remote.environment["key"]
    assert f"/.metaflowlike-envs/{key}/" in remote.data.python  # built in the pod's folder
