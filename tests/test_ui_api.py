"""``metaflowlike ui``'s JSON API, against a datastore filled by real runs.

One module-wide local datastore holds three runs of ``UiFlow`` (a succeeded run whose
foreach task fails once and is retried, a run tagged ``nightly``, and a failed run);
each test starts the real ``metaflowlike ui`` command on it and asks over HTTP. The
same API is checked on S3 (moto), and while a run is still running.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.cloud_servers import REPO_ROOT as REPO
from tests.cloud_servers import client_env, create_bucket, new_bucket_name, root_url
from tests.flows import two_steps
from tests.ui_server import UiServer, start_live_run

FLOW = '''
import os
from metaflowlike import FlowSpec, Parameter, card, checkpoint, current, retry, step


class Trap:
    """Unpickling it creates a file (it pickles as a call to open()), as a hostile
    artifact could run anything: proof that a server unpickled it."""

    def __init__(self, path):
        self.path = path

    def __reduce__(self):
        return (open, (self.path, "a"))


class UiFlow(FlowSpec):
    """A flow for the run browser's tests."""

    fail = Parameter("fail", default=False, type=bool)
    alpha = Parameter("alpha", default=0.5)

    @step
    def start(self):
        self.small = {"name": "<script>alert(1)</script>", "values": [1, 2.5, None, True]}
        self.long_text = "x" * 5000
        self.trap = Trap(os.environ.get("TRAP_FILE", "/nonexistent/trap"))
        self.shards = [0, 1, 2]
        print("<script>alert('log')</script> & friends")
        self.next(self.work, foreach="shards")

    @retry(times=1)
    @step
    def work(self):
        if self.input == 1 and current.retry_count == 0:
            raise RuntimeError("first attempt of shard 1 fails")
        if self.fail and self.input == 2:
            raise ValueError("shard 2 is broken <b>bold</b>")
        self.score = self.input * self.alpha
        self.next(self.join)

    @checkpoint
    @step
    def join(self, inputs):
        self.best = max(i.score for i in inputs)
        with open(os.path.join(current.checkpoint.directory, "best.txt"), "w") as f:
            f.write(str(self.best))
        current.checkpoint.save(name="best")
        self.next(self.end)

    @card
    @step
    def end(self):
        print("best", self.best)


if __name__ == "__main__":
    UiFlow()
'''


def _run_flow(folder: Path, root: str, *args: str, env: dict | None = None, check: bool = True):
    full = {k: v for k, v in os.environ.items() if not k.startswith("METAFLOWLIKE_")}
    full.update(env or {})
    proc = subprocess.run(
        [sys.executable, "uiflow.py", "--datastore-root", root, *args],
        cwd=folder, env=full, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    if check and proc.returncode:
        raise AssertionError(proc.stdout + proc.stderr)
    return proc


@pytest.fixture(scope="module")
def filled(tmp_path_factory):
    """A local datastore with three runs: ok (with a retry), tagged, failed."""
    folder = tmp_path_factory.mktemp("uiflow")
    (folder / "uiflow.py").write_text(FLOW)
    root = str(folder / "ds")
    env = {"TRAP_FILE": str(folder / "TRAPPED")}
    _run_flow(folder, root, "run", env=env)
    _run_flow(folder, root, "run", "--tag", "nightly", "--alpha", "2", env=env)
    _run_flow(folder, root, "run", "--fail", "true", env=env, check=False)
    return folder, root


@pytest.fixture(scope="module")
def ui(filled):
    folder, root = filled
    with UiServer("--datastore-root", root) as server:
        yield server


def _runs(ui) -> list[dict]:
    return ui.get("api/flows/UiFlow/runs")["runs"]


def test_flows_and_runs_list_with_filters_sort_and_pages(ui):
    assert ui.get("api/flows") == {"flows": [{"name": "UiFlow", "runs": 3}]}
    runs = _runs(ui)
    assert [r["status"] for r in runs] == ["failed", "succeeded", "succeeded"]  # newest first
    assert all(r["user"] and r["duration"] > 0 and r["created_at"] for r in runs)
    assert "nightly" in runs[1]["tags"] and runs[1]["user_tags"] == ["nightly"]

    failed = ui.get("api/flows/UiFlow/runs?status=failed")
    assert failed["total"] == 1 and failed["runs"][0]["id"] == runs[0]["id"]
    tagged = ui.get("api/flows/UiFlow/runs?tag=nightly")
    assert [r["id"] for r in tagged["runs"]] == [runs[1]["id"]]
    mine = ui.get(f"api/flows/UiFlow/runs?user={runs[0]['user']}")
    assert mine["total"] == 3
    assert ui.get("api/flows/UiFlow/runs?user=nobody-at-all")["total"] == 0

    page = ui.get("api/flows/UiFlow/runs?limit=1&offset=1")
    assert page["total"] == 3 and [r["id"] for r in page["runs"]] == [runs[1]["id"]]
    oldest_first = ui.get("api/flows/UiFlow/runs?order=asc")
    assert [r["id"] for r in oldest_first["runs"]] == [r["id"] for r in reversed(runs)]
    by_duration = ui.get("api/flows/UiFlow/runs?sort=duration&order=asc")["runs"]
    durations = [r["duration"] for r in by_duration]
    assert durations == sorted(durations)

    bad = ui.request("api/flows/UiFlow/runs?sort=colour")
    assert bad.status == 400 and "sort must be one of" in bad.json()["error"]


def test_run_view_has_steps_retries_parameters_dag_and_resume(ui):
    failed_id, tagged_id, ok_id = [r["id"] for r in _runs(ui)]
    assert ui.get(f"api/runs/UiFlow/{tagged_id}")["parameters"]["alpha"] == "2.0"
    run = ui.get(f"api/runs/UiFlow/{ok_id}")
    assert run["status"] == "succeeded" and run["resume"] is None
    assert run["parameters"] == {"fail": "False", "alpha": "0.5"}
    steps = {s["name"]: s for s in run["steps"]}
    assert list(steps) == ["start", "work", "join", "end"]  # graph order
    assert steps["work"]["tasks"] == 3 and steps["work"]["retries"] == 1
    assert steps["work"]["status"] == "succeeded"
    assert set(run["graph"]) == set(steps) and run["graph"]["start"]["foreach"] == "shards"

    timeline = ui.get(f"api/runs/UiFlow/{ok_id}/tasks")
    assert timeline["total"] == 6
    retried = [t for t in timeline["tasks"] if len(t["attempts"]) == 2]
    assert len(retried) == 1
    first, second = retried[0]["attempts"]
    assert (first["status"], second["status"]) == ("failed", "succeeded")
    assert first["started_at"] <= first["finished_at"] <= second["started_at"]
    one_step = ui.get(f"api/runs/UiFlow/{ok_id}/tasks?step=work&limit=2&offset=1")
    assert one_step["total"] == 3 and len(one_step["tasks"]) == 2
    assert ui.request(f"api/runs/UiFlow/{ok_id}/tasks?step=wrok").status == 404

    bad = ui.get(f"api/runs/UiFlow/{failed_id}")
    assert bad["status"] == "failed"
    assert {s["name"]: s["status"] for s in bad["steps"]}["work"] == "failed"
    assert bad["resume"] == {
        "command": f"python uiflow.py resume --origin-run-id {failed_id}",
        "failed_step": "work",
    }

    dag = ui.request(f"api/runs/UiFlow/{failed_id}/dag.svg")
    assert dag.status == 200 and dag.headers["content-type"].startswith("image/svg+xml")
    assert dag.text.startswith("<svg") and "#ffebe9" in dag.text  # the failed step's color


def test_task_view_artifacts_previews_error_card_and_logs(ui):
    failed_id, ok_id, _ = [r["id"] for r in _runs(ui)]
    steps = {s["name"]: s for s in ui.get(f"api/runs/UiFlow/{ok_id}")["steps"]}
    start = ui.get(f"api/tasks/UiFlow/{ok_id}/start/{steps['start']['first_task']}")
    arts = {a["name"]: a for a in start["artifacts"]}
    assert arts["small"]["preview"] == (
        "{'name': '<script>alert(1)</script>', 'values': [1, 2.5, None, True]}"
    )
    assert arts["small"]["type"] == "dict" and arts["small"]["size"] > 0
    assert (
        arts["long_text"]["preview"].startswith("'xxx") and len(arts["long_text"]["preview"]) == 200
    )
    assert arts["trap"]["preview"] is None and arts["trap"]["type"].endswith("Trap")
    out = ui.get(f"api/tasks/UiFlow/{ok_id}/start/{steps['start']['first_task']}/logs/stdout")
    assert out["text"] == "<script>alert('log')</script> & friends\n" and out["final"]

    join = ui.get(f"api/tasks/UiFlow/{ok_id}/join/{steps['join']['first_task']}")
    assert [c["name"] for c in join["checkpoints"]] == ["best"]
    assert join["checkpoints"][0]["id"] and join["checkpoints"][0]["created_at"]
    end = ui.get(f"api/tasks/UiFlow/{ok_id}/end/{steps['end']['first_task']}")
    assert [c["type"] for c in end["cards"]] == ["default"]
    card = ui.request(
        f"api/tasks/UiFlow/{ok_id}/end/{steps['end']['first_task']}/cards/default.html"
    )
    assert card.status == 200 and "<html" in card.text.lower()
    assert "sandbox allow-scripts" in card.headers["content-security-policy"]

    work = ui.get(f"api/runs/UiFlow/{failed_id}/tasks?step=work")["tasks"]
    broken = next(t for t in work if t["status"] == "failed")
    task = ui.get(f"api/tasks/{broken['pathspec']}")
    assert task["error"]["type"] == "ValueError"
    assert task["error"]["message"] == "shard 2 is broken <b>bold</b>"
    assert "Traceback" in task["error"]["traceback"]
    err = ui.get(f"api/tasks/{broken['pathspec']}/logs/stderr")
    assert "shard 2 is broken" in err["text"]
    # the first, failed attempt of the retried task stays readable
    retried = next(t for t in work if len(t["attempts"]) == 2)
    first = ui.get(f"api/tasks/{retried['pathspec']}?attempt=0")
    assert first["attempt"] == 0 and first["error"]["message"] == "first attempt of shard 1 fails"


def test_never_unpickles_without_the_flag(filled, ui):
    folder, root = filled
    trapped = folder / "TRAPPED"
    runs = _runs(ui)
    for run in runs:  # every page of every run and task
        ui.get(f"api/runs/UiFlow/{run['id']}")
        for task in ui.get(f"api/runs/UiFlow/{run['id']}/tasks")["tasks"]:
            ui.get(f"api/tasks/{task['pathspec']}")
    start = next(t for t in ui.get(f"api/runs/UiFlow/{runs[1]['id']}/tasks?step=start")["tasks"])
    refused = ui.request(f"api/tasks/{start['pathspec']}/artifacts/trap")
    assert refused.status == 403 and "--allow-unpickle" in refused.json()["error"]
    assert not trapped.exists()

    # the trap does work: a server started with the opt-in unpickles on request
    with UiServer("--datastore-root", root, "--allow-unpickle") as opted_in:
        value = opted_in.get(f"api/tasks/{start['pathspec']}/artifacts/trap")
        assert "TextIOWrapper" in value["value"]
        assert (
            opted_in.get(f"api/tasks/{start['pathspec']}/artifacts/shards")["value"] == "[0, 1, 2]"
        )
    assert trapped.exists()
    trapped.unlink()


def test_path_parameters_cannot_leave_the_datastore(filled, ui):
    folder, root = filled
    (folder / "secret.txt").write_text("TOP-SECRET")
    (Path(root) / "flows" / "secret.json").write_text('{"secret": "TOP-SECRET"}')
    run_id = _runs(ui)[1]["id"]
    probes = [
        "api/runs/..%2F..%2Fsecret.txt/x",
        "api/flows/..%2F..%2Fsecret.txt/runs",
        "api/flows/../runs",
        "api/runs/UiFlow/..",
        "api/runs/UiFlow/%2E%2E/tasks",
        f"api/tasks/UiFlow/{run_id}/start/..%2F..%2F..%2F..%2Fsecret.json",
        f"api/tasks/UiFlow/{run_id}/start/1/cards/..%2F..%2F..%2F..%2F..%2Fsecret.json",
        f"api/tasks/UiFlow/{run_id}/start/1/logs/..%2F..%2F..%2Fsecret",
        f"api/tasks/UiFlow/{run_id}/start/1/artifacts/..%2Fsecret",
        "static/..%2F..%2F..%2Fsecret.txt",
        "static/%2e%2e/%2e%2e/pyproject.toml",
        "api/runs/secret.json/x",
    ]
    for probe in probes:
        r = ui.request(probe)
        assert r.status in (400, 403, 404), (probe, r.status, r.text)
        assert "TOP-SECRET" not in r.text and "Traceback" not in r.text, probe
        assert "error" in r.json(), probe


def test_unknown_routes_are_404_without_traceback_and_writes_are_refused(ui):
    for path in ("nope", "api/nope", "api/flows/NoSuchFlow/runs", "api/runs/UiFlow/123"):
        r = ui.request(path)
        assert r.status == 404, path
        assert "Traceback" not in r.text and r.json()["error"]
    assert "NoSuchFlow" in ui.request("api/flows/NoSuchFlow/runs").json()["error"]
    for method in ("POST", "PUT", "DELETE"):
        r = ui.request("api/flows", method=method)
        assert r.status == 405 and "read-only" in r.json()["error"]
    page = ui.request("")
    assert page.status == 200 and "/static/app.js" in page.text
    assert "script-src 'self'" in page.headers["content-security-policy"]


def test_non_loopback_host_prints_a_warning(filled):
    folder, root = filled
    with UiServer("--datastore-root", root) as local:
        local.get("api/flows")
    assert "Warning" not in local.stderr
    with UiServer("--datastore-root", root, "--host", "0.0.0.0") as exposed:
        assert exposed.url.startswith("http://0.0.0.0:")
    assert "anyone who can reach that port can read every run" in exposed.stderr


def test_live_run_logs_follow_while_the_task_runs(tmp_path):
    run, root = start_live_run(tmp_path, ticks=40)
    try:
        with UiServer("--datastore-root", root) as ui:
            seen: list[str] = []
            offset, statuses = 0, set()
            deadline = time.time() + 60
            while time.time() < deadline:
                runs = (
                    ui.get("api/flows/LiveFlow/runs")["runs"]
                    if Path(root, "flows").exists()
                    else []
                )
                if not runs:
                    time.sleep(0.2)
                    continue
                tasks = ui.get(f"api/runs/LiveFlow/{runs[0]['id']}/tasks?step=start")["tasks"]
                if not tasks:
                    time.sleep(0.2)
                    continue
                log = ui.get(f"api/tasks/{tasks[0]['pathspec']}/logs/stdout?offset={offset}")
                statuses.add((runs[0]["status"], log["final"]))
                seen.append(log["text"])
                offset = log["offset"]
                if log["final"]:
                    break
                time.sleep(0.3)
            # lines arrived in several pieces while the run was still running
            assert ("running", False) in statuses
            assert len([s for s in seen if s]) >= 2
            assert "".join(seen) == "".join(f"tick {i}\n" for i in range(40))
    finally:
        run.wait(timeout=120)
    assert run.returncode == 0, run.stderr.read()


def test_api_on_s3(moto_server, tmp_path):
    bucket = new_bucket_name()
    create_bucket("s3", moto_server.url, bucket)
    root = root_url("s3", bucket, "team")
    env = client_env("s3", moto_server.url)
    (tmp_path / "uiflow.py").write_text(FLOW)
    _run_flow(tmp_path, root, "--datastore", "s3", "run", env=env)
    with UiServer("--datastore", "s3", "--datastore-root", root, env=env) as ui:
        assert ui.get("api/flows") == {"flows": [{"name": "UiFlow", "runs": 1}]}
        (run,) = ui.get("api/flows/UiFlow/runs")["runs"]
        assert run["status"] == "succeeded"
        view = ui.get(f"api/runs/UiFlow/{run['id']}")
        assert view["steps"][1]["retries"] == 1
        steps = {s["name"]: s for s in view["steps"]}
        start = ui.get(f"api/tasks/UiFlow/{run['id']}/start/{steps['start']['first_task']}")
        assert {a["name"]: a["preview"] for a in start["artifacts"]}["shards"] == "[0, 1, 2]"
        log = ui.get(f"api/tasks/{start['pathspec']}/logs/stdout")
        assert "<script>alert('log')</script>" in log["text"]
        end = f"api/tasks/UiFlow/{run['id']}/end/{steps['end']['first_task']}"
        assert ui.request(end + "/cards/default.html").status == 200
        assert ui.request(f"api/runs/UiFlow/{run['id']}/dag.svg").status == 200
        assert not (tmp_path / ".metaflowlike").exists()


def test_previews_are_made_at_save_time_for_plain_data_only():
    from metaflowlike.datastore.preview import PREVIEW_CHARS, json_preview

    assert (
        json_preview({"a": [1, 2.0, None, True], "b": "x"})
        == "{'a': [1, 2.0, None, True], 'b': 'x'}"
    )
    assert json_preview((1, "two")) == "(1, 'two')"
    assert json_preview("y" * 10_000) == "'" + "y" * (PREVIEW_CHARS - 2) + "…"
    assert len(json_preview(list(range(150)))) == PREVIEW_CHARS
    assert json_preview(list(range(100_000))) is None  # too many elements to check
    assert json_preview({1: "int key"}) is None  # not JSON: keys must be strings
    assert json_preview(object()) is None
    assert json_preview(b"bytes") is None

    class Loud(str):
        def __repr__(self):
            raise AssertionError("a subclass's repr must never run")

    assert json_preview([Loud("x")]) is None
    assert json.loads(json.dumps(json_preview([[[[[[[[[[1]]]]]]]]]]))) is None  # too deep


def test_tutorial_03_browses_its_runs(tmp_path):
    """The tutorial's section on `metaflowlike ui`, as its README says: run the flow,
    start the browser in the same folder with no option, find the run and its model."""
    folder = tmp_path / "03"
    shutil.copytree(REPO / "tutorials" / "03-artifacts-in-a-notebook", folder)
    env = {k: v for k, v in os.environ.items() if not k.startswith("METAFLOWLIKE_")}
    subprocess.run(
        [sys.executable, "train.py", "run"], cwd=folder, env=env, check=True,
        capture_output=True, timeout=300,
    )  # fmt: skip
    with UiServer(cwd=str(folder)) as ui:
        (run,) = ui.get("api/flows/TrainFlow/runs")["runs"]
        assert run["status"] == "succeeded"
        steps = {s["name"]: s for s in ui.get(f"api/runs/TrainFlow/{run['id']}")["steps"]}
        assert steps["fit"]["tasks"] == 3 and len(steps) == 4
        end = ui.get(f"api/tasks/TrainFlow/{run['id']}/end/{steps['end']['first_task']}")
        model = {a["name"]: a["preview"] for a in end["artifacts"]}["model"]
        assert model.startswith("{'a': ") and "'noise': " in model
        assert [c["type"] for c in end["cards"]] == ["default"]


def test_client_artifacts_carry_their_saved_preview(make_flow):
    flow = make_flow(
        two_steps(
            "PreviewFlow",
            """
            self.config = {"lr": 0.1, "layers": [64, 32]}
            self.blob = bytes(100)
            """,
        )
    )
    flow.run("run")
    from metaflowlike import Flow

    end = Flow("PreviewFlow").latest_run["end"].task
    # carried from start to end by key, with the preview made when start saved it
    assert end.artifacts.config.preview == "{'lr': 0.1, 'layers': [64, 32]}"
    assert end.artifacts.blob.preview is None
