"""Parameters and static branches: two models trained side by side, then compared.

Run it with:  python branches.py run --alpha 0.3 --epochs 4
"""

from metaflowlike import FlowSpec, JSONType, Parameter, step


class BranchFlow(FlowSpec):
    """Fit two toy models in parallel branches and keep the better one."""

    alpha = Parameter("alpha", default=0.5, help="Learning rate.")
    epochs = Parameter("epochs", default=3, help="Passes over the data.")
    config = Parameter("config", type=JSONType, default='{"bias": 1.0}', help="Extra settings.")

    @step
    def start(self):
        """Make a small data set: y = 3x + bias."""
        self.data = [(x, 3 * x + self.config["bias"]) for x in range(10)]
        self.next(self.fit_slope, self.fit_mean)

    @step
    def fit_slope(self):
        """Gradient descent on a slope-only model."""
        w = 0.0
        for _ in range(self.epochs):
            for x, y in self.data:
                w += self.alpha * 0.01 * (y - w * x) * x
        self.model = ("slope", w)
        self.error = sum((y - w * x) ** 2 for x, y in self.data)
        self.next(self.compare)

    @step
    def fit_mean(self):
        """The baseline: always predict the mean."""
        mean = sum(y for _, y in self.data) / len(self.data)
        self.model = ("mean", mean)
        self.error = sum((y - mean) ** 2 for _, y in self.data)
        self.next(self.compare)

    @step
    def compare(self, inputs):
        """A join sees every branch through `inputs`, by position or by step name."""
        best = min(inputs, key=lambda i: i.error)
        self.best_model = best.model
        self.errors = {inp.model[0]: round(inp.error, 3) for inp in inputs}
        print("slope model error:", round(inputs.fit_slope.error, 3))
        # keep the artifacts both branches agree on (data, parameters) and drop the rest
        self.merge_artifacts(inputs, exclude=["model", "error"])
        self.next(self.end)

    @step
    def end(self):
        print("errors:", self.errors)
        print("best:", self.best_model)


if __name__ == "__main__":
    BranchFlow()
