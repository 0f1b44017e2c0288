"""The step command line: built from a TaskSpec and parsed back in one place."""

from __future__ import annotations

import dataclasses

import pytest

from metaflowlike.step_command import (
    BadStepCommand,
    build_step_args,
    covered_fields,
    parse_step_args,
    task_command,
)
from metaflowlike.task import TaskSpec

FULL = TaskSpec(
    flow_name="MyFlow",
    run_id="1700000000000001",
    step_name="train",
    task_id="17",
    attempt=2,
    input_paths=["1700000000000001/start/1", "1700000000000001/other/3"],
    split_index=4,
    max_num_splits=55,
    user="alice",
    tags=["user:alice", "exp 1", "--odd"],
    origin_run_id="1699999999999999",
    namespace="user:alice",
    max_retries=3,
    catch_fallback="killed by signal 9",
    origin_task="MyFlow/1699999999999999/train/9",
)


def test_every_taskspec_field_is_on_the_command_line():
    names = {f.name for f in dataclasses.fields(TaskSpec)}
    assert names == covered_fields(), "a TaskSpec field is missing from step_command.py"
    # the sample sets every field to something other than its default
    default = TaskSpec("X", "r", "s", "t")
    same = [n for n in names if getattr(FULL, n) == getattr(default, n)]
    assert same == []


def test_round_trip_of_every_field():
    args = build_step_args(FULL, ["retry:times=2", 'environment:vars={"A":"1,2"}'])
    spec, with_specs = parse_step_args("MyFlow", args)
    assert spec == FULL
    assert with_specs == ["retry:times=2", 'environment:vars={"A":"1,2"}']


def test_round_trip_of_defaults():
    minimal = TaskSpec("MyFlow", "5", "start", "1")
    spec, with_specs = parse_step_args("MyFlow", build_step_args(minimal))
    assert spec == minimal and with_specs == []


def test_full_command_line():
    cmd = task_command("/usr/bin/python3", "flow.py", ["--datastore", "local"], FULL)
    assert cmd[:5] == ["/usr/bin/python3", "flow.py", "--datastore", "local", "step"]
    assert parse_step_args("MyFlow", cmd[5:])[0] == FULL


def test_bad_command_lines_are_clear_errors():
    with pytest.raises(BadStepCommand, match="--task-id"):
        parse_step_args("MyFlow", ["start", "--run-id", "1"])
    with pytest.raises(BadStepCommand, match="--attempt"):
        parse_step_args("MyFlow", ["start", "--run-id", "1", "--task-id", "1", "--attempt", "x"])
    with pytest.raises(BadStepCommand, match="comma"):
        build_step_args(dataclasses.replace(FULL, input_paths=["a,b"]))
