"""Short previews of small JSON-safe values, made when an artifact is saved.

A browser of runs (``metaflowlike ui``) must show what a small artifact holds without
unpickling it: unpickling runs code chosen by whoever wrote the artifact. So when a task
saves a value that is plain data (None, booleans, numbers, strings, and lists, tuples
and dicts of them with string keys), its ``repr``, cut to ``PREVIEW_CHARS``, is kept in
the task's artifact manifest next to the content key. Anything else (objects, arrays,
frames, large containers) gets no preview; the check stops after a bounded number of
elements, so saving a million-item list costs no more than saving a small one.
"""

from __future__ import annotations

PREVIEW_CHARS = 200
#: how many elements (a string counts one per 64 characters) a value may have
MAX_NODES = 256

_SCALARS = (type(None), bool, int, float)


def json_preview(obj: object) -> str | None:
    """The repr of ``obj`` cut to ``PREVIEW_CHARS``, or None if it is not small plain data."""
    if type(obj) is str and len(obj) > PREVIEW_CHARS:  # a long string: preview its start
        return _cut(repr(obj[:PREVIEW_CHARS]))
    if not _plain(obj, [MAX_NODES], 0):
        return None
    return _cut(repr(obj))


def _cut(text: str) -> str:
    return text if len(text) <= PREVIEW_CHARS else text[: PREVIEW_CHARS - 1] + "…"


def _plain(obj: object, budget: list[int], depth: int) -> bool:
    """Exact built-in types only: a subclass may have a ``__repr__`` of its own."""
    t = type(obj)
    if t is str:
        budget[0] -= 1 + len(obj) // 64  # type: ignore[arg-type]
        return budget[0] >= 0
    budget[0] -= 1
    if budget[0] < 0 or depth > 8:
        return False
    if t in _SCALARS:
        return True
    if t is list or t is tuple:
        return len(obj) <= budget[0] and all(_plain(x, budget, depth + 1) for x in obj)  # type: ignore[arg-type,attr-defined]
    if t is dict:
        return len(obj) <= budget[0] and all(  # type: ignore[arg-type]
            type(k) is str and _plain(k, budget, depth + 1) and _plain(v, budget, depth + 1)
            for k, v in obj.items()  # type: ignore[attr-defined]
        )
    return False
