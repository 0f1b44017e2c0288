"""``@pypi``, ``@pypi_base`` and ``--environment=pypi|uv``: real resolutions and installs.

Flows run as ``python flow.py --environment=pypi run`` subprocesses; uv resolves small
pure-Python packages from the package index and builds real virtualenvs. Every test
shares one environment cache (``METAFLOWLIKE_ENVS_DIR``) and uv's own cache, so each
environment is built once per session, as it would be on a laptop.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from metaflowlike import Flow
from metaflowlike.environments.request import merge, requirement_line

pytestmark = pytest.mark.timeout(300)

HERE_PYTHON = f"{sys.version_info.major}.{sys.version_info.minor}"


@pytest.fixture(scope="session")
def envs_root(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("envs")


@pytest.fixture
def pypi_flow(make_flow, envs_root, monkeypatch):
    monkeypatch.setenv("METAFLOWLIKE_ENVS_DIR", str(envs_root))
    monkeypatch.delenv("METAFLOWLIKE_ENVIRONMENT", raising=False)
    return make_flow


def env_dirs(root: Path) -> set[str]:
    return {p.name for p in root.iterdir() if p.is_dir() and len(p.name) == 32}


TWO_VERSIONS = f"""
from metaflowlike import FlowSpec, step, pypi, pypi_base

@pypi_base(packages={{"six": "1.16.0"}})
class TwoVersionsFlow(FlowSpec):
    @step
    def start(self):
        import six
        self.start_six = six.__version__
        self.next(self.older)

    @pypi(packages={{"six": "1.15.0"}}, python="{HERE_PYTHON}")
    @step
    def older(self):
        import six
        self.older_six = six.__version__
        print("older sees six", six.__version__)
        try:
            import pytest  # installed where the flow was started, but not declared
            self.undeclared = pytest.__file__
        except ImportError as e:
            self.undeclared = "ImportError: " + str(e)
        self.next(self.end)

    @pypi(disabled=True)
    @step
    def end(self):
        import pytest  # the flow's own interpreter: everything installed there
        self.end_has_pytest = True

if __name__ == "__main__":
    TwoVersionsFlow()
"""


def test_steps_see_only_their_own_packages_and_a_second_run_reuses_them(pypi_flow, envs_root):
    flow = pypi_flow(TWO_VERSIONS)
    flow.run("run", top=("--environment", "pypi"))
    run = Flow("TwoVersionsFlow").latest_run
    assert run.successful
    assert run["start"].task.data.start_six == "1.16.0"
    assert run["older"].task.data.older_six == "1.15.0"
    assert run["older"].task.data.undeclared.startswith("ImportError: No module named 'pytest'")
    assert run["end"].task.data.end_has_pytest

    start_env, older_env = run["start"].task.environment, run["older"].task.environment
    assert start_env["type"] == "pypi" and start_env["packages"]["six"] == "1.16.0"
    assert older_env["packages"]["six"] == "1.15.0"
    assert older_env["python"].startswith(HERE_PYTHON + ".")
    assert (
        "six==1.15.0" in older_env["requirements"] and "--hash=sha256:" in older_env["requirements"]
    )
    assert start_env["key"] != older_env["key"]
    assert run["end"].task.environment is None
    assert {start_env["key"], older_env["key"]} <= env_dirs(envs_root)

    # a second run reuses the cached environments
    first, before = run, env_dirs(envs_root)
    out = flow.run("run", top=("--environment", "pypi"))
    second = Flow("TwoVersionsFlow").latest_run
    assert second.id != first.id and second.successful
    assert env_dirs(envs_root) == before  # no new environment directory
    assert "Building environment" not in out.stderr
    for step in ("start", "older"):
        assert second[step].task.environment["key"] == first[step].task.environment["key"]


RESUMABLE = """
import os
from metaflowlike import FlowSpec, step, pypi

class ResumeEnvFlow(FlowSpec):
    @pypi(packages={"six": ">=1.15"})
    @step
    def start(self):
        import six
        self.six = six.__version__
        self.next(self.end)

    @pypi(packages={"six": ">=1.15"})
    @step
    def end(self):
        if os.environ.get("BREAK_END"):
            raise RuntimeError("end is broken")
        import six
        self.same = six.__version__ == self.six

if __name__ == "__main__":
    ResumeEnvFlow()
"""


def test_resume_reuses_the_environment_saved_with_the_origin_run(pypi_flow, envs_root):
    flow = pypi_flow(RESUMABLE)
    failed = flow.run("run", top=("--environment", "pypi"), env={"BREAK_END": "1"}, check=False)
    assert failed.returncode != 0 and "end is broken" in failed.stderr
    origin = Flow("ResumeEnvFlow").latest_run
    saved = origin["start"].task.environment
    # forget every cached resolution: resume must take the origin run's lock as is
    for cached in (envs_root / "resolved").iterdir():
        cached.unlink()
    flow.run("resume", top=("--environment", "pypi"))
    run = Flow("ResumeEnvFlow").latest_run
    assert run.id != origin.id and run.successful and run.data.same
    assert run["end"].task.environment["key"] == saved["key"]
    assert list((envs_root / "resolved").iterdir()) == []  # nothing was resolved again


def test_at_pypi_without_the_pypi_environment_says_to_add_it(pypi_flow):
    flow = pypi_flow(TWO_VERSIONS)
    proc = flow.run("run", check=False)
    assert proc.returncode == 1
    assert "--environment=pypi" in proc.stderr and "Traceback" not in proc.stderr
    assert not (flow.root / "flows").exists()  # refused before a run id existed


UNKNOWN = """
from metaflowlike import FlowSpec, step, pypi

class BadEnvFlow(FlowSpec):
    @step
    def start(self):
        self.next(self.end)

    @pypi(packages=@PACKAGES@, python=@PYTHON@)
    @step
    def end(self):
        pass

if __name__ == "__main__":
    BadEnvFlow()
"""


def bad_flow(pypi_flow, packages: dict, python: str | None = None):
    source = UNKNOWN.replace("@PACKAGES@", repr(packages)).replace("@PYTHON@", repr(python))
    return pypi_flow(source)


def test_unknown_package_is_named_before_any_task_starts(pypi_flow):
    flow = bad_flow(pypi_flow, {"metaflowlike-no-such-package-zz": "1.0"})
    proc = flow.run("run", top=("--environment", "pypi"), check=False)
    assert proc.returncode == 1
    assert proc.stderr.startswith("Cannot resolve the environment:")
    assert f'@pypi on step "end" ({flow.path.name}:11) asks for ' in proc.stderr
    assert '"metaflowlike-no-such-package-zz"' in proc.stderr
    assert "package index does not have" in proc.stderr
    assert "Traceback" not in proc.stderr
    assert not (flow.root / "flows").exists()


def test_unsatisfiable_set_names_the_conflict(pypi_flow):
    # python-dateutil 2.8.2 needs six>=1.5
    flow = bad_flow(pypi_flow, {"python-dateutil": "2.8.2", "six": "<1.5"})
    proc = flow.run("run", top=("--environment", "pypi"), check=False)
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    assert "no set of versions satisfies" in proc.stderr
    assert "python-dateutil==2.8.2" in proc.stderr and "six<1.5" in proc.stderr
    assert "six>=1.5" in proc.stderr  # uv's explanation of the conflict
    assert not (flow.root / "flows").exists()


def test_missing_python_version_says_which_and_how_to_get_it(pypi_flow):
    flow = bad_flow(pypi_flow, {"six": "1.16.0"}, python="3.99")
    proc = flow.run("run", top=("--environment", "pypi"), check=False)
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    assert proc.stderr.startswith("Python version not available: Python 3.99")
    assert "uv python install 3.99" in proc.stderr
    assert "UV_PYTHON_DOWNLOADS=automatic" in proc.stderr


def test_conda_environment_is_refused_with_one_paragraph(pypi_flow):
    flow = pypi_flow(TWO_VERSIONS)
    proc = flow.run("run", top=("--environment", "conda"), check=False)
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    assert "--environment=conda is not supported" in proc.stderr
    assert "--environment=pypi" in proc.stderr


def test_environment_resolve_and_show_print_each_step(pypi_flow):
    flow = pypi_flow(TWO_VERSIONS)
    resolved = flow.run("environment", "resolve", top=("--environment", "pypi")).stdout
    assert "Environment: pypi" in resolved
    assert "Step start: environment" in resolved and "    six==1.16.0" in resolved
    assert "Step older: environment" in resolved and "    six==1.15.0" in resolved
    assert "Step end: the flow's own interpreter" in resolved
    shown = flow.run("environment", "show", top=("--environment", "pypi")).stdout
    assert shown == resolved

    flow.run("run", top=("--environment", "pypi"))
    run = Flow("TwoVersionsFlow").latest_run
    saved = flow.run("environment", "show", "--run-id", run.id).stdout
    assert f"Step older: environment {run['older'].task.environment['key'][:12]}" in saved
    assert "(Python " in saved and ", built)" in saved


UV_FLOW = """
from metaflowlike import FlowSpec, step

class UvProjectFlow(FlowSpec):
    @step
    def start(self):
        import six
        self.six = six.__version__
        try:
            import pytest
            self.isolated = False
        except ImportError:
            self.isolated = True
        self.next(self.end)

    @step
    def end(self):
        pass

if __name__ == "__main__":
    UvProjectFlow()
"""


def test_uv_environment_uses_the_projects_lock(pypi_flow, tmp_path):
    from metaflowlike.environments.uv_tool import run_uv

    project = tmp_path / "project"
    (project / "flows").mkdir(parents=True)
    (project / "pyproject.toml").write_text(
        textwrap.dedent(
            f"""
            [project]
            name = "uv-project"
            version = "0.1.0"
            requires-python = ">={HERE_PYTHON}"
            dependencies = ["six==1.16.0"]
            """
        )
    )
    (project / ".python-version").write_text(HERE_PYTHON + "\n")
    locked = run_uv(["lock", "--project", str(project)])
    assert locked.returncode == 0, locked.stderr
    flow = pypi_flow(UV_FLOW, name="project/flows/uvflow.py")
    flow.run("run", top=("--environment", "uv"))
    run = Flow("UvProjectFlow").latest_run
    assert run.successful and run["start"].task.data.six == "1.16.0"
    assert run["start"].task.data.isolated
    env = run["start"].task.environment
    assert env["type"] == "uv" and env["packages"]["six"] == "1.16.0"
    assert run["end"].task.environment["key"] == env["key"]  # one environment for the flow


def test_uv_environment_without_a_project_says_how_to_make_one(pypi_flow):
    flow = pypi_flow(UV_FLOW)
    proc = flow.run("run", top=("--environment", "uv"), check=False)
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    assert "needs a uv project" in proc.stderr and "uv init" in proc.stderr


@pytest.fixture
def pod_python(tmp_path) -> Path:
    """A Python like a container image's: pip, click and cloudpickle, but neither uv
    nor metaflowlike installed."""
    from metaflowlike.environments.uv_tool import run_uv

    venv = tmp_path / "pod-python"
    made = run_uv(["venv", "--quiet", "--seed", "--python", sys.executable, str(venv)])
    assert made.returncode == 0, made.stderr
    python = venv / "bin" / "python"
    added = run_uv(["pip", "install", "--quiet", "--python", str(python), "click", "cloudpickle"])
    assert added.returncode == 0, added.stderr
    return python


def test_remote_bootstrap_builds_from_the_saved_lock_in_an_empty_folder(
    pypi_flow, tmp_path, pod_python
):
    """What a pod runs: with only Python and pip (uv gets installed), rebuild the step's
    environment from the lock the run saved in a fresh environment cache, in an empty
    folder, then run the step command under the environment's interpreter."""
    from metaflowlike.environments.build import shim_dir

    flow = pypi_flow(TWO_VERSIONS)
    flow.run("run", top=("--environment", "pypi"))
    run = Flow("TwoVersionsFlow").latest_run
    start_task = run["start"].task
    workdir, cache = tmp_path / "pod", tmp_path / "pod-envs"
    workdir.mkdir()
    step = [
        str(flow.path),
        "--datastore-root",
        str(flow.root),
        "step",
        "older",
        "--run-id",
        run.id,
        "--task-id",
        "99",
        "--input-paths",
        f"{run.id}/start/{start_task.id}",
    ]
    code = shim_dir(str(tmp_path / "code"))  # metaflowlike's code, as a package would ship it
    keep = ("PIP_", "HOME", "UV_", "SSL_CERT_")  # the image's own settings: index, CA
    env = {k: v for k, v in os.environ.items() if k.startswith(keep)}
    env.update(PATH="/usr/bin:/bin", METAFLOWLIKE_ENVS_DIR=str(cache), PYTHONPATH=code)
    bootstrap = [str(pod_python), "-m", "metaflowlike.environments.bootstrap"]
    proc = subprocess.run(
        [*bootstrap, "TwoVersionsFlow", "--", *step],
        cwd=workdir,
        env=env,
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "Installing uv" in proc.stderr and (cache / ".uv" / "bin" / "uv").exists()
    key = run["older"].task.environment["key"]
    assert env_dirs(cache) == {key}
    lock = json.loads((cache / key / "metaflowlike-lock.json").read_text())
    assert lock["packages"]["six"] == "1.15.0"
    record = json.loads(
        (
            flow.root / "flows" / "TwoVersionsFlow" / run.id / "older" / "99" / "0" / "task.json"
        ).read_text()
    )
    assert record["status"] == "ok"
    assert "older sees six 1.15.0" in proc.stdout


def test_requirement_lines_follow_metaflows_spelling():
    assert requirement_line("pandas", "2.2.3") == "pandas==2.2.3"
    assert requirement_line("scikit-learn", ">=1.5") == "scikit-learn>=1.5"
    assert requirement_line("six", "") == "six"
    assert requirement_line("numpy", "~=1.26.0") == "numpy~=1.26.0"
    # the user's pin of a runtime dependency wins over metaflowlike's own range
    assert merge(["Click==8.1.0"], ["click>=8.0", "cloudpickle>=2.0"]) == (
        "Click==8.1.0",
        "cloudpickle>=2.0",
    )


def test_an_interrupted_build_leaves_nothing_that_looks_built(tmp_path, monkeypatch):
    """A build killed halfway leaves only a temporary folder: never an environment under
    its key. An old temporary folder and debris under the key are cleared by the next
    build, which then succeeds."""
    from metaflowlike.environments.build import ensure_built, env_python, is_built
    from metaflowlike.environments.lock import resolve
    from metaflowlike.environments.request import EnvRequest

    monkeypatch.setenv("METAFLOWLIKE_ENVS_DIR", str(tmp_path))
    lock = resolve(EnvRequest(("six==1.16.0",), None, "a test"))
    stale = tmp_path / f".build-{lock.key[:12]}-dead"
    (stale / "lib").mkdir(parents=True)
    os.utime(stale, (1, 1))  # as if its build died long ago
    debris = tmp_path / lock.key
    (debris / "bin").mkdir(parents=True)
    assert not is_built(lock.key)

    folder = ensure_built(lock)
    assert is_built(lock.key) and not stale.exists()
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".build-")] == []
    out = subprocess.run(
        [env_python(folder), "-c", "import six; print(six.__version__)"],
        capture_output=True,
        text=True,
    )
    assert out.stdout.strip() == "1.16.0"
