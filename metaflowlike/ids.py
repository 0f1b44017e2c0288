"""The grammar of every name that becomes part of a datastore path, defined once.

Flow names, step names, run ids, task ids, tags and checkpoint names arrive from the
command line, from client pathspecs and from remote executors. Anything that becomes a
path segment must not be able to leave the datastore root (``..``), hide among the
datastore's own entries (a leading ``.`` or ``_``), or reach the operating system as
something it rejects with a raw error (a NUL byte, a 5,000-character name). Each entry
point calls the ``check_*`` function of what it received; the storage backends call
:func:`check_storage_path` as a last line of defence.
"""

from __future__ import annotations

import re

from .exceptions import MetaflowlikeException

MAX_ID = 128
MAX_TAG = 500  # Metaflow's limit, so a tag valid there is valid here
MAX_PATH = 1024

#: flow and step names are Python identifiers (a class name, a method name)
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")
#: run and task ids: letters, digits, "_", "-", "." and not starting with "." or "_"
_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.\-]*\Z")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")

_RULES = {
    "flow name": (_NAME, "a Python identifier (letters, digits and _, not starting with a digit)"),
    "step name": (_NAME, "a Python identifier (letters, digits and _, not starting with a digit)"),
    "run id": (_ID, 'letters, digits, "_", "-" or ".", starting with a letter or a digit'),
    "task id": (_ID, 'letters, digits, "_", "-" or ".", starting with a letter or a digit'),
    "checkpoint name": (_ID, 'letters, digits, "_", "-" or ".", starting with a letter or a digit'),
}


class InvalidId(MetaflowlikeException):
    """A name or id does not follow the grammar above."""

    headline = "Invalid id"


def shown(value: object) -> str:
    """``value`` as an error message can show it: quoted, escaped, and shortened."""
    text = repr(value) if not isinstance(value, str) else repr(value)[1:-1]
    return f'"{text[:60]}..." ({len(str(value))} characters)' if len(text) > 60 else f'"{text}"'


def _where(where: str) -> str:
    return f" (in {where})" if where else ""


def _check(kind: str, value: object, where: str) -> str:
    pattern, rule = _RULES[kind]
    if not isinstance(value, str) or not value:
        raise InvalidId(f"Invalid {kind} {shown(value)}{_where(where)}: it is empty or not text.")
    if len(value) > MAX_ID:
        raise InvalidId(
            f"Invalid {kind} {shown(value)}{_where(where)}: at most {MAX_ID} characters."
        )
    if not pattern.match(value):
        raise InvalidId(f"Invalid {kind} {shown(value)}{_where(where)}: use {rule}.")
    return value


def check_flow_name(value: object, where: str = "") -> str:
    return _check("flow name", value, where)


def check_step_name(value: object, where: str = "") -> str:
    return _check("step name", value, where)


def check_run_id(value: object, where: str = "") -> str:
    return _check("run id", value, where)


def check_task_id(value: object, where: str = "") -> str:
    return _check("task id", value, where)


def check_checkpoint_name(value: object, where: str = "") -> str:
    return _check("checkpoint name", value, where)


def is_valid(kind: str, value: object) -> bool:
    """True if ``value`` is a valid ``kind`` ("run id", "task id", ...)."""
    try:
        _check(kind, value, "")
    except InvalidId:
        return False
    return True


def check_tag(value: object, where: str = "") -> str:
    """A tag is free text (it never becomes a path): 1-500 characters, no control ones."""
    if not isinstance(value, str) or not value:
        raise InvalidId(f"Invalid tag {shown(value)}{_where(where)}: it is empty or not text.")
    if len(value) > MAX_TAG:
        raise InvalidId(f"Invalid tag {shown(value)}{_where(where)}: at most {MAX_TAG} characters.")
    if _CONTROL.search(value):
        raise InvalidId(
            f"Invalid tag {shown(value)}{_where(where)}: it contains a control character."
        )
    return value


#: the parts of a pathspec, in order, and how each is checked
PATHSPEC_PARTS = ("flow name", "run id", "step name", "task id")


def check_pathspec_parts(parts: list[str], where: str = "") -> list[str]:
    """Check ``[flow, run, step, task]`` (or a prefix of it) part by part."""
    for kind, part in zip(PATHSPEC_PARTS, parts):
        _check(kind, part, where)
    return parts


def _check_path(value: str, what: str, form: str, shown_where: str, where: str) -> str:
    """``value`` split on "/" into the last parts of a task pathspec, each checked;
    ``form`` shows the expected shape (``run_id/step/task_id``)."""
    parts = value.split("/")
    if len(parts) != form.count("/") + 1:
        raise InvalidId(f"Invalid {what} {shown(value)}{shown_where}: expected {form}.")
    for kind, part in zip(PATHSPEC_PARTS[-len(parts) :], parts):
        _check(kind, part, where)
    return value


def check_input_path(value: str, where: str = "--input-paths") -> str:
    """A task input ``run_id/step/task_id``."""
    return _check_path(value, "input path", "run_id/step/task_id", f" (in {where})", where)


def check_task_pathspec(value: str, where: str = "") -> str:
    """A full task pathspec ``Flow/run_id/step/task_id``."""
    return _check_path(value, "task pathspec", "Flow/run_id/step/task_id", _where(where), where)


def check_storage_path(path: str) -> str:
    """Refuse a storage path that could leave the root or that the OS would reject.

    Every caller builds paths from checked ids, so this only fires on a bug or on an
    entry point that forgot to check: better a clear error than a write elsewhere."""
    if "\x00" in path or "\\" in path or len(path) > MAX_PATH:
        raise InvalidId(f"Refusing the datastore path {shown(path)}: not a valid path.")
    for segment in path.split("/"):
        if segment in ("", ".", "..") or len(segment) > 255:
            raise InvalidId(
                f"Refusing the datastore path {shown(path)}: it could leave the datastore root."
            )
    return path
