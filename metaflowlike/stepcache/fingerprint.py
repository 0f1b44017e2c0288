"""What a step's code is, and which artifacts it can read, worked out from its bytecode.

Two questions decide whether an earlier task can stand in for a new one:

* **Did the code change?** Not only the step's own body: a change in a helper function
  or module of the flow's project that the step calls must count too. The step's code
  object is hashed (bytecode, names and constants, recursively through nested code),
  never its source text, so whitespace and comments do not matter, and every function,
  class and module of the project it names is followed transitively. A project module
  counts by its syntax tree (``ast.dump`` without positions), again blind to formatting.
* **Which artifacts can it read?** If ``self`` is only ever used as ``self.name``
  (directly, in nested functions and comprehensions, or in flow methods called as
  ``self.method()``), the step reads exactly those names and nothing else can affect it.
  If ``self`` escapes anywhere (passed to a function, ``getattr(self, ...)``,
  ``self.__dict__``), nothing can be proved and every artifact counts.
"""

from __future__ import annotations

import ast
import dis
import hashlib
import inspect
import os
import sys
import types
from dataclasses import dataclass, field
from typing import Any

#: instructions that read or write one attribute of the object just loaded
_ATTR_OPS = {"LOAD_ATTR", "LOAD_METHOD", "STORE_ATTR", "DELETE_ATTR"}
_LOAD_SELF = {"LOAD_FAST", "LOAD_DEREF", "LOAD_CLOSURE", "LOAD_FAST_CHECK"}
_SIMPLE = (int, float, complex, str, bytes, bool, type(None))


def _digest(*parts: Any) -> str:
    return hashlib.sha256(repr(parts).encode()).hexdigest()[:32]


def _is_simple(value: Any) -> bool:
    if isinstance(value, _SIMPLE):
        return True
    if isinstance(value, (tuple, frozenset)) and len(value) <= 1000:
        return all(_is_simple(v) for v in value)
    return False


def _stable(value: Any) -> str:
    """A value's text if it is the same in every process, else its type's name (an
    object's default ``repr`` holds its address)."""
    if isinstance(value, tuple) and len(value) == 2 and isinstance(value[0], str):
        return f"{value[0]}={_stable(value[1])}"
    return repr(value) if _is_simple(value) else f"<{type(value).__qualname__}>"


def _const_text(c: Any) -> str:
    """A constant of compiled code as text that every process agrees on: nested code by
    its digest, a frozenset (``x in {"a", "b"}``) in sorted order, not hash order."""
    if isinstance(c, types.CodeType):
        return code_digest(c)
    if isinstance(c, frozenset):
        return "frozenset(" + ",".join(sorted(_const_text(v) for v in c)) + ")"
    if isinstance(c, tuple):
        return "(" + ",".join(_const_text(v) for v in c) + ")"
    return f"{type(c).__name__}:{c!r}"


def code_digest(code: types.CodeType) -> str:
    """A hash of what ``code`` does: bytecode, names, constants (nested code objects by
    their own digest). Line numbers and positions are left out, so moving code or
    changing comments and blank lines leaves it unchanged."""
    consts = tuple(_const_text(c) for c in code.co_consts)
    return _digest(
        code.co_code,
        consts,
        code.co_names,
        code.co_varnames,
        code.co_freevars,
        code.co_cellvars,
        code.co_argcount,
        code.co_kwonlyargcount,
        code.co_flags,
    )


def _all_names(code: types.CodeType) -> set[str]:
    names = set(code.co_names)
    for c in code.co_consts:
        if isinstance(c, types.CodeType):
            names |= _all_names(c)
    return names


class _Project:
    """The folder of the flow file: code in it (outside virtual environments) is the
    project's own and is followed; everything else is a dependency, pinned by the
    environment part of the key instead."""

    def __init__(self, root: str) -> None:
        self.root = os.path.realpath(root) + os.sep

    def owns(self, filename: str | None) -> bool:
        if not filename or filename.startswith("<"):
            return False
        path = os.path.realpath(filename)
        if not path.startswith(self.root):
            return False
        rest = path[len(self.root) :].split(os.sep)
        return not any(p in ("site-packages", "dist-packages") or p.startswith(".") for p in rest)


@dataclass
class CodeParts:
    """Digest per piece of project code a step depends on (shown by ``cache explain``),
    and what was already followed (by id), so that cycles end."""

    parts: dict[str, str] = field(default_factory=dict)
    seen: set[int] = field(default_factory=set)
    #: every name the followed code uses (``obj.predict`` puts ``predict`` here)
    names: set[str] = field(default_factory=set)


def _module_digest(module: types.ModuleType) -> str | None:
    try:
        with open(module.__file__, encoding="utf-8") as f:  # type: ignore[arg-type]
            tree = ast.parse(f.read())
    except (OSError, SyntaxError, ValueError, TypeError):
        return None
    return _digest(ast.dump(tree, include_attributes=False))


def _unwrap(func: Any) -> list[Any]:
    """``func`` and the functions it wraps (``functools.wraps`` chains)."""
    out: list[Any] = []
    while func is not None and len(out) < 20:
        if isinstance(func, (staticmethod, classmethod)):
            func = func.__func__
        out.append(func)
        func = getattr(func, "__wrapped__", None)
    return out


def _function_code(func: Any) -> types.CodeType | None:
    return getattr(func, "__code__", None)


def _add_function(project: _Project, acc: CodeParts, func: Any) -> None:
    for f in _unwrap(func):
        code = _function_code(f)
        if code is None or id(code) in acc.seen or not project.owns(code.co_filename):
            continue
        acc.seen.add(id(code))
        name = f"{f.__module__}.{f.__qualname__}"
        acc.parts[name] = code_digest(code)
        values = list(getattr(f, "__defaults__", None) or ())
        values += sorted((getattr(f, "__kwdefaults__", None) or {}).items())
        if values:  # a default value is code too: changing it changes the call
            acc.parts[f"{name}:defaults"] = _digest(*map(_stable, values))
        acc.names |= _all_names(code)
        _follow(project, acc, _all_names(code), getattr(f, "__globals__", {}))
        for cell in getattr(f, "__closure__", None) or ():
            try:
                value = cell.cell_contents
            except ValueError:
                continue
            _add_value(project, acc, f"{f.__qualname__}.<closure>", value)


def _add_class(project: _Project, acc: CodeParts, cls: type) -> None:
    if id(cls) in acc.seen:
        return
    acc.seen.add(id(cls))
    for name, member in vars(cls).items():
        if isinstance(member, property):
            member = member.fget
        if callable(member) or isinstance(member, (staticmethod, classmethod)):
            _add_function(project, acc, member)
        elif _is_simple(member) and not name.startswith("__"):
            acc.parts[f"{cls.__module__}.{cls.__qualname__}.{name}"] = _digest(member)


def _add_module(project: _Project, acc: CodeParts, module: types.ModuleType) -> None:
    if id(module) in acc.seen:
        return
    acc.seen.add(id(module))
    digest = _module_digest(module)
    if digest is not None:
        acc.parts[f"module {module.__name__}"] = digest
    # what the module calls in turn: its own project functions, classes and modules
    for value in list(vars(module).values()):
        owner = getattr(value, "__module__", None)
        if isinstance(value, types.ModuleType) or owner == module.__name__:
            _add_value(project, acc, "", value)


def _add_value(project: _Project, acc: CodeParts, name: str, value: Any) -> None:
    if isinstance(value, types.ModuleType):
        if project.owns(getattr(value, "__file__", None)):
            _add_module(project, acc, value)
    elif isinstance(value, type):
        try:
            filename = inspect.getfile(value)
        except (TypeError, OSError):
            return
        if project.owns(filename):
            _add_class(project, acc, value)
    elif _function_code(value) is not None or isinstance(value, (staticmethod, classmethod)):
        _add_function(project, acc, value)
    elif name and _is_simple(value):
        acc.parts[f"constant {name}"] = _digest(type(value).__name__, value)


def _follow(project: _Project, acc: CodeParts, names: set[str], globs: dict) -> None:
    module = sys.modules.get(globs.get("__name__", ""))
    for name in sorted(names):
        if name in globs:
            _add_value(project, acc, f"{globs.get('__name__')}.{name}", globs[name])
        elif module is not None and name in vars(module):
            _add_value(project, acc, name, vars(module)[name])


def code_parts(flow_cls: type, step_name: str, project_root: str) -> dict[str, str]:
    """Digest of the step's own code and of each piece of project code it reaches,
    including the flow methods and class constants it uses through ``self``."""
    project = _Project(project_root)
    acc = CodeParts()
    func = vars_lookup(flow_cls, step_name)
    code = _function_code(_unwrap(func)[-1])
    if code is not None:
        acc.parts[f"step {step_name}"] = code_digest(code)
        acc.seen.add(id(code))
    for f in _unwrap(func)[:-1]:  # user decorators wrapping the step
        _add_function(project, acc, f)
    inner = _unwrap(func)[-1]
    _follow(project, acc, _all_names(code) if code else set(), inner.__globals__)
    reads = self_reads(flow_cls, step_name)
    for name in sorted(reads.names if reads.names is not None else ()):
        member = vars_lookup(flow_cls, name)
        if member is None or getattr(member, "is_step", False):
            continue
        if isinstance(member, property):
            member = member.fget
        if callable(member) or isinstance(member, (staticmethod, classmethod)):
            _add_function(project, acc, member)
        elif _is_simple(member):
            acc.parts[f"constant {flow_cls.__name__}.{name}"] = _digest(member)
    if code is not None:
        acc.names |= _all_names(code)
    _follow_methods(project, acc)
    return dict(sorted(acc.parts.items()))


def _project_methods(project: _Project) -> dict[str, list[Any]]:
    """Method name -> the functions of that name in the project's classes (flow classes
    aside: their methods are followed through ``self``), over every project module
    imported so far."""
    from ..flowspec import FlowSpec

    index: dict[str, list[Any]] = {}
    for module in list(sys.modules.values()):
        if not project.owns(getattr(module, "__file__", None)):
            continue
        for cls in list(vars(module).values()):
            if not isinstance(cls, type) or cls.__module__ != module.__name__:
                continue
            if issubclass(cls, FlowSpec):
                continue
            for name, member in vars(cls).items():
                if isinstance(member, property):
                    member = member.fget
                chain = _unwrap(member)
                if chain and _function_code(chain[-1]) is not None:
                    index.setdefault(name, []).append(member)
    return index


def _follow_methods(project: _Project, acc: CodeParts) -> None:
    """Methods called on objects whose class the code does not name (an artifact holding
    a project class's instance: ``self.model.predict(x)``): every project method with a
    name the followed code uses counts, which may count too much but never too little."""
    index = _project_methods(project)
    done: set[str] = set()
    while acc.names - done:
        name = min(acc.names - done)
        done.add(name)
        for method in index.get(name, ()):
            _add_function(project, acc, method)


def vars_lookup(cls: type, name: str) -> Any:
    """``name`` from the class ``__dict__`` of ``cls`` or a base, without descriptors."""
    for klass in cls.__mro__:
        if name in vars(klass):
            return vars(klass)[name]
    return None


@dataclass
class Reads:
    """Names read through ``self``; ``names`` is None when ``self`` escapes (then every
    artifact counts), with ``why`` saying where."""

    names: set[str] | None
    why: str = ""


#: builtins that reach ``self`` without naming it (``super().method()`` runs code that
#: reads whatever it likes; ``locals()``/``vars()``/``eval`` see every local)
_HIDDEN_ACCESS = {"super", "locals", "vars", "eval", "exec"}


def _self_uses(code: types.CodeType, self_name: str) -> Reads:
    """Attribute names used on ``self_name`` in ``code`` and the code nested in it."""
    names: set[str] = set()
    hidden = _HIDDEN_ACCESS & set(code.co_names)
    if hidden:
        return Reads(None, f"{code.co_name} calls {sorted(hidden)[0]}()")
    instrs = [i for i in dis.get_instructions(code) if i.opname not in ("CACHE", "EXTENDED_ARG")]
    for n, ins in enumerate(instrs):
        if ins.opname == "STORE_FAST" and ins.argval == self_name:
            return Reads(None, f"{code.co_name} assigns to {self_name}")
        if ins.opname not in _LOAD_SELF or ins.argval != self_name:
            continue
        if ins.opname == "LOAD_CLOSURE":
            continue  # handed to nested code, analysed below
        nxt = instrs[n + 1] if n + 1 < len(instrs) else None
        if nxt is not None and nxt.opname == "COPY" and n + 2 < len(instrs):
            nxt = instrs[n + 2]  # self.x += ...
        if nxt is None or nxt.opname not in _ATTR_OPS:
            return Reads(None, f"{code.co_name} passes {self_name} on (line {_line(ins)})")
        attr = str(nxt.argval)
        if attr.startswith("__"):
            return Reads(None, f"{code.co_name} uses {self_name}.{attr}")
        if nxt.opname in ("LOAD_ATTR", "LOAD_METHOD"):
            names.add(attr)
    for c in code.co_consts:
        if isinstance(c, types.CodeType) and self_name in c.co_freevars:
            inner = _self_uses(c, self_name)
            if inner.names is None:
                return inner
            names |= inner.names
    return Reads(names)


def self_reads(flow_cls: type, step_name: str) -> Reads:
    """The names a step reads through ``self``, following flow methods it calls."""
    todo, seen, names = [step_name], set(), set()
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        member = vars_lookup(flow_cls, name)
        if isinstance(member, property):
            member = member.fget
        if isinstance(member, (staticmethod, classmethod)) or not callable(member):
            continue
        if name != step_name and getattr(member, "is_step", False):
            continue  # self.next(self.other_step) names a step, it does not run it
        func = _unwrap(member)[-1]  # a callable member: never None
        code = _function_code(func)
        if code is None:
            continue
        if name != step_name and func.__module__.startswith("metaflowlike"):
            continue  # FlowSpec's own API (self.next, self.input...): not user code
        if code.co_argcount == 0:
            continue
        found = _self_uses(code, code.co_varnames[0])
        if found.names is None:
            return found
        names |= found.names
        todo.extend(found.names)
    return Reads(names)


def _line(ins: dis.Instruction) -> object:
    """The source line of an instruction (``positions`` is Python 3.11+; 3.10 has only
    ``starts_line`` on the first instruction of a line)."""
    positions = getattr(ins, "positions", None)
    return getattr(positions, "lineno", None) or ins.starts_line or "?"
