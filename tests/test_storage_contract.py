"""The one contract every ``Storage`` backend honours, checked against real servers.

Each test in the first part runs once per backend - the local folder, S3 (moto), Azure
Blob (Azurite) and GCS (fake-gcs-server) - through the entry points a user's
``--datastore`` goes through. The second part puts a fault-injecting TCP proxy
(``tcp_proxy.py``) between a cloud backend and its server to check atomic visibility
of interrupted uploads, retries of transient faults and the error of a persistent one.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from metaflowlike import plugins
from metaflowlike.datastore.retry import ENV_ATTEMPTS, RetryPolicy, redact
from metaflowlike.datastore.storage import Storage, StorageError

from .cloud_servers import (
    AWS_SECRET,
    AZURITE_KEY,
    create_bucket,
    free_port,
    new_bucket_name,
    root_url,
    start_fake_gcs,
    use_server_env,
)
from .tcp_proxy import TcpProxy

KINDS = ["local", "s3", "azure", "gs"]
CLOUD = ["s3", "azure", "gs"]
BIG = 40 * 1024 * 1024  # above every backend's multipart / block / resumable threshold
SECRETS = (AWS_SECRET, AZURITE_KEY)

pytestmark = pytest.mark.timeout(120)


def storage_class(kind: str) -> type[Storage]:
    return plugins.load(plugins.DATASTORES, kind, "datastore")


def bind(kind: str, root: str, url: str) -> Storage:
    """A store whose SDK client talks to ``url`` (a server or a proxy in front of it).

    Clients read their endpoint from the environment when they are built, so the store
    builds its client now, inside a temporary environment."""
    with pytest.MonkeyPatch.context() as m:
        use_server_env(m, kind, url)
        store = storage_class(kind)(root)
        store.client  # noqa: B018
    return store


@pytest.fixture(scope="session")
def big_file(tmp_path_factory) -> tuple[Path, bytes]:
    data = os.urandom(BIG)
    path = tmp_path_factory.mktemp("big") / "big.bin"
    path.write_bytes(data)
    return path, data


@pytest.fixture(params=KINDS)
def make_store(request, cloud_root, tmp_path):
    """Factory of stores of one backend, all in one fresh bucket: ``make_store("p")``
    is rooted at ``<bucket>/p`` and ``make_store("")`` at the bucket itself."""
    kind = request.param
    base = str(tmp_path / "store") if kind == "local" else cloud_root(kind, prefix="")
    made: list[Storage] = []

    def make(prefix: str = "root") -> Storage:
        root = f"{base}/{prefix}" if prefix else base
        store = storage_class(kind)(root)
        made.append(store)
        return store

    yield make
    for s in made:
        getattr(s, "close", lambda: None)()


@pytest.fixture
def store(make_store) -> Storage:
    return make_store()


# --- the contract, on every backend ------------------------------------------------


def test_bytes_round_trip(store):
    payloads = {"a": b"hello", "dir/sub/obj": bytes(range(256)) * 4, "empty": b""}
    for path, data in payloads.items():
        store.put_bytes(path, data)
    for path, data in payloads.items():
        assert store.get_bytes(path) == data
        assert store.exists(path)


def test_file_round_trip(store, tmp_path):
    src = tmp_path / "src.bin"
    src.write_bytes(b"file contents\n" * 100)
    store.put_file("files/one", str(src))
    if src.exists():  # the caller owns it and may delete it right away
        src.unlink()
    out = tmp_path / "out.bin"
    store.get_file("files/one", str(out))
    assert out.read_bytes() == b"file contents\n" * 100


def test_large_round_trip_bytes_and_files(store, big_file, tmp_path):
    path, data = big_file
    store.put_bytes("big/bytes", data)
    assert hashlib.sha256(store.get_bytes("big/bytes")).digest() == hashlib.sha256(data).digest()
    copy = tmp_path / "copy.bin"
    copy.write_bytes(data[::-1])
    store.put_file("big/file", str(copy))
    out = tmp_path / "out.bin"
    store.get_file("big/file", str(out))
    assert out.stat().st_size == BIG
    assert out.read_bytes() == data[::-1]


def test_overwrite_false_keeps_the_existing_object(store, tmp_path):
    store.put_bytes("k", b"first")
    store.put_bytes("k", b"second", overwrite=False)
    assert store.get_bytes("k") == b"first"
    f = tmp_path / "f"
    f.write_bytes(b"third")
    store.put_file("k", str(f), overwrite=False)
    assert store.get_bytes("k") == b"first"
    store.put_many([("k", b"fourth"), ("new", b"n")], overwrite=False)
    assert store.get_many(["k", "new"]) == [b"first", b"n"]
    store.put_bytes("k", b"fifth")  # overwrite=True (the default) replaces
    assert store.get_bytes("k") == b"fifth"


def test_create_bytes_is_a_conditional_create(store):
    """The server itself refuses the second create: if a backend ignored the
    precondition, the second call would overwrite the object with its own bytes (and
    report success), which this test catches by reading the object back. Verified this
    way on moto 5.2 (PutObject with ``If-None-Match: *`` answers 412 PreconditionFailed),
    Azurite (Put Blob with ``If-None-Match: *`` answers 409 BlobAlreadyExists) and
    fake-gcs-server (an upload with ``ifGenerationMatch=0`` answers 412)."""
    assert store.create_bytes("claims/a", b"first") is True
    assert store.create_bytes("claims/a", b"second") is False
    assert store.get_bytes("claims/a") == b"first"
    # the same bytes again: a retried request whose first attempt got through
    assert store.create_bytes("claims/a", b"first") is True


def test_concurrent_claims_have_exactly_one_winner(make_store):
    """Two clients (two runtimes starting a run) claim each path at the same instant:
    a barrier releases both requests together, over separate connections, and exactly
    one of them gets the object, on every backend, in every round."""
    stores = [make_store("claims"), make_store("claims")]
    for round_ in range(8):
        barrier = threading.Barrier(2)
        won: list[bool | None] = [None, None]

        def claim(i: int, path: str, barrier: threading.Barrier, won: list) -> None:
            barrier.wait()
            won[i] = stores[i].create_bytes(path, f"runtime {i}".encode())

        threads = [
            threading.Thread(target=claim, args=(i, f"run/{round_}", barrier, won))
            for i in range(2)
        ]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert sorted(won) == [False, True], won
        assert stores[0].get_bytes(f"run/{round_}") == f"runtime {won.index(True)}".encode()


def test_exists_and_exists_many(store):
    store.put_bytes("x/1", b"1")
    store.put_bytes("x/2", b"2")
    assert store.exists("x/1") and not store.exists("x/3")
    assert store.exists_many(["x/2", "x/3", "x/1", "nope/x/1"]) == [True, False, True, False]
    assert store.exists_many([]) == []


def test_list_dir_is_one_level_deep(store):
    for path in ["a", "d/x", "d/y/z", "d/y/w", "dx", "e/f/g"]:
        store.put_bytes(path, path.encode())
    assert sorted(store.list_dir("")) == [("a", False), ("d", True), ("dx", False), ("e", True)]
    assert sorted(store.list_dir("d")) == [("x", False), ("y", True)]
    assert sorted(store.list_dir("d/y")) == [("w", False), ("z", False)]
    assert store.list_dir("e") == [("f", True)]
    assert store.list_dir("missing") == []
    assert store.list_dir("d/y/missing") == []


def test_missing_objects_raise_file_not_found(store, tmp_path):
    store.put_bytes("present", b"p")
    with pytest.raises(FileNotFoundError):
        store.get_bytes("absent")
    with pytest.raises(FileNotFoundError):
        store.get_file("absent", str(tmp_path / "out"))
    with pytest.raises(FileNotFoundError):
        store.get_many(["present", "absent"])
    assert not store.exists("absent")


def test_many_objects_in_parallel_batches(store):
    # more than one listing page (1000 keys) on S3 and GCS
    items = [(f"many/{i:04d}", b"v%d" % i) for i in range(1005)]
    store.put_many(items)
    listed = store.list_dir("many")
    assert sorted(listed) == [(p.split("/")[1], False) for p, _ in items]
    some = items[:40] + items[-40:]
    paths = [p for p, _ in some]
    assert store.get_many(paths) == [v for _, v in some]  # results keep the input order
    assert store.exists_many(paths + ["many/x"]) == [True] * len(paths) + [False]


def test_prefix_isolation(make_store):
    one, other, bucket = make_store("p1"), make_store("p1x"), make_store("")
    one.put_bytes("k", b"one")
    other.put_bytes("k", b"other")
    assert one.get_bytes("k") == b"one" and other.get_bytes("k") == b"other"
    assert one.list_dir("") == [("k", False)]
    assert other.list_dir("") == [("k", False)]
    assert sorted(bucket.list_dir("")) == [("p1", True), ("p1x", True)]
    assert not one.exists("x/k") and bucket.get_bytes("p1x/k") == b"other"


def test_delete(store):
    store.put_bytes("gone", b"x")
    store.delete("gone")
    assert not store.exists("gone")
    store.delete("never-was")  # deleting nothing is not an error


def test_a_forked_child_can_use_a_warm_store(store):
    # the runtime forks tasks from a process that may have used the store already
    store.put_many([(f"pre/{i}", b"p") for i in range(8)])
    pid = os.fork()
    if pid == 0:  # child: never return into pytest
        code = 1
        try:
            store.put_bytes("child", b"from child")
            code = 0 if store.get_many(["pre/0", "child"]) == [b"p", b"from child"] else 2
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    assert store.get_bytes("child") == b"from child"


def test_missing_sdk_is_a_missing_extra_error():
    code = (
        "import sys\n"
        "sys.modules.update({'boto3': None, 'azure.storage.blob': None, "
        "'google.cloud.storage': None})\n"
        "from metaflowlike import plugins\n"
        "for kind, extra in [('s3', 'aws'), ('azure', 'azure'), ('gs', 'gcp')]:\n"
        "    cls = plugins.load(plugins.DATASTORES, kind, 'datastore')\n"
        "    try:\n"
        "        cls(kind + '://bucket/p')\n"
        "    except plugins.MissingExtra as e:\n"
        "        assert f'metaflowlike[{extra}]' in str(e), e\n"
        "    else:\n"
        "        raise AssertionError(kind)\n"
    )
    env = {**os.environ, "AZURE_STORAGE_CONNECTION_STRING": "x"}
    subprocess.run([sys.executable, "-c", code], check=True, env=env)


def test_url_names_the_object(store):
    assert store.url("data/ab/abcd") == store.root.rstrip("/") + "/data/ab/abcd"


# --- construction and configuration -------------------------------------------------


@pytest.mark.parametrize("kind", CLOUD)
@pytest.mark.parametrize("bad", ["", "{k}://", "{k}:/bucket", "file:///tmp/x", "{k}:///path"])
def test_bad_root_is_a_clear_error(kind, bad):
    root = bad.format(k=kind)
    with pytest.raises(StorageError, match=rf"{kind} datastore: invalid root"):
        storage_class(kind)(root)


@pytest.mark.parametrize("kind", CLOUD)
def test_root_is_normalised(kind, cloud_root):
    bucket = cloud_root(kind, prefix="").split("://")[1]
    store = storage_class(kind)(f"{kind}://{bucket}//a//b/")
    assert store.root == f"{kind}://{bucket}/a/b"
    store.put_bytes("k", b"v")
    assert storage_class(kind)(f"{kind}://{bucket}").list_dir("a") == [("b", True)]


@pytest.mark.parametrize("kind", CLOUD)
def test_bad_retry_setting_is_a_clear_error(kind, cloud_root, monkeypatch):
    root = cloud_root(kind)
    monkeypatch.setenv(ENV_ATTEMPTS, "many")
    with pytest.raises(StorageError, match=ENV_ATTEMPTS):
        storage_class(kind)(root)


def test_azure_without_credentials_says_what_to_set(monkeypatch):
    monkeypatch.delenv("AZURE_STORAGE_CONNECTION_STRING", raising=False)
    monkeypatch.delenv("AZURE_STORAGE_ACCOUNT_URL", raising=False)
    with pytest.raises(StorageError, match="AZURE_STORAGE_CONNECTION_STRING"):
        storage_class("azure")("azure://container/prefix")


def test_azure_account_url_needs_azure_identity(monkeypatch):
    monkeypatch.delenv("AZURE_STORAGE_CONNECTION_STRING", raising=False)
    monkeypatch.setenv("AZURE_STORAGE_ACCOUNT_URL", "https://acct.blob.core.windows.net")
    try:
        import azure.identity  # noqa: F401
    except ImportError:
        with pytest.raises(StorageError, match="azure-identity"):
            storage_class("azure")("azure://container/prefix")
    else:  # installed: the client is built with DefaultAzureCredential
        storage_class("azure")("azure://container/prefix")


def test_gcs_without_credentials_says_how_to_sign_in(monkeypatch, tmp_path):
    monkeypatch.delenv("STORAGE_EMULATOR_HOST", raising=False)
    monkeypatch.setenv("GOOGLE_APPLICATION_CREDENTIALS", str(tmp_path / "missing.json"))
    store = storage_class("gs")("gs://bucket/prefix")
    with pytest.raises(StorageError, match="no Google Cloud credentials.*GOOGLE_APPLICATION"):
        store.exists("k")


def test_azure_wrong_key_fails_fast_without_leaking_it(azurite_server, monkeypatch):
    bucket = new_bucket_name()
    create_bucket("azure", azurite_server.url, bucket)
    wrong = "V3JvbmdLZXlXcm9uZ0tleVdyb25nS2V5V3JvbmdLZXk="
    conn = (
        "DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;"
        f"AccountKey={wrong};BlobEndpoint={azurite_server.url}/devstoreaccount1;"
    )
    monkeypatch.setenv("AZURE_STORAGE_CONNECTION_STRING", conn)
    store = storage_class("azure")(f"azure://{bucket}/p")
    with pytest.raises(StorageError) as err:
        store.put_bytes("k", b"v")
    msg = str(err.value)
    assert msg.startswith(f"azure datastore: cannot upload azure://{bucket}/p/k")
    assert "after" not in msg  # an authentication failure is not retried
    assert wrong not in msg and wrong not in repr(err.value.args)


def test_core_and_plugin_modules_import_no_sdk():
    code = (
        "import sys, metaflowlike, metaflowlike.plugins, metaflowlike.datastore.remote, "
        "metaflowlike.datastore.retry\n"
        "import metaflowlike_aws.s3_storage, metaflowlike_azure.azure_storage, "
        "metaflowlike_gcp.gcs_storage\n"
        "bad = [m for m in ('boto3', 'botocore', 'azure.storage.blob', 'google.cloud.storage')"
        " if m in sys.modules]\n"
        "assert not bad, bad\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_retry_policy_backs_off_then_names_backend_url_and_operation():
    sleeps: list[float] = []
    calls = []

    def flaky():
        calls.append(1)
        raise ConnectionResetError(f"reset while sending key={AWS_SECRET}")

    policy = RetryPolicy(
        backend="s3",
        is_transient=lambda e: isinstance(e, ConnectionError),
        attempts=4,
        secrets=lambda: [AWS_SECRET],
        sleep=sleeps.append,
    )
    with pytest.raises(StorageError) as err:
        policy.call("upload", "s3://bkt/x/data/ab/abcd", flaky)
    assert len(calls) == 4 and len(sleeps) == 3
    assert all(0 < b <= 2 * a + 1e-9 or b <= policy.max_delay for a, b in zip(sleeps, sleeps[1:]))
    assert str(err.value).startswith(
        "s3 datastore: cannot upload s3://bkt/x/data/ab/abcd after 4 attempts: ConnectionResetError"
    )
    assert AWS_SECRET not in str(err.value)
    # not transient: one attempt; FileNotFoundError passes through untouched
    calls.clear()
    with pytest.raises(StorageError, match="cannot list"):
        policy.call("list", "s3://b", lambda: calls.append(1) or 1 / 0)
    assert len(calls) == 1
    with pytest.raises(FileNotFoundError):
        policy.call("download", "s3://b/k", lambda: open("/nonexistent/x"))


def test_redact_removes_sas_tokens_and_keys():
    text = redact("GET /c/b?sv=2022&sig=abc%2F123&se=x AccountKey=Zm9v==;BlobEndpoint=e")
    assert "abc%2F123" not in text and "Zm9v" not in text and "sv=2022" in text


# --- through a misbehaving network ---------------------------------------------------


class Proxied:
    """A cloud backend behind a fault-injecting proxy, in one fresh bucket."""

    def __init__(self, kind: str, server_url: str, proxy: TcpProxy, bucket: str):
        self.kind, self.server_url, self.proxy, self.bucket = kind, server_url, proxy, bucket
        self.root = root_url(kind, bucket, "run")

    def direct(self) -> Storage:
        """A store that bypasses the proxy: an independent observer."""
        return bind(self.kind, self.root, self.server_url)

    def faulty(self) -> Storage:
        """A store that talks through the proxy (reads the retry setting now)."""
        return bind(self.kind, self.root, self.proxy.url)


@pytest.fixture(scope="session")
def proxies(request):
    """One proxy per cloud server. fake-gcs-server writes its own address into upload
    session URLs, so GCS gets a server of its own that names the proxy instead."""
    made: dict[str, tuple[str, TcpProxy]] = {}
    cleanups = []

    def get(kind: str) -> tuple[str, TcpProxy]:
        if kind not in made:
            if kind == "gs":
                port = free_port()
                proxy = TcpProxy(port).start()
                server = start_fake_gcs(port, external_url=proxy.url)
                cleanups.append(server.stop)
                url = server.url
            else:
                fixture = {"s3": "moto_server", "azure": "azurite_server"}[kind]
                url = request.getfixturevalue(fixture).url
                proxy = TcpProxy(int(url.rsplit(":", 1)[1])).start()
            cleanups.append(proxy.stop)
            made[kind] = (url, proxy)
        return made[kind]

    yield get
    for stop in reversed(cleanups):
        stop()


@pytest.fixture(params=CLOUD)
def proxied(request, proxies, monkeypatch) -> Proxied:
    kind = request.param
    url, proxy = proxies(kind)
    proxy.resume()
    proxy.reset_connections()
    proxy.reset_stats()
    bucket = new_bucket_name()
    create_bucket(kind, url, bucket)
    monkeypatch.setenv(ENV_ATTEMPTS, "3")
    yield Proxied(kind, url, proxy, bucket)
    proxy.resume()


@pytest.mark.parametrize("how", ["multipart-file", "single-put-bytes"])
def test_interrupted_upload_is_never_visible(proxied, big_file, monkeypatch, how):
    path, data = big_file
    direct = proxied.direct()
    monkeypatch.setenv(ENV_ATTEMPTS, "1")  # fail as soon as the network goes away
    faulty = proxied.faulty()
    proxy = proxied.proxy
    outcome: list[BaseException | None] = []

    def upload():
        try:
            if how == "multipart-file":
                faulty.put_file("obj", str(path))
            else:
                faulty.put_bytes("obj", data[: 8 * 1024 * 1024])
            outcome.append(None)
        except BaseException as e:  # noqa: BLE001 - handed to the test thread
            outcome.append(e)

    proxy.pause_after(3 * 1024 * 1024)  # freeze the upload a few MB in
    t = threading.Thread(target=upload, daemon=True)
    t.start()
    assert proxy.wait_paused(60), "the upload never got going"
    assert not direct.exists("obj")
    assert direct.list_dir("") == []
    with pytest.raises(FileNotFoundError):
        direct.get_bytes("obj")

    proxy.drop()  # the network dies for good mid-upload
    t.join(60)
    assert outcome and isinstance(outcome[0], StorageError), outcome
    assert f"cannot upload {faulty.url('obj')}" in str(outcome[0])
    assert not direct.exists("obj") and direct.list_dir("") == []

    proxy.resume()  # the same store works again once the network is back
    faulty.put_file("obj", str(path))
    assert direct.exists("obj")
    assert hashlib.sha256(direct.get_bytes("obj")).digest() == hashlib.sha256(data).digest()


def test_transient_resets_and_503s_are_absorbed(proxied, tmp_path, monkeypatch):
    # 2 attempts of ours x 2 of the SDK's: two faults in a row exhaust the SDK's
    # retries, so both layers take part
    monkeypatch.setenv(ENV_ATTEMPTS, "2")
    store, proxy = proxied.faulty(), proxied.proxy
    f = tmp_path / "f"
    f.write_bytes(b"file")
    steps = [
        ("drop", 2, lambda: store.put_bytes("a", b"A")),
        ("fail", 2, lambda: store.put_file("b", str(f))),
        ("fail", 2, lambda: store.get_bytes("a")),
        ("drop", 2, lambda: store.list_dir("")),
        ("drop", 1, lambda: store.exists("b")),
        ("fail", 1, lambda: store.get_file("b", str(tmp_path / "out"))),
    ]
    for fault, n, op in steps:
        proxy.reset_connections()  # so that the next request needs a new connection
        (proxy.drop_next if fault == "drop" else proxy.fail_next)(n)
        op()
    assert proxy.dropped == 5 and proxy.failed == 5
    assert store.get_bytes("a") == b"A"
    assert (tmp_path / "out").read_bytes() == b"file"
    assert sorted(store.list_dir("")) == [("a", False), ("b", False)]


def test_connection_reset_mid_transfer_is_absorbed(proxied, big_file, tmp_path):
    path, data = big_file
    store, proxy = proxied.faulty(), proxied.proxy
    proxy.reset_after(10 * 1024 * 1024)
    store.put_file("big", str(path))
    proxy.reset_after(10 * 1024 * 1024)
    out = tmp_path / "out"
    store.get_file("big", str(out))
    assert out.read_bytes() == data


def test_persistent_outage_names_backend_url_and_operation(proxied, monkeypatch):
    monkeypatch.setenv(ENV_ATTEMPTS, "2")
    store = proxied.faulty()
    proxied.proxy.drop()
    for op, call in [
        ("upload", lambda: store.put_bytes("data/ab/abcd", b"x")),
        ("download", lambda: store.get_bytes("data/ab/abcd")),
    ]:
        with pytest.raises(StorageError) as err:
            call()
        msg = str(err.value)
        assert msg.startswith(
            f"{proxied.kind} datastore: cannot {op} {store.url('data/ab/abcd')} after 2 attempts: "
        ), msg
        for secret in SECRETS:
            assert secret not in msg


def test_batches_use_many_connections_at_once(proxied):
    store, proxy = proxied.faulty(), proxied.proxy
    items = [(f"k{i}", b"x" * 1024) for i in range(64)]
    store.put_many(items)
    store.get_many([k for k, _ in items])
    assert store.exists_many([k for k, _ in items]) == [True] * 64
    assert proxy.max_active >= 4  # requests really overlapped
