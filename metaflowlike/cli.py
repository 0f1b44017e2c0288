"""``python flow.py [TOP OPTIONS] COMMAND``: the command line of a flow.

Top-level options (``--datastore``, ``--datastore-root``, ``--quiet``) come before the
command, as in Metaflow. Commands: ``run``, ``resume``, ``step`` (runs one task: what
the local runtime forks and what a pod or a Batch job executes), ``show``, ``check``,
``logs``, ``dump``. A ``MetaflowlikeException`` is printed as one paragraph without a
traceback; anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

import os
import sys
from typing import Any

from .exceptions import InvalidParameter, MetaflowlikeException, did_you_mean
from .lifeline import TaskStopped, end_stopped_task
from .parameters import Parameter


def flow_parameters(flow_cls: type) -> list[Parameter]:
    params = {}
    for klass in reversed(flow_cls.__mro__):
        for attr, value in vars(klass).items():
            if isinstance(value, Parameter):
                params[attr] = value
    return list(params.values())


class _State:
    def __init__(
        self,
        flow_cls: type,
        ds_type: str | None,
        root: str | None,
        quiet: bool,
        package_suffixes: tuple[str, ...] = (".py",),
    ) -> None:
        self.flow_cls = flow_cls
        self.ds_type, self.root, self.quiet = ds_type, root, quiet
        self.package_suffixes = package_suffixes
        self._graph = None
        self._fds = None

    @property
    def graph(self):
        if self._graph is None:
            from .graph import FlowGraph

            self._graph = FlowGraph(self.flow_cls)
        return self._graph

    @property
    def fds(self):
        if self._fds is None:
            from . import config

            self._fds = config.open_datastore(self.ds_type, self.root)
        return self._fds

    def validate(self) -> None:
        from .lint import validate

        validate(self.graph)

    def top_args(self) -> list[str]:
        args = ["--datastore", self.fds.storage.TYPE, "--datastore-root", self.fds.storage.root]
        return args + (["--quiet"] if self.quiet else [])


def _params_options(flow_cls: type):
    import click

    def decorate(cmd):
        for p in flow_parameters(flow_cls):
            help_text = p.help + (
                f" [default: {p.default!r}]" if p.show_default and p.default is not None else ""
            )
            cmd = click.option(f"--{p.name}", p.attr_name, default=None, type=str, help=help_text)(
                cmd
            )
        return cmd

    return decorate


def parse_params(flow_cls: type, raw: dict[str, str | None]) -> dict[str, Any]:
    """Convert command-line strings to typed values; every error names the parameter."""
    values = {}
    for p in flow_parameters(flow_cls):
        given = raw.get(p.attr_name)
        if given is not None:
            values[p.attr_name] = p.convert(given)
        elif p.required:
            raise InvalidParameter(f'Missing required parameter "{p.name}": pass --{p.name} VALUE.')
        else:
            values[p.attr_name] = p.default_value()
    return values


def _with_decorators(specs: tuple[str, ...]) -> list:
    from .decorators import parse_with

    return [parse_with(s) for s in specs]


SHOW_FORMATS = ["text", "dot", "mermaid"]


def check_text(flow_cls: type) -> str:
    from .graph import FlowGraph
    from .lint import validate

    graph = FlowGraph(flow_cls)
    validate(graph)
    return f"The graph of {flow_cls.__name__} looks good ({len(graph.nodes)} steps)."


def show_text(flow_cls: type, fmt: str) -> str:
    from . import graph_render
    from .graph import FlowGraph

    render = getattr(graph_render, f"render_{fmt}")
    return render(FlowGraph(flow_cls))


def _graph_command(args: list[str]) -> tuple[str, str] | None:
    """Recognise the plain forms of ``check`` and ``show [--format F]``.

    They only read the flow's source, and answering them without importing click
    takes a third off their run time; any other form goes through click as usual."""
    if args == ["check"]:
        return "check", ""
    if args == ["show"]:
        return "show", "text"
    if len(args) == 3 and args[:2] == ["show", "--format"] and args[2] in SHOW_FORMATS:
        return "show", args[2]
    return None


def build_cli(flow_cls: type):
    import click

    @click.group(context_settings={"help_option_names": ["-h", "--help"]})
    @click.option("--datastore", "ds_type", default=None, help="local (default), s3, azure or gs.")
    @click.option("--datastore-root", default=None, help="Folder or URL of the datastore.")
    @click.option("--quiet", is_flag=True, help="Print task output only.")
    @click.option(
        "--package-suffixes",
        default=None,
        help="Also put files of the flow's folder with these suffixes in the code package "
        "of remote steps (comma-separated, e.g. .txt,.yaml; .py always).",
    )
    @click.pass_context
    def cli(ctx, ds_type, datastore_root, quiet, package_suffixes):
        """Run and inspect this flow."""
        from .code_package import parse_suffixes

        ctx.obj = _State(flow_cls, ds_type, datastore_root, quiet, parse_suffixes(package_suffixes))

    @cli.command()
    @click.pass_obj
    def check(state: _State):
        """Validate the flow graph and report every problem."""
        click.echo(check_text(flow_cls))

    @cli.command()
    @click.option("--format", "fmt", type=click.Choice(SHOW_FORMATS), default="text")
    @click.pass_obj
    def show(state: _State, fmt: str):
        """Print the flow graph in words, or as dot/mermaid source."""
        click.echo(show_text(flow_cls, fmt))

    @cli.command()
    @_params_options(flow_cls)
    @click.option("--max-workers", default=16, show_default=True, help="Tasks running at once.")
    @click.option(
        "--max-num-splits", default=10000, show_default=True, help="Largest foreach allowed."
    )
    @click.option("--tag", "tags", multiple=True, help="Tag the run (repeatable).")
    @click.option("--run-id-file", default=None, help="Write the run id to this file.")
    @click.option(
        "--with", "with_specs", multiple=True, help="Add a decorator to every step: NAME[:k=v,...]."
    )
    @click.option(
        "--launcher",
        type=click.Choice(["fork", "subprocess"]),
        default=lambda: os.environ.get("METAFLOWLIKE_LAUNCHER", "fork"),
        hidden=True,
    )
    @click.pass_obj
    def run(
        state: _State, max_workers, max_num_splits, tags, run_id_file, with_specs, launcher, **raw
    ):
        """Run the flow locally."""
        from .ids import check_tag
        from .run import start_run

        for tag in tags:
            check_tag(tag, "--tag")
        state.validate()
        decos = _with_decorators(with_specs)
        values = parse_params(flow_cls, raw)
        ok = start_run(
            state,
            values,
            max_workers=max_workers,
            max_num_splits=max_num_splits,
            tags=list(tags),
            run_id_file=run_id_file,
            with_decorators=decos,
            with_specs=list(with_specs),
            launcher=launcher,
        )
        sys.exit(0 if ok else 1)

    @cli.command(
        context_settings={"ignore_unknown_options": True, "help_option_names": []},
        add_help_option=False,
    )
    @click.argument("args", nargs=-1, type=click.UNPROCESSED)
    @click.pass_obj
    def step(state: _State, args):
        """Run one task (used by the runtime and by remote executors)."""
        from . import ids, lifeline
        from .step_command import parse_step_args
        from .task import run_task

        parent = lifeline.parent_from_env()  # launched by a local runtime: die with it
        lifeline.become_task(parent, owns_group=parent is not None)

        spec, with_specs = parse_step_args(flow_cls.__name__, list(args))
        step_name = spec.step_name
        ids.check_run_id(spec.run_id, "--run-id")
        ids.check_task_id(spec.task_id, "--task-id")
        spec.input_paths = [ids.check_input_path(p) for p in spec.input_paths]
        for tag in spec.tags:
            ids.check_tag(tag, "--tag")
        if spec.origin_run_id is not None:
            ids.check_run_id(spec.origin_run_id, "--origin-run-id")
        if spec.origin_task is not None:
            ids.check_task_pathspec(spec.origin_task, "--origin-task")
        if spec.attempt < 0:
            raise ids.InvalidId(f"Invalid --attempt {spec.attempt}: attempts count from 0.")
        if step_name not in state.graph:
            raise MetaflowlikeException(
                f'No step "{step_name}".' + did_you_mean(step_name, state.graph.nodes)
            )
        run = state.fds.read_run(flow_cls.__name__, spec.run_id)
        if run is None:
            raise MetaflowlikeException(
                f"Run {flow_cls.__name__}/{spec.run_id} has no run record in "
                f"{state.fds.storage.url()}."
            )
        spec.user = spec.user or run.get("user", "")
        spec.tags = spec.tags or run.get("tags", [])
        spec.namespace = spec.namespace or run.get("namespace")
        from .task_supervisor import SELF_SUFFICIENT_ENV, supervise

        if os.environ.get(SELF_SUFFICIENT_ENV) == "1":
            sys.exit(supervise(state, spec, with_specs))
        from .decorators import step_decorators

        decos = _with_decorators(tuple(with_specs))
        for d in step_decorators(state.graph[step_name], decos):
            os.environ.update(d.task_env(step_name=step_name))
        ok = run_task(flow_cls, state.graph, spec, state.fds, run.get("params", {}), decos)
        sys.stdout.flush()
        sys.stderr.flush()
        sys.exit(0 if ok else 1)

    @cli.command()
    @click.argument("pathspec")
    @click.option("--stderr", "only_stderr", is_flag=True, help="Only stderr.")
    @click.option("--stdout", "only_stdout", is_flag=True, help="Only stdout.")
    @click.option("--attempt", type=int, default=None)
    @click.pass_obj
    def logs(state: _State, pathspec, only_stderr, only_stdout, attempt):
        """Print the saved logs of RUN_ID/STEP[/TASK_ID]."""
        streams = ["stdout", "stderr"]
        if only_stderr:
            streams = ["stderr"]
        elif only_stdout:
            streams = ["stdout"]
        for task_path in _task_paths(state, pathspec):
            rec = state.fds.read_task(task_path, attempt)
            if rec is None:
                continue
            for stream in streams:
                data = state.fds.read_log(task_path, rec.attempt, stream)
                if data:
                    out = sys.stderr if stream == "stderr" else sys.stdout
                    out.write(data.decode(errors="replace"))
                    out.flush()

    @cli.command()
    @click.argument("pathspec")
    @click.option("--max-value-size", default=1000, help="Truncate long values.")
    @click.pass_obj
    def dump(state: _State, pathspec, max_value_size):
        """Print the artifacts of the finished task(s) RUN_ID/STEP[/TASK_ID]."""
        from .exceptions import ArtifactLoadError

        for task_path in _task_paths(state, pathspec):
            rec = state.fds.read_task(task_path)
            if rec is None:
                continue
            click.echo(f"{task_path} ({rec.status}):")
            for name in sorted(rec.artifacts):
                key, size, type_name = rec.artifacts[name]
                try:
                    value = repr(state.fds.cas.load(key))
                except ArtifactLoadError as e:
                    value = f"<not loadable here: {e}>"
                if len(value) > max_value_size:
                    value = value[:max_value_size] + "..."
                click.echo(f"  {name} ({type_name}, {size} bytes) = {value}")

    from .resume import add_resume_command

    add_resume_command(cli, flow_cls, _params_options, _with_decorators)
    from .environments.commands import register as add_environment_commands

    add_environment_commands(cli)
    return cli


def _task_paths(state: _State, pathspec: str) -> list[str]:
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
    if len(parts) == 3 and not state.fds.attempts(flow, run_id, step, parts[2]):
        raise MetaflowlikeException(f"Task {paths[0]} has no finished attempt.")
    return paths


def _num(s: str) -> tuple:
    return (0, int(s), "") if s.isdigit() else (1, 0, s)


def print_error(e: MetaflowlikeException) -> None:
    headline = f"{e.headline}:"
    if sys.stderr.isatty():
        headline = f"\033[1;31m{headline}\033[0m"
    sys.stderr.write(f"{headline} {e}\n")
    sys.stderr.flush()


def _show_our_warnings_plainly() -> None:
    """Print metaflowlike's own warnings (a damaged record...) as one line each, like
    the errors, instead of with the file and line of the framework code that raised
    them; any other warning keeps Python's usual format."""
    import warnings

    from .exceptions import DamagedRecordWarning

    python_show = warnings.showwarning

    def show(message, category, filename, lineno, file=None, line=None):
        if issubclass(category, DamagedRecordWarning):
            sys.stderr.write(f"Warning: {message}\n")
        else:
            python_show(message, category, filename, lineno, file, line)

    warnings.showwarning = show


def main(flow_cls: type, args: list[str] | None = None) -> None:
    """Entry point used by ``FlowSpec.__init__`` when a flow file is run."""
    argv = sys.argv[1:] if args is None else list(args)
    fast = _graph_command(argv)
    if fast is not None:
        command, fmt = fast
        try:
            print(check_text(flow_cls) if command == "check" else show_text(flow_cls, fmt))
        except MetaflowlikeException as e:
            print_error(e)
            sys.exit(1)
        sys.exit(0)
    import click

    _show_our_warnings_plainly()
    try:
        build_cli(flow_cls).main(
            args=args, prog_name=os.path.basename(sys.argv[0]), standalone_mode=False
        )
    except MetaflowlikeException as e:
        print_error(e)
        sys.exit(1)
    except click.exceptions.Abort:
        click.echo("Aborted.", err=True)
        sys.exit(130)
    except click.ClickException as e:
        e.show()
        sys.exit(e.exit_code)
    except KeyboardInterrupt:
        click.echo("Interrupted.", err=True)
        sys.exit(130)
    except TaskStopped:  # a ``step`` asked to stop has unwound: end its process group
        end_stopped_task()
    sys.exit(0)
