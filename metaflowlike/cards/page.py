"""Assemble components into one self-contained HTML page.

Everything the page needs is inside the file: the style sheet, the pictures (as
``data:`` URIs) and, only when the card has a chart, the bundled Vega scripts. A card
therefore opens offline, from object storage, or inside a notebook's iframe.
"""

from __future__ import annotations

import functools
import html
import traceback
from collections.abc import Iterable
from importlib import resources

from .components import CardComponent, Error

VEGA_SCRIPTS = ("vega.min.js", "vega-lite.min.js", "vega-embed.min.js")

STYLE = """
body{font-family:-apple-system,"Segoe UI",Helvetica,Arial,sans-serif;margin:0;color:#1f2328;
background:#f6f8fa}
main{max-width:1100px;margin:0 auto;padding:20px}
header{border-bottom:1px solid #d0d7de;margin-bottom:16px}
h1{font-size:1.4em;margin:0 0 4px}
h2{font-size:1.1em;margin:20px 0 8px}
section,.mfl-box{background:#fff;border:1px solid #d0d7de;border-radius:6px;padding:12px 16px;
margin-bottom:12px}
.mfl-table{border-collapse:collapse;width:100%;font-size:.9em}
.mfl-table th,.mfl-table td{border:1px solid #d0d7de;padding:4px 8px;text-align:left;
vertical-align:top}
.mfl-table th{background:#f6f8fa}
.mfl-note,.mfl-type{color:#656d76;font-size:.85em}
.mfl-name{font-weight:600}
pre{white-space:pre-wrap;word-break:break-word;font-size:.85em;margin:4px 0}
.mfl-logs{max-height:320px;overflow:auto;background:#0d1117;color:#e6edf3;padding:8px;
border-radius:6px}
.mfl-error{border:1px solid #cf222e;background:#ffebe9;border-radius:6px;padding:8px 12px;
margin:8px 0}
.mfl-image img{max-width:100%}
.mfl-dag svg{max-width:100%;height:auto}
progress{width:240px}
.mfl-vega{min-height:40px}
"""

VEGA_LOADER = """
document.querySelectorAll('script[data-vega-for]').forEach(function (el) {
  var target = document.getElementById(el.getAttribute('data-vega-for'));
  var opts = JSON.parse(el.getAttribute('data-options') || '{}');
  vegaEmbed(target, JSON.parse(el.textContent), opts).catch(function (err) {
    target.textContent = 'The chart could not be drawn: ' + err;
    target.className += ' mfl-error';
  });
});
"""


@functools.cache
def _static(name: str) -> str:
    return (
        resources.files(__package__).joinpath("static").joinpath(name).read_text(encoding="utf-8")
    )


def render_components(components: Iterable[CardComponent]) -> tuple[str, bool, list[str]]:
    """Render each component; one that fails shows an error box in its place.

    Returns the HTML, whether a chart needs the Vega scripts, and what failed."""
    parts, failures, vega = [], [], False
    for comp in components:
        try:
            parts.append(comp.render())
            vega = vega or comp.needs_vega
        except Exception as e:  # noqa: BLE001 - one bad component must not lose the card
            failures.append(f"{type(comp).__name__}: {type(e).__name__}: {e}")
            parts.append(Error(e, f"{type(comp).__name__} could not be rendered").render())
    return "\n".join(parts), vega, failures


def page(title: str, body: str, *, vega: bool = False, extra_head: str = "") -> str:
    """A complete HTML document around ``body``."""
    scripts = ""
    if vega:
        inline = "".join(f"<script>{_static(n)}</script>\n" for n in VEGA_SCRIPTS)
        scripts = f"{inline}<script>{VEGA_LOADER}</script>"
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{html.escape(title)}</title><style>{STYLE}</style>{extra_head}</head>"
        f"<body><main>{body}</main>{scripts}</body></html>\n"
    )


def error_page(title: str, exc: BaseException) -> str:
    """What is stored when a whole card failed to render: the error, in the card."""
    text = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
    body = (
        f"<header><h1>{html.escape(title)}</h1></header>"
        f'<div class="mfl-error"><strong>This card could not be rendered.</strong>'
        f"<pre>{html.escape(text)}</pre></div>"
    )
    return page(title, body)
