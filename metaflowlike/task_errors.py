"""How a failed task describes its failure: to its stderr and in its task record.

Three kinds of failure read differently:

* **A mistake in the flow** found while it runs (a ``foreach`` over an int, a step that
  never calls ``self.next``, a bad argument to a metaflowlike call): a
  ``MetaflowlikeException``. It reads like ``check``: one paragraph naming the user's
  file and line, and no traceback, since the framework's frames would only hide it.
* **An exception of the user's code**: its traceback, starting at the user's first
  frame (the framework frames that called the step are left out).
* **A bug of the framework** (an exception with no frame of the user's code): the full
  traceback, which is what a bug report needs.
"""

from __future__ import annotations

import os
import sys
import traceback
from types import TracebackType
from typing import Any

from .exceptions import MetaflowlikeException

_CORE = os.path.dirname(os.path.abspath(__file__)) + os.sep


def describe(e: BaseException, node: Any) -> dict[str, Any]:
    """The ``exception`` field of the task record for ``e``, raised in step ``node``."""
    record: dict[str, Any] = {
        "type": f"{type(e).__module__}.{type(e).__qualname__}".removeprefix("builtins."),
        "message": str(e),
        "user_error": isinstance(e, MetaflowlikeException),
    }
    if isinstance(e, MetaflowlikeException):
        where = _location(e, node)
        if where is None:  # raised by the framework alone: the environment, not the code
            record["traceback"] = f'{e.headline}: step "{node.name}": {e}\n'
        else:
            record["location"] = f"{where[0]}:{where[1]}"
            record["traceback"] = f'{e.headline}: {record["location"]}: step "{node.name}": {e}\n'
    else:
        record["traceback"] = "".join(_user_first(traceback.TracebackException.from_exception(e)))
    return record


def _location(e: MetaflowlikeException, node: Any) -> tuple[str, int] | None:
    """Where the mistake is: the innermost frame of the flow's own file, else the line
    the framework named (``e.lineno``, in the step's file), else the innermost frame of
    user code; None when no user code is involved (a full disk, an unreachable store)."""
    user = [f for f in _frames(e.__traceback__) if not _in_framework(f[0])]
    in_flow = [f for f in user if f[0] == node.source_file]
    if in_flow:
        return in_flow[-1]
    if e.lineno:
        return node.source_file, e.lineno
    return user[-1] if user else None


def _frames(tb: TracebackType | None) -> list[tuple[str, int]]:
    out = []
    while tb is not None:
        out.append((os.path.abspath(tb.tb_frame.f_code.co_filename), tb.tb_lineno))
        tb = tb.tb_next
    return out


def _in_framework(filename: str) -> bool:
    """True for the files of metaflowlike and of its plugins (``metaflowlike_*``)."""
    path = os.path.abspath(filename)
    return path.startswith(_CORE) or any(path.startswith(d) for d in _plugin_dirs())


def _plugin_dirs() -> list[str]:
    return [
        os.path.dirname(os.path.abspath(str(m.__file__))) + os.sep
        for name, m in list(sys.modules.items())
        if name.startswith("metaflowlike_") and "." not in name and getattr(m, "__file__", None)
    ]


def _user_first(te: traceback.TracebackException) -> list[str]:
    """The formatted traceback with the framework frames above the user's first frame
    left out (of ``te`` and of the exceptions chained to it). A traceback without any
    user frame is a framework bug and stays whole."""
    seen: set[int] = set()
    todo = [te]
    while todo:
        current = todo.pop()
        if id(current) in seen:
            continue
        seen.add(id(current))
        # the flow file's own ``__main__`` frame comes before the framework's: the step
        # is the first user frame *after* a framework frame
        stack = current.stack
        inside = [_in_framework(f.filename) for f in stack]
        start = inside.index(True) if True in inside else len(stack)
        first = next((i for i in range(start, len(stack)) if not inside[i]), None)
        if first is not None:
            del stack[:first]
        todo.extend(x for x in (current.__cause__, current.__context__) if x is not None)
    return list(te.format())
