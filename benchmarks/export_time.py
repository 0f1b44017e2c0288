"""What exporting a 50-step flow costs: ``step-functions create --only-json`` and
``argo-workflows create --only-json``.

A deployment is exported on every ``create``, so it should take about as long as any
other command of a flow. This writes a flow of 50 steps (a chain, static branches and
a nested foreach), runs both commands as a user would, and reports, from the child
process's resource usage (robust on a shared machine, unlike wall-clock time):

* the CPU time (user + system) of each whole command, and the part spent compiling
  (measured in-process around the compiler, without the code package);
* the size of each document (Step Functions accepts definitions up to 1 MB);
* the same flow under ``@pypi_base`` with ``--environment=pypi``: the first command
  resolves the lock with uv (cold: an empty environment cache, uv's download cache as
  it is), later ones find the resolution cached (warm). Nothing is built on export.

    python benchmarks/export_time.py             # median of 5
    python benchmarks/export_time.py --repeat 3
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path


def flow_source(steps: int = 50, pypi: bool = False) -> str:
    """A flow of ``steps`` steps: a branch of two, a nested foreach, then a chain;
    ``pypi`` declares one package for every step with ``@pypi_base``."""
    head = """
    from metaflowlike import FlowSpec, Parameter, pypi_base, retry, step


    @pypi_base(packages={"six": "1.16.0"})
    class FiftyFlow(FlowSpec):
        n = Parameter("n", default=3)

        @step
        def start(self):
            self.items = list(range(self.n))
            self.next(self.a, self.b)

        @step
        def a(self):
            self.next(self.ab)

        @retry(times=2)
        @step
        def b(self):
            self.next(self.ab)

        @step
        def ab(self, inputs):
            self.items = inputs[0].items
            self.next(self.outer)

        @step
        def outer(self):
            self.next(self.mid, foreach="items")

        @step
        def mid(self):
            self.inner = [1, 2]
            self.next(self.leaf, foreach="inner")

        @step
        def leaf(self):
            self.next(self.inner_join)

        @step
        def inner_join(self, inputs):
            self.next(self.outer_join)

        @step
        def outer_join(self, inputs):
            self.next(self.s0)
    """
    chain = steps - 10  # the ten steps above, and end
    body = []
    for i in range(chain):
        nxt = f"self.s{i + 1}" if i + 1 < chain else "self.end"
        body += [
            "    @step",
            f"    def s{i}(self):",
            f"        self.x{i} = {i}",
            f"        self.next({nxt})",
            "",
        ]
    tail = [
        "    @step",
        "    def end(self):",
        "        pass",
        "",
        "",
        'if __name__ == "__main__":',
        "    FiftyFlow()",
    ]
    head = textwrap.dedent(head)
    if not pypi:
        head = head.replace('@pypi_base(packages={"six": "1.16.0"})\n', "")
    return head + "\n" + "\n".join(body + tail) + "\n"


def child_cpu(argv: list[str], env: dict, cwd: str) -> tuple[float, str]:
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    proc = subprocess.run(argv, env=env, cwd=cwd, capture_output=True, text=True, check=True)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return cpu, proc.stdout


def compile_cpu(path: Path, root: str, target: str) -> tuple[float, float]:
    """CPU seconds of the plan (which builds the code package, whose hash the document
    names) and of ``target``'s compiler alone, in this process."""
    import importlib.util

    from metaflowlike.cli import _State
    from metaflowlike.deployment.plan import build_plan

    spec = importlib.util.spec_from_file_location("fifty_flow", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    sys.argv = [str(path)]
    state = _State(module.FiftyFlow, "s3", root, False)
    if target == "sfn":
        from metaflowlike_aws.sfn_cli import REFUSED
        from metaflowlike_aws.sfn_compiler import SfnCompiler

        start = time.process_time()
        plan = build_plan(state, target="Step Functions", platform="batch", name="x",
                          refused=REFUSED)  # fmt: skip
        planned = time.process_time()
        SfnCompiler(plan, user="bench").json()
    else:
        from metaflowlike_kubernetes.argo_cli import REFUSED, TARGET
        from metaflowlike_kubernetes.argo_compiler import ArgoTarget, compile_documents

        start = time.process_time()
        plan = build_plan(state, target=TARGET, platform="kubernetes", name="x",
                          refused=REFUSED)  # fmt: skip
        planned = time.process_time()
        compile_documents(plan, ArgoTarget("x", "default", "python:3.11-slim", "bench"))
    return planned - start, time.process_time() - planned


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="mfl-sfn-bench-") as tmp:
        path = Path(tmp) / "fifty.py"
        path.write_text(flow_source())
        root = "s3://bench-bucket/root"  # --only-json reads and writes nothing there
        env = {
            **os.environ,
            "METAFLOWLIKE_BATCH_JOB_QUEUE": "bench-queue",
            "METAFLOWLIKE_CONFIG": str(Path(tmp) / "none.json"),
        }
        os.environ.update(
            {k: env[k] for k in ("METAFLOWLIKE_BATCH_JOB_QUEUE", "METAFLOWLIKE_CONFIG")}
        )
        argv = [sys.executable, str(path), "--datastore", "s3", "--datastore-root", root]
        check_cpu = statistics.median(child_cpu([*argv, "check"], env, tmp)[0] for _ in range(3))
        print(f"python flow.py check of the 50-step flow, for scale: {check_cpu:.3f} s CPU")
        for target, command in (("sfn", "step-functions"), ("argo", "argo-workflows")):
            cpus, size = [], 0
            for _ in range(args.repeat):
                cpu, out = child_cpu([*argv, command, "create", "--only-json"], env, tmp)
                cpus.append(cpu)
                size = len(out.encode())
                json.loads(out)  # a whole, valid document
            inproc = [compile_cpu(path, root, target) for _ in range(args.repeat)]
            planned = statistics.median(p for p, _ in inproc)
            compiled = statistics.median(c for _, c in inproc)
            print(f"{command} create --only-json: {statistics.median(cpus):.3f} s CPU (median),"
                  f" {size} bytes")  # fmt: skip
            print(f"  the plan, with the code package: {planned:.3f} s CPU")
            print(f"  the compiler itself:             {compiled * 1000:.1f} ms CPU")
        pypi_case(tmp, argv, env, args.repeat)


def pypi_case(tmp: str, argv: list[str], env: dict, repeat: int) -> None:
    """The flow under ``@pypi_base`` and ``--environment=pypi``, cold then warm."""
    path = Path(tmp) / "fifty_pypi.py"
    path.write_text(flow_source(pypi=True))
    env = {**env, "METAFLOWLIKE_ENVS_DIR": str(Path(tmp) / "envs")}
    argv = [argv[0], str(path), "--environment=pypi", *argv[2:]]
    for target, command in (("sfn", "step-functions"), ("argo", "argo-workflows")):
        cpus, size = [], 0
        for _ in range(repeat + (target == "sfn")):  # the first one resolves: cold
            cpu, out = child_cpu([*argv, command, "create", "--only-json"], env, tmp)
            cpus.append(cpu)
            size = len(out.encode())
            json.loads(out)
        if target == "sfn":
            print(f"@pypi_base, {command} create --only-json, cold: {cpus.pop(0):.3f} s CPU")
        print(f"@pypi_base, {command} create --only-json, warm: {statistics.median(cpus):.3f} s"
              f" CPU (median), {size} bytes")  # fmt: skip


if __name__ == "__main__":
    main()
