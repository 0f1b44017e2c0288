"""The flow graph: steps and transitions read from a flow class's *source*, never run.

``check``, ``show``, the runtime, the client and the compilers all need the shape of a
flow (which step follows which, where a split opens and which join closes it) before a
single line of user code runs. So the graph is built statically: each step function is
found on the class (``func.is_step is True``, possibly inherited), its source is parsed
with :mod:`ast`, and its one ``self.next(...)`` call gives the transitions.

Building never raises for a badly shaped flow: everything odd is *recorded* (``problems``
for parse-level issues, ``structure_problems`` for split/join balance) so that
:func:`metaflowlike.lint.check` can report every problem at once, each with its step,
file and line. The public result is a set of frozen :class:`StepNode` views.

Reading one step's source lives in :mod:`metaflowlike.graph_parse`; this module turns
the parsed steps into the graph: order, cycles, split stacks and matching joins.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from .exceptions import did_you_mean
from .graph_parse import GraphProblem, Parsed, StepParser, class_location, first_paragraph

if TYPE_CHECKING:
    from .decorators import StepDecorator

__all__ = ["FlowGraph", "GraphProblem", "StepNode", "StepSource", "RESERVED_NAMES"]

#: FlowSpec attributes that can be neither a step name nor an artifact (a flow deriving
#: from the real FlowSpec also reserves every other public attribute of it).
RESERVED_NAMES = frozenset({"next", "input", "index", "foreach_stack", "merge_artifacts", "name"})

# A split stack frame: (splitting step, branch root the path went through).
_Frame = tuple[str, str]


@dataclass(frozen=True)
class StepNode:
    """A read-only view of one step.

    ``split_parents`` is the stack of splitting steps whose branches this step's tasks
    run inside, outermost first: one task per item of every foreach in it. A splitting
    step does not list itself and a join no longer lists the split it closes (its task
    runs once per branch *set*); that split is ``matching_split``. So for every step
    but a split, ``split_parents`` is also the stack its successors inherit, and
    ``split_parents[-1]`` of a join's input is the split that join closes.
    (Metaflow's own graph keeps the closed split in a join's split_parents; we do not.)
    """

    name: str
    type: str  # 'start' | 'linear' | 'split' | 'foreach' | 'switch' | 'join' | 'end'
    out_funcs: tuple[str, ...]
    in_funcs: tuple[str, ...]
    foreach_param: str | None
    is_join: bool
    split_type: str | None  # 'split' | 'foreach' | 'switch' (one case runs) | None
    split_parents: tuple[str, ...]
    matching_join: str | None  # for a splitting step: the join that closes it
    matching_split: str | None  # for a join: the splitting step it closes
    source_file: str
    lineno: int
    next_lineno: int | None
    doc: str
    decorators: tuple[StepDecorator, ...] = ()
    #: a switch: the artifact whose value picks the case, and ``(key, step)`` per case
    condition: str | None = None
    switch_cases: tuple[tuple[object, str], ...] = ()
    #: a foreach that starts a gang (``num_parallel=``) rather than one task per item
    is_parallel: bool = False
    #: for a join closing a static split: ``(input step, branch of the split)`` per
    #: input, since after a switch inside a branch several steps may end one branch
    join_branches: tuple[tuple[str, str], ...] = ()

    @property
    def is_switch(self) -> bool:
        return self.split_type == "switch"


@dataclass(frozen=True)
class StepSource:
    """What parsing one step's body found, beyond the transitions (used by lint)."""

    num_args: int
    assigned: frozenset[str]  # names assigned as self.<name> anywhere in the body
    dynamic_assign: bool  # setattr(self, <not a literal>, ...) seen: names unknowable
    next_linenos: tuple[int, ...]  # every self.next(...) call, in source order


# --------------------------------------------------------------------------- the graph


def _walk(roots: Iterable[str], edges: Callable[[str], Iterable[str]]) -> set[str]:
    """Every name reachable from ``roots`` along ``edges``, the roots included: the one
    traversal that reachability, ancestors, descendants and dead-end checks share."""
    seen = set(roots)
    todo = list(seen)
    while todo:
        for child in edges(todo.pop()):
            if child not in seen:
                seen.add(child)
                todo.append(child)
    return seen


def _collect(
    flow_cls: type,
) -> tuple[dict[str, Callable[..., Any]], frozenset[str], frozenset[str]]:
    """Step functions (MRO-resolved), other class attribute names, reserved names.

    Only class ``__dict__``s are read, so no descriptor or property runs.
    """
    steps: dict[str, Callable[..., Any]] = {}
    attrs: set[str] = set()
    reserved = set(RESERVED_NAMES)
    for klass in reversed(flow_cls.__mro__):
        if klass is object:
            continue
        is_base = klass.__name__ == "FlowSpec" and klass.__module__.startswith("metaflowlike")
        for name, value in vars(klass).items():
            if is_base:
                if not name.startswith("_"):
                    reserved.add(name)
                continue
            is_step = False
            if callable(value):
                try:
                    is_step = getattr(value, "is_step", False) is True
                except Exception:  # an odd object's __getattr__; not a step
                    is_step = False
            if is_step:
                steps[name] = value
                attrs.discard(name)
            else:
                steps.pop(name, None)
                if not (name.startswith("__") and name.endswith("__")):
                    attrs.add(name)
    return steps, frozenset(attrs), frozenset(reserved)


class FlowGraph:
    """The static graph of a flow class. Never runs user code; never raises for a bad
    flow shape (see ``problems`` / ``structure_problems`` and :mod:`metaflowlike.lint`).

    Iterating yields :class:`StepNode` in topological order (breadth first from start,
    a join after all its inputs), then steps unreachable from start in source order.
    """

    def __init__(self, flow_cls: type) -> None:
        self.name: str = flow_cls.__name__
        self.doc: str = first_paragraph(flow_cls.__doc__)
        #: parse-level problems (no/extra self.next, bad arguments, unknown steps)
        self.problems: list[GraphProblem] = []
        #: split/join balance problems found while computing split_parents
        self.structure_problems: list[GraphProblem] = []
        funcs, self.class_attributes, self.reserved_names = _collect(flow_cls)
        parser = StepParser(self.name, self.problems)
        parsed = {name: parser.parse(name, func) for name, func in funcs.items()}
        first = min(((p.file, p.lineno) for p in parsed.values()), default=("<unknown>", 0))
        self.source_file, self.lineno = class_location(flow_cls, first)
        self._build(parsed, self._resolve_targets(parsed))

    # ------------------------------------------------------------------ building

    def _resolve_targets(self, parsed: dict[str, Parsed]) -> dict[str, tuple[str, ...]]:
        """Keep only transitions to existing steps; report the others."""
        out: dict[str, tuple[str, ...]] = {}
        for p in parsed.values():
            known = []
            for target in p.targets:
                if target in parsed:
                    known.append(target)
                    continue
                if target in self.class_attributes:
                    hint = " It is defined on the flow but is not a step (missing @step?)."
                else:
                    hint = did_you_mean(target, parsed)
                self.problems.append(
                    GraphProblem(
                        "unknown-step",
                        f'self.next() goes to unknown step "{target}".{hint}',
                        p.file,
                        p.next_lineno or p.lineno,
                        step=p.name,
                        flow=self.name,
                    )
                )
            out[p.name] = tuple(known)
        return out

    def _build(self, parsed: dict[str, Parsed], out: dict[str, tuple[str, ...]]) -> None:
        in_funcs: dict[str, list[str]] = {name: [] for name in parsed}
        for name, targets in out.items():
            for t in targets:
                in_funcs[t].append(name)

        def split_type(p: Parsed) -> str | None:
            if p.switch_cases:
                return "switch"
            if p.is_foreach or p.is_parallel:
                return "foreach"
            return "split" if len(p.targets) > 1 else None

        def step_type(p: Parsed) -> str:
            if p.name in ("start", "end"):
                return p.name
            if p.num_args >= 2:
                return "join"
            return split_type(p) or "linear"

        split_types = {name: split_type(p) for name, p in parsed.items()}
        joins = {
            name for name, p in parsed.items() if p.num_args >= 2 and name not in ("start", "end")
        }
        order, cycles, dag_preds = _order(parsed, out)
        self.cycles: tuple[tuple[str, ...], ...] = cycles
        # steps whose transitions are already reported as broken: a branch through them
        # that never reaches its join is a consequence, not another problem
        dead_ends = {
            p.step
            for p in self.problems
            if p.step is not None and p.code in ("unknown-step", "no-next", "bad-next-arg")
        }
        analysis = _SplitAnalysis(self.name, parsed, out, split_types, joins, dead_ends)
        analysis.run(order, dag_preds)
        self.structure_problems.extend(analysis.problems)

        self.nodes: dict[str, StepNode] = {}
        self.sources: dict[str, StepSource] = {}
        for name in order:
            p = parsed[name]
            self.nodes[name] = StepNode(
                name=name,
                type=step_type(p),
                out_funcs=out[name],
                in_funcs=tuple(sorted(in_funcs[name])),
                foreach_param=p.foreach_param,
                is_join=p.num_args >= 2,
                split_type=split_types[name],
                split_parents=analysis.split_parents.get(name, ()),
                matching_join=analysis.matching_join.get(name),
                matching_split=analysis.matching_split.get(name),
                source_file=p.file,
                lineno=p.lineno,
                next_lineno=p.next_lineno,
                doc=p.doc,
                decorators=tuple(getattr(p.func, "decorators", None) or ()),
                condition=p.condition,
                switch_cases=p.switch_cases,
                is_parallel=p.is_parallel,
                join_branches=analysis.join_branches.get(name, ()),
            )
            self.sources[name] = StepSource(
                num_args=p.num_args,
                assigned=frozenset(p.assigned),
                dynamic_assign=p.dynamic_assign,
                next_linenos=p.next_linenos,
            )

    # ------------------------------------------------------------------ mapping API

    def __getitem__(self, name: str) -> StepNode:
        try:
            return self.nodes[name]
        except KeyError:
            raise KeyError(
                f'Flow {self.name} has no step "{name}".' + did_you_mean(name, self.nodes)
            ) from None

    def __contains__(self, name: object) -> bool:
        return name in self.nodes

    def __iter__(self) -> Iterator[StepNode]:
        return iter(self.nodes.values())

    def __len__(self) -> int:
        return len(self.nodes)

    def reachable(self, *roots: str, upstream: bool = False) -> set[str]:
        """The steps reachable from ``roots`` (included) along ``self.next``
        transitions, or, with ``upstream``, against them: the roots' ancestors."""
        if upstream:
            return _walk(roots, lambda name: self.nodes[name].in_funcs)
        return _walk(roots, lambda name: self.nodes[name].out_funcs)

    def sorted_nodes(self) -> list[str]:
        """Step names in iteration order (topological from start, then unreachable)."""
        return list(self.nodes)

    def __repr__(self) -> str:
        return f"<FlowGraph {self.name}: {', '.join(self.nodes)}>"


def _order(
    parsed: dict[str, Parsed], out: dict[str, tuple[str, ...]]
) -> tuple[list[str], tuple[tuple[str, ...], ...], dict[str, list[str]]]:
    """Topological order, cycles (one per back edge) and acyclic predecessors.

    Depth-first search from start (then from every step not yet seen, in source order)
    finds back edges; dropping them leaves a DAG over which Kahn's algorithm, with a
    FIFO queue, gives a breadth-first topological order of the steps reachable from
    start. Unreachable steps follow in source order.
    """
    by_source = sorted(parsed, key=lambda n: (parsed[n].file, parsed[n].lineno, n))
    roots = (["start"] if "start" in parsed else []) + by_source
    state: dict[str, int] = {}  # 1: on the DFS path, 2: finished
    back: set[tuple[str, str]] = set()
    cycles: list[tuple[str, ...]] = []
    for root in roots:
        if root in state:
            continue
        path = [root]
        state[root] = 1
        stack = [iter(out[root])]
        while stack:
            child = next(stack[-1], None)
            if child is None:
                stack.pop()
                state[path.pop()] = 2
                continue
            if state.get(child) == 1:
                back.add((path[-1], child))
                cycles.append(tuple(path[path.index(child) :]) + (child,))
            elif child not in state:
                state[child] = 1
                path.append(child)
                stack.append(iter(out[child]))

    reachable = _walk(["start"] if "start" in parsed else [], out.__getitem__)

    dag_preds: dict[str, list[str]] = {n: [] for n in parsed}
    for parent in reachable:
        for child in out[parent]:
            if (parent, child) not in back:
                dag_preds[child].append(parent)
    for preds in dag_preds.values():
        preds.sort()

    order: list[str] = []
    if "start" in parsed:
        waiting = {n: len(dag_preds[n]) for n in reachable}
        queue = deque(["start"])
        while queue:
            name = queue.popleft()
            order.append(name)
            for child in out[name]:
                if (name, child) in back:
                    continue
                waiting[child] -= 1
                if waiting[child] == 0:
                    queue.append(child)
    seen = set(order)
    order.extend(n for n in by_source if n not in seen)
    return order, tuple(cycles), dag_preds


class _SplitAnalysis:
    """Follows split stacks along the DAG: split_parents, matching_join and every
    split/join imbalance.

    Each edge carries the stack of open splits as frames ``(split step, branch root)``.
    A splitting step pushes one frame per target; a join pops one, and must receive
    every branch of the split on top of the stack and nothing else.
    """

    def __init__(
        self,
        flow: str,
        parsed: dict[str, Parsed],
        out: dict[str, tuple[str, ...]],
        split_types: dict[str, str | None],
        joins: set[str],
        dead_ends: set[str],
    ) -> None:
        self.flow = flow
        self.dead_ends: set[str] = dead_ends
        self.parsed: dict[str, Parsed] = parsed
        self.out: dict[str, tuple[str, ...]] = out
        self.split_types: dict[str, str | None] = split_types
        self.joins: set[str] = joins
        self.split_parents: dict[str, tuple[str, ...]] = {}
        self.matching_join: dict[str, str] = {}
        self.matching_split: dict[str, str] = {}
        self.join_branches: dict[str, tuple[tuple[str, str], ...]] = {}
        self.problems: list[GraphProblem] = []

    def _splits(self, name: str) -> bool:
        """Does this step open branches that a join must close? (A switch does not:
        exactly one of its cases runs.)"""
        return self.split_types[name] in ("split", "foreach")

    def _problem(self, step: str, code: str, msg: str, next_line: bool = False) -> None:
        p = self.parsed[step]
        line = (p.next_lineno if next_line else None) or p.lineno
        problem = GraphProblem(code, msg, p.file, line, step=step, flow=self.flow)
        if problem not in self.problems:
            self.problems.append(problem)

    def _where(self, stack: tuple[_Frame, ...]) -> str:
        if not stack:
            return "outside any split"
        split = stack[-1][0]
        return f'inside the {self.split_types[split] or "split"} at "{split}"'

    def run(self, order: list[str], dag_preds: dict[str, list[str]]) -> None:
        edge: dict[tuple[str, str], tuple[_Frame, ...]] = {}
        for name in order:
            preds = dag_preds[name]
            if name != "start" and not preds:
                continue  # unreachable: nothing to follow
            stacks = [edge[(p, name)] for p in preds]
            if name == "start":
                base: tuple[_Frame, ...] = ()
            elif name in self.joins:
                base = self._join(name, preds, stacks)
            else:
                if len(preds) > 1 and len(set(stacks)) > 1:
                    fix = (
                        "end cannot be a join: add a join step before end"
                        if name == "end"
                        else f"it is not a join; declare it as def {name}(self, inputs)"
                    )
                    froms = ", ".join(f'"{p}"' for p in preds)
                    self._problem(
                        name,
                        "not-a-join-but-joins",
                        f"has {len(preds)} incoming transitions (from {froms}) but {fix}",
                    )
                base = stacks[0]
            if name == "end":
                self._unjoined_at_end(stacks)
            self.split_parents[name] = tuple(frame[0] for frame in base)
            for child in self.out[name]:
                if self._splits(name):
                    edge[(name, child)] = base + ((name, child),)
                else:
                    edge[(name, child)] = base

    def _join(
        self, name: str, preds: list[str], stacks: list[tuple[_Frame, ...]]
    ) -> tuple[_Frame, ...]:
        """Check one join; return the stack after it (the closed split popped)."""
        tops = [s[-1] if s else None for s in stacks]
        quoted = ", ".join(f'"{p}"' for p in preds)
        if all(t is None for t in tops):
            if len(preds) == 1:
                why = f'its only input "{preds[0]}" is not inside a split or foreach'
            else:
                why = f"none of its inputs ({quoted}) is inside a split or foreach"
            self._problem(
                name,
                "join-without-split",
                f"takes inputs but is not a join in the graph: {why}; "
                f"a step that joins nothing is written def {name}(self)",
            )
            return stacks[0]
        frames = [t for t in tops if t is not None]
        if (
            len(frames) < len(tops)
            or len({t[0] for t in frames}) > 1
            or len({s[:-1] for s in stacks}) > 1
        ):
            where = ", ".join(
                f'"{p}" ({self._where(s)})' for p, s in zip(preds, stacks, strict=True)
            )
            self._problem(
                name,
                "cross-join",
                f"joins steps that come from different splits: {where}; "
                "a join must close exactly one split",
            )
            closed = next(s for s in stacks if s)
            self.matching_split[name] = closed[-1][0]
            return closed[:-1]
        split = frames[0][0]
        got = {t[1] for t in frames}
        missing = [b for b in self.out[split] if b not in got]
        if missing and not all(self._reaches_dead_end(b) for b in missing):
            names = ", ".join(f'"{b}"' for b in missing)
            if len(preds) == 1 and self.split_types[split] == "split":
                msg = (
                    f'has a single input ("{preds[0]}") and does not close a foreach: '
                    f'it joins only part of the split at "{split}", whose branch(es) '
                    f"{names} never reach it"
                )
            else:
                msg = (
                    f'does not join every branch of the split at "{split}": '
                    f"branch(es) {names} never reach it"
                )
            self._problem(name, "join-missing-branch", msg)
        self.matching_join.setdefault(split, name)
        self.matching_split[name] = split
        self.join_branches[name] = tuple((p, t[1]) for p, t in zip(preds, frames, strict=True))
        return stacks[0][:-1]

    def _reaches_dead_end(self, root: str) -> bool:
        return not self.dead_ends.isdisjoint(_walk([root], self.out.__getitem__))

    def _unjoined_at_end(self, stacks: list[tuple[_Frame, ...]]) -> None:
        open_splits = []
        for stack in stacks:
            for split, _ in reversed(stack):
                if split not in open_splits:
                    open_splits.append(split)
        for split in open_splits:
            kind = self.split_types[split] or "split"
            self._problem(
                split,
                "never-joined",
                f"this {kind} is never joined: its branches reach end without a join "
                "step (def <join>(self, inputs)) closing it",
                next_line=True,
            )
