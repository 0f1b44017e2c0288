"""Copy a registered model version into MLflow's Model Registry.

The version's bytes are logged as artifacts of an MLflow run (in experiment
``metaflowlike-models``) tagged with the model's lineage, and an MLflow model version is
created from them. MLflow numbers its versions itself; the registry version it came
from is kept in the tag ``metaflowlike.version``, and the aliases that point at it are
set on the MLflow side too.
"""

from __future__ import annotations

import json
import os
import pickle
import tempfile
from typing import Any

from metaflowlike.tracking.model import Model

from .connection import experiment_id, mlflow_client

EXPERIMENT = "metaflowlike-models"


def push_model(
    model: Model | str, registered_name: str | None = None, uri: str | None = None
) -> Any:
    """Push ``model`` (a :class:`Model` or a spec like ``"ranker@champion"``) to MLflow's
    Model Registry under ``registered_name`` (default: the same name); returns MLflow's
    ``ModelVersion``."""
    if isinstance(model, str):
        model = Model(model)
    client = mlflow_client(uri)
    name = registered_name or model.name
    tags = {
        "metaflowlike.model": model.name,
        "metaflowlike.version": str(model.version),
        "metaflowlike.lineage": json.dumps(model.lineage, default=str)[:5000],
    }
    run = client.create_run(
        experiment_id(client, EXPERIMENT), run_name=f"{model.name}/{model.version}", tags=tags
    )
    run_id = run.info.run_id
    with tempfile.TemporaryDirectory(prefix="mfl-push-") as tmp:
        if model.kind == "object":
            path = os.path.join(tmp, "model.pkl")
            with open(path, "wb") as f:
                pickle.dump(model.load(), f)
        else:
            path = model.load(tmp)
        if os.path.isdir(path):
            client.log_artifacts(run_id, path, artifact_path="model")
        else:
            client.log_artifact(run_id, path, artifact_path="model")
    for key, value in model.metadata.items():
        client.set_tag(run_id, f"metadata.{key}", str(value)[:5000])
    client.set_terminated(run_id, "FINISHED")
    try:
        client.get_registered_model(name)
    except Exception:  # noqa: BLE001 - MLflow raises its own "does not exist" error
        client.create_registered_model(name)
    version = client.create_model_version(
        name, source=f"runs:/{run_id}/model", run_id=run_id, tags=tags
    )
    for alias in model.aliases:
        client.set_registered_model_alias(name, alias, version.version)
    return version
