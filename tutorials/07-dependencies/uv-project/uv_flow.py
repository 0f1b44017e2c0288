"""The whole flow runs in the environment of this project's uv.lock.

python uv_flow.py --environment=uv run
"""

from metaflowlike import FlowSpec, step


class UvProjectFlow(FlowSpec):
    @step
    def start(self):
        import tabulate

        self.version = tabulate.__version__
        self.next(self.end)

    @step
    def end(self):
        print(f"every step of this flow uses tabulate {self.version} from uv.lock")


if __name__ == "__main__":
    UvProjectFlow()
