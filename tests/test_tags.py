"""Tags after the fact: `tag add|remove|replace|list` and `run.add_tags()` & co.,
with Metaflow's rules (system tags immutable) and no lost update between writers."""

from __future__ import annotations

import subprocess
import sys

import pytest

from metaflowlike import Flow, Run, namespace
from metaflowlike.exception import MetaflowTaggingError
from tests.flows import two_steps

TAG_FLOW = two_steps("TagFlow", "self.x = 1")

ENV = {"METAFLOWLIKE_USER": "tagger"}


def _run(flow, *tags):
    args = ["run", *[a for t in tags for a in ("--tag", t)]]
    flow.run(*args, env=ENV)
    namespace(None)
    return Flow("TagFlow").latest_run


def test_client_add_remove_replace(make_flow):
    run = _run(make_flow(TAG_FLOW), "given")
    assert run.user_tags == {"given"} and {"user:tagger", "given"} <= run.tags
    run.add_tag("a")
    run.add_tags(["b", "c"])
    run.remove_tag("given")
    run.replace_tag("a", "a2")
    run.replace_tags(["b"], ["b2", "b3"])
    assert run.user_tags == {"a2", "b2", "b3", "c"}
    # a fresh object, a task and the run filter see the same tags
    fresh = Run(run.pathspec)
    assert fresh.user_tags == run.user_tags == fresh["start"].task.user_tags
    assert fresh.system_tags == run.system_tags and "user:tagger" in fresh.system_tags
    assert [r.id for r in Flow("TagFlow").runs("b3", "c")] == [run.id]
    assert list(Flow("TagFlow").runs("given")) == []
    namespace("b2")  # a namespace may be a user tag added later
    assert Flow("TagFlow").latest_run == run


def test_system_tags_are_immutable(make_flow):
    run = _run(make_flow(TAG_FLOW))
    with pytest.raises(MetaflowTaggingError, match="user:tagger"):
        run.remove_tag("user:tagger")
    with pytest.raises(MetaflowTaggingError, match="user:tagger"):
        run.replace_tag("user:tagger", "x")
    run.add_tag("user:tagger")  # adding a system tag is a no-op, as in Metaflow
    assert run.user_tags == frozenset()
    for bad, why in [("", "empty"), ("x" * 501, "500"), (3, "not text"), ("a\nb", "control")]:
        with pytest.raises(MetaflowTaggingError, match=why):
            run.add_tag(bad)
    with pytest.raises(MetaflowTaggingError, match="list of tags"):
        run.add_tags("abc")
    assert Run(run.pathspec).system_tags == run.system_tags


def test_tag_cli(make_flow):
    flow = make_flow(TAG_FLOW)
    run = _run(flow)
    out = flow.run("tag", "add", "--run-id", run.id, "one", "two", env=ENV).stdout
    assert "user tags: one, two" in out
    flow.run("tag", "replace", "one", "three", env=ENV)  # default: my latest run
    flow.run("tag", "remove", "--run-id", run.id, "two", env=ENV)
    assert Run(run.pathspec).user_tags == {"three"}
    listed = flow.run("tag", "list", env=ENV).stdout
    assert f"TagFlow/{run.id}" in listed and "user tags: three" in listed
    assert "system tags:" in listed and "user:tagger" in listed
    hidden = flow.run("tag", "list", "--hide-system-tags", env=ENV).stdout
    assert "system tags" not in hidden
    other = flow.run("tag", "list", env={"METAFLOWLIKE_USER": "someone"}).stdout
    assert run.id not in other and "No runs" in other
    assert run.id in flow.run("tag", "list", "--all", env={"METAFLOWLIKE_USER": "x"}).stdout
    bad = flow.run("tag", "remove", "--run-id", run.id, "user:tagger", check=False, env=ENV)
    assert bad.returncode != 0 and "Traceback" not in bad.stderr
    assert "Invalid tag change" in bad.stderr and "user:tagger" in bad.stderr


def test_concurrent_taggers_lose_nothing(make_flow):
    run = _run(make_flow(TAG_FLOW))
    script = (
        "import sys\n"
        "from metaflowlike import Run, namespace\n"
        "namespace(None)\n"
        "run = Run(sys.argv[1])\n"
        "for i in range(5):\n"
        "    run.add_tag(f'w{sys.argv[2]}-{i}')\n"
        "run.remove_tag(f'w{sys.argv[2]}-0')\n"
    )
    procs = [
        subprocess.Popen([sys.executable, "-c", script, run.pathspec, str(w)]) for w in range(6)
    ]
    assert [p.wait(timeout=120) for p in procs] == [0] * 6
    expected = {f"w{w}-{i}" for w in range(6) for i in range(1, 5)}
    assert Run(run.pathspec).user_tags == expected


@pytest.mark.parametrize("kind", ["s3", "azure", "gs"])
def test_tag_changes_on_object_stores(kind, cloud_root):
    """The same rules and the same no-lost-update property on each cloud backend,
    against its local emulator: many threads tag one run at once."""
    from concurrent.futures import ThreadPoolExecutor

    from metaflowlike import client, config
    from metaflowlike.datastore.records import RunRecord
    from metaflowlike.tagging import TagStore

    root = cloud_root(kind)
    fds = config.open_datastore(None, root)
    record = RunRecord(
        flow="CloudTags", run_id="1", user="u", tags=["user:u", "first"], user_tags=["first"]
    )
    fds.write_run(record)

    def tag(i: int) -> None:
        TagStore(config.open_datastore(None, root)).mutate("CloudTags", "1", record, add=[f"t{i}"])

    with ThreadPoolExecutor(8) as pool:
        list(pool.map(tag, range(16)))
    client.set_datastore(None, root)
    client.namespace(None)
    try:
        run = Run("CloudTags/1")
        assert run.user_tags == {"first", *(f"t{i}" for i in range(16))}
        run.remove_tags(["first", "t0"])
        with pytest.raises(MetaflowTaggingError):
            run.remove_tag("user:u")
        assert Run("CloudTags/1").user_tags == {f"t{i}" for i in range(1, 16)}
        assert [r.id for r in Flow("CloudTags").runs("t5")] == ["1"]
    finally:
        client.set_datastore()
        client.default_namespace()
