"""``python flow.py cache explain STEP [--run-id ID]`` and ``cache clear [STEP]``.

``explain`` reads the key each task of the step recorded (a small record in its task
folder) and, for a task that ran, compares it with the closest earlier task in the
cache index: the one whose key differs in the fewest parts. It names each part that
changed and, inside it, which entries (a helper function, an artifact, a parameter...).
"""

from __future__ import annotations

from typing import Any

import click

from ..exceptions import MetaflowlikeException, did_you_mean
from .key import PARTS

#: how ``explain`` words each part of the key
PART_NAMES = {
    "code": "code",
    "inputs": "input artifacts",
    "parameters": "parameters",
    "decorators": "decorators",
    "environment": "environment",
    "foreach": "foreach item",
}


class CacheCommandError(MetaflowlikeException):
    headline = "Cache"


def diff_parts(new: dict, old: dict) -> dict[str, list[str]]:
    """Part -> what changed in it (``"helpers.double changed"``, ``"alpha added"``)."""
    out: dict[str, list[str]] = {}
    for part in PARTS:
        a, b = new.get(part) or {}, old.get(part) or {}
        changes = [f"{k} changed" for k in sorted(a) if k in b and a[k] != b[k]]
        changes += [f"{k} is new" for k in sorted(a) if k not in b]
        changes += [f"{k} is gone" for k in sorted(b) if k not in a]
        if changes:
            out[part] = changes
    return out


def closest(fds: Any, flow: str, step: str, record: dict, pathspec: str) -> tuple[str, dict] | None:
    """The indexed task of an earlier run of ``step`` whose key parts differ least from
    ``record``."""
    best: tuple | None = None
    for key in fds.list_cache_entries(flow, step):
        entry = fds.read_cache_entry(flow, step, key)
        if not entry or entry.get("at", 0) >= record["at"]:
            continue
        if entry.get("task", "").split("/")[:2] == pathspec.split("/")[:2]:
            continue  # a sibling in the same run could not have been reused for it
        diff = diff_parts(record["parts"], entry.get("parts") or {})
        rank = (len(diff), sum(len(v) for v in diff.values()), -entry.get("at", 0))
        if best is None or rank < best[0]:
            best = (rank, entry["task"], diff)
    return None if best is None else (best[1], best[2])


def explain_lines(fds: Any, flow: str, run_id: str, step: str) -> list[str]:
    tasks = sorted(fds.list_tasks(flow, run_id, step), key=lambda t: (len(t), t))
    if not tasks:
        return [f"Run {flow}/{run_id} has no task of step {step}."]
    lines = []
    for task_id in tasks:
        pathspec = f"{flow}/{run_id}/{step}/{task_id}"
        record = fds.read_task_cache_key(pathspec)
        if record is None:
            task = fds.read_task(pathspec)
            cloned = task.done.cloned_from if task is not None else None
            if cloned:
                lines.append(f"{pathspec}: reused by resume from {cloned}, not looked up.")
            else:
                lines.append(f"{pathspec}: caching was off (run with --cache, or add @cache).")
            continue
        short = record["key"][:12]
        if record.get("hit"):
            lines.append(f"{pathspec}: hit (key {short}), cached from {record['hit']}.")
            continue
        head = f"{pathspec}: miss (key {short})"
        if not record.get("indexed", True):
            head += "; it did not succeed, so it is not reused"
        found = closest(fds, flow, step, record, pathspec)
        if found is None:
            lines.append(f"{head}: no earlier task of step {step} was in the cache.")
            continue
        other, diff = found
        if not diff:
            lines.append(
                f"{head}: {other} had the same key but could not be reused "
                "(its artifacts were removed, or caching was off for it)."
            )
            continue
        lines.append(f"{head}: compared with {other}, changed: {', '.join(diff)}.")
        for part, changes in diff.items():
            lines.append(f"    {PART_NAMES[part]}: {'; '.join(changes)}")
    return lines


def _latest_run(fds: Any, flow: str) -> str:
    runs = sorted(fds.list_runs(flow), key=lambda r: (len(r), r), reverse=True)
    for run_id in runs:
        if fds.read_run(flow, run_id) is not None:
            return run_id
    raise CacheCommandError(f"There is no run of {flow} in {fds.storage.url()}.")


def add_cache_command(cli: click.Group, flow_cls: type) -> None:
    @cli.group()
    def cache() -> None:
        """Explain or clear the step cache (see run --cache and @cache)."""

    def check_step(state: Any, step: str | None) -> None:
        graph = state.graph
        if step is not None and step not in graph:
            raise CacheCommandError(
                f'The flow has no step "{step}".' + did_you_mean(step, graph.nodes)
            )

    @cache.command()
    @click.argument("step")
    @click.option("--run-id", default=None, help="Run to explain (default: the latest).")
    @click.pass_obj
    def explain(state: Any, step: str, run_id: str | None) -> None:
        """Say for each task of STEP why it was a cache hit or a miss."""
        from ..ids import check_run_id

        check_step(state, step)
        fds, flow = state.fds, flow_cls.__name__
        if run_id is None:
            run_id = _latest_run(fds, flow)
        else:
            check_run_id(run_id, "--run-id")
            if fds.read_run(flow, run_id) is None:
                raise CacheCommandError(f"No run {flow}/{run_id} in {fds.storage.url()}.")
        for line in explain_lines(fds, flow, run_id, step):
            click.echo(line)

    @cache.command()
    @click.argument("step", required=False)
    @click.pass_obj
    def clear(state: Any, step: str | None) -> None:
        """Forget the cached tasks of STEP (default: of every step); later runs compute
        them again. No run or artifact is deleted (see `metaflowlike gc`)."""
        check_step(state, step)
        fds, flow = state.fds, flow_cls.__name__
        steps = [step] if step else fds.list_cached_steps(flow)
        removed = 0
        for name in steps:
            for key in fds.list_cache_entries(flow, name):
                fds.delete_cache_entry(flow, name, key)
                removed += 1
        where = f"{flow}/{step}" if step else flow
        click.echo(f"Removed {removed} cache entr{'y' if removed == 1 else 'ies'} of {where}.")
