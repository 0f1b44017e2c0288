"""The test suite's stand-in cloud, started by hand: what the tutorials' one-command tries
(``tutorials/*/try_on_stand_in.py``) run their flows against.

S3 is served by moto with one fresh bucket; the Kubernetes cluster and AWS Batch are the
stand-ins of ``tests/remote_env.py``, started on demand. Containers run with a Python
that has boto3 but not metaflowlike. Everything stops, and its temporary folder goes,
when the ``with`` block ends.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from tests.cloud_servers import Server, create_bucket, new_bucket_name, start_moto
from tests.remote_env import (
    BatchService,
    KubeCluster,
    make_sdk_python,
    start_batch_stand_in,
    start_kube_stand_in,
)


@dataclass
class StandInCloud:
    work: Path  # a temporary folder for the stand-ins' files
    sdk_python: Path  # the "image"'s Python
    s3: Server
    root: str  # s3://bucket/folder, the flows' datastore root
    _stack: contextlib.ExitStack = field(default_factory=contextlib.ExitStack)

    def kubernetes(self) -> KubeCluster:
        """Start the stand-in cluster (stopped with the cloud)."""
        cluster = start_kube_stand_in(self.sdk_python, self.s3.url, self.work)
        self._stack.callback(cluster.server.stop)
        return cluster

    def batch(self) -> BatchService:
        """Start the stand-in AWS Batch with one job queue (stopped with the cloud)."""
        service = start_batch_stand_in(self.sdk_python, self.s3.url, self.work)
        self._stack.callback(service.server.stop)
        return service

    def laptop_env(self, settings: dict[str, str]) -> dict[str, str]:
        """This shell's environment pointed at the stand-ins, with the laptop's own keys
        (the containers never get them), plus ``settings``."""
        env = dict(os.environ)
        env.pop("METAFLOWLIKE_DATASTORE", None)
        env.update(
            {
                "METAFLOWLIKE_DATASTORE_ROOT": self.root,
                "AWS_ENDPOINT_URL": self.s3.url,
                "AWS_ACCESS_KEY_ID": "laptop-key",
                "AWS_SECRET_ACCESS_KEY": "laptop-secret",
                "AWS_DEFAULT_REGION": "us-east-1",
                **settings,
            }
        )
        return env


@contextlib.contextmanager
def stand_in_cloud(folder: str) -> Iterator[StandInCloud]:
    """S3 on moto with a fresh bucket whose ``folder`` is the datastore root."""
    work = Path(tempfile.mkdtemp(prefix="mfl-stand-in-"))
    try:
        print("Preparing a Python with boto3 only (what a container image would have)...")
        sdk_python = make_sdk_python(work / "image-python")
        with start_moto() as s3:
            bucket = new_bucket_name()
            create_bucket("s3", s3.url, bucket)
            cloud = StandInCloud(work, sdk_python, s3, f"s3://{bucket}/{folder}")
            with cloud._stack:
                yield cloud
    finally:
        shutil.rmtree(work, ignore_errors=True)
