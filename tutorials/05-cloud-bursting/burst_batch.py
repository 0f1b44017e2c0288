"""Burst one heavy step to AWS Batch; the rest of the flow stays on the laptop."""

import os

from metaflowlike import FlowSpec, batch, step


class BurstBatchFlow(FlowSpec):
    @step
    def start(self):
        self.shards = list(range(3))
        self.next(self.train, foreach="shards")

    @batch(cpu=1, memory=1024)
    @step
    def train(self):
        # each shard is its own Batch job, all submitted at once
        self.score = sum(i * i for i in range(200_000 * (self.input + 1))) % 97
        print(
            f"shard {self.input} scored {self.score} in Batch job {os.environ['AWS_BATCH_JOB_ID']}"
        )
        self.next(self.join)

    @step
    def join(self, inputs):
        self.scores = sorted(i.score for i in inputs)
        self.next(self.end)

    @step
    def end(self):
        print("scores:", self.scores)


if __name__ == "__main__":
    BurstBatchFlow()
