"""``@pypi`` on a step and ``@pypi_base`` on the flow class, in Metaflow's spelling.

The decorators only *declare* what a step needs; ``--environment=pypi`` makes the
runtime resolve, build and use the environments (see ``plan.py``). Declaring without
that option is a mistake reported before the run starts.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from ..decorators import StepDecorator
from ..exceptions import MetaflowlikeException

if TYPE_CHECKING:
    from ..flowspec import FlowSpec
    from ..graph import FlowGraph

#: where ``@pypi_base`` leaves its arguments on the flow class
BASE_ATTRIBUTE = "_metaflowlike_pypi_base"
ARGUMENTS = ("packages", "python", "disabled")


def check_arguments(where: str, attributes: dict[str, Any]) -> None:
    """``packages`` maps names to version specs, ``python`` is a version string."""
    packages = attributes.get("packages") or {}
    if not isinstance(packages, dict):
        raise MetaflowlikeException(
            f"{where}: packages must be a dict of name -> version, e.g. "
            f"packages={{'pandas': '2.2.3'}}; got {type(packages).__name__}."
        )
    for name, spec in packages.items():
        if not isinstance(name, str) or not name.strip() or not isinstance(spec, str):
            raise MetaflowlikeException(
                f"{where}: packages entry {name!r}: {spec!r} must map a package name to a "
                f"version string ('' for any version)."
            )
    python = attributes.get("python")
    if python is not None and not isinstance(python, str):
        raise MetaflowlikeException(
            f"{where}: python must be a version string such as '3.11'; got {python!r}."
        )


class PypiDecorator(StepDecorator):
    """``@pypi(packages={'pandas': '2.2.3'}, python='3.11')``: the step runs in an
    environment holding exactly these packages (plus those of ``@pypi_base``);
    ``@pypi(disabled=True)`` runs it in the interpreter that started the flow."""

    name = "pypi"
    defaults = {"packages": {}, "python": None, "disabled": False}

    def step_init(self, *, flow_cls: type[FlowSpec], graph: FlowGraph, step_name: str) -> None:
        check_arguments(f'@pypi on step "{step_name}"', self.attributes)


def pypi_base(
    cls: type | None = None,
    *,
    packages: dict[str, str] | None = None,
    python: str | None = None,
    disabled: bool = False,
) -> Callable[[type], type] | type:
    """``@pypi_base(packages=..., python=...)`` on the flow class: what every step's
    environment holds; a step's own ``@pypi`` entries override these."""

    def attach(flow_cls: type) -> type:
        attributes = {"packages": dict(packages or {}), "python": python, "disabled": disabled}
        check_arguments(f"@pypi_base on {flow_cls.__name__}", attributes)
        setattr(flow_cls, BASE_ATTRIBUTE, attributes)
        return flow_cls

    if cls is not None:
        return attach(cls)
    return attach
