"""The same flow with its heavy step on AWS Batch: a subclass of burst.py's flow that
changes only that step's decorator (and what it prints)."""

import os

from burst import BurstFlow, shard_score

from metaflowlike import batch, step


class BurstBatchFlow(BurstFlow):
    @batch(cpu=1, memory=1024)
    @step
    def train(self):
        # each shard is its own Batch job, all submitted at once
        self.score = shard_score(self.input)
        print(
            f"shard {self.input} scored {self.score} in Batch job {os.environ['AWS_BATCH_JOB_ID']}"
        )
        self.next(self.join)


if __name__ == "__main__":
    BurstBatchFlow()
