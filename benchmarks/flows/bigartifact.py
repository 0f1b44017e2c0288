"""One large numpy artifact written once and read by the next step.

Measures artifact throughput, peak memory, and (on a second run into the same
datastore) whether identical content is stored again.
"""

import numpy as np

from metaflowlike import FlowSpec, Parameter, step


class BigArtifactFlow(FlowSpec):
    mb = Parameter("mb", help="Artifact size in MiB (float64 values).", default=256, type=int)

    @step
    def start(self):
        # A fixed seed makes every run produce byte-identical content.
        self.arr = np.random.default_rng(0).random(self.mb * 1024 * 1024 // 8)
        self.next(self.read)

    @step
    def read(self):
        self.total = float(self.arr.sum())
        self.next(self.end)

    @step
    def end(self):
        assert self.total > 0


if __name__ == "__main__":
    BigArtifactFlow()
