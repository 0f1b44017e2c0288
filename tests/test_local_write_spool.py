"""A write to the local datastore killed before its rename leaves nothing that stays.

Every file of the local datastore is written under a temporary name and renamed into
place. The temporary file lives in the datastore's spool under a name that says which
process owns it, so what a killed writer leaves behind is reclaimed by the sweep every
run makes at its start, instead of staying forever next to the records."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

from metaflowlike.datastore import scratch
from metaflowlike.datastore.local_storage import LocalStorage


def test_a_killed_write_leaves_only_a_swept_spool_entry(tmp_path):
    root = tmp_path / "ds"
    child = textwrap.dedent(
        f"""
        import os
        from metaflowlike.datastore.local_storage import LocalStorage

        storage = LocalStorage({str(root)!r})
        fd, tmp = storage._mkstemp()  # what put_bytes does before writing
        os.write(fd, b"half a record")
        os._exit(9)  # killed before the rename
        """
    )
    assert subprocess.run([sys.executable, "-c", child]).returncode == 9
    spool = root / ".spool"
    left = [n for n in os.listdir(spool) if n.startswith(scratch.PUT)]
    assert len(left) == 1
    # no temporary file anywhere else in the datastore
    others = [
        os.path.join(d, n)
        for d, _, names in os.walk(root)
        for n in names
        if n.startswith(".tmp-") and d != str(spool)
    ]
    assert others == []
    swept = scratch.sweep([str(spool)])
    assert swept.entries == 1 and not os.listdir(spool)


def test_writes_still_land_whole_and_in_place(tmp_path):
    storage = LocalStorage(str(tmp_path / "ds"))
    storage.put_bytes("flows/F/1/_run.json", b"{}")
    storage.put_bytes("flows/F/1/_run.json", b'{"a": 1}')
    assert storage.get_bytes("flows/F/1/_run.json") == b'{"a": 1}'
    assert storage.create_bytes("flows/F/1/_claim.json", b"me")
    assert not storage.create_bytes("flows/F/1/_claim.json", b"you")
    assert storage.get_bytes("flows/F/1/_claim.json") == b"me"
    assert os.listdir(tmp_path / "ds" / ".spool") == []  # nothing left after success
