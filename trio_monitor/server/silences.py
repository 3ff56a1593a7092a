"""The silences API (`/api/v1/silences`) and the maintenance view (`/api/v1/maintenance`).

    GET    /api/v1/silences          silences not over yet, oldest first
    POST   /api/v1/silences          add one: {"match": {labels}, "targets": [names],
                                     "until": RFC 3339 | "duration": "2h",
                                     "comment": "...", "author": "..."} -> 201, the silence
    DELETE /api/v1/silences/{id}     expire it now -> the silence as it ended
    GET    /api/v1/maintenance       windows holding now or starting within 7 days,
                                     with the targets they match

Writing needs `[server] token` (without one, anyone who can reach the port could
silence every page): POST and DELETE answer 403 then. A bad body gets one 400 with
one line saying what is wrong (`parse_silence` is pure, and fuzzed).
"""

from __future__ import annotations

import contextlib
import json
import math
import sqlite3
import time
from collections.abc import Mapping
from datetime import datetime
from typing import TYPE_CHECKING, Any, Protocol

from starlette.requests import Request
from starlette.responses import Response

from .._config import MAX_ONE_OFF, _Invalid, parse_duration, parse_labels
from .._errors import StoreError
from .._records import in_rfc3339_range, rfc3339
from .contract import API, JSON, JSONObject, error_response

if TYPE_CHECKING:
    from ..engine.silences import WindowStatus
    from ..policy import Silence

MAX_BODY = 64 * 1024  # bytes of a silence's JSON
MAX_TEXT = 1000  # characters of a comment or author
MAX_TARGETS = 10_000
_KEYS = frozenset({"match", "targets", "until", "duration", "comment", "author"})


class Desk(Protocol):
    """What the handlers need of the monitor (engine/silences.py SilenceDesk)."""

    def target_names(self) -> set[str]: ...
    def silences(self) -> list[Silence]: ...
    async def add(
        self,
        *,
        until: float,
        match: Mapping[str, str] | None,
        targets: tuple[str, ...],
        comment: str,
        author: str,
    ) -> Silence: ...
    async def expire(self, silence_id: str) -> Silence | None: ...
    def held_by(self, name: str) -> str | None: ...
    def windows(self) -> list[WindowStatus]: ...


class BadSilence(ValueError):
    """The one line a client gets for a bad body."""


def _text(body: Mapping[str, Any], key: str) -> str:
    value = body.get(key, "")
    if not isinstance(value, str) or len(value) > MAX_TEXT:
        raise BadSilence(f"{key}: expected text of {MAX_TEXT} characters at most")
    return value.strip()


def parse_silence(raw: bytes, now: float, known: set[str]) -> dict[str, Any]:
    """A POST body -> the keyword arguments of `Desk.add`; BadSilence with one line."""
    try:
        body = json.loads(raw)
    except (ValueError, RecursionError):
        raise BadSilence(
            'the body is not JSON: send an object like {"targets": ["api"], "duration": "2h"}'
        ) from None
    if not isinstance(body, dict):
        raise BadSilence("the body must be a JSON object")
    unknown = sorted(set(body) - _KEYS)
    if unknown:
        raise BadSilence(f"unknown key {unknown[0]!r} (use {', '.join(sorted(_KEYS))})")
    match = None
    if "match" in body:
        try:
            match = parse_labels(body["match"])
        except _Invalid as exc:
            raise BadSilence(f"match: {exc}") from None
    targets = body.get("targets", [])
    if not isinstance(targets, list) or not all(isinstance(t, str) for t in targets):
        raise BadSilence('targets: expected a list of target names like ["api"]')
    if len(targets) > MAX_TARGETS:
        raise BadSilence(f"targets: {MAX_TARGETS} at most")
    for name in targets:
        if name not in known:
            raise BadSilence(f"targets: no target named {name!r}")
    if match is None and not targets:
        raise BadSilence("set match (labels; {} for every target) or targets (names)")
    return {
        "until": _until(body, now),
        "match": match,
        "targets": tuple(dict.fromkeys(targets)),
        "comment": _text(body, "comment"),
        "author": _text(body, "author"),
    }


def _until(body: Mapping[str, Any], now: float) -> float:
    if ("until" in body) == ("duration" in body):
        raise BadSilence('set until (an RFC 3339 time) or duration (like "2h"), one of them')
    if "duration" in body:
        try:
            seconds = parse_duration(body["duration"])
        except _Invalid as exc:
            raise BadSilence(f"duration: {exc}") from None
        until = now + seconds
    else:
        text = body["until"]
        until = _rfc3339(text) if isinstance(text, str) else math.nan
        if math.isnan(until):
            raise BadSilence(
                f"until: expected an RFC 3339 time like 2026-12-01T02:00:00Z, got {text!r}"
            )
        if until <= now:
            raise BadSilence(f"until: {text} is not in the future")
    if until - now > MAX_ONE_OFF:
        raise BadSilence("a silence lasts a year at most")
    return until


def _rfc3339(text: str) -> float:
    try:
        when = datetime.fromisoformat(text.strip())
    except ValueError:
        return math.nan
    if when.tzinfo is None:
        return math.nan
    ts = when.timestamp()
    return ts if in_rfc3339_range(ts) else math.nan


def silence_json(s: Silence, now: float) -> JSONObject:
    return {
        "id": s.id,
        "start": rfc3339(s.start),
        "until": rfc3339(s.until),
        "active": s.start <= now < s.until,
        "match": None if s.match is None else dict(s.match),
        "targets": list(s.targets),
        "comment": s.comment,
        "author": s.author,
    }


def window_json(w: WindowStatus) -> JSONObject:
    return {
        "name": w.name,
        "start": rfc3339(w.start),
        "end": rfc3339(w.end),
        "active": w.active,
        "targets": list(w.targets),
    }


async def _body(request: Request) -> bytes | None:
    """The body, or None if it is longer than MAX_BODY (the rest left unread)."""
    chunks, size = [], 0
    async with contextlib.aclosing(request.stream()) as stream:
        async for chunk in stream:
            size += len(chunk)
            if size > MAX_BODY:
                return None
            chunks.append(chunk)
    return b"".join(chunks)


class SilenceRoutes:
    def __init__(self, desk: Desk, token_set: bool) -> None:
        self.desk = desk
        self.token_set = token_set

    def _refused(self) -> Response | None:
        if self.token_set:
            return None
        return error_response(
            403,
            "managing silences needs [server] token: without one, anyone who reaches this port could silence every page",
        )

    async def collection(self, request: Request) -> Response:
        if request.method == "GET":
            now = time.time()
            return JSON({"silences": [silence_json(s, now) for s in self.desk.silences()]})
        if (refused := self._refused()) is not None:
            return refused
        raw = await _body(request)
        if raw is None:
            return error_response(413, f"a silence's body may have {MAX_BODY} bytes at most")
        now = time.time()
        try:
            fields = parse_silence(raw, now, self.desk.target_names())
        except BadSilence as exc:
            return error_response(400, str(exc))
        try:
            silence = await self.desk.add(**fields)
        except (StoreError, sqlite3.Error, OSError) as exc:
            return error_response(503, f"history unavailable, silence not added: {exc}")
        return JSON(silence_json(silence, time.time()), 201)

    async def one(self, request: Request) -> Response:
        if (refused := self._refused()) is not None:
            return refused
        silence_id = request.path_params["id"]
        try:
            ended = await self.desk.expire(silence_id)
        except (StoreError, sqlite3.Error, OSError) as exc:
            return error_response(503, f"history unavailable, silence not expired: {exc}")
        if ended is None:
            return error_response(404, f"no silence {silence_id!r} (or it is over)")
        return JSON(silence_json(ended, time.time()))

    async def maintenance(self, request: Request) -> Response:
        now = time.time()
        return JSON(
            {
                "windows": [window_json(w) for w in self.desk.windows()],
                "silences": [silence_json(s, now) for s in self.desk.silences()],
            }
        )


SILENCES = f"{API}/silences"
