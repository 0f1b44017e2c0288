"""The model registry: versions with lineage, aliases from the client and the CLI,
loading by alias in a later flow, and concurrent alias moves losing nothing."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from tests.cloud_servers import client_env, create_bucket, new_bucket_name, root_url

TRAIN = """
import os
from metaflowlike import FlowSpec, Parameter, current, step


class TrainRanker(FlowSpec):
    weight = Parameter("weight", default=1.0)

    @step
    def start(self):
        current.track("val_loss", 1.0 / self.weight)
        self.model = {"weight": self.weight}
        saved = current.model.save(self.model, name="ranker", metadata={"note": "dict"})
        self.version = saved.version
        os.makedirs("export", exist_ok=True)
        with open("export/weights.txt", "w") as f:
            f.write(str(self.weight))
        current.model.save("export", name="ranker-files")
        self.next(self.end)

    @step
    def end(self):
        pass


if __name__ == "__main__":
    TrainRanker()
"""

SCORE = """
from metaflowlike import FlowSpec, Model, step


class ScoreWithChampion(FlowSpec):
    @step
    def start(self):
        champion = Model("ranker@champion")
        self.used_version = champion.version
        self.weight = champion.load()["weight"]
        self.next(self.end)

    @step
    def end(self):
        pass


if __name__ == "__main__":
    ScoreWithChampion()
"""


def _console(root: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess:
    """The ``metaflowlike`` console script, run the way a user runs it."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("METAFLOWLIKE_")}
    env.update(METAFLOWLIKE_DATASTORE_ROOT=str(root), METAFLOWLIKE_USER="alice")
    script = Path(sys.executable).parent / "metaflowlike"
    proc = subprocess.run([str(script), *args], env=env, capture_output=True, text=True)
    if check and proc.returncode:
        raise AssertionError(f"{args} exited {proc.returncode}\n{proc.stdout}\n{proc.stderr}")
    return proc


def test_versions_lineage_aliases_and_loading_by_alias(make_flow, tmp_path):
    from metaflowlike import Flow, Model, list_models, register_artifact

    train = make_flow(TRAIN)
    train.run("run", "--weight", "2.0")
    train.run("run", "--weight", "4.0")
    assert list_models() == {"ranker": [1, 2], "ranker-files": [1, 2]}
    runs = list(Flow("TrainRanker").runs())
    assert [r["start"].task.data.version for r in runs] == [2, 1]

    first = Model("ranker/1")
    assert first.load() == {"weight": 2.0}
    assert first.metadata == {"note": "dict"}
    lineage = first.lineage
    assert lineage["pathspec"] == runs[1]["start"].task.pathspec
    assert lineage["parameters"] == {"weight": "2.0"}
    assert lineage["metrics"] == {"val_loss": 0.5}
    assert lineage["environment"]["python"].count(".") == 2
    assert Model("ranker").version == 2  # the newest
    folder = Model("ranker-files", version=1).load(str(tmp_path / "restored"))
    assert (Path(folder) / "weights.txt").read_text() == "2.0"

    # aliases from the CLI, loaded by a later flow without a code change
    proc = _console(train.root, "model", "alias", "ranker", "champion", "1")
    assert "ranker@champion -> version 1" in proc.stdout
    score = make_flow(SCORE)
    score.run("run")
    assert Flow("ScoreWithChampion").latest_run.data.weight == 2.0
    Model("ranker/2").set_alias("champion")
    score.run("run")
    assert Flow("ScoreWithChampion").latest_run.data.used_version == 2
    assert Model("ranker@champion").aliases == ["champion"]

    history = _console(train.root, "model", "history", "ranker", "champion").stdout.splitlines()
    assert len(history) == 2
    assert history[0].startswith("1. ") and "alice: -> 1" in history[0]
    assert history[1].endswith("-> 2 from 1")
    shown = _console(train.root, "model", "show", "ranker@champion").stdout
    assert '"version": 2' in shown and '"champion"' in shown
    listed = _console(train.root, "model", "list").stdout
    assert "ranker: versions 1..2; champion=2" in listed

    # an artifact a run already stored becomes a version without copying its bytes
    artifact = runs[0]["start"].task["model"]
    registered = register_artifact(artifact, name="ranker", metadata={"from": "artifact"})
    assert registered.version == 3
    assert registered._version.key == artifact.sha
    assert Model("ranker/3").load() == {"weight": 4.0}
    assert Model("ranker/3").lineage["artifact"] == "model"


def test_mistakes_name_what_is_wrong(make_flow):
    from metaflowlike import Model
    from metaflowlike.tracking.registry import ModelError

    make_flow(TRAIN).run("run")
    with pytest.raises(ModelError, match='no model "rankr".*Did you mean "ranker"'):
        Model("rankr")
    with pytest.raises(ModelError, match="has no version 9: it has versions 1"):
        Model("ranker/9")
    with pytest.raises(ModelError, match='has no alias "champion"'):
        Model("ranker@champion")
    proc = _console(Path(os.environ["METAFLOWLIKE_DATASTORE_ROOT"]), "model", "alias",
                    "ranker", "champion", "5", check=False)  # fmt: skip
    assert proc.returncode == 1
    assert "has no version 5" in proc.stderr and "Traceback" not in proc.stderr


MOVER = """
import sys
from metaflowlike import client
from metaflowlike.tracking.registry import Registry

kind, root, version, count = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
client.set_datastore(kind, root)
registry = Registry(client.get_datastore())
sys.stdin.readline()  # both processes start moving together
for _ in range(count):
    registry.move_alias("ranker", "champion", version, f"mover{version}")
"""


@pytest.mark.parametrize("kind", ["local", "s3"])
def test_concurrent_alias_moves_lose_no_update(kind, make_flow, tmp_path, request, monkeypatch):
    from metaflowlike import client
    from metaflowlike.tracking.registry import Registry

    train = make_flow(TRAIN)
    env = {k: v for k, v in os.environ.items() if not k.startswith("METAFLOWLIKE_")}
    if kind == "local":
        root = str(train.root)
    else:
        server = request.getfixturevalue("moto_server")
        bucket = new_bucket_name()
        create_bucket("s3", server.url, bucket)
        root = root_url("s3", bucket, "reg")
        env.update(client_env("s3", server.url))
    for weight in ("1", "2"):  # two versions of "ranker" to move the alias between
        subprocess.run(
            [sys.executable, str(train.path), "--datastore", kind, "--datastore-root", root,
             "run", "--weight", weight],
            cwd=tmp_path, env=env, check=True, capture_output=True, timeout=300,
        )  # fmt: skip
    (tmp_path / "mover.py").write_text(textwrap.dedent(MOVER))
    count = 15
    movers = [
        subprocess.Popen(
            [sys.executable, "mover.py", kind, root, str(v), str(count)],
            cwd=tmp_path,
            env=env,
            stdin=subprocess.PIPE,
            text=True,
        )  # fmt: skip
        for v in (1, 2)
    ]
    for p in movers:
        p.stdin.write("go\n")
        p.stdin.flush()
    for p in movers:
        p.stdin.close()
        assert p.wait(timeout=300) == 0
    if kind == "s3":
        for name, value in client_env("s3", server.url).items():
            monkeypatch.setenv(name, value)
    client.set_datastore(kind, root)
    moves = Registry(client.get_datastore()).history("ranker", "champion")
    assert [m.seq for m in moves] == list(range(1, 2 * count + 1))
    assert sorted(m.version for m in moves) == [1] * count + [2] * count
    assert all(m.user == f"mover{m.version}" for m in moves)
    # each move names the version it replaced: the moves form one unbroken chain
    assert [m.previous for m in moves] == [None] + [m.version for m in moves[:-1]]
