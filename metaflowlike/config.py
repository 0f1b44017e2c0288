"""Where runs live and who is running them: resolved once, passed explicitly.

Precedence, highest first: command-line options, environment variables
(``METAFLOWLIKE_DATASTORE``, ``METAFLOWLIKE_DATASTORE_ROOT``), the config file
``~/.metaflowlike/config.json`` (keys ``datastore`` and ``datastore_root``), defaults
(the local backend in the nearest ``.metaflowlike`` folder, see ``local_root``). The
client uses the same resolution.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass

from .exceptions import MetaflowlikeException

CONFIG_FILE = os.path.join("~", ".metaflowlike", "config.json")
LOCAL_DIR = ".metaflowlike"
SCHEMES = {"s3": "s3", "azure": "azure", "gs": "gs", "gcs": "gs", "file": "local"}


@dataclass(frozen=True)
class DatastoreConfig:
    type: str
    root: str


def _config_file() -> dict:
    path = os.path.expanduser(os.environ.get("METAFLOWLIKE_CONFIG", CONFIG_FILE))
    try:
        with open(path) as f:
            return json.load(f)
    except FileNotFoundError:
        return {}
    except ValueError as e:
        raise MetaflowlikeException(f"Config file {path} is not valid JSON: {e}.") from None


def resolve_datastore(ds_type: str | None = None, root: str | None = None) -> DatastoreConfig:
    cfg = _config_file()
    root = root or os.environ.get("METAFLOWLIKE_DATASTORE_ROOT") or cfg.get("datastore_root")
    ds_type = ds_type or os.environ.get("METAFLOWLIKE_DATASTORE") or cfg.get("datastore")
    if not ds_type and root and "://" in root:
        ds_type = SCHEMES.get(root.split("://", 1)[0])
    ds_type = ds_type or "local"
    if root and root.startswith("file://"):
        root = root[len("file://") :]
    return DatastoreConfig(ds_type, root or "")


def open_datastore(ds_type: str | None = None, root: str | None = None):
    """A ``FlowDatastore`` on the configured backend (plugins load lazily)."""
    from . import plugins
    from .datastore.task_datastore import FlowDatastore

    cfg = resolve_datastore(ds_type, root)
    storage_cls = plugins.load(plugins.DATASTORES, cfg.type, "datastore")
    root = cfg.root or storage_cls.default_root()
    if not root:
        raise MetaflowlikeException(
            f"The {cfg.type} datastore needs a root: pass --datastore-root "
            f"(e.g. {cfg.type}://bucket/prefix) or set METAFLOWLIKE_DATASTORE_ROOT."
        )
    return FlowDatastore(storage_cls(root))


def local_root(start: str | None = None) -> str:
    """The default local datastore: ``start/.metaflowlike`` (``start`` is the current
    directory) if it exists, else the nearest parent's ``.metaflowlike`` that holds
    runs, else ``start/.metaflowlike``.

    As Metaflow does for ``.metaflow``: a notebook in ``project/notebooks/`` sees the
    runs made from ``project/``, and the client and the command line agree on it. A
    parent's folder counts only if it holds runs (a ``flows`` folder), so the folder of
    ``~/.metaflowlike/config.json`` alone never captures the runs of every project."""
    first = os.path.join(os.path.abspath(start or os.getcwd()), LOCAL_DIR)
    if os.path.isdir(first):
        return first
    here = os.path.dirname(os.path.dirname(first))
    while True:
        candidate = os.path.join(here, LOCAL_DIR)
        if os.path.isdir(os.path.join(candidate, "flows")):
            return candidate
        parent = os.path.dirname(here)
        if parent == here:
            return first
        here = parent


def get_username() -> str:
    """``METAFLOWLIKE_USER``, else Metaflow's ``METAFLOW_USER`` (so namespaces match a
    Metaflow setup), else the login name."""
    for var in ("METAFLOWLIKE_USER", "METAFLOW_USER", "USERNAME", "USER"):
        if os.environ.get(var):
            return os.environ[var]
    import getpass  # imports termios: only when the environment does not say

    try:
        return getpass.getuser()
    except Exception:
        return "unknown"
