"""Every setting of metaflowlike, resolved in one place and passed explicitly.

Precedence, highest first: command-line options, environment variables, the config
file ``~/.metaflowlike/config.json`` (``METAFLOWLIKE_CONFIG`` names another), defaults.
Each setting has one name: the file key ``kubernetes_namespace`` is the environment
variable ``METAFLOWLIKE_KUBERNETES_NAMESPACE``. The settings (see :data:`SETTINGS`):

- ``datastore``, ``datastore_root``: where runs live (default: the local backend in
  the nearest ``.metaflowlike`` folder, see ``local_root``); the client uses the same resolution;
- ``default_image``: the container image of remote steps that name none;
- ``kubernetes_image``, ``kubernetes_namespace``, ``kubernetes_service_account``,
  ``kubernetes_secrets`` (comma-separated secret names mounted into every pod);
- ``batch_image``, ``batch_job_queue``, ``batch_iam_role``, ``batch_execution_role``;
- ``sfn_iam_role`` (the role Step Functions runs a deployed flow with) and
  ``events_sfn_access_iam_role`` (the role EventBridge starts a scheduled one with).

:func:`load_settings` returns them as one frozen object with a section per platform.
"""

from __future__ import annotations

import json
import os
import sys
from dataclasses import dataclass

from .datastore.layout import LAYOUT
from .exceptions import MetaflowlikeException

CONFIG_FILE = os.path.join("~", ".metaflowlike", "config.json")
LOCAL_DIR = ".metaflowlike"


@dataclass(frozen=True)
class DatastoreConfig:
    type: str
    root: str


def _config_path() -> str:
    return os.path.expanduser(os.environ.get("METAFLOWLIKE_CONFIG", CONFIG_FILE))


def _config_file() -> dict:
    path = _config_path()
    try:
        with open(path) as f:
            data = json.load(f)
    except FileNotFoundError:
        return {}
    except ValueError as e:
        raise MetaflowlikeException(f"Config file {path} is not valid JSON: {e}.") from None
    if not isinstance(data, dict):
        raise MetaflowlikeException(
            f"Config file {path} must hold a JSON object of settings, not {type(data).__name__}."
        )
    return data


#: every setting and its default; the environment variable is METAFLOWLIKE_<KEY>
SETTINGS: dict[str, str | None] = {
    "datastore": None,
    "datastore_root": None,
    "default_image": f"python:{sys.version_info.major}.{sys.version_info.minor}-slim",
    "kubernetes_image": None,
    "kubernetes_namespace": "default",
    "kubernetes_service_account": None,
    "kubernetes_secrets": None,
    "batch_image": None,
    "batch_job_queue": None,
    "batch_iam_role": None,
    "batch_execution_role": None,
    "sfn_iam_role": None,
    "events_sfn_access_iam_role": None,
}


def env_var(key: str) -> str:
    return f"METAFLOWLIKE_{key.upper()}"


@dataclass(frozen=True)
class KubernetesSettings:
    image: str
    namespace: str
    service_account: str | None
    secrets: tuple[str, ...]


@dataclass(frozen=True)
class BatchSettings:
    image: str
    job_queue: str | None
    iam_role: str | None
    execution_role: str | None


@dataclass(frozen=True)
class Settings:
    datastore: DatastoreConfig
    default_image: str
    kubernetes: KubernetesSettings
    batch: BatchSettings


def setting(key: str, cfg: dict | None = None) -> str | None:
    """One setting: its environment variable, else the config file, else the default."""
    if key not in SETTINGS:
        raise KeyError(key)
    value = os.environ.get(env_var(key))
    if value is None or value == "":
        value = (cfg if cfg is not None else _config_file()).get(key)
    if value is None or value == "":
        return SETTINGS[key]
    return str(value)


def load_settings(ds_type: str | None = None, root: str | None = None) -> Settings:
    """All settings at once, the config file read once."""
    cfg = _config_file()
    unknown = sorted(set(cfg) - set(SETTINGS))
    if unknown:
        from .exceptions import did_you_mean

        raise MetaflowlikeException(
            f'Config file {_config_path()} has an unknown key "{unknown[0]}". Known keys: '
            f"{', '.join(SETTINGS)}." + did_you_mean(unknown[0], SETTINGS)
        )

    def get(key: str) -> str | None:
        return setting(key, cfg)

    default_image = get("default_image") or ""
    secrets = tuple(s.strip() for s in (get("kubernetes_secrets") or "").split(",") if s.strip())
    return Settings(
        datastore=resolve_datastore(ds_type, root),
        default_image=default_image,
        kubernetes=KubernetesSettings(
            image=get("kubernetes_image") or default_image,
            namespace=get("kubernetes_namespace") or "default",
            service_account=get("kubernetes_service_account"),
            secrets=secrets,
        ),
        batch=BatchSettings(
            image=get("batch_image") or default_image,
            job_queue=get("batch_job_queue"),
            iam_role=get("batch_iam_role"),
            execution_role=get("batch_execution_role"),
        ),
    )


def resolve_datastore(ds_type: str | None = None, root: str | None = None) -> DatastoreConfig:
    cfg = _config_file()
    root = root or os.environ.get("METAFLOWLIKE_DATASTORE_ROOT") or cfg.get("datastore_root")
    ds_type = ds_type or os.environ.get("METAFLOWLIKE_DATASTORE") or cfg.get("datastore")
    if not ds_type and root and "://" in root:
        from .plugins import datastore_for_scheme

        scheme = root.split("://", 1)[0]
        ds_type = datastore_for_scheme(scheme)
        if ds_type is None:
            raise MetaflowlikeException(
                f'No datastore plugin handles "{scheme}://" roots such as {root}: install '
                "the plugin that does, or pass --datastore NAME."
            )
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
        if os.path.isdir(os.path.join(candidate, LAYOUT.flows())):
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
