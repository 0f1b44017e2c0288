"""Render a :class:`FlowGraph` for people: plain text (``show``), Graphviz dot, mermaid,
and pictures (SVG/PNG through Graphviz's ``dot`` program).

Renderers only read the typed graph, so they work on any flow that parses, even an
invalid one (``show`` is how a user looks at a graph that ``check`` rejects). Output is
deterministic: steps in graph order, edges in ``self.next`` call order.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from collections.abc import Iterable
from types import SimpleNamespace
from typing import Any

from .exceptions import MetaflowlikeException
from .graph import FlowGraph, StepNode

__all__ = [
    "render_text",
    "render_dot",
    "render_mermaid",
    "render_picture",
    "graph_summary",
    "summary_nodes",
    "GraphvizMissing",
]

_PLAIN_ID = re.compile(r"[A-Za-z0-9_]+")


def _transition(node: StepNode) -> str:
    if node.type == "end":
        return "(end of the flow)"
    if not node.out_funcs:
        return "=> (no next step)"
    targets = ", ".join(node.out_funcs)
    if node.is_switch:
        cases = ", ".join(f"{key!r} -> {step}" for key, step in node.switch_cases)
        return f"=> one of {targets} (switch on {node.condition or '?'}: {cases})"
    if node.is_parallel:
        return f"=> {targets} (a gang of num_parallel tasks run together)"
    if node.split_type == "foreach":
        return f"=> {targets} (foreach over {node.foreach_param or '?'})"
    if node.split_type == "split":
        return f"=> {targets} (split: the branches run in parallel)"
    return f"=> {targets}"


def _header(node: StepNode) -> str:
    if not node.is_join or node.type != "join":
        return f"Step {node.name}"
    if node.matching_split:
        return f"Step {node.name} (join of the branches started at {node.matching_split})"
    return f"Step {node.name} (join)"


def render_text(graph: FlowGraph) -> str:
    """The ``show`` output: every step with its doc line and where it goes next."""
    lines = [f"Flow {graph.name}"]
    if graph.doc:
        lines.append(f"    {graph.doc}")
    for node in graph:
        lines.append("")
        lines.append(_header(node))
        if node.doc:
            lines.append(f"    {node.doc}")
        lines.append(f"    {_transition(node)}")
    return "\n".join(lines) + "\n"


def _switch_label(node: StepNode, child: str) -> str:
    """The case keys of a switch that lead to ``child``, as the condition's values."""
    keys = [repr(key) for key, step in node.switch_cases if step == child]
    return f"{node.condition or '?'} = {' | '.join(keys)}"


# --------------------------------------------------------------------------- dot

_DOT_SHAPES = {
    "start": "ellipse",
    "end": "ellipse",
    "split": "trapezium",
    "foreach": "trapezium",
    "join": "invtrapezium",
    "switch": "diamond",
}


def _dot_str(text: str) -> str:
    escaped = text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
    return f'"{escaped}"'


def render_dot(
    graph: FlowGraph | Iterable[Any],
    name: str | None = None,
    styles: dict[str, dict[str, str]] | None = None,
) -> str:
    """Graphviz dot source (``dot -Tsvg``); foreach edges are bold and labelled.

    ``graph`` may also be the nodes of a stored run (:func:`summary_nodes`), and
    ``styles`` adds dot attributes per step (a fill colour for its status, a
    highlighted border for the step a card belongs to)."""
    name = name or graph.name  # type: ignore[union-attr]
    out = [
        f"digraph {_dot_str(name)} {{",
        "    rankdir=TB;",
        '    node [shape=box, style=rounded, fontname="Helvetica"];',
        '    edge [fontname="Helvetica"];',
    ]
    for node in graph:
        attrs = [f"label={_dot_str(node.name)}"]
        shape = _DOT_SHAPES.get(node.type)
        if shape:
            attrs.append(f"shape={shape}")
        if node.doc:
            attrs.append(f"tooltip={_dot_str(node.doc)}")
        for key, value in (styles or {}).get(node.name, {}).items():
            attrs.append(f"{key}={_dot_str(value)}")
        out.append(f"    {_dot_str(node.name)} [{', '.join(attrs)}];")
    for node in graph:
        for child in node.out_funcs:
            edge = f"    {_dot_str(node.name)} -> {_dot_str(child)}"
            if node.is_switch:
                label = _switch_label(node, child)
                edge += f" [label={_dot_str(label)}, style=dashed]"
            elif node.is_parallel:
                edge += f" [label={_dot_str('num_parallel')}, style=bold]"
            elif node.split_type == "foreach":
                label = f"foreach {node.foreach_param or '?'}"
                edge += f" [label={_dot_str(label)}, style=bold]"
            out.append(edge + ";")
    out.append("}")
    return "\n".join(out) + "\n"


# --------------------------------------------------------------------------- mermaid

_MERMAID_SHAPES = {
    "start": ('(["', '"])'),
    "end": ('(["', '"])'),
    "split": ('{{"', '"}}'),
    "foreach": ('{{"', '"}}'),
    "join": ('[\\"', '"/]'),
    "switch": ('{"', '"}'),
}


def _mermaid_text(text: str) -> str:
    return text.replace('"', "#quot;")


def render_mermaid(graph: FlowGraph) -> str:
    """A mermaid ``flowchart TD``. Node ids are ``step_<name>`` because a bare ``end``
    would close the chart in mermaid."""
    ids: dict[str, str] = {}
    for i, node in enumerate(graph):
        ids[node.name] = f"step_{node.name}" if _PLAIN_ID.fullmatch(node.name) else f"step{i}"
    out = ["flowchart TD"]
    for node in graph:
        left, right = _MERMAID_SHAPES.get(node.type, ('["', '"]'))
        out.append(f"    {ids[node.name]}{left}{_mermaid_text(node.name)}{right}")
    for node in graph:
        for child in node.out_funcs:
            if node.is_switch:
                label = _mermaid_text(_switch_label(node, child))
                out.append(f'    {ids[node.name]} -.->|"{label}"| {ids[child]}')
            elif node.is_parallel:
                out.append(f'    {ids[node.name]} ==>|"num_parallel"| {ids[child]}')
            elif node.split_type == "foreach":
                label = _mermaid_text(f"foreach {node.foreach_param or '?'}")
                out.append(f'    {ids[node.name]} ==>|"{label}"| {ids[child]}')
            else:
                out.append(f"    {ids[node.name]} --> {ids[child]}")
    return "\n".join(out) + "\n"


# --------------------------------------------------------------------------- pictures


class GraphvizMissing(MetaflowlikeException):
    headline = "Graphviz is not installed"


def render_picture(dot_source: str, fmt: str) -> bytes:
    """Lay out ``dot_source`` with Graphviz's ``dot`` program as ``svg`` or ``png``.

    The layout is Graphviz's job: a maintained program draws better pictures than any
    layout code of ours would, and the same SVG serves ``show``, cards and notebooks."""
    exe = shutil.which("dot")
    if exe is None:
        raise GraphvizMissing(
            f"Drawing the flow as {fmt} needs the `dot` program of Graphviz, which is not on "
            "the PATH. Install the graphviz package (apt-get install graphviz, brew install "
            "graphviz, conda install graphviz), or use --format text, dot or mermaid."
        )
    proc = subprocess.run([exe, f"-T{fmt}"], input=dot_source.encode(), capture_output=True)
    if proc.returncode != 0:
        raise MetaflowlikeException(
            f"Graphviz could not draw the flow: {proc.stderr.decode(errors='replace').strip()}"
        )
    out = proc.stdout
    if fmt == "svg":  # drop the XML prolog and DOCTYPE so the SVG can be inlined in HTML
        start = out.find(b"<svg")
        out = out[start:] if start >= 0 else out
    return out


def graph_summary(graph: FlowGraph) -> dict[str, dict[str, Any]]:
    """The shape of the graph as plain JSON, stored in the run record so that views
    of a past run (notebooks, cards) can draw it without the flow's source."""
    return {
        node.name: {
            "type": node.type,
            "next": list(node.out_funcs),
            "foreach": node.foreach_param,
            "split_type": node.split_type,
            "doc": node.doc,
        }
        for node in graph
    }


def summary_nodes(summary: dict[str, dict[str, Any]]) -> list[SimpleNamespace]:
    """Nodes with the attributes the renderers read, rebuilt from :func:`graph_summary`."""
    return [
        SimpleNamespace(
            name=name,
            type=info.get("type", "linear"),
            out_funcs=tuple(info.get("next", ())),
            foreach_param=info.get("foreach"),
            split_type=info.get("split_type"),
            doc=info.get("doc") or "",
        )
        for name, info in summary.items()
    ]
