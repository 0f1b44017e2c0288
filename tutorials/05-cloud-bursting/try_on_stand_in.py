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

import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent.parent))

from tests.stand_in_cloud import stand_in_cloud  # noqa: E402


def main(args: list[str]) -> int:
    on_batch = args[:1] == ["--batch"]
    args = args[1:] if on_batch else args
    with stand_in_cloud("runs") as cloud:
        if on_batch:
            service = cloud.batch()
            flow = "burst_batch.py"
            settings = {
                "AWS_ENDPOINT_URL_BATCH": service.server.url,
                "METAFLOWLIKE_BATCH_JOB_QUEUE": service.queue,
                "METAFLOWLIKE_BATCH_IMAGE": "python:3.11-slim",
            }
            print(f"Stand-in AWS Batch at {service.server.url}, queue {service.queue}, ", end="")
        else:
            cluster = cloud.kubernetes()
            flow = "burst.py"
            settings = {"KUBECONFIG": str(cluster.kubeconfig)}
            print(f"Stand-in cluster at {cluster.server.url}, ", end="")
        print(f"datastore {cloud.root}\n")
        cmd = [sys.executable, str(HERE / flow), "run", *args]
        return subprocess.run(cmd, env=cloud.laptop_env(settings), cwd=HERE).returncode


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
