"""``@card``: the step publishes an HTML report stored with the task.

``@card`` makes the default card (task facts, parameters, artifacts, the flow with
this step highlighted, the log tail); ``@card(type='blank', id='report')`` starts an
empty card the step fills through ``current.card``. A step may carry several cards,
told apart by ``id``. Rendering happens inside the task, after its artifacts are
stored, and a card that fails to render never fails the task: the error is shown in
the card and printed to the task's stderr.
"""

from __future__ import annotations

import html
import sys
import traceback
from typing import TYPE_CHECKING, Any

from ..current import current
from ..decorators import StepDecorator, TaskContext
from ..exceptions import MetaflowlikeException, did_you_mean
from .card_types import CARD_TYPES, CardContext
from .collector import CardCollector, CardHandle
from .logtail import LogTail
from .page import error_page
from .store import CARD_ID, write_card

if TYPE_CHECKING:
    from ..flowspec import FlowSpec
    from ..graph import FlowGraph


class CardDecorator(StepDecorator):
    name = "card"
    allow_multiple = True
    defaults = {
        "type": "default",
        "id": None,
        "options": {},
        "timeout": 45,
        "refresh_interval": 5,
        "save_errors": True,
    }

    def __init__(self, **attributes: Any) -> None:
        super().__init__(**attributes)
        self._dag: dict[str, str] = {}
        self._context: dict[int, dict[str, Any]] = {}

    def __repr__(self) -> str:
        ident = f", id={self.attributes['id']!r}" if self.attributes["id"] else ""
        return f"@card(type={self.attributes['type']!r}{ident})"

    # --- runtime process ------------------------------------------------------------------

    def step_init(self, *, flow_cls: type[FlowSpec], graph: FlowGraph, step_name: str) -> None:
        """Check the arguments (the error names the step's file and line), and draw the
        flow once here: forked tasks inherit the picture instead of each running
        Graphviz again."""
        node = graph[step_name]
        where = f'{node.source_file}:{node.lineno}: step "{step_name}"'
        card_type, card_id = self.attributes["type"], self.attributes["id"]
        if card_type not in CARD_TYPES:
            raise MetaflowlikeException(
                f'{where}: @card(type="{card_type}") is not a card type. Types: '
                f"{', '.join(sorted(CARD_TYPES))}." + did_you_mean(str(card_type), CARD_TYPES)
            )
        if card_id is not None and not CARD_ID.match(str(card_id)):
            raise MetaflowlikeException(
                f'{where}: @card(id="{card_id}"): an id is made of letters, digits and underscores.'
            )
        decos = [d for d in node.decorators if isinstance(d, CardDecorator)]
        same = [
            d for d in decos if (d.attributes["type"], d.attributes["id"]) == (card_type, card_id)
        ]
        if len(same) > 1:
            raise MetaflowlikeException(
                f'{where}: two @card(type="{card_type}") without different ids; give each '
                'its own id=, e.g. @card(type="blank", id="report").'
            )
        if self.attributes["type"] == "default" and step_name not in self._dag:
            self._dag[step_name] = _dag_svg(graph, step_name)

    # --- task process -----------------------------------------------------------------

    def task_pre_step(self, *, task: TaskContext) -> None:
        collector = getattr(current, "card", None)
        if not isinstance(collector, CardCollector) or collector.pathspec != task.pathspec:
            collector = CardCollector(task.pathspec, task.retry_count)
            collector.log_tail = LogTail()  # type: ignore[attr-defined]
            current._update(card=collector)
        handle = collector.add(self.attributes["type"], self.attributes["id"], self)
        self._context[id(handle)] = {"task": task}

    def task_finished(
        self, *, task: TaskContext, ok: bool, artifacts: dict[str, Any], info: dict[str, Any]
    ) -> None:
        collector = getattr(current, "card", None)
        if not isinstance(collector, CardCollector):
            return
        for handle in collector.cards:
            if handle.decorator is self:
                ctx = self._context.get(id(handle))
                if ctx is not None:
                    ctx.update(artifacts=artifacts, info=info)
                collector.finish(handle)

    def write_card(self, collector: CardCollector, handle: CardHandle, *, final: bool) -> None:
        """Render ``handle`` and store it; any failure ends up in the card, not the task."""
        ref = collector.ref(handle)
        title = f"{ref.pathspec} ({ref.type} card)"
        ctx_facts = self._context[id(handle)]
        task: TaskContext = ctx_facts["task"]
        try:
            ctx = CardContext(
                pathspec=ref.pathspec,
                attempt=ref.attempt,
                step_name=task.step_name,
                flow=task.flow,
                fds=task.datastore,
                dag_svg=lambda: self._dag_for(task),
                log_tail=collector.log_tail.text,  # type: ignore[attr-defined]
                artifacts=ctx_facts.get("artifacts") if final else None,
                info=dict(ctx_facts.get("info") or {}) if final else {},
                refresh_interval=self.attributes["refresh_interval"],
            )
            page, failures = CARD_TYPES[ref.type](ctx, list(handle.components))
            for failure in failures:
                print(f"Card {_name(ref)}: a component could not be rendered: {failure}",
                      file=sys.stderr)  # fmt: skip
        except Exception as e:  # noqa: BLE001 - a card never fails its task
            print(f"Card {_name(ref)} could not be rendered: {type(e).__name__}: {e}",
                  file=sys.stderr)  # fmt: skip
            page = error_page(title, e)
        try:
            write_card(task.datastore, ref, page)
        except Exception as e:  # noqa: BLE001
            print(f"Card {_name(ref)} could not be stored: {type(e).__name__}: {e}",
                  file=sys.stderr)  # fmt: skip

    def _dag_for(self, task: TaskContext) -> str:
        if task.step_name not in self._dag:
            self._dag[task.step_name] = _dag_svg(task.graph, task.step_name)
        return self._dag[task.step_name]


def _name(ref: Any) -> str:
    return f'"{ref.id}"' if ref.id else f"({ref.type})"


def _dag_svg(graph: Any, step_name: str) -> str:
    """The flow's picture with ``step_name`` highlighted, or its text form without dot."""
    from ..graph_render import GraphvizMissing, render_dot, render_picture, render_text

    styles = {
        step_name: {"style": "filled,rounded,bold", "fillcolor": "#ddf4ff", "color": "#0969da"}
    }
    try:
        return render_picture(render_dot(graph, styles=styles), "svg").decode()
    except GraphvizMissing:
        return (
            '<p class="mfl-note">Install Graphviz to see the flow drawn here.</p>'
            f"<pre>{html.escape(render_text(graph))}</pre>"
        )
    except Exception:  # noqa: BLE001 - a card shows what it can
        return f"<pre>{html.escape(traceback.format_exc())}</pre>"
