"""Where runs live and who is running them: resolved once, passed explicitly.

Precedence, highest first: command-line options, environment variables
(``METAFLOWLIKE_DATASTORE``, ``METAFLOWLIKE_DATASTORE_ROOT``), the config file
``~/.metaflowlike/config.json`` (keys ``datastore`` and ``datastore_root``), defaults
(the local backend in ``./.metaflowlike``). The client uses the same resolution.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass

from .exceptions import MetaflowlikeException

CONFIG_FILE = os.path.join("~", ".metaflowlike", "config.json")
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


def get_username() -> str:
    for var in ("METAFLOWLIKE_USER", "USERNAME", "USER"):
        if os.environ.get(var):
            return os.environ[var]
    import getpass  # imports termios: only when the environment does not say

    try:
        return getpass.getuser()
    except Exception:
        return "unknown"
