"""Card components: the pieces a step appends to a card (Metaflow's spelling).

Each component renders itself to an HTML fragment with every asset inline (images as
``data:`` URIs, charts as a JSON spec drawn by the bundled Vega scripts), so a card is
one self-contained file that opens offline. Values are always HTML-escaped: a card shows
text a step produced, never runs it.
"""

from __future__ import annotations

import base64
import html
import io
import itertools
import json
import reprlib
from collections.abc import Iterable
from typing import Any

__all__ = [
    "CardComponent",
    "Markdown",
    "Text",
    "Table",
    "Image",
    "Artifact",
    "VegaChart",
    "ProgressBar",
    "Error",
]

_ids = itertools.count(1)


class CardComponent:
    """Base class: a component renders to an HTML fragment.

    ``needs_vega`` tells the page to inline the Vega scripts once."""

    needs_vega = False

    def __init__(self) -> None:
        self.component_id = f"mfl-c{next(_ids)}"

    def render(self) -> str:
        raise TypeError(f"{type(self).__name__} does not say how to render itself")

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.component_id}>"


def escape(value: Any) -> str:
    return html.escape(str(value), quote=True)


class _TextComponent(CardComponent):
    """A component that shows one text, replaced by ``update``."""

    def __init__(self, text: str = "") -> None:
        super().__init__()
        self.text = str(text)

    def update(self, text: str) -> None:
        self.text = str(text)


class Markdown(_TextComponent):
    """Markdown text (CommonMark; raw HTML in the text is shown as text, not run)."""

    def render(self) -> str:
        from markdown_it import MarkdownIt

        body = MarkdownIt("commonmark", {"html": False}).enable("table").render(self.text)
        return f'<div class="mfl-markdown">{body}</div>'


class Text(_TextComponent):
    """Plain text, shown as written (whitespace kept)."""

    def render(self) -> str:
        return f'<pre class="mfl-text">{escape(self.text)}</pre>'


def _cell(value: Any) -> str:
    if isinstance(value, CardComponent):
        return value.render()
    return escape(value)


class Table(CardComponent):
    """Rows of cells (or a pandas DataFrame); a cell may itself be a component."""

    def __init__(
        self, data: Iterable[Iterable[Any]] | None = None, headers: Iterable[Any] | None = None
    ) -> None:
        super().__init__()
        if hasattr(data, "itertuples") and hasattr(data, "columns"):  # a pandas DataFrame
            frame: Table = Table.from_dataframe(data)
            data, headers = frame.rows, headers or frame.headers
            self.omitted = frame.omitted
        self.rows: list[list[Any]] = [list(r) for r in (data if data is not None else [])]
        self.headers: list[Any] = list(headers or [])

    @classmethod
    def from_dataframe(cls, dataframe: Any, truncate: bool = True, max_rows: int = 100) -> Table:
        """A pandas DataFrame: its columns as headers, its index as the first column."""
        frame = dataframe.head(max_rows) if truncate else dataframe
        headers = [frame.index.name or ""] + [str(c) for c in frame.columns]
        rows = [[idx, *row] for idx, row in zip(frame.index, frame.itertuples(index=False))]
        table = cls(rows, headers)
        table.omitted = max(0, len(dataframe) - len(frame))
        return table

    omitted: int = 0

    def update(self, data: Iterable[Iterable[Any]]) -> None:
        self.rows = [list(r) for r in data]

    def render(self) -> str:
        head = ""
        if self.headers:
            head = "<thead><tr>" + "".join(f"<th>{_cell(h)}</th>" for h in self.headers)
            head += "</tr></thead>"
        body = "".join(
            "<tr>" + "".join(f"<td>{_cell(c)}</td>" for c in row) + "</tr>" for row in self.rows
        )
        more = (
            f'<p class="mfl-note">{self.omitted} more rows not shown.</p>' if self.omitted else ""
        )
        return f'<table class="mfl-table">{head}<tbody>{body}</tbody></table>{more}'


_IMAGE_TYPES = {b"\x89PNG\r\n\x1a\n": "image/png", b"\xff\xd8\xff": "image/jpeg"}


class Image(CardComponent):
    """A PNG or JPEG picture (bytes), a PIL image, or a matplotlib figure."""

    def __init__(self, src: bytes | None = None, label: str | None = None) -> None:
        super().__init__()
        self.label = label
        self.src = bytes(src) if src is not None else None
        if self.src is not None:
            self._mime()  # refuse something that is not a picture now, not at render

    def _mime(self) -> str:
        for magic, mime in _IMAGE_TYPES.items():
            if self.src.startswith(magic):  # type: ignore[union-attr]
                return mime
        raise ValueError(
            "Image(src=...) needs the bytes of a PNG or JPEG file; use Image.from_pil_image "
            "or Image.from_matplotlib for pictures in memory."
        )

    @classmethod
    def from_pil_image(cls, pilimage: Any, label: str | None = None) -> Image:
        buf = io.BytesIO()
        pilimage.save(buf, format="PNG")
        return cls(buf.getvalue(), label)

    @classmethod
    def from_matplotlib(cls, plot: Any, label: str | None = None) -> Image:
        """A matplotlib Figure (or Axes), saved as a PNG at its own size."""
        figure = getattr(plot, "figure", None) or plot
        if hasattr(figure, "get_figure") and not hasattr(figure, "savefig"):
            figure = figure.get_figure()
        buf = io.BytesIO()
        figure.savefig(buf, format="png", bbox_inches="tight")
        return cls(buf.getvalue(), label)

    def update(self, src: bytes) -> None:
        self.src = bytes(src)
        self._mime()

    def render(self) -> str:
        if self.src is None:
            return '<p class="mfl-note">(no image)</p>'
        data = base64.b64encode(self.src).decode()
        alt = escape(self.label or "image")
        caption = f"<figcaption>{escape(self.label)}</figcaption>" if self.label else ""
        return (
            f'<figure class="mfl-image"><img alt="{alt}" src="data:{self._mime()};base64,{data}">'
            f"{caption}</figure>"
        )


def preview(value: Any, limit: int = 400) -> str:
    """A short, safe ``repr`` (long containers and strings are cut, never all printed)."""
    shape = getattr(value, "shape", None)
    if shape is not None and hasattr(value, "dtype") and getattr(value, "size", 0) > 20:
        return f"{type(value).__name__} shape={tuple(shape)} dtype={value.dtype}"
    r = reprlib.Repr()
    r.maxstring = r.maxother = limit
    r.maxlist = r.maxtuple = r.maxdict = r.maxset = 20
    try:
        text = r.repr(value)
    except Exception as e:  # noqa: BLE001 - a broken __repr__ must not break the card
        text = f"<{type(value).__name__}: repr failed: {e}>"
    return text if len(text) <= limit else text[:limit] + "..."


class Artifact(CardComponent):
    """A value shown with its type and a short preview (as ``repr`` would, but cut)."""

    def __init__(self, artifact: Any, name: str | None = None, compressed: bool = True) -> None:
        super().__init__()
        self.artifact, self.name, self.compressed = artifact, name, compressed

    def update(self, artifact: Any) -> None:
        self.artifact = artifact

    def render(self) -> str:
        text = preview(self.artifact, 400 if self.compressed else 100_000)
        name = f'<span class="mfl-name">{escape(self.name)}</span> ' if self.name else ""
        kind = escape(type(self.artifact).__name__)
        return f'<div class="mfl-artifact">{name}<span class="mfl-type">{kind}</span><pre>{escape(text)}</pre></div>'


def _script_json(value: Any) -> str:
    """JSON safe inside a <script> element: no ``</script>`` can end it early."""
    return json.dumps(value, default=str).replace("</", "<\\/").replace("<!--", "<\\!--")


class VegaChart(CardComponent):
    """A Vega-Lite (or Vega) chart, drawn in the page by the bundled scripts."""

    needs_vega = True

    def __init__(self, spec: dict, show_controls: bool = False) -> None:
        super().__init__()
        self.spec, self.show_controls = dict(spec), show_controls

    @classmethod
    def from_altair_chart(cls, altair_chart: Any) -> VegaChart:
        return cls(altair_chart.to_dict())

    def update(self, spec: dict | None = None) -> None:
        if spec is not None:
            self.spec = dict(spec)

    def render(self) -> str:
        # The "$schema" URL only tells Vega from Vega-Lite: say that as the embed mode
        # instead, so the card names no outside address.
        spec = dict(self.spec)
        schema = str(spec.pop("$schema", ""))
        mode = "vega" if "/schema/vega/" in schema else "vega-lite"
        opts = {"actions": bool(self.show_controls), "renderer": "svg", "mode": mode}
        return (
            f'<div class="mfl-vega" id="{self.component_id}"></div>'
            f'<script type="application/json" data-vega-for="{self.component_id}" '
            f"data-options='{escape(json.dumps(opts))}'>{_script_json(spec)}</script>"
        )


class ProgressBar(CardComponent):
    """A bar from 0 to ``max``; ``update(value)`` then ``current.card.refresh()``."""

    def __init__(
        self,
        max: float = 100,
        label: str | None = None,
        value: float = 0,
        unit: str | None = None,
        metadata: str | None = None,
    ) -> None:
        super().__init__()
        self.max, self.label, self.value = max, label, value
        self.unit, self.metadata = unit, metadata

    def update(self, new_value: float, metadata: str | None = None) -> None:
        self.value = new_value
        if metadata is not None:
            self.metadata = metadata

    def render(self) -> str:
        unit = f" {self.unit}" if self.unit else ""
        meta = f' <span class="mfl-note">{escape(self.metadata)}</span>' if self.metadata else ""
        label = f"<span>{escape(self.label)}</span> " if self.label else ""
        return (
            f'<div class="mfl-progress">{label}'
            f'<progress value="{float(self.value):g}" max="{float(self.max):g}"></progress> '
            f"<span>{self.value:g}/{self.max:g}{escape(unit)}</span>{meta}</div>"
        )


class Error(CardComponent):
    """An exception (or a message) shown as an error box, with its traceback if any."""

    def __init__(self, exception: BaseException | str, title: str | None = None) -> None:
        super().__init__()
        self.exception, self.title = exception, title

    def render(self) -> str:
        import traceback

        exc = self.exception
        if isinstance(exc, BaseException):
            text = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
        else:
            text = str(exc)
        title = f"<strong>{escape(self.title)}</strong>" if self.title else ""
        return f'<div class="mfl-error">{title}<pre>{escape(text)}</pre></div>'
