"""The `trio-monitor` command: main(argv) -> exit code. One module per command.

Exit codes: 0 ok; 1 a probe failed (run --once); 2 config or usage error; 3 a cluster
node taken over by a newer process; 130 stopped at once by a second signal. Expected errors print one line per
problem on stderr, never a traceback. stdout carries JSON lines only.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import sys
from types import ModuleType
from typing import NoReturn

from .. import _gc
from .._errors import ConfigError, MonitorError, UsageError
from .._lifecycle import EXIT_INTERRUPTED
from .._version import __version__

log = logging.getLogger("trio_monitor")


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:  # one line, our exit code, no usage dump
        raise UsageError(f"{message} (see: {self.prog} --help)")


def _one_line(text: str) -> str:
    """Control characters (a newline in an argument or a file name) written escaped."""
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)


# name -> (help, its module in this package: add_arguments(parser) and command(args) -> int).
# A command's module is imported only when that command runs: `run` does not pay for
# report's renderers, the replay engine or the Gatus importer at every start.
COMMANDS: dict[str, tuple[str, str]] = {
    "run": ("probe the targets until stopped", "run"),
    "validate": ("check the config without probing", "validate"),
    "init": ("write a commented starter config", "init"),
    "report": ("availability, latency and incidents from history or JSON lines", "report"),
    "import": ("convert another monitor's config: import gatus FILE", "import_gatus"),
    "health": ("exit 0 if the running monitor's [server] says it is healthy", "health"),
    "push-urls": ("print each push target's URL (for its crontab line)", "push_urls"),
    "silence": ("add, list or expire the running monitor's silences", "silence"),
    "simulate": ("replay recorded probes through a candidate config's alerting", "simulate"),
    "cluster": ("cluster status: members, leases and shares, from Redis", "cluster"),
}


def command_module(name: str) -> ModuleType:
    with _gc.paused():  # as the package's own import (__init__.py)
        return importlib.import_module(f"{__package__}.{COMMANDS[name][1]}")


def _chosen(argv: list[str]) -> str | None:
    """The command argv names: its first word that is not an option (the top level's
    options, --help and --version, take no value)."""
    return next((word for word in argv if not word.startswith("-")), None)


def _parser(chosen: str | None) -> argparse.ArgumentParser:
    parser = _Parser(
        prog="trio-monitor",
        description="Probe HTTP(S) endpoints and write one JSON object per line to stdout.",
    )
    parser.add_argument("--version", action="version", version=f"trio-monitor {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    for name, (help_text, _) in COMMANDS.items():
        sub = commands.add_parser(name, help=help_text)
        if name == chosen:
            command_module(name).add_arguments(sub)
    return parser


def _setup_logging(quiet: bool) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("trio-monitor: %(message)s"))
    log.handlers[:] = [handler]
    log.setLevel(logging.WARNING if quiet else logging.INFO)
    log.propagate = False


def main(argv: list[str] | None = None) -> int:
    try:
        words = sys.argv[1:] if argv is None else argv
        args = _parser(_chosen(words)).parse_args(words)
        _setup_logging(getattr(args, "quiet", False))
        code: int = command_module(args.command).command(args)
        return code
    except ConfigError as exc:
        for line in exc.problems:  # each already names its file: "monitor.toml: key.path: ..."
            print(_one_line(line), file=sys.stderr)
        return exc.exit_code
    except MonitorError as exc:
        print(f"trio-monitor: {_one_line(str(exc))}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        return EXIT_INTERRUPTED


def console_main() -> None:
    code = main()
    if sys.stdout is None:  # started with stdout closed: nothing to flush
        sys.exit(code)
    try:
        sys.stdout.flush()
    except BrokenPipeError:
        # The reader went away (`| head`): point stdout at /dev/null so the
        # interpreter's own flush at exit does not complain.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    sys.exit(code)
