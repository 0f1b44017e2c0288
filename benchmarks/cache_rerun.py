"""What ``run --cache`` saves: a 10-step flow rerun after changing one step.

Nine of the ten steps burn the same amount of CPU in user code (a fixed number of
hash rounds) and store their result; ``end`` gathers the results. The flow is run with
``--cache``: cold (every step executes), again unchanged (every task is cloned from
the cache), after editing step s4 so that its code changes but not its output (only
s4 executes), and after editing s4 so that its output changes too (s4 and ``end``,
which reads that output, execute; the other eight steps hit). A last row runs the flow
with no work and without ``--cache``: the cost of the runtime and its ten tasks alone.

Figures are CPU seconds of the runs' processes (``RUSAGE_CHILDREN``: the runtime and
every task it forked), and the number of tasks that executed, not wall-clock time, so
they hold on a shared machine.

    python benchmarks/cache_rerun.py [--rounds 300000]
"""

from __future__ import annotations

import argparse
import os
import re
import resource
import subprocess
import sys
import tempfile
from pathlib import Path

STEPS = [f"s{i}" for i in range(1, 9)]


def flow_source(rounds: int, middle: str) -> str:
    """start -> s1 .. s8 -> end: each of start and s1..s8 does the same work and
    stores its own result; ``end`` gathers them (no work of its own). ``middle`` is the
    expression s4 computes."""
    lines = [
        "import hashlib",
        "from metaflowlike import FlowSpec, step",
        "",
        "",
        "def work(seed):",
        "    h = hashlib.sha256(str(seed).encode())",
        f"    for _ in range({rounds}):",
        "        h = hashlib.sha256(h.digest())",
        "    return h.hexdigest()[:8]",
        "",
        "",
        "class TenSteps(FlowSpec):",
        "    @step",
        "    def start(self):",
        "        self.r0 = work(0)",
        "        self.next(self.s1)",
    ]
    chain = [*STEPS, "end"]
    for i, name in enumerate(STEPS, start=1):
        expr = middle if name == "s4" else f"work({i})"
        lines += ["", "    @step", f"    def {name}(self):", f"        self.r{i} = {expr}"]
        lines.append(f"        self.next(self.{chain[i]})")
    gathered = ", ".join(f"self.r{i}" for i in range(len(STEPS) + 1))
    lines += [
        "",
        "    @step",
        "    def end(self):",
        f"        self.results = [{gathered}]",
        "",
        "",
        'if __name__ == "__main__":',
        "    TenSteps()",
    ]
    return "\n".join(lines) + "\n"


def run(folder: Path, source: str, cache: bool = True) -> tuple[float, int, int]:
    """(CPU seconds, tasks executed, tasks cached) of one ``run [--cache]``."""
    (folder / "flow.py").write_text(source)
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    proc = subprocess.run(
        [sys.executable, "flow.py", "--datastore-root", "ds", "run"] + ["--cache"] * cache,
        cwd=folder,
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, "NO_COLOR": "1"},
    )
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    executed = len(re.findall(r"Task is starting", proc.stdout))
    cached = len(re.findall(r"Not executed: cached from", proc.stdout))
    return cpu, executed, cached


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=1_000_000, help="hash rounds per step")
    args = parser.parse_args()
    base = "work(4)"
    same_output = "work(int('4'))"  # other code, same bytes out
    new_output = "work(40)"
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        rows = [
            ("cold run", run(folder, flow_source(args.rounds, base))),
            ("rerun, nothing changed", run(folder, flow_source(args.rounds, base))),
            ("rerun, s4 edited, same output", run(folder, flow_source(args.rounds, same_output))),
            ("rerun, s4 edited, new output", run(folder, flow_source(args.rounds, new_output))),
        ]
    with tempfile.TemporaryDirectory() as tmp:  # what the runtime alone costs
        rows.append(("no work, no --cache", run(Path(tmp), flow_source(0, base), cache=False)))
    cold = rows[0][1][0]
    print(f"{'run':32} {'CPU s':>7} {'vs cold':>8} {'executed':>9} {'cached':>7}")
    for label, (cpu, executed, cached) in rows:
        print(f"{label:32} {cpu:7.2f} {cpu / cold:8.2f} {executed:9d} {cached:7d}")


if __name__ == "__main__":
    main()
