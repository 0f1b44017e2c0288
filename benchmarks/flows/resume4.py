"""Four steps; ``b`` fails while ``BENCH_FAIL=1`` so that ``resume`` can rerun it."""

import os

from metaflowlike import FlowSpec, step


class Resume4Flow(FlowSpec):
    @step
    def start(self):
        self.x = 1
        self.next(self.a)

    @step
    def a(self):
        self.x += 1
        self.next(self.b)

    @step
    def b(self):
        if os.environ.get("BENCH_FAIL") == "1":
            raise RuntimeError("step b fails on purpose because BENCH_FAIL=1")
        self.x += 1
        self.next(self.end)

    @step
    def end(self):
        assert self.x == 3, self.x


if __name__ == "__main__":
    Resume4Flow()
