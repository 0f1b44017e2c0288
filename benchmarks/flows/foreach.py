"""A fan-out of ``--n`` tiny tasks: measures per-task overhead and scheduling."""

from metaflowlike import FlowSpec, Parameter, step


class ForeachFlow(FlowSpec):
    n = Parameter("n", help="How many foreach tasks to start.", default=100, type=int)

    @step
    def start(self):
        self.items = list(range(self.n))
        self.next(self.body, foreach="items")

    @step
    def body(self):
        self.sq = self.input * self.input
        self.next(self.join)

    @step
    def join(self, inputs):
        self.total = sum(inp.sq for inp in inputs)
        self.next(self.end)

    @step
    def end(self):
        expected = sum(i * i for i in range(self.n))
        assert self.total == expected, (self.total, expected)


if __name__ == "__main__":
    ForeachFlow()
