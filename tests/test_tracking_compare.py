"""Comparing real runs: filtering by tags and parameters, the table, the curves."""

from __future__ import annotations

import pytest

SWEEP = """
from metaflowlike import FlowSpec, Parameter, current, step


class SweepFlow(FlowSpec):
    lr = Parameter("lr", default=0.1)
    model = Parameter("model", default="tree")

    @step
    def start(self):
        for epoch in range(4):
            current.track("loss", self.lr * (4 - epoch), step=epoch)
        self.next(self.end)

    @step
    def end(self):
        self.score = round(1 - self.lr, 3)


if __name__ == "__main__":
    SweepFlow()
"""


@pytest.fixture(scope="module")
def sweep(tmp_path_factory):
    """Three real runs; the client of this process then reads their datastore."""
    from metaflowlike import client
    from tests.flowrunner import FlowFile

    folder = tmp_path_factory.mktemp("sweep")
    path = folder / "sweep.py"
    path.write_text(SWEEP)
    flow = FlowFile(path, folder / "ds")
    flow.run("run", "--lr", "0.1")
    flow.run("run", "--lr", "0.2", "--model", "forest")
    flow.run("run", "--tag", "best", "--lr", "0.3")
    client.set_datastore(None, str(folder / "ds"))
    client.namespace(None)
    yield folder / "ds"
    client.default_namespace()
    client.set_datastore()  # back to what the configuration says


def test_runs_filtered_by_parameters_and_tags(sweep):
    from metaflowlike import Flow

    flow = Flow("SweepFlow")
    assert [r.parameters["lr"] for r in flow.runs(lr=0.2)] == [0.2]
    assert [r.parameters["model"] for r in flow.runs(model="forest")] == ["forest"]
    assert len(list(flow.runs(model="tree"))) == 2
    assert [r.parameters["lr"] for r in flow.runs("best")] == [0.3]
    assert list(flow.runs("best", lr=0.1)) == []


def test_comparison_table_from_real_runs(sweep):
    import pandas

    from metaflowlike import Flow

    table = Flow("SweepFlow").compare(metrics=["loss"], params=["lr", "model"], artifacts=["score"])
    assert isinstance(table, pandas.DataFrame)
    assert list(table.columns) == [
        "created_at", "successful", "params.lr", "params.model", "metrics.loss", "artifacts.score",
    ]  # fmt: skip
    assert list(table["params.lr"]) == [0.3, 0.2, 0.1]  # newest first
    assert list(table["params.model"]) == ["tree", "forest", "tree"]
    assert list(table["metrics.loss"]) == pytest.approx([0.3, 0.2, 0.1])  # the final value
    assert list(table["artifacts.score"]) == [0.7, 0.8, 0.9]
    assert table["successful"].all()
    only = Flow("SweepFlow").compare(metrics=["loss", "missing"], where={"model": "tree"})
    assert list(only.columns) == [
        "created_at", "successful", "params.lr", "params.model", "metrics.loss", "metrics.missing",
    ]  # fmt: skip
    assert len(only) == 2 and only["metrics.missing"].isna().all()


def test_metric_curves_across_runs(sweep):
    import matplotlib

    matplotlib.use("Agg")
    from metaflowlike import Flow

    ax = Flow("SweepFlow").plot_metric("loss", where={"model": "tree"})
    lines = ax.get_lines()
    assert len(lines) == 2
    assert [list(line.get_xdata()) for line in lines] == [[0, 1, 2, 3]] * 2
    assert sorted(line.get_ydata()[0] for line in lines) == pytest.approx([0.4, 1.2])
    assert {t.get_text() for t in ax.get_legend().get_texts()} == {
        r.pathspec for r in Flow("SweepFlow").runs(model="tree")
    }
    assert ax.get_ylabel() == "loss"


REPORT = """
from metaflowlike import FlowSpec, card, current, step
from metaflowlike.cards import RunComparison


class SweepReport(FlowSpec):
    @card(type="blank")
    @step
    def start(self):
        current.card.append(
            RunComparison("SweepFlow", metrics=["loss"], params=["lr"], artifacts=["score"],
                          where={"model": "tree"})
        )
        self.next(self.end)

    @step
    def end(self):
        pass


if __name__ == "__main__":
    SweepReport()
"""


def test_comparison_view_in_a_card(sweep, tmp_path):
    """A step shows the sweep's runs side by side in its card: the table and a curve per
    run, drawn by the bundled Vega scripts in a real browser."""
    import re

    from metaflowlike import Flow
    from tests.chromium import dump_dom
    from tests.flowrunner import FlowFile
    from tests.html_checks import assert_self_contained

    path = tmp_path / "report.py"
    path.write_text(REPORT)
    FlowFile(path, sweep).run("run")
    html = Flow("SweepReport").latest_run["start"].task.cards[0].html
    assert_self_contained(html)
    tree = [r.pathspec for r in Flow("SweepFlow").runs(model="tree")]
    body = html.split("<tbody>", 1)[1].split("</tbody>", 1)[0]
    rows = [re.findall(r"<td>(.*?)</td>", row) for row in body.split("</tr>")[:-1]]
    # run, created_at, successful, params.lr, metrics.loss, artifacts.score; newest first
    assert [(r[0], r[2:]) for r in rows] == [
        (tree[0], ["True", "0.3", "0.3", "0.7"]),
        (tree[1], ["True", "0.1", "0.1", "0.9"]),
    ]  # the forest run (lr 0.2) is filtered out
    spec = html.split('data-vega-for="', 1)[1]
    assert spec.count('"run"') == 1 + 2 * 4  # the encoding + two curves of four points

    page = tmp_path / "card.html"
    page.write_text(html)
    dom = dump_dom(page)
    assert len(re.findall(r'class="mark-line', dom)) == 2  # a line per run
    assert "role-axis" in dom and "mfl-vega mfl-error" not in dom
