"""The systemd unit: the settings the README promises, and systemd's own check where available."""

from __future__ import annotations

import configparser
import shutil
import subprocess
from pathlib import Path

import pytest

UNIT = Path(__file__).parent.parent / "deploy" / "trio-monitor.service"


def unit() -> configparser.ConfigParser:
    parser = configparser.ConfigParser(strict=False, interpolation=None)
    parser.optionxform = str  # systemd keys are case-sensitive
    parser.read(UNIT)
    return parser


def test_unit_runs_unprivileged_capped_and_reloadable():
    service = unit()["Service"]
    assert service["User"] not in ("", "root")
    assert service["ExecStart"].split()[1:] == ["run", "-c", "/etc/trio-monitor/monitor.toml"]
    assert service["ExecReload"] == "/bin/kill -HUP $MAINPID"
    assert service["Restart"] == "on-failure"
    assert service["RestartPreventExitStatus"] == "2"
    assert service["MemoryMax"] == "500M"
    assert service["CPUQuota"] == "80%"
    assert service["NoNewPrivileges"] == "yes"
    assert service["ProtectSystem"] == "strict"
    assert unit()["Install"]["WantedBy"] == "multi-user.target"


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd-analyze not installed")
def test_systemd_accepts_the_unit(tmp_path):
    # systemd-analyze checks that ExecStart exists: point it at a real executable.
    text = UNIT.read_text().replace("/opt/trio-monitor/bin/trio-monitor", shutil.which("true"))
    (tmp_path / "trio-monitor.service").write_text(text)
    done = subprocess.run(
        ["systemd-analyze", "verify", str(tmp_path / "trio-monitor.service")],
        capture_output=True,
        text=True,
        check=False,
    )
    problems = [
        line for line in (done.stdout + done.stderr).splitlines() if "trio-monitor.service" in line
    ]
    assert problems == []
