"""Try @kubernetes or @batch on a laptop, with one command and no cloud account.

    python tutorials/05-cloud-bursting/try_on_stand_in.py [ARGS FOR burst.py run]
    python tutorials/05-cloud-bursting/try_on_stand_in.py --batch [ARGS FOR burst_batch.py run]

It starts what the test suite uses in place of the cloud (from a checkout installed
with ``pip install -e ".[dev]"``): S3 served by moto, and either a stand-in cluster -
kmock's Kubernetes API server plus a small node agent - or moto's AWS Batch API with a
compute environment of the same kind; both run each container's command with a Python
that has boto3 but not metaflowlike. Then it runs ``burst.py`` (or ``burst_batch.py``)
against them exactly as you would against the real services, and stops everything.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent
sys.path.insert(0, str(REPO))

from tests.cloud_servers import create_bucket, new_bucket_name, start_moto  # noqa: E402
from tests.remote_env import (  # noqa: E402
    make_sdk_python,
    start_batch_stand_in,
    start_kube_stand_in,
)


def main(args: list[str]) -> int:
    on_batch = args[:1] == ["--batch"]
    args = args[1:] if on_batch else args
    work = Path(tempfile.mkdtemp(prefix="mfl-burst-"))
    print("Preparing a Python with boto3 only (what a container image would have)...")
    sdk_python = make_sdk_python(work / "image-python")
    with start_moto() as s3:
        bucket = new_bucket_name()
        create_bucket("s3", s3.url, bucket)
        if on_batch:
            service = start_batch_stand_in(sdk_python, s3.url, work)
            server, flow = service.server, "burst_batch.py"
            where = {
                "AWS_ENDPOINT_URL_BATCH": server.url,
                "METAFLOWLIKE_BATCH_JOB_QUEUE": service.queue,
                "METAFLOWLIKE_BATCH_IMAGE": "python:3.11-slim",
            }
            print(f"Stand-in AWS Batch at {server.url}, queue {service.queue}, ", end="")
        else:
            cluster = start_kube_stand_in(sdk_python, s3.url, work)
            server, flow = cluster.server, "burst.py"
            where = {"KUBECONFIG": str(cluster.kubeconfig)}
            print(f"Stand-in cluster at {server.url}, ", end="")
        try:
            env = dict(os.environ)
            env.update(where)
            env.update(
                {
                    "METAFLOWLIKE_DATASTORE_ROOT": f"s3://{bucket}/runs",
                    "AWS_ENDPOINT_URL": s3.url,
                    "AWS_ACCESS_KEY_ID": "laptop-key",
                    "AWS_SECRET_ACCESS_KEY": "laptop-secret",
                    "AWS_DEFAULT_REGION": "us-east-1",
                }
            )
            env.pop("METAFLOWLIKE_DATASTORE", None)
            print(f"datastore s3://{bucket}/runs\n")
            cmd = [sys.executable, str(HERE / flow), "run", *args]
            return subprocess.run(cmd, env=env, cwd=HERE).returncode
        finally:
            server.stop()
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
