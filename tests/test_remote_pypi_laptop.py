"""A remote ``@pypi`` step needs only its lock on the laptop, never its environment.

A run with one local and one ``@kubernetes`` step, each pinning a different six, runs
against the stand-in cluster (kmock and its node agent, S3 on moto): the laptop's
environment cache ends up holding the local step's environment only, while the pod
builds the remote step's own from the lock the run saved. Real resolutions and
installs from the package index.
"""

from __future__ import annotations

import pytest

from metaflowlike import Flow
from tests import test_kubernetes as kube_tests

kube = kube_tests.kube  # the stand-in cluster, as the @kubernetes tests use it

pytestmark = pytest.mark.timeout(600)

SPLIT = """
from metaflowlike import environment, pypi


class SplitPlacesFlow(FlowSpec):
    @pypi(packages={"six": "1.16.0"})
    @step
    def start(self):
        import six

        self.here_six = six.__version__
        self.next(self.remote)

    @kubernetes
    @environment(vars={"METAFLOWLIKE_ENVS_DIR": "POD_CACHE"})
    @pypi(packages={"six": "1.15.0"})
    @step
    def remote(self):
        import six

        self.remote_six = six.__version__
        self.python = sys.executable
        self.next(self.end)

    @step
    def end(self):  # under --environment=pypi: an environment of the runtime's needs
        pass

if __name__ == "__main__":
    SplitPlacesFlow()
"""


def built(cache) -> set[str]:
    """The environments in a cache folder (named by their 32-digit keys)."""
    return {p.name for p in cache.iterdir() if p.is_dir() and len(p.name) == 32}


def test_a_remote_steps_environment_is_built_in_the_pod_only(kube, tmp_path):
    laptop_cache, pod_cache = tmp_path / "laptop-envs", tmp_path / "pod-envs"
    kube.run(
        SPLIT.replace("POD_CACHE", str(pod_cache)),
        "--environment=pypi",
        "run",
        env={"METAFLOWLIKE_ENVS_DIR": str(laptop_cache)},
    )
    run = Flow("SplitPlacesFlow").latest_run
    assert run.successful
    start, remote = run["start"].task, run["remote"].task
    assert start.data.here_six == "1.16.0" and remote.data.remote_six == "1.15.0"
    local_keys = {start.environment["key"], run["end"].task.environment["key"]}
    remote_key = remote.environment["key"]
    assert remote_key not in local_keys
    assert built(laptop_cache) == local_keys  # no environment made here for "remote"
    assert built(pod_cache) == {remote_key}
    assert remote.data.python.startswith(str(pod_cache / remote_key))
    # the lock was resolved here, before the run, and the run saved it
    assert remote.environment["packages"]["six"] == "1.15.0"

    proc = kube.run(
        None,
        "--environment=pypi",
        "environment",
        "show",
        env={"METAFLOWLIKE_ENVS_DIR": str(laptop_cache)},
    )
    assert f"environment {remote_key[:12]}" in proc.stdout and "not built yet" in proc.stdout
