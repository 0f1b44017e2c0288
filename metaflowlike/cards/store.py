"""Where cards live in the datastore: next to the task attempt that made them.

    flows/<Flow>/<run>/<step>/<task>/<attempt>/cards/<type>[-<id>].html

A card is written with the storage layer's atomic put, so a reader sees the previous
version or the new one, never half a file. Finished cards are read from the latest
*finished* attempt (the one with a ``.done`` marker), like artifacts; live cards of a
task that is still running are read from its newest attempt folder.
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
        return f"{attempt_dir(self.pathspec, self.attempt)}/cards/{self.file_name}"

    def __str__(self) -> str:
        ident = f" id={self.id}" if self.id else ""
        return f"{self.pathspec} attempt {self.attempt}: {self.type}{ident}"


def card_file_name(card_type: str, card_id: str | None) -> str:
    return f"{card_type}-{card_id}.html" if card_id else f"{card_type}.html"


def attempt_dir(pathspec: str, attempt: int) -> str:
    flow, run_id, step, task_id = pathspec.split("/")
    return f"{FlowDatastore.task_dir(flow, run_id, step, task_id)}/{attempt}"


def write_card(fds: FlowDatastore, ref: CardRef, html: str) -> None:
    fds.storage.put_bytes(ref.path, html.encode("utf-8"))


def read_card(fds: FlowDatastore, ref: CardRef) -> str:
    return fds.storage.get_bytes(ref.path).decode("utf-8")


def list_attempt_cards(fds: FlowDatastore, pathspec: str, attempt: int) -> list[CardRef]:
    names = fds.storage.list_dir(f"{attempt_dir(pathspec, attempt)}/cards")
    refs = []
    for name, is_dir in sorted(names):
        if is_dir or not name.endswith(".html"):
            continue
        card_type, _, card_id = name[: -len(".html")].partition("-")
        refs.append(CardRef(pathspec, attempt, card_type, card_id or None))
    return refs


def finished_cards(fds: FlowDatastore, pathspec: str) -> list[CardRef]:
    """Cards of the task's latest finished attempt. A task that ``resume`` reused from
    an earlier run shows the cards of the task it was cloned from."""
    for _ in range(100):  # a chain of resumes, followed to the task that ran
        flow, run_id, step, task_id = pathspec.split("/")
        done = fds.attempts(flow, run_id, step, task_id)
        if not done:
            return []
        refs = list_attempt_cards(fds, pathspec, done[-1])
        marker = fds.read_json(
            f"{FlowDatastore.task_dir(flow, run_id, step, task_id)}/{done[-1]}.done"
        )
        origin = (marker or {}).get("cloned_from")
        if refs or not origin:
            return refs
        pathspec = origin
    return []


def live_cards(fds: FlowDatastore, pathspec: str) -> list[CardRef]:
    """Cards of the newest attempt, finished or still running."""
    flow, run_id, step, task_id = pathspec.split("/")
    names = fds.storage.list_dir(FlowDatastore.task_dir(flow, run_id, step, task_id))
    attempts = sorted(int(n) for n, is_dir in names if is_dir and n.isdigit())
    for attempt in reversed(attempts):
        refs = list_attempt_cards(fds, pathspec, attempt)
        if refs:
            return refs
    return []
