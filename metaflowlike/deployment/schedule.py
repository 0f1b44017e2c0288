"""``@schedule(...)`` on the flow class: when a deployed flow runs by itself.

Spelled as in Metaflow: ``@schedule(hourly=True)``, ``daily=True`` (the default),
``weekly=True`` or ``cron='...'``, plus ``timezone='Europe/Paris'``. Each orchestrator
wants its own cron dialect: Amazon EventBridge (behind Step Functions) has six fields
(``minutes hours day-of-month month day-of-week year``, one of the two day fields a
``?``, days of the week numbered 1-7 from Sunday), Kubernetes and Argo have five
(days numbered 0-6 from Sunday). A ``cron=`` may be written in either dialect; this
module is the one owner of the translation, so the two exporters always agree.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

from ..exceptions import MetaflowlikeException

#: where ``@schedule`` leaves its ``Schedule`` on the flow class
ATTRIBUTE = "_metaflowlike_schedule"

_PRESETS = {
    "hourly": ("0", "*", "*", "*", "*"),
    "daily": ("0", "0", "*", "*", "*"),
    "weekly": ("0", "0", "*", "*", "0"),
}
_FIELD = re.compile(r"^[A-Za-z0-9*?/,#\-]+$")
_NUMBER = re.compile(r"(?<!/)\d+")  # a day number, not a step ("*/2")


class ScheduleError(MetaflowlikeException):
    headline = "Invalid @schedule"


@dataclass(frozen=True)
class Schedule:
    """A schedule in the five-field dialect (minute hour day month weekday), the one
    both dialects can be derived from; EventBridge-only syntax is kept verbatim in
    ``eventbridge_only`` so that it can still be deployed where it is understood."""

    fields: tuple[str, str, str, str, str]
    timezone: str | None = None
    source: str = ""  # what the user wrote, for error messages
    eventbridge_only: str | None = None  # a 6-field expression using L, W, # or a year

    def kubernetes_cron(self) -> str:
        """The five-field expression for a Kubernetes/Argo ``CronWorkflow``."""
        if self.eventbridge_only is not None:
            raise ScheduleError(
                f"@schedule(cron={self.source!r}) uses EventBridge-only syntax (L, W, # or "
                "a year) that a Kubernetes cron schedule cannot express; write it with five "
                "fields (minute hour day-of-month month day-of-week)."
            )
        return " ".join(self.fields)

    def eventbridge_cron(self) -> str:
        """``cron(...)`` for an Amazon EventBridge rule (six fields, UTC)."""
        if self.eventbridge_only is not None:
            return f"cron({self.eventbridge_only})"
        minute, hour, dom, month, dow = self.fields
        if dow == "*":
            dow = "?"
        elif dom == "*":
            dom = "?"
        else:
            raise ScheduleError(
                f"@schedule(cron={self.source!r}) sets both the day of the month and the day "
                "of the week, which Amazon EventBridge does not allow: leave one of them '*'."
            )
        if dow != "?":
            dow = _NUMBER.sub(lambda m: str(int(m.group()) % 7 + 1), dow)
        return f"cron({minute} {hour} {dom} {month} {dow} *)"


def parse_cron(expr: str, timezone: str | None = None) -> Schedule:
    """A ``Schedule`` from a five-field (Kubernetes) or six-field (EventBridge)
    expression; one clear error for anything else."""
    if not isinstance(expr, str):
        raise ScheduleError(f"@schedule(cron=...) must be a string, got {expr!r}.")
    parts = expr.split()
    bad = [p for p in parts if not _FIELD.match(p)]
    if len(parts) not in (5, 6) or bad:
        raise ScheduleError(
            f"@schedule(cron={expr!r}) is not a cron expression: write five fields "
            "(minute hour day-of-month month day-of-week, e.g. '0 6 * * 1-5') or "
            "EventBridge's six (e.g. '0 6 ? * MON-FRI *')."
        )
    if len(parts) == 5:
        if "?" in expr or any(c in p for p in parts for c in "LW#"):
            raise ScheduleError(
                f"@schedule(cron={expr!r}): '?', L, W and # belong to EventBridge's "
                "six-field dialect; add the year field ('*') to use them."
            )
        return Schedule(tuple(parts), timezone, expr)  # type: ignore[arg-type]
    minute, hour, dom, month, dow, year = parts
    if dom != "?" and dow != "?":
        raise ScheduleError(
            f"@schedule(cron={expr!r}): in EventBridge's six-field dialect one of "
            "day-of-month and day-of-week must be '?'."
        )
    special = year != "*" or any(c in p for p in (dom, dow) for c in "LW#")
    if special:
        return Schedule(("*",) * 5, timezone, expr, eventbridge_only=expr)  # type: ignore[arg-type]
    dom = "*" if dom == "?" else dom
    dow = "*" if dow == "?" else _NUMBER.sub(lambda m: str(int(m.group()) - 1), dow)
    return Schedule((minute, hour, dom, month, dow), timezone, expr)


def schedule(
    cls: type | None = None,
    *,
    hourly: bool = False,
    daily: bool = True,
    weekly: bool = False,
    cron: str | None = None,
    timezone: str | None = None,
) -> Callable[[type], type] | type:
    """``@schedule(...)`` above a flow class: run the deployed flow hourly, daily (the
    default), weekly or on a ``cron`` expression, in ``timezone`` (IANA name) where the
    orchestrator supports one. Only exporters read it; ``run`` ignores it."""
    if timezone is not None and (not isinstance(timezone, str) or not timezone.strip()):
        raise ScheduleError(f"@schedule(timezone={timezone!r}) must be an IANA name.")
    if cron is not None:
        if hourly or weekly:
            raise ScheduleError("@schedule: give either cron=... or hourly/daily/weekly, not both.")
        value = parse_cron(cron, timezone)
    else:
        chosen = [k for k, on in (("hourly", hourly), ("weekly", weekly)) if on]
        if len(chosen) > 1:
            raise ScheduleError("@schedule: choose one of hourly=True, daily=True, weekly=True.")
        name = chosen[0] if chosen else "daily" if daily else None
        if name is None:
            raise ScheduleError(
                "@schedule(daily=False) without hourly, weekly or cron leaves no schedule."
            )
        value = Schedule(_PRESETS[name], timezone, f"{name}=True")

    def attach(flow_cls: type) -> type:
        setattr(flow_cls, ATTRIBUTE, value)
        return flow_cls

    return attach(cls) if cls is not None else attach


def flow_schedule(flow_cls: type) -> Schedule | None:
    """The flow's ``Schedule``, or None when it has no ``@schedule``."""
    return getattr(flow_cls, ATTRIBUTE, None)
