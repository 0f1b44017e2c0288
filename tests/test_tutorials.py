"""Every tutorial runs end to end, as its README says."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

TUTORIALS = Path(__file__).resolve().parent.parent / "tutorials"


def _run(args, cwd, env=None, check=True):
    proc = subprocess.run(
        [sys.executable, *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        env={**os.environ, **(env or {})},
        timeout=300,
    )
    if check:
        assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc


@pytest.fixture
def tutorial(tmp_path, monkeypatch):
    monkeypatch.delenv("METAFLOWLIKE_DATASTORE_ROOT", raising=False)
    monkeypatch.delenv("METAFLOWLIKE_DATASTORE", raising=False)

    def copy(name: str) -> Path:
        dest = tmp_path / name
        shutil.copytree(TUTORIALS / name, dest)
        return dest

    return copy


def test_every_tutorial_has_a_readme():
    folders = sorted(p for p in TUTORIALS.iterdir() if p.is_dir())
    numbers = [p.name[:2] for p in folders]
    # numbers are distinct; a gap is allowed
    assert all(n.isdigit() for n in numbers) and len(set(numbers)) == len(numbers)
    for folder in folders:
        assert (folder / "README.md").exists(), folder


def test_00_helloworld(tutorial):
    d = tutorial("00-helloworld")
    out = _run(["helloworld.py", "run"], d).stdout
    assert "HELLO FROM METAFLOWLIKE!" in out
    assert "Step hello" in _run(["helloworld.py", "show"], d).stdout


def test_01_parameters_and_branches(tutorial):
    d = tutorial("01-parameters-and-branches")
    out = _run(["branches.py", "run", "--alpha", "0.3", "--epochs", "4"], d).stdout
    assert "best: ('slope'" in out
    bad = _run(["branches.py", "run", "--epochs", "many"], d, check=False)
    assert bad.returncode != 0 and '"epochs"' in bad.stderr and "Traceback" not in bad.stderr


def test_02_foreach_and_join(tutorial):
    d = tutorial("02-foreach-and-join")
    out = _run(["foreach.py", "run", "--max-workers", "4"], d).stdout
    assert "forest: 0.6" in out and "linear: 0.6" in out and "tree: 0.4" in out


def test_03_artifacts_in_a_notebook(tutorial):
    d = tutorial("03-artifacts-in-a-notebook")
    _run(["train.py", "run"], d)
    out = _run(["inspect_results.py"], d).stdout
    assert "successful=True" in out and "best model:" in out
    assert out.count("stdout: task") == 3 and "parameter points = 50" in out


def test_04_resume_and_checkpoint(tutorial):
    d = tutorial("04-resume-and-checkpoint")
    crashed = _run(["train.py", "run"], d, check=False)
    assert crashed.returncode != 0 and "Simulated crash at epoch 3" in crashed.stderr
    out = _run(["train.py", "resume"], d, env={"CRASH_AT_EPOCH": "-1"}).stdout
    assert "Restored checkpoint" in out and "epoch 3" in out
    assert "epochs run in the last attempt: [3, 4, 5]" in out
    out = _run(["train.py", "resume", "train"], d, env={"CRASH_AT_EPOCH": "-1"}).stdout
    assert "Restored checkpoint" in out


def test_07_dependencies(tutorial, tmp_path):
    d = tutorial("07-dependencies")
    envs = {"METAFLOWLIKE_ENVS_DIR": str(tmp_path / "envs")}
    out = _run(["dependencies.py", "--environment=pypi", "run"], d, env=envs).stdout
    assert "legacy used tabulate 0.8.10, the others 0.9.0" in out
    assert "humanize importable in join: False" in out
    shown = _run(["show_environments.py"], d, env=envs).stdout
    assert "legacy: pypi environment" in shown and "tabulate==0.8.10" in shown
    assert "end: the flow's own interpreter" in shown
    refused = _run(["dependencies.py", "run"], d, check=False)
    assert refused.returncode == 1 and "--environment=pypi" in refused.stderr

    project = d / "uv-project"
    _run(["-m", "uv", "lock", "--quiet"], project)
    out = _run(["uv_flow.py", "--environment=uv", "run"], project, env=envs).stdout
    assert "every step of this flow uses tabulate 0.9.0 from uv.lock" in out


def test_05_cloud_bursting(tutorial):
    # the script starts the test suite's stand-ins, so it runs from the checkout
    script = TUTORIALS / "05-cloud-bursting" / "try_on_stand_in.py"
    out = _run([str(script)], tutorial("05-cloud-bursting")).stdout
    assert "scores: [" in out and "in pod mfl-burstflow-train-" in out
    assert out.count("Kubernetes Job default/") == 4


def test_05_cloud_bursting_on_batch(tutorial):
    script = TUTORIALS / "05-cloud-bursting" / "try_on_stand_in.py"
    out = _run([str(script), "--batch"], tutorial("05-cloud-bursting")).stdout
    assert "scores: [" in out and "in Batch job " in out
    assert out.count("submitted to queue test-queue") == 4


def test_06_production(tutorial):
    # the script starts the test suite's stand-ins, so it runs from the checkout
    script = TUTORIALS / "06-production" / "try_on_stand_in.py"
    out = _run([str(script)], tutorial("06-production")).stdout
    assert "WorkflowTemplate default/demand.user.tutorial.demandflow created." in out
    assert "CronWorkflow default/demand.user.tutorial.demandflow created." in out
    assert out.count("exit code 0") == 6 and ": Succeeded" in out
    assert "as a state machine, states: init, start" in out and "start.foreach" in out
    # what the notebook printed, reading the production run with the client
    assert "successful: True" in out and "'project_branch:user.tutorial'" in out
    assert "totals: {'lille': 156, 'lyon': 246, 'paris': 366}" in out
    assert "t-2 paris paris: 3 days forecast" in out


def test_08_cards(tutorial):
    d = tutorial("08-cards")
    out = _run(["cardsflow.py", "run"], d).stdout
    assert "fitted slope 2.99" in out
    listed = _run(["cardsflow.py", "card", "list"], d).stdout
    assert listed.count("type=default") == 2 and "id=report" in listed
    path = _run(["cardsflow.py", "card", "view", "train", "--id", "report", "--no-open"], d)
    report = Path(path.stdout.strip()).read_text()
    assert "Training for 30 epochs" in report and "vegaEmbed" in report
    _run(["cardsflow.py", "card", "get", "start", "start-card.html"], d)
    assert "20 points" in (d / "start-card.html").read_text()


def test_09_tracking_and_models(tutorial):
    d = tutorial("09-tracking-and-models")
    env = {"METAFLOWLIKE_USER": "tutorial"}
    for lr in ("0.01", "0.05", "0.2"):
        assert (
            "registered regressor version" in _run(["train.py", "run", "--lr", lr], d, env).stdout
        )
    out = _run(["compare_and_promote.py"], d, env).stdout
    assert "metrics.loss" in out and "params.lr" in out
    assert "champion -> regressor version 2" in out  # lr=0.2 diverges, 0.05 fits best
    assert "in 30 epochs" in out
    assert "scored with regressor version 2" in _run(["score.py", "run"], d, env).stdout
    _run(["score.py", "card", "get", "end", "compare.html"], d, env)
    page = (d / "compare.html").read_text()
    assert "Scored with regressor version 2" in page and page.count("TrainRegressor/") >= 3
    console = Path(sys.executable).parent / "metaflowlike"
    moved = subprocess.run(
        [str(console), "model", "alias", "regressor", "champion", "1"],
        cwd=d, capture_output=True, text=True, env={**os.environ, **env},
    )  # fmt: skip
    assert moved.returncode == 0 and "(was 2)" in moved.stdout, moved.stderr
    assert "scored with regressor version 1" in _run(["score.py", "run"], d, env).stdout
