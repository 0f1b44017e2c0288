"""Google Cloud Storage as a metaflowlike datastore.

Root URL: ``gs://bucket/prefix``. Credentials are Google's Application Default
Credentials; when ``STORAGE_EMULATOR_HOST`` is set (fake-gcs-server, the official
emulator) the client talks to that endpoint anonymously instead.

Atomicity is GCS's own: a one-request (multipart) upload, or a resumable upload whose
object appears only when its last chunk is committed. Large files are uploaded as a
resumable upload in big chunks (GCS's JSON API has no parallel parts) and downloaded
as parallel ranged reads pinned to one generation (``transfer_manager``), checksummed
against the object's CRC32C.
"""

from __future__ import annotations

import os
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

ENV_EMULATOR = "STORAGE_EMULATOR_HOST"

#: files above this size use a chunked resumable upload / parallel ranged download
RESUMABLE_THRESHOLD = 16 * 1024 * 1024
UPLOAD_CHUNK = 64 * 1024 * 1024  # a multiple of 256 KiB, as GCS requires
DOWNLOAD_CHUNK = 16 * 1024 * 1024
TRANSFER_CONCURRENCY = 8
#: (connect, read) seconds for every request
TIMEOUT = (5, 60)


class GCSStorage(RemoteStorage):
    TYPE = "gs"
    SCHEMES = ("gs", "gcs")

    def __init__(self, root: str) -> None:
        super().__init__(root)
        import_sdk(
            "google.cloud.storage",
            needed_by="The gs datastore",
            package="google-cloud-storage",
            extra="gcp",
        )
        self._sdk_retry = self._make_sdk_retry()

    # --- client ----------------------------------------------------------------------

    def _new_client(self) -> Any:
        import requests
        from google.cloud import storage

        project = os.environ.get("GOOGLE_CLOUD_PROJECT") or os.environ.get("GCLOUD_PROJECT")
        emulator = os.environ.get(ENV_EMULATOR, "").strip()
        if emulator:
            from google.auth.credentials import AnonymousCredentials

            endpoint = emulator if "://" in emulator else f"http://{emulator}"
            client = storage.Client(
                project=project or "metaflowlike",
                credentials=AnonymousCredentials(),
                client_options={"api_endpoint": endpoint},
            )
        else:
            try:
                client = storage.Client(project=project)
            except Exception as e:  # google.auth.exceptions.DefaultCredentialsError
                raise StorageError(
                    f"gs datastore: no Google Cloud credentials for {self.root} "
                    f"({type(e).__name__}). Run `gcloud auth application-default login`, set "
                    f"GOOGLE_APPLICATION_CREDENTIALS, or set {ENV_EMULATOR} for an emulator."
                ) from None
        # the default pool keeps 10 connections; batches run `parallelism` at once
        adapter = requests.adapters.HTTPAdapter(
            pool_connections=4, pool_maxsize=self.parallelism + 2 * TRANSFER_CONCURRENCY
        )
        client._http.mount("http://", adapter)
        client._http.mount("https://", adapter)
        return client

    def _make_sdk_retry(self) -> Any:
        """The library's own retry predicate with short delays; ``None`` if we may make
        a single attempt only. Uploads get it too: we only ever write whole objects, so
        repeating one is harmless."""
        from google.cloud.storage.retry import DEFAULT_RETRY

        n = sdk_attempts(self.retry.attempts)
        if n <= 1:
            return None
        return DEFAULT_RETRY.with_delay(initial=0.25, maximum=1.0, multiplier=2.0).with_timeout(
            0.75 * (n - 1)
        )

    def _is_transient(self, exc: BaseException) -> bool:
        import requests
        from google.api_core.exceptions import GoogleAPICallError, RetryError
        from google.auth.exceptions import TransportError
        from google.cloud.storage.exceptions import DataCorruption, InvalidResponse
        from urllib3.exceptions import HTTPError as Urllib3Error

        for e in chain(exc):
            if isinstance(e, GoogleAPICallError):
                return e.code in TRANSIENT_STATUS
            if isinstance(e, InvalidResponse):
                return getattr(e.response, "status_code", None) in TRANSIENT_STATUS
            if isinstance(
                e,
                (
                    RetryError,  # the SDK gave up retrying something it deemed transient
                    DataCorruption,  # a checksum mismatch: the bytes got mangled in transit
                    TransportError,
                    requests.ConnectionError,
                    requests.Timeout,
                    requests.exceptions.ChunkedEncodingError,
                    Urllib3Error,
                ),
            ) or is_transient_os_error(e):
                return True
        return False

    def _bucket(self) -> Any:
        return self.client.bucket(self.bucket)

    def _blob(self, path: str) -> Any:
        return self._bucket().blob(self.key(path))

    @staticmethod
    def _not_found(exc: BaseException) -> bool:
        from google.api_core.exceptions import NotFound

        return isinstance(exc, NotFound)

    # --- primitives ------------------------------------------------------------------

    def exists(self, path: str) -> bool:
        return self._call(
            "check",
            path,
            lambda: self._blob(path).exists(retry=self._sdk_retry, timeout=TIMEOUT),
        )

    def put_bytes(self, path: str, data: bytes, overwrite: bool = True) -> None:
        import io

        if not overwrite and self.exists(path):
            return

        def put() -> None:
            blob = self._blob(path)
            if len(data) > RESUMABLE_THRESHOLD:
                blob.chunk_size = UPLOAD_CHUNK  # resumable: reads one chunk at a time
            self._upload(
                overwrite,
                lambda **kw: blob.upload_from_file(io.BytesIO(data), size=len(data), **kw),
            )

        self._call("upload", path, put)

    def _create(self, path: str, data: bytes) -> bool:
        import io

        from google.api_core.exceptions import PreconditionFailed

        try:
            self._blob(path).upload_from_file(
                io.BytesIO(data),
                size=len(data),
                if_generation_match=0,  # only if no live generation exists
                retry=self._sdk_retry,
                timeout=TIMEOUT,
            )
            return True
        except PreconditionFailed:
            return False

    def put_file(self, path: str, local_path: str, overwrite: bool = True) -> None:
        if not overwrite and self.exists(path):
            return

        def put() -> None:
            blob = self._blob(path)
            if os.path.getsize(local_path) > RESUMABLE_THRESHOLD:
                blob.chunk_size = UPLOAD_CHUNK
            self._upload(overwrite, lambda **kw: blob.upload_from_filename(local_path, **kw))

        self._call("upload", path, put)

    def _upload(self, overwrite: bool, upload: Any) -> None:
        from google.api_core.exceptions import PreconditionFailed

        kwargs: dict[str, Any] = {"retry": self._sdk_retry, "timeout": TIMEOUT}
        if not overwrite:
            kwargs["if_generation_match"] = 0  # create only: never replace a live object
        try:
            upload(**kwargs)
        except PreconditionFailed:
            if overwrite:
                raise
            # it appeared meanwhile (maybe our own earlier, unacknowledged attempt):
            # content-addressed objects are equal, so there is nothing left to do

    def get_bytes(self, path: str) -> bytes:
        def get() -> bytes:
            try:
                return self._blob(path).download_as_bytes(retry=self._sdk_retry, timeout=TIMEOUT)
            except Exception as e:
                if self._not_found(e):
                    raise FileNotFoundError(self.url(path)) from None
                raise

        return self._call("download", path, get)

    def get_file(self, path: str, local_path: str) -> None:
        def get(tmp: str) -> None:
            blob = self._bucket().get_blob(self.key(path), retry=self._sdk_retry, timeout=TIMEOUT)
            if blob is None:
                raise FileNotFoundError(self.url(path))
            kwargs = {"retry": self._sdk_retry, "timeout": TIMEOUT}
            if (blob.size or 0) <= RESUMABLE_THRESHOLD:
                blob.download_to_filename(tmp, if_generation_match=blob.generation, **kwargs)
                return
            from google.cloud.storage import transfer_manager

            # preallocates the file, fetches ranges in threads, checks the CRC32C
            transfer_manager.download_chunks_concurrently(
                blob,
                tmp,
                chunk_size=DOWNLOAD_CHUNK,
                download_kwargs={"if_generation_match": blob.generation, **kwargs},
                worker_type=transfer_manager.THREAD,
                max_workers=TRANSFER_CONCURRENCY,
            )

        self._call("download", path, lambda: self._into_file(local_path, get))

    def list_dir(self, path: str) -> list[tuple[str, bool]]:
        prefix = self.dir_key(path)

        def listing() -> list[tuple[str, bool]]:
            it = self.client.list_blobs(
                self.bucket,
                prefix=prefix or None,
                delimiter="/",
                retry=self._sdk_retry,
                timeout=TIMEOUT,
            )
            out: list[tuple[str, bool]] = []
            for page in it.pages:  # prefixes are known per page, after its items
                for blob in page:
                    name = blob.name[len(prefix) :]
                    if name:  # skip a "folder marker" object named like the prefix
                        out.append((name, False))
                for p in page.prefixes:
                    name = p[len(prefix) :].rstrip("/")
                    if name:
                        out.append((name, True))
            return out

        return self._call("list", path, listing)

    def delete(self, path: str) -> None:
        def remove() -> None:
            try:
                self._blob(path).delete(retry=self._sdk_retry, timeout=TIMEOUT)
            except Exception as e:
                if not self._not_found(e):
                    raise

        self._call("delete", path, remove)
