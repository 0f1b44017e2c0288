"""Settings: environment over ~/.metaflowlike/config.json over defaults, one owner."""

from __future__ import annotations

import json

import pytest

from metaflowlike import config
from metaflowlike.exceptions import MetaflowlikeException


@pytest.fixture
def config_file(tmp_path, monkeypatch):
    path = tmp_path / "config.json"
    monkeypatch.setenv("METAFLOWLIKE_CONFIG", str(path))
    for key in config.SETTINGS:
        monkeypatch.delenv(config.env_var(key), raising=False)
    return path


def test_defaults(config_file):
    s = config.load_settings()
    assert s.datastore.type == "local"
    assert s.default_image.startswith("python:3.")
    assert s.kubernetes.image == s.default_image == s.batch.image
    assert s.kubernetes.namespace == "default"
    assert s.kubernetes.service_account is None and s.kubernetes.secrets == ()
    assert s.batch.job_queue is None


def test_file_then_environment(config_file, monkeypatch):
    config_file.write_text(
        json.dumps(
            {
                "datastore_root": "s3://bucket/prefix",
                "default_image": "example/img:1",
                "kubernetes_namespace": "ml",
                "kubernetes_service_account": "runner",
                "kubernetes_secrets": "db, api",
                "batch_job_queue": "q1",
                "batch_iam_role": "arn:aws:iam::1:role/task",
            }
        )
    )
    s = config.load_settings()
    assert s.datastore == config.DatastoreConfig("s3", "s3://bucket/prefix")
    assert s.kubernetes.image == "example/img:1" and s.kubernetes.namespace == "ml"
    assert s.kubernetes.service_account == "runner" and s.kubernetes.secrets == ("db", "api")
    assert s.batch.job_queue == "q1" and s.batch.iam_role == "arn:aws:iam::1:role/task"
    monkeypatch.setenv("METAFLOWLIKE_KUBERNETES_NAMESPACE", "team")
    monkeypatch.setenv("METAFLOWLIKE_KUBERNETES_IMAGE", "example/k8s:2")
    s = config.load_settings()
    assert s.kubernetes.namespace == "team" and s.kubernetes.image == "example/k8s:2"
    assert s.batch.image == "example/img:1"
    # command-line options win over both
    assert config.load_settings("gs", "gs://b/p").datastore == config.DatastoreConfig(
        "gs", "gs://b/p"
    )


def test_bad_files_are_clear_errors(config_file):
    config_file.write_text('{"kubernetes_namespce": "ml"}')
    with pytest.raises(
        MetaflowlikeException, match='(?i)kubernetes_namespce.*did you mean "kubernetes_namespace"'
    ):
        config.load_settings()
    config_file.write_text("[1, 2]")
    with pytest.raises(MetaflowlikeException, match="JSON object"):
        config.load_settings()
    config_file.write_text("{nope")
    with pytest.raises(MetaflowlikeException, match="not valid JSON"):
        config.load_settings()
