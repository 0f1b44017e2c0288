"""Top-level options Metaflow users pass out of habit, accepted so commands port as is.

``python flow.py --no-pylint --metadata local run`` is how many Metaflow projects spell
every command (in Makefiles, CI scripts, READMEs). Here each of these means nothing or
is what happens anyway: there is no pylint pass, metadata always lives in the
datastore, and there is no event logger or monitor to plug in. They are accepted and
ignored; a value that asks for something we cannot do (a metadata service) is an error.
"""

from __future__ import annotations

from .exceptions import MetaflowlikeException

#: ``--metadata`` values that describe what metaflowlike does anyway
LOCAL_METADATA = ("local",)


class UnsupportedOption(MetaflowlikeException):
    headline = "Unsupported option"


def metaflow_compat_options(cmd):
    import click

    note = "Accepted for Metaflow compatibility; no effect."
    for opt in reversed(
        [
            click.option(
                "--metadata",
                "metadata",
                default=None,
                metavar="local",
                help="Metaflow's metadata provider: metadata is kept in the datastore, so "
                "only 'local' is accepted.",
            ),
            click.option("--pylint/--no-pylint", "pylint", default=None, help=note),
            click.option("--event-logger", "event_logger", default=None, help=note),
            click.option("--monitor", "monitor", default=None, help=note),
        ]
    ):
        cmd = opt(cmd)
    return cmd


def check_metaflow_options(
    metadata: str | None = None,
    pylint: bool | None = None,
    event_logger: str | None = None,
    monitor: str | None = None,
) -> None:
    """Refuse only what would silently differ: a metadata service we do not have."""
    if metadata is not None and metadata not in LOCAL_METADATA:
        raise UnsupportedOption(
            f"--metadata {metadata}: metaflowlike keeps run metadata in its datastore and "
            "has no metadata service; drop the option or pass --metadata local (choose "
            "where runs live with --datastore and --datastore-root)."
        )
