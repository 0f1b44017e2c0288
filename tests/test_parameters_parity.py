"""Parameter behaviours Metaflow users rely on: separator lists, METAFLOW_RUN_<NAME>,
current.parameter_names, and read-only parameters and class constants."""

from __future__ import annotations

from metaflowlike import Flow

FLOW = """
from metaflowlike import FlowSpec, step, Parameter, current

class ParamParityFlow(FlowSpec):
    ids = Parameter("ids", separator=",", type=int, default="1,2")
    words = Parameter("words", separator=";", default="a;b")
    alpha = Parameter("alpha", default=0.1)
    learning_rate = Parameter("learning-rate", default=1.0)
    LIMIT = 5

    @step
    def start(self):
        self.names = list(current.parameter_names)
        try:
            self.LIMIT = 6
        except AttributeError as e:
            self.constant_error = str(e)
        try:
            self.alpha = 0.9
        except AttributeError as e:
            self.parameter_error = str(e)
        self.limit_seen = self.LIMIT
        self.next(self.end)

    @step
    def end(self):
        self.total = sum(self.ids)

if __name__ == "__main__":
    ParamParityFlow()
"""


def test_separator_splits_and_converts_each_item(make_flow):
    flow = make_flow(FLOW)
    flow.run("run", "--ids", "3,4,5", "--words", "x;y")
    run = Flow("ParamParityFlow").latest_run
    assert run.data.ids == [3, 4, 5]
    assert run.data.words == ["x", "y"]
    assert run.data.total == 12


def test_separator_applies_to_a_string_default(make_flow):
    flow = make_flow(FLOW)
    flow.run("run")
    run = Flow("ParamParityFlow").latest_run
    assert run.data.ids == [1, 2]
    assert run.data.words == ["a", "b"]


def test_bad_item_in_a_separated_value_names_the_parameter(make_flow):
    flow = make_flow(FLOW)
    proc = flow.run("run", "--ids", "1,x", check=False)
    assert proc.returncode == 1
    assert 'Invalid value "x" for parameter "ids"' in proc.stderr
    assert "Traceback" not in proc.stderr


def test_metaflow_run_environment_variables_set_parameters(make_flow):
    flow = make_flow(FLOW)
    flow.run(
        "run",
        "--ids",
        "9",
        env={
            "METAFLOW_RUN_ALPHA": "0.7",
            "METAFLOW_RUN_LEARNING_RATE": "2.5",
            "METAFLOW_RUN_IDS": "1",
        },
    )
    run = Flow("ParamParityFlow").latest_run
    assert run.data.alpha == 0.7
    assert run.data.learning_rate == 2.5
    assert run.data.ids == [9]  # the command line wins over the environment


def test_current_parameter_names_and_read_only_attributes(make_flow):
    flow = make_flow(FLOW)
    flow.run("run")
    data = Flow("ParamParityFlow").latest_run["start"].task.data
    assert data.names == ["ids", "words", "alpha", "learning_rate"]
    assert "LIMIT" in data.constant_error and "constant" in data.constant_error
    assert "alpha" in data.parameter_error and "Parameter" in data.parameter_error
    assert data.limit_seen == 5
    assert data.alpha == 0.1


def test_uncaught_assignment_fails_the_task_with_attribute_error(make_flow):
    flow = make_flow(
        """
from metaflowlike import FlowSpec, step, Parameter

class AssignFlow(FlowSpec):
    alpha = Parameter("alpha", default=1)

    @step
    def start(self):
        self.alpha = 2
        self.next(self.end)

    @step
    def end(self):
        pass

if __name__ == "__main__":
    AssignFlow()
"""
    )
    proc = flow.run("run", check=False)
    assert proc.returncode == 1
    task = Flow("AssignFlow").latest_run["start"].task
    assert not task.successful
    # a flow mistake: one paragraph naming the file and line, no framework traceback
    assert "Cannot set self.alpha" in task.stderr and "flow0.py:9" in task.stderr
    assert "Traceback" not in task.stderr
    # and the recorded exception is an AttributeError, as in Metaflow
    assert task.exception.type.endswith("ReadOnlyAttribute")
    from metaflowlike.exceptions import ReadOnlyAttribute

    assert issubclass(ReadOnlyAttribute, AttributeError)
