"""``current.card``: the cards of the running task and the components appended to them.

Each ``@card`` on the step is one card here, known by its ``id`` (or, without one, as
the step's default target). ``refresh()`` re-renders the cards and stores them while
the task runs, so ``card server`` can show them live; the final render happens when the
task ends. Writes are throttled to one per second per task, with the last refresh always
written shortly after (a trailing timer), so a tight loop calling ``refresh()`` costs
little and the newest state still arrives.
"""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Iterable
from typing import Any

from .components import CardComponent, Markdown
from .store import CardRef

MIN_WRITE_INTERVAL = 1.0


class CardHandle:
    """One card of the task: its components (what ``current.card['id']`` returns)."""

    def __init__(self, collector: CardCollector, card_type: str, card_id: str | None, deco):
        self._collector = collector
        self.type, self.id, self.decorator = card_type, card_id, deco
        self.components: list[CardComponent] = []

    def append(self, component: CardComponent | str) -> None:
        self.components.append(_as_component(component))

    def extend(self, components: Iterable[CardComponent | str]) -> None:
        for c in components:
            self.append(c)

    def clear(self) -> None:
        self.components.clear()

    def refresh(self, force: bool = False) -> None:
        self._collector.refresh(force=force)

    def __repr__(self) -> str:
        return f"<card type={self.type} id={self.id} components={len(self.components)}>"


def _as_component(component: Any) -> CardComponent:
    if isinstance(component, CardComponent):
        return component
    if isinstance(component, str):
        return Markdown(component)
    raise TypeError(
        f"current.card.append() takes a card component (Markdown, Table, Image, Artifact, "
        f"VegaChart, ProgressBar...) or a string, not {type(component).__name__}."
    )


class CardCollector:
    """What ``current.card`` is inside a task whose step has ``@card``."""

    def __init__(self, pathspec: str, attempt: int) -> None:
        self.pathspec, self.attempt = pathspec, attempt
        self.cards: list[CardHandle] = []
        self._last_write = 0.0
        self._timer: threading.Timer | None = None
        self._lock = threading.Lock()
        self._finished = False

    # --- registry (used by the decorator) ---------------------------------------------

    def add(self, card_type: str, card_id: str | None, deco: Any) -> CardHandle:
        handle = CardHandle(self, card_type, card_id, deco)
        self.cards.append(handle)
        return handle

    def _target(self) -> CardHandle | None:
        if len(self.cards) == 1:
            return self.cards[0]
        unnamed = [c for c in self.cards if c.id is None]
        if len(unnamed) == 1:
            return unnamed[0]
        ids = ", ".join(repr(c.id) for c in self.cards if c.id)
        print(
            f"current.card: this step has {len(self.cards)} cards; choose one with "
            f"current.card[ID] (ids: {ids or 'none'}). The component was not added.",
            file=sys.stderr,
        )
        return None

    # --- the user-facing API --------------------------------------------------------

    def __getitem__(self, card_id: str) -> CardHandle:
        for c in self.cards:
            if c.id == card_id:
                return c
        from ..exceptions import MetaflowlikeException, did_you_mean

        known = [c.id for c in self.cards if c.id]
        raise MetaflowlikeException(
            f'current.card["{card_id}"]: this step has no @card(id="{card_id}"). '
            f"Card ids here: {', '.join(known) or 'none'}." + did_you_mean(card_id, known)
        )

    def __setitem__(self, card_id: str, components: Iterable[CardComponent]) -> None:
        handle = self[card_id]
        handle.clear()
        handle.extend(components)

    def append(self, component: CardComponent | str, id: str | None = None) -> None:
        target = self[id] if id else self._target()
        if target is not None:
            target.append(component)

    def extend(self, components: Iterable[CardComponent | str], id: str | None = None) -> None:
        target = self[id] if id else self._target()
        if target is not None:
            target.extend(components)

    def clear(self, id: str | None = None) -> None:
        for c in self.cards:
            if id is None or c.id == id:
                c.clear()

    @property
    def components(self) -> list[CardComponent]:
        target = self._target() if self.cards else None
        return target.components if target else []

    def refresh(self, force: bool = False) -> None:
        """Store the cards as they are now, for viewers of the running task."""
        with self._lock:
            if self._finished:
                return
            wait = self._last_write + MIN_WRITE_INTERVAL - time.monotonic()
            if wait > 0 and not force:
                if self._timer is None:
                    self._timer = threading.Timer(wait, self._trailing)
                    self._timer.daemon = True
                    self._timer.start()
                return
            self._write_all(final=False)

    def _trailing(self) -> None:
        with self._lock:
            self._timer = None
            if not self._finished:
                self._write_all(final=False)

    def _write_all(self, final: bool) -> None:
        self._last_write = time.monotonic()
        for c in self.cards:
            c.decorator.write_card(self, c, final=final)

    def finish(self, handle: CardHandle) -> None:
        """The final render of one card, when the task ends."""
        with self._lock:
            if self._timer is not None:
                self._timer.cancel()
                self._timer = None
            handle.decorator.write_card(self, handle, final=True)
            if handle is self.cards[-1]:
                self._finished = True

    def ref(self, handle: CardHandle) -> CardRef:
        return CardRef(self.pathspec, self.attempt, handle.type, handle.id)

    def __repr__(self) -> str:
        return f"<current.card {self.pathspec}: {self.cards}>"
