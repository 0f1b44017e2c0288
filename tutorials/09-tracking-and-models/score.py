"""Score new data with whichever model `regressor@champion` points at."""

from metaflowlike import FlowSpec, Model, step


class ScoreNewData(FlowSpec):
    @step
    def start(self):
        champion = Model("regressor@champion")
        model = champion.load()
        self.version = champion.version
        self.predictions = [model["w"] * x + model["b"] for x in (0.0, 1.0, 2.0)]
        print(f"scored with regressor version {self.version}: {self.predictions}")
        self.next(self.end)

    @step
    def end(self):
        pass


if __name__ == "__main__":
    ScoreNewData()
