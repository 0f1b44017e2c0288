"""Fan out over a list with foreach, nested once, and gather the results.

Run it with:  python foreach.py run --max-workers 4
"""

from metaflowlike import FlowSpec, Parameter, step


class ForeachFlow(FlowSpec):
    """Score every (model, seed) pair in parallel tasks."""

    seeds = Parameter("seeds", default=3, help="Seeds per model.")

    @step
    def start(self):
        self.models = ["linear", "tree", "forest"]
        self.next(self.per_model, foreach="models")

    @step
    def per_model(self):
        """One task per model; self.input is this task's item."""
        self.model = self.input
        self.seed_list = list(range(self.seeds))
        self.next(self.train, foreach="seed_list")

    @step
    def train(self):
        """A nested foreach: one task per seed of each model."""
        self.seed = self.input
        self.score = round(len(self.model) / 10 + self.seed / 100, 2)
        self.next(self.pick_seed)

    @step
    def pick_seed(self, inputs):
        """Join the inner foreach: inputs are this model's seeds, in order."""
        self.model = inputs[0].model
        self.best_score = max(i.score for i in inputs)
        self.next(self.gather)

    @step
    def gather(self, inputs):
        """Join the outer foreach."""
        self.scores = {i.model: i.best_score for i in inputs}
        self.next(self.end)

    @step
    def end(self):
        for model, score in sorted(self.scores.items()):
            print(f"{model:>8}: {score:.1f}")


if __name__ == "__main__":
    ForeachFlow()
