"""The import-line rewrite a user does to port a Metaflow flow, as a test helper.

Port-suite flows are written once against Metaflow (``from metaflow import ...``) and
go through exactly this rewrite, nothing else, before they run.
"""

from __future__ import annotations

import re
import textwrap

_RULES = [
    (
        re.compile(r"^(\s*)from metaflow(\.exception)? import ", re.M),
        r"\1from metaflowlike\2 import ",
    ),
    (re.compile(r"^(\s*)import metaflow\s*$", re.M), r"\1import metaflowlike as metaflow"),
]


def port(source: str) -> str:
    """``source`` with its Metaflow imports pointing at metaflowlike."""
    out = textwrap.dedent(source)
    for pattern, repl in _RULES:
        out = pattern.sub(repl, out)
    if re.search(r"^\s*(from|import) metaflow(\.|\s|$)", out, re.M):
        raise ValueError("a Metaflow import the port rewrite does not know remains")
    return out
