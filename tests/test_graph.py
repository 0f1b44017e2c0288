"""The static flow graph: every shape parses with the right types, edges, split stacks
and matching joins; renderers show every step and edge."""

from __future__ import annotations

import functools

import pytest

from metaflowlike import FlowSpec, Parameter, step
from metaflowlike.graph import FlowGraph, StepNode
from metaflowlike.graph_render import render_dot, render_mermaid, render_text
from metaflowlike.lint import check

# --------------------------------------------------------------------------- flows


class LinearFlow(FlowSpec):
    """A straight line.

    More text that is not the first paragraph.
    """

    @step
    def start(self):
        """Begin
        here."""
        self.x = 1
        self.next(self.middle)

    @step
    def middle(self):
        self.next(self.end)

    @step
    def end(self):
        """Finish."""


class BranchFlow(FlowSpec):
    @step
    def start(self):
        self.next(self.a, self.b)

    @step
    def a(self):
        self.next(self.join)

    @step
    def b(self):
        self.next(self.join)

    @step
    def join(self, inputs):
        self.next(self.end)

    @step
    def end(self):
        pass


class NestedBranchFlow(FlowSpec):
    @step
    def start(self):
        self.next(self.a, self.b)

    @step
    def a(self):
        self.next(self.a1, self.a2)

    @step
    def a1(self):
        self.next(self.ajoin)

    @step
    def a2(self):
        self.next(self.ajoin)

    @step
    def ajoin(self, inputs):
        self.next(self.join)

    @step
    def b(self):
        self.next(self.join)

    @step
    def join(self, inputs):
        self.next(self.end)

    @step
    def end(self):
        pass


class ForeachFlow(FlowSpec):
    @step
    def start(self):
        self.items = [1, 2, 3]
        self.next(self.body, foreach="items")

    @step
    def body(self):
        self.next(self.join)

    @step
    def join(self, inputs):
        self.next(self.end)

    @step
    def end(self):
        pass


class NestedForeachFlow(FlowSpec):
    @step
    def start(self):
        self.xs = [1, 2]
        self.next(self.outer, foreach="xs")

    @step
    def outer(self):
        self.ys, _ = [3, 4], None
        self.next(self.inner, foreach="ys")

    @step
    def inner(self):
        self.next(self.inner_join)

    @step
    def inner_join(self, inputs):
        self.next(self.outer_join)

    @step
    def outer_join(self, inputs):
        self.next(self.end)

    @step
    def end(self):
        pass


class ForeachInBranchFlow(FlowSpec):
    @step
    def start(self):
        self.next(self.a, self.b)

    @step
    def a(self):
        self.items = "xyz"
        self.next(self.body, foreach="items")

    @step
    def body(self):
        self.next(self.fjoin)

    @step
    def fjoin(self, inputs):
        self.next(self.join)

    @step
    def b(self):
        self.next(self.join)

    @step
    def join(self, inputs):
        self.next(self.end)

    @step
    def end(self):
        pass


class BranchInForeachFlow(FlowSpec):
    @step
    def start(self):
        self.items = [1, 2]
        self.next(self.body, foreach="items")

    @step
    def body(self):
        self.next(self.x, self.y)

    @step
    def x(self):
        self.next(self.bjoin)

    @step
    def y(self):
        self.next(self.bjoin)

    @step
    def bjoin(self, inputs):
        self.next(self.fjoin)

    @step
    def fjoin(self, inputs):
        self.next(self.end)

    @step
    def end(self):
        pass


def wrapping(func):
    """A user decorator that wraps the step (functools.wraps sets __wrapped__)."""

    @functools.wraps(func)
    def wrapper(self, *args):
        return func(self, *args)

    return wrapper


class BaseFlow(FlowSpec):
    @step
    def start(self):
        self.next(self.work)

    @step
    def end(self):
        pass


class InheritedFlow(BaseFlow):
    alpha = Parameter("alpha", default=1)

    @step
    @wrapping
    def work(self):
        """Wrapped step."""
        self.next(self.end)


class OverrideFlow(BaseFlow):
    @step
    def start(self):
        self.next(self.end)

    work = None  # hides the base class's step


class SelfRenamedFlow(FlowSpec):
    @step
    def start(me):
        me.items = [1]
        me.next(me.end)

    @step
    def end(me):
        pass


SHAPES = [
    LinearFlow,
    BranchFlow,
    NestedBranchFlow,
    ForeachFlow,
    NestedForeachFlow,
    ForeachInBranchFlow,
    BranchInForeachFlow,
    InheritedFlow,
    SelfRenamedFlow,
]


def summary(graph: FlowGraph) -> dict[str, tuple]:
    return {
        n.name: (n.type, n.out_funcs, n.in_funcs, n.split_parents, n.matching_join) for n in graph
    }


# --------------------------------------------------------------------------- shapes


@pytest.mark.parametrize("flow", SHAPES, ids=lambda f: f.__name__)
def test_every_shape_is_valid(flow):
    graph = FlowGraph(flow)
    assert check(graph) == []
    assert graph.problems == [] and graph.structure_problems == []
    assert graph.sorted_nodes()[0] == "start" and graph.sorted_nodes()[-1] == "end"


@pytest.mark.parametrize("flow", SHAPES, ids=lambda f: f.__name__)
def test_order_is_topological(flow):
    order = FlowGraph(flow).sorted_nodes()
    graph = FlowGraph(flow)
    for node in graph:
        for child in node.out_funcs:
            assert order.index(node.name) < order.index(child)


def test_linear():
    graph = FlowGraph(LinearFlow)
    assert graph.name == "LinearFlow"
    assert graph.doc == "A straight line."
    assert summary(graph) == {
        "start": ("start", ("middle",), (), (), None),
        "middle": ("linear", ("end",), ("start",), (), None),
        "end": ("end", (), ("middle",), (), None),
    }
    start = graph["start"]
    assert isinstance(start, StepNode)
    assert start.doc == "Begin here."
    assert graph["end"].doc == "Finish."
    assert start.split_type is None and not start.is_join and start.foreach_param is None
    assert start.lineno == LinearFlow.start.__code__.co_firstlineno + 1  # the def line
    assert start.next_lineno == start.lineno + 4
    assert start.source_file == __file__
    assert graph["end"].next_lineno is None
    assert graph.sources["start"].assigned == {"x"}


def test_branch():
    assert summary(FlowGraph(BranchFlow)) == {
        "start": ("start", ("a", "b"), (), (), "join"),
        "a": ("linear", ("join",), ("start",), ("start",), None),
        "b": ("linear", ("join",), ("start",), ("start",), None),
        "join": ("join", ("end",), ("a", "b"), (), None),
        "end": ("end", (), ("join",), (), None),
    }
    graph = FlowGraph(BranchFlow)
    assert graph["start"].split_type == "split"
    assert graph["join"].is_join and graph["join"].matching_split == "start"
    assert graph.sorted_nodes() == ["start", "a", "b", "join", "end"]


def test_nested_branch():
    assert summary(FlowGraph(NestedBranchFlow)) == {
        "start": ("start", ("a", "b"), (), (), "join"),
        "a": ("split", ("a1", "a2"), ("start",), ("start",), "ajoin"),
        "b": ("linear", ("join",), ("start",), ("start",), None),
        "a1": ("linear", ("ajoin",), ("a",), ("start", "a"), None),
        "a2": ("linear", ("ajoin",), ("a",), ("start", "a"), None),
        "ajoin": ("join", ("join",), ("a1", "a2"), ("start",), None),
        "join": ("join", ("end",), ("ajoin", "b"), (), None),
        "end": ("end", (), ("join",), (), None),
    }
    graph = FlowGraph(NestedBranchFlow)
    assert graph["ajoin"].matching_split == "a"
    assert graph["join"].matching_split == "start"


def test_foreach():
    graph = FlowGraph(ForeachFlow)
    assert summary(graph) == {
        "start": ("start", ("body",), (), (), "join"),
        "body": ("linear", ("join",), ("start",), ("start",), None),
        "join": ("join", ("end",), ("body",), (), None),
        "end": ("end", (), ("join",), (), None),
    }
    assert graph["start"].split_type == "foreach"
    assert graph["start"].foreach_param == "items"
    assert graph["join"].matching_split == "start"


def test_nested_foreach():
    graph = FlowGraph(NestedForeachFlow)
    assert summary(graph) == {
        "start": ("start", ("outer",), (), (), "outer_join"),
        "outer": ("foreach", ("inner",), ("start",), ("start",), "inner_join"),
        "inner": ("linear", ("inner_join",), ("outer",), ("start", "outer"), None),
        "inner_join": ("join", ("outer_join",), ("inner",), ("start",), None),
        "outer_join": ("join", ("end",), ("inner_join",), (), None),
        "end": ("end", (), ("outer_join",), (), None),
    }
    assert graph["outer"].foreach_param == "ys"
    assert graph["outer"].split_type == "foreach"
    assert graph.sources["outer"].assigned == {"ys"}


def test_foreach_inside_branch():
    graph = FlowGraph(ForeachInBranchFlow)
    assert summary(graph) == {
        "start": ("start", ("a", "b"), (), (), "join"),
        "a": ("foreach", ("body",), ("start",), ("start",), "fjoin"),
        "b": ("linear", ("join",), ("start",), ("start",), None),
        "body": ("linear", ("fjoin",), ("a",), ("start", "a"), None),
        "fjoin": ("join", ("join",), ("body",), ("start",), None),
        "join": ("join", ("end",), ("b", "fjoin"), (), None),
        "end": ("end", (), ("join",), (), None),
    }
    assert graph.sorted_nodes() == ["start", "a", "b", "body", "fjoin", "join", "end"]


def test_branch_inside_foreach():
    graph = FlowGraph(BranchInForeachFlow)
    assert summary(graph) == {
        "start": ("start", ("body",), (), (), "fjoin"),
        "body": ("split", ("x", "y"), ("start",), ("start",), "bjoin"),
        "x": ("linear", ("bjoin",), ("body",), ("start", "body"), None),
        "y": ("linear", ("bjoin",), ("body",), ("start", "body"), None),
        "bjoin": ("join", ("fjoin",), ("x", "y"), ("start",), None),
        "fjoin": ("join", ("end",), ("bjoin",), (), None),
        "end": ("end", (), ("fjoin",), (), None),
    }
    # the input of the join closing the foreach sits inside that foreach
    fjoin = graph["fjoin"]
    assert graph[graph[fjoin.in_funcs[0]].split_parents[-1]].split_type == "foreach"
    assert fjoin.matching_split == "start"


def test_inherited_and_wrapped_steps():
    graph = FlowGraph(InheritedFlow)
    assert graph.sorted_nodes() == ["start", "work", "end"]
    work = graph["work"]
    assert work.doc == "Wrapped step."
    assert work.out_funcs == ("end",)
    # the def line (after @step and @wrapping) of the wrapped function, in this file
    assert work.lineno == InheritedFlow.work.__wrapped__.__code__.co_firstlineno + 2
    assert work.source_file == __file__
    assert "alpha" in graph.class_attributes


def test_subclass_can_hide_a_step():
    graph = FlowGraph(OverrideFlow)
    assert graph.sorted_nodes() == ["start", "end"]
    assert check(graph) == []


def test_self_may_have_another_name():
    graph = FlowGraph(SelfRenamedFlow)
    assert graph["start"].out_funcs == ("end",)
    assert graph.sources["start"].assigned == {"items"}


def test_decorators_are_kept():
    def deco(func):
        func.decorators.append(type("D", (), {"name": "resources"})())
        return func

    class DecoratedFlow(FlowSpec):
        @deco
        @step
        def start(self):
            self.next(self.end)

        @step
        def end(self):
            pass

    graph = FlowGraph(DecoratedFlow)
    assert [d.name for d in graph["start"].decorators] == ["resources"]
    assert graph["end"].decorators == ()


def test_mapping_api():
    graph = FlowGraph(BranchFlow)
    assert "a" in graph and "nope" not in graph
    assert len(graph) == 5
    assert [n.name for n in graph] == graph.sorted_nodes() == list(graph.nodes)
    with pytest.raises(KeyError, match='Did you mean "join"'):
        graph["jion"]


def test_nodes_are_read_only():
    node = FlowGraph(LinearFlow)["start"]
    with pytest.raises(AttributeError):
        node.name = "other"  # type: ignore[misc]


def test_building_never_runs_user_code():
    calls = []

    class Exploding:
        def __get__(self, obj, cls):
            calls.append("get")
            raise RuntimeError("ran user code")

    class SideEffectFlow(FlowSpec):
        boom = Exploding()

        @step
        def start(self):
            raise RuntimeError("ran a step")
            self.next(self.end)  # noqa

        @step
        def end(self):
            pass

    graph = FlowGraph(SideEffectFlow)
    assert calls == []
    assert graph["start"].out_funcs == ("end",)


def test_building_never_raises_for_a_bad_flow():
    class Broken(FlowSpec):
        @step
        def start(self, inputs):
            self.next(self.nowhere, foreach=42)

    graph = FlowGraph(Broken)
    assert [n.name for n in graph] == ["start"]
    assert {p.code for p in graph.problems} == {"unknown-step", "foreach-not-literal"}


# --------------------------------------------------------------------------- renderers


def test_render_text():
    text = render_text(FlowGraph(ForeachInBranchFlow))
    assert text.startswith("Flow ForeachInBranchFlow\n")
    assert "Step start\n    => a, b (split: the branches run in parallel)\n" in text
    assert "Step a\n    => body (foreach over items)\n" in text
    assert "Step fjoin (join of the branches started at a)\n    => join\n" in text
    assert "Step join (join of the branches started at start)\n" in text
    assert text.endswith("Step end\n    (end of the flow)\n")
    order = [line.split()[1] for line in text.splitlines() if line.startswith("Step ")]
    assert order == FlowGraph(ForeachInBranchFlow).sorted_nodes()


def test_render_text_shows_docs():
    text = render_text(FlowGraph(LinearFlow))
    assert text == (
        "Flow LinearFlow\n"
        "    A straight line.\n"
        "\n"
        "Step start\n"
        "    Begin here.\n"
        "    => middle\n"
        "\n"
        "Step middle\n"
        "    => end\n"
        "\n"
        "Step end\n"
        "    Finish.\n"
        "    (end of the flow)\n"
    )


def _edges(graph):
    return {(n.name, c) for n in graph for c in n.out_funcs}


@pytest.mark.parametrize("flow", SHAPES, ids=lambda f: f.__name__)
def test_render_dot_has_every_node_and_edge(flow):
    graph = FlowGraph(flow)
    dot = render_dot(graph)
    lines = dot.splitlines()
    assert lines[0] == f'digraph "{flow.__name__}" {{' and lines[-1] == "}"
    edges = set()
    for line in lines:
        if " -> " in line:
            left, right = line.strip().rstrip(";").split(" -> ")
            edges.add((left.strip('"'), right.split(" [")[0].strip('"')))
    assert edges == _edges(graph)
    for node in graph:
        assert f'    "{node.name}" [label="{node.name}"' in dot
    assert dot == render_dot(FlowGraph(flow))  # deterministic


def test_render_dot_marks_foreach_and_escapes():
    dot = render_dot(FlowGraph(ForeachFlow))
    assert '"start" -> "body" [label="foreach items", style=bold];' in dot
    assert '"join" [label="join", shape=invtrapezium];' in dot
    assert 'tooltip="Begin here."' in render_dot(FlowGraph(LinearFlow))


@pytest.mark.parametrize("flow", SHAPES, ids=lambda f: f.__name__)
def test_render_mermaid_has_every_edge(flow):
    graph = FlowGraph(flow)
    text = render_mermaid(graph)
    lines = text.splitlines()
    assert lines[0] == "flowchart TD"
    edges = set()
    for line in lines[1:]:
        parts = line.split()
        if len(parts) >= 3 and parts[1] in ("-->", "==>"):
            edges.add((parts[0], parts[-1]))
        elif "==>|" in line:
            edges.add((parts[0], parts[-1]))
    assert edges == {(f"step_{a}", f"step_{b}") for a, b in _edges(graph)}
    # `end` is a mermaid keyword: never used as a bare node id
    assert not any(part == "end" for line in lines for part in line.split())


def test_render_mermaid_shapes_and_labels():
    text = render_mermaid(FlowGraph(ForeachFlow))
    assert text == (
        "flowchart TD\n"
        '    step_start(["start"])\n'
        '    step_body["body"]\n'
        '    step_join[\\"join"/]\n'
        '    step_end(["end"])\n'
        '    step_start ==>|"foreach items"| step_body\n'
        "    step_body --> step_join\n"
        "    step_join --> step_end\n"
    )


class SwitchDrawFlow(FlowSpec):
    @step
    def start(self):
        self.route = "a"
        self.next({"a": self.a, "b": self.b}, condition="route")

    @step
    def a(self):
        self.next(self.end)

    @step
    def b(self):
        self.next(self.end)

    @step
    def end(self):
        pass


def test_a_stored_graph_summary_draws_the_same_picture_as_the_graph():
    """Notebook views and cards draw a past run from the summary in its run record: a
    switch (and any other shape) must come out exactly as from the flow's source."""
    import json

    from metaflowlike.graph_render import graph_summary, render_dot, summary_nodes

    graph = FlowGraph(SwitchDrawFlow)
    stored = json.loads(json.dumps(graph_summary(graph)))  # as read back from the record
    assert render_dot(summary_nodes(stored), name="SwitchDrawFlow") == render_dot(
        graph, name="SwitchDrawFlow"
    )
