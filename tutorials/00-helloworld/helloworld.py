"""The smallest useful flow: three steps, one artifact.

Run it with:  python helloworld.py run
"""

from metaflowlike import FlowSpec, current, step


class HelloFlow(FlowSpec):
    """A flow where the greeting travels from `start` to `end`."""

    @step
    def start(self):
        """Every flow begins with a step called start."""
        self.greeting = "Hello from metaflowlike"
        print(f"Starting {current.flow_name} run {current.run_id}")
        self.next(self.hello)

    @step
    def hello(self):
        """Artifacts set on self in one step are readable in the next."""
        print(self.greeting)
        self.shout = self.greeting.upper() + "!"
        self.next(self.end)

    @step
    def end(self):
        """Every flow ends with a step called end."""
        print(self.shout)


if __name__ == "__main__":
    HelloFlow()
