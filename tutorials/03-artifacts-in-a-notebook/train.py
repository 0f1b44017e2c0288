"""A tiny training flow whose results we read back from a notebook or a script.

Run it with:  python train.py run   then   python inspect_results.py
"""

from metaflowlike import FlowSpec, Parameter, card, current, step


class TrainFlow(FlowSpec):
    """Fit y = a*x + b by least squares for several noise levels."""

    points = Parameter("points", default=50, help="Data points per fit.")

    @step
    def start(self):
        self.noise_levels = [0.0, 0.5, 1.0]
        self.next(self.fit, foreach="noise_levels")

    @step
    def fit(self):
        import random

        rng = random.Random(self.index)
        xs = [i / self.points for i in range(self.points)]
        ys = [2.0 * x + 1.0 + rng.gauss(0, self.input) for x in xs]
        n, sx, sy = len(xs), sum(xs), sum(ys)
        sxx, sxy = sum(x * x for x in xs), sum(x * y for x, y in zip(xs, ys))
        a = (n * sxy - sx * sy) / (n * sxx - sx * sx)
        self.model = {"a": a, "b": (sy - a * sx) / n, "noise": self.input}
        print(f"task {current.task_id}: noise={self.input} a={a:.3f}")
        self.next(self.join)

    @step
    def join(self, inputs):
        self.models = [i.model for i in inputs]
        self.next(self.end)

    @card  # a report of this task, shown in the notebook with the task
    @step
    def end(self):
        self.model = min(self.models, key=lambda m: abs(m["a"] - 2.0))
        print("best model:", self.model)


if __name__ == "__main__":
    TrainFlow()
