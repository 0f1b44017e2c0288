"""The worked example of docs/extending.md, run as written: a third-party step
decorator, installed as a package with an entry point, used in code and with --with."""

from __future__ import annotations

import re

import pytest

from metaflowlike import Flow

from .flowrunner import REPO
from .plugin_dist import install_plugin

FLOW = """
from metaflowlike import FlowSpec, step, stopwatch


class TimedFlow(FlowSpec):
    @stopwatch(artifact="train_seconds")
    @step
    def start(self):
        self.items = [1, 2]
        self.next(self.work, foreach="items")

    @step
    def work(self):
        self.next(self.join)

    @step
    def join(self, inputs):
        self.next(self.end)

    @step
    def end(self):
        pass


if __name__ == "__main__":
    TimedFlow()
"""


def _example() -> tuple[str, dict[str, str]]:
    """The plugin module and its step-decorator entry points, as the page shows them."""
    page = (REPO / "docs" / "extending.md").read_text()
    section = page[page.index("### A worked example") :]
    module = re.search(r"```python\n(.*?)```", section, re.S).group(1)
    toml = re.search(r"```toml\n(.*?)```", section, re.S).group(1)
    group = toml[toml.index('[project.entry-points."metaflowlike.step_decorators"]') :]
    lines = re.findall(r'^(\w+) = "([^"]+)"$', group, re.M)
    return module, dict(lines)


@pytest.fixture
def stopwatch_env(tmp_path) -> dict[str, str]:
    """The example package installed: the environment that makes a process see it."""
    module, entry_points = _example()
    return install_plugin(
        tmp_path / "site",
        "metaflowlike-stopwatch",
        {"metaflowlike_stopwatch": module},
        {"metaflowlike.step_decorators": entry_points},
    )


def test_a_third_party_step_decorator_installs_and_runs_with_and_without_with(
    make_flow, stopwatch_env
):
    env = stopwatch_env
    flow = make_flow(FLOW)

    flow.run("run", env=env)  # in code only: @stopwatch on start
    run = Flow("TimedFlow").latest_run
    assert run["start"].task.data.train_seconds >= 0
    assert "elapsed" not in run["end"].task.data
    assert f"stopwatch: TimedFlow/{run.id}/start/" in run["start"].task.stdout

    flow.run("run", "--with", "stopwatch", env=env)  # every step; start keeps its own
    run = Flow("TimedFlow").latest_run
    assert run["start"].task.data.train_seconds >= 0
    assert "elapsed" not in run["start"].task.data
    for step in ("work", "join", "end"):
        for task in run[step]:
            assert task.data.elapsed >= 0
            assert f"stopwatch: {task.pathspec} attempt 0 ok" in task.stdout

    flow.run("run", "--with", "stopwatch:artifact=seconds", env=env)
    assert Flow("TimedFlow").latest_run["end"].task.data.seconds >= 0


def test_a_third_party_decorator_refuses_a_bad_argument_in_one_paragraph(make_flow, stopwatch_env):
    env = stopwatch_env
    flow = make_flow(FLOW)
    proc = flow.run("run", "--with", "stopwatch:artifact=1x", env=env, check=False)
    assert proc.returncode == 1
    assert "artifact= must be a Python name, not '1x'" in proc.stderr
    assert "Traceback" not in proc.stderr
    proc = flow.run("run", "--with", "stopwach", env=env, check=False)
    assert proc.returncode == 1
    assert 'Unknown step decorator "stopwach"' in proc.stderr
    assert 'Did you mean "stopwatch"?' in proc.stderr
