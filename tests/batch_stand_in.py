"""A stand-in AWS Batch for tests: moto's Batch API plus a compute environment that runs.

moto (with ``use_docker`` off) serves the real Batch API - job definitions, queues,
``SubmitJob``, ``DescribeJobs``, ``TerminateJob`` - but marks every job finished at
submit time without running it. This process serves moto's API on 127.0.0.1 and plays
the compute environment instead: each submitted job stays RUNNING while its container
command (the job definition's, with the submit call's overrides) runs as a subprocess

- in a fresh empty folder, with only the job's environment, ``AWS_BATCH_JOB_ID`` and
  friends as Batch sets them, and the node's own credentials (an instance role);
- with the "image"'s Python first on PATH: a venv that has boto3 but not metaflowlike;
- stopped at the job's ``timeout`` (status reason "Job attempt duration exceeded
  timeout") or by ``TerminateJob``, and marked SUCCEEDED or FAILED with the container's
  exit code, as Batch reports it.

``MOTO_SIMPLE_BATCH_FAIL_AFTER`` (or ``--fail-after``) keeps moto's own meaning here:
jobs then fail after that many seconds without running; as real Batch does for a job
whose container never started, such a job gets the status reason ``Task failed to
start`` (moto leaves it empty). Run ``python -m tests.batch_stand_in --help``.
"""

from __future__ import annotations

import argparse
import datetime
import os
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from tests import containers

POLL = 0.1
#: Batch's status reason for a job whose container could not be started
NEVER_STARTED = "Task failed to start"


class ComputeEnvironment:
    """Runs the jobs moto accepted."""

    def __init__(self, python: str, node_env: dict[str, str], log_dir: Path) -> None:
        self.python, self.node_env, self.log_dir = python, node_env, log_dir

    def start(self, job: Any) -> None:
        threading.Thread(target=self.run, args=(job,), daemon=True).start()

    def environment(self, job: Any) -> dict[str, str]:
        env = containers.image_env(self.python, self.node_env)
        props = job.job_definition.container_properties or {}
        for item in [
            *props.get("environment", []),
            *job.container_overrides.get("environment", []),
        ]:
            env[item["name"]] = str(item["value"])
        env["AWS_BATCH_JOB_ID"] = job.job_id
        env["AWS_BATCH_JQ_NAME"] = job.job_queue.name
        env["AWS_BATCH_JOB_ATTEMPT"] = str(len(job.attempts))
        return env

    def run(self, job: Any) -> None:
        props = job.job_definition.container_properties or {}
        command = job.container_overrides.get("command") or props.get("command")
        timeout = (job.timeout or {}).get("attemptDurationSeconds")
        workdir = tempfile.mkdtemp(prefix="batch-job-")
        with open(self.log_dir / f"{job.job_id}.log", "wb") as log:
            proc = containers.start(command, self.environment(job), workdir, log)
            job.status = "RUNNING"
            started = time.time()
            while proc.poll() is None:
                if job.stop:
                    containers.stop(proc)
                elif timeout and time.time() - started > timeout:
                    job.job_stopped_reason = "Job attempt duration exceeded timeout"
                    containers.stop(proc)
                time.sleep(POLL)
        code = containers.wait(proc)
        job.exit_code = code
        if code != 0 and job.job_stopped_reason is None:
            job.job_stopped_reason = "Essential container in task exited"
        job._mark_stopped(success=code == 0 and not job.stop)


def install(compute: ComputeEnvironment) -> None:
    """Make moto's simple Batch hand each job to ``compute`` instead of finishing it."""
    from moto.batch_simple.models import BatchSimpleBackend

    original = BatchSimpleBackend._mark_job_as_finished

    def hand_over(self: Any, include_start_attempt: bool, job: Any) -> None:
        if os.environ.get("MOTO_SIMPLE_BATCH_FAIL_AFTER") or not include_start_attempt:
            original(self, include_start_attempt, job)
            if job.status == "FAILED" and job.job_stopped_reason is None:
                job.job_stopped_reason = NEVER_STARTED
            return
        self.backend._jobs[job.job_id] = job
        job.job_started_at = datetime.datetime.now()
        job.log_stream_name = job._stream_name
        job._start_attempt()
        job.status = "STARTING"
        compute.start(job)

    BatchSimpleBackend._mark_job_as_finished = hand_over

    from moto.batch.models import Job

    details = Job._container_details

    def with_exit_code(self: Any) -> dict[str, Any]:
        # real Batch reports the container's exit code in DescribeJobs; moto leaves it out
        out = details(self)
        if self.job_stopped and self.exit_code is not None:
            out["exitCode"] = self.exit_code
        return out

    Job._container_details = with_exit_code


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--python", required=True, help="The image's Python (boto3 only).")
    parser.add_argument("--log-dir", required=True, help="Container logs go here.")
    parser.add_argument(
        "--node-env", action="append", default=[], help="KEY=VALUE the node gives every job."
    )
    parser.add_argument(
        "--fail-after",
        default=None,
        help="Set MOTO_SIMPLE_BATCH_FAIL_AFTER: every job fails after this many seconds.",
    )
    args = parser.parse_args(argv)
    if args.fail_after is not None:
        os.environ["MOTO_SIMPLE_BATCH_FAIL_AFTER"] = args.fail_after
    from moto.core.config import default_user_config
    from moto.server import ThreadedMotoServer

    default_user_config["batch"]["use_docker"] = False  # before the first request

    log_dir = Path(args.log_dir)
    log_dir.mkdir(parents=True, exist_ok=True)
    containers.stop_all_on_sigterm()
    install(ComputeEnvironment(args.python, dict(i.split("=", 1) for i in args.node_env), log_dir))
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=args.port, verbose=False)
    server.start()
    print(f"READY http://127.0.0.1:{args.port}", flush=True)
    threading.Event().wait()


if __name__ == "__main__":
    main()
