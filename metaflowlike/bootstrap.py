"""Start a task in a bare container: fetch the code package, unpack it, run the step.

This file is sent as the source of ``python -c`` (see :func:`bootstrap_command`), so it
must run with nothing but the Python standard library and the SDK of the datastore's
cloud (boto3 for S3, azure-storage-blob, google-cloud-storage): metaflowlike itself
arrives inside the package. Arguments::

    python -c SOURCE PACKAGE_URL SHA256 [WRAPPER...] FLOW_FILE [TOP OPTIONS] step STEP [OPTIONS]

The package is checked against its content hash, unpacked into the working directory,
and the process becomes ``python [WRAPPER...] FLOW_FILE [TOP OPTIONS] step ...``: the same
``step`` command the local runtime runs. The optional wrapper is interpreter arguments
that prepare the machine first and then run the step (``-m
metaflowlike.environments.bootstrap FLOW --`` builds the step's Python environment). Credentials come from the container's own identity
(service account, IAM role, mounted secrets), never from the laptop.
"""

import hashlib
import io
import os
import sys
import tarfile


def _split(url):
    scheme, _, rest = url.partition("://")
    bucket, _, key = rest.partition("/")
    return scheme, bucket, key


def fetch(url):
    """The bytes at ``url`` (s3://, gs://, azure://, file://)."""
    scheme, bucket, key = _split(url)
    if scheme == "s3":
        import boto3

        return boto3.client("s3").get_object(Bucket=bucket, Key=key)["Body"].read()
    if scheme == "gs":
        from google.cloud import storage

        emulator = os.environ.get("STORAGE_EMULATOR_HOST", "").strip()
        if emulator:
            from google.auth.credentials import AnonymousCredentials

            endpoint = emulator if "://" in emulator else "http://" + emulator
            client = storage.Client(
                project=os.environ.get("GOOGLE_CLOUD_PROJECT") or "metaflowlike",
                credentials=AnonymousCredentials(),
                client_options={"api_endpoint": endpoint},
            )
        else:
            client = storage.Client()
        return client.bucket(bucket).blob(key).download_as_bytes()
    if scheme == "azure":
        from azure.storage.blob import BlobServiceClient

        conn = os.environ.get("AZURE_STORAGE_CONNECTION_STRING", "").strip()
        if conn:
            service = BlobServiceClient.from_connection_string(conn)
        else:
            from azure.identity import DefaultAzureCredential

            service = BlobServiceClient(
                os.environ["AZURE_STORAGE_ACCOUNT_URL"], credential=DefaultAzureCredential()
            )
        return service.get_blob_client(bucket, key).download_blob().readall()
    if scheme == "file":
        with open(url[len("file://") :], "rb") as f:
            return f.read()
    raise SystemExit("bootstrap: unsupported code package URL " + url)


def main(argv):
    url, sha256 = argv[:2]
    data = fetch(url)
    got = hashlib.sha256(data).hexdigest()
    if got != sha256:
        raise SystemExit(
            f"bootstrap: the code package at {url} is damaged (sha256 {got}, expected {sha256})"
        )
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as tar:
        if hasattr(tarfile, "data_filter"):
            tar.extractall(".", filter="data")
        else:  # Python < 3.10.12: our own package, names checked when it was built
            tar.extractall(".")
    sys.stdout.flush()
    os.execv(sys.executable, [sys.executable] + list(argv[2:]))


def bootstrap_command(interpreter, package_url, sha256, flow_file, args, wrapper=()):
    """The container command that bootstraps a task whose command line (after the
    interpreter and flow file) is ``args``, run through the interpreter arguments
    ``wrapper`` when there are any."""
    with open(__file__) as f:
        source = f.read()
    return [interpreter, "-c", source, package_url, sha256, *wrapper, flow_file] + list(args)


if __name__ == "__main__":
    main(sys.argv[1:])
