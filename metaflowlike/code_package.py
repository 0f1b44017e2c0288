"""The code package: everything a remote task needs besides a Python and a cloud SDK.

A remote container has none of the laptop's files, so the runtime packs, once per run:

- the flow's directory: files whose name ends with one of the package suffixes
  (``.py`` by default, more with ``--package-suffixes``), skipping hidden folders,
  virtual environments and ``__pycache__``;
- ``metaflowlike`` itself with its plugin packages, and a small ``.dist-info`` that
  carries its entry points (so plugins are found without installing anything);
- its pure-Python runtime dependencies (click, cloudpickle...), taken from the local
  environment, so the versions match the laptop's.

The tarball is deterministic (sorted names, zeroed times and owners, fixed gzip header),
so the same code gives the same bytes, and it is stored content-addressed under
``code/<sha256>.tar.gz`` in the datastore: a second run of unchanged code uploads
nothing. ``bootstrap.py`` fetches and unpacks it in the container.
"""

from __future__ import annotations

import gzip
import hashlib
import importlib.util
import io
import os
import tarfile
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

from .datastore.layout import LAYOUT

DIST = "metaflowlike"
DEFAULT_SUFFIXES = (".py",)
_SKIP_DIRS = {"__pycache__", "node_modules", "site-packages"}
_NATIVE = (".so", ".pyd", ".dylib")


@dataclass(frozen=True)
class CodePackage:
    data: bytes
    sha256: str
    flow_file: str  # the flow file's path inside the package
    files: tuple[str, ...]

    @property
    def key(self) -> str:
        """Where the package lives in the datastore, relative to its root."""
        return LAYOUT.code_package(self.sha256)


def parse_suffixes(value: str | None) -> tuple[str, ...]:
    """``".py,.txt"`` (Metaflow's ``--package-suffixes``) -> ``(".py", ".txt")``;
    ``.py`` is always included."""
    extra = [s.strip() for s in (value or "").split(",") if s.strip()]
    return tuple(dict.fromkeys([*DEFAULT_SUFFIXES, *extra]))


def build(flow_file: str, suffixes: tuple[str, ...] = DEFAULT_SUFFIXES) -> CodePackage:
    """Pack the flow's directory, metaflowlike and its pure-Python dependencies."""
    flow_path = Path(flow_file).resolve()
    files: dict[str, Path] = {}
    own = _own_packages()
    for arc, path in _flow_dir_files(flow_path.parent, suffixes):
        if arc.split("/", 1)[0] not in own:  # the installed metaflowlike wins
            files[arc] = path
    for top, folder in sorted(own.items()):
        for arc, path in _tree(folder, top):
            files[arc] = path
    for arc, path in _dependency_files():
        files.setdefault(arc, path)
    contents = {arc: path.read_bytes() for arc, path in files.items()}
    contents.update(_dist_info())
    data = _tarball(contents)
    return CodePackage(
        data=data,
        sha256=hashlib.sha256(data).hexdigest(),
        flow_file=flow_path.name,
        files=tuple(sorted(contents)),
    )


def upload(fds, package: CodePackage) -> int:
    """Store the package unless the datastore has it already; the bytes uploaded."""
    storage = fds.storage
    if storage.exists(package.key):
        return 0
    storage.put_bytes(package.key, package.data)
    return len(package.data)


def package_url(fds, package: CodePackage) -> str:
    return fds.storage.url(package.key)


def _flow_dir_files(root: Path, suffixes: tuple[str, ...]):
    for dirpath, dirnames, filenames in os.walk(root):
        here = Path(dirpath)
        dirnames[:] = [
            d
            for d in dirnames
            if not d.startswith(".")
            and d not in _SKIP_DIRS
            and not (here / d / "pyvenv.cfg").exists()
        ]
        for name in filenames:
            if name.endswith(suffixes) and not name.startswith("."):
                path = here / name
                yield path.relative_to(root).as_posix(), path


def _tree(folder: Path, arc_root: str):
    for dirpath, dirnames, filenames in os.walk(folder):
        dirnames[:] = [d for d in dirnames if d not in _SKIP_DIRS and not d.startswith(".")]
        here = Path(dirpath)
        for name in filenames:
            if name.endswith((".pyc", ".pyo")) or name.startswith("."):
                continue
            path = here / name
            yield f"{arc_root}/{path.relative_to(folder).as_posix()}", path


def _own_packages() -> dict[str, Path]:
    """``metaflowlike`` and every top-level package its entry points live in."""
    tops = {DIST}
    try:
        for ep in metadata.distribution(DIST).entry_points:
            tops.add(ep.value.split(":", 1)[0].split(".", 1)[0])
    except metadata.PackageNotFoundError:
        pass
    out = {}
    for top in tops:
        spec = importlib.util.find_spec(top)
        if spec is not None and spec.submodule_search_locations:
            out[top] = Path(list(spec.submodule_search_locations)[0])
    return out


def _dist_info() -> dict[str, bytes]:
    """A minimal ``.dist-info`` so that ``importlib.metadata`` finds our entry points
    (the plugins) in the unpacked folder."""
    try:
        dist = metadata.distribution(DIST)
    except metadata.PackageNotFoundError:
        return {}
    version = dist.version
    folder = f"{DIST}-{version}.dist-info"
    meta = f"Metadata-Version: 2.1\nName: {DIST}\nVersion: {version}\n"
    return {
        f"{folder}/METADATA": meta.encode(),
        f"{folder}/entry_points.txt": (dist.read_text("entry_points.txt") or "").encode(),
    }


def _requirements(dist: metadata.Distribution) -> list[str]:
    """Names of the unconditional requirements of ``dist`` (no extras, no markers)."""
    names = []
    for req in dist.requires or []:
        if ";" in req:
            continue
        name = req.split("[", 1)[0]
        for stop in "<>=!~ (":
            name = name.split(stop, 1)[0]
        names.append(name.strip())
    return names


def _dependency_files():
    """The files of every pure-Python distribution metaflowlike needs to run."""
    try:
        todo = _requirements(metadata.distribution(DIST))
    except metadata.PackageNotFoundError:
        todo = ["click", "cloudpickle"]
    seen: set[str] = set()
    while todo:
        name = todo.pop()
        key = name.lower().replace("_", "-")
        if key in seen:
            continue
        seen.add(key)
        try:
            dist = metadata.distribution(name)
        except metadata.PackageNotFoundError:
            continue  # not installed here: the image must provide it
        todo.extend(_requirements(dist))
        paths = [str(f) for f in dist.files or []]
        if any(p.endswith(_NATIVE) for p in paths):
            continue  # compiled: it has to come with the image
        for rel in paths:
            if rel.startswith("..") or rel.endswith((".pyc", ".pyo")) or "__pycache__" in rel:
                continue
            path = Path(dist.locate_file(rel))
            if path.is_file():
                yield rel, path


def _tarball(contents: dict[str, bytes]) -> bytes:
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for arc in sorted(contents):
            data = contents[arc]
            info = tarfile.TarInfo(arc)
            info.size = len(data)
            info.mtime = 0
            info.mode = 0o644
            info.uid = info.gid = 0
            info.uname = info.gname = ""
            tar.addfile(info, io.BytesIO(data))
    out = io.BytesIO()
    with gzip.GzipFile(filename="", mode="wb", fileobj=out, mtime=0) as gz:
        gz.write(raw.getvalue())
    return out.getvalue()
