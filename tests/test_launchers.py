"""The step-decorator hook that picks a step's launcher and changes its command or env."""

from __future__ import annotations

from metaflowlike import Flow

HOOKS = """
import os
import sys
from metaflowlike import FlowSpec, StepDecorator, make_decorator, step

class DevMode(StepDecorator):
    '''Runs its step with `python -X dev` and one more variable.'''
    name = "devmode"

    def task_launch(self, *, plan, step_name):
        plan.command[1:1] = ["-X", "dev"]
        plan.env["HOOKED"] = step_name

class Spawned(StepDecorator):
    name = "spawned"
    defaults = {"how": "subprocess"}

    def launcher_name(self):
        return self.attributes["how"]

devmode = make_decorator(DevMode)
spawned = make_decorator(Spawned)

class HookFlow(FlowSpec):
    @step
    def start(self):
        self.start_dev = sys.flags.dev_mode
        self.start_argv = sys.argv
        self.next(self.tuned)

    @devmode
    @step
    def tuned(self):
        self.tuned_dev = sys.flags.dev_mode
        self.hooked = os.environ.get("HOOKED")
        self.tuned_argv = sys.argv
        self.next(self.spawn)

    @spawned
    @step
    def spawn(self):
        self.spawn_argv = sys.argv
        self.next(self.end)

    @step
    def end(self):
        pass

if __name__ == "__main__":
    HookFlow()
"""


def test_decorator_changes_command_env_and_launcher(make_flow):
    flow = make_flow(HOOKS)
    flow.run("run")
    data = Flow("HookFlow").latest_run["end"].task.data
    # start was forked from the runtime: its argv is the runtime's own
    assert data.start_dev is False and "run" in data.start_argv
    # the changed command ran through the subprocess launcher, as the hook said
    assert data.tuned_dev is True and data.hooked == "tuned" and "step" in data.tuned_argv
    # a decorator that names a launcher gets it
    assert "step" in data.spawn_argv and "spawn" in data.spawn_argv


def test_unknown_launcher_is_refused_before_the_run_exists(make_flow):
    flow = make_flow(HOOKS.replace("@spawned", '@spawned(how="subproces")'))
    proc = flow.run("run", check=False)
    assert proc.returncode == 1
    assert 'Unknown launcher "subproces"' in proc.stderr
    assert 'Did you mean "subprocess"' in proc.stderr
    assert "Traceback" not in proc.stderr
    assert not (flow.root / "flows" / "HookFlow").exists()
