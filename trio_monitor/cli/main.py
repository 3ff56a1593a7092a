"""The `trio-monitor` command: main(argv) -> exit code.

Exit codes: 0 ok; 1 a probe failed (run --once); 2 config or usage error;
130 stopped at once by a second signal. Expected errors print one line per
problem on stderr, never a traceback. stdout carries JSON lines only.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from pathlib import Path

import trio

from .. import __version__
from .._config import load_config, parse_duration
from .._errors import ConfigError, MonitorError, UsageError
from .._lifecycle import EXIT_INTERRUPTED, run_monitor
from .._systemd import Notifier
from ..report.build import add_arguments as add_report_arguments
from ..report.build import report_command
from .init import starter_config, urls_from_text

log = logging.getLogger("trio_monitor")

DEFAULT_CONFIG = "monitor.toml"


class _Parser(argparse.ArgumentParser):
    def error(self, message: str):  # one line, our exit code, no usage dump
        raise UsageError(f"{message} (see: {self.prog} --help)")


def _parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="trio-monitor",
        description="Probe HTTP(S) endpoints and write one JSON object per line to stdout.",
    )
    parser.add_argument("--version", action="version", version=f"trio-monitor {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    def with_config(cmd: argparse.ArgumentParser) -> None:
        cmd.add_argument(
            "-c", "--config", default=DEFAULT_CONFIG, help=f"config file (default {DEFAULT_CONFIG})"
        )

    run = commands.add_parser("run", help="probe the targets until stopped")
    with_config(run)
    run.add_argument("--once", action="store_true", help="one round of every target, then exit")
    run.add_argument("-o", "--output", help="write JSON lines to this file instead (appends)")
    run.add_argument("-q", "--quiet", action="store_true", help="log only warnings and errors")

    validate = commands.add_parser("validate", help="check the config without probing")
    with_config(validate)

    init = commands.add_parser("init", help="write a commented starter config")
    init.add_argument("-o", "--output", default=DEFAULT_CONFIG, help="where to write ('-': stdout)")
    init.add_argument("--from", dest="from_file", help="a file of URLs, one a line ('-': stdin)")
    init.add_argument("-f", "--force", action="store_true", help="overwrite an existing file")

    report = commands.add_parser(
        "report", help="availability, latency and incidents from history or JSON lines"
    )
    add_report_arguments(report)

    health = commands.add_parser(
        "health", help="exit 0 if the running monitor's [server] says it is healthy"
    )
    with_config(health)
    health.add_argument(
        "--timeout", default="5s", help="how long to wait for an answer (default 5s)"
    )
    return parser


def _setup_logging(quiet: bool) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("trio-monitor: %(message)s"))
    log.handlers[:] = [handler]
    log.setLevel(logging.WARNING if quiet else logging.INFO)
    log.propagate = False


def _run(args: argparse.Namespace) -> int:
    config = load_config(args.config)
    if args.output:
        try:
            out = open(args.output, "ab")  # noqa: SIM115 - closed below, after trio.run
        except OSError as exc:
            raise UsageError(f"cannot open {args.output}: {exc.strerror or exc}") from None
    else:
        out = None
    # Read (and unset: alert commands must not inherit them) systemd's variables.
    notifier = Notifier(unset_environment=True)
    try:
        code = trio.run(
            lambda: run_monitor(
                config, once=args.once, out=out, config_path=args.config, notifier=notifier
            )
        )
    except* MonitorError as group:
        # An expected error from inside the task tree arrives wrapped in exception groups:
        # it is still one line for the user, not a traceback.
        first: BaseException = group
        while isinstance(first, BaseExceptionGroup):
            first = first.exceptions[0]
        raise first from None
    finally:
        if out is not None:
            out.close()
    return code


def _validate(args: argparse.Namespace) -> int:
    config = load_config(args.config)
    print(f"{args.config}: ok, {len(config.targets)} targets")
    return 0


def _init(args: argparse.Namespace) -> int:
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


def _health(args: argparse.Namespace) -> int:
    """GET /healthz of the server the config describes: for container HEALTHCHECKs.
    0 healthy; 1 unhealthy or no answer (one line on stderr says why); 2 no [server]."""
    from ..server import check_health  # the server's modules load only for this command

    config = load_config(args.config)
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


COMMANDS = {
    "run": _run,
    "validate": _validate,
    "init": _init,
    "report": report_command,
    "health": _health,
}


def main(argv: list[str] | None = None) -> int:
    try:
        args = _parser().parse_args(argv)
        _setup_logging(getattr(args, "quiet", False))
        return COMMANDS[args.command](args)
    except ConfigError as exc:
        for line in exc.problems:  # each already names its file: "monitor.toml: key.path: ..."
            print(line, file=sys.stderr)
        return exc.exit_code
    except MonitorError as exc:
        print(f"trio-monitor: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        return EXIT_INTERRUPTED


def console_main() -> None:
    code = main()
    try:
        sys.stdout.flush()
    except BrokenPipeError:
        # The reader went away (`| head`): point stdout at /dev/null so the
        # interpreter's own flush at exit does not complain.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    sys.exit(code)
