"""`trio-monitor run`: probe the targets until stopped (or one round with --once)."""

from __future__ import annotations

import argparse
import gc
from pathlib import Path

import trio

from .. import _gc
from .._errors import MonitorError, UsageError
from .._lifecycle import run_monitor
from .._systemd import SystemdNotifier
from ..sinks.jsonl import Output
from .common import read_config, with_config


def add_arguments(cmd: argparse.ArgumentParser) -> None:
    with_config(cmd)
    cmd.add_argument("--once", action="store_true", help="one round of every target, then exit")
    cmd.add_argument("-o", "--output", help="write JSON lines to this file instead (appends)")
    cmd.add_argument("-q", "--quiet", action="store_true", help="log only warnings and errors")


def command(args: argparse.Namespace) -> int:
    config = read_config(args.config)
    if args.output:
        try:
            out = Output.file(Path(args.output))  # closed below, after trio.run
        except OSError as exc:
            raise UsageError(f"cannot open {args.output}: {exc.strerror or exc}") from None
    else:
        out = None
    # Read (and unset: alert commands must not inherit them) systemd's variables.
    systemd = SystemdNotifier(unset_environment=True)

    async def monitor() -> int:
        code: list[int] = []

        async def run(task_status: trio.TaskStatus[object] = trio.TASK_STATUS_IGNORED) -> None:
            code.append(
                await run_monitor(
                    config,
                    once=args.once,
                    out=out,
                    config_path=args.config,
                    systemd=systemd,
                    task_status=task_status,
                )
            )

        async with trio.open_nursery() as nursery:
            await nursery.start(run)
            _gc.settle()  # started: config loaded, every plan prepared
        return code[0]

    _gc.tune()
    try:
        code = trio.run(monitor)
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
        # The process ends now: its last garbage collections need not walk every object
        # of a big fleet (at 50,000 targets, seconds between SIGTERM and exit).
        gc.freeze()
    return code
