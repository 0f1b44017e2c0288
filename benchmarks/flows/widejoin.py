"""A trivial foreach of ``--n`` tasks whose join looks at ``--touch`` of its inputs.

The join records how many read calls its process made before the step's own code ran
(``/proc/self/io``) in the file named by ``BENCH_JOIN_IO``, if set: that is what
building ``inputs`` cost, and it should not grow with ``--n`` when ``--touch one``.
"""

import json
import os

from metaflowlike import FlowSpec, Parameter, step


def _io() -> dict:
    with open("/proc/self/io") as f:
        return {k: int(v) for k, v in (line.split(": ") for line in f)}


class WideJoinFlow(FlowSpec):
    n = Parameter("n", help="How many foreach tasks to start.", default=100, type=int)
    touch = Parameter("touch", help="'one' (the first input) or 'all'.", default="all")

    @step
    def start(self):
        self.items = list(range(self.n))
        self.next(self.body, foreach="items")

    @step
    def body(self):
        self.sq = self.input * self.input
        self.next(self.join)

    @step
    def join(self, inputs):
        before = _io()
        if self.touch == "one":
            self.total = inputs[0].sq
        else:
            self.total = sum(inp.sq for inp in inputs)
        after = _io()
        where = os.environ.get("BENCH_JOIN_IO")
        if where:
            with open(where, "w") as f:
                json.dump({"inputs": len(inputs), "before": before, "after": after}, f)
        self.next(self.end)

    @step
    def end(self):
        pass


if __name__ == "__main__":
    WideJoinFlow()
