"""`trio-monitor simulate`: what a candidate config's alerting would have sent, replayed
over recorded probe results (trio_monitor/replay/), next to what was sent.

Exit codes: 0 the replay ran (whatever it found); 2 config, usage or recording error
(a history file that is not one, a JSON line that is not well formed): one line on
stderr, as every command.
"""

from __future__ import annotations

import argparse
import json
import sys
from datetime import UTC, datetime
from typing import IO

from .._errors import UsageError
from ..replay import HistoryRecording, JsonlRecording, Recording, render_text, simulate
from ..report.sources import warn_stderr
from .common import read_config, with_config
from .report import parse_time

FORMATS = ("text", "json")


def add_arguments(cmd: argparse.ArgumentParser) -> None:
    with_config(cmd)
    source = cmd.add_mutually_exclusive_group()
    source.add_argument(
        "--history", metavar="FILE", help="history file to replay (default: the config's [storage])"
    )
    source.add_argument(
        "--jsonl", metavar="FILE", help="the monitor's JSON lines to replay ('-': stdin)"
    )
    cmd.add_argument(
        "--since", help="start: duration back from now (24h, 7d) or RFC 3339 (default: all)"
    )
    cmd.add_argument("--until", help="end: duration back from now or RFC 3339 (default: all)")
    cmd.add_argument("--format", choices=FORMATS, default="text", help="output format")
    cmd.add_argument(
        "--limit", type=int, default=20, metavar="N", help="text: lines per list (0: all)"
    )


def _range(args: argparse.Namespace, now: float) -> tuple[float | None, float | None]:
    since = None if args.since is None else parse_time(args.since, now, option="--since")
    until = None if args.until is None else parse_time(args.until, now, option="--until")
    if since is not None and until is not None and since >= until:
        raise UsageError(f"empty range: --since {args.since} is not before --until {args.until}")
    return since, until


def _open_jsonl(path: str) -> IO[bytes]:
    if path == "-":
        return sys.stdin.buffer
    try:
        return open(path, "rb")
    except OSError as exc:
        raise UsageError(f"cannot read {path}: {exc.strerror or exc}") from None


def command(args: argparse.Namespace) -> int:
    if args.limit < 0:
        raise UsageError(f"--limit must be 0 or more, got {args.limit}")
    config = read_config(args.config)
    since, until = _range(args, datetime.now(UTC).timestamp())
    recording: Recording
    if args.jsonl is not None:
        stream = _open_jsonl(args.jsonl)
        label = "<stdin>" if args.jsonl == "-" else args.jsonl
        try:
            recording = JsonlRecording(stream, label, since, until)
            doc = simulate(config, recording)
        finally:
            if stream is not sys.stdin.buffer:
                stream.close()
    else:
        path = args.history or config.store_path
        if path is None:
            raise UsageError(f"history is disabled in {args.config}: give --history or --jsonl")
        history = HistoryRecording(path, since, until)
        try:
            recording = history
            doc = simulate(config, recording)
        finally:
            history.close()
    for note in recording.notes:
        warn_stderr(note)
    if args.format == "json":
        sys.stdout.write(json.dumps(doc, ensure_ascii=False, indent=1) + "\n")
    else:
        sys.stdout.write(render_text(doc, args.limit))
    return 0
