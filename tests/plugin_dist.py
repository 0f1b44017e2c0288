"""Install a third-party plugin the way pip would, without pip: its modules plus a
``.dist-info`` folder (METADATA, entry_points.txt) in one directory that goes on
``PYTHONPATH``. ``importlib.metadata`` finds the entry points there exactly as it finds
those of an installed wheel, so the flow process discovers the plugin for real."""

from __future__ import annotations

import os
import textwrap
from pathlib import Path


def install_plugin(
    where: Path,
    dist: str,
    modules: dict[str, str],
    entry_points: dict[str, dict[str, str]],
) -> dict[str, str]:
    """Write ``modules`` (name -> source) and the distribution ``dist`` declaring
    ``entry_points`` (group -> {name: "module:attr [extra]"}) into ``where``; return
    the environment that makes a Python process see them."""
    where.mkdir(parents=True, exist_ok=True)
    for module, source in modules.items():
        (where / f"{module}.py").write_text(textwrap.dedent(source))
    info = where / f"{dist.replace('-', '_')}-0.1.dist-info"
    info.mkdir(exist_ok=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: 0.1\n")
    lines = []
    for group, eps in entry_points.items():
        lines.append(f"[{group}]")
        lines.extend(f"{name} = {value}" for name, value in eps.items())
        lines.append("")
    (info / "entry_points.txt").write_text("\n".join(lines))
    path = [str(where)] + [p for p in [os.environ.get("PYTHONPATH")] if p]
    return {"PYTHONPATH": os.pathsep.join(path)}
