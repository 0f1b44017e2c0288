"""Commands that read what runs left behind: ``logs``, ``dump``, ``tag``,
``output-dot`` and ``version``, spelled and behaving as Metaflow's.

They only read the datastore (``tag`` also appends tag operations, see ``tagging``),
so they live apart from the commands that run things.
"""

from __future__ import annotations

import pickle
import sys
from typing import Any

from .exceptions import ArtifactLoadError, MetaflowlikeException

LOG_STREAMS = ("stdout", "stderr")


def add_inspect_commands(cli: Any, flow_cls: type) -> None:
    import click

    @cli.command()
    @click.argument("pathspec")
    @click.option("--stdout", "want_stdout", is_flag=True, help="Show the stdout of the tasks.")
    @click.option("--stderr", "want_stderr", is_flag=True, help="Show the stderr of the tasks.")
    @click.option("--attempt", type=int, default=None, help="Attempt to show (default: latest).")
    @click.pass_obj
    def logs(state, pathspec, want_stdout, want_stderr, attempt):
        """Print the saved logs of RUN_ID/STEP[/TASK_ID] on stdout, a header per task.

        Both streams by default; --stdout or --stderr picks one."""
        streams = [s for s, on in zip(LOG_STREAMS, (want_stdout, want_stderr)) if on]
        streams = streams or list(LOG_STREAMS)
        out = sys.stdout
        for task_path in task_paths(state, pathspec):
            rec = state.fds.read_task(task_path, attempt)
            if rec is None:
                continue
            for stream in streams:
                data = state.fds.read_log(task_path, rec.attempt, stream)
                if not state.quiet:
                    out.write(f"--- {stream} of {task_path} (attempt {rec.attempt}) ---\n")
                out.write(data.decode(errors="replace"))
                if data and not data.endswith(b"\n"):
                    out.write("\n")
                out.flush()

    @cli.command()
    @click.argument("pathspec")
    @click.option("--max-value-size", default=1000, help="Truncate longer printed values.")
    @click.option("--private", is_flag=True, help="Include artifacts whose name starts with _.")
    @click.option("--include", default="", help="Only these artifacts (comma-separated).")
    @click.option(
        "--file",
        "out_file",
        default=None,
        help="Write {task pathspec: {name: value}} to this file as a pickle instead.",
    )
    @click.pass_obj
    def dump(state, pathspec, max_value_size, private, include, out_file):
        """Print the artifacts of the finished task(s) RUN_ID/STEP[/TASK_ID]."""
        wanted = [n.strip() for n in include.split(",") if n.strip()]
        collected: dict[str, dict[str, Any]] = {}
        for task_path in task_paths(state, pathspec):
            rec = state.fds.read_task(task_path)
            if rec is None:
                continue
            names = sorted(rec.artifacts)
            if wanted:
                names = [n for n in names if n in wanted]
            elif not private:
                names = [n for n in names if not n.startswith("_")]
            if out_file:
                collected[task_path] = {n: state.fds.cas.load(rec.artifacts[n].key) for n in names}
                continue
            click.echo(f"{task_path} ({rec.status}):")
            for name in names:
                entry = rec.artifacts[name]
                try:
                    value = repr(state.fds.cas.load(entry.key))
                except ArtifactLoadError as e:
                    value = f"<not loadable here: {e}>"
                if len(value) > max_value_size:
                    value = value[:max_value_size] + "..."
                click.echo(f"  {name} ({entry.type}, {entry.size} bytes) = {value}")
        if out_file:
            with open(out_file, "wb") as f:
                pickle.dump(collected, f)
            count = sum(len(v) for v in collected.values())
            click.echo(
                f"Artifacts of {len(collected)} task(s) ({count} values) written to {out_file}."
            )

    @cli.command("output-dot")
    def output_dot():
        """Print the flow graph in Graphviz dot (same as show --format dot)."""
        from .cli import show_text

        click.echo(show_text(flow_cls, "dot"))

    @cli.command()
    def version():
        """Print the metaflowlike version."""
        from . import __version__

        click.echo(f"metaflowlike {__version__}")

    from .cli_tag import add_tag_commands

    add_tag_commands(cli, flow_cls)


def task_paths(state: Any, pathspec: str) -> list[str]:
    """Pathspecs of the tasks ``RUN_ID/STEP[/TASK_ID]`` names, in task id order."""
    from . import ids

    parts = pathspec.strip("/").split("/")
    flow = state.flow_cls.__name__
    if len(parts) not in (2, 3):
        raise MetaflowlikeException(f"Expected RUN_ID/STEP[/TASK_ID], got {ids.shown(pathspec)}.")
    ids.check_pathspec_parts([flow, *parts], "the pathspec")
    run_id, step = parts[0], parts[1]
    if state.fds.read_run(flow, run_id) is None:
        raise MetaflowlikeException(f"No run {flow}/{run_id} in {state.fds.storage.url()}.")
    tasks = (
        [parts[2]]
        if len(parts) == 3
        else sorted(state.fds.list_tasks(flow, run_id, step), key=_num)
    )
    if not tasks:
        raise MetaflowlikeException(f'Run {flow}/{run_id} has no tasks for step "{step}".')
    paths = [f"{flow}/{run_id}/{step}/{t}" for t in tasks]
    if len(parts) == 3 and not state.fds.attempts(paths[0]):
        raise MetaflowlikeException(f"Task {paths[0]} has no finished attempt.")
    return paths


def _num(s: str) -> tuple:
    return (0, int(s), "") if s.isdigit() else (1, 0, s)
