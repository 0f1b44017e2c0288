"""What a step asks of a remote platform: checked and combined the same way everywhere.

``@kubernetes`` and ``@batch`` both take numeric requests (cpu, memory in MB, ...) and,
as in Metaflow, each request is the larger of the platform decorator's and
``@resources``'. One owner for those two rules keeps the platforms from drifting apart.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from .decorators import StepDecorator, launcher_decorator
from .exceptions import MetaflowlikeException


def check_numbers(
    attributes: Mapping[str, Any],
    keys: Iterable[str],
    where: str,
    error: type[MetaflowlikeException],
) -> None:
    """Each of ``keys`` that is set must be a number, not negative, and cpu and memory
    must be positive; ``where`` names the decorator and step in the message."""
    for key in keys:
        value = attributes[key]
        if value is None:
            continue
        try:
            number = float(value)
        except (TypeError, ValueError):
            raise error(f"{where}: {key} must be a number, got {value!r}.") from None
        if number < 0 or (key in ("cpu", "memory") and number == 0):
            raise error(f"{where}: {key} must be positive, got {value!r}.")


def larger_requests(
    decorators: Iterable[StepDecorator], platform: str, floor: Mapping[str, float | None]
) -> dict[str, float | None]:
    """For each key of ``floor``, the largest value asked for by the decorator that runs
    the step with the ``platform`` launcher (its attributes) or by any decorator's
    ``resources()`` (``@resources``), and at least the floor (None: no floor, and
    nothing asked stays None)."""
    out = dict(floor)
    decos = list(decorators)
    own = launcher_decorator(decos, platform)
    for deco in decos:
        asked = deco.attributes if deco is own else deco.resources()
        for key in out:
            value = asked.get(key)
            if value is not None:
                out[key] = max(float(value), out[key] or 0.0)
    return out
