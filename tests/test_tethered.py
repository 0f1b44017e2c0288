"""The stand-in servers, and the containers they run, die with a pytest that is SIGKILLed.

A pytest started here uses the real fixtures (moto, Azurite, fake-gcs-server, the
Kubernetes and the Batch stand-ins), starts a long container on each stand-in, and waits.
It is then SIGKILLed, so that no fixture teardown runs: every process it started, and
every process those started, must be gone soon after.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent

HELD = """
import time
from pathlib import Path

POD = {
    "apiVersion": "batch/v1",
    "kind": "Job",
    "metadata": {"name": "held"},
    "spec": {"template": {"spec": {"restartPolicy": "Never", "containers": [
        {"name": "task", "image": "python:3.11", "command": ["sh", "-c", "sleep 613 & sleep 611"]}
    ]}}},
}


def test_hold(moto_server, azurite_server, fake_gcs_server, kube_cluster, batch_service):
    kube_cluster.api.call("POST", "/apis/batch/v1/namespaces/default/jobs", POD)
    batch = batch_service.client()
    definition = batch.register_job_definition(
        jobDefinitionName="held",
        type="container",
        containerProperties={
            "image": "python:3.11", "vcpus": 1, "memory": 256,
            "command": ["sh", "-c", "sleep 614 & sleep 612"],
        },
    )["jobDefinitionArn"]
    batch.submit_job(jobName="held", jobQueue=batch_service.queue, jobDefinition=definition)
    Path("READY_FILE").touch()
    time.sleep(600)
"""

#: what must be running under the held pytest before it is killed (in its command line)
EXPECTED = {
    "moto": "moto.server",
    "Azurite": "azurite-blob",
    "fake-gcs-server": "fake-gcs-server",
    "the Kubernetes stand-in": "tests.kube_stand_in",
    "the Batch stand-in": "tests.batch_stand_in",
    "the pod": "sleep 611",
    "the pod's child": "sleep 613",
    "the Batch job": "sleep 612",
    "the Batch job's child": "sleep 614",
}


def _processes() -> dict[int, tuple[int, str, str]]:
    """pid -> (parent pid, start time, command line) of every process now."""
    out = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()
            cmdline = Path(f"/proc/{entry}/cmdline").read_bytes().replace(b"\0", b" ")
        except OSError:
            continue
        out[int(entry)] = (int(stat[1]), stat[19], cmdline.decode(errors="replace").strip())
    return out


def _descendants(root: int) -> dict[int, tuple[str, str]]:
    """pid -> (start time, command line) of every process below ``root``."""
    procs = _processes()
    found: dict[int, tuple[str, str]] = {}
    frontier = [root]
    while frontier:
        parent = frontier.pop()
        for pid, (ppid, start, cmd) in procs.items():
            if ppid == parent and pid not in found:
                found[pid] = (start, cmd)
                frontier.append(pid)
    return found


def _alive(procs: dict[int, tuple[str, str]]) -> dict[int, str]:
    """Those of ``procs`` still running (same pid and start time), zombies aside."""
    now = _processes()
    alive = {}
    for pid, (start, cmd) in procs.items():
        if pid in now and now[pid][1] == start:
            try:
                state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
            except OSError:
                continue
            if state != "Z":
                alive[pid] = cmd
    return alive


@pytest.mark.timeout(900)
def test_a_sigkilled_pytest_leaves_no_server_or_container_behind(tmp_path):
    ready = tmp_path / "ready"
    test_file = tmp_path / "test_held.py"
    test_file.write_text(HELD.replace("READY_FILE", str(ready)))
    env = {k: v for k, v in os.environ.items() if not k.startswith("METAFLOWLIKE_")}
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO), env.get("PYTHONPATH")) if p)
    held = subprocess.Popen(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:kmock", "-p", "no:cacheprovider",
         "-p", "tests.cloud_servers", "-p", "tests.remote_env", str(test_file)],
        cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
        start_new_session=True,
    )  # fmt: skip
    started: dict[int, tuple[str, str]] = {}
    try:

        def missing() -> list[str]:
            if held.poll() is not None:
                raise AssertionError(f"the held pytest ended:\n{held.stdout.read().decode()}")
            started.update(_descendants(held.pid))
            commands = " | ".join(cmd for _, cmd in started.values())
            absent = [what for what, mark in EXPECTED.items() if mark not in commands]
            return absent if ready.exists() else ["the test itself", *absent]

        deadline = time.monotonic() + 600
        while missing() and time.monotonic() < deadline:
            time.sleep(0.2)
        assert not missing(), f"never started under the held pytest: {missing()}"
        os.kill(held.pid, signal.SIGKILL)
        held.wait()
        deadline = time.monotonic() + 60
        while _alive(started) and time.monotonic() < deadline:
            time.sleep(0.2)
        survivors = _alive(started)
        assert not survivors, f"still running after their pytest was killed: {survivors}"
    finally:
        for pid in _alive(started):  # whatever outlived the test: do not leak it
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        if held.poll() is None:
            held.kill()
            held.wait()
        held.stdout.close()
