"""Each step declares the packages it needs; `--environment=pypi` builds them with uv.

python dependencies.py --environment=pypi run
"""

from metaflowlike import FlowSpec, current, pypi, pypi_base, step


@pypi_base(packages={"tabulate": "0.9.0"})
class DependenciesFlow(FlowSpec):
    @step
    def start(self):
        import tabulate

        self.rows = [("alpha", 0.25), ("beta", 0.5), ("gamma", 0.75)]
        self.base_tabulate = tabulate.__version__
        print(f"start runs with tabulate {tabulate.__version__}")
        self.next(self.legacy, self.pretty)

    @pypi(packages={"tabulate": "0.8.10"})
    @step
    def legacy(self):
        import tabulate  # this step pins an older release than the base

        self.legacy_tabulate = tabulate.__version__
        print(f"legacy runs with tabulate {tabulate.__version__}")
        self.next(self.join)

    @pypi(packages={"humanize": "4.9.0"})
    @step
    def pretty(self):
        import humanize  # added to the base's tabulate 0.9.0
        import tabulate

        self.table = tabulate.tabulate(self.rows, headers=["name", "weight"])
        self.size = humanize.naturalsize(123456789)
        print(self.table)
        self.next(self.join)

    @step
    def join(self, inputs):
        self.merge_artifacts(inputs)
        try:
            import humanize  # noqa: F401  (not declared for this step: not importable)

            self.humanize_in_join = True
        except ImportError:
            self.humanize_in_join = False
        self.next(self.end)

    @pypi(disabled=True)
    @step
    def end(self):
        # disabled: runs in the interpreter that started the flow
        print(
            f"{current.flow_name}: legacy used tabulate {self.legacy_tabulate}, "
            f"the others {self.base_tabulate}; size {self.size}; "
            f"humanize importable in join: {self.humanize_in_join}"
        )


if __name__ == "__main__":
    DependenciesFlow()
