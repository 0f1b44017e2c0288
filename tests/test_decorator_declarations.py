"""A decorator the core has never heard of takes part in gangs and step caching by what it
declares (``gang``, ``caches()``, ``in_cache_key``), exactly as ``@parallel`` and
``@cache`` do. Real flows run as subprocesses and read back through the client."""

from __future__ import annotations

import re

from metaflowlike import Flow

DECLARING_FLOW = """
import os, time
from metaflowlike import FlowSpec, StepDecorator, make_decorator, step


class Spmd(StepDecorator):
    \"\"\"A gang of its own: its members start together and wait for one another.\"\"\"

    name = "spmd"
    gang = True


class Memo(StepDecorator):
    \"\"\"Caches its step whatever ``run --cache`` says; its label does not change results.\"\"\"

    name = "memo"
    defaults = {"label": "a"}
    in_cache_key = False

    def caches(self):
        return True


spmd, memo = make_decorator(Spmd), make_decorator(Memo)


class DeclaringFlow(FlowSpec):
    @memo(label="LABEL")
    @step
    def start(self):
        self.next(self.member, num_parallel=2)

    @spmd
    @step
    def member(self):
        # each member waits until both have started: only a gang gets past this
        self.rank = self.index
        open(os.path.join(os.environ["GANG_DIR"], str(self.rank)), "w").close()
        for _ in range(600):
            if len(os.listdir(os.environ["GANG_DIR"])) == 2:
                break
            time.sleep(0.1)
        else:
            raise RuntimeError("the other member never started")
        self.next(self.join)

    @step
    def join(self, inputs):
        self.ranks = [i.rank for i in inputs]
        self.next(self.end)

    @step
    def end(self):
        pass


if __name__ == "__main__":
    DeclaringFlow()
"""


def _cached(proc) -> list[str]:
    return re.findall(r"\[\d+/(\w+)/\d+\] Not executed: cached from", proc.stdout)


def test_a_third_party_gang_and_cache_opinion(make_flow, tmp_path):
    flow = make_flow(DECLARING_FLOW)
    gang_dir = tmp_path / "gang"
    gang_dir.mkdir()
    # one worker slot: only a gang starts both members at once
    flow.run("run", "--max-workers", "1", env={"GANG_DIR": str(gang_dir)})
    run = Flow("DeclaringFlow").latest_run
    assert run.successful and run["join"].task.data.ranks == [0, 1]

    # without --cache, the step whose decorator opts in is served from the cache, with
    # a label its decorator keeps out of the key; the gang never is
    flow.path.write_text(flow.path.read_text().replace('label="LABEL"', 'label="OTHER"'))
    (tmp_path / "again").mkdir()
    again = flow.run("run", "--max-workers", "1", env={"GANG_DIR": str(tmp_path / "again")})
    assert _cached(again) == ["start"]
