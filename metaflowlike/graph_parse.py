"""Reading a step's source: the one ``self.next(...)`` call and the ``self.<name>``
assignments, found with :mod:`ast` without running anything.

Each source file is parsed once and shared by every step it defines (functions are
matched by ``co_firstlineno``), which keeps ``check``/``show`` fast; :func:`inspect.getsource`
is only a fallback for a file that changed since import. Problems are recorded as
:class:`GraphProblem` (never raised) so that lint can report all of them at once.
"""

from __future__ import annotations

import ast
import functools
import inspect
import linecache
import re
import sys
import textwrap
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from .exceptions import did_you_mean


@dataclass(frozen=True)
class GraphProblem:
    """One thing wrong with a flow, located at a file and line.

    ``code`` is a stable short identifier (``"no-next"``, ``"unknown-step"``, ...) for
    programs and tests; ``str()`` gives the line a user sees.
    """

    code: str
    message: str
    file: str
    lineno: int
    step: str | None = None
    flow: str = ""

    def __str__(self) -> str:
        where = f'step "{self.step}"' if self.step is not None else f'flow "{self.flow}"'
        return f"{self.file}:{self.lineno}: {where}: {self.message}"


# --------------------------------------------------------------------------- sources


class _FileIndex:
    """Functions of one file by first line (decorator or def, like ``co_firstlineno``),
    classes by name."""

    __slots__ = ("functions", "classes", "top_classes")

    def __init__(self) -> None:
        self.functions: dict[int, list[ast.FunctionDef | ast.AsyncFunctionDef]] = {}
        self.classes: dict[str, list[ast.ClassDef]] = {}
        self.top_classes: dict[str, ast.ClassDef] = {}


@functools.lru_cache(maxsize=32)
def _index_source(filename: str, source: str) -> _FileIndex:
    """Parse a whole file once; index functions by their first line (decorator or def,
    which is what ``co_firstlineno`` holds) and classes by name."""
    index = _FileIndex()
    try:
        tree = ast.parse(source, filename)
    except (SyntaxError, ValueError):
        return index
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            first = min([node.lineno] + [d.lineno for d in node.decorator_list])
            index.functions.setdefault(first, []).append(node)
        elif isinstance(node, ast.ClassDef):
            index.classes.setdefault(node.name, []).append(node)
    for node in tree.body:
        if isinstance(node, ast.ClassDef):
            index.top_classes[node.name] = node
    return index


def _file_index(filename: str, module_globals: dict[str, Any] | None = None) -> _FileIndex | None:
    lines = linecache.getlines(filename, module_globals)
    if not lines:
        return None
    return _index_source(filename, "".join(lines))


def _function_ast(fn: Callable[..., Any]) -> ast.FunctionDef | ast.AsyncFunctionDef | None:
    """The ``def`` node of ``fn`` with line numbers of its file."""
    code = getattr(fn, "__code__", None)
    if code is None:
        return None
    index = _file_index(code.co_filename, getattr(fn, "__globals__", None))
    if index is not None:
        for node in index.functions.get(code.co_firstlineno, ()):
            if node.name == code.co_name:
                return node
    # The file changed since import, or the source is not a plain file: ask inspect.
    try:
        tree = ast.parse(textwrap.dedent(inspect.getsource(fn)))
    except (OSError, TypeError, SyntaxError):
        return None
    ast.increment_lineno(tree, code.co_firstlineno - 1)
    first = tree.body[0] if tree.body else None
    return first if isinstance(first, (ast.FunctionDef, ast.AsyncFunctionDef)) else None


def class_location(flow_cls: type, fallback: tuple[str, int]) -> tuple[str, int]:
    """File and ``class`` line of the flow, for problems that belong to no step."""
    module = sys.modules.get(flow_cls.__module__)
    filename = getattr(module, "__file__", None)
    if not filename:
        return fallback
    lineno = getattr(flow_cls, "__firstlineno__", None)  # Python >= 3.13
    if lineno is None:
        index = _file_index(filename, vars(module))
        if index is None:
            return fallback
        node = index.top_classes.get(flow_cls.__name__)
        if node is None and index.classes.get(flow_cls.__name__):
            node = index.classes[flow_cls.__name__][0]
        if node is None:
            return fallback
        lineno = node.lineno
    return filename, lineno


def first_paragraph(doc: str | None) -> str:
    """The first paragraph of a docstring, on one line."""
    if not doc:
        return ""
    para = re.split(r"\n\s*\n", inspect.cleandoc(doc).strip(), maxsplit=1)[0]
    return " ".join(para.split())


# --------------------------------------------------------------------------- one step


class Parsed:
    """What parsing one step found; :class:`~metaflowlike.graph.FlowGraph` freezes it
    into a StepNode and a StepSource."""

    __slots__ = (
        "name", "func", "file", "lineno", "doc", "num_args", "assigned", "dynamic_assign",
        "next_linenos", "next_lineno", "targets", "is_foreach", "foreach_param",
        "condition", "switch_cases", "is_parallel",
    )  # fmt: skip

    def __init__(self, name: str, func: Callable[..., Any], file: str, lineno: int) -> None:
        self.name, self.func, self.file, self.lineno = name, func, file, lineno
        self.doc = ""
        self.num_args = 1
        self.assigned: set[str] = set()
        self.dynamic_assign = False  # setattr(self, <not a literal>, ...) seen
        self.next_linenos: tuple[int, ...] = ()  # every self.next call, in source order
        self.next_lineno: int | None = None  # the self.next call the graph uses
        self.targets: list[str] = []  # as written, duplicates removed
        self.is_foreach = False
        self.foreach_param: str | None = None
        self.is_parallel = False  # self.next(self.x, num_parallel=N): a gang of N tasks
        #: a switch (self.next({key: self.x, ...}, condition="attr")): the artifact
        #: whose value picks the case, and the cases as written
        self.condition: str | None = None
        self.switch_cases: tuple[tuple[object, str], ...] = ()


def _self_attrs(target: ast.AST, self_name: str, out: set[str]) -> None:
    """Collect ``self.<name>`` assignment targets, through tuple/list/star unpacking."""
    if isinstance(target, ast.Attribute):
        if isinstance(target.value, ast.Name) and target.value.id == self_name:
            out.add(target.attr)
    elif isinstance(target, (ast.Tuple, ast.List)):
        for elt in target.elts:
            _self_attrs(elt, self_name, out)
    elif isinstance(target, ast.Starred):
        _self_attrs(target.value, self_name, out)


def _is_next_call(node: ast.AST, self_name: str) -> bool:
    return (
        isinstance(node, ast.Call)
        and isinstance(node.func, ast.Attribute)
        and node.func.attr == "next"
        and isinstance(node.func.value, ast.Name)
        and node.func.value.id == self_name
    )


class StepParser:
    """Parses one step function; appends parse-level problems to ``problems``."""

    def __init__(self, flow: str, problems: list[GraphProblem]) -> None:
        self.flow = flow
        self.problems = problems

    def _problem(self, p: Parsed, code: str, msg: str, lineno: int | None = None) -> None:
        self.problems.append(
            GraphProblem(code, msg, p.file, lineno or p.lineno, step=p.name, flow=self.flow)
        )

    def parse(self, name: str, func: Callable[..., Any]) -> Parsed:
        fn = inspect.unwrap(func)
        code = getattr(fn, "__code__", None)
        file = code.co_filename if code else "<unknown>"
        lineno = code.co_firstlineno if code else 0
        p = Parsed(name=name, func=func, file=file, lineno=lineno)
        if code is not None:
            p.num_args = code.co_argcount
        tree = _function_ast(fn)
        if tree is None:
            p.doc = first_paragraph(getattr(fn, "__doc__", None))
            self._problem(
                p,
                "no-source",
                "the source of this step cannot be read; define flows in a .py file",
            )
            return p
        p.lineno = tree.lineno
        p.doc = first_paragraph(ast.get_docstring(tree))
        params = tree.args.posonlyargs + tree.args.args
        self_name = params[0].arg if params else "self"
        calls = self._scan_body(tree, self_name, p)
        self._parse_next(tree, calls, self_name, p)
        return p

    def _scan_body(
        self, tree: ast.FunctionDef | ast.AsyncFunctionDef, self_name: str, p: Parsed
    ) -> list[ast.Call]:
        """One walk over the body: self.next calls and self.<name> assignments."""
        calls: list[ast.Call] = []
        for stmt in tree.body:
            for node in ast.walk(stmt):
                if isinstance(node, ast.Call):
                    if _is_next_call(node, self_name):
                        calls.append(node)
                    elif (
                        isinstance(node.func, ast.Name)
                        and node.func.id == "setattr"
                        and len(node.args) >= 2
                        and isinstance(node.args[0], ast.Name)
                        and node.args[0].id == self_name
                    ):
                        key = node.args[1]
                        if isinstance(key, ast.Constant) and isinstance(key.value, str):
                            p.assigned.add(key.value)
                        else:
                            p.dynamic_assign = True
                elif isinstance(node, ast.Assign):
                    for target in node.targets:
                        _self_attrs(target, self_name, p.assigned)
                elif isinstance(node, ast.AugAssign):
                    _self_attrs(node.target, self_name, p.assigned)
                elif isinstance(node, ast.AnnAssign) and node.value is not None:
                    _self_attrs(node.target, self_name, p.assigned)
                elif isinstance(node, (ast.For, ast.AsyncFor, ast.comprehension)):
                    _self_attrs(node.target, self_name, p.assigned)
                elif isinstance(node, ast.withitem) and node.optional_vars is not None:
                    _self_attrs(node.optional_vars, self_name, p.assigned)
        calls.sort(key=lambda c: (c.lineno, c.col_offset))
        p.next_linenos = tuple(c.lineno for c in calls)
        return calls

    def _parse_next(
        self,
        tree: ast.FunctionDef | ast.AsyncFunctionDef,
        calls: list[ast.Call],
        self_name: str,
        p: Parsed,
    ) -> None:
        if p.name == "end":
            if calls:
                self._problem(
                    p,
                    "end-has-next",
                    "end is the last step and must not call self.next()",
                    calls[0].lineno,
                )
            return
        if not calls:
            self._problem(
                p,
                "no-next",
                "has no self.next() transition; every step except end must finish "
                f"with self.next({self_name}.<next step>)",
            )
            return
        last = tree.body[-1]
        last_call = last.value if isinstance(last, ast.Expr) else None
        chosen = last_call if last_call in calls else calls[0]
        if len(calls) > 1:
            stray = next(c for c in calls if c is not chosen)
            lines = ", ".join(str(c.lineno) for c in calls)
            self._problem(
                p,
                "multiple-next",
                f"calls self.next() {len(calls)} times (lines {lines}); a step must call "
                "it exactly once, as its last statement",
                stray.lineno,
            )
        elif chosen is not last_call:
            self._problem(
                p,
                "next-not-last",
                "self.next() must be the last statement of the step",
                chosen.lineno,
            )
        p.next_lineno = chosen.lineno
        self._parse_next_args(chosen, self_name, p)

    def _step_ref(self, node: ast.AST, self_name: str) -> str | None:
        if (
            isinstance(node, ast.Attribute)
            and isinstance(node.value, ast.Name)
            and node.value.id == self_name
        ):
            return node.attr
        return None

    def _artifact_name(self, p: Parsed, kw: ast.keyword, example: str) -> str | None:
        """The artifact a ``foreach=`` or ``condition=`` names: a string literal, else a
        problem is recorded and None returned."""
        if isinstance(kw.value, ast.Constant) and isinstance(kw.value.value, str):
            return kw.value.value
        self._problem(
            p,
            f"{kw.arg}-not-literal",
            f"{kw.arg}= must be a string literal naming an artifact, as in "
            f"{kw.arg}='{example}', not `{ast.unparse(kw.value)}`",
            kw.value.lineno,
        )
        return None

    def _parse_next_args(self, call: ast.Call, self_name: str, p: Parsed) -> None:
        if len(call.args) == 1 and isinstance(call.args[0], ast.Dict):
            self._parse_switch(call.args[0], self_name, p)
        else:
            self._parse_targets(call, self_name, p)
        kwargs = {kw.arg: kw for kw in call.keywords}
        for kw in call.keywords:
            if kw.arg == "foreach":
                p.is_foreach = True
                p.foreach_param = self._artifact_name(p, kw, example="items")
            elif kw.arg == "num_parallel":
                p.is_parallel = True
            elif kw.arg == "condition":
                if not p.switch_cases and not any(isinstance(a, ast.Dict) for a in call.args):
                    self._problem(
                        p,
                        "condition-without-switch",
                        "condition= goes with a switch, whose steps are given as a dict: "
                        f'self.next({{"a": {self_name}.a, "b": {self_name}.b}}, '
                        'condition="attr")',
                        kw.value.lineno,
                    )
                else:
                    p.condition = self._artifact_name(p, kw, example="route")
            elif kw.arg is None:
                self._problem(
                    p,
                    "bad-next-arg",
                    "self.next() does not accept **keyword arguments",
                    kw.value.lineno,
                )
            else:
                known = ["foreach", "num_parallel", "condition"]
                self._problem(
                    p,
                    "unknown-next-arg",
                    f"self.next() has no keyword argument {kw.arg}=; it takes foreach=, "
                    "num_parallel= or condition=." + did_you_mean(kw.arg, known),
                    kw.value.lineno,
                )
        if p.switch_cases and "condition" not in kwargs:
            self._problem(
                p,
                "switch-without-condition",
                "a switch needs condition= naming the artifact whose value picks the case, "
                'as in self.next({...}, condition="route")',
                call.lineno,
            )
        given = [k for k in ("foreach", "num_parallel", "condition") if k in kwargs]
        if len(given) > 1:
            self._problem(
                p,
                "conflicting-next-args",
                f"self.next() takes only one of foreach=, num_parallel= and condition=, "
                f"not {' and '.join(k + '=' for k in given)}",
                call.lineno,
            )
        elif (p.is_foreach or p.is_parallel) and len(call.args) != 1:
            kind = "foreach" if p.is_foreach else "num_parallel= gang"
            self._problem(
                p,
                "foreach-targets",
                f"a {kind} goes to exactly one step, but self.next() names {len(call.args)}",
                call.lineno,
            )

    def _parse_targets(self, call: ast.Call, self_name: str, p: Parsed) -> None:
        for arg in call.args:
            target = self._step_ref(arg, self_name)
            if target is None:
                hint = (
                    "; a switch takes one dict and condition=" if isinstance(arg, ast.Dict) else ""
                )
                self._problem(
                    p,
                    "bad-next-arg",
                    f"self.next() takes steps written as {self_name}.<step>, "
                    f"not `{ast.unparse(arg)}`{hint}",
                    arg.lineno,
                )
            elif target in p.targets:
                self._problem(
                    p,
                    "duplicate-target",
                    f'self.next() names step "{target}" more than once',
                    arg.lineno,
                )
            else:
                p.targets.append(target)
        if not call.args:
            self._problem(
                p,
                "bad-next-arg",
                f"self.next() needs at least one step, as in self.next({self_name}.<step>)",
                call.lineno,
            )

    def _parse_switch(self, cases: ast.Dict, self_name: str, p: Parsed) -> None:
        """``{key: self.step, ...}``: keys are literals (the values the condition may
        take), values are steps; several keys may lead to the same step."""
        parsed: list[tuple[object, str]] = []
        for key, value in zip(cases.keys, cases.values, strict=True):
            if key is None:
                self._problem(p, "switch-bad-key", "a switch cannot use **unpacking", value.lineno)
                continue
            if not (isinstance(key, ast.Constant) and isinstance(key.value, (str, int, float))):
                self._problem(
                    p,
                    "switch-bad-key",
                    "switch keys must be string or number literals (the values the "
                    f"condition can take), not `{ast.unparse(key)}`",
                    key.lineno,
                )
                continue
            target = self._step_ref(value, self_name)
            if target is None:
                self._problem(
                    p,
                    "bad-next-arg",
                    f"each case of a switch goes to a step written as {self_name}.<step>, "
                    f"not `{ast.unparse(value)}`",
                    value.lineno,
                )
                continue
            if any(k == key.value for k, _ in parsed):
                self._problem(
                    p,
                    "switch-bad-key",
                    f"the switch has the case {key.value!r} more than once",
                    key.lineno,
                )
                continue
            parsed.append((key.value, target))
            if target not in p.targets:
                p.targets.append(target)
        p.switch_cases = tuple(parsed)
        if len(p.targets) < 2:
            self._problem(
                p,
                "switch-too-few-cases",
                f"a switch must lead to at least 2 different steps, but this one leads to "
                f"{len(p.targets)}; use self.next({self_name}.<step>) for a single step",
                cases.lineno,
            )
