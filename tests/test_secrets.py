"""@secrets: local sources and AWS Secrets Manager on a real moto server."""

from __future__ import annotations

import json

import boto3

from metaflowlike import Flow
from tests.cloud_servers import client_env

FLOW = """
import os
from metaflowlike import FlowSpec, step, secrets

class SecretsFlow(FlowSpec):
    @secrets(sources=SOURCES)
    @step
    def start(self):
        self.seen = {k: os.environ.get(k) for k in ["DB_USER", "DB_PASS", "TOKEN", "API_KEY"]}
        self.next(self.end)

    @step
    def end(self):
        self.end_sees = os.environ.get("DB_PASS")

if __name__ == "__main__":
    SecretsFlow()
"""


def _flow(make_flow, sources):
    return make_flow(FLOW.replace("SOURCES", repr(sources)))


def test_local_sources_become_task_environment(make_flow, tmp_path):
    env_file = tmp_path / "db.env"
    env_file.write_text('# credentials\nDB_USER=anne\nexport DB_PASS="s3cr3t"\n')
    flow = _flow(
        make_flow,
        [
            {"type": "env-file", "id": str(env_file)},
            {"type": "inline", "id": "x", "options": {"env_vars": {"TOKEN": "t0k"}}},
        ],
    )
    flow.run("run")
    run = Flow("SecretsFlow").latest_run
    assert run["start"].task.data.seen == {
        "DB_USER": "anne",
        "DB_PASS": "s3cr3t",
        "TOKEN": "t0k",
        "API_KEY": None,
    }
    assert run.data.end_sees is None  # only the decorated step gets them


def test_aws_secrets_manager_on_moto(make_flow, moto_server):
    env = client_env("s3", moto_server.url)
    sm = boto3.client(
        "secretsmanager",
        endpoint_url=moto_server.url,
        region_name="us-east-1",
        aws_access_key_id=env["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=env["AWS_SECRET_ACCESS_KEY"],
    )
    sm.create_secret(
        Name="mfl-db-creds", SecretString=json.dumps({"DB_USER": "bob", "DB_PASS": "pw"})
    )
    sm.create_secret(Name="mfl-plain-key", SecretString="k-123")
    flow = _flow(
        make_flow,
        ["mfl-db-creds", {"id": "mfl-plain-key", "options": {"env_var_name": "API_KEY"}}],
    )
    flow.run(
        "run",
        env={**env, "METAFLOW_DEFAULT_SECRETS_BACKEND_TYPE": "aws-secrets-manager"},
    )
    seen = Flow("SecretsFlow").latest_run["start"].task.data.seen
    assert seen == {"DB_USER": "bob", "DB_PASS": "pw", "TOKEN": None, "API_KEY": "k-123"}

    # a missing secret fails the task with a clear line naming it
    missing = _flow(make_flow, [{"type": "aws-secrets-manager", "id": "mfl-nope"}])
    proc = missing.run("run", env=env, check=False)
    assert proc.returncode == 1
    stderr = Flow("SecretsFlow").latest_run["start"].task.stderr
    assert 'could not give the secret "mfl-nope": ResourceNotFoundException' in stderr
    assert env["AWS_SECRET_ACCESS_KEY"] not in stderr


def test_secrets_mistakes_are_reported_before_the_run(make_flow, tmp_path):
    flow = _flow(make_flow, ["no-type"])
    proc = flow.run("run", check=False, env={"METAFLOW_DEFAULT_SECRETS_BACKEND_TYPE": ""})
    assert proc.returncode == 1
    assert 'the source "no-type" has no type' in proc.stderr
    assert "Traceback" not in proc.stderr
    clash = _flow(
        make_flow,
        [
            {"type": "inline", "options": {"env_vars": {"TOKEN": "a"}}},
            {"type": "inline", "options": {"env_vars": {"TOKEN": "b"}}},
        ],
    )
    assert clash.run("run", check=False).returncode == 1
    assert "both set TOKEN" in Flow("SecretsFlow").latest_run["start"].task.stderr
    typo = _flow(make_flow, [{"type": "aws-secret-manager", "id": "x"}])
    assert typo.run("run", check=False).returncode == 1
    assert (
        'Did you mean "aws-secrets-manager"' in Flow("SecretsFlow").latest_run["start"].task.stderr
    )
