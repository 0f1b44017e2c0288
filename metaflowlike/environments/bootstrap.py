"""Rebuild a step's environment from the lock its run saved, then run the step in it.

What a remote machine (a pod, a Batch job) runs, once the code package is unpacked in
its working directory, in place of ``python flow.py ... step STEP ...``::

    python -m metaflowlike.environments.bootstrap FLOW -- flow.py ... step STEP --run-id=R ...

A deployed task (Step Functions, Argo) runs ``deployed-step`` instead, whose run may not
exist yet; its lock comes from the deployment's stored locks, named by the command's
``--environments`` (see ``deployed.py``).

The step command's own arguments follow ``--``; the bootstrap reads the run id and step
from them (with the one parser of step commands) and the datastore from their top
options (or the configured one), reads the run's record, builds the environment with uv
from the lock saved there (exact versions and hashes, so the step gets what the laptop
resolved), and replaces itself with the step command run by the environment's
interpreter. A step without a saved lock runs with this interpreter, unchanged.

Where it caches: built environments and uv's download cache go under
``METAFLOWLIKE_ENVS_DIR`` when the container has it (point it at a volume that outlives
the container, and tasks after the first start at once), else under the user's cache
folder when it is writable, else in the working directory, which lives as long as the
task. uv itself is a native program, so it does not travel in the code package (the
laptop's build may not run in the container): the image provides it (``pip install
uv``), or the bootstrap installs it from the package index into the cache, once.

The runtime puts this in the container command through ``StepEnvironment``'s
``remote_wrapper`` (see ``metaflowlike.launchers``): no launcher knows about it.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Sequence

from ..exceptions import MetaflowlikeException
from .build import ensure_built, env_python, shim_dir
from .errors import MissingUv
from .lock import Lock, envs_root
from .plan import lock_in, saved_lock
from .uv_tool import uv_binary

MODULE = "metaflowlike.environments.bootstrap"
#: the environment cache of a container that was given none
LOCAL_CACHE = ".metaflowlike-envs"


def remote_wrapper(flow: str) -> tuple[str, ...]:
    """The interpreter arguments that run a step command's arguments through here."""
    return ("-m", MODULE, flow, "--")


def _datastore_args(command: Sequence[str]) -> tuple[str | None, str | None]:
    ds_type = root = None
    for i, arg in enumerate(command[:-1]):
        if arg == "--datastore":
            ds_type = command[i + 1]
        elif arg == "--datastore-root":
            root = command[i + 1]
    return ds_type, root


def _task(flow: str, args: Sequence[str]) -> tuple[str, str]:
    """(run id, step) of a step command's arguments ``flow.py [TOP] step STEP ...``."""
    from ..step_command import parse_step_args

    if "step" not in args:
        raise MetaflowlikeException(
            f"The environment bootstrap runs step commands only; got {' '.join(args)}."
        )
    spec, _ = parse_step_args(flow, list(args[list(args).index("step") + 1 :]))
    return spec.run_id, spec.step_name


def _deployed_task(args: Sequence[str]) -> tuple[str, str] | None:
    """(step, where its locks are stored) of ``flow.py [TOP] deployed-step STEP
    --environments KEY``; None for any other command."""
    from ..deployment.plan import ENTRY_COMMAND, ENVIRONMENTS_OPTION

    args = list(args)
    if ENTRY_COMMAND not in args or ENVIRONMENTS_OPTION not in args[:-1]:
        return None
    step = args[args.index(ENTRY_COMMAND) + 1]
    return step, args[args.index(ENVIRONMENTS_OPTION) + 1]


def _saved(flow: str, args: Sequence[str]) -> dict | None:
    """The lock the step of this command runs with: from the deployment's stored locks
    for a deployed task (its run may not exist yet), else from its run's record."""
    from .. import config

    fds = config.open_datastore(*_datastore_args(args))
    deployed_task = _deployed_task(args)
    if deployed_task is not None:
        from .deployed import load

        step, key = deployed_task
        return lock_in(load(fds, key), step)
    run_id, step = _task(flow, args)
    record = fds.read_run(flow, run_id)
    if record is None:
        raise MetaflowlikeException(
            f"Run {flow}/{run_id} has no run record in {fds.storage.url()}."
        )
    return saved_lock(record, step)


def prepare(flow: str, args: Sequence[str]) -> tuple[list[str], dict[str, str]]:
    """The command to run and the variables to add: the step command's arguments under
    the environment's interpreter, or under this one when the step has no saved lock."""
    saved = _saved(flow, args)
    if saved is None:
        return [sys.executable, *args], {}
    lock = Lock.from_dict(saved)
    use_cache()
    ensure_uv()
    folder = ensure_built(lock, python=_local_python(lock))
    # metaflowlike comes from the unpacked code package (the working directory), or
    # from this machine's installation when there is one
    code = shim_dir() or os.getcwd()
    paths = [code, os.environ.get("PYTHONPATH", "")]
    return [env_python(folder), *args], {
        "PYTHONPATH": os.pathsep.join(p for p in paths if p),
        "PYTHONNOUSERSITE": "1",
    }


def use_cache() -> None:
    """Choose the environment cache (see the module's docstring) and put uv's own
    download cache beside it, so that a kept cache also spares the downloads."""
    if not os.environ.get("METAFLOWLIKE_ENVS_DIR") and not _home_writable():
        os.environ["METAFLOWLIKE_ENVS_DIR"] = os.path.abspath(LOCAL_CACHE)
    os.environ.setdefault("UV_CACHE_DIR", os.path.join(envs_root(), ".uv-cache"))


def _home_writable() -> bool:
    """Whether the user's home exists and is writable: containers often set ``HOME`` to
    a folder that does not exist (``/nonexistent``), which is never created here."""
    home = os.path.expanduser("~")
    return os.path.isdir(home) and os.access(home, os.W_OK)


def ensure_uv() -> None:
    """Make uv available: from the image, else installed once from the package index
    into the environment cache (kept across tasks where the target keeps that folder)."""
    target = os.path.join(envs_root(), ".uv")
    os.environ["PATH"] = os.pathsep.join([os.path.join(target, "bin"), os.environ["PATH"]])
    uv_binary.cache_clear()
    try:
        uv_binary()
        return
    except MissingUv:
        pass
    sys.stderr.write("Installing uv to build the step's environment...\n")
    proc = subprocess.run(
        [sys.executable, "-m", "pip", "install", "--quiet", "--no-cache-dir", "--target", target]
        + ["uv"],
        capture_output=True,
        text=True,
    )
    if proc.returncode != 0:
        raise MissingUv(
            "This machine has no uv to build the step's environment with, and installing "
            f"it with pip failed ({proc.stderr.strip()[-500:] or 'no pip'}). Use an image "
            "that has uv (pip install uv), or one with pip and access to the package index."
        )
    uv_binary.cache_clear()
    uv_binary()


def _local_python(lock: Lock) -> str:
    """This machine's interpreter for the lock: the one running the bootstrap when its
    minor version matches, else whatever uv finds for that version."""
    here = f"{sys.version_info.major}.{sys.version_info.minor}"
    return sys.executable if here == lock.python_minor else lock.python_minor


def main(argv: Sequence[str] | None = None) -> None:
    args = list(sys.argv[1:] if argv is None else argv)
    if len(args) < 3 or args[1] != "--":
        sys.stderr.write(f"usage: python -m {MODULE} FLOW -- flow.py [OPTIONS] step STEP ...\n")
        sys.exit(2)
    try:
        command, env = prepare(args[0], args[2:])
    except MetaflowlikeException as e:
        sys.stderr.write(f"{e.headline}: {e}\n")
        sys.exit(1)
    os.environ.update(env)
    sys.stdout.flush()
    sys.stderr.flush()
    os.execve(command[0], command, os.environ)


if __name__ == "__main__":
    main()
