"""A flow made for production: a daily schedule, a project, a parameter, a foreach."""

from metaflowlike import FlowSpec, Parameter, project, retry, schedule, step

BASE = {"paris": 120, "lyon": 80, "lille": 50}


@schedule(daily=True)
@project(name="demand")
class DemandFlow(FlowSpec):
    horizon = Parameter("horizon", default=7, type=int, help="Days to forecast.")

    @step
    def start(self):
        self.stores = sorted(BASE)
        self.next(self.forecast, foreach="stores")

    @retry(times=2, minutes_between_retries=1)
    @step
    def forecast(self):
        self.store = self.input
        self.daily = [BASE[self.store] + 2 * day for day in range(self.horizon)]
        print(f"{self.store}: {len(self.daily)} days forecast")
        self.next(self.join)

    @step
    def join(self, inputs):
        self.totals = {i.store: sum(i.daily) for i in inputs}
        self.next(self.end)

    @step
    def end(self):
        print("totals:", self.totals)


if __name__ == "__main__":
    DemandFlow()
