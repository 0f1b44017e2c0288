#!/usr/bin/env python3
"""What the runtime itself spends per remote task: a wide ``@kubernetes`` foreach.

Runs a flow whose foreach body (``--width`` splits, 100 by default) is ``@kubernetes``
against the stand-in cluster of the test suite (kmock's API server and the node agent
of ``tests/kube_stand_in.py``, S3 on moto), three times:

- ``narrow``: the same flow with a width of 1, as the baseline of the local steps;
- ``wide``: the full width; the code package is new, so it is uploaded;
- ``wide again``: the same, unchanged: the package is found stored, 0 bytes uploaded.

What it reports, for each:

- the CPU time of the runtime process and of everything it started on this machine
  (the run's poller, which submits the Jobs, lists their statuses and relays the tasks'
  logs from the datastore, and each task's stand-in process), read from
  ``getrusage(RUSAGE_CHILDREN)`` around the run. The pods run under the node agent,
  another process tree, so their CPU is not counted: this is the runtime's own cost.
  Per remote task: (wide - narrow) / (width - 1). CPU time, unlike wall time, does not
  grow when the machine is busy;
- the most Jobs that existed unfinished at the same moment, sampled from the API server
  every 200 ms: evidence that launches overlap instead of being submitted one by one;
- the code-package bytes uploaded, as the run reported them.

Usage: ``python benchmarks/remote_launch.py [--width N] [--slots N] [--json PATH]``.
Needs a checkout installed with ``pip install -e ".[dev]"`` (kmock, moto, boto3,
kubernetes), like the test suite.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import resource
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from tests.cloud_servers import create_bucket, new_bucket_name, start_moto  # noqa: E402
from tests.remote_env import make_sdk_python, start_kube_stand_in  # noqa: E402

FLOW = """
from metaflowlike import FlowSpec, kubernetes, step


class WideFlow(FlowSpec):
    @step
    def start(self):
        self.items = list(range(WIDTH))
        self.next(self.body, foreach="items")

    @kubernetes(cpu=0.1, memory=256)
    @step
    def body(self):
        print("split", self.input)
        self.out = self.input * 2
        self.next(self.join)

    @step
    def join(self, inputs):
        self.total = len(inputs)  # reads no split's artifacts: the cost is the launch
        self.next(self.end)

    @step
    def end(self):
        print("total", self.total)


if __name__ == "__main__":
    WideFlow()
"""


class JobSampler:
    """Counts the Jobs that exist and have not finished, every ``interval`` seconds."""

    def __init__(self, cluster, interval: float = 0.2) -> None:
        self.cluster, self.interval = cluster, interval
        self.most = 0
        self.seen: set[str] = set()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> JobSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                jobs = self.cluster.jobs()
            except OSError:
                jobs = []
            unfinished = 0
            for job in jobs:
                self.seen.add(job["metadata"]["name"])
                status = job.get("status") or {}
                if not (status.get("succeeded") or status.get("failed")):
                    unfinished += 1
            self.most = max(self.most, unfinished)
            self._stop.wait(self.interval)


def run_flow(folder: Path, width: int, env: dict, cluster) -> dict:
    (folder / "flow.py").write_text(FLOW.replace("WIDTH", str(width)))
    cmd = [sys.executable, "flow.py", "run", "--max-workers", str(max(width, 1))]
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    began = time.monotonic()
    with JobSampler(cluster) as sampler:
        proc = subprocess.run(cmd, cwd=folder, env=env, capture_output=True, text=True)
    wall = time.monotonic() - began
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed:\n{proc.stdout[-2000:]}\n{proc.stderr[-3000:]}")
    uploaded = re.search(
        r"Code package \S+ \((\d+) bytes\): (?:uploaded (\d+) bytes|.*0 bytes)", proc.stdout
    )
    return {
        "width": width,
        "wall_s": wall,
        "cpu_s": (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime),
        "max_unfinished_jobs": sampler.most,
        "jobs": len(sampler.seen),
        "package_bytes": int(uploaded.group(1)) if uploaded else None,
        "uploaded_bytes": int(uploaded.group(2) or 0) if uploaded else None,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--width", type=int, default=100)
    parser.add_argument("--slots", type=int, default=8, help="pods the stand-in node runs at once")
    parser.add_argument("--json", default=None, help="also write the raw numbers here")
    opts = parser.parse_args(argv)
    work = Path(tempfile.mkdtemp(prefix="mfl-remote-bench-"))
    try:
        print("Preparing the stand-in image's Python (boto3 only)...", flush=True)
        sdk_python = make_sdk_python(work / "image-python")
        with start_moto() as s3:
            bucket = new_bucket_name()
            create_bucket("s3", s3.url, bucket)
            cluster = start_kube_stand_in(sdk_python, s3.url, work, slots=opts.slots)
            try:
                env = {k: v for k, v in os.environ.items() if not k.startswith("METAFLOWLIKE_")}
                env.update(
                    KUBECONFIG=str(cluster.kubeconfig),
                    METAFLOWLIKE_DATASTORE_ROOT=f"s3://{bucket}/runs",
                    METAFLOWLIKE_CONFIG=str(work / "no-config.json"),
                    AWS_ENDPOINT_URL=s3.url,
                    AWS_ACCESS_KEY_ID="laptop-key",
                    AWS_SECRET_ACCESS_KEY="laptop-secret",
                    AWS_DEFAULT_REGION="us-east-1",
                )
                results = {}
                for name, width in (
                    ("narrow", 1),
                    ("wide", opts.width),
                    ("wide again", opts.width),
                ):
                    folder = work / "flow"
                    folder.mkdir(exist_ok=True)
                    print(f"Running {name} (width {width})...", flush=True)
                    results[name] = run_flow(folder, width, env, cluster)
            finally:
                cluster.server.stop()
    finally:
        shutil.rmtree(work, ignore_errors=True)

    head = ("run", "width", "wall", "runtime CPU", "max unfinished Jobs", "package uploaded")
    print(f"\n{head[0]:<11} {head[1]:>5} {head[2]:>8} {head[3]:>12} {head[4]:>20} {head[5]:>17}")
    for name, r in results.items():
        print(
            f"{name:<11} {r['width']:>5} {r['wall_s']:>7.1f}s {r['cpu_s']:>11.2f}s "
            f"{r['max_unfinished_jobs']:>20} {r['uploaded_bytes']:>15} B"
        )
    narrow, wide = results["narrow"], results["wide"]
    per_task = (wide["cpu_s"] - narrow["cpu_s"]) / max(opts.width - 1, 1)
    print(
        f"\nRuntime CPU per remote task (submit, poll, log relay): {per_task * 1000:.0f} ms "
        f"(first wide run); "
        f"{(results['wide again']['cpu_s'] - narrow['cpu_s']) / max(opts.width - 1, 1) * 1000:.0f}"
        " ms (second)"
    )
    if opts.json:
        Path(opts.json).write_text(json.dumps({"results": results, "per_task_cpu_s": per_task}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
