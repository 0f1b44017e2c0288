"""``python flow.py tag add|remove|replace|list``: change and show a run's user tags.

The same rules as the client's ``run.add_tags()`` & co. (``tagging.TagStore``): system
tags cannot be removed, changes are appended as operations so concurrent taggers never
lose each other's change.
"""

from __future__ import annotations

from typing import Any

from .datastore.records import RunRecord
from .exceptions import MetaflowlikeException
from .tagging import TagStore


def add_tag_commands(cli: Any, flow_cls: type) -> None:
    import click

    from . import config

    flow = flow_cls.__name__

    @cli.group()
    def tag():
        """Add, remove, replace or list the user tags of runs."""

    def resolve(state, run_id: str | None) -> tuple[str, RunRecord]:
        if run_id is None:
            run_id = _latest_own_run(state.fds, flow, config.get_username())
        record = state.fds.read_run(flow, run_id)
        if record is None:
            raise MetaflowlikeException(f"No run {flow}/{run_id} in {state.fds.storage.url()}.")
        return run_id, record

    def mutate(state, run_id, add=(), remove=()) -> None:
        run_id, record = resolve(state, run_id)
        user = TagStore(state.fds).mutate(flow, run_id, record, add=add, remove=remove)
        _print_run(flow, run_id, record, user, hide_system=False)

    run_id_option = click.option(
        "--run-id", default=None, help="The run to change (default: your latest run)."
    )

    @tag.command("add")
    @run_id_option
    @click.argument("tags", nargs=-1, required=True)
    @click.pass_obj
    def add(state, run_id, tags):
        """Add TAGS to a run."""
        mutate(state, run_id, add=list(tags))

    @tag.command("remove")
    @run_id_option
    @click.argument("tags", nargs=-1, required=True)
    @click.pass_obj
    def remove(state, run_id, tags):
        """Remove user TAGS from a run (system tags cannot be removed)."""
        mutate(state, run_id, remove=list(tags))

    @tag.command("replace")
    @run_id_option
    @click.argument("tag_to_remove")
    @click.argument("tag_to_add")
    @click.pass_obj
    def replace(state, run_id, tag_to_remove, tag_to_add):
        """Replace TAG_TO_REMOVE with TAG_TO_ADD in one change."""
        mutate(state, run_id, add=[tag_to_add], remove=[tag_to_remove])

    @tag.command("list")
    @click.option("--run-id", default=None, help="Only this run.")
    @click.option("--all", "all_runs", is_flag=True, help="Runs of every user, not only yours.")
    @click.option("--my-runs", is_flag=True, help="Only your runs (the default).")
    @click.option("--hide-system-tags", is_flag=True, help="Show user tags only.")
    @click.pass_obj
    def list_(state, run_id, all_runs, my_runs, hide_system_tags):
        """List runs with their tags, newest first (your runs unless --all)."""
        store = TagStore(state.fds)
        ops = store.operations(flow)
        me = f"user:{config.get_username()}"
        ids = [run_id] if run_id else sorted(state.fds.list_runs(flow), key=_id_key, reverse=True)
        shown = 0
        for rid in ids:
            record = state.fds.read_run(flow, rid)
            if record is None:
                if run_id:
                    raise MetaflowlikeException(
                        f"No run {flow}/{rid} in {state.fds.storage.url()}."
                    )
                continue
            if not (run_id or (all_runs and not my_runs) or me in record.tags):
                continue
            user = store.user_tags(flow, rid, record, ops.get(rid, []))
            _print_run(flow, rid, record, user, hide_system=hide_system_tags)
            shown += 1
        if not shown:
            who = "any user" if all_runs else me
            click.echo(f"No runs of {flow} by {who}.")


def _print_run(
    flow: str, run_id: str, record: RunRecord, user: list[str], hide_system: bool
) -> None:
    import click

    system = sorted(set(record.system_tags))
    click.echo(f"{flow}/{run_id}")
    click.echo(f"  user tags: {', '.join(sorted(user)) or '(none)'}")
    if not hide_system:
        click.echo(f"  system tags: {', '.join(system)}")


def _latest_own_run(fds: Any, flow: str, username: str) -> str:
    for run_id in sorted(fds.list_runs(flow), key=_id_key, reverse=True):
        record = fds.read_run(flow, run_id)
        if record is not None and f"user:{username}" in record.tags:
            return run_id
    raise MetaflowlikeException(
        f"{flow} has no run by user {username} in {fds.storage.url()}: pass --run-id."
    )


def _id_key(run_id: str) -> tuple:
    return (1, int(run_id), "") if run_id.isdigit() else (0, 0, run_id)
