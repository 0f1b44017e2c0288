"""Which MLflow tracking store to talk to, and the client for it."""

from __future__ import annotations

import os
from typing import Any

from metaflowlike.plugins import import_sdk

#: used when MLFLOW_TRACKING_URI is not set: an embedded SQLite store, no server needed
DEFAULT_DB = "mlflow.db"


def tracking_uri() -> str:
    """``MLFLOW_TRACKING_URI`` if set, else a SQLite file in the working folder."""
    uri = os.environ.get("MLFLOW_TRACKING_URI")
    if uri:
        return uri
    return f"sqlite:///{os.path.abspath(DEFAULT_DB)}"


def mlflow_client(uri: str | None = None) -> Any:
    mlflow = import_sdk(
        "mlflow", needed_by="MLflow interop", package="the mlflow package", extra="mlflow"
    )
    return mlflow.MlflowClient(tracking_uri=uri or tracking_uri())


def experiment_id(client: Any, name: str) -> str:
    """The id of experiment ``name``, created if missing (racing creators agree)."""
    found = client.get_experiment_by_name(name)
    if found is not None:
        return found.experiment_id
    try:
        return client.create_experiment(name)
    except Exception:  # noqa: BLE001 - another task created it meanwhile
        found = client.get_experiment_by_name(name)
        if found is None:
            raise
        return found.experiment_id
