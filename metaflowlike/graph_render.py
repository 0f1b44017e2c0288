"""Render a :class:`FlowGraph` for people: plain text (``show``), Graphviz dot, mermaid.

Renderers only read the typed graph, so they work on any flow that parses, even an
invalid one (``show`` is how a user looks at a graph that ``check`` rejects). Output is
deterministic: steps in graph order, edges in ``self.next`` call order.
"""

from __future__ import annotations

import re

from .graph import FlowGraph, StepNode

__all__ = ["render_text", "render_dot", "render_mermaid"]

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


def render_dot(graph: FlowGraph) -> str:
    """Graphviz dot source (``dot -Tsvg``); foreach edges are bold and labelled."""
    out = [
        f"digraph {_dot_str(graph.name)} {{",
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
