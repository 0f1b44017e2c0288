"""``aws-secrets-manager``: the secrets provider for ``@secrets`` on AWS Secrets Manager.

A secret whose value is a JSON object gives one environment variable per key; any
other value is set as a single variable named by ``options={"env_var_name": ...}``
(required then). ``options={"region": ...}`` picks the region; endpoint and
credentials come from boto3's standard chain (``AWS_ENDPOINT_URL``...).
"""

from __future__ import annotations

import json
from typing import Any

from metaflowlike.plugins import import_sdk
from metaflowlike.secrets_decorator import SecretsError


class AwsSecretsManagerProvider:
    def get_secret_as_dict(
        self, secret_id: Any, options: dict, role: str | None = None
    ) -> dict[str, str]:
        boto3 = import_sdk("boto3", needed_by="AWS Secrets Manager", package="boto3", extra="aws")
        from botocore.exceptions import BotoCoreError, ClientError  # boto3 brings it

        if not secret_id:
            raise SecretsError('An "aws-secrets-manager" source needs an "id".')
        session = boto3.session.Session()
        if role:
            creds = session.client("sts").assume_role(
                RoleArn=role, RoleSessionName="metaflowlike-secrets"
            )["Credentials"]
            session = boto3.session.Session(
                aws_access_key_id=creds["AccessKeyId"],
                aws_secret_access_key=creds["SecretAccessKey"],
                aws_session_token=creds["SessionToken"],
            )
        client = session.client("secretsmanager", region_name=options.get("region"))
        try:
            resp = client.get_secret_value(SecretId=str(secret_id))
        except ClientError as e:
            code = e.response.get("Error", {}).get("Code", "")
            raise SecretsError(
                f'AWS Secrets Manager could not give the secret "{secret_id}": {code}.'
            ) from None
        except BotoCoreError as e:
            raise SecretsError(
                f'AWS Secrets Manager is unreachable for the secret "{secret_id}": {e}.'
            ) from None
        text = resp.get("SecretString")
        if text is None:
            text = resp["SecretBinary"].decode("utf-8")
        try:
            value = json.loads(text)
        except ValueError:
            value = None
        if isinstance(value, dict):
            return {str(k): v if isinstance(v, str) else json.dumps(v) for k, v in value.items()}
        name = options.get("env_var_name")
        if not name:
            raise SecretsError(
                f'The secret "{secret_id}" is not a JSON object: give options='
                '{"env_var_name": "NAME"} to set it as one variable.'
            )
        return {name: text}
