"""What making the local datastore power-loss safe costs: runs with and without fsync.

The local backend ``fsync``-s every object before renaming it into place and its folder
after (see ``metaflowlike/datastore/local_storage.py``); ``METAFLOWLIKE_FSYNC=0`` turns
that off. This runs the same flows both ways, alternating, each in a fresh datastore,
and prints the median wall time of each and their ratio:

* ``linear10``: ten tiny steps (each task writes a blob, a record, two logs, a marker);
* ``foreach100``: 103 tasks, two at a time;
* ``bigartifact``: one 256 MiB array (its blob is synced once, as a whole).

    python benchmarks/fsync_cost.py --repeat 5
    python benchmarks/fsync_cost.py --quick --repeat 1   # small sizes, a smoke test

The cost depends on the disk and file system far more than on the code: report the
machine (and the file system of the temporary folder) with the figures.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

FLOWS = Path(__file__).resolve().parent / "flows"
CASES = {
    "linear10": ["linear10.py", "run"],
    "foreach100": ["foreach.py", "run", "--n", "100", "--max-workers", "2"],
    "bigartifact": ["bigartifact.py", "run"],
}


def run_once(python: str, argv: list[str], fsync: bool, quick: bool) -> float:
    with tempfile.TemporaryDirectory(prefix="mfl-fsync-") as tmp:
        env = dict(os.environ)
        env.update(
            METAFLOWLIKE_DATASTORE_ROOT=str(Path(tmp) / ".metaflowlike"),
            METAFLOWLIKE_FSYNC="1" if fsync else "0",
            USERNAME="bench",
        )
        env.pop("METAFLOWLIKE_DATASTORE", None)
        if quick:
            argv = [a if a != "100" else "20" for a in argv]
            argv += ["--mb", "16"] if argv[0] == "bigartifact.py" else []
        cmd = [python, str(FLOWS / argv[0]), "--quiet", *argv[1:]]
        start = time.perf_counter()
        subprocess.run(cmd, check=True, env=env, cwd=tmp, stdout=subprocess.DEVNULL)
        return time.perf_counter() - start


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--repeat", type=int, default=5)
    p.add_argument("--quick", action="store_true")
    p.add_argument("--cases", default=",".join(CASES))
    p.add_argument("--python", default=sys.executable, help="interpreter with metaflowlike")
    args = p.parse_args(argv)
    cases = [c.strip() for c in args.cases.split(",")]
    print(f"temporary folder: {tempfile.gettempdir()}; load average {os.getloadavg()[0]:.2f}")
    print(f"{'case':<12} {'fsync on':>10} {'fsync off':>10} {'on/off':>7}")
    for case in cases:
        times: dict[bool, list[float]] = {True: [], False: []}
        for rep in range(args.repeat):
            for fsync in (True, False) if rep % 2 == 0 else (False, True):
                times[fsync].append(run_once(args.python, CASES[case], fsync, args.quick))
        on, off = statistics.median(times[True]), statistics.median(times[False])
        print(f"{case:<12} {on:>9.3f}s {off:>9.3f}s {on / off:>6.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
