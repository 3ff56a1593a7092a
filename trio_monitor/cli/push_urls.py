"""`trio-monitor push-urls`: each push target's URL, for its crontab line.

    NAME URL            one line per push target (the URL last: a name may hold spaces)
    --json              [{"name": ..., "url": ...}, ...]

Reads (or, before the monitor's first run, creates) the key file the monitor reads,
so the URLs are the ones the monitor will answer. The base URL is the [server]'s
listen address (a wildcard one as loopback), or --base-url (a name other machines
reach it by, or a reverse proxy's URL with its path).
"""

from __future__ import annotations

import argparse
import json

import httpx

from .._config import Config
from .._errors import UsageError
from ..net.addr import local_url
from ..probes.push import NAME
from ..probes.push.tokens import Keyring, key_path
from .common import read_config, with_config


def add_arguments(cmd: argparse.ArgumentParser) -> None:
    with_config(cmd)
    cmd.add_argument(
        "--base-url",
        help="the server as the jobs reach it, e.g. https://monitor.example.com"
        " (default: http:// and [server] listen)",
    )
    cmd.add_argument("--json", action="store_true", help="a JSON array of {name, url}")


def _base_url(config: Config, given: str | None, path: str) -> str:
    if given is not None:
        try:
            url = httpx.URL(given)
        except httpx.InvalidURL as exc:
            raise UsageError(f"--base-url: invalid URL {given!r}: {exc}") from None
        if url.scheme not in ("http", "https") or not url.host or url.query or url.fragment:
            raise UsageError(f"--base-url: expected http(s)://host[:port][/path], got {given!r}")
        return given.rstrip("/")
    if config.server is None:  # validation refuses push targets without one
        raise UsageError(f"{path}: no [server] section: give --base-url")
    return local_url(config.server.listen)


def command(args: argparse.Namespace) -> int:
    from ..server.contract import API  # the server's modules load only for this command

    config = read_config(args.config)
    targets = [t for t in config.targets if t.kind == NAME]
    base = _base_url(config, args.base_url, args.config) if targets else ""
    keys = Keyring(key_path(config))
    urls = [(t.name, f"{base}{API}/push/{keys.token(t)}") for t in targets]
    if args.json:
        print(json.dumps([{"name": name, "url": url} for name, url in urls], ensure_ascii=False))
    else:
        for name, url in urls:
            print(f"{name} {url}")
    return 0
