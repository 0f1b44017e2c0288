"""Process-globals survive a fork: tasks forked by the runtime start from a clean slate.

The runtime builds things before it forks its tasks (the content store's hashing pool
when it stores a large parameter, SDK clients, caches). A forked child inherits those
objects but not the threads behind them, so each must be reset in the child. These
tests run the cases that used to hang under the default fork launcher.
"""

from __future__ import annotations

import os

import pytest

from metaflowlike import Flow

pytestmark = pytest.mark.timeout(300)

MB = 1 << 20

INCLUDE_FLOW = """
from metaflowlike import FlowSpec, IncludeFile, step

class BigIncludeFlow(FlowSpec):
    blob = IncludeFile("blob", is_text=False, default=@PATH@)

    @step
    def start(self):
        self.n = len(self.blob)
        self.next(self.end)

    @step
    def end(self):
        print("size", self.n)

if __name__ == "__main__":
    BigIncludeFlow()
"""


@pytest.mark.parametrize("launcher", ["fork", "subprocess"])
def test_a_large_include_file_is_read_in_a_forked_task(make_flow, tmp_path, launcher):
    # 20 MiB is above the size from which the content store hashes on a thread pool,
    # which the runtime creates (saving the parameter) before it forks the tasks.
    data = tmp_path / "blob.bin"
    data.write_bytes(os.urandom(20 * MB))
    flow = make_flow(INCLUDE_FLOW.replace("@PATH@", repr(str(data))))
    flow.run("run", "--launcher", launcher, timeout=120)
    run = Flow("BigIncludeFlow").latest_run
    assert run.successful
    assert run["start"].task.data.n == 20 * MB
    assert run["end"].task.data.blob == data.read_bytes()
