"""The ``step`` command line of a task, built from a ``TaskSpec`` and parsed back into one.

This module is the only place that knows how a task is spelled on a command line. The
local subprocess launcher, a Kubernetes pod, a Batch job and a production export all
run ``python flow.py [TOP OPTIONS] step STEP_NAME [OPTIONS]``; the options are produced
by :func:`build_step_args` and read by :func:`parse_step_args`, from one table, so a new
``TaskSpec`` field is added in exactly one place (a round-trip test checks every field).
"""

from __future__ import annotations

import argparse
import dataclasses
from collections.abc import Callable
from typing import Any, NoReturn

from .exceptions import MetaflowlikeException
from .task import TaskSpec


@dataclasses.dataclass(frozen=True)
class _Field:
    attr: str  # TaskSpec field
    option: str  # command-line option
    kind: str  # "str", "int", "opt_str", "opt_int", "list" (comma-joined), "multi" (repeated)


# step_name is the positional argument and flow_name is the flow file's own name.
_FIELDS = (
    _Field("run_id", "--run-id", "str"),
    _Field("task_id", "--task-id", "str"),
    _Field("attempt", "--attempt", "int"),
    _Field("input_paths", "--input-paths", "list"),
    _Field("split_index", "--split-index", "opt_int"),
    _Field("max_num_splits", "--max-num-splits", "int"),
    _Field("user", "--user", "str"),
    _Field("tags", "--tag", "multi"),
    _Field("origin_run_id", "--origin-run-id", "opt_str"),
    _Field("namespace", "--namespace", "opt_str"),
    _Field("max_retries", "--max-retries", "int"),
    _Field("catch_fallback", "--catch-fallback", "opt_str"),
    _Field("origin_task", "--origin-task", "opt_str"),
)
_POSITIONAL = ("flow_name", "step_name")


class BadStepCommand(MetaflowlikeException):
    headline = "Invalid step command"


def covered_fields() -> set[str]:
    """The ``TaskSpec`` fields this module writes and reads (for the round-trip test)."""
    return set(_POSITIONAL) | {f.attr for f in _FIELDS}


def build_step_args(spec: TaskSpec, with_specs: list[str] | tuple[str, ...] = ()) -> list[str]:
    """``[STEP_NAME, --run-id, ...]``: everything after the word ``step``."""
    # always OPTION=VALUE, so that a value starting with "-" is never taken for an option
    args = [spec.step_name]
    for f in _FIELDS:
        value = getattr(spec, f.attr)
        if f.kind == "multi":
            args += [f"{f.option}={item}" for item in value]
        elif f.kind == "list":
            if any("," in p for p in value):
                raise BadStepCommand(f"{f.attr} of {spec.pathspec} contains a comma: {value!r}.")
            args.append(f"{f.option}={','.join(value)}")
        elif value is not None:
            args.append(f"{f.option}={value}")
    args += [f"--with={w}" for w in with_specs]
    return args


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        raise BadStepCommand(f"{message}.")


def _parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="flow.py step", add_help=False, allow_abbrev=False)
    parser.add_argument("step_name")
    conv: dict[str, Callable[[str], Any]] = {"int": int, "opt_int": int}
    for f in _FIELDS:
        if f.kind == "multi":
            parser.add_argument(f.option, dest=f.attr, action="append", default=[])
        else:
            parser.add_argument(f.option, dest=f.attr, type=conv.get(f.kind, str))
    parser.add_argument("--with", dest="with_specs", action="append", default=[])
    return parser


def parse_step_args(flow_name: str, args: list[str]) -> tuple[TaskSpec, list[str]]:
    """The ``TaskSpec`` and the ``--with`` specs of a ``step`` command's arguments."""
    ns = _parser().parse_args(args)
    defaults = TaskSpec(flow_name, "", ns.step_name, "")
    values: dict[str, Any] = {"flow_name": flow_name, "step_name": ns.step_name}
    for f in _FIELDS:
        value = getattr(ns, f.attr)
        if f.kind == "list":
            value = [p for p in (value or "").split(",") if p]
        elif value is None and f.kind in ("str", "int"):
            if f.attr in ("run_id", "task_id"):
                raise BadStepCommand(f"the step command needs {f.option}.")
            value = getattr(defaults, f.attr)
        values[f.attr] = value
    return TaskSpec(**values), list(ns.with_specs)


def task_command(
    interpreter: str,
    flow_file: str,
    top_args: list[str],
    spec: TaskSpec,
    with_specs: list[str] | tuple[str, ...] = (),
) -> list[str]:
    """The whole command line of a task: interpreter, flow file, top options, step."""
    return [interpreter, flow_file, *top_args, "step", *build_step_args(spec, with_specs)]
