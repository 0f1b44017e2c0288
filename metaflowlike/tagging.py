"""User tags that change after a run started: Metaflow's rules, safe with many writers.

A run's *system* tags (``user:<name>``, ``python_version:...``) and the tags given with
``run --tag`` are in its run record, which never changes. Every later change is one
small *tag operation* ("remove these, then add those") stored as a new object of its
own, named by its time and a random suffix, next to the flow's runs (the datastore's
layout names it). Nothing is ever rewritten, so two processes tagging the same run at
the same instant cannot lose each other's change (there is no read-modify-write of a
shared record), on every storage backend. The current user tags are the record's tags with the operations
applied in name order. One listing of the flow folder tells which runs have operations.
"""

from __future__ import annotations

from collections.abc import Iterable

from .datastore.records import RunRecord
from .exceptions import MetaflowlikeException

#: how many user tags a run may carry (Metaflow's limit; a tag's own rules: ``ids``)
MAX_USER_TAGS = 50


class MetaflowTaggingError(MetaflowlikeException):
    headline = "Invalid tag change"


def validate_tag(tag: object) -> str:
    """A tag is what ``run --tag`` accepts (``ids.check_tag``); bytes are decoded."""
    from .ids import InvalidId, check_tag

    if isinstance(tag, bytes):
        try:
            tag = tag.decode("utf-8")
        except UnicodeError:
            raise MetaflowTaggingError(f"Tag {tag!r} is not valid UTF-8.") from None
    try:
        return check_tag(tag)
    except InvalidId as e:
        raise MetaflowTaggingError(str(e)) from None


def _as_list(tags: Iterable[str] | str) -> list[str]:
    if isinstance(tags, (str, bytes)):
        raise MetaflowTaggingError(
            f"Pass a list of tags, not the string {tags!r} (use add_tag() for one tag)."
        )
    return [validate_tag(t) for t in tags]


class TagStore:
    """Reads and appends tag operations of one flow's runs in a ``FlowDatastore``."""

    def __init__(self, fds) -> None:
        self.fds = fds

    def operations(self, flow: str) -> dict[str, list[str]]:
        """Operation records by run id, oldest first (one folder listing)."""
        return self.fds.tag_operations(flow)

    def user_tags(
        self, flow: str, run_id: str, record: RunRecord, ops: list[str] | None
    ) -> list[str]:
        """The run's user tags now: the record's, with every operation applied in order."""
        tags = list(dict.fromkeys(record.user_tags))
        if ops is None:
            ops = self.operations(flow).get(run_id, [])
        for path in ops:
            op = self.fds.read_json(path) or {}
            removed = set(op.get("remove", []))
            tags = [t for t in tags if t not in removed]
            tags += [t for t in op.get("add", []) if t not in tags]
        return tags

    def mutate(
        self,
        flow: str,
        run_id: str,
        record: RunRecord,
        add: Iterable[str] = (),
        remove: Iterable[str] = (),
    ) -> list[str]:
        """Remove, then add (Metaflow's order); return the new user tags.

        Removing a system tag is an error; adding one is a no-op. A change that
        changes nothing writes nothing."""
        add_list, remove_list = _as_list(add), _as_list(remove)
        user = self.user_tags(flow, run_id, record, None)
        system = set(record.system_tags)
        bad = sorted(set(remove_list) & system)
        if bad:
            raise MetaflowTaggingError(
                f"Cannot remove system tag{'s' if len(bad) > 1 else ''} "
                f"{', '.join(bad)} from run {flow}/{run_id}: system tags are immutable."
            )
        add_list = [t for t in dict.fromkeys(add_list) if t not in system]
        new = [t for t in user if t not in set(remove_list)]
        new += [t for t in add_list if t not in new]
        if set(new) == set(user):
            return user
        if len(set(new)) > MAX_USER_TAGS and len(set(new)) > len(set(user)):
            raise MetaflowTaggingError(
                f"Run {flow}/{run_id} would have {len(set(new))} user tags; at most "
                f"{MAX_USER_TAGS} are allowed."
            )
        op = {"remove": sorted(set(remove_list)), "add": add_list}
        self.fds.add_tag_operation(flow, run_id, op)
        return self.user_tags(flow, run_id, record, None)
