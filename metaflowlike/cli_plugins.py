"""Command groups that plugins add to a flow's command line (``step-functions``...).

A plugin registers a factory ``(flow_cls) -> click.Command`` under the
``metaflowlike.cli_commands`` entry-point group; ``python flow.py NAME ...`` then runs
it and ``--help`` lists it. Entry points are only scanned when a command is not one of
the built-in ones (or for ``--help``), so ``run`` and ``step`` pay nothing for them,
and a plugin's module (and its cloud SDK) is only imported when its command is used.
"""

from __future__ import annotations

from typing import Any

import click

from . import plugins


class PluginGroup(click.Group):
    """The flow's top-level group: built-in commands, then the plugins' on demand."""

    flow_cls: type | None = None

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(set(super().list_commands(ctx)) | set(plugins.names(plugins.CLI_COMMANDS)))

    def get_command(self, ctx: click.Context, cmd_name: str) -> Any:
        command = super().get_command(ctx, cmd_name)
        if command is None and cmd_name in plugins.names(plugins.CLI_COMMANDS):
            factory = plugins.load(plugins.CLI_COMMANDS, cmd_name, "command")
            command = factory(self.flow_cls)
            self.add_command(command, cmd_name)
        return command
