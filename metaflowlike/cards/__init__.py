"""Cards: visual reports a step publishes, stored with the task as one HTML file.

    from metaflowlike import FlowSpec, step, card, current
    from metaflowlike.cards import Markdown, Table, Image, VegaChart, ProgressBar
    from metaflowlike.cards import RunComparison  # runs side by side (Flow.compare)

Components are imported here eagerly (they are light); reading cards back
(``get_cards``) loads the client only when called.
"""

from __future__ import annotations

from typing import Any

from .comparison import RunComparison
from .components import (
    Artifact,
    CardComponent,
    Error,
    Image,
    Markdown,
    ProgressBar,
    Table,
    Text,
    VegaChart,
)

__all__ = [
    "Artifact",
    "CardComponent",
    "Error",
    "Image",
    "Markdown",
    "ProgressBar",
    "RunComparison",
    "Table",
    "Text",
    "VegaChart",
    "get_cards",
]


def get_cards(task: Any, id: str | None = None, type: str | None = None):
    """The cards of a finished task (a ``Task`` or its pathspec)."""
    from .client import get_cards as _get

    return _get(task, id=id, type=type)
