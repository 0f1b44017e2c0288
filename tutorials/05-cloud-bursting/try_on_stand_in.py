"""Try @kubernetes on a laptop, with one command and no cloud account.

    python tutorials/05-cloud-bursting/try_on_stand_in.py [ARGS FOR burst.py run]

It starts what the test suite uses in place of the cloud (from a checkout installed
with ``pip install -e ".[dev]"``): S3 served by moto, and a stand-in cluster - kmock's
Kubernetes API server plus a small node agent that runs each pod's command with a
Python that has boto3 but not metaflowlike. Then it runs ``burst.py`` against them
exactly as you would against a real cluster, and stops everything.
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
from tests.remote_env import make_sdk_python, start_kube_stand_in  # noqa: E402


def main(args: list[str]) -> int:
    work = Path(tempfile.mkdtemp(prefix="mfl-burst-"))
    print("Preparing a Python with boto3 only (what a container image would have)...")
    sdk_python = make_sdk_python(work / "image-python")
    with start_moto() as s3:
        bucket = new_bucket_name()
        create_bucket("s3", s3.url, bucket)
        cluster = start_kube_stand_in(sdk_python, s3.url, work)
        try:
            env = dict(os.environ)
            env.update(
                {
                    "KUBECONFIG": str(cluster.kubeconfig),
                    "METAFLOWLIKE_DATASTORE_ROOT": f"s3://{bucket}/runs",
                    "AWS_ENDPOINT_URL": s3.url,
                    "AWS_ACCESS_KEY_ID": "laptop-key",
                    "AWS_SECRET_ACCESS_KEY": "laptop-secret",
                    "AWS_DEFAULT_REGION": "us-east-1",
                }
            )
            env.pop("METAFLOWLIKE_DATASTORE", None)
            print(f"Stand-in cluster at {cluster.server.url}, datastore s3://{bucket}/runs\n")
            cmd = [sys.executable, str(HERE / "burst.py"), "run", *args]
            return subprocess.run(cmd, env=env, cwd=HERE).returncode
        finally:
            cluster.server.stop()
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
