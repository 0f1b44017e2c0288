"""The ``metaflowlike`` console script: commands that work without a flow file.

Flow commands (``run``, ``resume``, ...) belong to ``python flow.py``; this script holds
what concerns a whole datastore, such as the model registry and the run browser.
"""

from __future__ import annotations

import sys

import click

from .tracking.model_cli import model_group
from .ui.cli import ui_command


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
def cli() -> None:
    """metaflowlike: commands on a datastore."""


cli.add_command(model_group)
cli.add_command(ui_command)


def main(args: list[str] | None = None) -> None:
    from .cli import print_error
    from .exceptions import MetaflowlikeException

    try:
        cli.main(args=args, prog_name="metaflowlike", standalone_mode=False)
    except MetaflowlikeException as e:
        print_error(e)
        sys.exit(1)
    except click.ClickException as e:
        e.show()
        sys.exit(e.exit_code)
    sys.exit(0)
