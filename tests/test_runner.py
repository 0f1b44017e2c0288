"""Runner / NBRunner: runs started from Python code, checked through the client."""

from __future__ import annotations

import asyncio
import json
import textwrap

import pytest

from metaflowlike import NBRunner, Runner
from metaflowlike.runner import RunnerError

FLOW = """
import os
from metaflowlike import FlowSpec, step, Parameter, JSONType, current, Config, project

@project(name="runner_test")
class RunnerFlow(FlowSpec):
    alpha = Parameter("alpha", default=1.0)
    learning_rate = Parameter("learning-rate", default=0.1)
    ids = Parameter("ids", separator=",", type=int, default="1")
    opts = Parameter("opts", type=JSONType, default="{}")
    verbose = Parameter("verbose", default=False)
    cfg = Config("cfg", default_value={"k": "default"})

    @step
    def start(self):
        print("hello from start", self.alpha)
        self.result = (self.alpha, self.learning_rate, self.ids, self.opts, self.verbose)
        self.k = self.cfg.k
        self.branch = current.branch_name
        self.next(self.end)

    @step
    def end(self):
        if os.environ.get("FAIL_END") and not os.path.exists("fixed"):
            raise RuntimeError("end is broken")
        self.done = True

if __name__ == "__main__":
    RunnerFlow()
"""


@pytest.fixture
def flow_file(make_flow):
    return make_flow(FLOW, name="runner_flow.py")


def test_run_returns_an_executing_run_with_the_client_run(flow_file):
    with Runner(str(flow_file.path), show_output=False) as runner:
        result = runner.run(
            alpha=0.5, learning_rate=0.2, ids=[3, 4], opts={"a": [1]}, verbose=True, tags=["t1"]
        )
        assert result.status == "successful"
        assert result.returncode == 0
        assert "hello from start 0.5" in result.stdout
        run = result.run
        assert run.successful
        assert run.data.done
        assert run["start"].task.data.result == (0.5, 0.2, [3, 4], {"a": [1]}, True)
        assert "t1" in run.tags


def test_top_level_options_reach_the_command_line(flow_file, tmp_path):
    root = tmp_path / "elsewhere"
    runner = Runner(
        str(flow_file.path),
        show_output=False,
        datastore_root=str(root),
        branch="feat",
        decospecs=["retry:times=0"],
        config_value={"cfg": {"k": "given"}},
    )
    with runner:
        result = runner.run()
        assert result.status == "successful", result.stderr
        data = result.run["start"].task.data
        assert (data.k, data.branch) == ("given", "test.feat")
        assert str(root) in result.run._store.storage.root
        assert "--with" in result.command and "retry:times=0" in result.command


def test_failed_run_and_resume(flow_file):
    with Runner(
        str(flow_file.path),
        show_output=False,
        env={"FAIL_END": "1"},
        cwd=str(flow_file.path.parent),
    ) as runner:
        failed = runner.run(alpha=2.0)
        assert failed.status == "failed"
        assert failed.returncode == 1
        assert "end is broken" in failed.stderr
        assert not failed.run.successful
        (flow_file.path.parent / "fixed").write_text("")
        resumed = runner.resume()
        assert resumed.status == "successful", resumed.stderr
        assert resumed.run.data.done
        assert resumed.run.origin_pathspec == failed.run.pathspec
        assert resumed.run["start"].task.data.result[0] == 2.0


def test_bad_option_is_reported_in_stderr(flow_file):
    with Runner(str(flow_file.path), show_output=False) as runner:
        result = runner.run(no_such_param=1)
        assert result.status == "failed"
        assert "no_such_param" in result.stderr or "no-such-param" in result.stderr
        assert result.run is None


def test_missing_flow_file_is_a_clear_error(tmp_path):
    with pytest.raises(RunnerError, match="does not exist"):
        Runner(str(tmp_path / "nope.py"))


def test_async_run_streams_logs_and_waits(flow_file):
    async def main():
        with Runner(str(flow_file.path), show_output=False) as runner:
            executing = await runner.async_run(alpha=3.0)
            assert executing.run_id is not None
            lines = [line async for _, line in executing.stream_log("stdout")]
            await executing.wait()
            return executing, lines

    executing, lines = asyncio.run(main())
    assert executing.status == "successful"
    assert any("hello from start 3.0" in line for line in lines)
    assert executing.run.data.done


def test_async_resume(flow_file):
    async def main():
        with Runner(
            str(flow_file.path),
            show_output=False,
            env={"FAIL_END": "1"},
            cwd=str(flow_file.path.parent),
        ) as runner:
            first = await runner.async_run()
            await first.wait()
            (flow_file.path.parent / "fixed").write_text("")
            second = await runner.async_resume()
            await second.wait()
            return first, second

    first, second = asyncio.run(main())
    assert (first.status, second.status) == ("failed", "successful")
    assert second.run.data.done


NOTEBOOK_CELL = """
from metaflowlike import FlowSpec, step, Parameter, NBRunner

class NotebookFlow(FlowSpec):
    alpha = Parameter("alpha", default=1)

    @step
    def start(self):
        self.doubled = self.alpha * 2
        self.next(self.end)

    @step
    def end(self):
        print("notebook flow done")

run = NBRunner(NotebookFlow, show_output=False).nbrun(alpha=myalpha)
"""


def test_nbrunner_in_an_executed_notebook(make_flow, tmp_path):
    import nbformat
    from nbclient import NotebookClient

    make_flow("")  # points this test's datastore root at a temporary folder
    nb = nbformat.v4.new_notebook()
    nb.cells = [
        nbformat.v4.new_code_cell("myalpha = 21"),
        nbformat.v4.new_code_cell(textwrap.dedent(NOTEBOOK_CELL)),
        nbformat.v4.new_code_cell(
            "import json\nprint(json.dumps([run.successful, run['start'].task.data.doubled]))"
        ),
    ]
    nb.metadata["kernelspec"] = {
        "name": "python3",
        "display_name": "Python 3",
        "language": "python",
    }
    client = NotebookClient(
        nb, timeout=120, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}
    )
    client.execute()
    out = "".join(o.get("text", "") for o in nb.cells[2].outputs)
    assert json.loads(out) == [True, 42]

    from metaflowlike import Flow

    assert Flow("NotebookFlow").latest_run.data.doubled == 42


def test_nbrunner_outside_a_notebook_says_what_to_use():
    from metaflowlike import FlowSpec

    class Plain(FlowSpec):
        pass

    with pytest.raises(RunnerError, match="outside a notebook use"):
        NBRunner(Plain)
