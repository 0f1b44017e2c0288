"""Throughput of the cloud storage backends against their local emulators.

Starts moto, Azurite and fake-gcs-server (``tests/cloud_servers.py``), then for each
backend measures upload and download of

* one large artifact (default 256 MB) - ``put_file``/``get_file`` of our Storage class
  versus the bare SDK's file calls (boto3 ``upload_file``/``download_file``, azure
  ``upload_blob``/``download_blob``, GCS ``upload_from_filename``/``download_to_filename``)
  with their default settings;
* many small artifacts (default 1,000 x 1 KB) - our ``put_many``/``get_many`` versus
  the same bare SDK calls made from a thread pool of the same size (so the ratio shows
  per-request overhead, not parallelism).

The emulators, not the network, are the bottleneck here: the figures compare our layer
with the SDK on the same machine, they say little about a real cloud.

    python benchmarks/storage_throughput.py --size-mb 64 --small-count 200
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from metaflowlike import plugins  # noqa: E402
from tests.cloud_servers import (  # noqa: E402
    CONFLICTING_ENV,
    STARTERS,
    Server,
    create_bucket,
    new_bucket_name,
)

MB = 1024 * 1024


def timed(fn: Callable[[], object]) -> float:
    t = time.perf_counter()
    fn()
    return time.perf_counter() - t


class BareSDK:
    """The plain SDK calls a user would write, for one backend and bucket."""

    def __init__(self, kind: str, server: Server, bucket: str):
        self.kind, self.bucket = kind, bucket
        if kind == "s3":
            import boto3

            self.client = boto3.session.Session().client("s3")
        elif kind == "azure":
            from azure.storage.blob import BlobServiceClient

            conn = os.environ["AZURE_STORAGE_CONNECTION_STRING"]
            svc = BlobServiceClient.from_connection_string(conn)
            self.client = svc.get_container_client(bucket)
        else:
            from google.auth.credentials import AnonymousCredentials
            from google.cloud import storage

            self.client = storage.Client(
                project="bench",
                credentials=AnonymousCredentials(),
                client_options={"api_endpoint": server.url},
            ).bucket(bucket)

    def upload_file(self, key: str, path: str) -> None:
        if self.kind == "s3":
            self.client.upload_file(path, self.bucket, key)
        elif self.kind == "azure":
            with open(path, "rb") as f:
                self.client.upload_blob(key, f, overwrite=True)
        else:
            self.client.blob(key).upload_from_filename(path)

    def download_file(self, key: str, path: str) -> None:
        if self.kind == "s3":
            self.client.download_file(self.bucket, key, path)
        elif self.kind == "azure":
            with open(path, "wb") as f:
                self.client.download_blob(key).readinto(f)
        else:
            self.client.blob(key).download_to_filename(path)

    def put(self, key: str, data: bytes) -> None:
        if self.kind == "s3":
            self.client.put_object(Bucket=self.bucket, Key=key, Body=data)
        elif self.kind == "azure":
            self.client.upload_blob(key, data, overwrite=True)
        else:
            self.client.blob(key).upload_from_string(data)

    def get(self, key: str) -> bytes:
        if self.kind == "s3":
            return self.client.get_object(Bucket=self.bucket, Key=key)["Body"].read()
        if self.kind == "azure":
            return self.client.download_blob(key).readall()
        return self.client.blob(key).download_as_bytes()


def bench_backend(kind: str, size_mb: int, small_count: int, work: Path) -> list[tuple]:
    server = STARTERS[kind]()
    saved = dict(os.environ)
    try:
        for name in CONFLICTING_ENV:
            os.environ.pop(name, None)
        os.environ.update(server.env())
        bucket = new_bucket_name()
        create_bucket(kind, server.url, bucket)
        store = plugins.load(plugins.DATASTORES, kind, "datastore")(f"{kind}://{bucket}/ours")
        sdk = BareSDK(kind, server, bucket)

        # warm up both (clients, connections, first-request costs) before timing
        store.put_bytes("warm", b"w")
        store.get_bytes("warm")
        sdk.put("sdk/warm", b"w")
        sdk.get("sdk/warm")

        big = work / "big.bin"
        with open(big, "wb") as f:
            for _ in range(size_mb):
                f.write(os.urandom(MB))
        out = work / "out.bin"
        size = size_mb * MB
        rows = []

        up_ours = timed(lambda: store.put_file("big", str(big)))
        up_sdk = timed(lambda: sdk.upload_file("sdk/big", str(big)))
        down_ours = timed(lambda: store.get_file("big", str(out)))
        assert out.stat().st_size == size
        down_sdk = timed(lambda: sdk.download_file("sdk/big", str(out)))
        assert out.stat().st_size == size
        out.unlink()
        label = f"{size_mb} MB file"
        rows.append((kind, f"{label} upload", size / up_ours / MB, size / up_sdk / MB, ""))
        rows.append((kind, f"{label} download", size / down_ours / MB, size / down_sdk / MB, ""))

        items = [(f"small/{i:05d}", os.urandom(1024)) for i in range(small_count)]
        keys = [k for k, _ in items]
        total = small_count * 1024
        with ThreadPoolExecutor(max_workers=store.parallelism) as pool:
            up_ours = timed(lambda: store.put_many(items))
            up_sdk = timed(lambda: list(pool.map(lambda kv: sdk.put("sdk/" + kv[0], kv[1]), items)))
            down_ours = timed(lambda: store.get_many(keys))
            down_sdk = timed(lambda: list(pool.map(lambda k: sdk.get("sdk/" + k), keys)))
        label = f"{small_count} x 1 KB"
        for what, ours, bare in (("upload", up_ours, up_sdk), ("download", down_ours, down_sdk)):
            ops = f"{small_count / ours:.0f} vs {small_count / bare:.0f} ops/s"
            rows.append((kind, f"{label} {what}", total / ours / MB, total / bare / MB, ops))
        getattr(store, "close", lambda: None)()
        return rows
    finally:
        os.environ.clear()
        os.environ.update(saved)
        server.stop()


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--size-mb", type=int, default=256, help="size of the large artifact")
    ap.add_argument("--small-count", type=int, default=1000, help="number of 1 KB artifacts")
    ap.add_argument(
        "--backends", default="s3,azure,gs", help="comma separated subset of s3,azure,gs"
    )
    args = ap.parse_args(argv)
    kinds = [k.strip() for k in args.backends.split(",") if k.strip()]
    for k in kinds:
        if k not in STARTERS:
            ap.error(f"unknown backend {k!r} (choose from {', '.join(STARTERS)})")

    print(f"{'backend':<7} {'case':<24} {'ours MB/s':>10} {'SDK MB/s':>10} {'ours/SDK':>9}")
    with tempfile.TemporaryDirectory(prefix="mfl-bench-") as tmp:
        for kind in kinds:
            for backend, case, ours, bare, extra in bench_backend(
                kind, args.size_mb, args.small_count, Path(tmp)
            ):
                print(
                    f"{backend:<7} {case:<24} {ours:>10.2f} {bare:>10.2f} {ours / bare:>9.2f}"
                    + (f"   ({extra})" if extra else ""),
                    flush=True,
                )


if __name__ == "__main__":
    main()
