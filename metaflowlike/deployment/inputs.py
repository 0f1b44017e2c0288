"""The flow's Parameters as inputs of a deployed workflow.

A deployed flow is started by an orchestrator, not by ``run --alpha 0.5``, so its
parameters travel as workflow inputs: a JSON object of *command-line spellings*
(``{"alpha": "0.5", "config": "{\\"a\\": 1}"}``). Keeping the spelling a user would
type means one conversion rule everywhere: the first task converts each value with the
same ``Parameter.convert`` as ``run`` does, and a value missing from the input takes
the parameter's default, evaluated from the same code as on the laptop.

``trigger --alpha 0.5`` is parsed here too, and checked before anything is sent, so a
typo is an error on the laptop rather than a failed production run.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from ..exceptions import InvalidParameter, MetaflowlikeException, did_you_mean
from ..parameters import IncludeFile, JSONType, Parameter, flow_parameters


class DeploymentInputError(MetaflowlikeException):
    headline = "Invalid workflow input"


@dataclass(frozen=True)
class ParameterInput:
    """One parameter as a workflow input."""

    name: str  # the command-line name (``--name``)
    type_name: str  # str, int, float, bool or JSON
    default: str | None  # the default as it would be typed on the command line
    required: bool
    help: str


def spelled(param: Parameter, value: Any) -> str | None:
    """``value`` as a user would type it for ``param`` (None stays None)."""
    if value is None:
        return None
    if param.separator and isinstance(value, list):
        return param.separator.join(spelled_one(param, v) for v in value)
    return spelled_one(param, value)


def spelled_one(param: Parameter, value: Any) -> str:
    if param.type is JSONType:
        return value if isinstance(value, str) else json.dumps(value, sort_keys=True)
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def parameter_inputs(flow_cls: type) -> list[ParameterInput]:
    """The workflow inputs of ``flow_cls``, in declaration order; the defaults are
    evaluated now (at deploy time) only to be shown and offered by the orchestrator."""
    out = []
    for p in flow_parameters(flow_cls):
        if isinstance(p, IncludeFile):
            raise DeploymentInputError(
                f'IncludeFile "{p.name}" reads a file of this machine, which a deployed flow '
                "cannot: make it a Parameter holding a URL or a datastore path instead."
            )
        out.append(
            ParameterInput(p.name, p.type_name, spelled(p, p.default_value()), p.required, p.help)
        )
    return out


def check_schedulable(flow_cls: type) -> None:
    """A scheduled flow starts with no input: every parameter needs a default."""
    missing = [p.name for p in flow_parameters(flow_cls) if p.required and p.default is None]
    if missing:
        names = ", ".join(f'"{n}"' for n in missing)
        raise DeploymentInputError(
            f"The flow has @schedule but the required parameter {names} has no default, and a "
            "scheduled run has nobody to give it: add a default or remove required=True."
        )


def parse_overrides(flow_cls: type, args: list[str] | tuple[str, ...]) -> dict[str, str]:
    """``--name value`` pairs of ``trigger`` as ``{name: value}``, each value checked by
    converting it as ``run`` would."""
    params = {p.name: p for p in flow_parameters(flow_cls)}
    out: dict[str, str] = {}
    items = list(args)
    while items:
        flag = items.pop(0)
        name, eq, value = flag[2:].partition("=") if flag.startswith("--") else ("", "", "")
        if not name:
            raise DeploymentInputError(
                f'Unexpected argument "{flag}": give parameters as --NAME VALUE.'
            )
        if name not in params:
            known = ", ".join(f"--{n}" for n in params) or "none"
            raise DeploymentInputError(
                f'The flow has no parameter "{name}" (--{name}). Its parameters: {known}.'
                + did_you_mean(name, params)
            )
        if not eq:
            if not items:
                raise DeploymentInputError(f"--{name} needs a value.")
            value = items.pop(0)
        params[name].convert(value)  # raises InvalidParameter naming the parameter
        out[name] = value
    return out


def start_values(flow_cls: type, given: dict[str, str]) -> dict[str, Any]:
    """The typed values of a deployed run (by attribute name), from its input: given
    values converted, the others' defaults; what is unknown or missing is named."""
    params = flow_parameters(flow_cls)
    unknown = sorted(set(given) - {p.name for p in params})
    if unknown:
        raise InvalidParameter(
            f'The workflow input has values for "{unknown[0]}", which is not a parameter of '
            f"{flow_cls.__name__}; was the flow changed without deploying it again?"
        )
    values = {}
    for p in params:
        if p.name in given:
            values[p.attr_name] = p.convert(str(given[p.name]))
        elif p.required:
            raise InvalidParameter(
                f'Missing required parameter "{p.name}": trigger the flow with --{p.name} VALUE.'
            )
        else:
            values[p.attr_name] = p.default_value()
    return values


def check_input_size(payload: str, limit: int, target: str) -> None:
    """Refuse a workflow input larger than ``target`` accepts (``limit`` bytes)."""
    size = len(payload.encode())
    if size > limit:
        raise DeploymentInputError(
            f"The parameter values take {size} bytes, more than the {limit} bytes {target} "
            "accepts as a workflow input: pass large data as a datastore path instead."
        )
