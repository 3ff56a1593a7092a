"""`trio-monitor init`: a commented starter config, optionally from a list of URLs.

The TOML itself is written by tomli-w (so it is always valid and round-trips);
comments, which tomli-w cannot write, are added beside the keys it wrote.
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

import httpx
import tomli_w

from .._config import _Invalid, parse_url
from .._errors import ConfigError, UsageError
from .common import DEFAULT_CONFIG

HEADER = """\
# trio-monitor configuration. Reference: README.md ("Configuration").
# Durations: "500ms", "10s", "5m", "1h". Header values may use ${ENV_VAR}.
# Check it with:  trio-monitor validate -c {path}
# Run it with:    trio-monitor run -c {path}
"""

ALERT_EXAMPLES = """
# Send alerts somewhere (each section may appear several times):
# [[alerts.webhook]]
# url = "https://hooks.example.com/trio-monitor"
# headers = { Authorization = "Bearer ${HOOK_TOKEN}" }
# events = ["down", "up"]
#
# [[alerts.exec]]
# command = ["/usr/local/bin/page-me", "--urgent"]   # gets the alert JSON on stdin
"""

COMMENTS = {
    ("monitor", "interval"): "how often each target is probed (per-target `interval` overrides)",
    ("monitor", "timeout"): "deadline for a whole probe, retries included",
    ("monitor", "concurrency"): "probes in flight at once, across all targets",
    ("monitor", "per_host"): "probes in flight at once to one host",
    ("monitor", "retries"): "extra attempts after a dns/connect/protocol error, within timeout",
    ("monitor", "grace"): "on SIGINT/SIGTERM, how long probes in flight may finish",
    ("monitor", "output"): '"-" is stdout; or a file path (relative to this file), appended to',
    ("alerts", "failure_threshold"): "consecutive failed probes before a target is DOWN",
    ("alerts", "success_threshold"): "consecutive good probes before it is UP again",
    ("server", "listen"): "status page, /api/v1, /metrics, /healthz (remove [server]: none)",
}

EXAMPLE_TARGETS = [
    {"name": "example", "url": "https://example.com/"},
    {
        "name": "example-org",
        "url": "https://example.org/",
        "interval": "1m",
        "contains": "Example Domain",
        "slow": "2s",
    },
]


def urls_from_text(text: str, source: str) -> list[str]:
    """One URL a line; blank lines and `#` comments skipped. Bad lines -> ConfigError."""
    urls, problems = [], []
    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.split(" #", 1)[0].strip()  # " #" starts a comment; "#" in a URL does not
        if not line or line.startswith("#"):
            continue
        if "://" not in line:
            line = "https://" + line
        try:
            urls.append(parse_url(line))
        except _Invalid as exc:
            problems.append(f"{source}: line {number}: {exc}")
    if problems:
        raise ConfigError(problems)
    if not urls:
        raise ConfigError([f"{source}: no URLs found"])
    return urls


def _name_for(url: str) -> str:
    parsed = httpx.URL(url)
    path = parsed.path.rstrip("/")
    name = parsed.host + (f":{parsed.port}" if parsed.port else "") + path
    return re.sub(r"\s+", "-", name) or url


def targets_for(urls: list[str]) -> list[dict]:
    targets, seen = [], set()
    for url in urls:
        base = name = _name_for(url)
        n = 1
        while name in seen:
            n += 1
            name = f"{base}-{n}"
        seen.add(name)
        targets.append({"name": name, "url": url})
    return targets


def _annotate(toml: str) -> str:
    out: list[str] = []
    section = ""
    for line in toml.splitlines():
        if line.startswith("["):
            section = line.strip("[]")
            if out and out[-1] != "":
                out.append("")
        elif " = " in line and (comment := COMMENTS.get((section, line.split(" = ", 1)[0]))):
            line = f"{line:<23}  # {comment}"
        out.append(line)
    return "\n".join(out) + "\n"


def starter_config(path: str, urls: list[str] | None = None) -> str:
    settings = {
        "monitor": {
            "interval": "30s",
            "timeout": "10s",
            "concurrency": 200,
            "per_host": 4,
            "retries": 1,
            "grace": "5s",
            "output": "-",
        },
        "alerts": {"failure_threshold": 3, "success_threshold": 1},
        "server": {"listen": "127.0.0.1:9180"},
    }
    # One [[targets]] table each: dumping {"targets": [...]} lets tomli-w choose an inline
    # array for short tables, which after [alerts] would become `alerts.targets`.
    targets = "".join(
        "[[targets]]\n" + tomli_w.dumps(t) for t in (targets_for(urls) if urls else EXAMPLE_TARGETS)
    )
    return (
        HEADER.replace("{path}", path)
        + "\n"
        + _annotate(tomli_w.dumps(settings))
        + ALERT_EXAMPLES
        + "\n"
        + _annotate(targets)
    )


def add_arguments(cmd: argparse.ArgumentParser) -> None:
    cmd.add_argument("-o", "--output", default=DEFAULT_CONFIG, help="where to write ('-': stdout)")
    cmd.add_argument("--from", dest="from_file", help="a file of URLs, one a line ('-': stdin)")
    cmd.add_argument("-f", "--force", action="store_true", help="overwrite an existing file")


def command(args: argparse.Namespace) -> int:
    urls = None
    if args.from_file == "-":
        urls = urls_from_text(sys.stdin.read(), "<stdin>")
    elif args.from_file:
        try:
            text = Path(args.from_file).read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise UsageError(f"cannot read {args.from_file}: {exc}") from None
        urls = urls_from_text(text, args.from_file)
    shown = DEFAULT_CONFIG if args.output == "-" else args.output
    text = starter_config(shown, urls)
    if args.output == "-":
        sys.stdout.write(text)
        return 0
    try:
        with open(args.output, "w" if args.force else "x", encoding="utf-8") as file:
            file.write(text)
    except FileExistsError:
        raise UsageError(f"{args.output} exists; use --force to overwrite it") from None
    except OSError as exc:
        raise UsageError(f"cannot write {args.output}: {exc.strerror or exc}") from None
    targets = len(urls) if urls else "example"
    print(f"wrote {args.output} ({targets} targets); next: trio-monitor run -c {args.output}")
    return 0
