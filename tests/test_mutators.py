"""FlowMutator / StepMutator: decorators added and removed before the run, from configs."""

from __future__ import annotations

import json

from metaflowlike import Flow

FLOW = """
import json
import os
from metaflowlike import (FlowSpec, step, FlowMutator, StepMutator, Config, Parameter,
                          current, user_step_decorator, retry, environment)

@user_step_decorator
def stamp(step_name, flow, inputs=None, attributes=None):
    yield
    flow.stamped = attributes.get("label", "none")

class robust_flow(FlowMutator):
    def init(self, *args, **kwargs):
        self.label = kwargs.get("label", "default")

    def pre_mutate(self, mutable_flow):
        for name, step in mutable_flow.steps:
            step.add_decorator("retry:times=1", duplicates=step.IGNORE)

    def mutate(self, mutable_flow):
        cfg = dict(mutable_flow.configs)["cfg"]
        params = [name for name, _ in mutable_flow.parameters]
        for name, step in mutable_flow.steps:
            step.add_decorator(stamp, deco_kwargs={"label": f"{self.label}-{cfg.suffix}"})
            if name in cfg.no_env:
                step.remove_decorator("environment")
        specs = {n: dict(s.decorator_specs)["retry"] for n, s in mutable_flow.steps}
        print("MUTATED", json.dumps({"params": params, "retry": specs}), flush=True)

class with_mode(StepMutator):
    def mutate(self, mutable_step):
        mutable_step.add_decorator(environment, deco_kwargs={"vars": {"MODE": "mutated"}},
                                   duplicates=mutable_step.OVERRIDE)

@robust_flow(label="L")
class MutatedFlow(FlowSpec):
    cfg = Config("cfg", default_value={"suffix": "s", "no_env": ["end"]})
    alpha = Parameter("alpha", default=1)

    @retry(times=0)
    @environment(vars={"MODE": "original"})
    @step
    def start(self):
        self.mode = os.environ.get("MODE")
        self.next(self.middle)

    @with_mode
    @environment(vars={"MODE": "original"})
    @step
    def middle(self):
        self.mode = os.environ.get("MODE")
        self.attempt = current.retry_count
        if self.attempt == 0:
            raise RuntimeError("first attempt fails")
        self.next(self.end)

    @environment(vars={"MODE": "original"})
    @step
    def end(self):
        self.mode = os.environ.get("MODE")

if __name__ == "__main__":
    MutatedFlow()
"""


def _mutated_line(stdout: str) -> dict:
    line = next(x for x in stdout.splitlines() if x.startswith("MUTATED "))
    return json.loads(line[len("MUTATED ") :])


def test_mutators_add_override_and_remove_decorators(make_flow):
    flow = make_flow(FLOW)
    proc = flow.run("run")
    seen = _mutated_line(proc.stdout)
    assert seen["params"] == ["alpha"]
    # @retry(times=0) written in the code is kept (IGNORE); the other steps get times=1
    assert seen["retry"] == {"start": {"times": 0, "minutes_between_retries": 2}} | {
        s: {"times": 1, "minutes_between_retries": 2} for s in ("middle", "end")
    }
    run = Flow("MutatedFlow").latest_run
    start, middle, end = (run[s].task.data for s in ("start", "middle", "end"))
    assert middle.attempt == 1  # the retry the flow mutator added
    assert (start.mode, middle.mode, end.mode) == ("original", "mutated", None)
    assert (start.stamped, middle.stamped, end.stamped) == ("L-s", "L-s", "L-s")


def test_mutators_see_configs_from_the_command_line_in_subprocess_tasks(make_flow):
    flow = make_flow(FLOW)
    flow.run(
        "run",
        top=("--config-value", "cfg", '{"suffix": "cli", "no_env": []}'),
        env={"METAFLOWLIKE_LAUNCHER": "subprocess"},
    )
    run = Flow("MutatedFlow").latest_run
    assert run["end"].task.data.mode == "original"
    assert run["start"].task.data.stamped == "L-cli"
    assert run["middle"].task.data.mode == "mutated"


def test_bare_mutators_and_mistakes(make_flow):
    flow = make_flow(
        """
from metaflowlike import FlowSpec, step, FlowMutator, StepMutator

class tag_all(FlowMutator):
    def mutate(self, mutable_flow):
        for name, s in mutable_flow.steps:
            s.add_decorator("environment", deco_kwargs={"vars": {"WHO": name}})

class typo(StepMutator):
    def mutate(self, mutable_step):
        mutable_step.add_decorator("retyr")

@tag_all
class BareFlow(FlowSpec):
    @step
    def start(self):
        import os
        self.who = os.environ["WHO"]
        self.next(self.end)

    @step
    def end(self):
        pass

if __name__ == "__main__":
    BareFlow()
"""
    )
    flow.run("run")
    assert Flow("BareFlow").latest_run["start"].task.data.who == "start"
    broken = make_flow(
        flow.path.read_text().replace("    @step\n    def end", "    @typo\n    @step\n    def end")
    )
    proc = broken.run("run", check=False)
    assert proc.returncode == 1
    assert 'Did you mean "retry"' in proc.stderr and "Traceback" not in proc.stderr
