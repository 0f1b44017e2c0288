"""The S3 data tool on a real moto server: from steps (S3(run=self)) and from the client."""

from __future__ import annotations

import pytest
from metaflowlike_aws.s3_tool import MetaflowS3URLException

from metaflowlike import S3, Flow, client

FLOW = """
from metaflowlike import FlowSpec, step, S3

class S3ToolFlow(FlowSpec):
    @step
    def start(self):
        with S3(run=self) as s3:
            self.url = s3.put("a.txt", "hello")
            s3.put("meta.bin", b"\\x00\\x01", content_type="application/octet-stream",
                   metadata={"origin": "start"})
            self.many = s3.put_many([("dir/b", "bb"), ("dir/c", b"cc"), ("dir/sub/d", "dd")])
        self.next(self.end)

    @step
    def end(self):
        with S3(run=self) as s3:
            obj = s3.get("a.txt")
            self.fields = (obj.exists, obj.downloaded, obj.key, obj.url, obj.text, obj.size,
                           obj.prefix)
            self.path_existed = __import__("os").path.exists(obj.path)
            meta = s3.get("meta.bin")
            self.meta = (meta.blob, meta.content_type, meta.metadata, meta.has_info)
            self.got_many = [o.text for o in s3.get_many(["dir/b", "dir/c"])]
            self.listed = [(o.key, o.exists) for o in s3.list_paths(["dir"])]
            self.recursive = sorted(o.key for o in s3.get_recursive(["dir"]))
            self.missing = s3.get("nope", return_missing=True).exists
            self.saved_path = obj.path
        self.removed = not __import__("os").path.exists(self.saved_path)

if __name__ == "__main__":
    S3ToolFlow()
"""


def test_s3_tool_in_steps_on_an_s3_datastore(make_flow, s3_root):
    flow = make_flow(FLOW)
    flow.run("run", top=("--datastore", "s3", "--datastore-root", s3_root))
    client.set_datastore("s3", s3_root)
    try:
        run = Flow("S3ToolFlow").latest_run
        data = run.data
        base = f"{s3_root}/data/S3ToolFlow/{run.id}"
        assert data.fields == (True, True, "a.txt", f"{base}/a.txt", "hello", 5, base)
        assert data.path_existed and data.removed
        assert data.meta == (b"\x00\x01", "application/octet-stream", {"origin": "start"}, True)
        assert data.got_many == ["bb", "cc"]
        assert data.listed == [("dir/b", True), ("dir/c", True), ("dir/sub/", False)]
        assert data.recursive == ["dir/b", "dir/c", "dir/sub/d"]
        assert data.missing is False
        assert run["start"].task.data.many[0] == ("dir/b", f"{base}/dir/b")
        # the client reads the same objects through S3(run=run)
        with S3(run=run) as s3:
            assert s3.get("dir/sub/d").text == "dd"
            assert [o.key for o in s3.list_paths()] == ["a.txt", "dir/", "meta.bin"]
    finally:
        client.set_datastore(None, str(flow.root))


def test_s3_root_bucket_prefix_and_full_urls(s3_root, tmp_path):
    bucket = s3_root[len("s3://") :].split("/")[0]
    with S3(s3root=f"s3://{bucket}/tool") as s3:
        url = s3.put("x/y.json", '{"a": 1}')
        assert url == f"s3://{bucket}/tool/x/y.json"
        assert s3.put("x/y.json", "ignored", overwrite=False) == url
        info = s3.info("x/y.json")
        assert (info.exists, info.downloaded, info.size) == (True, False, 8)
        assert info.last_modified > 0
    with S3(bucket=bucket, prefix="tool") as s3:
        assert s3.get("x/y.json").text == '{"a": 1}'
        assert [o.key for o in s3.get_all()] == ["x/y.json"]
    with S3() as s3:
        assert s3.get(url).blob == b'{"a": 1}'
        with pytest.raises(MetaflowS3URLException, match="not a full s3:// URL"):
            s3.get("relative/key")


def test_s3_errors_are_clear(s3_root):
    from metaflowlike_aws.s3_tool import MetaflowS3Exception, MetaflowS3NotFound

    with S3(s3root=s3_root) as s3:
        with pytest.raises(MetaflowS3NotFound, match="does not exist"):
            s3.get("missing")
        with pytest.raises(MetaflowS3Exception, match="takes str or bytes"):
            s3.put("k", 12)
    with pytest.raises(MetaflowS3Exception, match="one of run=, s3root= or bucket="):
        S3(s3root=s3_root, bucket="b")


def test_run_root_from_the_environment_on_a_local_datastore(make_flow, s3_root):
    flow = make_flow(
        """
from metaflowlike import FlowSpec, step, S3

class LocalS3Flow(FlowSpec):
    @step
    def start(self):
        with S3(run=self) as s3:
            self.url = s3.put("k", "v")
        self.next(self.end)

    @step
    def end(self):
        pass

if __name__ == "__main__":
    LocalS3Flow()
"""
    )
    flow.run("run", env={"METAFLOW_DATATOOLS_S3ROOT": f"{s3_root}/tools"})
    run = Flow("LocalS3Flow").latest_run
    assert run["start"].task.data.url == f"{s3_root}/tools/LocalS3Flow/{run.id}/k"
    proc = flow.run("run", check=False)
    assert proc.returncode == 1
    assert "METAFLOWLIKE_DATATOOLS_S3ROOT" in Flow("LocalS3Flow").latest_run["start"].task.stderr
