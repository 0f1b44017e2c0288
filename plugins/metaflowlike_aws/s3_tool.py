"""``S3``: the data tool of Metaflow, for reading and writing S3 objects from steps.

``with S3(run=self) as s3:`` scopes keys under the run (a folder of its own in the
run's S3 datastore, or ``<Flow>/<run id>`` under ``METAFLOWLIKE_DATATOOLS_S3ROOT`` /
``METAFLOW_DATATOOLS_S3ROOT``); ``S3(s3root="s3://b/p")`` and
``S3(bucket="b", prefix="p")`` scope them anywhere, and a bare ``S3()`` takes full
``s3://`` URLs. Downloads land in a temporary folder that the ``with`` block deletes,
so an ``S3Object``'s ``path`` is valid only inside it. Endpoint, region and credentials
come from boto3's standard chain, as for the S3 datastore.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from typing import Any

from metaflowlike.datastore.layout import LAYOUT
from metaflowlike.exceptions import MetaflowlikeException, NotFound
from metaflowlike.plugins import import_sdk

PARALLELISM = 16


class MetaflowS3Exception(MetaflowlikeException):
    headline = "S3 error"


class MetaflowS3URLException(MetaflowS3Exception):
    headline = "Invalid S3 URL"


class MetaflowS3NotFound(MetaflowS3Exception, NotFound):
    headline = "S3 object not found"


class MetaflowS3AccessDenied(MetaflowS3Exception):
    headline = "S3 access denied"


class S3Object:
    """One object (or, from ``list_paths``, one common prefix) and what is known of it.

    Fields as Metaflow's: ``exists``, ``downloaded``, ``url``, ``prefix``, ``key``,
    ``path`` (the local copy), ``blob``, ``text``, ``size``, ``has_info``,
    ``metadata``, ``content_type``, ``last_modified``, ``range_info``, ``encryption``."""

    def __init__(
        self,
        prefix: str | None,
        url: str,
        path: str | None = None,
        size: int | None = None,
        content_type: str | None = None,
        metadata: dict[str, str] | None = None,
        last_modified: datetime | None = None,
        encryption: str | None = None,
        exists: bool = True,
        has_info: bool = False,
    ) -> None:
        self._prefix, self._url, self._path = prefix, url, path
        self._size, self._content_type = size, content_type
        self._metadata, self._last_modified = metadata, last_modified
        self._encryption, self._exists, self._has_info = encryption, exists, has_info

    def __repr__(self) -> str:
        return f"<S3Object {self._url}{'' if self._exists else ' (missing)'}>"

    @property
    def exists(self) -> bool:
        return self._exists

    @property
    def downloaded(self) -> bool:
        return self._path is not None

    @property
    def url(self) -> str:
        return self._url

    @property
    def prefix(self) -> str | None:
        return self._prefix

    @property
    def key(self) -> str:
        """The key relative to the S3 object's root (the whole URL without one)."""
        if self._prefix and self._url.startswith(self._prefix):
            return self._url[len(self._prefix) :].lstrip("/")
        return self._url

    @property
    def path(self) -> str | None:
        return self._path

    @property
    def blob(self) -> bytes | None:
        if self._path is None:
            return None
        with open(self._path, "rb") as f:
            return f.read()

    @property
    def text(self) -> str | None:
        blob = self.blob
        return None if blob is None else blob.decode("utf-8")

    @property
    def size(self) -> int | None:
        return self._size

    @property
    def has_info(self) -> bool:
        return self._has_info

    @property
    def metadata(self) -> dict[str, str] | None:
        return self._metadata

    @property
    def content_type(self) -> str | None:
        return self._content_type

    @property
    def last_modified(self) -> float | None:
        """Seconds since the epoch, as Metaflow gives it."""
        return self._last_modified.timestamp() if self._last_modified else None

    @property
    def range_info(self) -> None:
        return None  # whole objects only

    @property
    def encryption(self) -> str | None:
        return self._encryption


def _split_url(url: str) -> tuple[str, str]:
    if not url.startswith("s3://"):
        raise MetaflowS3URLException(f'"{url}" is not an S3 URL (s3://bucket/key).')
    bucket, _, key = url[len("s3://") :].partition("/")
    if not bucket:
        raise MetaflowS3URLException(f'"{url}" names no bucket.')
    return bucket, key


def _run_root(run: Any) -> str:
    """The S3 folder of a running flow (``self``) or a client Run: under the datatools
    root if one is set, else the run's own folder for data in the S3 datastore."""
    from metaflowlike.current import current

    base = os.environ.get("METAFLOWLIKE_DATATOOLS_S3ROOT") or os.environ.get(
        "METAFLOW_DATATOOLS_S3ROOT"
    )
    if hasattr(run, "pathspec") and not callable(getattr(run, "next", None)):
        flow, run_id = run.pathspec.split("/")[:2]  # a client Run
        storage = run._store.storage
    else:
        if not current.is_running_flow:
            raise MetaflowS3Exception("S3(run=self) works inside a running step only.")
        flow, run_id = current.flow_name, current.run_id
        storage = current._datastore.storage  # type: ignore[attr-defined]
    if base is None and storage.TYPE == "s3":
        return f"{storage.root.rstrip('/')}/{LAYOUT.run_data(flow, run_id)}"
    if base is None:
        raise MetaflowS3Exception(
            "S3(run=...) needs an S3 location: run with an s3 datastore, or set "
            "METAFLOWLIKE_DATATOOLS_S3ROOT (or METAFLOW_DATATOOLS_S3ROOT) to s3://bucket/prefix."
        )
    return f"{base.rstrip('/')}/{flow}/{run_id}"


class S3:
    """Read and write S3 objects; use it as a context manager (``with S3(...) as s3``)."""

    def __init__(
        self,
        tmproot: str = ".",
        bucket: str | None = None,
        prefix: str | None = None,
        run: Any = None,
        s3root: str | None = None,
        **kwargs: Any,
    ) -> None:
        boto3 = import_sdk("boto3", needed_by="S3", package="boto3", extra="aws")
        if sum(x is not None for x in (run, s3root, bucket)) > 1:
            raise MetaflowS3Exception("S3() takes one of run=, s3root= or bucket=.")
        if run is not None:
            root: str | None = _run_root(run)
        elif s3root is not None:
            _split_url(s3root)
            root = s3root
        elif bucket is not None:
            root = f"s3://{bucket}/{(prefix or '').strip('/')}"
        else:
            root = None
        self._root = root.rstrip("/") if root else None
        self._client = boto3.session.Session().client("s3")
        tmp_parent = tmproot if os.path.isdir(tmproot) and os.access(tmproot, os.W_OK) else None
        self._tmpdir = tempfile.mkdtemp(prefix="metaflowlike.s3.", dir=tmp_parent)
        self._counter = 0

    def __enter__(self) -> S3:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Delete the downloaded files."""
        shutil.rmtree(self._tmpdir, ignore_errors=True)

    # --- names -----------------------------------------------------------------------

    def _url(self, key: str | None) -> str:
        if key and key.startswith("s3://"):
            return key
        if self._root is None:
            raise MetaflowS3URLException(
                f'"{key}" is not a full s3:// URL, and this S3 has no root '
                "(give run=, s3root= or bucket=)."
            )
        return f"{self._root}/{key.lstrip('/')}" if key else self._root

    def _object(self, url: str, **fields: Any) -> S3Object:
        prefix = self._root if self._root and url.startswith(self._root) else None
        return S3Object(prefix, url, **fields)

    def _error(self, e: Exception, url: str) -> Exception:
        from botocore.exceptions import ClientError

        if isinstance(e, ClientError):
            code = str(e.response.get("Error", {}).get("Code", ""))
            if code in ("404", "NoSuchKey", "NoSuchBucket", "NotFound"):
                return MetaflowS3NotFound(f"{url} does not exist.")
            if code in ("403", "AccessDenied"):
                return MetaflowS3AccessDenied(f"Access to {url} was denied.")
            return MetaflowS3Exception(f"{url}: {code}: {e.response['Error'].get('Message', '')}")
        return e

    # --- writing ---------------------------------------------------------------------

    def put(
        self,
        key: str,
        obj: str | bytes,
        overwrite: bool = True,
        content_type: str | None = None,
        metadata: dict[str, str] | None = None,
    ) -> str:
        """Store ``obj`` (text is UTF-8 encoded) under ``key``; return its URL."""
        url = self._url(key)
        if isinstance(obj, str):
            body = obj.encode("utf-8")
        elif isinstance(obj, (bytes, bytearray, memoryview)):
            body = bytes(obj)
        elif hasattr(obj, "read"):
            body = obj.read()
        else:
            raise MetaflowS3Exception(
                f"S3.put({key!r}, ...) takes str or bytes (or a file object), "
                f"not {type(obj).__name__}."
            )
        bucket, path = _split_url(url)
        if not overwrite and self._head(url) is not None:
            return url
        extra: dict[str, Any] = {}
        if content_type:
            extra["ContentType"] = content_type
        if metadata:
            extra["Metadata"] = {str(k): str(v) for k, v in metadata.items()}
        try:
            self._client.put_object(Bucket=bucket, Key=path, Body=body, **extra)
        except Exception as e:
            raise self._error(e, url) from None
        return url

    def put_many(self, key_objs: Iterable[Any], overwrite: bool = True) -> list[tuple[str, str]]:
        """Store many ``(key, obj)`` pairs at once; return ``[(key, url), ...]``."""
        pairs = [(k, o) for k, o in key_objs]
        with ThreadPoolExecutor(PARALLELISM) as pool:
            urls = list(pool.map(lambda kv: self.put(kv[0], kv[1], overwrite=overwrite), pairs))
        return [(k, u) for (k, _), u in zip(pairs, urls)]

    def put_files(
        self, key_paths: Iterable[tuple[str, str]], overwrite: bool = True
    ) -> list[tuple[str, str]]:
        """Upload local files: ``[(key, local_path), ...]``."""
        out = []
        for key, path in key_paths:
            with open(path, "rb") as f:
                out.append((key, self.put(key, f.read(), overwrite=overwrite)))
        return out

    # --- reading ---------------------------------------------------------------------

    def _head(self, url: str) -> dict | None:
        bucket, path = _split_url(url)
        try:
            return self._client.head_object(Bucket=bucket, Key=path)
        except Exception as e:
            err = self._error(e, url)
            if isinstance(err, MetaflowS3NotFound):
                return None
            raise err from None

    def _download(self, url: str, return_missing: bool) -> S3Object:
        bucket, path = _split_url(url)
        try:
            resp = self._client.get_object(Bucket=bucket, Key=path)
        except Exception as e:
            err = self._error(e, url)
            if isinstance(err, MetaflowS3NotFound) and return_missing:
                return self._object(url, exists=False)
            raise err from None
        self._counter += 1
        local = os.path.join(self._tmpdir, f"{self._counter}-{os.path.basename(path) or 'obj'}")
        with open(local, "wb") as f:
            for chunk in iter(lambda: resp["Body"].read(1 << 20), b""):
                f.write(chunk)
        return self._object(
            url,
            path=local,
            size=resp.get("ContentLength"),
            content_type=resp.get("ContentType"),
            metadata=resp.get("Metadata") or {},
            last_modified=resp.get("LastModified"),
            encryption=resp.get("ServerSideEncryption"),
            has_info=True,
        )

    def get(self, key: str | None = None, return_missing: bool = False, return_info: bool = True):
        """Download one object; a missing one raises ``MetaflowS3NotFound`` unless
        ``return_missing`` (then ``exists`` is False)."""
        return self._download(self._url(key), return_missing)

    def get_many(self, keys: Iterable[str], return_missing: bool = False, return_info: bool = True):
        urls = [self._url(k) for k in keys]
        with ThreadPoolExecutor(PARALLELISM) as pool:
            return list(pool.map(lambda u: self._download(u, return_missing), urls))

    def get_recursive(self, keys: Iterable[str], return_info: bool = False) -> list[S3Object]:
        """Download every object under each of ``keys`` (prefixes)."""
        urls = [o.url for o in self.list_recursive(keys)]
        return self.get_many(urls)

    def get_all(self, return_info: bool = False) -> list[S3Object]:
        """Download every object under this S3's root."""
        return self.get_recursive([""])

    def info(self, key: str | None = None, return_missing: bool = False) -> S3Object:
        url = self._url(key)
        head = self._head(url)
        if head is None:
            if return_missing:
                return self._object(url, exists=False)
            raise MetaflowS3NotFound(f"{url} does not exist.")
        return self._object(
            url,
            size=head.get("ContentLength"),
            content_type=head.get("ContentType"),
            metadata=head.get("Metadata") or {},
            last_modified=head.get("LastModified"),
            encryption=head.get("ServerSideEncryption"),
            has_info=True,
        )

    def info_many(self, keys: Iterable[str], return_missing: bool = False) -> list[S3Object]:
        return [self.info(k, return_missing) for k in keys]

    # --- listing ---------------------------------------------------------------------

    def _list(self, url: str, delimiter: bool) -> list[S3Object]:
        bucket, path = _split_url(url)
        if path and not path.endswith("/"):
            path += "/"
        kwargs: dict[str, Any] = {"Bucket": bucket, "Prefix": path}
        if delimiter:
            kwargs["Delimiter"] = "/"
        out = []
        try:
            for page in self._client.get_paginator("list_objects_v2").paginate(**kwargs):
                for p in page.get("CommonPrefixes", []):
                    out.append(self._object(f"s3://{bucket}/{p['Prefix']}", exists=False))
                for o in page.get("Contents", []):
                    out.append(
                        self._object(
                            f"s3://{bucket}/{o['Key']}",
                            size=o["Size"],
                            last_modified=o.get("LastModified"),
                        )
                    )
        except Exception as e:
            raise self._error(e, url) from None
        return sorted(out, key=lambda o: o.url)

    def list_paths(self, keys: Iterable[str] | None = None) -> list[S3Object]:
        """What is directly under each key, like ``ls``: objects (``exists``) and
        prefixes (``exists`` False)."""
        return [o for k in (keys or [""]) for o in self._list(self._url(k), delimiter=True)]

    def list_recursive(self, keys: Iterable[str] | None = None) -> list[S3Object]:
        """Every object under each key."""
        return [o for k in (keys or [""]) for o in self._list(self._url(k), delimiter=False)]
