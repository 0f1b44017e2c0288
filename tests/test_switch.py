"""Switches (``self.next({...}, condition=)``) run only the case their task picks:
plain, recursive (a case that loops back to its own step), inside a foreach, around a
foreach and a static branch, nested, and across a resume. Real flows, read back through
the client."""

from __future__ import annotations

from metaflowlike import Flow

HEADER = "import os\nfrom metaflowlike import FlowSpec, step, Parameter, current\n"

ROUTE_FLOW = (
    HEADER
    + """
class RouteFlow(FlowSpec):
    route = Parameter("route", default="low")

    @step
    def start(self):
        self.seen = ["start"]
        self.next({"high": self.high, "low": self.low}, condition="route")

    @step
    def high(self):
        self.seen = self.seen + ["high"]
        self.next(self.merge)

    @step
    def low(self):
        self.seen = self.seen + ["low"]
        self.next(self.merge)

    @step
    def merge(self):
        self.seen = self.seen + ["merge"]
        self.next(self.end)

    @step
    def end(self):
        pass

if __name__ == "__main__":
    RouteFlow()
"""
)


def test_only_the_chosen_case_runs_and_the_paths_merge(make_flow):
    flow = make_flow(ROUTE_FLOW)
    flow.run("run", "--route", "high")
    run = Flow("RouteFlow").latest_run
    assert run.successful and run.data.seen == ["start", "high", "merge"]
    assert {s.id for s in run} == {"start", "high", "merge", "end"}
    flow.run("run")
    run = Flow("RouteFlow").latest_run
    assert run.data.seen == ["start", "low", "merge"]
    assert "high" not in [s.id for s in run]


def test_a_value_that_is_no_case_fails_the_task_clearly(make_flow):
    flow = make_flow(ROUTE_FLOW)
    proc = flow.run("run", "--route", "medium", check=False)
    assert proc.returncode != 0
    task = Flow("RouteFlow").latest_run["start"].task
    assert not task.successful
    assert "self.route is 'medium', which is none of the switch's cases ('high', 'low')" in str(
        task.exception
    )


RECURSIVE_FLOW = (
    HEADER
    + """
class LoopFlow(FlowSpec):
    rounds = Parameter("rounds", default=3)

    @step
    def start(self):
        self.count = 0
        self.next(self.grow)

    @step
    def grow(self):
        if os.environ.get("FAIL_AT") == str(self.count):
            raise RuntimeError("planned failure")
        self.count += 1
        self.state = "again" if self.count < self.rounds else "done"
        self.next({"again": self.grow, "done": self.finish}, condition="state")

    @step
    def finish(self):
        if os.environ.get("FAIL_FINISH"):
            raise RuntimeError("planned failure in finish")
        self.total = self.count
        self.next(self.end)

    @step
    def end(self):
        pass

if __name__ == "__main__":
    LoopFlow()
"""
)


def test_recursive_switch_makes_a_new_task_each_pass(make_flow):
    flow = make_flow(RECURSIVE_FLOW)
    flow.run("run")
    run = Flow("LoopFlow").latest_run
    assert run.successful and run.data.total == 3
    passes = sorted(run["grow"], key=lambda t: t.data.count)
    assert [t.data.count for t in passes] == [1, 2, 3]
    assert len({t.id for t in passes}) == 3
    assert [t.data.state for t in passes] == ["again", "again", "done"]


def test_resume_across_a_recursive_switch(make_flow):
    flow = make_flow(RECURSIVE_FLOW)
    proc = flow.run("run", env={"FAIL_FINISH": "1"}, check=False)
    assert proc.returncode != 0
    origin = Flow("LoopFlow").latest_run
    assert len(list(origin["grow"])) == 3
    flow.run("resume")
    run = Flow("LoopFlow").latest_run
    assert run.successful and run.origin_pathspec == origin.pathspec and run.data.total == 3
    passes = list(run["grow"])
    assert len(passes) == 3 and all(t.origin_pathspec for t in passes)  # all cloned
    assert run["finish"].task.origin_pathspec is None  # rerun


def test_resume_inside_the_loop_reruns_the_remaining_passes(make_flow):
    flow = make_flow(RECURSIVE_FLOW)
    proc = flow.run("run", env={"FAIL_AT": "1"}, check=False)
    assert proc.returncode != 0
    flow.run("resume")
    run = Flow("LoopFlow").latest_run
    assert run.successful and run.data.total == 3
    by_count = {t.data.count: t for t in run["grow"]}
    assert by_count[1].origin_pathspec is not None  # the first pass was cloned
    assert by_count[2].origin_pathspec is None and by_count[3].origin_pathspec is None


def test_switch_inside_a_foreach(make_flow):
    flow = make_flow(
        HEADER
        + """
class ParityFlow(FlowSpec):
    @step
    def start(self):
        self.items = [1, 2, 3, 4, 5]
        self.next(self.classify, foreach="items")

    @step
    def classify(self):
        self.kind = "even" if self.input % 2 == 0 else "odd"
        self.next({"even": self.even, "odd": self.odd}, condition="kind")

    @step
    def even(self):
        self.label = f"{self.input} is even"
        self.next(self.gather)

    @step
    def odd(self):
        self.label = f"{self.input} is odd"
        self.next(self.gather)

    @step
    def gather(self, inputs):
        self.labels = [i.label for i in inputs]
        self.next(self.end)

    @step
    def end(self):
        pass

if __name__ == "__main__":
    ParityFlow()
"""
    )
    flow.run("run")
    run = Flow("ParityFlow").latest_run
    assert run.data.labels == [f"{i} is {'odd' if i % 2 else 'even'}" for i in range(1, 6)]
    assert len(list(run["even"])) == 2 and len(list(run["odd"])) == 3


NESTED_FLOW = (
    HEADER
    + """
class NestedFlow(FlowSpec):
    mode = Parameter("mode", default="fan")
    size = Parameter("size", default="small")

    @step
    def start(self):
        self.next({"fan": self.fan, "each": self.each, "pick": self.pick}, condition="mode")

    @step
    def fan(self):
        self.next(self.left, self.right)

    @step
    def left(self):
        self.part = "L"
        self.next(self.fan_join)

    @step
    def right(self):
        self.part = "R"
        self.next(self.fan_join)

    @step
    def fan_join(self, inputs):
        self.result = "".join(i.part for i in inputs)
        self.next(self.end)

    @step
    def each(self):
        self.xs = [1, 2, 3]
        self.next(self.square, foreach="xs")

    @step
    def square(self):
        self.sq = self.input * self.input
        self.next(self.each_join)

    @step
    def each_join(self, inputs):
        self.result = str(sum(i.sq for i in inputs))
        self.next(self.end)

    @step
    def pick(self):
        self.next({"small": self.small, "big": self.big}, condition="size")

    @step
    def small(self):
        self.result = "small"
        self.next(self.end)

    @step
    def big(self):
        self.result = "big"
        self.next(self.end)

    @step
    def end(self):
        pass

if __name__ == "__main__":
    NestedFlow()
"""
)


def test_branch_and_foreach_inside_a_switch_and_nested_switches(make_flow):
    flow = make_flow(NESTED_FLOW)
    expected = {
        ("fan", "small"): ("LR", {"start", "fan", "left", "right", "fan_join", "end"}),
        ("each", "small"): ("14", {"start", "each", "square", "each_join", "end"}),
        ("pick", "small"): ("small", {"start", "pick", "small", "end"}),
        ("pick", "big"): ("big", {"start", "pick", "big", "end"}),
    }
    for (mode, size), (result, steps) in expected.items():
        flow.run("run", "--mode", mode, "--size", size)
        run = Flow("NestedFlow").latest_run
        assert run.successful and run.data.result == result
        assert {s.id for s in run} == steps


def test_a_join_after_a_switch_inside_a_branch(make_flow):
    """Either case of the switch ends its branch of the split; the join gets one input
    per branch whichever case ran."""
    flow = make_flow(
        HEADER
        + """
class BranchSwitchFlow(FlowSpec):
    side = Parameter("side", default="x")

    @step
    def start(self):
        self.next(self.a, self.b)

    @step
    def a(self):
        self.next({"x": self.ax, "y": self.ay}, condition="side")

    @step
    def ax(self):
        self.v = "ax"
        self.next(self.join)

    @step
    def ay(self):
        self.v = "ay"
        self.next(self.join)

    @step
    def b(self):
        self.v = "b"
        self.next(self.join)

    @step
    def join(self, inputs):
        self.vs = sorted(i.v for i in inputs)
        self.next(self.end)

    @step
    def end(self):
        pass

if __name__ == "__main__":
    BranchSwitchFlow()
"""
    )
    flow.run("run", "--side", "y")
    run = Flow("BranchSwitchFlow").latest_run
    assert run.successful and run.data.vs == ["ay", "b"]


def test_show_and_check_draw_the_switch(make_flow):
    flow = make_flow(RECURSIVE_FLOW)
    assert "looks good" in flow.run("check").stdout
    text = flow.run("show").stdout
    assert "=> one of grow, finish (switch on state: 'again' -> grow, 'done' -> finish)" in text
    dot = flow.run("show", "--format", "dot").stdout
    assert '"grow" [label="grow", shape=diamond]' in dot
    assert """"grow" -> "grow" [label="state = 'again'", style=dashed];""" in dot
    mermaid = flow.run("show", "--format", "mermaid").stdout
    assert 'step_grow{"grow"}' in mermaid
    assert "step_grow -.->|\"state = 'done'\"| step_finish" in mermaid


def test_catch_on_a_switch_step_is_refused(make_flow):
    flow = make_flow(
        ROUTE_FLOW.replace(
            "    @step\n    def start", "    @catch\n    @step\n    def start"
        ).replace("current\n", "current, catch\n", 1)
    )
    proc = flow.run("run", check=False)
    assert proc.returncode != 0
    assert '@catch cannot be used on the switch step "start"' in proc.stderr
    assert "Traceback" not in proc.stderr
