"""Config / config_expr and @project, through the command line and the client."""

from __future__ import annotations

import json

from metaflowlike import Flow
from tests.flows import two_steps

CONFIG_FLOW = """
from metaflowlike import FlowSpec, step, Config, config_expr, Parameter, retry, environment
import os

class ConfigFlow(FlowSpec):
    cfg = Config("cfg", default="cfg.json")
    extra = Config("extra", default_value={"greeting": "hi"})
    scale = Parameter("scale", default=config_expr("cfg.model.scale * 2"))

    @environment(vars={"MODE": cfg.mode})
    @retry(times=cfg.retries)
    @step
    def start(self):
        self.mode_env = os.environ.get("MODE")
        self.lr = self.cfg.model.lr
        self.greeting = self.extra.greeting
        self.as_dict = self.cfg.to_dict()
        self.next(self.end)

    @step
    def end(self):
        if os.environ.get("FAIL_END"):
            raise RuntimeError("end fails")
        self.done = True

if __name__ == "__main__":
    ConfigFlow()
"""


def _write_cfg(flow, **values):
    cfg = {"mode": "fast", "retries": 0, "model": {"lr": 0.1, "scale": 3}}
    cfg.update(values)
    (flow.path.parent / "cfg.json").write_text(json.dumps(cfg))


def test_config_defaults_reach_decorators_parameters_and_steps(make_flow):
    flow = make_flow(CONFIG_FLOW)
    _write_cfg(flow)
    flow.run("run")
    data = Flow("ConfigFlow").latest_run["start"].task.data
    assert data.mode_env == "fast"
    assert data.lr == 0.1
    assert data.greeting == "hi"
    assert data.scale == 6
    assert data.as_dict == {"mode": "fast", "retries": 0, "model": {"lr": 0.1, "scale": 3}}


def test_config_and_config_value_options_override_defaults(make_flow, tmp_path):
    flow = make_flow(CONFIG_FLOW)
    _write_cfg(flow)
    other = tmp_path / "other.json"
    other.write_text(json.dumps({"mode": "slow", "retries": 1, "model": {"lr": 0.5, "scale": 1}}))
    flow.run(
        "run",
        top=("--config", "cfg", str(other), "--config-value", "extra", '{"greeting": "yo"}'),
    )
    data = Flow("ConfigFlow").latest_run["start"].task.data
    assert (data.mode_env, data.lr, data.greeting, data.scale) == ("slow", 0.5, "yo", 2)


def test_tasks_started_as_subprocesses_see_the_same_configs(make_flow):
    flow = make_flow(CONFIG_FLOW)
    _write_cfg(flow, mode="sub")
    flow.run("run", env={"METAFLOWLIKE_LAUNCHER": "subprocess"})
    data = Flow("ConfigFlow").latest_run["start"].task.data
    assert (data.mode_env, data.lr) == ("sub", 0.1)


def test_resume_uses_the_configs_the_run_started_with(make_flow):
    flow = make_flow(CONFIG_FLOW)
    _write_cfg(flow, mode="first")
    proc = flow.run("run", env={"FAIL_END": "1"}, check=False)
    assert proc.returncode == 1
    _write_cfg(flow, mode="changed", model={"lr": 9.0, "scale": 9})
    flow.run("resume", "start")
    run = Flow("ConfigFlow").latest_run
    assert run.data.done
    start = run["start"].task.data
    assert (start.mode_env, start.lr, start.scale) == ("first", 0.1, 6)


def test_config_mistakes_are_one_paragraph_errors(make_flow, tmp_path):
    flow = make_flow(CONFIG_FLOW)
    proc = flow.run("run", check=False)  # cfg.json missing
    assert proc.returncode == 1
    assert 'Cannot read the file "cfg.json" of config "cfg"' in proc.stderr
    _write_cfg(flow)
    proc = flow.run("run", top=("--config-value", "cgf", "{}"), check=False)
    assert 'has no Config "cgf"' in proc.stderr and 'Did you mean "cfg"' in proc.stderr
    proc = flow.run("run", top=("--config-value", "extra", "{nope"), check=False)
    assert 'Config "extra" from --config-value cannot be parsed' in proc.stderr
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"mode": "x", "retries": 0, "model": {"lr": 1}}))
    proc = flow.run("run", top=("--config", "cfg", str(bad)), check=False)
    assert "config_expr('cfg.model.scale * 2') failed" in proc.stderr
    for p in (proc,):
        assert "Traceback" not in p.stderr


def test_config_with_a_parser_and_assignment_is_refused(make_flow):
    flow = make_flow(
        """
from metaflowlike import FlowSpec, step, Config

def kv_parser(text):
    return dict(line.split("=", 1) for line in text.splitlines() if line)

class ParsedConfigFlow(FlowSpec):
    settings = Config("settings", default_value="a=1\\nb=2", parser=kv_parser)
    toml = Config("toml", default_value='x = 3', parser="tomllib.loads")

    @step
    def start(self):
        self.a = self.settings.a
        self.x = self.toml["x"]
        try:
            self.settings = {}
        except AttributeError as e:
            self.err = str(e)
        self.next(self.end)

    @step
    def end(self):
        pass

if __name__ == "__main__":
    ParsedConfigFlow()
"""
    )
    flow.run("run")
    data = Flow("ParsedConfigFlow").latest_run["start"].task.data
    assert (data.a, data.x) == ("1", 3)
    assert "Config" in data.err


PROJECT_FLOW = """
from metaflowlike import FlowSpec, step, project, current, Config

@project(name="fraud")
class ProjectFlow(FlowSpec):
    @step
    def start(self):
        self.info = (current.project_name, current.branch_name, current.is_production,
                     current.project_flow_name)
        self.next(self.end)

    @step
    def end(self):
        self.end_branch = current.branch_name

if __name__ == "__main__":
    ProjectFlow()
"""


def test_project_branches_and_tags(make_flow):
    flow = make_flow(PROJECT_FLOW)
    env = {"METAFLOWLIKE_USER": "anne"}
    cases = [
        ((), "user.anne", False),
        (("--branch", "feature1"), "test.feature1", False),
        (("--production",), "prod", True),
        (("--production", "--branch", "v2"), "prod.v2", True),
    ]
    for top, branch, prod in cases:
        flow.run("run", top=top, env=env)
        run = Flow("ProjectFlow").latest_run
        assert run["start"].task.data.info == ("fraud", branch, prod, f"fraud.{branch}.ProjectFlow")
        assert run.data.end_branch == branch
        assert {"project:fraud", f"project_branch:{branch}"} <= set(run.system_tags)


def test_project_in_subprocess_tasks_and_from_a_config(make_flow):
    flow = make_flow(
        """
from metaflowlike import FlowSpec, step, project, current, Config, config_expr

@project(name=config_expr("proj.name"))
class CfgProjectFlow(FlowSpec):
    proj = Config("proj", default_value={"name": "from_cfg"})

    @step
    def start(self):
        self.info = (current.project_name, current.branch_name)
        self.next(self.end)

    @step
    def end(self):
        pass

if __name__ == "__main__":
    CfgProjectFlow()
"""
    )
    flow.run("run", top=("--branch", "b1"), env={"METAFLOWLIKE_LAUNCHER": "subprocess"})
    assert Flow("CfgProjectFlow").latest_run["start"].task.data.info == ("from_cfg", "test.b1")


def test_project_mistakes(make_flow):
    flow = make_flow(PROJECT_FLOW.replace('name="fraud"', 'name="Fraud Model"'))
    proc = flow.run("run", check=False)
    assert proc.returncode == 1
    assert "@project(name='Fraud Model')" in proc.stderr and "Traceback" not in proc.stderr
    plain = make_flow(two_steps("PlainFlow"))
    proc = plain.run("run", top=("--branch", "x"), check=False)
    assert proc.returncode == 1
    assert "--branch only applies to a flow decorated with @project" in proc.stderr
