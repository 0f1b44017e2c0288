"""Cards: every component renders, cards are self-contained HTML stored with the task,
the CLI and the client read them back, a broken card never fails its task."""

from __future__ import annotations

import io
import json
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from metaflowlike.cards import (
    Artifact,
    Error,
    Image,
    Markdown,
    ProgressBar,
    Table,
    Text,
    VegaChart,
    get_cards,
)
from metaflowlike.cards.page import page, render_components
from tests.cloud_servers import free_port
from tests.flows import two_steps
from tests.html_checks import assert_self_contained, check_page
from tests.tethered import tether

PNG_1PX = bytes.fromhex(
    "89504e470d0a1a0a0000000d4948445200000001000000010806000000"
    "1f15c4890000000d49444154789c6360f8cf00000301010018dd8db00000000049454e44ae426082"
)

SPEC = {
    "$schema": "https://vega.github.io/schema/vega-lite/v5.json",
    "data": {"values": [{"x": i, "y": i * i} for i in range(6)]},
    "mark": "line",
    "encoding": {"x": {"field": "x", "type": "quantitative"}, "y": {"field": "y", "type": "quantitative"}},
}  # fmt: skip


def _page_of(*components) -> str:
    body, vega, failures = render_components(components)
    assert failures == []
    return page("test", body, vega=vega)


def test_every_component_renders_to_a_self_contained_page():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import pandas as pd
    from PIL import Image as PILImage

    fig, ax = plt.subplots(figsize=(2, 2))
    ax.plot([1, 2, 3], [3, 1, 2])
    bar = ProgressBar(max=10, label="epochs", unit="ep")
    bar.update(4, metadata="loss 0.3")
    frame = pd.DataFrame({"a": [1, 2], "b": ["<x>", "y"]})
    parts = [
        Markdown("# Title\n\nSome *text* and <script>alert(1)</script>"),
        Text("plain  <text>"),
        Table([[1, Markdown("**bold**")], [2, Image(PNG_1PX)]], headers=["n", "what"]),
        Table.from_dataframe(frame),
        Table(frame),
        Image(PNG_1PX, label="pixel"),
        Image.from_pil_image(PILImage.new("RGB", (4, 4), "red")),
        Image.from_matplotlib(fig),
        Artifact({"k": list(range(100))}, name="big"),
        VegaChart(SPEC),
        bar,
        Error(ValueError("bad value"), title="It broke"),
    ]
    html = _page_of(*parts)
    assert_self_contained(html)
    assert "<h1>Title</h1>" in html and "<em>text</em>" in html
    assert "<script>alert(1)</script>" not in html  # raw HTML in Markdown is text
    assert html.count("&lt;x&gt;") == 2 and "plain  &lt;text&gt;" in html
    assert html.count("data:image/png;base64,") == 4  # 1px twice, PIL, matplotlib
    assert 'value="4" max="10"' in html and "loss 0.3" in html
    assert "ValueError: bad value" in html and "It broke" in html
    assert "vegaEmbed" in html and "vega.github.io/schema" not in html.split("<script>")[0]
    assert "..." in html  # the 100-item list is cut in the preview


def test_image_refuses_bytes_that_are_not_a_picture():
    with pytest.raises(ValueError, match="PNG or JPEG"):
        Image(b"GIF89a...")


def test_the_checker_catches_outside_references():
    bad = '<!DOCTYPE html><html><body><img src="https://example.com/x.png"></body></html>'
    assert check_page(bad)
    assert check_page("<!DOCTYPE html><html><body><div></body></html>")


FLOW = """
from metaflowlike import FlowSpec, Parameter, card, current, step
from metaflowlike.cards import CardComponent, Markdown, ProgressBar, Table, VegaChart

SPEC = {spec}

class Broken(CardComponent):
    def render(self):
        raise RuntimeError("this component cannot draw itself")

class CardFlow(FlowSpec):
    size = Parameter("size", default=3)

    @card
    @step
    def start(self):
        self.numbers = list(range(self.size))
        self.text = "<b>not bold</b>"
        print("hello from start")
        current.card.append(Markdown("## Appended to the default card"))
        self.next(self.report)

    @card(type="blank", id="report")
    @card(type="blank", id="extra")
    @card
    @step
    def report(self):
        current.card["report"].append(Markdown("# Report"))
        current.card["report"].append(VegaChart(SPEC))
        bar = ProgressBar(max=3, label="epochs")
        current.card["report"].append(bar)
        for i in range(3):
            bar.update(i + 1)
            current.card.refresh()
        current.card["extra"].append(Markdown("gone"))
        current.card["extra"].clear()
        current.card["extra"].append(Table([[1, 2]], headers=["a", "b"]))
        current.card["extra"].append(Broken())
        self.next(self.end)

    @step
    def end(self):
        print("the end")

if __name__ == "__main__":
    CardFlow()
"""


@pytest.fixture
def card_run(make_flow):
    flow = make_flow(FLOW.replace("{spec}", json.dumps(SPEC)), name="cardflow.py")
    proc = flow.run("run")
    return flow, proc


def test_cards_are_stored_with_the_task_and_read_back(card_run):
    from metaflowlike import Flow

    flow, proc = card_run
    run = Flow("CardFlow").latest_run
    assert run.successful
    start = run["start"].task
    (default,) = start.cards
    assert default.type == "default" and default.id is None
    html = default.html
    assert_self_contained(html)
    for expected in (
        "Appended to the default card",
        "numbers",
        "[0, 1, 2]",
        "&lt;b&gt;not bold&lt;/b&gt;",  # a preview is text, never markup
        "hello from start",  # the log tail
        "size",  # parameters
        "<svg",  # the DAG
        "succeeded",
    ):
        assert expected in html, expected
    cards = get_cards(run["report"].task)
    assert sorted((c.type, c.id) for c in cards) == [
        ("blank", "extra"),
        ("blank", "report"),
        ("default", None),
    ]
    report = get_cards(run["report"].task, id="report")[0].html
    assert_self_contained(report)
    assert "vegaEmbed" in report and 'value="3" max="3"' in report
    extra = get_cards(f"{run.pathspec}/report/{run['report'].task.id}", id="extra")[0].html
    assert "gone" not in extra and "<td>2</td>" in extra
    # the broken component: an error box in the card, a line in the task's log, task ok
    assert "this component cannot draw itself" in extra
    assert "could not be rendered" in run["report"].task.stderr
    assert list(run["end"].task.cards) == []
    assert "<iframe" in run["report"].task.cards._repr_html_()


def test_card_command_line(card_run, tmp_path):
    flow, _ = card_run
    listed = flow.run("card", "list").stdout
    assert listed.count("type=") == 4 and "id=report" in listed
    path = flow.run("card", "view", "report", "--id", "report", "--no-open").stdout.strip()
    assert Path(path).read_text().startswith("<!DOCTYPE html>")
    out = tmp_path / "got.html"
    flow.run("card", "get", "start", str(out))
    assert "Appended to the default card" in out.read_text()
    several = flow.run("card", "get", "report", str(tmp_path / "x.html"), check=False)
    assert several.returncode == 1 and "--id" in several.stderr
    missing = flow.run("card", "view", "report", "--id", "nope", "--no-open", check=False)
    assert missing.returncode == 1 and "No card with id nope" in missing.stderr
    assert "Traceback" not in missing.stderr


def test_with_card_adds_the_default_card_to_every_step(make_flow):
    from metaflowlike import Flow

    flow = make_flow(two_steps("PlainFlow", "self.x = 1"))
    flow.run("run", "--with", "card")
    run = Flow("PlainFlow").latest_run
    for step in ("start", "end"):
        assert [c.type for c in run[step].task.cards] == ["default"]


def test_a_card_that_cannot_render_does_not_fail_the_task(make_flow):
    from metaflowlike import Flow

    flow = make_flow(
        """
        from metaflowlike import FlowSpec, card, current, step
        from metaflowlike.cards import CardComponent, Markdown

        class Unprintable:
            def __repr__(self):
                raise RuntimeError("no repr for you")

        class NotHtml(CardComponent):
            def render(self):
                return None  # breaks the page itself, not just this component

        class BadCardFlow(FlowSpec):
            @card(type="blank")
            @step
            def start(self):
                current.card.append(Markdown("fine"))
                try:
                    current.card.append(object())
                except TypeError as e:
                    print(e)
                current.card.append(NotHtml())
                self.next(self.end)

            @card
            @step
            def end(self):
                self.odd = Unprintable()

        if __name__ == "__main__":
            BadCardFlow()
        """
    )
    proc = flow.run("run")
    assert "takes a card component (Markdown, Table" in proc.stdout
    run = Flow("BadCardFlow").latest_run
    assert run.successful
    html = run["end"].task.cards[0].html
    assert "Unprintable instance" in html  # a failing __repr__ is shown safely
    broken = run["start"].task.cards[0].html
    assert_self_contained(broken)
    assert "This card could not be rendered" in broken and "TypeError" in broken
    assert "could not be rendered" in run["start"].task.stderr


def test_unknown_card_type_is_a_clear_error(make_flow):
    flow = make_flow(
        """
        from metaflowlike import FlowSpec, card, step

        class TypoFlow(FlowSpec):
            @card(type="blnk")
            @step
            def start(self):
                self.next(self.end)

            @step
            def end(self):
                pass

        if __name__ == "__main__":
            TypoFlow()
        """
    )
    proc = flow.run("run", check=False)
    assert proc.returncode == 1 and 'did you mean "blank"' in proc.stderr.lower()
    assert "Traceback" not in proc.stderr


def test_cards_on_a_cloud_datastore(make_flow, s3_root):
    from metaflowlike import client

    flow = make_flow(FLOW.replace("{spec}", json.dumps(SPEC)), name="cardflow.py")
    flow.run("run", top=("--datastore", "s3", "--datastore-root", s3_root))
    client.set_datastore("s3", s3_root)
    run = client.Flow("CardFlow").latest_run
    html = run["start"].task.cards[0].html
    assert_self_contained(html)
    assert "hello from start" in html
    listed = flow.run("card", "list", top=("--datastore", "s3", "--datastore-root", s3_root))
    assert listed.stdout.count("type=") == 4


LIVE_FLOW = """
import os, time
from metaflowlike import FlowSpec, card, current, step
from metaflowlike.cards import Markdown

class LiveFlow(FlowSpec):
    @card(type="blank", id="live", refresh_interval=1)
    @step
    def start(self):
        gate = os.environ["GATE"]
        current.card["live"].append(Markdown("phase one"))
        current.card.refresh(force=True)
        while not os.path.exists(gate):
            time.sleep(0.05)
        current.card["live"].clear()
        current.card["live"].append(Markdown("phase two"))
        current.card.refresh(force=True)
        while not os.path.exists(gate + ".2"):
            time.sleep(0.05)
        self.next(self.end)

    @step
    def end(self):
        pass

if __name__ == "__main__":
    LiveFlow()
"""


def _get(url: str) -> str:
    with urllib.request.urlopen(url, timeout=10) as r:
        return r.read().decode()


def _wait_for(predicate, what: str, timeout: float = 60):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            value = predicate()
        except OSError:
            value = None
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"gave up waiting for {what}")


def test_card_server_shows_a_running_task_and_its_refreshes(make_flow, tmp_path):
    flow = make_flow(LIVE_FLOW)
    gate = tmp_path / "gate"
    env = {"GATE": str(gate)}
    import os

    full_env = {**os.environ, **env}
    full_env.pop("METAFLOWLIKE_DATASTORE", None)
    base = [sys.executable, str(flow.path), "--datastore-root", str(flow.root)]
    run = subprocess.Popen(base + ["run"], env=full_env, stdout=subprocess.PIPE,
                           stderr=subprocess.STDOUT, cwd=flow.path.parent)  # fmt: skip
    port = free_port()
    server = subprocess.Popen(base + ["card", "server", "--port", str(port)], env=full_env,
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                              preexec_fn=tether())  # fmt: skip
    try:
        url = f"http://127.0.0.1:{port}"
        index = _wait_for(lambda: "/card/" in (t := _get(url + "/")) and t, "the card in the index")
        card_url = url + index.split('href="', 1)[1].split('"', 1)[0]
        first = _wait_for(lambda: "phase one" in (t := _get(card_url)) and t, "phase one")
        assert "location.reload" in first and "every = 1000" in first
        stamp_url = card_url.replace("/card/", "/stamp/")
        stamp = json.loads(_get(stamp_url))["stamp"]
        gate.touch()  # the task moves on and refreshes its card
        _wait_for(lambda: json.loads(_get(stamp_url))["stamp"] != stamp, "a new stamp")
        second = _get(card_url)
        assert "phase two" in second and "phase one" not in second
        Path(str(gate) + ".2").touch()
        assert run.wait(timeout=120) == 0
    finally:
        for proc in (run, server):
            if proc.poll() is None:
                proc.terminate()
                proc.wait(timeout=10)
    with pytest.raises(urllib.error.URLError):
        _get(url + "/card/x/1/start/1/nothing.html")


def test_show_draws_the_flow_as_svg_and_png(make_flow, tmp_path):
    flow = make_flow(FLOW.replace("{spec}", "{}"), name="cardflow.py")
    svg = flow.run("show", "--format", "svg").stdout
    assert svg.startswith("<svg") and ">report</text>" in svg
    png = tmp_path / "flow.png"
    out = flow.run("show", "--format", "png", "--output", str(png)).stdout
    assert str(png) in out and png.read_bytes().startswith(b"\x89PNG")
    no_file = flow.run("show", "--format", "png", check=False)
    assert no_file.returncode == 1 and "--output" in no_file.stderr
    no_dot = flow.run("show", "--format", "svg", check=False, env={"PATH": "/nonexistent"})
    assert no_dot.returncode == 1 and "graphviz" in no_dot.stderr.lower()
    assert "Traceback" not in no_dot.stderr


def test_pictures_of_a_png_are_really_pngs():
    from metaflowlike.graph_render import render_picture

    data = render_picture("digraph g { a -> b }", "png")
    from PIL import Image as PILImage

    assert PILImage.open(io.BytesIO(data)).size[1] > 50


def test_the_shipped_vega_scripts_are_the_npm_packages_builds():
    """The scripts inside the package are the registry's builds, with their licenses."""
    repo = Path(__file__).resolve().parent.parent
    static = repo / "metaflowlike" / "cards" / "static"
    for package, build in [
        ("vega", "vega.min.js"),
        ("vega-lite", "vega-lite.min.js"),
        ("vega-embed", "vega-embed.min.js"),
    ]:
        shipped = (static / build).read_bytes()
        assert shipped == (repo / "node_modules" / package / "build" / build).read_bytes()
        assert (
            "BSD" in (static / f"LICENSE.{package}").read_text()
            or "Copyright" in (static / f"LICENSE.{package}").read_text()
        )


def test_a_resumed_run_shows_the_cards_of_the_tasks_it_reused(make_flow):
    from metaflowlike import Flow

    flow = make_flow(
        """
        import os
        from metaflowlike import FlowSpec, card, current, step
        from metaflowlike.cards import Markdown

        class ResumeCardFlow(FlowSpec):
            @card(type="blank")
            @step
            def start(self):
                current.card.append(Markdown("made in the first run"))
                self.next(self.end)

            @step
            def end(self):
                if os.environ.get("FAIL"):
                    raise RuntimeError("fail once")

        if __name__ == "__main__":
            ResumeCardFlow()
        """
    )
    assert flow.run("run", check=False, env={"FAIL": "1"}).returncode == 1
    resumed = flow.run("resume").stdout
    assert "1 task succeeded, 0 retries, 0 failed, 1 reused from the origin run." in resumed
    run = Flow("ResumeCardFlow").latest_run
    assert run.successful and run.origin_pathspec
    assert "made in the first run" in run["start"].task.cards[0].html
    assert "type=blank" in flow.run("card", "list", run.id).stdout
