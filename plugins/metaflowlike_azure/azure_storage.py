"""Azure Blob Storage as a metaflowlike datastore.

Root URL: ``azure://container/prefix``. Credentials, in this order:

1. ``AZURE_STORAGE_CONNECTION_STRING`` (account key or SAS; also how the tests reach
   Azurite);
2. ``AZURE_STORAGE_ACCOUNT_URL`` (``https://<account>.blob.core.windows.net``) with
   ``DefaultAzureCredential`` - environment, managed identity, ``az login``... - which
   needs the optional ``azure-identity`` package.

Atomicity is Blob Storage's own: a single Put Blob, or blocks staged in parallel and
made visible at once by Put Block List. The SDK's retry is set short and linear (its
default sleeps 15 s and more between tries); :class:`RetryPolicy` adds the backoff.
"""

from __future__ import annotations

import os
import re
from typing import Any

from metaflowlike.datastore.remote import RemoteStorage
from metaflowlike.datastore.retry import (
    TRANSIENT_STATUS,
    chain,
    is_transient_os_error,
    sdk_attempts,
)
from metaflowlike.datastore.storage import StorageError
from metaflowlike.plugins import import_sdk

ENV_CONNECTION_STRING = "AZURE_STORAGE_CONNECTION_STRING"
ENV_ACCOUNT_URL = "AZURE_STORAGE_ACCOUNT_URL"

#: blobs above this size are uploaded as parallel blocks + one commit
SINGLE_PUT_SIZE = 16 * 1024 * 1024
BLOCK_SIZE = 8 * 1024 * 1024
#: the first GET fetches this much; the rest comes as parallel ranged GETs
SINGLE_GET_SIZE = 16 * 1024 * 1024
CHUNK_GET_SIZE = 8 * 1024 * 1024
TRANSFER_CONCURRENCY = 8


class AzureBlobStorage(RemoteStorage):
    TYPE = "azure"
    SCHEMES = ("azure",)

    def __init__(self, root: str) -> None:
        super().__init__(root)
        import_sdk(
            "azure.storage.blob",
            needed_by="The azure datastore",
            package="azure-storage-blob",
            extra="azure",
        )
        self._conn_str = os.environ.get(ENV_CONNECTION_STRING, "").strip()
        self._account_url = os.environ.get(ENV_ACCOUNT_URL, "").strip()
        if not self._conn_str and not self._account_url:
            raise StorageError(
                f"azure datastore: no credentials for {self.root}: set {ENV_CONNECTION_STRING}, "
                f"or {ENV_ACCOUNT_URL} (https://<account>.blob.core.windows.net) and install "
                "azure-identity to sign in with DefaultAzureCredential."
            )
        self.client  # noqa: B018 - build it now so a bad configuration fails early

    # --- client ----------------------------------------------------------------------

    def _new_client(self) -> Any:
        import requests
        from azure.core.pipeline.transport import RequestsTransport
        from azure.storage.blob import BlobServiceClient, LinearRetry

        session = requests.Session()
        adapter = requests.adapters.HTTPAdapter(
            pool_connections=4, pool_maxsize=self.parallelism + 2 * TRANSFER_CONCURRENCY
        )
        session.mount("http://", adapter)
        session.mount("https://", adapter)
        options = {
            "transport": RequestsTransport(
                session=session, session_owner=True, connection_timeout=5, read_timeout=60
            ),
            "retry_policy": LinearRetry(
                backoff=0.5,
                random_jitter_range=0.25,
                retry_total=sdk_attempts(self.retry.attempts) - 1,
            ),
            "max_single_put_size": SINGLE_PUT_SIZE,
            "max_block_size": BLOCK_SIZE,
            "max_single_get_size": SINGLE_GET_SIZE,
            "max_chunk_get_size": CHUNK_GET_SIZE,
        }
        if self._conn_str:
            try:
                service = BlobServiceClient.from_connection_string(self._conn_str, **options)
            except ValueError as e:
                raise StorageError(
                    f"azure datastore: {ENV_CONNECTION_STRING} is not a valid connection "
                    f"string ({e})."
                ) from None
        else:
            service = BlobServiceClient(
                self._account_url, credential=_default_credential(), **options
            )
        return service.get_container_client(self.bucket)

    def _secrets(self) -> list[str]:
        found = re.findall(r"(?i)(?:AccountKey|SharedAccessSignature)=([^;]+)", self._conn_str)
        return [self._conn_str, *found]

    def _is_transient(self, exc: BaseException) -> bool:
        import requests
        from azure.core.exceptions import (
            HttpResponseError,
            IncompleteReadError,
            ServiceRequestError,
            ServiceResponseError,
        )
        from urllib3.exceptions import HTTPError as Urllib3Error

        for e in chain(exc):
            if isinstance(e, (ServiceRequestError, ServiceResponseError, IncompleteReadError)):
                return True  # could not connect / connection died / timed out
            if isinstance(e, HttpResponseError):
                return e.status_code in TRANSIENT_STATUS or getattr(e, "error_code", None) in (
                    "ServerBusy",
                    "OperationTimedOut",
                    "InternalError",
                )
            if isinstance(
                e, (requests.ConnectionError, requests.Timeout, Urllib3Error)
            ) or is_transient_os_error(e):
                return True
        return False

    def _blob(self, path: str) -> Any:
        return self.client.get_blob_client(self.key(path))

    # --- primitives ------------------------------------------------------------------

    def exists(self, path: str) -> bool:
        return self._call("check", path, lambda: self._blob(path).exists())

    def put_bytes(self, path: str, data: bytes, overwrite: bool = True) -> None:
        if not overwrite and self.exists(path):
            return
        self._call("upload", path, lambda: self._upload(path, data, len(data), overwrite))

    def _create(self, path: str, data: bytes) -> bool:
        from azure.core.exceptions import ResourceExistsError

        try:  # overwrite=False sends If-None-Match: * (a single Put Blob below 64 MiB)
            self._blob(path).upload_blob(data, length=len(data), overwrite=False)
            return True
        except ResourceExistsError:
            return False

    def put_file(self, path: str, local_path: str, overwrite: bool = True) -> None:
        if not overwrite and self.exists(path):
            return

        def put() -> None:
            with open(local_path, "rb") as f:  # read block by block, never whole
                self._upload(path, f, os.fstat(f.fileno()).st_size, overwrite)

        self._call("upload", path, put)

    def _upload(self, path: str, data: Any, length: int, overwrite: bool) -> None:
        from azure.core.exceptions import ResourceExistsError

        try:
            self._blob(path).upload_blob(
                data, length=length, overwrite=overwrite, max_concurrency=TRANSFER_CONCURRENCY
            )
        except ResourceExistsError:
            if overwrite:
                raise
            # overwrite=False: somebody (or our own earlier, unacknowledged attempt)
            # stored it in the meantime; content-addressed blobs are equal: done

    def get_bytes(self, path: str) -> bytes:
        return self._call("download", path, lambda: self._download(path).readall())

    def get_file(self, path: str, local_path: str) -> None:
        def get(tmp: str) -> None:
            stream = self._download(path)  # before opening: a missing blob leaves no file
            with open(tmp, "wb") as f:
                stream.readinto(f)  # parallel ranged GETs, written in place

        self._call("download", path, lambda: self._into_file(local_path, get))

    def _download(self, path: str) -> Any:
        from azure.core.exceptions import ResourceNotFoundError

        try:
            return self._blob(path).download_blob(max_concurrency=TRANSFER_CONCURRENCY)
        except ResourceNotFoundError as e:
            if getattr(e, "error_code", None) == "ContainerNotFound":
                raise
            raise FileNotFoundError(self.url(path)) from None

    def list_dir(self, path: str) -> list[tuple[str, bool]]:
        from azure.storage.blob import BlobPrefix

        prefix = self.dir_key(path)

        def listing() -> list[tuple[str, bool]]:
            out: list[tuple[str, bool]] = []
            for item in self.client.walk_blobs(name_starts_with=prefix or None, delimiter="/"):
                is_dir = isinstance(item, BlobPrefix)  # a common prefix: a "directory"
                name = item.name[len(prefix) :].rstrip("/")
                if name:
                    out.append((name, is_dir))
            return out

        return self._call("list", path, listing)

    def delete(self, path: str) -> None:
        from azure.core.exceptions import ResourceNotFoundError

        def remove() -> None:
            try:
                self._blob(path).delete_blob()
            except ResourceNotFoundError:
                pass

        self._call("delete", path, remove)


def _default_credential() -> Any:
    try:
        from azure.identity import DefaultAzureCredential
    except ImportError:
        raise StorageError(
            f"azure datastore: {ENV_ACCOUNT_URL} is set but {ENV_CONNECTION_STRING} is not, "
            "and signing in without a connection string needs azure-identity: "
            f"pip install azure-identity (or set {ENV_CONNECTION_STRING})."
        ) from None
    return DefaultAzureCredential()
