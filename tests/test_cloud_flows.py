"""Whole flows on S3, Azure Blob and GCS emulators, read back from a fresh process.

The servers are real (moto, Azurite, fake-gcs-server) and bound to 127.0.0.1; every
flow runs as `python flow.py --datastore KIND --datastore-root URL run`, exactly as a
user would, and a separate Python process reads the results through the client.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from tests.cloud_servers import (
    SERVER_FIXTURES,
    client_env,
    create_bucket,
    new_bucket_name,
    root_url,
)
from tests.tcp_proxy import TcpProxy

FLOW = """
import os
from metaflowlike import FlowSpec, step, Parameter

class CloudFlow(FlowSpec):
    size_mb = Parameter("size_mb", default=12)

    @step
    def start(self):
        self.big = os.urandom(self.size_mb * 1024 * 1024)
        self.items = list(range(5))
        self.next(self.left, self.right)

    @step
    def left(self):
        self.side = "left"
        self.next(self.fan, foreach="items")

    @step
    def fan(self):
        self.sq = self.input ** 2
        self.big_len = len(self.big)
        self.next(self.gather)

    @step
    def gather(self, inputs):
        self.squares = [i.sq for i in inputs]
        self.merge_artifacts(inputs, include=["big", "side"])
        self.next(self.join)

    @step
    def right(self):
        self.side = "right"
        print("hello from the right branch")
        self.next(self.join)

    @step
    def join(self, inputs):
        self.squares = inputs.gather.squares
        self.big_len = len(inputs.gather.big)
        self.next(self.end)

    @step
    def end(self):
        if os.environ.get("FAIL_AT_END"):
            raise RuntimeError("asked to fail")
        self.done = True

if __name__ == "__main__":
    CloudFlow()
"""

READER = """
import json, sys
from metaflowlike import Flow, namespace, get_metadata
namespace(None)
run = Flow("CloudFlow").latest_run
out = {
    "metadata": get_metadata(),
    "successful": run.successful,
    "squares": run.data.squares,
    "big_len": run.data.big_len,
    "fan_tasks": len(list(run["fan"])),
    "right_stdout": run["right"].task.stdout,
    "big_sha": run["start"].task["big"].sha,
    "origin": run.origin_pathspec,
    "keys": {
        "items": run["start"].task["items"].sha,
        "squares": run["join"].task["squares"].sha,
        "side": run["gather"].task["side"].sha,
    },
}
if len(sys.argv) > 1:  # count the blobs under data/ through the storage API
    from metaflowlike.config import open_datastore

    storage = open_datastore().storage
    prefixes = [f"data/{p}" for p, is_dir in storage.list_dir("data") if is_dir]
    out["blobs"] = sum(len(storage.list_dir(p)) for p in prefixes)
print(json.dumps(out))
"""

KINDS = ["s3", "azure", "gs"]


def _env(extra: dict[str, str]) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("METAFLOWLIKE_")}
    env.update(extra)
    return env


def _run(args: list[str], cwd: Path, env: dict[str, str], check: bool = True, timeout: float = 300):
    proc = subprocess.run(
        [sys.executable, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout
    )
    if check and proc.returncode:
        raise AssertionError(f"{args} exited {proc.returncode}\n{proc.stdout}\n{proc.stderr}")
    return proc


def _read(cwd: Path, env: dict[str, str], count_blobs: bool = False) -> dict:
    (cwd / "reader.py").write_text(READER)
    args = ["reader.py", "--count-blobs"] if count_blobs else ["reader.py"]
    return json.loads(_run(args, cwd, env).stdout.strip().splitlines()[-1])


@pytest.fixture
def server(request):
    def get(kind):
        return request.getfixturevalue(SERVER_FIXTURES[kind])

    return get


def _fresh_root(kind: str, url: str) -> str:
    bucket = new_bucket_name()
    create_bucket(kind, url, bucket)
    return root_url(kind, bucket, "team/runs")


@pytest.mark.parametrize("kind", KINDS)
def test_flow_runs_on_object_storage_and_reads_back(kind, server, tmp_path):
    srv = server(kind)
    root = _fresh_root(kind, srv.url)
    (tmp_path / "flow.py").write_text(textwrap.dedent(FLOW))
    env = _env(client_env(kind, srv.url))
    proc = _run(
        ["flow.py", "--datastore", kind, "--datastore-root", root, "run", "--max-workers", "4"],
        tmp_path,
        env,
    )
    assert "hello from the right branch" in proc.stdout
    assert not (tmp_path / ".metaflowlike").exists()  # nothing went to the local store
    # a fresh process finds the run through the environment variables alone
    reader_env = {**env, "METAFLOWLIKE_DATASTORE": kind, "METAFLOWLIKE_DATASTORE_ROOT": root}
    got = _read(tmp_path, reader_env, count_blobs=True)
    assert got["successful"] is True
    assert got["squares"] == [0, 1, 4, 9, 16]
    assert got["big_len"] == 12 * 1024 * 1024
    assert got["fan_tasks"] == 5
    assert got["right_stdout"] == "hello from the right branch\n"
    assert got["metadata"].startswith(f"{kind}@")

    # identical bytes are uploaded once: a second run reuses the blob
    _run(
        ["flow.py", "--datastore", kind, "--datastore-root", root, "run"],
        tmp_path,
        {**env, "PYTHONHASHSEED": "0"},
    )
    again = _read(tmp_path, reader_env, count_blobs=True)
    assert again["big_sha"] != got["big_sha"]  # os.urandom: new content, new key
    # every value that did not change kept its key, so it was not stored a second time:
    # the second run added exactly one blob, the new random `big`
    assert again["keys"] == got["keys"]
    assert again["blobs"] == got["blobs"] + 1


def test_config_file_and_resume_on_s3(server, tmp_path):
    srv = server("s3")
    root = _fresh_root("s3", srv.url)
    (tmp_path / "flow.py").write_text(textwrap.dedent(FLOW))
    config = tmp_path / "config.json"
    config.write_text(json.dumps({"datastore": "s3", "datastore_root": root}))
    env = _env({**client_env("s3", srv.url), "METAFLOWLIKE_CONFIG": str(config)})
    failed = _run(
        ["flow.py", "run", "--size_mb", "1"], tmp_path, {**env, "FAIL_AT_END": "1"}, check=False
    )
    assert failed.returncode != 0 and "asked to fail" in failed.stderr
    _run(["flow.py", "resume"], tmp_path, env)
    got = _read(tmp_path, env)
    assert got["successful"] and got["origin"] is not None
    assert got["squares"] == [0, 1, 4, 9, 16]


STALL_FLOW = """
import os, time
from metaflowlike import FlowSpec, step

class StallFlow(FlowSpec):
    @step
    def start(self):
        self.before = 1
        self.next(self.slow)

    @step
    def slow(self):
        marker = os.environ["STALL_MARKER"]
        open(marker + ".ready", "w").close()
        while not os.path.exists(marker + ".go"):
            time.sleep(0.05)
        self.payload = os.urandom(2 * 1024 * 1024)
        self.next(self.end)

    @step
    def end(self):
        self.total = len(self.payload)

if __name__ == "__main__":
    StallFlow()
"""


def test_storage_outage_fails_clearly_then_resume_completes(server, tmp_path):
    srv = server("s3")
    root = _fresh_root("s3", srv.url)
    (tmp_path / "flow.py").write_text(STALL_FLOW)
    marker = tmp_path / "stall"
    with TcpProxy(srv.port) as proxy:
        env = _env(
            {
                **client_env("s3", proxy.url),
                "STALL_MARKER": str(marker),
                "METAFLOWLIKE_STORAGE_RETRIES": "3",
            }
        )
        proc = subprocess.Popen(
            [sys.executable, "flow.py", "--datastore", "s3", "--datastore-root", root, "run"],
            cwd=tmp_path,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        deadline = time.time() + 120
        while not (tmp_path / "stall.ready").exists():
            assert proc.poll() is None, proc.communicate()
            assert time.time() < deadline
            time.sleep(0.05)
        proxy.drop()  # the object store goes away while the task is running
        (tmp_path / "stall.go").touch()
        out, err = proc.communicate(timeout=240)
        assert proc.returncode != 0
        assert "s3" in err and root.split("/")[2] in err  # names backend and bucket
        assert client_env("s3", srv.url)["AWS_SECRET_ACCESS_KEY"] not in err + out

        proxy.resume()  # the connection is back
        (tmp_path / "stall.go").touch()
        _run(["flow.py", "--datastore", "s3", "--datastore-root", root, "resume"], tmp_path, env)
    got = subprocess.run(
        [
            sys.executable,
            "-c",
            "from metaflowlike import Flow, namespace; namespace(None); "
            "r = Flow('StallFlow').latest_run; print(r.successful, r.data.total, r['start'].task.origin_pathspec is not None)",
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        env=_env(
            {
                **client_env("s3", srv.url),
                "METAFLOWLIKE_DATASTORE": "s3",
                "METAFLOWLIKE_DATASTORE_ROOT": root,
            }
        ),
    )
    assert got.stdout.split() == ["True", str(2 * 1024 * 1024), "True"], got.stderr


def test_transient_faults_are_absorbed(server, tmp_path):
    srv = server("s3")
    root = _fresh_root("s3", srv.url)
    (tmp_path / "flow.py").write_text(textwrap.dedent(FLOW))
    with TcpProxy(srv.port) as proxy:
        env = _env(client_env("s3", proxy.url))
        proxy.fail_next(2)
        proxy.drop_next(2)
        _run(
            ["flow.py", "--datastore", "s3", "--datastore-root", root, "run", "--size_mb", "1"],
            tmp_path,
            env,
        )
    got = _read(
        tmp_path,
        {
            **_env(client_env("s3", srv.url)),
            "METAFLOWLIKE_DATASTORE": "s3",
            "METAFLOWLIKE_DATASTORE_ROOT": root,
        },
    )
    assert got["successful"] and got["squares"] == [0, 1, 4, 9, 16]
