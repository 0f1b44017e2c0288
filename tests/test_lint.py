"""Graph checks: each problem names the right step and line, and all come at once.

Lines are found through ``# @marker`` comments in this file, so the tests survive edits.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from metaflowlike import FlowSpec, Parameter, step
from metaflowlike.exceptions import InvalidGraph, MetaflowlikeException
from metaflowlike.graph import FlowGraph, GraphProblem
from metaflowlike.lint import check, validate

SOURCE = Path(__file__).read_text().splitlines()


def line(marker: str) -> int:
    hits = [i for i, text in enumerate(SOURCE, 1) if text.rstrip().endswith(f"# @{marker}")]
    assert len(hits) == 1, marker
    return hits[0]


def found(flow: type) -> list[tuple[str, str | None, int]]:
    problems = check(FlowGraph(flow))
    assert all(p.file == __file__ for p in problems)
    return [(p.code, p.step, p.lineno) for p in problems]


def messages(flow: type) -> dict[str, str]:
    return {p.code: p.message for p in check(FlowGraph(flow))}


# --------------------------------------------------------------------------- start / end


class EmptyFlow(FlowSpec):  # @empty
    pass


class StratFlow(FlowSpec):  # @no-start
    @step
    def strat(self):
        self.next(self.end)

    @step
    def end(self):
        pass


class NoEndFlow(FlowSpec):  # @no-end
    @step
    def start(self):
        self.next(self.stop)

    @step
    def stop(self):  # @stop-no-next
        pass


def test_missing_start_and_end():
    assert found(EmptyFlow) == [
        ("missing-end", None, line("empty")),
        ("missing-start", None, line("empty")),
    ]
    assert found(StratFlow) == [("missing-start", None, line("no-start"))]
    assert messages(StratFlow)["missing-start"].endswith('Did you mean "strat"?')
    assert found(NoEndFlow) == [
        ("missing-end", None, line("no-end")),
        ("no-next", "stop", line("stop-no-next")),
    ]
    problem = check(FlowGraph(EmptyFlow))[0]
    assert str(problem) == (
        f'{__file__}:{line("empty")}: flow "EmptyFlow": has no "end" step; '
        "every flow needs one (@step def end(self))."
    )


# --------------------------------------------------------------------------- self.next


class NoNextFlow(FlowSpec):
    @step
    def start(self):
        self.next(self.a)

    @step
    def a(self):  # @a-no-next
        self.x = 1

    @step
    def end(self):  # @end-orphan
        pass


class TwoNextFlow(FlowSpec):
    @step
    def start(self):
        if self:
            self.next(self.end)
        else:
            self.next(self.end)  # @second-next

    @step
    def end(self):
        pass


class NotLastFlow(FlowSpec):
    @step
    def start(self):
        self.next(self.end)  # @not-last
        self.x = 1

    @step
    def end(self):
        pass


class EndNextFlow(FlowSpec):
    @step
    def start(self):
        self.next(self.end)

    @step
    def end(self):
        self.next(self.start)  # @end-next


def test_no_next():
    assert found(NoNextFlow) == [
        ("no-next", "a", line("a-no-next")),
        ("unreachable", "end", line("end-orphan")),
    ]
    assert "every step except end" in messages(NoNextFlow)["no-next"]


def test_two_next_calls():
    assert found(TwoNextFlow) == [("multiple-next", "start", line("second-next"))]
    msg = messages(TwoNextFlow)["multiple-next"]
    assert f"2 times (lines {line('second-next') - 2}, {line('second-next')})" in msg


def test_next_not_last():
    assert found(NotLastFlow) == [("next-not-last", "start", line("not-last"))]


def test_end_has_no_transition():
    assert found(EndNextFlow) == [("end-has-next", "end", line("end-next"))]
    graph = FlowGraph(EndNextFlow)
    assert graph["end"].out_funcs == () and graph.cycles == ()


class UnknownTargetFlow(FlowSpec):
    helper = None

    @step
    def start(self):
        self.next(self.a, self.ned)  # @unknown

    @step
    def a(self):
        self.next(self.helper)  # @not-a-step

    @step
    def end(self):
        pass


def test_unknown_target_suggests_a_name():
    got = found(UnknownTargetFlow)
    assert ("unknown-step", "start", line("unknown")) in got
    assert ("unknown-step", "a", line("not-a-step")) in got
    problems = [p for p in check(FlowGraph(UnknownTargetFlow)) if p.code == "unknown-step"]
    assert problems[0].message == 'self.next() goes to unknown step "ned". Did you mean "end"?'
    assert "not a step (missing @step?)" in problems[1].message


class BadArgumentsFlow(FlowSpec):
    @step
    def start(self):
        self.next(self.a, "b")  # @string-target

    @step
    def a(self):
        self.next(self.b, num_parallel=4)  # @num-parallel

    @step
    def b(self):
        name = "xs"
        self.next(self.c, foreach=name)  # @foreach-variable

    @step
    def c(self):
        self.next(self.d, self.e, foreach="xs")  # @foreach-two

    @step
    def d(self):
        self.next()  # @no-target

    @step
    def e(self):
        self.next(self.end, foreahc="xs")  # @bad-keyword

    @step
    def end(self):
        pass


def test_bad_next_arguments():
    got = found(BadArgumentsFlow)
    for expected in [
        ("bad-next-arg", "start", line("string-target")),
        ("parallel-without-decorator", "a", line("num-parallel")),
        ("foreach-not-literal", "b", line("foreach-variable")),
        ("foreach-targets", "c", line("foreach-two")),
        ("bad-next-arg", "d", line("no-target")),
        ("unknown-next-arg", "e", line("bad-keyword")),
    ]:
        assert expected in got
    text = str(pytest.raises(InvalidGraph, validate, FlowGraph(BadArgumentsFlow)).value)
    assert "not `'b'`" in text
    assert 'goes to "b", which has no @parallel decorator' in text
    assert "foreach='items', not `name`" in text
    assert (
        'foreahc=; it takes foreach=, num_parallel= or condition=. Did you mean "foreach"?' in text
    )


class DuplicateTargetFlow(FlowSpec):
    @step
    def start(self):
        self.next(self.end, self.end)  # @duplicate

    @step
    def end(self):
        pass


def test_duplicate_target():
    assert found(DuplicateTargetFlow) == [("duplicate-target", "start", line("duplicate"))]
    # what remains is a plain linear transition
    assert FlowGraph(DuplicateTargetFlow)["start"].out_funcs == ("end",)


# --------------------------------------------------------------------------- reachability


class OrphanFlow(FlowSpec):
    @step
    def start(self):
        self.next(self.end)

    @step
    def orphan(self):  # @orphan
        self.next(self.orphan2)

    @step
    def orphan2(self):  # @orphan2
        self.next(self.end)

    @step
    def end(self):
        pass


class CycleFlow(FlowSpec):
    @step
    def start(self):
        self.next(self.a)

    @step
    def a(self):
        self.next(self.b)

    @step
    def b(self):
        self.next(self.a)  # @back-edge

    @step
    def end(self):  # @cycle-end
        pass


def test_unreachable_steps():
    assert found(OrphanFlow) == [
        ("unreachable", "orphan", line("orphan")),
        ("unreachable", "orphan2", line("orphan2")),
    ]
    msgs = [p.message for p in check(FlowGraph(OrphanFlow))]
    assert msgs[0] == "is not reachable from start: no step goes to it"
    assert msgs[1] == 'is not reachable from start: only unreachable steps go to it ("orphan")'


def test_cycles():
    assert found(CycleFlow) == [
        ("cycle", "b", line("back-edge")),
        ("unreachable", "end", line("cycle-end")),
    ]
    assert "(a -> b -> a)" in messages(CycleFlow)["cycle"]
    assert FlowGraph(CycleFlow).sorted_nodes() == ["start", "a", "b", "end"]


# --------------------------------------------------------------------------- foreach names


class ForeachMissingFlow(FlowSpec):
    @step
    def start(self):
        self.items = [1, 2]
        self.next(self.body, foreach="itmes")  # @foreach-missing

    @step
    def body(self):
        self.next(self.join)

    @step
    def join(self, inputs):
        self.next(self.end)

    @step
    def end(self):
        pass


class ForeachFoundFlow(FlowSpec):
    """Every way a foreach artifact can be assigned."""

    alpha = Parameter("alpha", default="abc")

    @step
    def start(self):
        self.earlier = [1]
        (self.a, [self.b, *self.c]) = (1, [2, 3, 4])
        self.d: list = [1]
        self.e = []
        self.e += [1]
        for self.f in [[1]]:
            pass
        setattr(self, "g", [1])  # noqa: B010
        self.next(self.s1, foreach="a")

    @step
    def s1(self):
        self.next(self.s2, foreach="b")

    @step
    def s2(self):
        self.next(self.s3, foreach="c")

    @step
    def s3(self):
        self.next(self.s4, foreach="d")

    @step
    def s4(self):
        self.next(self.s5, foreach="e")

    @step
    def s5(self):
        self.next(self.s6, foreach="f")

    @step
    def s6(self):
        self.next(self.s7, foreach="g")

    @step
    def s7(self):
        self.next(self.s8, foreach="earlier")

    @step
    def s8(self):
        self.next(self.s9, foreach="alpha")

    @step
    def s9(self):
        self.next(self.j9)

    @step
    def j9(self, inputs):
        self.next(self.j8)

    @step
    def j8(self, inputs):
        self.next(self.j7)

    @step
    def j7(self, inputs):
        self.next(self.j6)

    @step
    def j6(self, inputs):
        self.next(self.j5)

    @step
    def j5(self, inputs):
        self.next(self.j4)

    @step
    def j4(self, inputs):
        self.next(self.j3)

    @step
    def j3(self, inputs):
        self.next(self.j2)

    @step
    def j2(self, inputs):
        self.next(self.j1)

    @step
    def j1(self, inputs):
        self.next(self.end)

    @step
    def end(self):
        pass


class DynamicSetattrFlow(FlowSpec):
    @step
    def start(self):
        setattr(self, "xs"[::-1][::-1], [1])
        self.next(self.body, foreach="xs")

    @step
    def body(self):
        self.next(self.join)

    @step
    def join(self, inputs):
        self.next(self.end)

    @step
    def end(self):
        pass


def test_foreach_over_missing_name():
    assert found(ForeachMissingFlow) == [("foreach-missing-name", "start", line("foreach-missing"))]
    msg = messages(ForeachMissingFlow)["foreach-missing-name"]
    assert msg.startswith('foreach over missing name "itmes"')
    assert msg.endswith('Did you mean "items"?')


def test_foreach_names_found_in_every_assignment_form():
    assert found(ForeachFoundFlow) == []
    graph = FlowGraph(ForeachFoundFlow)
    assert graph.sources["start"].assigned == set("abcdefg") | {"earlier"}
    assert graph["s9"].split_parents == ("start", "s1", "s2", "s3", "s4", "s5", "s6", "s7", "s8")


def test_dynamic_setattr_disables_the_foreach_check():
    assert found(DynamicSetattrFlow) == []
    assert FlowGraph(DynamicSetattrFlow).sources["start"].dynamic_assign


# --------------------------------------------------------------------------- joins


class CrossJoinFlow(FlowSpec):
    @step
    def start(self):
        self.next(self.a, self.b)

    @step
    def a(self):
        self.next(self.x, self.y)

    @step
    def x(self):
        self.next(self.join)

    @step
    def y(self):
        self.next(self.join)

    @step
    def b(self):
        self.next(self.join)

    @step
    def join(self, inputs):  # @cross-join
        self.next(self.end)

    @step
    def end(self):
        pass


class LinearTwoInputsFlow(FlowSpec):
    @step
    def start(self):
        self.next(self.a, self.b)  # @open-split

    @step
    def a(self):
        self.next(self.c)

    @step
    def b(self):
        self.next(self.c)

    @step
    def c(self):  # @two-inputs
        self.next(self.end)

    @step
    def end(self):
        pass


class PartialJoinFlow(FlowSpec):
    @step
    def start(self):
        self.next(self.a, self.b)

    @step
    def a(self):
        self.next(self.ja)

    @step
    def b(self):
        self.next(self.jb)

    @step
    def ja(self, inputs):  # @partial-a
        self.next(self.j)

    @step
    def jb(self, inputs):  # @partial-b
        self.next(self.j)

    @step
    def j(self, inputs):  # @nothing-to-join
        self.next(self.end)

    @step
    def end(self):
        pass


class NotAJoinFlow(FlowSpec):
    @step
    def start(self):
        self.next(self.a)

    @step
    def a(self, inputs):  # @not-a-join
        self.next(self.end)

    @step
    def end(self):
        pass


class NeverJoinedFlow(FlowSpec):
    @step
    def start(self):
        self.items = [1]
        self.next(self.body, foreach="items")  # @never-joined

    @step
    def body(self):
        self.next(self.end)

    @step
    def end(self):
        pass


class SplitIntoJoinFlow(FlowSpec):
    @step
    def start(self):
        self.items = [1]
        self.next(self.join, foreach="items")  # @split-into-join

    @step
    def join(self, inputs):
        self.next(self.end)

    @step
    def end(self):
        pass


class JoinSplitsFlow(FlowSpec):
    @step
    def start(self):
        self.next(self.a, self.b)

    @step
    def a(self):
        self.next(self.join)

    @step
    def b(self):
        self.next(self.join)

    @step
    def join(self, inputs):
        self.next(self.c, self.d)  # @join-splits

    @step
    def c(self):
        self.next(self.j2)

    @step
    def d(self):
        self.next(self.j2)

    @step
    def j2(self, inputs):
        self.next(self.end)

    @step
    def end(self):
        pass


def test_join_of_different_splits():
    assert found(CrossJoinFlow) == [("cross-join", "join", line("cross-join"))]
    msg = messages(CrossJoinFlow)["cross-join"]
    assert '"b" (inside the split at "start")' in msg
    assert '"x" (inside the split at "a")' in msg


def test_linear_step_with_two_inputs():
    assert found(LinearTwoInputsFlow) == [
        ("never-joined", "start", line("open-split")),
        ("not-a-join-but-joins", "c", line("two-inputs")),
    ]
    assert "def c(self, inputs)" in messages(LinearTwoInputsFlow)["not-a-join-but-joins"]


def test_join_with_a_single_input_not_closing_a_foreach():
    assert found(PartialJoinFlow) == [
        ("join-missing-branch", "ja", line("partial-a")),
        ("join-missing-branch", "jb", line("partial-b")),
        ("join-without-split", "j", line("nothing-to-join")),
    ]
    msgs = [p.message for p in check(FlowGraph(PartialJoinFlow))]
    assert msgs[0].startswith('has a single input ("a") and does not close a foreach')
    assert 'branch(es) "b" never reach it' in msgs[0]


def test_a_join_that_is_not_a_join():
    assert found(NotAJoinFlow) == [("join-without-split", "a", line("not-a-join"))]
    assert "is not a join in the graph" in messages(NotAJoinFlow)["join-without-split"]


def test_split_never_joined():
    assert found(NeverJoinedFlow) == [("never-joined", "start", line("never-joined"))]
    assert messages(NeverJoinedFlow)["never-joined"].startswith("this foreach is never joined")


def test_split_straight_into_join():
    assert found(SplitIntoJoinFlow) == [("split-into-join", "start", line("split-into-join"))]


def test_join_that_splits():
    assert found(JoinSplitsFlow) == [("join-splits", "join", line("join-splits"))]


def test_static_split_with_one_target_is_linear():
    class OneTargetFlow(FlowSpec):
        @step
        def start(self):
            self.next(self.end)

        @step
        def end(self):
            pass

    graph = FlowGraph(OneTargetFlow)
    assert graph["start"].split_type is None and check(graph) == []


class ThreeWayFlow(FlowSpec):
    @step
    def start(self):
        self.next(self.a, self.b, self.c)

    @step
    def a(self):
        self.next(self.join)

    @step
    def b(self):
        self.next(self.join)

    @step
    def c(self):
        self.next(self.join2)

    @step
    def join(self, inputs):  # @three-way
        self.next(self.join2)

    @step
    def join2(self, inputs):  # @three-way-cross
        self.next(self.end)

    @step
    def end(self):
        pass


class BrokenBranchFlow(FlowSpec):
    @step
    def start(self):
        self.next(self.a, self.b)

    @step
    def a(self):
        self.next(self.joinn)  # @broken-branch

    @step
    def b(self):
        self.next(self.join)

    @step
    def join(self, inputs):
        self.next(self.end)

    @step
    def end(self):
        pass


def test_join_missing_a_branch():
    got = found(ThreeWayFlow)
    assert ("join-missing-branch", "join", line("three-way")) in got
    assert ("cross-join", "join2", line("three-way-cross")) in got
    msg = messages(ThreeWayFlow)["join-missing-branch"]
    assert (
        msg == 'does not join every branch of the split at "start": branch(es) "c" never reach it'
    )


def test_a_broken_branch_is_reported_once():
    # the join misses branch "a" only because a's transition is broken: no second report
    assert found(BrokenBranchFlow) == [("unknown-step", "a", line("broken-branch"))]


def test_steps_without_source_are_reported_not_raised():
    namespace = {"FlowSpec": FlowSpec, "step": step}
    exec(
        "class NoSourceFlow(FlowSpec):\n"
        "    @step\n"
        "    def start(self):\n"
        "        self.next(self.end)\n"
        "    @step\n"
        "    def end(self):\n"
        "        pass\n",
        namespace,
    )
    graph = FlowGraph(namespace["NoSourceFlow"])
    assert [(p.code, p.step) for p in check(graph)] == [
        ("no-source", "start"),
        ("no-source", "end"),
    ]


def test_flow_defined_in_a_function_is_located():
    class LocalFlow(FlowSpec):  # @local-flow
        @step
        def start(self):
            self.next(self.start)  # @local-loop

    got = found(LocalFlow)
    assert ("missing-end", None, line("local-flow")) in got
    assert ("cycle", "start", line("local-loop")) in got


# --------------------------------------------------------------------------- names and args


class BadNamesFlow(FlowSpec):
    @step
    def start(self):
        self.next(self._hidden)

    @step
    def _hidden(self):  # @underscore
        self.next(self.Upper)

    @step
    def Upper(self):  # @upper
        self.next(self.input)

    @step
    def input(self):  # @reserved-input
        self.next(self.foreach_stack)

    @step
    def foreach_stack(self):  # @reserved-stack
        self.next(self.end)

    @step
    def end(self):
        pass


class BadSignaturesFlow(FlowSpec):
    @step
    def start(self, inputs):  # @start-inputs
        self.next(self.a)

    @step
    def a():  # @no-self
        self.next(self.b)  # noqa: F821

    @step
    def b(self, inputs, more):  # @too-many
        self.next(self.end)

    @step
    def end(self):
        pass


def test_bad_step_names():
    assert found(BadNamesFlow) == [
        ("bad-step-name", "_hidden", line("underscore")),
        ("bad-step-name", "Upper", line("upper")),
        ("reserved-step-name", "input", line("reserved-input")),
        ("reserved-step-name", "foreach_stack", line("reserved-stack")),
    ]


def test_bad_signatures():
    got = found(BadSignaturesFlow)
    assert ("start-takes-inputs", "start", line("start-inputs")) in got
    assert ("bad-arguments", "a", line("no-self")) in got
    assert ("bad-arguments", "b", line("too-many")) in got


class EndInputsFlow(FlowSpec):
    @step
    def start(self):
        self.next(self.a, self.b)  # @end-join-split

    @step
    def a(self):
        self.next(self.end)

    @step
    def b(self):
        self.next(self.end)

    @step
    def end(self, inputs):  # @end-inputs
        pass


def test_end_cannot_be_a_join():
    assert found(EndInputsFlow) == [
        ("never-joined", "start", line("end-join-split")),
        ("end-takes-inputs", "end", line("end-inputs")),
        ("not-a-join-but-joins", "end", line("end-inputs")),
    ]
    assert "add a join step before end" in messages(EndInputsFlow)["not-a-join-but-joins"]


# --------------------------------------------------------------------------- all at once


class ManyProblemsFlow(FlowSpec):
    @step
    def start(self):
        self.next(self.a, self.b)

    @step
    def a(self):
        self.next(self.body, foreach="missing")  # @many-foreach

    @step
    def body(self):
        self.next(self.joim)  # @many-unknown

    @step
    def b(self):  # @many-no-next
        pass

    @step
    def join(self, inputs):  # @many-orphan
        self.next(self.end)

    @step
    def _private(self):  # @many-private
        self.next(self.end)

    @step
    def end(self):
        pass


def test_every_problem_is_reported_at_once():
    graph = FlowGraph(ManyProblemsFlow)
    got = found(ManyProblemsFlow)
    for expected in [
        ("foreach-missing-name", "a", line("many-foreach")),
        ("unknown-step", "body", line("many-unknown")),
        ("no-next", "b", line("many-no-next")),
        ("unreachable", "join", line("many-orphan")),
        ("unreachable", "_private", line("many-private")),
        ("bad-step-name", "_private", line("many-private")),
    ]:
        assert expected in got
    assert got == sorted(got, key=lambda g: g[2])  # in source order
    with pytest.raises(InvalidGraph) as info:
        validate(graph)
    err = info.value
    assert isinstance(err, MetaflowlikeException) and err.headline == "Invalid flow graph"
    lines = str(err).splitlines()
    assert lines == [str(p) for p in check(graph)]
    assert len(lines) == len(got) >= 6
    assert f'{__file__}:{line("many-unknown")}: step "body": self.next() goes to unknown' in str(
        err
    )
    assert err.lineno == got[0][2]


def test_validate_accepts_a_good_flow():
    validate(FlowGraph(ForeachFoundFlow))
    validate(FlowGraph(DynamicSetattrFlow))


def test_check_is_repeatable():
    graph = FlowGraph(ManyProblemsFlow)
    assert check(graph) == check(graph)
    assert graph.problems == FlowGraph(ManyProblemsFlow).problems


def test_problem_format():
    p = GraphProblem("x", "what is wrong", "/f.py", 3, step="a", flow="F")
    assert str(p) == '/f.py:3: step "a": what is wrong'
    assert str(GraphProblem("x", "bad", "/f.py", 1, flow="F")) == '/f.py:1: flow "F": bad'


# --------------------------------------------------------------------------- switches


class SwitchArgumentsFlow(FlowSpec):
    @step
    def start(self):
        name = "route"
        self.route = "a"
        self.next({"a": self.a, "b": self.b}, condition=name)  # @switch-condition-variable

    @step
    def a(self):
        key = "x"
        self.next({key: self.b, "y": self.c})  # @switch-bad-key

    @step
    def b(self):
        self.k = 1
        self.next({1: self.c}, condition="k")  # @switch-one-case

    @step
    def c(self):
        self.next(self.end, condition="k")  # @condition-no-dict

    @step
    def end(self):
        pass


def test_switch_argument_problems():
    got = found(SwitchArgumentsFlow)
    for expected in [
        ("condition-not-literal", "start", line("switch-condition-variable")),
        ("switch-bad-key", "a", line("switch-bad-key")),
        ("switch-without-condition", "a", line("switch-bad-key")),
        ("switch-too-few-cases", "b", line("switch-one-case")),
        ("condition-without-switch", "c", line("condition-no-dict")),
    ]:
        assert expected in got, expected
    text = messages(SwitchArgumentsFlow)
    assert "condition='route', not `name`" in text["condition-not-literal"]
    assert "string or number literals" in text["switch-bad-key"]


class SwitchShapeFlow(FlowSpec):
    @step
    def start(self):
        self.next(self.a, self.b)

    @step
    def a(self):
        self.next({"x": self.join, "y": self.a2}, condition="mode")  # @switch-into-join

    @step
    def a2(self):
        self.next(self.join)

    @step
    def b(self):
        self.mode = "x"
        self.next(self.join)

    @step
    def join(self, inputs):
        self.next(self.loop)

    @step
    def loop(self):
        self.again = True
        self.next(self.body)

    @step
    def body(self):
        self.next({True: self.loop, False: self.end}, condition="again")  # @switch-back

    @step
    def end(self):
        pass


def test_switch_shape_problems():
    got = found(SwitchShapeFlow)
    assert ("split-into-join", "a", line("switch-into-join")) in got
    assert ("condition-missing-name", "a", line("switch-into-join")) in got
    assert ("cycle", "body", line("switch-back")) in got
    text = messages(SwitchShapeFlow)
    assert 'a case of this switch goes straight to the join "join"' in text["split-into-join"]
    assert 'a switch may only loop back to its own step ("body")' in text["cycle"]
    assert 'switch on missing name "mode"' in text["condition-missing-name"]


class GoodSwitchFlow(FlowSpec):
    @step
    def start(self):
        self.go = "loop"
        self.next(self.spin)

    @step
    def spin(self):
        self.next({"loop": self.spin, "out": self.end}, condition="go")

    @step
    def end(self):
        pass


def test_recursive_switch_to_end_is_valid():
    assert check(FlowGraph(GoodSwitchFlow)) == []
    node = FlowGraph(GoodSwitchFlow)["spin"]
    assert node.is_switch and node.condition == "go"
    assert node.switch_cases == (("loop", "spin"), ("out", "end"))
