"""Build an environment from a lock, once, into the shared cache.

An environment is a virtualenv at ``<envs root>/<lock key>``, built in a temporary
folder next to it and renamed into place when complete: a folder under its final name
is always whole, a build killed halfway leaves only a temporary folder that the next
build removes, and two runs building the same key at once both end up using one.

metaflowlike itself is not installed into environments (they are shared by every
checkout of it): ``shim_dir`` is a folder holding links to the metaflowlike packages
and their entry points, put on the task's ``PYTHONPATH``.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import shutil
import tempfile
import time

from .errors import EnvironmentFailure
from .lock import Lock, _write_json, envs_root
from .uv_tool import run_uv, uv_message

LOCK_FILE = "metaflowlike-lock.json"
_STALE_SECONDS = 3600  # a temporary build folder this old belongs to a dead build


def env_dir(key: str, root: str | None = None) -> str:
    return os.path.join(root or envs_root(), key)


def env_python(path: str) -> str:
    return os.path.join(path, "bin", "python")


def is_built(key: str, root: str | None = None) -> bool:
    return os.path.exists(os.path.join(env_dir(key, root), LOCK_FILE))


def ensure_built(lock: Lock, *, root: str | None = None, python: str | None = None) -> str:
    """The folder of ``lock``'s environment, built now if it is not in the cache.

    ``python`` overrides the interpreter to build on (a remote machine builds on its
    own Python of the same minor version)."""
    root = root or envs_root()
    final = env_dir(lock.key, root)
    if os.path.exists(os.path.join(final, LOCK_FILE)):
        return final
    os.makedirs(root, exist_ok=True)
    _remove_stale_builds(root)
    if os.path.exists(final):  # never left by a build (the rename is atomic): debris
        shutil.rmtree(final, ignore_errors=True)
    tmp = tempfile.mkdtemp(prefix=f".build-{lock.key[:12]}-", dir=root)
    try:
        _build(lock, tmp, python or _interpreter_for(lock))
        try:
            os.rename(tmp, final)
        except OSError:
            if not os.path.exists(os.path.join(final, LOCK_FILE)):
                raise
            # another process finished the same environment first: use theirs
    finally:
        if os.path.exists(tmp):
            shutil.rmtree(tmp, ignore_errors=True)
    return final


def _interpreter_for(lock: Lock) -> str:
    if lock.interpreter and os.path.exists(lock.interpreter):
        return lock.interpreter
    return lock.python_minor


def _build(lock: Lock, path: str, python: str) -> None:
    proc = run_uv(["venv", "--quiet", "--relocatable", "--python", python, path])
    if proc.returncode != 0:
        raise EnvironmentFailure(
            f"Cannot create a Python {lock.python_minor} environment: {uv_message(proc)}"
        )
    req = os.path.join(path, "metaflowlike-requirements.txt")
    with open(req, "w") as f:
        f.write(lock.requirements)
    proc = run_uv(
        [
            "pip",
            "sync",
            "--quiet",
            "--require-hashes",
            "--python",
            env_python(path),
            req,
        ]
    )
    if proc.returncode != 0:
        raise EnvironmentFailure(
            f"Cannot install the environment {lock.key[:12]} "
            f"({', '.join(f'{k}=={v}' for k, v in lock.packages().items())}): {uv_message(proc)}"
        )
    _write_json(os.path.join(path, LOCK_FILE), lock.to_dict())  # written last: "complete"


def _remove_stale_builds(root: str) -> None:
    now = time.time()
    for name in os.listdir(root):
        if not name.startswith(".build-"):
            continue
        path = os.path.join(root, name)
        try:
            if now - os.path.getmtime(path) > _STALE_SECONDS:
                shutil.rmtree(path, ignore_errors=True)
        except OSError:
            pass


def shim_dir(root: str | None = None) -> str:
    """A folder that makes this metaflowlike (and its plugins) importable, and its
    entry points discoverable, from any environment: links, plus a minimal dist-info.
    Empty when metaflowlike is not an installed distribution."""
    from importlib import metadata

    root = root or envs_root()
    try:
        dist = metadata.distribution("metaflowlike")
    except metadata.PackageNotFoundError:
        # Not installed, e.g. unpacked from a code package that is already on the
        # PYTHONPATH of a remote task: nothing to add.
        return ""
    entry_points = dist.read_text("entry_points.txt") or ""
    packages = {"metaflowlike"} | {ep.value.split(":")[0].split(".")[0] for ep in dist.entry_points}
    locations = {}
    for name in sorted(packages):
        spec = importlib.util.find_spec(name)
        if spec is not None and spec.submodule_search_locations:
            locations[name] = list(spec.submodule_search_locations)[0]
    identity = repr((sorted(locations.items()), dist.version, entry_points))
    final = os.path.join(root, "shims", hashlib.sha256(identity.encode()).hexdigest()[:16])
    if os.path.isdir(final):
        return final
    os.makedirs(os.path.dirname(final), exist_ok=True)
    tmp = tempfile.mkdtemp(prefix=".shim-", dir=os.path.dirname(final))
    for name, location in locations.items():
        os.symlink(location, os.path.join(tmp, name))
    info = os.path.join(tmp, f"metaflowlike-{dist.version}.dist-info")
    os.mkdir(info)
    with open(os.path.join(info, "METADATA"), "w") as f:
        f.write(f"Metadata-Version: 2.1\nName: metaflowlike\nVersion: {dist.version}\n")
    with open(os.path.join(info, "entry_points.txt"), "w") as f:
        f.write(entry_points)
    try:
        os.rename(tmp, final)
    except OSError:
        shutil.rmtree(tmp, ignore_errors=True)
    return final
