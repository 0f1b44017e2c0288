"""Drive Debian's headless Chromium: the DOM after scripts ran, and screenshots.

Network is cut off (every host name resolves to nothing), so a page only shows what
it carries inside itself."""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from pathlib import Path

FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--host-resolver-rules=MAP * ~NOTFOUND",
]


def chromium() -> str:
    exe = shutil.which("chromium")
    assert exe, "chromium is missing: .ci/install-apt-tools.sh installs it"
    return exe


def _run(page: Path, *extra: str, budget_ms: int = 8000) -> subprocess.CompletedProcess:
    with tempfile.TemporaryDirectory(prefix="mfl-chromium-") as profile:
        return subprocess.run(
            [chromium(), *FLAGS, f"--user-data-dir={profile}",
             f"--virtual-time-budget={budget_ms}", *extra, page.resolve().as_uri()],
            capture_output=True, text=True, timeout=120,
        )  # fmt: skip


def dump_dom(page: Path) -> str:
    """The page's DOM once its scripts have run."""
    proc = _run(page, "--dump-dom")
    assert proc.returncode == 0, proc.stderr[-2000:]
    return proc.stdout


def screenshot(page: Path, out: Path, size: tuple[int, int] = (1100, 1400)) -> Path:
    proc = _run(page, f"--screenshot={out}", f"--window-size={size[0]},{size[1]}")
    assert proc.returncode == 0 and out.exists(), proc.stderr[-2000:]
    return out
