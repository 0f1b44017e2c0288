"""@batch end to end: moto's Batch API with a compute environment that runs each job's
command in an empty folder with a Python that has boto3 but not metaflowlike; S3 on moto.

Flows run as `python flow.py run` with the laptop's own AWS keys; the jobs only ever get
the node's keys, and the tests check that no laptop credential reaches a job definition
or a submitted job."""

from __future__ import annotations

import itertools
import json
import math
import time
from dataclasses import dataclass

import pytest

from metaflowlike import Flow
from metaflowlike.builtin_decorators import TimeoutDecorator
from tests.flows import sleepy_flow
from tests.laptop import LAPTOP_KEY, LAPTOP_SECRET, Laptop
from tests.remote_env import BatchService, start_batch_stand_in


@dataclass
class Batch(Laptop):
    service: BatchService

    HEADER = """
import os
import sys
from metaflowlike import FlowSpec, step, current, batch, resources, retry, catch, timeout
"""

    def settings(self) -> dict[str, str]:
        return {
            "AWS_ENDPOINT_URL_BATCH": self.service.server.url,
            "METAFLOWLIKE_BATCH_IMAGE": "python:3.11-slim",
            "METAFLOWLIKE_BATCH_JOB_QUEUE": self.service.queue,
            "METAFLOWLIKE_REMOTE_POLL_INTERVAL": "0.2",
        }

    def jobs(self, run_id: str, queues: tuple[str, ...] = ()) -> list[dict]:
        """The Batch jobs of ``run_id`` in ``queues`` (default: the configured one),
        described, oldest first."""
        batch = self.service.client()
        ids = []
        for queue, status in itertools.product(
            queues or (self.service.queue,),
            (
                "SUBMITTED",
                "PENDING",
                "RUNNABLE",
                "STARTING",
                "RUNNING",
                "SUCCEEDED",
                "FAILED",
            ),
        ):
            listed = batch.list_jobs(jobQueue=queue, jobStatus=status)
            ids += [j["jobId"] for j in listed["jobSummaryList"]]
        described = batch.describe_jobs(jobs=ids)["jobs"] if ids else []
        mine = [j for j in described if f"-{run_id}-" in j["jobName"]]
        return sorted(mine, key=lambda j: j["createdAt"])


@pytest.fixture
def aws_batch(batch_service, s3_project, s3_root):
    return Batch(s3_project, s3_root, batch_service)


@pytest.fixture
def failing_batch(sdk_python, moto_server, s3_project, s3_root, tmp_path):
    """A second stand-in Batch where moto fails every job (MOTO_SIMPLE_BATCH_FAIL_AFTER)."""
    service = start_batch_stand_in(sdk_python, moto_server.url, tmp_path, fail_after="0")
    try:
        yield Batch(s3_project, s3_root, service)
    finally:
        service.server.stop()


def assert_no_laptop_credential(aws_batch: Batch, jobs: list[dict]) -> None:
    assert jobs
    definitions = aws_batch.service.client().describe_job_definitions()["jobDefinitions"]
    text = json.dumps(jobs, default=str) + json.dumps(definitions, default=str)
    assert LAPTOP_KEY not in text and LAPTOP_SECRET not in text


FOREACH = """
class FanFlow(FlowSpec):
    @step
    def start(self):
        self.items = list(range(3))
        self.next(self.square, foreach="items")

    @resources(memory=6000, cpu=0.5)
    @batch(cpu=2, memory=1000)
    @step
    def square(self):
        print(f"squaring {self.input}")
        self.sq = self.input ** 2
        self.cwd = os.getcwd()
        self.job_id = os.environ.get("AWS_BATCH_JOB_ID")
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


def test_foreach_body_on_batch(aws_batch):
    proc = aws_batch.run(FOREACH, "run")
    run = Flow("FanFlow").latest_run
    assert run.successful
    assert run.data.squares == [0, 1, 4]
    assert str(aws_batch.folder) not in run.data.cwds and len(run.data.cwds) == 3
    assert run.data.end_cwd == str(aws_batch.folder)  # start, join and end stayed local
    for i in range(3):
        assert f"squaring {i}" in proc.stdout
    jobs = aws_batch.jobs(run.id)
    assert len(jobs) == 3 and {j["status"] for j in jobs} == {"SUCCEEDED"}
    for task in run["square"]:
        where = json.loads(task.metadata_dict["runs_on"])  # metadata values are strings
        where = json.loads(where) if isinstance(where, str) else where
        assert where["platform"] == "batch" and where["queue"] == aws_batch.service.queue
        assert where["job_id"] == task.data.job_id
        assert where["job_id"] in {j["jobId"] for j in jobs}
        assert f"squaring {task.index}" in task.stdout
    assert "runs_on" not in run["start"].task.metadata_dict
    logs = aws_batch.run(None, "logs", f"{run.id}/square")
    assert "squaring 2" in logs.stdout
    # one job definition for the three tasks; the larger of @resources and @batch wins
    definitions = {j["jobDefinition"] for j in jobs}
    assert len(definitions) == 1
    described = aws_batch.service.client().describe_job_definitions(
        jobDefinitions=list(definitions)
    )["jobDefinitions"][0]
    requirements = {
        r["type"]: r["value"] for r in described["containerProperties"]["resourceRequirements"]
    }
    assert requirements == {"VCPU": "2", "MEMORY": "6000"}
    assert described["containerProperties"]["image"] == "python:3.11-slim"
    assert_no_laptop_credential(aws_batch, jobs)
    # a second run reuses the job definition instead of registering a new revision
    aws_batch.run(None, "run")
    again = aws_batch.jobs(Flow("FanFlow").latest_run.id)
    assert {j["jobDefinition"] for j in again} == definitions


FAILING = """
class RetryFlow(FlowSpec):
    @step
    def start(self):
        self.next(self.flaky)

    @timeout(seconds=90)
    @retry(times=1, minutes_between_retries=0)
    @batch
    @step
    def flaky(self):
        if current.retry_count == 0:
            raise RuntimeError("first attempt fails")
        self.attempt = current.retry_count
        self.next(self.doomed)

    @catch(var="failure")
    @batch
    @step
    def doomed(self):
        raise ValueError("no luck on batch")
        self.next(self.end)

    @step
    def end(self):
        pass

if __name__ == "__main__":
    RetryFlow()
"""


def test_retry_is_a_new_batch_job_and_catch_records_the_failure(aws_batch):
    proc = aws_batch.run(FAILING, "run")
    run = Flow("RetryFlow").latest_run
    assert run.successful
    assert run["flaky"].task.data.attempt == 1
    assert "no luck on batch" in str(run["doomed"].task.data.failure)
    jobs = aws_batch.jobs(run.id)
    flaky = [j for j in jobs if "-flaky-" in j["jobName"]]
    assert [j["status"] for j in flaky] == ["FAILED", "SUCCEEDED"]
    exit_code = flaky[0]["container"]["exitCode"]
    assert exit_code != 0
    assert flaky[0]["statusReason"] == "Essential container in task exited"
    assert "RuntimeError: first attempt fails" in proc.stderr
    # the runtime's deadline for @timeout, plus 30 seconds to start, is the job's timeout
    deadline = TimeoutDecorator(seconds=90).timeout_seconds()
    assert {j["timeout"]["attemptDurationSeconds"] for j in flaky} == {math.ceil(deadline) + 30}
    assert_no_laptop_credential(aws_batch, jobs)


def test_ctrl_c_terminates_the_batch_jobs_it_started(aws_batch):
    def the_job_is_running() -> None:
        (job,) = aws_batch.jobs(Flow("SleepyFlow").latest_run.id)
        assert job["status"] == "RUNNING"

    aws_batch.interrupt(sleepy_flow("@batch"), "napping", the_job_is_running)
    run_id = Flow("SleepyFlow").latest_run.id
    # TerminateJob stops the container (SIGTERM, then a grace period) and only then does
    # the job turn FAILED, as on real Batch: wait for it, within a bound
    deadline = time.monotonic() + 30
    (job,) = aws_batch.jobs(run_id)
    while job["status"] == "RUNNING" and time.monotonic() < deadline:
        time.sleep(0.2)
        (job,) = aws_batch.jobs(run_id)
    assert job["status"] == "FAILED"
    assert job["statusReason"] == "cancelled by metaflowlike"
    assert not Flow("SleepyFlow")[run_id].successful


EVERYWHERE = """
class QueuesFlow(FlowSpec):
    @step
    def start(self):
        self.where = {"start": os.environ["AWS_BATCH_JQ_NAME"]}
        self.next(self.middle)

    @batch(queue="own-queue", memory=512)
    @step
    def middle(self):
        self.where["middle"] = os.environ["AWS_BATCH_JQ_NAME"]
        self.next(self.end)

    @step
    def end(self):
        self.where["end"] = os.environ["AWS_BATCH_JQ_NAME"]

if __name__ == "__main__":
    QueuesFlow()
"""


def test_with_batch_runs_every_step_and_a_steps_own_batch_wins(aws_batch):
    for queue in ("with-queue", "own-queue"):
        aws_batch.service.add_queue(queue)
    aws_batch.run(EVERYWHERE, "run", "--with", "batch:queue=with-queue,cpu=2")
    run = Flow("QueuesFlow").latest_run
    assert run.successful
    assert run.data.where == {"start": "with-queue", "middle": "own-queue", "end": "with-queue"}
    jobs = aws_batch.jobs(run.id, ("with-queue", "own-queue"))
    assert len(jobs) == 3 and {j["status"] for j in jobs} == {"SUCCEEDED"}
    for task in (run["start"].task, run["middle"].task, run["end"].task):
        assert json.loads(task.metadata_dict["runs_on"])["platform"] == "batch"
    # the step's own @batch is used whole: its resources, not those given with --with
    batch = aws_batch.service.client()
    sizes = {}
    for job in jobs:
        step = job["jobName"].split(f"-{run.id}-", 1)[1].split("-", 1)[0]
        (definition,) = batch.describe_job_definitions(jobDefinitions=[job["jobDefinition"]])[
            "jobDefinitions"
        ]
        props = definition["containerProperties"]["resourceRequirements"]
        sizes[step] = {r["type"]: r["value"] for r in props}
    assert sizes["start"] == sizes["end"] == {"VCPU": "2", "MEMORY": "4096"}
    assert sizes["middle"] == {"VCPU": "1", "MEMORY": "512"}
    assert_no_laptop_credential(aws_batch, jobs)


BROKEN = """
class BrokenFlow(FlowSpec):
    @step
    def start(self):
        self.value = 20
        self.next(self.remote)

    @batch
    @step
    def remote(self):
        if FAIL:
            raise RuntimeError("the remote step is broken")
        self.doubled = self.value * 2
        self.next(self.end)

    @step
    def end(self):
        pass

if __name__ == "__main__":
    BrokenFlow()
"""


def test_resume_after_a_failed_batch_step(aws_batch):
    failed = aws_batch.run(BROKEN.replace("FAIL", "True"), "run", check=False)
    assert failed.returncode == 1
    origin = Flow("BrokenFlow").latest_run
    assert "the remote step is broken" in failed.stderr
    assert "the remote step is broken" in str(origin["remote"].task.exception)
    resumed = aws_batch.run(BROKEN.replace("FAIL", "False"), "resume")
    assert "Cloned from" in resumed.stdout
    run = Flow("BrokenFlow").latest_run
    assert run.successful and run.id != origin.id
    assert run["remote"].task.data.doubled == 40
    assert run["start"].task.origin_pathspec == origin["start"].task.pathspec
    (job,) = aws_batch.jobs(run.id)  # only the failed step ran again, on Batch
    assert job["status"] == "SUCCEEDED" and "-remote-" in job["jobName"]


def test_a_job_the_compute_environment_fails_is_reported_with_batchs_reason(failing_batch):
    proc = failing_batch.run(BROKEN.replace("FAIL", "False"), "run", check=False)
    assert proc.returncode == 1
    run = Flow("BrokenFlow").latest_run
    (job,) = failing_batch.jobs(run.id)
    assert job["status"] == "FAILED"
    message = str(run["remote"].task.exception)
    assert f"AWS Batch job {job['jobId']}: Task failed to start" in message
    assert "Task failed to start" in proc.stdout + proc.stderr
    assert "Traceback" not in proc.stderr


PINNED = """
from metaflowlike import pypi


class PinnedBatchFlow(FlowSpec):
    @step
    def start(self):
        self.next(self.remote)

    @batch
    @pypi(packages={"six": "1.15.0"})
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
    PinnedBatchFlow()
"""


def test_pypi_environment_is_built_in_the_batch_job(aws_batch, tmp_path, monkeypatch):
    """The job's command builds the step's environment from the run's saved lock."""
    monkeypatch.setenv("METAFLOWLIKE_ENVS_DIR", str(tmp_path / "laptop-envs"))
    aws_batch.run(PINNED, "--environment=pypi", "run")
    run = Flow("PinnedBatchFlow").latest_run
    remote = run["remote"].task
    assert run.successful and remote.data.six == "1.15.0"
    key = remote.environment["key"]
    assert f"/.metaflowlike-envs/{key}/" in remote.data.python  # built in the job
    (job,) = aws_batch.jobs(run.id)
    assert "metaflowlike.environments.bootstrap" in job["container"]["command"]
    assert_no_laptop_credential(aws_batch, [job])
