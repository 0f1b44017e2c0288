"""Start the real ``metaflowlike ui`` command on a free port, as a user would.

The server is a child process reading a datastore; ``UiServer.get`` asks it over HTTP.
It is stopped by its PID when the ``with`` block ends."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from tests.tethered import tether

CONSOLE = Path(sys.executable).with_name("metaflowlike")

#: a flow whose ``start`` prints ``tick i`` every 0.25 s, TICKS times: a running task
LIVE_FLOW = """
import time
from metaflowlike import FlowSpec, step

class LiveFlow(FlowSpec):
    @step
    def start(self):
        for i in range(TICKS):
            print("tick", i, flush=True)
            time.sleep(0.25)
        self.next(self.end)

    @step
    def end(self):
        pass

if __name__ == "__main__":
    LiveFlow()
"""


def start_live_run(folder: Path, ticks: int) -> tuple[subprocess.Popen, Path]:
    """Start ``LiveFlow`` in ``folder`` (its logs saved every 0.5 s while it runs);
    returns the ``run`` process, which the caller waits for, and the datastore root."""
    (folder / "liveflow.py").write_text(LIVE_FLOW.replace("TICKS", str(ticks)))
    root = folder / "ds"
    env = {k: v for k, v in os.environ.items() if not k.startswith("METAFLOWLIKE_")}
    env["METAFLOWLIKE_LOG_UPLOAD_INTERVAL"] = "0.5"
    run = subprocess.Popen(
        [sys.executable, "liveflow.py", "--datastore-root", str(root), "run"],
        cwd=folder, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )  # fmt: skip
    return run, root


_URL = re.compile(r"at (http://\S+/) ")


@dataclass
class Response:
    status: int
    headers: dict[str, str]
    body: bytes

    @property
    def text(self) -> str:
        return self.body.decode("utf-8", "replace")

    def json(self):
        return json.loads(self.body)


class UiServer:
    def __init__(self, *args: str, env: dict | None = None, cwd: str | None = None) -> None:
        full_env = {k: v for k, v in os.environ.items() if not k.startswith("METAFLOWLIKE_")}
        full_env.update(env or {})
        self.proc = subprocess.Popen(
            [str(CONSOLE), "ui", "--port", "0", *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=full_env,
            cwd=cwd,
            preexec_fn=tether(),
        )
        self.url = ""
        self.stderr = ""

    def __enter__(self) -> UiServer:
        deadline = time.time() + 60
        while time.time() < deadline:
            line = self.proc.stdout.readline()  # type: ignore[union-attr]
            m = _URL.search(line)
            if m:
                self.url = m.group(1)
                return self
            if not line and self.proc.poll() is not None:
                break
        self.stop()
        raise AssertionError(f"metaflowlike ui did not start:\n{self.stderr}")

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        for stream in (self.proc.stderr, self.proc.stdout):
            if stream is not None and not stream.closed:
                if stream is self.proc.stderr:
                    self.stderr += stream.read()
                stream.close()

    def request(self, path: str, method: str = "GET") -> Response:
        req = urllib.request.Request(self.url + path.lstrip("/"), method=method)
        try:
            with urllib.request.urlopen(req, timeout=60) as r:
                return Response(r.status, dict(r.headers), r.read())
        except urllib.error.HTTPError as e:
            return Response(e.code, dict(e.headers), e.read())

    def get(self, path: str) -> dict:
        """The JSON of a GET that must succeed."""
        r = self.request(path)
        assert r.status == 200, (path, r.status, r.text)
        return r.json()
