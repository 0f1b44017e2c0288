"""``metaflowlike model ...``: list, show and alias registered models from a shell."""

from __future__ import annotations

import json
from datetime import datetime, timezone

import click


def _when(ts: float) -> str:
    return datetime.fromtimestamp(ts, timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")


@click.group("model")
@click.option("--datastore", "ds_type", default=None, help="Datastore type (local, s3, ...).")
@click.option("--datastore-root", "ds_root", default=None, help="Datastore root.")
def model_group(ds_type: str | None, ds_root: str | None) -> None:
    """The model registry of a datastore (default: the configured one)."""
    if ds_type or ds_root:
        from ..client import set_datastore

        set_datastore(ds_type, ds_root)


@model_group.command("list")
def list_cmd() -> None:
    """Every model with its versions and aliases."""
    from ..client import get_datastore
    from .model import list_models
    from .registry import Registry

    registry = Registry(get_datastore())
    models = list_models()
    if not models:
        click.echo("No models are registered.")
    for name, versions in models.items():
        aliases = registry.aliases(name)
        held = ", ".join(f"{a}={v}" for a, v in sorted(aliases.items()))
        click.echo(
            f"{name}: versions {versions[0]}..{versions[-1]}" + (f"; {held}" if held else "")
        )


@model_group.command("show")
@click.argument("spec")
def show_cmd(spec: str) -> None:
    """One version: SPEC is NAME, NAME/VERSION or NAME@ALIAS."""
    from .model import Model

    m = Model(spec)
    doc = {
        "name": m.name,
        "version": m.version,
        "kind": m.kind,
        "aliases": m.aliases,
        "created_at": _when(m.created_at),
        "created_by": m.created_by,
        "metadata": m.metadata,
        "lineage": m.lineage,
    }
    click.echo(json.dumps(doc, indent=2, default=str))


@model_group.command("alias")
@click.argument("name")
@click.argument("alias")
@click.argument("version", type=int)
def alias_cmd(name: str, alias: str, version: int) -> None:
    """Point NAME@ALIAS at VERSION (recorded: who, when, from which version)."""
    from .model import set_alias

    move = set_alias(name, alias, version)
    was = f" (was {move.previous})" if move.previous is not None else ""
    click.echo(f"{name}@{alias} -> version {move.version}{was}")


@model_group.command("history")
@click.argument("name")
@click.argument("alias")
def history_cmd(name: str, alias: str) -> None:
    """Every move of NAME@ALIAS, oldest first."""
    from .model import alias_history

    for move in alias_history(name, alias):
        was = f" from {move.previous}" if move.previous is not None else ""
        click.echo(f"{move.seq}. {_when(move.at)} {move.user}: -> {move.version}{was}")
