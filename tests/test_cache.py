"""Step caching (``run --cache``, ``@cache``), ``cache explain`` and ``cache clear``,
through the real command line, checked through the client and the datastore."""

from __future__ import annotations

import os
import re
import sys
import textwrap

import pytest

from metaflowlike import Run

from .cloud_servers import SERVER_FIXTURES, client_env, create_bucket, new_bucket_name, root_url

FLOW = """
from metaflowlike import FlowSpec, Parameter, step
from helpers import double


class CacheFlow(FlowSpec):
    alpha = Parameter("alpha", default=1)
    beta = Parameter("beta", default=1)

    @step
    def start(self):
        self.items = [1, 2, 3]
        self.note = "n1"
        self.next(self.square, foreach="items")

    @step
    def square(self):
        self.sq = double(self.input) + self.alpha
        self.next(self.join)

    @step
    def join(self, inputs):
        self.total = sum(i.sq for i in inputs)
        self.note = inputs[0].note
        self.next(self.scale)

    @step
    def scale(self):
        self.out = self.total * self.beta
        self.next(self.end)

    @step
    def end(self):
        # a set literal compiles to a frozenset constant, whose order follows the hash
        # seed of each process: the key must not
        print("out", self.out, self.note, self.note in {"n1", "n2", "n3", "n4"})


if __name__ == "__main__":
    CacheFlow()
"""

HELPERS = """
def double(x):
    return x * 2
"""


def _executed(proc) -> set[str]:
    """Steps whose tasks really started (not cached) in a run's console output."""
    return set(re.findall(r"\[\d+/(\w+)/\d+\] Task is starting", proc.stdout))


def _cached(proc) -> list[tuple[str, str]]:
    return re.findall(r"\[\d+/(\w+)/\d+\] Not executed: cached from (\S+)\.", proc.stdout)


def _run_id(proc) -> str:
    return re.search(r"run-id (\d+)", proc.stdout).group(1)


@pytest.fixture
def flow(make_flow):
    f = make_flow(FLOW, name="flow.py")
    (f.path.parent / "helpers.py").write_text(textwrap.dedent(HELPERS))
    return f


def _edit(path, old: str, new: str) -> None:
    text = path.read_text()
    assert old in text
    path.write_text(text.replace(old, new))


def test_rerun_hits_everything_and_clones_artifacts_by_reference(flow):
    first = flow.run("run", "--cache")
    assert _executed(first) == {"start", "square", "join", "scale", "end"}
    blobs_before = sorted(p for p in (flow.root / "data").rglob("*") if p.is_file())
    second = flow.run("run", "--cache")
    assert _executed(second) == set()
    assert len(_cached(second)) == 7
    first_id, second_id = _run_id(first), _run_id(second)
    assert ("start", f"CacheFlow/{first_id}/start/1") in _cached(second)
    # no artifact byte was written: the same blobs, the same keys
    assert sorted(p for p in (flow.root / "data").rglob("*") if p.is_file()) == blobs_before
    a, b = Run(f"CacheFlow/{first_id}"), Run(f"CacheFlow/{second_id}")
    assert b.successful and b.data.out == a.data.out == 15
    assert b["end"].task.stdout == a["end"].task.stdout
    for name in ("out", "total", "note", "alpha"):
        assert b["end"].task[name].sha == a["end"].task[name].sha


def test_helper_change_misses_and_formatting_change_hits(flow):
    flow.run("run", "--cache")
    helpers = flow.path.parent / "helpers.py"
    # comments, blank lines and spacing only: same code, every task hits
    helpers.write_text("\n\n# doubling\ndef double( x ):\n\n    return x*2  # twice\n")
    _edit(
        flow.path, "        self.total = sum(", "        # a comment\n\n        self.total = sum("
    )
    again = flow.run("run", "--cache")
    assert _executed(again) == set()
    # a real change in the helper the step calls: that step misses, and so does what
    # reads its (now different) output
    helpers.write_text("def double(x):\n    return x * 3\n")
    changed = flow.run("run", "--cache")
    assert _executed(changed) == {"square", "join", "scale", "end"}
    explained = flow.run("cache", "explain", "square").stdout
    assert explained.count(": miss") == 3
    assert "code: helpers.double changed" in explained


def test_changed_parameter_misses_only_where_it_is_read(flow):
    flow.run("run", "--cache")
    # beta is read by `scale` only; `end` reads scale's output, which changed
    proc = flow.run("run", "--cache", "--beta", "2")
    assert _executed(proc) == {"scale", "end"}
    assert Run(f"CacheFlow/{_run_id(proc)}").data.out == 30
    explained = flow.run("cache", "explain", "scale").stdout
    assert "parameters: beta changed" in explained
    assert "input artifacts: out changed" in flow.run("cache", "explain", "end").stdout
    # back to beta=1: the first run's tasks are still in the cache
    assert _executed(flow.run("run", "--cache", "--beta", "1")) == set()


def test_upstream_rerun_with_same_bytes_keeps_downstream_hits(flow):
    flow.run("run", "--cache")
    # `start` changes (so it reruns) but produces the same bytes: nothing else reruns
    _edit(flow.path, 'self.note = "n1"', 'self.note = "".join(["n", "1"])')
    proc = flow.run("run", "--cache")
    assert _executed(proc) == {"start"}
    # now it produces different bytes for `note`: the splits do not read it and hit, the
    # join reads every input artifact, `scale` reads only `total` (unchanged), `end` reads it
    _edit(flow.path, 'self.note = "".join(["n", "1"])', 'self.note = "n2"')
    proc = flow.run("run", "--cache")
    assert _executed(proc) == {"start", "join", "end"}
    run = Run(f"CacheFlow/{_run_id(proc)}")
    assert "out 15 n2 True" in run["end"].task.stdout
    # the cached `scale` task still hands the *new* note on, as running it would have
    assert run["scale"].task.data.note == "n2"
    assert "input artifacts: note changed" in flow.run("cache", "explain", "end").stdout


def test_foreach_reruns_only_changed_splits(flow):
    flow.run("run", "--cache")
    _edit(flow.path, "self.items = [1, 2, 3]", "self.items = [1, 20, 3]")
    proc = flow.run("run", "--cache")
    started = re.findall(r"\[\d+/square/(\d+)\] Task is starting", proc.stdout)
    assert len(started) == 1
    assert [s for s, _ in _cached(proc)].count("square") == 2
    run = Run(f"CacheFlow/{_run_id(proc)}")
    assert sorted(t.data.sq for t in run["square"]) == [3, 7, 41]
    explained = flow.run("cache", "explain", "square").stdout
    assert explained.count(": hit") == 2
    assert re.search(r"miss .*changed: foreach\.\n    foreach item: 0:start changed", explained)


DECORATED = """
from metaflowlike import FlowSpec, Config, catch, step, retry, cache


class DecoFlow(FlowSpec):
    settings = Config("settings", default_value={"lr": 0.1})

    @cache
    @retry(times=1)
    @step
    def start(self):
        self.lr = self.settings["lr"]
        self.next(self.side)

    @cache(enabled=False)
    @step
    def side(self):
        print("side effect")
        self.next(self.flaky)

    @catch(var="err")
    @step
    def flaky(self):
        import os
        if os.environ.get("FAIL_FLAKY"):
            raise ValueError("boom")
        self.fine = True
        self.next(self.end)

    @step
    def end(self):
        pass


if __name__ == "__main__":
    DecoFlow()
"""


def test_decorator_opt_in_opt_out_caught_failures_and_explain_reasons(make_flow):
    f = make_flow(DECORATED)
    # without --cache only the @cache step is cached
    f.run("run")
    assert _executed(f.run("run")) == {"side", "flaky", "end"}
    # with --cache: @cache(enabled=False) always runs; a @catch-caught failure is
    # recorded but never reused
    f.run("run", "--cache", env={"FAIL_FLAKY": "1"})
    proc = f.run("run", "--cache", env={"FAIL_FLAKY": "1"})
    assert _executed(proc) == {"side", "flaky"}
    explained = f.run("cache", "explain", "flaky").stdout
    assert "it did not succeed, so it is not reused" in explained
    assert "caching was off" in f.run("cache", "explain", "side").stdout
    # decorator arguments are part of the key
    _edit(f.path, "@retry(times=1)", "@retry(times=2)")
    f.run("run", "--cache")
    assert "decorators: retry changed" in f.run("cache", "explain", "start").stdout
    # so is the environment (the run's configs)
    f.run("--config-value", "settings", '{"lr": 0.5}', "run", "--cache")
    assert "environment: configs changed" in f.run("cache", "explain", "start").stdout


def test_clear_and_explain_user_mistakes(flow):
    flow.run("run", "--cache")
    proc = flow.run("cache", "clear", "square")
    assert "Removed 3 cache entries of CacheFlow/square." in proc.stdout
    again = flow.run("run", "--cache")
    assert _executed(again) == {"square"}
    assert "Removed 7 cache entries" in flow.run("cache", "clear").stdout
    assert (
        "no earlier task"
        in flow.run("cache", "explain", "square", "--run-id", _run_id(again)).stdout
    )
    bad = flow.run("cache", "explain", "squar", check=False)
    assert bad.returncode == 1 and "Traceback" not in bad.stderr
    assert 'no step "squar"' in bad.stderr and 'Did you mean "square"' in bad.stderr
    bad = flow.run("cache", "explain", "square", "--run-id", "12345", check=False)
    assert bad.returncode == 1 and "No run CacheFlow/12345" in bad.stderr


@pytest.mark.parametrize("kind", ["s3", "azure", "gs"])
def test_cache_works_on_object_stores(kind, request, tmp_path):
    import subprocess

    server = request.getfixturevalue(SERVER_FIXTURES[kind])
    bucket = new_bucket_name()
    create_bucket(kind, server.url, bucket)
    root = root_url(kind, bucket, "c")
    (tmp_path / "flow.py").write_text(textwrap.dedent(FLOW))
    (tmp_path / "helpers.py").write_text(textwrap.dedent(HELPERS))
    env = {k: v for k, v in os.environ.items() if not k.startswith("METAFLOWLIKE_")}
    env.update(client_env(kind, server.url))

    def run(*args):
        cmd = [sys.executable, "flow.py", "--datastore", kind, "--datastore-root", root, *args]
        proc = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True)
        assert proc.returncode == 0, proc.stderr
        return proc

    run("run", "--cache")
    proc = run("run", "--cache", "--beta", "3")
    assert _executed(proc) == {"scale", "end"}
    assert "out 45 n1 True" in proc.stdout
    assert "parameters: beta changed" in run("cache", "explain", "scale").stdout


ESCAPE = """
from metaflowlike import FlowSpec, step


class PeekFlow(FlowSpec):
    @step
    def start(self):
        self.a = 1
        self.b = 1
        self.next(self.plain)

    @step
    def plain(self):  # reads `a` only, provably
        self.x = self.a + 1
        self.next(self.peek)

    @step
    def peek(self):  # reads through getattr: nothing can be proved, everything counts
        self.y = getattr(self, "a") + 1
        self.next(self.end)

    @step
    def end(self):
        pass


if __name__ == "__main__":
    PeekFlow()
"""


def test_unread_artifacts_count_unless_provably_unread(make_flow):
    f = make_flow(ESCAPE)
    f.run("run", "--cache")
    _edit(f.path, "self.b = 1", "self.b = 2")
    proc = f.run("run", "--cache")
    # `end` reads nothing, so it hits; `peek` cannot be proved not to read `b`
    assert _executed(proc) == {"start", "peek"}
    assert "input artifacts: b changed" in f.run("cache", "explain", "peek").stdout


RETRIED = """
from metaflowlike import FlowSpec, current, retry, step


class RetryFlow(FlowSpec):
    @retry(times=2)
    @step
    def start(self):
        import os
        if current.retry_count < int(os.environ.get("FAILURES", "0")):
            raise RuntimeError("flaky")
        self.value = 1
        self.next(self.end)

    @step
    def end(self):
        pass


if __name__ == "__main__":
    RetryFlow()
"""


def test_failed_attempts_are_never_reused_but_a_retried_success_is(make_flow):
    f = make_flow(RETRIED)
    failed = f.run("run", "--cache", env={"FAILURES": "3"}, check=False)
    assert failed.returncode == 1
    assert "did not succeed" in f.run("cache", "explain", "start").stdout
    # the failure was not indexed: the task runs again, fails once, succeeds on retry
    proc = f.run("run", "--cache", env={"FAILURES": "1"})
    assert "Task is starting (retry 1)" in proc.stdout and not _cached(proc)
    # that success is reused
    again = f.run("run", "--cache", env={"FAILURES": "1"})
    assert _executed(again) == set()
    assert [s for s, _ in _cached(again)] == ["start", "end"]


MODEL_FLOW = """
from metaflowlike import FlowSpec, step
from models import Scaler


class ModelFlow(FlowSpec):
    @step
    def start(self):
        self.model = Scaler(2)
        self.next(self.use)

    @step
    def use(self):  # never names Scaler or models: the object comes from an artifact
        self.scored = self.model.score(3)
        self.next(self.end)

    @step
    def end(self):
        print("scored", self.scored)


if __name__ == "__main__":
    ModelFlow()
"""

MODELS = """
class Scaler:
    def __init__(self, factor):
        self.factor = factor

    def score(self, x):
        return x * self.factor
"""


def test_methods_of_project_objects_held_in_artifacts_are_part_of_the_key(make_flow):
    f = make_flow(MODEL_FLOW)
    models = f.path.parent / "models.py"
    models.write_text(textwrap.dedent(MODELS))
    f.run("run", "--cache")
    models.write_text(textwrap.dedent(MODELS).replace("x * self.factor", "x + self.factor"))
    proc = f.run("run", "--cache")
    # `start` names Scaler, so its class counts; `use` calls .score() on an artifact
    assert {"start", "use"} <= _executed(proc)
    assert "scored 5" in proc.stdout
    assert "code: models.Scaler.score changed" in f.run("cache", "explain", "use").stdout


def test_resume_with_cache_serves_the_steps_it_reruns_from_the_cache(flow):
    first = flow.run("run", "--cache")
    proc = flow.run("resume", "--cache", "scale")
    # resume reuses start..join by position; scale and end, rerun, come from the cache
    assert "Cloned from" in proc.stdout
    assert [s for s, _ in _cached(proc)] == ["scale", "end"]
    assert all(origin.split("/")[1] == _run_id(first) for _, origin in _cached(proc))
    assert Run(f"CacheFlow/{_run_id(proc)}").data.out == 15


TRACKED = """
import os

from metaflowlike import FlowSpec, card, current, step
from metaflowlike.cards import Markdown


class TrackedFlow(FlowSpec):
    @card(type="blank")
    @step
    def start(self):
        for epoch in range(3):
            current.track("loss", 1.0 / (epoch + 1), step=epoch)
        current.card.append(Markdown("# trained"))
        self.next(self.end)

    @step
    def end(self):
        if os.path.exists("FAIL"):
            raise ValueError("end failed")


if __name__ == "__main__":
    TrackedFlow()
"""


def test_a_reused_task_keeps_its_metrics_and_cards(make_flow):
    """A task served from the cache, or cloned by resume, shows the metric series and the
    cards of the task it copies, like its logs and artifacts."""
    flow = make_flow(TRACKED, name="tracked.py")
    flow.run("run", "--cache")
    cached = flow.run("run", "--cache")
    assert [c[0] for c in _cached(cached)] == ["start", "end"]
    (flow.path.parent / "FAIL").write_text("")
    assert flow.run("run", check=False).returncode != 0
    (flow.path.parent / "FAIL").unlink()
    resumed = flow.run("resume")
    for run_id in (_run_id(cached), _run_id(resumed)):
        task = Run(f"TrackedFlow/{run_id}")["start"].task
        assert task.metrics["loss"].values == [1.0, 0.5, 1.0 / 3], run_id
        assert "trained" in task.cards[0].html, run_id
