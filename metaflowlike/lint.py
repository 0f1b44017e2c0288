"""Graph checks: report every problem of a flow at once, each with step, file and line.

A user fixing a flow wants the whole list in one go, not one error per run, so
:func:`check` never stops early: it collects the problems the graph recorded while
parsing (:attr:`FlowGraph.problems`) and while balancing splits and joins
(:attr:`FlowGraph.structure_problems`) and adds the checks below. :func:`validate` turns
a non-empty list into one :class:`InvalidGraph` whose message has one problem per line.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

from .exceptions import InvalidGraph, did_you_mean
from .graph import FlowGraph, GraphProblem, StepNode

__all__ = ["GraphProblem", "check", "validate"]

_VALID_NAME = re.compile(r"[a-z0-9_]+")


def check(graph: FlowGraph) -> list[GraphProblem]:
    """Every problem of ``graph``, sorted by file and line. Empty means valid."""
    problems = list(graph.problems)
    for checker in (
        _check_start_end,
        _check_names,
        _check_arguments,
        _check_reachable,
        _check_cycles,
        _check_foreach_names,
        _check_split_into_join,
        _check_parallel,
    ):
        problems.extend(checker(graph))
    problems.extend(graph.structure_problems)
    unique = list(dict.fromkeys(problems))
    unique.sort(key=lambda p: (p.file, p.lineno, p.step or "", p.code))
    return unique


def validate(graph: FlowGraph) -> None:
    """Raise :class:`InvalidGraph` listing every problem, one per line, if any."""
    problems = check(graph)
    if problems:
        raise InvalidGraph("\n".join(map(str, problems)), lineno=problems[0].lineno)


# --------------------------------------------------------------------------- checks


def _step_problem(
    graph: FlowGraph, step: str, code: str, msg: str, at_next: bool = False
) -> GraphProblem:
    node = graph.nodes[step]
    line = (node.next_lineno if at_next else None) or node.lineno
    return GraphProblem(code, msg, node.source_file, line, step=step, flow=graph.name)


def _flow_problem(graph: FlowGraph, code: str, msg: str) -> GraphProblem:
    return GraphProblem(code, msg, graph.source_file, graph.lineno, step=None, flow=graph.name)


def _check_start_end(graph: FlowGraph) -> Iterator[GraphProblem]:
    for name in ("start", "end"):
        if name not in graph:
            yield _flow_problem(
                graph,
                f"missing-{name}",
                f'has no "{name}" step; every flow needs one (@step def {name}(self)).'
                + did_you_mean(name, graph.nodes),
            )


def _check_names(graph: FlowGraph) -> Iterator[GraphProblem]:
    for node in graph:
        if node.name.startswith("_"):
            yield _step_problem(
                graph, node.name, "bad-step-name", 'step names must not start with "_"'
            )
        elif not _VALID_NAME.fullmatch(node.name):
            yield _step_problem(
                graph,
                node.name,
                "bad-step-name",
                'step names may only use lowercase letters, digits and "_"',
            )
        if node.name in graph.reserved_names:
            yield _step_problem(
                graph,
                node.name,
                "reserved-step-name",
                f'"{node.name}" is a FlowSpec attribute and cannot name a step; rename it',
            )


def _check_arguments(graph: FlowGraph) -> Iterator[GraphProblem]:
    for node in graph:
        num_args = graph.sources[node.name].num_args
        if num_args == 0:
            yield _step_problem(
                graph, node.name, "bad-arguments", f"must take self: def {node.name}(self)"
            )
        elif num_args > 2:
            yield _step_problem(
                graph,
                node.name,
                "bad-arguments",
                "takes too many arguments: a step takes (self), a join (self, inputs)",
            )
        if not node.is_join:
            continue
        if node.name == "start":
            yield _step_problem(
                graph,
                "start",
                "start-takes-inputs",
                "start is the first step and cannot take inputs: def start(self)",
            )
        elif node.name == "end":
            yield _step_problem(
                graph,
                "end",
                "end-takes-inputs",
                "end cannot take inputs; join the branches in a join step before end",
            )
        elif node.split_type:
            yield _step_problem(
                graph,
                node.name,
                "join-splits",
                "a join cannot also split; add a separate step after the join",
                at_next=True,
            )


def _check_reachable(graph: FlowGraph) -> Iterator[GraphProblem]:
    if any(p.code == "no-source" for p in graph.problems):
        return  # transitions unknown: "unreachable" would only repeat "no source"
    # nothing to measure from without start; missing-start says it all
    reachable = graph.reachable("start") if "start" in graph else set(graph.nodes)
    for node in graph:
        if node.name not in reachable:
            how = (
                "no step goes to it"
                if not node.in_funcs
                else "only unreachable steps go to it ("
                + ", ".join(f'"{s}"' for s in node.in_funcs)
                + ")"
            )
            yield _step_problem(
                graph, node.name, "unreachable", f"is not reachable from start: {how}"
            )


def _check_cycles(graph: FlowGraph) -> Iterator[GraphProblem]:
    """Flows do not loop, except a switch that goes back to its own step (a recursive
    switch: each pass is a new task), as in Metaflow."""
    for cycle in graph.cycles:
        closing, target = cycle[-2], cycle[-1]
        if closing == target and graph.nodes[closing].is_switch:
            continue
        hint = (
            f'; a switch may only loop back to its own step ("{closing}")'
            if graph.nodes[closing].is_switch
            else ""
        )
        yield _step_problem(
            graph,
            closing,
            "cycle",
            f'self.next() to "{target}" makes a cycle ({" -> ".join(cycle)}); flows must '
            f"not loop{hint}",
            at_next=True,
        )


def _check_foreach_names(graph: FlowGraph) -> Iterator[GraphProblem]:
    """foreach='x' and condition='x' need self.x: assigned in the step or in a step
    before it, or a class attribute (a Parameter, a constant). Dynamic setattr()
    disables the check."""
    for node in graph:
        for kind, param in (("foreach", node.foreach_param), ("condition", node.condition)):
            if param is None:
                continue
            steps = graph.reachable(node.name, upstream=True)
            sources = [graph.sources[s] for s in steps]
            if any(src.dynamic_assign for src in sources):
                continue
            if param in graph.class_attributes or any(param in src.assigned for src in sources):
                continue
            known = set().union(*(src.assigned for src in sources))
            what = "foreach over" if kind == "foreach" else "switch on"
            yield _step_problem(
                graph,
                node.name,
                f"{kind}-missing-name",
                f'{what} missing name "{param}": self.{param} is not assigned in this '
                "step or any step before it." + did_you_mean(param, known),
                at_next=True,
            )


def _check_split_into_join(graph: FlowGraph) -> Iterator[GraphProblem]:
    for node in graph:
        if not node.split_type:
            continue
        for child in node.out_funcs:
            target = graph.nodes[child]
            if not (target.is_join and target.type == "join"):
                continue
            if node.is_switch:
                msg = (
                    f'a case of this switch goes straight to the join "{child}"; put a '
                    "step (without inputs) on that path before the join"
                )
            else:
                msg = (
                    f'this {node.split_type} goes straight to the join "{child}"; '
                    "each branch needs at least one step before the join"
                )
            yield _step_problem(graph, node.name, "split-into-join", msg, at_next=True)


def _is_parallel_step(node: StepNode) -> bool:
    return any(getattr(d, "gang", False) for d in node.decorators)


def _check_parallel(graph: FlowGraph) -> Iterator[GraphProblem]:
    """``num_parallel=`` starts a gang of a ``@parallel`` step, which a join closes."""
    for node in graph:
        if node.is_parallel:
            for child in node.out_funcs:
                if not _is_parallel_step(graph.nodes[child]):
                    yield _step_problem(
                        graph,
                        node.name,
                        "parallel-without-decorator",
                        f'self.next(num_parallel=...) goes to "{child}", which has no '
                        "@parallel decorator; decorate it with @parallel",
                        at_next=True,
                    )
        if not _is_parallel_step(node):
            continue
        callers = [graph.nodes[p] for p in node.in_funcs]
        if not callers or not all(c.is_parallel for c in callers):
            yield _step_problem(
                graph,
                node.name,
                "parallel-not-called-in-parallel",
                "is a @parallel step but is not reached with "
                f"self.next(self.{node.name}, num_parallel=N)",
            )
        for child in node.out_funcs:
            if graph.nodes[child].type != "join":
                yield _step_problem(
                    graph,
                    node.name,
                    "parallel-not-joined",
                    f'a @parallel step must go to a join, but "{child}" takes no inputs; '
                    f"declare it as def {child}(self, inputs)",
                    at_next=True,
                )
