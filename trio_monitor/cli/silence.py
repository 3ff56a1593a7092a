"""`trio-monitor silence add|list|expire`: runtime silences, through the running
monitor's API (/api/v1/silences, server/silences.py) at the config's [server] listen
address, with its token.

Exit codes: 0 done; 1 the monitor could not be reached or refused (one line on stderr
says why, the server's own message when it gave one); 2 usage or config errors (no
[server] section). `--format json` prints what the API answered: the silence for add
and expire, {"silences": [...]} for list.
"""

from __future__ import annotations

import argparse
import getpass
import json
import sys
from typing import Any
from urllib.parse import quote

import httpx

from .._errors import UsageError
from ..net.addr import local_url
from .common import read_config, with_config

TIMEOUT = 10.0  # seconds to wait for the monitor's answer
API = "/api/v1/silences"


def add_arguments(cmd: argparse.ArgumentParser) -> None:
    actions = cmd.add_subparsers(dest="action", required=True, metavar="{add,list,expire}")
    add = actions.add_parser("add", help="hold the alerts of some targets for a while")
    add.add_argument(
        "-t", "--target", action="append", default=[], help="a target's name (repeat for more)"
    )
    add.add_argument(
        "-m",
        "--match",
        action="append",
        default=[],
        metavar="LABEL=VALUE",
        help="targets with this label (repeat: all must match)",
    )
    span = add.add_mutually_exclusive_group(required=True)
    span.add_argument("-d", "--duration", help='how long, like "2h" or "30m"')
    span.add_argument("--until", help="until when, RFC 3339 like 2026-12-01T06:00:00Z")
    add.add_argument("--comment", default="", help="why (shown with the silence)")
    add.add_argument("--author", default=None, help="who (default: your login name)")
    actions.add_parser("list", help="the silences not over yet")
    expire = actions.add_parser("expire", help="end a silence now")
    expire.add_argument("id", help="the silence's id (from add or list)")
    for sub in (add, actions.choices["list"], expire):
        with_config(sub)
        sub.add_argument(
            "--format", choices=("text", "json"), default="text", help="output (default text)"
        )


def _labels(pairs: list[str]) -> dict[str, str] | None:
    if not pairs:
        return None
    labels = {}
    for pair in pairs:
        name, eq, value = pair.partition("=")
        if not eq or not name:
            raise UsageError(f"--match: expected LABEL=VALUE, got {pair!r}")
        labels[name] = value
    return labels


def _author(given: str | None) -> str:
    if given is not None:
        return given
    try:
        return getpass.getuser()
    except (OSError, KeyError):  # no login name (a container without a passwd entry)
        return ""


def _request(args: argparse.Namespace, method: str, path: str, body: Any = None) -> Any:
    """-> the API's JSON answer (an object); _Failed with one line if there is none."""
    config = read_config(args.config)
    if config.server is None:
        raise UsageError(f"{args.config}: no [server] section: there is no monitor to ask")
    url = f"{local_url(config.server.listen)}{path}"
    token = config.server.token
    headers = {} if token is None else {"authorization": f"Bearer {token}"}
    try:
        with httpx.Client(timeout=TIMEOUT, trust_env=False) as client:
            response = client.request(method, url, json=body, headers=headers)
    except httpx.HTTPError as exc:
        raise _Failed(
            f"{url}: {str(exc) or type(exc).__name__} (is the monitor running?)"
        ) from None
    try:
        answer = response.json()
    except ValueError:
        answer = None
    if response.is_success and isinstance(answer, dict):
        return answer
    message = answer.get("error") if isinstance(answer, dict) else None
    raise _Failed(f"{method} {url}: {message or f'HTTP status {response.status_code}'}")


class _Failed(Exception):
    """The monitor could not be asked, or said no: one line, exit 1."""


def _describe(s: dict[str, Any]) -> str:
    what = [*s["targets"]]
    if s["match"] is not None:
        what.append("{" + ", ".join(f"{k}={v}" for k, v in s["match"].items()) + "}")
    note = ": ".join(text for text in (s["author"], s["comment"]) if text)
    note = f" ({note})" if note else ""
    return f"{s['id']}  until {s['until']}  {' '.join(what)}{note}"


def command(args: argparse.Namespace) -> int:
    try:
        if args.action == "add":
            body: dict[str, Any] = {
                "comment": args.comment,
                "author": _author(args.author),
                **({"targets": args.target} if args.target else {}),
                **({"duration": args.duration} if args.duration else {"until": args.until}),
            }
            labels = _labels(args.match)
            if labels is not None:
                body["match"] = labels
            if not args.target and labels is None:
                raise UsageError("silence add: name targets (--target) or labels (--match)")
            answer = _request(args, "POST", API, body)
            text = f"silenced {_describe(answer)}"
        elif args.action == "list":
            answer = _request(args, "GET", API)
            text = "\n".join(_describe(s) for s in answer["silences"]) or "no silences"
        else:
            answer = _request(args, "DELETE", f"{API}/{quote(args.id, safe='')}")
            text = f"expired {answer['id']} at {answer['until']}"
    except _Failed as exc:
        print(f"trio-monitor: {exc}", file=sys.stderr)
        return 1
    print(json.dumps(answer, ensure_ascii=False) if args.format == "json" else text)
    return 0
