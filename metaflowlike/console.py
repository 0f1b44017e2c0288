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


@cli.command("gc")
@click.option("--datastore", "ds_type", default=None, help="Datastore type (local, s3, ...).")
@click.option("--datastore-root", "ds_root", default=None, help="Datastore root.")
@click.option(
    "--keep-last",
    type=click.IntRange(min=0),
    default=None,
    help="Keep the N newest runs of each flow (default: every run).",
)
@click.option(
    "--max-size",
    default=None,
    metavar="SIZE",
    help="Also drop the oldest runs until the kept ones refer to at most SIZE of "
    "artifacts (e.g. 500MB, 20GB).",
)
@click.option("--dry-run", is_flag=True, help="Only say what would be removed.")
def gc_command(
    ds_type: str | None,
    ds_root: str | None,
    keep_last: int | None,
    max_size: str | None,
    dry_run: bool,
):
    """Remove old runs and the blobs no kept run refers to (safe while runs are writing;
    runs that may still be running are always kept)."""
    from .config import open_datastore
    from .datastore_gc import collect, parse_size

    limit = None if max_size is None else parse_size(max_size, "--max-size")
    collect(open_datastore(ds_type, ds_root), keep_last, dry_run, click.echo, limit)


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
