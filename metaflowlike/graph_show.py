"""``show``: print the graph, or write it to a file; pictures go through Graphviz."""

from __future__ import annotations

import os
import sys

from .exceptions import MetaflowlikeException


def show_graph(flow_cls: type, fmt: str, output: str | None) -> None:
    """Print (or with ``output`` write) the graph of ``flow_cls`` in ``fmt``.

    A PNG is binary, so it is only ever written to a file; the file appears whole or
    not at all (written aside, then renamed)."""
    from . import graph_render
    from .cli import show_text
    from .graph import FlowGraph

    if fmt in ("svg", "png"):
        data = graph_render.render_picture(graph_render.render_dot(FlowGraph(flow_cls)), fmt)
    else:
        data = show_text(flow_cls, fmt).encode()
    if output is None:
        if fmt == "png":
            raise MetaflowlikeException(
                "show --format png writes a binary picture: name the file with --output F.png."
            )
        sys.stdout.write(data.decode())
        sys.stdout.flush()
        return
    tmp = f"{output}.tmp{os.getpid()}"
    try:
        with open(tmp, "wb") as f:
            f.write(data)
        os.replace(tmp, output)
    except OSError as e:
        raise MetaflowlikeException(f"show: cannot write {output}: {e.strerror or e}.") from None
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    print(f"Wrote the graph of {flow_cls.__name__} as {fmt} to {output}.")
