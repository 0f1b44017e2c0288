"""Cards: a visual report of each task, stored with it, viewable offline.

Run it with:  python cardsflow.py run
Then:         python cardsflow.py card list
              python cardsflow.py card view train --id report
"""

import math

from metaflowlike import FlowSpec, Parameter, card, current, step
from metaflowlike.cards import Artifact, Markdown, ProgressBar, Table, VegaChart


class CardsFlow(FlowSpec):
    """Fit y = a*x by gradient descent and report on it with cards."""

    epochs = Parameter("epochs", default=30, help="Gradient steps.")
    rate = Parameter("rate", default=0.1, help="Learning rate.")

    @card  # the default card: task facts, parameters, artifacts, the DAG, the log tail
    @step
    def start(self):
        self.xs = [i / 10 for i in range(20)]
        self.ys = [3.0 * x + 0.2 * math.sin(7 * x) for x in self.xs]
        print(f"{len(self.xs)} points")
        self.next(self.train)

    @card(type="blank", id="report", refresh_interval=1)
    @card
    @step
    def train(self):
        report = current.card["report"]
        report.append(Markdown(f"# Training for {self.epochs} epochs"))
        bar = ProgressBar(max=self.epochs, label="epochs")
        report.append(bar)
        a, self.losses = 0.0, []
        for epoch in range(self.epochs):
            grad = sum(2 * (a * x - y) * x for x, y in zip(self.xs, self.ys)) / len(self.xs)
            a -= self.rate * grad
            loss = sum((a * x - y) ** 2 for x, y in zip(self.xs, self.ys)) / len(self.xs)
            self.losses.append(loss)
            bar.update(epoch + 1)
            current.card.refresh()  # live: `card server` shows each refresh
        self.a = a
        report.append(
            VegaChart(
                {
                    "data": {
                        "values": [{"epoch": i, "loss": v} for i, v in enumerate(self.losses)]
                    },
                    "mark": "line",
                    "encoding": {
                        "x": {"field": "epoch", "type": "quantitative"},
                        "y": {"field": "loss", "type": "quantitative", "scale": {"type": "log"}},
                    },
                    "width": 400,
                    "height": 200,
                }
            )
        )
        report.append(
            Table(
                [["slope a", f"{a:.4f}"], ["final loss", f"{self.losses[-1]:.5f}"]],
                headers=["result", "value"],
            )
        )
        report.append(Artifact(self.losses[-5:], name="last losses"))
        print(f"a = {a:.4f}")
        self.next(self.end)

    @step
    def end(self):
        print(f"fitted slope {self.a:.3f}")


if __name__ == "__main__":
    CardsFlow()
