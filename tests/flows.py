"""Flow sources that several test files run: one copy each.

Flows that differ on purpose (a lint test's broken flow, a flow shaped for one assertion)
stay in their test. These are the plain shapes that many tests only need to exist.
"""

from __future__ import annotations

import textwrap


def sleepy_flow(decorator: str) -> str:
    """``SleepyFlow``: step ``nap`` (under ``decorator``, e.g. ``"@batch"``) prints
    ``napping`` and sleeps two minutes, long enough for a test to interrupt it."""
    return f"""
import time
from metaflowlike import FlowSpec, step, batch, kubernetes

class SleepyFlow(FlowSpec):
    @step
    def start(self):
        self.next(self.nap)

    {decorator}
    @step
    def nap(self):
        print("napping", flush=True)
        time.sleep(120)
        self.next(self.end)

    @step
    def end(self):
        pass

if __name__ == "__main__":
    SleepyFlow()
"""


def two_steps(name: str, start: str = "", end: str = "pass") -> str:
    """The smallest flow, ``start`` then ``end``, each running the given lines."""
    start_body = _indented(textwrap.dedent(start).strip() + "\nself.next(self.end)")
    return f"""
from metaflowlike import FlowSpec, step

class {name}(FlowSpec):
    @step
    def start(self):
{start_body}

    @step
    def end(self):
{_indented(end)}

if __name__ == "__main__":
    {name}()
"""


def _indented(lines: str) -> str:
    """``lines`` as a step's body."""
    return textwrap.indent(textwrap.dedent(lines).strip(), " " * 8)
