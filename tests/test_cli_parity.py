"""Metaflow's command-line habits: top-level options, dump/logs/output-dot/version,
--help, the datastore found from a sub-folder, and clear errors for missing names."""

from __future__ import annotations

import os
import pickle
import subprocess
import sys
import textwrap

import pytest

from metaflowlike import Flow

FLOW = """
from metaflowlike import FlowSpec, Parameter, JSONType, step

class CliFlow(FlowSpec):
    zeta = Parameter("zeta", default=1, help="first declared")
    alpha = Parameter("alpha", default=0.5)
    cfg = Parameter("cfg", type=JSONType, default='{"a": 1}')
    who = Parameter("who", required=True, help="whose run")

    @step
    def start(self):
        self.x = 1
        self.words = ["a", "b"]
        print("hello", self.who)
        self.next(self.end)

    @step
    def end(self):
        pass

if __name__ == "__main__":
    CliFlow()
"""


def test_metaflow_top_level_options_are_accepted(make_flow):
    flow = make_flow(FLOW)
    top = ("--no-pylint", "--metadata", "local", "--event-logger", "nullSidecarLogger")
    flow.run("run", "--who", "me", top=(*top, "--monitor", "nullSidecarMonitor"))
    assert Flow("CliFlow").latest_run.successful
    bad = flow.run("run", "--who", "me", top=("--metadata", "service"), check=False)
    assert bad.returncode != 0 and "Traceback" not in bad.stderr
    assert "--metadata service" in bad.stderr and "--metadata local" in bad.stderr


def test_help_shows_types_required_and_order(make_flow):
    flow = make_flow(FLOW)
    text = flow.run("run", "--help").stdout
    lines = [line.split()[0] for line in text.splitlines() if line.strip().startswith("--")]
    assert lines[:4] == ["--zeta", "--alpha", "--cfg", "--who"]
    assert "--zeta INTEGER" in text and "--alpha FLOAT" in text and "--cfg JSON" in text
    assert "--who TEXT" in text and "[required]" in text
    top = flow.run("--help").stdout
    assert "  step " not in top and "output-dot" in top and "version" in top


def test_dump_options(make_flow, tmp_path):
    flow = make_flow(FLOW)
    flow.run("run", "--who", "me")
    run = Flow("CliFlow").latest_run
    out = flow.run("dump", f"{run.id}/start", "--include", "x,words").stdout
    assert "x (int" in out and "words (list" in out and "zeta" not in out
    target = tmp_path / "out.pkl"
    flow.run("dump", f"{run.id}/start", "--private", "--file", str(target))
    with open(target, "rb") as f:
        dumped = pickle.load(f)
    task = run["start"].task
    assert dumped[task.pathspec]["words"] == ["a", "b"] and dumped[task.pathspec]["who"] == "me"


def test_output_dot_and_version(make_flow):
    flow = make_flow(FLOW)
    dot = flow.run("output-dot").stdout
    assert dot.startswith('digraph "CliFlow"') and '"start" -> "end"' in dot
    assert flow.run("version").stdout.startswith("metaflowlike ")


def test_datastore_is_found_from_a_subfolder(tmp_path):
    project = tmp_path / "project"
    (project / "notebooks").mkdir(parents=True)
    (project / "flow.py").write_text(textwrap.dedent(FLOW))
    env = {k: v for k, v in os.environ.items() if not k.startswith("METAFLOWLIKE_DATASTORE")}
    env["METAFLOWLIKE_CONFIG"] = str(tmp_path / "no-config.json")
    subprocess.run(
        [sys.executable, "flow.py", "run", "--who", "root"], cwd=project, env=env, check=True,
        capture_output=True,
    )  # fmt: skip
    assert (project / ".metaflowlike").is_dir()
    probe = (
        "from metaflowlike import Flow, get_metadata, namespace\n"
        "namespace(None)\n"
        "print(Flow('CliFlow').latest_run.data.name, get_metadata())\n"
    )
    seen = subprocess.run(
        [sys.executable, "-c", probe], cwd=project / "notebooks", env=env, check=True,
        capture_output=True, text=True,
    )  # fmt: skip
    assert seen.stdout.split() == ["CliFlow", f"local@{project / '.metaflowlike'}"]
    run_id = next(p.name for p in (project / ".metaflowlike" / "flows" / "CliFlow").iterdir())
    logs = subprocess.run(
        [sys.executable, "../flow.py", "logs", f"{run_id}/start"], cwd=project / "notebooks",
        env=env, check=True, capture_output=True, text=True,
    )  # fmt: skip
    assert "hello root" in logs.stdout
    assert not (project / "notebooks" / ".metaflowlike").exists()


def test_metaflow_exception_names_are_ours():
    from metaflowlike import client, exceptions
    from metaflowlike import exception as mfe

    assert mfe.MetaflowException is exceptions.MetaflowlikeException
    assert mfe.MetaflowNotFound is client.MetaflowNotFound
    assert mfe.MetaflowNamespaceMismatch is client.MetaflowNamespaceMismatch
    assert mfe.UnhandledInMergeArtifactsException is exceptions.MergeArtifactsError
    assert issubclass(mfe.MetaflowInternalError, mfe.MetaflowException)
    with pytest.raises(mfe.MetaflowNotFound):
        client.Flow("NoSuchFlowAnywhere")


def test_missing_metaflow_names_say_so_in_one_sentence():
    import metaflowlike
    from metaflowlike.unsupported import METAFLOW_NAMES

    code = "from metaflowlike import trigger_on_finish"
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    last = proc.stderr.strip().splitlines()[-1]
    assert "NotSupportedYet" in last and "does not support" in last and "docs/porting.md" in last
    with pytest.raises(ImportError, match="porting"):
        metaflowlike.__getattr__("trigger")
    # the list stays true: no listed name exists for real, and each says it does not
    for name in METAFLOW_NAMES:
        with pytest.raises(ImportError, match="does not support"):
            getattr(metaflowlike, name)
    from metaflowlike import retry  # noqa: F401 - real names still import

    assert not hasattr(metaflowlike, "not_a_metaflow_name")


def test_a_parent_folder_counts_only_if_it_holds_runs(tmp_path):
    from metaflowlike.config import local_root

    (tmp_path / ".metaflowlike").mkdir()  # e.g. the folder of ~/.metaflowlike/config.json
    (tmp_path / "project" / "notebooks").mkdir(parents=True)
    assert local_root(str(tmp_path / "project" / "notebooks")) == str(
        tmp_path / "project" / "notebooks" / ".metaflowlike"
    )
    (tmp_path / ".metaflowlike" / "flows").mkdir()
    assert local_root(str(tmp_path / "project" / "notebooks")) == str(tmp_path / ".metaflowlike")
