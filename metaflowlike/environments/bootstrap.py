"""Rebuild a step's environment from the lock its run saved, then run the step in it.

What a remote machine (a pod, a Batch job) runs in place of ``python flow.py step``::

    python -m metaflowlike.environments.bootstrap FLOW RUN_ID STEP -- python flow.py ... step STEP ...

It reads the run's record from the datastore named in the step command (or the
configured one), builds the environment with uv from the saved lock (exact versions
and hashes, so the step gets what the laptop resolved), caching it under
``METAFLOWLIKE_ENVS_DIR`` where the target keeps that folder, and replaces itself with
the step command run by the environment's interpreter. A step without a saved lock
runs unchanged.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence

from ..exceptions import MetaflowlikeException
from .build import ensure_built, env_python, shim_dir
from .errors import MissingUv
from .lock import Lock, envs_root
from .plan import saved_lock
from .uv_tool import uv_binary


def bootstrap_command(flow: str, run_id: str, step: str, command: Sequence[str]) -> list[str]:
    """``command`` (a ``python flow.py ... step ...`` line) wrapped in the bootstrap."""
    return [
        "python",
        "-m",
        "metaflowlike.environments.bootstrap",
        flow,
        run_id,
        step,
        "--",
        *command,
    ]


def _datastore_args(command: Sequence[str]) -> tuple[str | None, str | None]:
    ds_type = root = None
    for i, arg in enumerate(command[:-1]):
        if arg == "--datastore":
            ds_type = command[i + 1]
        elif arg == "--datastore-root":
            root = command[i + 1]
    return ds_type, root


def prepare(flow: str, run_id: str, step: str, command: Sequence[str]) -> tuple[list[str], dict]:
    """The command to run and the variables to add: the step command under the
    environment's interpreter, or unchanged when the step has no saved lock."""
    from .. import config

    fds = config.open_datastore(*_datastore_args(command))
    record = fds.read_run(flow, run_id)
    if record is None:
        raise MetaflowlikeException(
            f"Run {flow}/{run_id} has no run record in {fds.storage.url()}."
        )
    saved = saved_lock(record, step)
    if saved is None:
        return list(command), {}
    lock = Lock.from_dict(saved)
    ensure_uv()
    python = _local_python(lock)
    folder = ensure_built(lock, python=python)
    paths = [shim_dir(), os.environ.get("PYTHONPATH", "")]
    return [env_python(folder), *command[1:]], {
        "PYTHONPATH": os.pathsep.join(p for p in paths if p),
        "PYTHONNOUSERSITE": "1",
    }


def ensure_uv() -> None:
    """Make uv available: an image with only Python and pip gets it installed once into
    the environment cache (kept across tasks where the target keeps that folder)."""
    import subprocess

    target = os.path.join(envs_root(), ".uv")
    os.environ["PATH"] = os.pathsep.join([os.path.join(target, "bin"), os.environ["PATH"]])
    try:
        uv_binary()
        return
    except MissingUv:
        pass
    sys.stderr.write("Installing uv to build the step's environment...\n")
    proc = subprocess.run(
        [sys.executable, "-m", "pip", "install", "--quiet", "--target", target, "uv"],
        capture_output=True,
        text=True,
    )
    if proc.returncode != 0:
        raise MissingUv(
            f"This machine has no uv and `pip install uv` failed ({proc.stderr.strip()[-500:]}). "
            f"Install uv in the image (pip install uv) to run steps with @pypi here."
        )
    uv_binary()


def _local_python(lock: Lock) -> str:
    """This machine's interpreter for the lock: the one running the bootstrap when its
    minor version matches, else whatever uv finds for that version."""
    here = f"{sys.version_info.major}.{sys.version_info.minor}"
    return sys.executable if here == lock.python_minor else lock.python_minor


def main(argv: Sequence[str] | None = None) -> None:
    args = list(sys.argv[1:] if argv is None else argv)
    if "--" not in args or args.index("--") != 3 or len(args) < 5:
        sys.stderr.write(
            "usage: python -m metaflowlike.environments.bootstrap FLOW RUN STEP -- CMD\n"
        )
        sys.exit(2)
    flow, run_id, step = args[:3]
    try:
        command, env = prepare(flow, run_id, step, args[4:])
    except MetaflowlikeException as e:
        sys.stderr.write(f"{e.headline}: {e}\n")
        sys.exit(1)
    os.environ.update(env)
    sys.stdout.flush()
    sys.stderr.flush()
    os.execvpe(command[0], command, os.environ)


if __name__ == "__main__":
    main()
