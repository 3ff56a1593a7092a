"""Deployment files: the systemd unit and the Dockerfile keep the settings the README
promises, and systemd's own checks pass where systemd-analyze is available."""

from __future__ import annotations

import configparser
import json
import re
import shlex
import shutil
import subprocess
from pathlib import Path

import pytest

from trio_monitor.engine.rounds import LAG_MEMORY

ROOT = Path(__file__).parent.parent
UNIT = ROOT / "deploy" / "trio-monitor.service"
DOCKERFILE = ROOT / "Dockerfile"
CONFIG = "/etc/trio-monitor/monitor.toml"
STATE = "/var/lib/trio-monitor"


def unit() -> configparser.ConfigParser:
    parser = configparser.ConfigParser(strict=False, interpolation=None)
    parser.optionxform = str  # systemd keys are case-sensitive
    parser.read(UNIT)
    return parser


def timespan(value: str) -> float:
    """A systemd time span ("90", "3min", "1min 30s") -> seconds."""
    units = {"us": 1e-6, "ms": 1e-3, "s": 1, "sec": 1, "min": 60, "m": 60, "h": 3600}
    parts = re.findall(r"(\d+(?:\.\d+)?)\s*([a-z]*)", value)
    assert parts, value
    return sum(float(n) * units[u or "s"] for n, u in parts)


def test_unit_runs_unprivileged_capped_and_reloadable():
    service = unit()["Service"]
    assert service["User"] not in ("", "root")
    assert "DynamicUser" not in service  # a dedicated user: see the unit's comment
    assert service["ExecStart"].split()[1:] == ["run", "-c", CONFIG]
    assert service["ExecReload"] == "/bin/kill -HUP $MAINPID"
    assert service["Restart"] == "on-failure"  # also covers a watchdog timeout
    assert service["RestartPreventExitStatus"] == "2"
    assert service["MemoryMax"] == "500M"
    assert service["CPUQuota"] == "80%"
    assert service["NoNewPrivileges"] == "yes"
    assert service["ProtectSystem"] == "strict"
    assert service["StateDirectory"] == "trio-monitor"
    assert service["WorkingDirectory"] == STATE
    assert unit()["Install"]["WantedBy"] == "multi-user.target"


def test_unit_is_notify_with_a_health_gated_watchdog():
    service = unit()["Service"]
    # notify, not notify-reload: systemd < 253 cannot parse that and would fall back to
    # Type=simple. ExecReload= sends the SIGHUP notify-reload would have sent.
    assert service["Type"] == "notify"
    assert service["NotifyAccess"] == "main"  # not alert `exec` commands
    assert "AF_UNIX" in service["RestrictAddressFamilies"].split()  # the notify socket
    watchdog = timespan(service["WatchdogSec"])
    # Pings come every WatchdogSec/2 while healthy; a stall makes the monitor unhealthy
    # for LAG_MEMORY seconds. One stall alone must not get the monitor restarted.
    assert watchdog / 2 > LAG_MEMORY
    assert watchdog <= 10 * 60  # and a stuck monitor is not left running for long
    assert timespan(service["TimeoutStartSec"]) >= 60  # history migrations before READY=1


@pytest.mark.subprocess
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


@pytest.mark.subprocess
@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd-analyze not installed")
def test_systemd_rates_the_unit_well_hardened(tmp_path):
    path = tmp_path / "trio-monitor.service"
    path.write_text(UNIT.read_text())
    done = subprocess.run(
        ["systemd-analyze", "security", "--offline=yes", "--no-pager", str(path)],
        capture_output=True,
        text=True,
        check=False,
    )
    score = re.search(r"Overall exposure level for \S+: (\d+(?:\.\d+)?)", done.stdout)
    if score is None:
        pytest.skip(f"systemd-analyze security --offline unsupported: {done.stderr.strip()}")
    assert float(score.group(1)) <= 3.0, done.stdout  # 1.7 when written; 10 is unprotected


# --- Dockerfile ----------------------------------------------------------------------


def instructions() -> list[tuple[str, str]]:
    """The Dockerfile as (INSTRUCTION, arguments), continuation lines joined."""
    result: list[tuple[str, str]] = []
    pending = ""
    for line in DOCKERFILE.read_text().splitlines():
        stripped = line.strip()
        if not pending and (not stripped or stripped.startswith("#")):
            continue
        if stripped.startswith("#"):  # a comment inside a continued instruction
            continue
        if stripped.endswith("\\"):
            pending += stripped[:-1] + " "
            continue
        keyword, _, args = (pending + stripped).partition(" ")
        result.append((keyword.upper(), args.strip()))
        pending = ""
    assert not pending, "Dockerfile ends inside a continued instruction"
    return result


def the(keyword: str) -> list[str]:
    return [args for kw, args in instructions() if kw == keyword]


def exec_form(args: str) -> list[str]:
    """A JSON exec-form argument list; the shell form would put `sh -c` in front of the
    monitor, and SIGTERM (docker stop) would go to the shell instead."""
    argv = json.loads(args)
    assert isinstance(argv, list), args
    assert all(isinstance(arg, str) for arg in argv), args
    return argv


def test_dockerfile_base_image_is_pinned_slim_python():
    [base] = the("FROM")  # one stage
    image = base.split()[0]
    name, _, tag = image.partition(":")
    assert name == "python"
    assert tag, "no tag: that is :latest"
    assert "latest" not in tag
    version = re.match(r"(\d+)\.(\d+)-slim", tag)
    assert version, tag
    assert (int(version.group(1)), int(version.group(2))) >= (3, 11)


def test_dockerfile_runs_the_monitor_as_a_non_root_user():
    users = the("USER")
    assert users
    user = users[-1].split(":")[0]
    assert user not in ("root", "0")
    kinds = [kw for kw, _ in instructions()]
    # the last USER comes before what runs at container start
    assert kinds.index("USER") < kinds.index("ENTRYPOINT")
    assert re.search(rf"useradd .*\b{re.escape(user)}\b", " ".join(the("RUN")))


def test_dockerfile_starts_the_monitor_on_the_mounted_config():
    [entrypoint] = the("ENTRYPOINT")
    [cmd] = the("CMD")
    assert exec_form(entrypoint) + exec_form(cmd) == ["trio-monitor", "run", "-c", CONFIG]
    assert the("STOPSIGNAL") == ["SIGTERM"]


def test_dockerfile_healthcheck_asks_the_monitor():
    [healthcheck] = the("HEALTHCHECK")
    options, _, command = healthcheck.partition("CMD ")
    assert exec_form(command) == ["trio-monitor", "health", "-c", CONFIG]
    assert "--start-period" in options  # start-up (history, first round) is not a failure


def test_dockerfile_keeps_history_in_a_volume_and_exposes_the_server():
    env = " ".join(the("ENV"))
    assert f"STATE_DIRECTORY={STATE}" in env.split()  # where the history file goes
    assert [json.loads(v) if v.startswith("[") else v.split() for v in the("VOLUME")] == [[STATE]]
    assert the("EXPOSE") == ["9180"]
    assert the("WORKDIR")[-1] == STATE


def test_dockerfile_installs_without_cache_or_piped_scripts():
    runs = the("RUN")
    installs = [r for r in runs if "pip install" in r]
    assert installs
    assert all("--no-cache-dir" in r for r in installs)
    for run in runs:
        assert not re.search(r"\b(curl|wget)\b[^|;&]*\|\s*(sudo\s+)?(ba|da|z)?sh\b", run), run
    assert not the("ADD")  # ADD fetches URLs and unpacks archives: COPY says what it does


def test_dockerfile_installs_chromium_only_in_the_browser_variant():
    assert "WITH_CHROMIUM=false" in the("ARG")  # the default image has no browser
    [install] = [r for r in the("RUN") if "chromium" in r]
    assert install.startswith('if [ "$WITH_CHROMIUM" = "true" ]; then')
    assert "apt-get install -y --no-install-recommends chromium" in install
    assert "rm -rf /var/lib/apt/lists/*" in install  # no package lists left in the layer


def test_dockerfile_copies_what_the_package_build_needs():
    ignored = {
        line.strip()
        for line in (ROOT / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    }
    sources = []
    for copy in the("COPY"):
        words = [w for w in shlex.split(copy) if not w.startswith("--")]
        sources += words[:-1]
    for source in sources:
        assert (ROOT / source).exists(), f"COPY {source}: no such file in the project"
        assert source not in ignored, f"COPY {source}: excluded by .dockerignore"
    # pyproject.toml names README.md as the package's readme: the build reads it
    assert {"pyproject.toml", "README.md", "trio_monitor"} <= set(sources)
