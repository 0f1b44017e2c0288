"""Third-party plugins register through entry points and declare what they are: a
storage backend its URL scheme, any plugin the extra its SDK comes with."""

from __future__ import annotations

import os
import subprocess
import sys

from .flows import two_steps
from .plugin_dist import install_plugin

FOLDER_STORAGE = '''
from metaflowlike.datastore.local_storage import LocalStorage


class FolderStorage(LocalStorage):
    """Local folders written as folder:///path: a backend of its own URL scheme."""

    TYPE = "folder"
    SCHEMES = ("folder",)

    def __init__(self, root, durable=None):
        super().__init__(root.removeprefix("folder://"), durable)
'''

FLOW = two_steps("SchemeFlow", "self.answer = 42")

READ_BACK = """
import sys
from metaflowlike import Flow, client

client.set_datastore(None, sys.argv[1])
print("answer", Flow("SchemeFlow").latest_run.data.answer)
"""


def _python(args, env, cwd):
    full = {k: v for k, v in os.environ.items() if not k.startswith("METAFLOWLIKE_DATASTORE")}
    full.update(env)
    return subprocess.run(
        [sys.executable, *args], capture_output=True, text=True, env=full, cwd=cwd, timeout=120
    )


def test_a_third_party_backend_registers_its_url_scheme(tmp_path):
    env = install_plugin(
        tmp_path / "site",
        "folder-storage",
        {"folder_storage": FOLDER_STORAGE},
        {"metaflowlike.datastores": {"folder": "folder_storage:FolderStorage"}},
    )
    (tmp_path / "flow.py").write_text(FLOW)
    (tmp_path / "read_back.py").write_text(READ_BACK)
    root = f"folder://{tmp_path / 'store'}"

    proc = _python(["flow.py", "--datastore-root", root, "run"], env, tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert (tmp_path / "store").is_dir()  # the plugin, not the local backend, took the URL
    assert not (tmp_path / "folder:").exists()
    proc = _python(["read_back.py", root], env, tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "answer 42"

    # without the plugin nothing handles the scheme: one clear paragraph, no traceback
    proc = _python(["flow.py", "--datastore-root", root, "run"], {}, tmp_path)
    assert proc.returncode == 1
    assert 'No datastore plugin handles "folder://" roots' in proc.stderr
    assert "Traceback" not in proc.stderr


def test_a_missing_sdk_names_the_extra_of_the_plugins_own_distribution(tmp_path):
    env = install_plugin(
        tmp_path / "site",
        "fancy-store",
        {"fancy_storage": "import fancy_cloud_sdk_that_is_not_installed\n"},
        {"metaflowlike.datastores": {"fancy": "fancy_storage:FancyStorage [cloud]"}},
    )
    (tmp_path / "flow.py").write_text(FLOW)
    proc = _python(
        ["flow.py", "--datastore", "fancy", "--datastore-root", "x", "run"], env, tmp_path
    )
    assert proc.returncode == 1
    assert 'The datastore "fancy" needs a package that is missing' in proc.stderr
    assert 'pip install "fancy-store[cloud]"' in proc.stderr
    assert "Traceback" not in proc.stderr


def test_built_in_backends_declare_their_schemes_and_extras():
    from metaflowlike import plugins

    for scheme, name, extra in [
        ("s3", "s3", "aws"),
        ("azure", "azure", "azure"),
        ("gs", "gs", "gcp"),
        ("gcs", "gs", "gcp"),
        ("file", "local", None),
    ]:
        assert plugins.datastore_for_scheme(scheme) == name
        assert plugins.extra_of(plugins.DATASTORES, name) == extra
    assert plugins.datastore_for_scheme("nosuchscheme") is None
