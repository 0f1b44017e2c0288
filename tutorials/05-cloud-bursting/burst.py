"""Burst one heavy step to Kubernetes; the rest of the flow stays on the laptop."""

import os

from metaflowlike import FlowSpec, current, kubernetes, step


def shard_score(shard: int) -> int:
    """The heavy part: the more so the higher the shard."""
    return sum(i * i for i in range(200_000 * (shard + 1))) % 97


class BurstFlow(FlowSpec):
    @step
    def start(self):
        self.shards = list(range(4))
        self.next(self.train, foreach="shards")

    @kubernetes(cpu=1, memory=1024)
    @step
    def train(self):
        # each shard runs in its own pod, all shards at once
        self.score = shard_score(self.input)
        pod = os.environ.get("METAFLOWLIKE_RUNS_ON_POD")
        print(f"shard {self.input} scored {self.score} in pod {pod} ({current.pathspec})")
        self.next(self.join)

    @step
    def join(self, inputs):
        self.scores = sorted(i.score for i in inputs)
        self.next(self.end)

    @step
    def end(self):
        print("scores:", self.scores)


if __name__ == "__main__":
    BurstFlow()
