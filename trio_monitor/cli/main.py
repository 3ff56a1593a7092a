"""The `trio-monitor` command: main(argv) -> exit code. One module per command.

Exit codes: 0 ok; 1 a probe failed (run --once); 2 config or usage error; 3 a cluster
node taken over by a newer process; 130 stopped at once by a second signal. Expected errors print one line per
problem on stderr, never a traceback. stdout carries JSON lines only.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Callable
from types import ModuleType
from typing import NoReturn

from .._errors import ConfigError, MonitorError, UsageError
from .._lifecycle import EXIT_INTERRUPTED
from .._version import __version__
from . import (
    cluster,
    health,
    import_gatus,
    init,
    push_urls,
    report,
    run,
    silence,
    simulate,
    validate,
)

log = logging.getLogger("trio_monitor")

Command = Callable[[argparse.Namespace], int]


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:  # one line, our exit code, no usage dump
        raise UsageError(f"{message} (see: {self.prog} --help)")


def _one_line(text: str) -> str:
    """Control characters (a newline in an argument or a file name) written escaped."""
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)


def _module(module: ModuleType) -> tuple[Callable[[argparse.ArgumentParser], None], Command]:
    return module.add_arguments, module.command


# name -> (help, how its arguments are added, what runs it)
COMMANDS: dict[str, tuple[str, Callable[[argparse.ArgumentParser], None], Command]] = {
    "run": ("probe the targets until stopped", *_module(run)),
    "validate": ("check the config without probing", *_module(validate)),
    "init": ("write a commented starter config", *_module(init)),
    "report": ("availability, latency and incidents from history or JSON lines", *_module(report)),
    "import": ("convert another monitor's config: import gatus FILE", *_module(import_gatus)),
    "health": ("exit 0 if the running monitor's [server] says it is healthy", *_module(health)),
    "push-urls": ("print each push target's URL (for its crontab line)", *_module(push_urls)),
    "silence": ("add, list or expire the running monitor's silences", *_module(silence)),
    "simulate": (
        "replay recorded probes through a candidate config's alerting",
        *_module(simulate),
    ),
    "cluster": ("cluster status: members, leases and shares, from Redis", *_module(cluster)),
}


def _parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="trio-monitor",
        description="Probe HTTP(S) endpoints and write one JSON object per line to stdout.",
    )
    parser.add_argument("--version", action="version", version=f"trio-monitor {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    for name, (help_text, add_arguments, _) in COMMANDS.items():
        add_arguments(commands.add_parser(name, help=help_text))
    return parser


def _setup_logging(quiet: bool) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("trio-monitor: %(message)s"))
    log.handlers[:] = [handler]
    log.setLevel(logging.WARNING if quiet else logging.INFO)
    log.propagate = False


def main(argv: list[str] | None = None) -> int:
    try:
        args = _parser().parse_args(argv)
        _setup_logging(getattr(args, "quiet", False))
        return COMMANDS[args.command][2](args)
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
