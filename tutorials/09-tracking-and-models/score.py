"""Score new data with whichever model `regressor@champion` points at, and show in a
card how the training runs compare."""

from metaflowlike import FlowSpec, Model, card, current, namespace, step
from metaflowlike.cards import Markdown, RunComparison


class ScoreNewData(FlowSpec):
    @step
    def start(self):
        champion = Model("regressor@champion")
        model = champion.load()
        self.version = champion.version
        self.predictions = [model["w"] * x + model["b"] for x in (0.0, 1.0, 2.0)]
        print(f"scored with regressor version {self.version}: {self.predictions}")
        self.next(self.end)

    @card(type="blank")
    @step
    def end(self):
        namespace(None)  # every user's training runs
        current.card.append(Markdown(f"# Scored with regressor version {self.version}"))
        current.card.append(RunComparison("TrainRegressor", metrics=["loss"], params=["lr"]))


if __name__ == "__main__":
    ScoreNewData()
