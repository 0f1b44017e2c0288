"""The code package and the bootstrap: a task runs from the package alone.

The bootstrap command runs in an empty folder, with only the environment a container
would have and a Python that has boto3 but not metaflowlike; the datastore is S3 on a
real moto server."""

from __future__ import annotations

import io
import subprocess
import sys
import tarfile
from pathlib import Path

from metaflowlike import Task, client, code_package
from metaflowlike.bootstrap import bootstrap_command
from metaflowlike.config import open_datastore
from metaflowlike.step_command import build_step_args
from metaflowlike.task import TaskSpec
from tests.cloud_servers import AWS_KEY_ID, AWS_SECRET
from tests.remote_env import container_env

FLOW = """
import os
import sys
import metaflowlike
from metaflowlike import FlowSpec, step
from helper import double

class BootFlow(FlowSpec):
    @step
    def start(self):
        self.value = double(21)
        self.cwd = os.getcwd()
        self.framework = metaflowlike.__file__
        self.interpreter = sys.executable
        print("hello from", current_step())
        print("to stderr", file=sys.stderr)
        self.next(self.end)

    @step
    def end(self):
        pass

def current_step():
    from metaflowlike import current
    return f"{current.step_name} attempt {current.retry_count}"

if __name__ == "__main__":
    BootFlow()
"""


def write_flow(folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "helper.py").write_text("def double(x):\n    return 2 * x\n")
    (folder / "notes.txt").write_text("some notes\n")
    (folder / ".hidden").mkdir(exist_ok=True)
    (folder / ".hidden" / "secret.py").write_text("X = 1\n")
    venv = folder / "venv"
    venv.mkdir(exist_ok=True)
    (venv / "pyvenv.cfg").write_text("home = /usr\n")
    (venv / "junk.py").write_text("Y = 2\n")
    path = folder / "bootflow.py"
    path.write_text(FLOW)
    return path


def test_package_is_deterministic_and_holds_what_a_task_needs(tmp_path):
    flow = write_flow(tmp_path / "src")
    first = code_package.build(str(flow))
    second = code_package.build(str(flow))
    assert first.data == second.data and first.sha256 == second.sha256
    names = set(first.files)
    assert {"bootflow.py", "helper.py", "metaflowlike/__init__.py"} <= names
    assert "click/__init__.py" in names and "cloudpickle/__init__.py" in names
    assert any(n.endswith(".dist-info/entry_points.txt") for n in names)
    assert "metaflowlike_aws/s3_storage.py" in names  # plugins travel too
    assert "notes.txt" not in names and ".hidden/secret.py" not in names
    assert "venv/junk.py" not in names
    assert not any(n.endswith(".pyc") for n in names)
    with tarfile.open(fileobj=io.BytesIO(first.data)) as tar:
        assert {m.mtime for m in tar.getmembers()} == {0}
    with_txt = code_package.build(str(flow), code_package.parse_suffixes(".txt"))
    assert "notes.txt" in with_txt.files and with_txt.sha256 != first.sha256
    (tmp_path / "src" / "helper.py").write_text("def double(x):\n    return x + x\n")
    assert code_package.build(str(flow)).sha256 != first.sha256


def test_bootstrap_runs_the_step_from_the_package_alone(s3_root, sdk_python, tmp_path, monkeypatch):
    import os

    flow = write_flow(tmp_path / "src")
    id_file = tmp_path / "run_id"
    subprocess.run(
        [
            sys.executable,
            str(flow),
            "--datastore-root",
            s3_root,
            "run",
            "--run-id-file",
            str(id_file),
        ],
        check=True,
        capture_output=True,
        cwd=flow.parent,
    )
    run_id = id_file.read_text()
    fds = open_datastore(None, s3_root)
    pkg = code_package.build(str(flow))
    code_package.upload(fds, pkg)
    assert code_package.upload(fds, pkg) == 0  # unchanged code: nothing to upload

    # attempt 1 of start, run the way a pod runs it: bootstrap + self-sufficient step
    spec = TaskSpec("BootFlow", run_id, "start", "1", attempt=1, user="tester")
    top = ["--datastore", "s3", "--datastore-root", s3_root]
    command = bootstrap_command(
        "python",
        code_package.package_url(fds, pkg),
        pkg.sha256,
        pkg.flow_file,
        [*top, "step", *build_step_args(spec)],
    )
    workdir = tmp_path / "container"
    workdir.mkdir()
    env = container_env(
        sdk_python,
        {
            "AWS_ENDPOINT_URL": os.environ["AWS_ENDPOINT_URL"],
            "AWS_ACCESS_KEY_ID": AWS_KEY_ID,
            "AWS_SECRET_ACCESS_KEY": AWS_SECRET,
            "AWS_DEFAULT_REGION": "us-east-1",
            "METAFLOWLIKE_SELF_SUFFICIENT": "1",
        },
    )
    proc = subprocess.run(command, cwd=workdir, env=env, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "hello from start attempt 1" in proc.stdout  # passed through to the pod's log

    client.set_datastore("s3", s3_root)
    client.namespace(None)
    try:
        task = Task(f"BootFlow/{run_id}/start/1")
        assert task.current_attempt == 1 and task.successful
        assert task.data.value == 42
        assert task.data.cwd == str(workdir)
        assert task.data.framework.startswith(str(workdir))  # from the package
        assert task.data.interpreter.startswith(str(sdk_python.parent.parent))
        assert "hello from start attempt 1" in task.stdout
        assert "to stderr" in task.stderr
    finally:
        client.set_datastore(None, None)
        client.default_namespace()


def test_damaged_package_is_refused(tmp_path, sdk_python):
    flow = write_flow(tmp_path / "src")
    pkg = code_package.build(str(flow))
    blob = tmp_path / "pkg.tar.gz"
    blob.write_bytes(pkg.data[:-10] + b"0123456789")
    workdir = tmp_path / "container"
    workdir.mkdir()
    command = bootstrap_command("python", f"file://{blob}", pkg.sha256, pkg.flow_file, ["check"])
    proc = subprocess.run(
        command, cwd=workdir, env=container_env(sdk_python, {}), capture_output=True, text=True
    )
    assert proc.returncode != 0
    assert "damaged" in proc.stderr and pkg.sha256 in proc.stderr
    assert list(workdir.iterdir()) == []
