"""`trio-monitor report`: its options, the time range they name, and which source and
renderer they choose (the report itself is `trio_monitor.report`)."""

from __future__ import annotations

import argparse
import sqlite3
import sys
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from pathlib import Path

from .._config import Config, parse_when
from .._errors import UsageError
from .._records import in_rfc3339_range, rfc3339
from ..policy import Silence, occurrences
from ..report import (
    DEFAULT_SLOWEST,
    Aggregator,
    Report,
    build_report,
    feed_jsonl,
    feed_store,
    open_history,
    render_html,
    render_json,
    render_text,
)
from ..report.sources import Warn, warn_stderr
from .common import read_config

DEFAULT_SINCE = "24h"
FORMATS = ("text", "json", "html")


def parse_time(text: str, now: float, *, option: str = "--since") -> float:
    """A duration back from now ("24h", "7d", "1h30m") or an RFC 3339 time -> unix seconds.

    A time without an offset is taken as UTC; a bare date is its midnight UTC."""
    try:
        when = parse_when(text, now)
    except ValueError:
        raise UsageError(
            f"invalid {option} {text!r} (use a duration back from now like 24h, 7d, 30d, "
            "or an RFC 3339 time like 2026-11-27T00:00:00Z)"
        ) from None
    if not in_rfc3339_range(when):
        raise UsageError(f"invalid {option} {text!r}: out of range (years 1 to 9999)")
    return when


def resolve_range(since: str | None, until: str | None, now: float) -> tuple[float, float]:
    start = parse_time(since or DEFAULT_SINCE, now, option="--since")
    end = now if until is None else parse_time(until, now, option="--until")
    if start >= end:
        raise UsageError(f"empty range: --since {rfc3339(start)} is not before {rfc3339(end)}")
    return start, end


RENDERERS: dict[str, Callable[[Report, int], str]] = {
    "text": render_text,
    "json": render_json,
    "html": render_html,
}


def add_arguments(cmd: argparse.ArgumentParser) -> None:
    source = cmd.add_mutually_exclusive_group()
    source.add_argument("-c", "--config", help="config file whose history to read (monitor.toml)")
    source.add_argument(
        "--jsonl", metavar="FILE", help="read the monitor's JSON lines ('-': stdin)"
    )
    cmd.add_argument(
        "--since", default=DEFAULT_SINCE, help="start: duration back from now (24h, 7d) or RFC 3339"
    )
    cmd.add_argument("--until", help="end: duration back from now or RFC 3339 (default now)")
    cmd.add_argument("--target", action="append", metavar="NAME", help="only this target (repeat)")
    cmd.add_argument("--format", choices=FORMATS, default="text", help="output format")
    cmd.add_argument("-o", "--output", help="write the report to this file (default stdout)")
    cmd.add_argument("--slowest", type=int, default=DEFAULT_SLOWEST, metavar="N", help="list N")
    cmd.add_argument(
        "--exclude-maintenance",
        action="store_true",
        help="leave probes out of availability while maintenance or a silence held the target",
    )


def _check_targets(wanted: list[str] | None, known: Iterable[str], where: str) -> None:
    known = sorted(set(known))
    for name in wanted or ():
        if name not in known:
            shown = ", ".join(known[:10]) + (", ..." if len(known) > 10 else "")
            raise UsageError(f"unknown target {name!r} in {where} (known: {shown or 'none'})")


def make_report(args: argparse.Namespace, now: float, *, warn: Warn = warn_stderr) -> Report:
    """Read the chosen source into a Report (no output)."""
    since, until = resolve_range(args.since, args.until, now)
    if args.slowest < 0:
        raise UsageError(f"--slowest must be 0 or more, got {args.slowest}")
    agg = Aggregator(since, until, only=args.target)
    if args.jsonl is not None and args.exclude_maintenance:
        raise UsageError(
            "--exclude-maintenance reads the windows from the config and the silences from"
            " its history: use -c, not --jsonl"
        )
    if args.jsonl is not None:
        if args.jsonl == "-":
            source = feed_jsonl(agg, sys.stdin.buffer, "<stdin>", warn=warn)
        else:
            try:
                stream = open(args.jsonl, "rb")  # noqa: SIM115 - closed right below
            except OSError as exc:
                raise UsageError(f"cannot read {args.jsonl}: {exc.strerror or exc}") from None
            with stream:
                source = feed_jsonl(agg, stream, args.jsonl, warn=warn)
        _check_targets(args.target, agg.seen, args.jsonl if args.jsonl != "-" else "<stdin>")
        return build_report(agg, source)
    config_path = args.config or "monitor.toml"
    config = read_config(config_path)
    if config.store_path is None:
        raise UsageError(f"history is disabled in {config_path}")
    urls = {t.name: t.url for t in config.targets}
    kinds = {t.name: t.kind for t in config.targets}
    agg.intervals.update({t.name: t.interval for t in config.targets})
    try:
        with open_history(config.store_path) as reader:
            _check_targets(args.target, {*reader.targets(), *urls}, config_path)
            if args.exclude_maintenance:
                agg.held.update(held_spans(config, reader.silences(since, until), since, until))
            source = feed_store(agg, reader, urls, urls, kinds)
    except (OSError, sqlite3.Error) as exc:
        raise UsageError(f"cannot read history {config.store_path}: {exc}") from None
    if source.get("unstored"):
        warn(f"{source['unstored']} probe results were not stored (the store fell behind)")
    return build_report(agg, {**source, "path": config.store_path})


def held_spans(
    config: Config, silences: Iterable[Silence], since: float, until: float
) -> dict[str, list[tuple[float, float]]]:
    """Per configured target: the spans in [since, until) its alerts were held, worked
    out from the config's [[maintenance]] windows and the silences history kept (with
    the `until` they really ended at). Computed, not recorded: a window is a pure
    function of the config, and a silence's row says when it held; so nothing is
    written on the probe path for it (the price: editing a window's schedule changes
    how past reports leave its time out)."""
    spans: dict[str, list[tuple[float, float]]] = {}
    silences = list(silences)
    for target in config.targets:
        mine = [
            span
            for window in config.maintenance
            if window.matches(target.name, target.labels)
            for span in occurrences(window, since, until)
        ]
        mine += [(s.start, s.until) for s in silences if s.matches(target.name, target.labels)]
        if mine:
            spans[target.name] = mine
    return spans


def command(args: argparse.Namespace) -> int:
    report = make_report(args, datetime.now(UTC).timestamp())
    text = RENDERERS[args.format](report, args.slowest)
    if args.output and args.output != "-":
        try:
            Path(args.output).write_text(text, encoding="utf-8")
        except OSError as exc:
            raise UsageError(f"cannot write {args.output}: {exc.strerror or exc}") from None
    else:
        sys.stdout.write(text)
    return 0
