"""Read cards back: ``get_cards(task)`` and ``Task.cards`` (Metaflow's spelling)."""

from __future__ import annotations

import html
import os
import tempfile
import webbrowser
from typing import Any

from .store import CardRef, finished_cards, read_card


class Card:
    """One stored card; ``html`` reads it, ``view()`` opens it, notebooks show it."""

    def __init__(self, fds: Any, ref: CardRef) -> None:
        self._fds, self.ref = fds, ref
        self._html: str | None = None

    type = property(lambda self: self.ref.type)
    id = property(lambda self: self.ref.id)
    pathspec = property(lambda self: self.ref.pathspec)

    @property
    def html(self) -> str:
        if self._html is None:
            self._html = read_card(self._fds, self.ref)
        return self._html

    def get(self) -> str:
        return self.html

    def save(self, path: str) -> str:
        """Write the card to ``path`` (a folder gets the card's own file name)."""
        if os.path.isdir(path):
            path = os.path.join(path, self.ref.file_name)
        tmp = f"{path}.tmp{os.getpid()}"
        with open(tmp, "w", encoding="utf-8") as f:
            f.write(self.html)
        os.replace(tmp, path)
        return path

    def view(self) -> str:
        """Open the card in the web browser; returns the local file it opened."""
        folder = tempfile.mkdtemp(prefix="mfl-card-")
        path = self.save(os.path.join(folder, self.ref.file_name))
        webbrowser.open(f"file://{path}")
        return path

    def _repr_html_(self) -> str:
        return (
            f'<iframe srcdoc="{html.escape(self.html, quote=True)}" '
            'style="width:100%;height:640px;border:1px solid #d0d7de" '
            'sandbox="allow-scripts"></iframe>'
        )

    def __repr__(self) -> str:
        ident = f" id={self.id}" if self.id else ""
        return f"<Card {self.pathspec} type={self.type}{ident}>"


class CardContainer(list):
    """The cards of a task (a list); in a notebook it shows every card."""

    def _repr_html_(self) -> str:
        if not self:
            return "<p>This task has no cards.</p>"
        return "".join(c._repr_html_() for c in self)


def get_cards(task: Any, id: str | None = None, type: str | None = None) -> CardContainer:
    """Cards of ``task`` (a Task or a pathspec), optionally only one ``id`` or ``type``."""
    from ..client import Task

    if isinstance(task, str):
        task = Task(task)
    fds = task._fds
    refs = finished_cards(fds, task.pathspec)
    return CardContainer(
        Card(fds, r)
        for r in refs
        if (id is None or r.id == id) and (type is None or r.type == type)
    )
