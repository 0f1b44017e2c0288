"""Amazon S3 (and any S3-compatible server) as a metaflowlike datastore.

Root URL: ``s3://bucket/prefix``. Endpoint, region and credentials come only from
boto3's standard chain (``AWS_ENDPOINT_URL``, ``AWS_PROFILE``, instance roles...), so
anything that configures the AWS CLI configures this too.

Atomicity is S3's own: a single PUT and a multipart upload both become visible only
when complete (after ``CompleteMultipartUpload``). Large transfers go through one
shared s3transfer manager (parallel parts, bounded memory); boto3 retries each request
a few times ("standard" mode) and :class:`RetryPolicy` retries whole operations.
"""

from __future__ import annotations

import io
from typing import Any

from metaflowlike.datastore.remote import RemoteStorage
from metaflowlike.datastore.retry import (
    TRANSIENT_STATUS,
    chain,
    is_transient_os_error,
    sdk_attempts,
)
from metaflowlike.plugins import import_sdk

#: objects above this size use parallel multipart upload / ranged download
MULTIPART_THRESHOLD = 16 * 1024 * 1024
PART_SIZE = 16 * 1024 * 1024
TRANSFER_CONCURRENCY = 8

_TRANSIENT_CODES = frozenset(
    {
        "SlowDown",
        "Throttling",
        "ThrottlingException",
        "RequestThrottled",
        "RequestTimeout",
        "RequestTimeTooSkewed",
        "InternalError",
        "ServiceUnavailable",
        "ConditionalRequestConflict",  # a concurrent conditional write: S3 says retry
        "500",
        "502",
        "503",
        "504",
    }
)
_MISSING_CODES = frozenset({"404", "NoSuchKey", "NotFound"})


class S3Storage(RemoteStorage):
    TYPE = "s3"
    SCHEMES = ("s3",)

    def __init__(self, root: str) -> None:
        super().__init__(root)
        self._boto3 = import_sdk(
            "boto3", needed_by="The s3 datastore", package="boto3", extra="aws"
        )
        self._transfer_obj: Any = None
        self._secret_values: list[str | None] = []

    # --- client ----------------------------------------------------------------------

    def _new_client(self) -> Any:
        from botocore.config import Config

        config = Config(
            retries={"mode": "standard", "max_attempts": sdk_attempts(self.retry.attempts)},
            max_pool_connections=self.parallelism + 2 * TRANSFER_CONCURRENCY,
            connect_timeout=5,
            read_timeout=60,
            tcp_keepalive=True,
        )
        # a private session: boto3's default session is not thread safe
        session = self._boto3.session.Session()
        creds = session.get_credentials()
        if creds is not None:
            self._secret_values = [creds.access_key, creds.secret_key, creds.token]
        return session.client("s3", config=config)

    def _transfer(self) -> Any:
        """One s3transfer manager per process: its threads do the parallel parts."""
        client = self.client
        with self._lock:
            if self._transfer_obj is None:
                from boto3.s3.transfer import TransferConfig, create_transfer_manager

                config = TransferConfig(
                    multipart_threshold=MULTIPART_THRESHOLD,
                    multipart_chunksize=PART_SIZE,
                    max_concurrency=TRANSFER_CONCURRENCY,
                    num_download_attempts=sdk_attempts(self.retry.attempts),
                    use_threads=True,
                    preferred_transfer_client="classic",
                )
                self._transfer_obj = create_transfer_manager(client, config)
            return self._transfer_obj

    def _secrets(self) -> list[str]:
        return [s for s in self._secret_values if s]

    def _is_transient(self, exc: BaseException) -> bool:
        from botocore.exceptions import (
            ClientError,
            HTTPClientError,
            IncompleteReadError,
            ResponseStreamingError,
        )
        from s3transfer.exceptions import RetriesExceededError
        from urllib3.exceptions import HTTPError as Urllib3Error

        for e in chain(exc):
            if isinstance(e, ClientError):
                status = e.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
                code = e.response.get("Error", {}).get("Code", "")
                return status in TRANSIENT_STATUS or code in _TRANSIENT_CODES
            if isinstance(
                e,
                (
                    HTTPClientError,  # connection refused/reset/closed, timeouts
                    IncompleteReadError,
                    ResponseStreamingError,
                    RetriesExceededError,
                    Urllib3Error,
                ),
            ) or is_transient_os_error(e):
                return True
        return False

    @staticmethod
    def _missing(exc: BaseException) -> bool:
        from botocore.exceptions import ClientError

        for e in chain(exc):
            if isinstance(e, ClientError):
                return e.response.get("Error", {}).get("Code", "") in _MISSING_CODES
        return False

    # --- primitives ------------------------------------------------------------------

    def exists(self, path: str) -> bool:
        return self._call("check", path, lambda: self._head(path) is not None)

    def _head(self, path: str) -> dict | None:
        try:
            return self.client.head_object(Bucket=self.bucket, Key=self.key(path))
        except Exception as e:
            if self._missing(e):
                return None
            raise

    def put_bytes(self, path: str, data: bytes, overwrite: bool = True) -> None:
        if not overwrite and self.exists(path):
            return

        def put() -> None:
            if len(data) <= MULTIPART_THRESHOLD:
                self.client.put_object(Bucket=self.bucket, Key=self.key(path), Body=data)
            else:  # a BytesIO over bytes shares the buffer: parts are sliced, not copied
                self._transfer().upload(io.BytesIO(data), self.bucket, self.key(path)).result()

        self._call("upload", path, put)

    def _create(self, path: str, data: bytes) -> bool:
        from botocore.exceptions import ClientError

        try:
            self.client.put_object(
                Bucket=self.bucket, Key=self.key(path), Body=data, IfNoneMatch="*"
            )
            return True
        except ClientError as e:
            status = e.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
            if status == 412 or e.response.get("Error", {}).get("Code") == "PreconditionFailed":
                return False
            raise

    def put_file(self, path: str, local_path: str, overwrite: bool = True) -> None:
        if not overwrite and self.exists(path):
            return
        self._call(
            "upload",
            path,
            lambda: self._transfer().upload(local_path, self.bucket, self.key(path)).result(),
        )

    def get_bytes(self, path: str) -> bytes:
        def get() -> bytes:
            try:
                resp = self.client.get_object(Bucket=self.bucket, Key=self.key(path))
            except Exception as e:
                if self._missing(e):
                    raise FileNotFoundError(self.url(path)) from None
                raise
            body = resp["Body"]
            if resp.get("ContentLength", 0) <= MULTIPART_THRESHOLD:
                with body:
                    return body.read()
            body.close()  # big: fetch it again as parallel ranges instead
            buf = io.BytesIO()
            self._download(path, buf)
            return buf.getvalue()  # shares BytesIO's buffer: no second copy

        return self._call("download", path, get)

    def get_file(self, path: str, local_path: str) -> None:
        # s3transfer writes to a temporary name next to local_path and renames it
        self._call("download", path, lambda: self._download(path, local_path))

    def _download(self, path: str, target: Any) -> None:
        try:
            self._transfer().download(self.bucket, self.key(path), target).result()
        except Exception as e:
            if self._missing(e):
                raise FileNotFoundError(self.url(path)) from None
            raise

    def list_dir(self, path: str) -> list[tuple[str, bool]]:
        prefix = self.dir_key(path)

        def listing() -> list[tuple[str, bool]]:
            out: list[tuple[str, bool]] = []
            pages = self.client.get_paginator("list_objects_v2").paginate(
                Bucket=self.bucket, Prefix=prefix, Delimiter="/"
            )
            for page in pages:
                for p in page.get("CommonPrefixes", ()):
                    name = p["Prefix"][len(prefix) :].rstrip("/")
                    if name:
                        out.append((name, True))
                for obj in page.get("Contents", ()):
                    name = obj["Key"][len(prefix) :]
                    if name:  # skip a "folder marker" object named like the prefix
                        out.append((name, False))
            return out

        return self._call("list", path, listing)

    def _after_fork(self) -> None:
        super()._after_fork()
        self._transfer_obj = None

    def close(self) -> None:
        with self._lock:
            transfer, self._transfer_obj = self._transfer_obj, None
        if transfer is not None:
            transfer.shutdown()
        super().close()

    def delete(self, path: str) -> None:
        self._call(
            "delete",
            path,
            lambda: self.client.delete_object(Bucket=self.bucket, Key=self.key(path)),
        )
