"""The smallest flow: two steps, one artifact. Its runs fill a datastore cheaply."""

from metaflowlike import FlowSpec, step


class TwoStepFlow(FlowSpec):
    @step
    def start(self):
        self.x = 1
        self.next(self.end)

    @step
    def end(self):
        pass


if __name__ == "__main__":
    TwoStepFlow()
