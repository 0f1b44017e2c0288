"""Cards in the datastore: next to the task attempt that made them (the datastore's
layout says where).

A card is written with the storage layer's atomic put, so a reader sees the previous
version or the new one, never half a file. Finished cards are read from the latest
*finished* attempt, like artifacts; live cards of a task that is still running are
read from its newest attempt folder.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from ..datastore.task_datastore import FlowDatastore

CARD_ID = re.compile(r"[A-Za-z0-9_]+\Z")


@dataclass(frozen=True)
class CardRef:
    """One stored card: which task attempt, and its type and id."""

    pathspec: str  # Flow/run/step/task
    attempt: int
    type: str
    id: str | None

    @property
    def file_name(self) -> str:
        return card_file_name(self.type, self.id)

    @property
    def path(self) -> str:
        """Where the card is, relative to the datastore root."""
        return FlowDatastore.layout.card(self.pathspec, self.attempt, self.type, self.id)

    def __str__(self) -> str:
        ident = f" id={self.id}" if self.id else ""
        return f"{self.pathspec} attempt {self.attempt}: {self.type}{ident}"


card_file_name = FlowDatastore.layout.card_file


def write_card(fds: FlowDatastore, ref: CardRef, html: str) -> None:
    fds.write_card(ref.pathspec, ref.attempt, ref.type, ref.id, html)


def read_card(fds: FlowDatastore, ref: CardRef) -> str:
    return fds.read_card(ref.pathspec, ref.attempt, ref.type, ref.id)


def list_attempt_cards(fds: FlowDatastore, pathspec: str, attempt: int) -> list[CardRef]:
    return [CardRef(pathspec, attempt, t, i) for t, i in fds.list_cards(pathspec, attempt)]


def finished_cards(fds: FlowDatastore, pathspec: str) -> list[CardRef]:
    """Cards of the task's latest finished attempt. A task that ``resume`` reused from
    an earlier run shows the cards of the task it was cloned from."""
    for _ in range(100):  # a chain of resumes, followed to the task that ran
        done = fds.attempts(pathspec)
        if not done:
            return []
        refs = list_attempt_cards(fds, pathspec, done[-1])
        marker = None if refs else fds.read_marker(pathspec, done[-1], warn=True)
        origin = marker.cloned_from if marker is not None else None
        if refs or not origin:
            return refs
        pathspec = origin
    return []


def live_cards(fds: FlowDatastore, pathspec: str) -> list[CardRef]:
    """Cards of the newest attempt, finished or still running."""
    for attempt in reversed(fds.attempt_states(pathspec)[0]):
        refs = list_attempt_cards(fds, pathspec, attempt)
        if refs:
            return refs
    return []
