"""The ``metaflowlike ui`` command: open the run browser on a datastore."""

from __future__ import annotations

import ipaddress
import sys
import threading
import webbrowser

import click

from ..exceptions import MetaflowlikeException

DEFAULT_PORT = 8324


class UiMissing(MetaflowlikeException):
    headline = "The run browser is not installed"


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def exposure_warning(host: str, port: int) -> str:
    return (
        f"Warning: the run browser listens on {host}:{port}, not only on this machine: "
        "anyone who can reach that port can read every run, artifact preview, log and "
        "card of this datastore, without a password. Use --host 127.0.0.1 (the default) "
        "unless that is what you want."
    )


@click.command("ui")
@click.option("--datastore", "ds_type", default=None, help="Datastore type: local, s3, azure, gs.")
@click.option("--datastore-root", "ds_root", default=None, help="Datastore root (path or URL).")
@click.option("--port", default=DEFAULT_PORT, show_default=True, type=click.IntRange(0, 65535))
@click.option(
    "--host",
    default="127.0.0.1",
    show_default=True,
    help="Address to listen on. Anything but a loopback address exposes the datastore.",
)
@click.option("--open", "open_browser", is_flag=True, help="Open the page in a web browser.")
@click.option(
    "--allow-unpickle",
    is_flag=True,
    help="Let the page show any artifact's value by unpickling it (runs code stored in "
    "the artifact: only for datastores you trust). Without it, only the previews saved "
    "with small plain values are shown.",
)
def ui_command(
    ds_type: str | None,
    ds_root: str | None,
    port: int,
    host: str,
    open_browser: bool,
    allow_unpickle: bool,
) -> None:
    """Browse the flows, runs, tasks, logs and cards of a datastore in a web browser."""
    try:
        import uvicorn

        from .app import create_app
    except ImportError as e:
        raise UiMissing(
            f"`metaflowlike ui` needs the web server packages of the `ui` extra ({e.name} "
            'is missing): pip install "metaflowlike[ui]".'
        ) from None
    from ..config import open_datastore
    from .reader import RunBrowser

    fds = open_datastore(ds_type, ds_root)
    app = create_app(RunBrowser(fds, allow_unpickle=allow_unpickle))
    if not is_loopback(host):
        click.echo(exposure_warning(host, port), err=True)
    config = uvicorn.Config(app, host=host, port=port, log_level="warning", access_log=False)
    server = uvicorn.Server(config)
    shown_host = f"[{host}]" if ":" in host else host

    def announce() -> None:
        # the real port (``--port 0`` picks a free one) is known once the socket is bound
        while not server.started:
            if server.should_exit:
                return
            threading.Event().wait(0.05)
        bound = port
        for s in getattr(server, "servers", []):
            for sock in s.sockets:
                bound = sock.getsockname()[1]
        url = f"http://{shown_host}:{bound}/"
        where = f"{fds.storage.TYPE}@{fds.storage.url()}"
        click.echo(f"Browsing {where} at {url} (read-only; Ctrl-C stops)")
        sys.stdout.flush()
        if open_browser:
            webbrowser.open(url)

    threading.Thread(target=announce, daemon=True).start()
    server.run()
