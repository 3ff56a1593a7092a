"""The status page's static files and the cluster's Redis Functions library ship in the
wheel (package data), so a non-editable install serves the same page and loads the same
functions as a checkout."""

from __future__ import annotations

import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
STATIC = ROOT / "trio_monitor" / "server" / "static"


@pytest.mark.subprocess
def test_the_wheel_holds_the_static_files(tmp_path):
    # built from a copy, so the build leaves nothing in the checkout
    source = tmp_path / "source"
    shutil.copytree(
        ROOT / "trio_monitor", source / "trio_monitor", ignore=shutil.ignore_patterns("__pycache__")
    )
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(ROOT / name, source / name)
    out = tmp_path / "dist"
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", str(source), "--no-deps", "-q", "-w", str(out)],
        check=True,
        timeout=300,
    )
    [wheel] = out.glob("trio_monitor-*.whl")
    with zipfile.ZipFile(wheel) as archive:
        shipped = {
            name.rsplit("/", 1)[1]: archive.read(name)
            for name in archive.namelist()
            if name.startswith("trio_monitor/server/static/")
        }
    expected = {path.name: path.read_bytes() for path in STATIC.iterdir()}
    assert set(expected) == {"status.html", "status.css", "status.js", "login.html", "login.css"}
    assert shipped == expected
    lua = "trio_monitor/cluster/functions.lua"
    assert archive_bytes(wheel, lua) == (ROOT / lua).read_bytes()


def archive_bytes(wheel: Path, name: str) -> bytes:
    with zipfile.ZipFile(wheel) as archive:
        return archive.read(name)
