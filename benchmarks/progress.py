"""Does the live progress display slow a run down? A foreach of 500 tasks, run with its
output on a pseudo-terminal (the rich display is on) and on a pipe (plain lines),
alternating, and the median wall time and CPU of each compared as a ratio.

    python benchmarks/progress.py                 # n=500, 5 repetitions of each
    python benchmarks/progress.py --n 100 --repeat 3

Uses only the standard library; runs metaflowlike with the interpreter running this
script (``--python`` to choose another).
"""

from __future__ import annotations

import argparse
import json
import os
import pty
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

FLOW = Path(__file__).resolve().parent / "flows" / "foreach.py"
TARGET_RATIO = 1.10


def _drain(fd: int) -> int:
    total = 0
    while True:
        try:
            data = os.read(fd, 65536)
        except OSError:  # the terminal closed: every writer has exited
            return total
        if not data:
            return total
        total += len(data)


def run_once(python: str, n: int, terminal: bool, root: str) -> dict:
    """Wall time, CPU of the process tree, and bytes written, for one run."""
    cmd = [python, str(FLOW), "--datastore-root", root, "run", "--n", str(n),
           "--max-workers", "2", "--max-num-splits", str(max(100, n))]  # fmt: skip
    env = {k: v for k, v in os.environ.items() if k not in ("NO_COLOR", "PYTHONPATH")}
    env.update(TERM="xterm-256color", COLUMNS="120")
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    if terminal:
        master, slave = pty.openpty()
        proc = subprocess.Popen(cmd, stdout=slave, stderr=slave, stdin=subprocess.DEVNULL, env=env)
        os.close(slave)
        written = _drain(master)
        os.close(master)
    else:
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env)
        written = len(proc.stdout.read())
        proc.stdout.close()
    code = proc.wait()
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if code != 0:
        raise SystemExit(f"the run failed ({'terminal' if terminal else 'pipe'}), exit {code}")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return {"wall": wall, "cpu": cpu, "bytes": written}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=500)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--python", default=sys.executable)
    parser.add_argument("--json", default=None, help="Also write the raw numbers here.")
    args = parser.parse_args(argv)
    results: dict[str, list[dict]] = {"terminal": [], "pipe": []}
    with tempfile.TemporaryDirectory(prefix="mfl-bench-progress-") as scratch:
        run_once(args.python, 10, True, f"{scratch}/warm")  # fill bytecode caches
        for rep in range(args.repeat):
            order = ("terminal", "pipe") if rep % 2 == 0 else ("pipe", "terminal")
            for mode in order:
                root = f"{scratch}/{mode}{rep}"
                results[mode].append(run_once(args.python, args.n, mode == "terminal", root))
    med = {
        mode: {k: statistics.median(r[k] for r in runs) for k in ("wall", "cpu", "bytes")}
        for mode, runs in results.items()
    }
    ratio_wall = med["terminal"]["wall"] / med["pipe"]["wall"]
    ratio_cpu = med["terminal"]["cpu"] / med["pipe"]["cpu"]
    print(f"foreach of {args.n}, {args.repeat} repetitions each, medians:")
    for mode in ("pipe", "terminal"):
        m = med[mode]
        print(
            f"  {mode:<9} wall {m['wall']:6.2f} s   cpu {m['cpu']:6.2f} s   output {m['bytes'] / 1024:7.1f} KiB"
        )
    verdict = "PASS" if ratio_wall <= TARGET_RATIO else "FAIL"
    print(f"  terminal/pipe: wall x{ratio_wall:.3f}, cpu x{ratio_cpu:.3f} "
          f"(target: wall <= x{TARGET_RATIO:.2f}) {verdict}")  # fmt: skip
    if args.json:
        Path(args.json).write_text(json.dumps({"n": args.n, "results": results}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
