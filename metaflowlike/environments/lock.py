"""Resolve a request into a lock with uv, and cache resolutions.

A lock is the full ``requirements.txt`` uv compiles for one interpreter: every package
with its exact version and hashes. Its key hashes the lock text, the Python version and
the platform, so two steps (or two runs) asking for the same thing share one
environment. Resolutions are cached by request, so a warm run runs no uv at all.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import sys
import tempfile
from dataclasses import asdict, dataclass

from .errors import EnvironmentFailure, PythonNotAvailable, ResolutionFailed
from .request import EnvRequest, normalize
from .uv_tool import run_uv, uv_message

_PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)(?:\[[^\]]*\])?==([^\s;\\]+)")


def envs_root() -> str:
    """Where environments and resolutions are cached: ``METAFLOWLIKE_ENVS_DIR``, else
    the user's cache folder. Shared by every flow and run of this user."""
    configured = os.environ.get("METAFLOWLIKE_ENVS_DIR")
    if configured:
        return os.path.abspath(os.path.expanduser(configured))
    cache = os.environ.get("XDG_CACHE_HOME") or os.path.join("~", ".cache")
    return os.path.join(os.path.expanduser(cache), "metaflowlike", "envs")


@dataclass(frozen=True)
class Lock:
    """A resolved environment: what gets saved with the run and rebuilt remotely."""

    requirements: str  # uv's compiled requirements.txt, with hashes
    python: str  # full version of the interpreter resolved for, e.g. "3.11.7"
    platform: str  # sysconfig platform, e.g. "linux-x86_64"
    request: str  # digest of the EnvRequest it answers
    interpreter: str = ""  # the interpreter used on the machine that resolved it

    @property
    def key(self) -> str:
        doc = {"requirements": self.requirements, "python": self.python, "platform": self.platform}
        return hashlib.sha256(json.dumps(doc, sort_keys=True).encode()).hexdigest()[:32]

    @property
    def python_minor(self) -> str:
        return ".".join(self.python.split(".")[:2])

    def packages(self) -> dict[str, str]:
        """Name -> exact version of every package in the environment."""
        found = {}
        for line in self.requirements.splitlines():
            m = _PIN.match(line.strip())
            if m:
                found[normalize(m.group(1))] = m.group(2)
        return dict(sorted(found.items()))

    def to_dict(self) -> dict:
        return dict(asdict(self), key=self.key, packages=self.packages())

    @classmethod
    def from_dict(cls, doc: dict) -> Lock:
        fields = ("requirements", "python", "platform", "request", "interpreter")
        return cls(**{k: doc.get(k, "") for k in fields})


@dataclass(frozen=True)
class Interpreter:
    path: str
    version: str
    platform: str


_PROBE = (
    "import platform, sysconfig; print(platform.python_version()); print(sysconfig.get_platform())"
)


def find_interpreter(request: EnvRequest) -> Interpreter:
    """The interpreter an environment is built on: the requested version found by uv,
    else the project's (``.python-version``/``requires-python``), else the one running
    the flow."""
    if request.python is None and request.project is None:
        import platform
        import sysconfig

        return Interpreter(sys.executable, platform.python_version(), sysconfig.get_platform())
    args = ["python", "find", "--system"]
    if request.python:
        args.append(request.python)
    proc = run_uv(args, cwd=request.project)
    path = proc.stdout.strip().splitlines()[-1] if proc.stdout.strip() else ""
    if proc.returncode != 0 or not path:
        wanted = f"Python {request.python}" if request.python else "The project's Python"
        raise PythonNotAvailable(
            f"{wanted} ({request.where}) is not installed on this machine ({uv_message(proc)}). "
            f"Install it with your system's package manager or with `uv python install "
            f"{request.python or '<version>'}`, or let uv download a managed Python for "
            f"environments by setting UV_PYTHON_DOWNLOADS=automatic (this needs network "
            f"access to the Python builds)."
        )
    probe = _run_python(path, _PROBE)
    version, plat = probe.split()[:2]
    return Interpreter(path, version, plat)


def _run_python(path: str, code: str) -> str:
    import subprocess

    proc = subprocess.run([path, "-I", "-c", code], capture_output=True, text=True)
    if proc.returncode != 0:
        raise EnvironmentFailure(f"Cannot run the interpreter {path}: {proc.stderr.strip()}")
    return proc.stdout


def _cache_path(request: EnvRequest, interpreter: str) -> str:
    digest = hashlib.sha256(f"{request.digest()}\0{interpreter}".encode()).hexdigest()[:32]
    return os.path.join(envs_root(), "resolved", f"{digest}.json")


def cached(request: EnvRequest) -> Lock | None:
    """The cached resolution of ``request``, without running anything slow."""
    interpreter = sys.executable if request.python is None and request.project is None else ""
    path = _cache_path(request, interpreter)
    try:
        with open(path) as f:
            lock = Lock.from_dict(json.load(f))
    except (OSError, ValueError, TypeError):
        return None
    if lock.interpreter and not os.path.exists(lock.interpreter):
        return None
    return lock


def resolve(request: EnvRequest, *, force: bool = False) -> Lock:
    """The lock of ``request``: from the cache, else resolved with uv and cached."""
    if not force:
        hit = cached(request)
        if hit is not None:
            return hit
    interp = find_interpreter(request)
    requirements = list(request.requirements)
    if request.project is not None:
        requirements = project_requirements(request.project) + requirements
    text = _compile(request, interp, requirements)
    lock = Lock(text, interp.version, interp.platform, request.digest(), interp.path)
    key_interp = sys.executable if request.python is None and request.project is None else ""
    _write_json(_cache_path(request, key_interp), lock.to_dict())
    return lock


def _compile(request: EnvRequest, interp: Interpreter, requirements: list[str]) -> str:
    with tempfile.TemporaryDirectory(prefix="mfl-resolve-") as tmp:
        infile = os.path.join(tmp, "requirements.in")
        with open(infile, "w") as f:
            f.write("\n".join(requirements) + "\n")
        proc = run_uv(
            [
                "pip",
                "compile",
                infile,
                "--python",
                interp.path,
                "--generate-hashes",
                "--no-header",
                "--no-annotate",
                "--quiet",
            ]
        )
    if proc.returncode != 0:
        raise ResolutionFailed(_explain(request, proc, requirements))
    return proc.stdout


def _explain(request: EnvRequest, proc, requirements: list[str]) -> str:
    why = uv_message(proc)
    missing = re.findall(r"\b([A-Za-z0-9][\w.-]*) was not found in the package registry", why)
    asked = ", ".join(requirements)
    if missing:
        names = " and ".join(f'"{m}"' for m in dict.fromkeys(missing))
        return (
            f"{request.where} asks for {names}, which the package index does not have. "
            f"Check the spelling of the name. uv says: {why}"
        )
    return f"{request.where}: no set of versions satisfies [{asked}]. uv says: {why}"


def project_requirements(project: str) -> list[str]:
    """The exact pins of a uv project's ``uv.lock`` (``--environment=uv``)."""
    proc = run_uv(
        [
            "export",
            "--frozen",
            "--format",
            "requirements-txt",
            "--no-hashes",
            "--no-header",
            "--no-annotate",
            "--no-emit-project",
            "--no-emit-package",
            "metaflowlike",
            "--project",
            project,
        ]
    )
    if proc.returncode != 0:
        raise ResolutionFailed(
            f"Cannot read the lock of the uv project in {project}: {uv_message(proc)}. "
            f"Run `uv lock` there first."
        )
    return [
        line.strip()
        for line in proc.stdout.splitlines()
        if line.strip() and not line.lstrip().startswith("#")
    ]


def _write_json(path: str, doc: dict) -> None:
    """Write atomically: a reader sees the old file or the whole new one."""
    os.makedirs(os.path.dirname(path), exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=os.path.dirname(path), prefix=".tmp-")
    with os.fdopen(fd, "w") as f:
        json.dump(doc, f, indent=1, sort_keys=True)
    os.replace(tmp, path)
