"""`trio-monitor health`: exit 0 if the running monitor's [server] says it is healthy."""

from __future__ import annotations

import argparse
import sys

from .._config import parse_duration
from .._errors import UsageError
from .common import read_config, with_config


def add_arguments(cmd: argparse.ArgumentParser) -> None:
    with_config(cmd)
    cmd.add_argument("--timeout", default="5s", help="how long to wait for an answer (default 5s)")


def command(args: argparse.Namespace) -> int:
    """GET /healthz of the server the config describes: for container HEALTHCHECKs.
    0 healthy; 1 unhealthy or no answer (one line on stderr says why); 2 no [server]."""
    from ..server.health import check_health  # the server's modules load only for this command

    config = read_config(args.config)
    try:
        timeout = parse_duration(args.timeout)
    except ValueError as exc:
        raise UsageError(f"--timeout: {exc}") from None
    if config.server is None:
        raise UsageError(f"{args.config}: no [server] section: there is no server to ask")
    healthy, message = check_health(config.server, timeout=timeout)
    if healthy:
        print(message)
        return 0
    print(f"trio-monitor: {message}", file=sys.stderr)
    return 1
