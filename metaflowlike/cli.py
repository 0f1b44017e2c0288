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
from collections.abc import Callable
from typing import Any

from .exceptions import InvalidParameter, MetaflowlikeException, did_you_mean
from .lifeline import TaskStopped, end_stopped_task
from .parameters import flow_parameters

__all__ = ["flow_parameters", "main", "build_cli"]


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
        self.branch: str | None = None
        self.production = False
        self.config_args: tuple = ((), ())  # (--config pairs, --config-value pairs)
        self.configs: dict[str, Any] | None = None  # set: values stored by an earlier run
        self.project: dict[str, Any] | None = None

    @property
    def graph(self):
        if self._graph is None:
            from .graph import FlowGraph

            self._prepare_flow()
            self._graph = FlowGraph(self.flow_cls)
        return self._graph

    def _prepare_flow(self) -> None:
        """Read the configs (or take a run's stored ones), evaluate the decorator
        arguments that use them, and work out the project branch, before the graph
        is built from the decorators."""
        from . import config
        from .config_values import apply_configs, read_configs
        from .current import current
        from .parameters import flow_parameters
        from .project_decorator import project_info

        if self.configs is None:
            self.configs = read_configs(self.flow_cls, *self.config_args)
        apply_configs(self.flow_cls, self.configs)
        user = config.get_username()
        self.project = project_info(self.flow_cls, user, self.branch, self.production)
        current._update(
            parameter_names=[p.attr_name for p in flow_parameters(self.flow_cls)],
            **(self.project or {}),
        )

    def use_stored_configs(self, configs: dict[str, Any]) -> None:
        """Run with the configs a run was started with (``step``, ``resume``)."""
        if any(self.config_args):
            raise MetaflowlikeException(
                "--config/--config-value cannot be given here: the run keeps the configs "
                "it was started with."
            )
        self.configs = dict(configs)

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
        args += ["--branch", self.branch] if self.branch else []
        args += ["--production"] if self.production else []
        return args + (["--quiet"] if self.quiet else [])


#: how ``--help`` names each parameter type (click's names, as Metaflow shows them)
HELP_TYPES = {"str": "TEXT", "int": "INTEGER", "float": "FLOAT", "bool": "BOOLEAN", "JSON": "JSON"}


def _params_options(flow_cls: type):
    """One ``--name`` option per parameter, listed in declaration order in ``--help``
    with its type and ``[required]``; the values stay strings until ``parse_params``,
    so conversion errors are ours and name the parameter."""
    import click

    from .parameters import IncludeFile

    def decorate(cmd):
        # click lists the option applied last first: apply them last-declared first
        for p in reversed(flow_parameters(flow_cls)):
            extras = []
            if p.show_default and p.default is not None and not callable(p.default):
                extras.append(f"default: {p.default!r}")
            if p.required:
                extras.append("required")
            help_text = p.help + (f"  [{'; '.join(extras)}]" if extras else "")
            metavar = "PATH" if isinstance(p, IncludeFile) else HELP_TYPES.get(p.type_name, "TEXT")
            cmd = click.option(
                f"--{p.name}", p.attr_name, default=None, type=str, metavar=metavar, help=help_text
            )(cmd)
        return cmd

    return decorate


def parse_params(flow_cls: type, raw: dict[str, str | None]) -> dict[str, Any]:
    """Convert command-line strings to typed values; every error names the parameter."""
    values = {}
    for p in flow_parameters(flow_cls):
        given = raw.get(p.attr_name)
        if given is None:
            given = os.environ.get(p.env_var)  # METAFLOW_RUN_<NAME>, as in Metaflow
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


def run_options(flow_cls: type) -> Callable[[Callable], Callable]:
    """The options ``run`` and ``resume`` share: the flow's parameters, then how the run
    executes. Their values reach the command as keyword arguments; pass the execution
    ones through :func:`execution_options`."""
    import click

    shared = [
        _params_options(flow_cls),
        click.option("--max-workers", default=16, show_default=True, help="Tasks running at once."),
        click.option(
            "--max-num-splits", default=10000, show_default=True, help="Largest foreach allowed."
        ),
        click.option("--tag", "tags", multiple=True, help="Tag the run (repeatable)."),
        click.option("--run-id-file", default=None, help="Write the run id to this file."),
        click.option(
            "--with",
            "with_specs",
            multiple=True,
            help="Add a decorator to every step: NAME[:k=v,...].",
        ),
        click.option(
            "--cache",
            is_flag=True,
            help="Reuse earlier tasks whose cache key matches instead of running them again.",
        ),
        click.option(
            "--launcher",
            type=click.Choice(["fork", "subprocess"]),
            default=lambda: os.environ.get("METAFLOWLIKE_LAUNCHER", "fork"),
            hidden=True,
        ),
    ]

    def decorate(cmd: Callable) -> Callable:
        for option in reversed(shared):  # click lists the option applied last first
            cmd = option(cmd)
        return cmd

    return decorate


def execution_options(raw: dict[str, Any]) -> dict[str, Any]:
    """Take the execution options of :func:`run_options` out of ``raw`` (leaving the
    parameters), checked, as the keyword arguments of :func:`metaflowlike.run.execute`."""
    from .ids import check_tag

    tags = list(raw.pop("tags"))
    for tag in tags:
        check_tag(tag, "--tag")
    with_specs = raw.pop("with_specs")
    return {
        "max_workers": raw.pop("max_workers"),
        "max_num_splits": raw.pop("max_num_splits"),
        "tags": tags,
        "run_id_file": raw.pop("run_id_file"),
        "with_decorators": _with_decorators(with_specs),
        "with_specs": list(with_specs),
        "launcher": raw.pop("launcher"),
        "cache": raw.pop("cache"),
    }


SHOW_FORMATS = ["text", "dot", "mermaid"]
PICTURE_FORMATS = ["svg", "png"]


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

    from .cli_compat import check_metaflow_options, metaflow_compat_options
    from .cli_plugins import PluginGroup

    @click.group(cls=PluginGroup, context_settings={"help_option_names": ["-h", "--help"]})
    @click.option("--datastore", "ds_type", default=None, help="local (default), s3, azure or gs.")
    @click.option("--datastore-root", default=None, help="Folder or URL of the datastore.")
    @click.option("--quiet", is_flag=True, help="Print task output only.")
    @click.option("--branch", default=None, help="@project branch (test.BRANCH).")
    @click.option("--production", is_flag=True, help="@project production branch (prod).")
    @click.option(
        "--config", "config_files", nargs=2, multiple=True, help="Read Config NAME from FILE."
    )
    @click.option("--config-value", nargs=2, multiple=True, help="Config NAME given as VALUE.")
    @click.option(
        "--package-suffixes",
        default=None,
        help="Also put files of the flow's folder with these suffixes in the code package "
        "of remote steps (comma-separated, e.g. .txt,.yaml; .py always).",
    )
    @metaflow_compat_options
    @click.pass_context
    def cli(
        ctx,
        ds_type,
        datastore_root,
        quiet,
        branch,
        production,
        config_files,
        config_value,
        package_suffixes,
        **metaflow_options,
    ):
        """Run and inspect this flow."""
        from .code_package import parse_suffixes

        check_metaflow_options(**metaflow_options)
        ctx.obj = _State(flow_cls, ds_type, datastore_root, quiet, parse_suffixes(package_suffixes))
        ctx.obj.branch, ctx.obj.production = branch, production
        ctx.obj.config_args = (config_files, config_value)

    @cli.command()
    @click.pass_obj
    def check(state: _State):
        """Validate the flow graph and report every problem."""
        click.echo(check_text(flow_cls))

    @cli.command()
    @click.option(
        "--format", "fmt", type=click.Choice(SHOW_FORMATS + PICTURE_FORMATS), default="text"
    )
    @click.option("--output", default=None, help="Write to this file instead of printing.")
    @click.pass_obj
    def show(state: _State, fmt: str, output: str | None):
        """Print the flow graph in words, as dot/mermaid source, or draw it (svg/png)."""
        from .graph_show import show_graph

        show_graph(flow_cls, fmt, output)

    @cli.command()
    @run_options(flow_cls)
    @click.pass_obj
    def run(state: _State, **raw):
        """Run the flow locally."""
        from .run import start_run

        options = execution_options(raw)
        state.validate()
        ok = start_run(state, parse_params(flow_cls, raw), **options)
        sys.exit(0 if ok else 1)

    @cli.command(
        hidden=True,
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
        run = state.fds.read_run(flow_cls.__name__, spec.run_id)
        if run is None:
            raise MetaflowlikeException(
                f"Run {flow_cls.__name__}/{spec.run_id} has no run record in "
                f"{state.fds.storage.url()}."
            )
        state.use_stored_configs(run.configs)
        if step_name not in state.graph:
            raise MetaflowlikeException(
                f'No step "{step_name}".' + did_you_mean(step_name, state.graph.nodes)
            )
        spec.user = spec.user or run.user or ""
        spec.tags = spec.tags or run.tags
        spec.namespace = spec.namespace or run.namespace
        from .task_supervisor import SELF_SUFFICIENT_ENV, supervise

        if os.environ.get(SELF_SUFFICIENT_ENV) == "1":
            sys.exit(supervise(state, spec, with_specs))
        from .decorators import step_decorators

        decos = _with_decorators(tuple(with_specs))
        for d in step_decorators(state.graph[step_name], decos):
            os.environ.update(d.task_env(step_name=step_name))
        ok = run_task(flow_cls, state.graph, spec, state.fds, run.params, decos)
        sys.stdout.flush()
        sys.stderr.flush()
        sys.exit(0 if ok else 1)

    from .cli_inspect import add_inspect_commands

    add_inspect_commands(cli, flow_cls)
    from .cards.cli import add_card_command
    from .resume import add_resume_command

    add_card_command(cli)
    from .stepcache.commands import add_cache_command

    add_cache_command(cli, flow_cls)

    add_resume_command(cli, flow_cls)
    from .environments.commands import register as add_environment_commands

    add_environment_commands(cli)
    cli.flow_cls = flow_cls  # for the plugins' commands (cli_plugins.py)
    return cli


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
