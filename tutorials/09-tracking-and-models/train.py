"""Train a tiny model, tracking its loss every epoch, and register it."""

from metaflowlike import FlowSpec, Parameter, current, step


class TrainRegressor(FlowSpec):
    lr = Parameter("lr", default=0.05, help="Learning rate of the gradient descent.")
    epochs = Parameter("epochs", default=30)

    @step
    def start(self):
        # y = 3x + 1 with a little deterministic noise
        self.xs = [i / 10 for i in range(40)]
        self.ys = [3 * x + 1 + (0.05 if i % 2 else -0.05) for i, x in enumerate(self.xs)]
        self.next(self.fit)

    @step
    def fit(self):
        w = b = 0.0
        n = len(self.xs)
        for epoch in range(self.epochs):
            errs = [w * x + b - y for x, y in zip(self.xs, self.ys)]
            w -= self.lr * 2 * sum(e * x for e, x in zip(errs, self.xs)) / n
            b -= self.lr * 2 * sum(errs) / n
            loss = sum(e * e for e in errs) / n
            current.track("loss", loss, step=epoch)  # buffered: cheap every iteration
        current.track({"w": w, "b": b})
        self.model = {"w": w, "b": b}
        saved = current.model.save(self.model, name="regressor", metadata={"lr": self.lr})
        print(f"registered regressor version {saved.version}, final loss {loss:.4f}")
        self.next(self.end)

    @step
    def end(self):
        pass


if __name__ == "__main__":
    TrainRegressor()
