"""The notebook of tutorial 03, executed with nbclient on a fresh run: its outputs are
the client's HTML views (DAG, steps, parameters, artifacts, logs, cards)."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import nbformat
from nbclient import NotebookClient

from tests.html_checks import assert_self_contained

TUTORIAL = Path(__file__).resolve().parent.parent / "tutorials" / "03-artifacts-in-a-notebook"


def _html_outputs(nb) -> list[str]:
    out = []
    for cell in nb.cells:
        for o in cell.get("outputs") or []:
            if o.get("output_type") == "error":
                raise AssertionError("\n".join(o.get("traceback", [])))
            html = o.get("data", {}).get("text/html")
            if html:
                out.append(html)
    return out


def test_the_tutorial_notebook_executes_and_shows_html_views(tmp_path, monkeypatch):
    monkeypatch.delenv("METAFLOWLIKE_DATASTORE_ROOT", raising=False)
    monkeypatch.delenv("METAFLOWLIKE_DATASTORE", raising=False)
    d = tmp_path / "t03"
    shutil.copytree(TUTORIAL, d, ignore=shutil.ignore_patterns(".metaflowlike"))
    subprocess.run([sys.executable, "train.py", "run"], cwd=d, check=True, capture_output=True)
    nb = nbformat.read(d / "explore.ipynb", as_version=4)
    for cell in nb.cells:
        if cell.cell_type == "code":
            cell["outputs"] = []  # only what this execution produces counts
    NotebookClient(
        nb, timeout=180, kernel_name="python3", resources={"metadata": {"path": str(d)}}
    ).execute()
    flow_view, run_view, step_view, task_view, artifact_view, card = _html_outputs(nb)
    assert "Flow TrainFlow" in flow_view and '<b class="ok">ok</b>' in flow_view
    assert "<svg" in run_view and "#dafbe1" in run_view  # the DAG, colored: succeeded
    for expected in ("fit", "noise_levels", "points", "models", "took"):
        assert expected in run_view, expected
    assert step_view.count("<tr>") == 4  # header + three fit tasks
    assert "best model:" in task_view and "<iframe" in task_view and "models" in task_view
    assert "Artifact model" in artifact_view and "&#x27;noise&#x27;" in artifact_view
    assert "<iframe" in card
    # `repr` stays short and the card inside the iframe is a whole, self-contained page
    texts = [o.get("text", "") for c in nb.cells for o in c.get("outputs") or []]
    assert any(t.startswith("Run('TrainFlow/") for t in texts)
    from metaflowlike import client

    client.set_datastore(None, str(d / ".metaflowlike"))
    client.namespace(None)
    try:
        assert_self_contained(client.Flow("TrainFlow").latest_run["end"].task.cards[0].html)
    finally:
        client.default_namespace()
