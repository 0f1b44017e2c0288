"""``python flow.py card view|get|list|server``: look at the cards of a flow's tasks."""

from __future__ import annotations

import os
import tempfile
import webbrowser
from typing import Any

from ..exceptions import MetaflowlikeException
from .store import CardRef, finished_cards, read_card


def _latest_run(state: Any) -> str:
    flow = state.flow_cls.__name__
    runs = state.fds.list_runs(flow)
    if not runs:
        raise MetaflowlikeException(f"No runs of {flow} in {state.fds.storage.url()}.")
    return max(runs, key=lambda r: (len(r), r))


def _tasks(state: Any, pathspec: str | None) -> list[str]:
    """Task pathspecs for RUN/STEP[/TASK], STEP (newest run) or nothing (newest run)."""
    from ..cli_inspect import task_paths as _task_paths

    flow = state.flow_cls.__name__
    if not pathspec:
        run_id = _latest_run(state)
        return [
            p
            for step in state.graph.sorted_nodes()
            if step in state.fds.list_steps(flow, run_id)
            for p in _task_paths(state, f"{run_id}/{step}")
        ]
    if "/" not in pathspec.strip("/"):
        pathspec = f"{_latest_run(state)}/{pathspec.strip('/')}"
    return _task_paths(state, pathspec)


def _select(state: Any, pathspec: str, card_id: str | None, card_type: str | None):
    refs: list[CardRef] = []
    for task in _tasks(state, pathspec):
        refs += [
            r
            for r in finished_cards(state.fds, task)
            if (card_id is None or r.id == card_id) and (card_type is None or r.type == card_type)
        ]
    if not refs:
        which = f" with id {card_id}" if card_id else ""
        which += f" of type {card_type}" if card_type else ""
        raise MetaflowlikeException(f"No card{which} for {pathspec}. See: card list {pathspec}")
    return refs


def _local_copy(state: Any, ref: CardRef) -> str:
    """A file to open: the stored file itself on a local datastore, a copy otherwise."""
    local = state.fds.storage.local_path(ref.path)
    if local and os.path.exists(local):
        return local
    folder = tempfile.mkdtemp(prefix="mfl-card-")
    path = os.path.join(folder, ref.file_name)
    with open(path, "w", encoding="utf-8") as f:
        f.write(read_card(state.fds, ref))
    return path


def add_card_command(cli: Any) -> None:
    import click

    @cli.group()
    def card():
        """View, save, list and serve the cards of this flow's tasks."""

    id_opt = click.option("--id", "card_id", default=None, help="Only the card with this id.")
    type_opt = click.option("--type", "card_type", default=None, help="Only cards of this type.")

    @card.command()
    @click.argument("pathspec")
    @id_opt
    @type_opt
    @click.option("--no-open", is_flag=True, help="Print the file path instead of opening it.")
    @click.pass_obj
    def view(state, pathspec, card_id, card_type, no_open):
        """Open the card of RUN/STEP[/TASK] (or STEP of the newest run) in the browser."""
        ref = _select(state, pathspec, card_id, card_type)[0]
        path = _local_copy(state, ref)
        if no_open or not webbrowser.open(f"file://{os.path.abspath(path)}"):
            click.echo(path)

    @card.command()
    @click.argument("pathspec")
    @click.argument("file", required=False)
    @id_opt
    @type_opt
    @click.pass_obj
    def get(state, pathspec, file, card_id, card_type):
        """Save the card(s) of RUN/STEP[/TASK] as HTML (to FILE, or by card name)."""
        refs = _select(state, pathspec, card_id, card_type)
        if file and len(refs) > 1 and not os.path.isdir(file):
            names = ", ".join(f"{r.type}{'/' + r.id if r.id else ''}" for r in refs)
            raise MetaflowlikeException(
                f"{pathspec} has {len(refs)} cards ({names}): pick one with --id or --type, "
                "or give a folder."
            )
        for ref in refs:
            target = file or ref.file_name
            if os.path.isdir(target):
                target = os.path.join(target, ref.file_name)
            tmp = f"{target}.tmp{os.getpid()}"
            with open(tmp, "w", encoding="utf-8") as f:
                f.write(read_card(state.fds, ref))
            os.replace(tmp, target)
            click.echo(f"Saved {ref} to {target}")

    @card.command(name="list")
    @click.argument("pathspec", required=False)
    @click.pass_obj
    def list_cards(state, pathspec):
        """List the cards of RUN[/STEP[/TASK]] (default: the newest run)."""
        if pathspec and pathspec.strip("/").count("/") == 0 and pathspec.strip("/").isdigit():
            run_id = pathspec.strip("/")
            tasks = [
                p
                for step in state.fds.list_steps(state.flow_cls.__name__, run_id)
                for p in _tasks(state, f"{run_id}/{step}")
            ]
        else:
            tasks = _tasks(state, pathspec)
        found = 0
        for task in tasks:
            for ref in finished_cards(state.fds, task):
                found += 1
                ident = f"  id={ref.id}" if ref.id else ""
                click.echo(f"{task}  type={ref.type}{ident}  attempt={ref.attempt}")
        if not found:
            click.echo("No cards.")

    @card.command()
    @click.option("--port", default=8324, show_default=True, help="0 picks a free port.")
    @click.option("--host", default="127.0.0.1", show_default=True)
    @click.option("--run-id", default=None, help="Serve this run (default: the newest).")
    @click.pass_obj
    def server(state, port, host, run_id):
        """Serve the cards of running and finished tasks; pages refresh by themselves."""
        from .server import serve

        serve(state.fds, state.flow_cls.__name__, host, port, run_id)
