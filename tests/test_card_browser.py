"""Cards in a real browser (headless Chromium, offline): the default card and a card
with a VegaChart really draw, from the file alone."""

from __future__ import annotations

import json
import re

from PIL import Image as PILImage

from tests.chromium import dump_dom, screenshot
from tests.test_cards import FLOW, SPEC


def _colors(png) -> int:
    with PILImage.open(png) as im:
        return len(im.convert("RGB").getcolors(maxcolors=1 << 20) or [])


def test_cards_render_in_chromium_without_network(make_flow, tmp_path):
    from metaflowlike import Flow

    flow = make_flow(FLOW.replace("{spec}", json.dumps(SPEC)), name="cardflow.py")
    flow.run("run")
    run = Flow("CardFlow").latest_run
    default = tmp_path / "default.html"
    default.write_text(run["start"].task.cards[0].html)
    report = tmp_path / "report.html"
    task = run["report"].task
    report.write_text(next(c for c in task.cards if c.id == "report").html)

    dom = dump_dom(report)
    # vega-embed replaced the placeholder with the chart it drew: an SVG of marks with
    # one line path, not an error message
    chart = dom.split('id="mfl-c', 1)[1]
    assert re.search(r'<svg[^>]*class="marks"', chart), chart[:2000]
    assert 'class="mark-line' in chart and "mfl-vega mfl-error" not in dom
    assert "role-axis" in chart  # axes drawn too

    shot = screenshot(report, tmp_path / "report.png")
    assert _colors(shot) > 20  # a drawn chart, not a blank page
    shot = screenshot(default, tmp_path / "default.png")
    assert _colors(shot) > 20
