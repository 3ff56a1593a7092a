"""The OpenAPI 3.1 document served at /api/v1/openapi.json, written by hand.

Why by hand: the handlers build their JSON from attrs records into plain dicts, and the
routes under /api/v1/targets/ and /api/v1/badges/ are catch-all paths resolved in
app.py (a target name may contain "/"), so no handler declares the types or path
templates a generator could read. The libraries that generate documents (FastAPI,
spectree, litestar) want pydantic/msgspec models and their own routing; apispec and
Starlette's SchemaGenerator only collect hand-written YAML from docstrings, which is
this document moved into strings. So it is kept here, whole, and
tests/test_openapi.py checks it against the app: every route and method appears in
it and every path it documents is served.

Schemas are strict about required fields (all of them) and lenient about added ones:
fields are only ever added within /api/v1.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .._errors import ErrorKind
from .._records import PHASES
from ..probes.browser.artifacts import FILE_NAME
from .contract import API, DEFAULT_SINCE, MAX_ROWS, RECENT
from .login import COOKIE

if TYPE_CHECKING:
    from .._config import ServerSection

# A JSON Schema or OpenAPI object: nested, heterogeneous dicts, JSON all the way down.
Schema = dict[str, Any]


def _nullable(kind: str, **extra: Any) -> Schema:
    return {"type": [kind, "null"], **extra}


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _object(properties: Schema, description: str = "") -> Schema:
    schema = {"type": "object", "required": list(properties), "properties": properties}
    return {"description": description, **schema} if description else schema


_TIME = {"type": "string", "format": "date-time", "description": "RFC 3339, UTC"}
_NULLABLE_TIME = _nullable("string", format="date-time", description="RFC 3339, UTC")

_LABELS = {
    "type": "object",
    "additionalProperties": {"type": "string"},
    "description": "the target's labels ([monitor] labels, then its own)",
}

_TARGET_PROPERTIES: Schema = {
    "name": {"type": "string"},
    "url": {"type": "string"},
    "kind": {
        "type": "string",
        "description": 'how the target is probed: "http", "tcp", "tls", "dns", "icmp", "ws", '
        '"push", ...',
    },
    "group": _nullable(
        "string", maxLength=100, description="the target's `group` (a status page heading)"
    ),
    "labels": {**_LABELS, "description": "the target's labels, {} without any"},
    "state": {"enum": ["UP", "DOWN", "UNKNOWN"]},
    "suppressed_by": {
        "anyOf": [{"type": "array", "items": {"type": "string"}}, {"type": "null"}],
        "description": "DOWN while these parents (depends_on) are DOWN: its page waits for"
        " them; null otherwise",
    },
    "since": {**_NULLABLE_TIME, "description": "when the state began"},
    "last": {"anyOf": [_ref("Probe"), {"type": "null"}], "description": "the latest probe"},
    "interval_s": {"type": "number"},
    "checks_24h": {"type": "integer", "minimum": 0},
    "availability_24h_pct": _nullable("number", minimum=0, maximum=100),
    "p95_24h_ms": _nullable("number", minimum=0),
    "tls": {
        "anyOf": [_ref("Tls"), {"type": "null"}],
        "description": "the certificate of the latest probe that got one (days_left as then)",
    },
    "phases_24h_ms": _object(
        {
            phase: {
                "anyOf": [
                    _object(
                        {
                            "p50": {"type": "number", "minimum": 0},
                            "p95": {"type": "number", "minimum": 0},
                            "count": {"type": "integer", "minimum": 1},
                        }
                    ),
                    {"type": "null"},
                ]
            }
            for phase in PHASES
        },
        "per phase of the probe's `phases_ms`: p50 and p95 (ms, within 5%) over the "
        "last 24 hours' ok probes, and how many of them had the phase; null for a phase "
        "that did not happen in them (tls on http, dns for an address, ...)",
    ),
    "maintenance": _nullable(
        "string",
        description='what holds its alerts now: "maintenance:NAME" (a [[maintenance]] '
        'window) or "silence:ID"; null: nothing',
    ),
    "degrading": {
        "anyOf": [
            _object(
                {
                    "ts": _TIME,
                    "since": {**_NULLABLE_TIME, "description": "when the signal left its baseline"},
                    "signal": {"enum": ["latency", "errors", "size", "churn", "cert"]},
                    "baseline": _nullable("number", description="in the signal's unit"),
                    "current": _nullable("number", description="in the signal's unit"),
                    "score": _nullable("number", description="1: the warning threshold"),
                    "detail": _nullable("string"),
                }
            ),
            {"type": "null"},
        ],
        "description": "early warning: the open `degrading` alert and its evidence, until "
        "the signal is back to its baseline",
    },
}

# Kind-specific fields of a probe: always there (as in a JSON line), null where the kind
# has none.
_PROBE_KIND_FIELDS: Schema = {
    "received": _nullable(
        "string",
        description="tcp, tls, ws, wss: the text `expect` was tried on (first 256 characters; "
        "ws: the first message); null without `expect`",
    ),
    "dns": {
        "anyOf": [_ref("Dns"), {"type": "null"}],
        "description": "a dns:// probe's answer; null otherwise and without an answer",
    },
    "icmp": {
        "anyOf": [
            _object(
                {
                    "sent": {"type": "integer", "minimum": 0},
                    "received": {"type": "integer", "minimum": 0},
                    "loss_pct": {"type": "number", "minimum": 0, "maximum": 100},
                    "rtt_min_ms": _nullable("number"),
                    "rtt_avg_ms": _nullable("number"),
                    "rtt_max_ms": _nullable("number"),
                    "addr": {"type": "string"},
                    "socket": {"enum": ["dgram", "raw"]},
                    "hop_limit": _nullable("integer", description="the last reply's TTL"),
                    "setup_ms": _nullable("number", description="socket set up"),
                }
            ),
            {"type": "null"},
        ],
        "description": "icmp:// probes: echo requests, replies and round-trip times",
    },
    "push": {
        "anyOf": [
            _object(
                {
                    "last_ping": {**_NULLABLE_TIME, "description": "null: no ping yet"},
                    "last_event": {"enum": ["ping", "start", "fail", "exit", None]},
                    "exit_code": _nullable("integer"),
                    "run_ms": _nullable("number", description="/start to the ping"),
                    "next_due": _NULLABLE_TIME,
                }
            ),
            {"type": "null"},
        ],
        "description": "push targets: the last ping and when the next is due",
    },
    "browser": {
        "anyOf": [
            _object(
                {
                    "dom_content_loaded_ms": _nullable(
                        "number", description="since navigation start"
                    ),
                    "load_ms": _nullable("number", description="null: ended before load"),
                    "lcp_ms": _nullable("number", description="largest contentful paint"),
                    "requests": {"type": "integer", "minimum": 0},
                    "failed_requests": {"type": "integer", "minimum": 0},
                    "console_errors": {
                        "type": "integer",
                        "minimum": 0,
                        "description": "uncaught script errors",
                    },
                    "transfer_bytes": {"type": "integer", "minimum": 0},
                    "steps": {"type": "array", "items": _ref("BrowserStep")},
                    "screenshot": _nullable(
                        "string",
                        description="a failed probe's PNG, relative to the state directory:"
                        " served at .../artifacts/{its file name}",
                    ),
                    "console_log": _nullable(
                        "string", description="a failed probe's console log, likewise"
                    ),
                }
            ),
            {"type": "null"},
        ],
        "description": 'kind = "browser": the page load in Chromium',
    },
}

_SCHEMAS: Schema = {
    "BrowserStep": _object(
        {
            "action": {"enum": ["goto", "click", "fill", "press", "wait_for", "expect_text"]},
            "target": {
                "type": "string",
                "description": "its URL, selector, key, wait or text (never a filled value)",
            },
            "ok": {"type": "boolean"},
            "ms": {"type": "number", "minimum": 0},
            "error": _nullable("string"),
        },
        "One step of a browser target's `steps`, as it ran.",
    ),
    "Error": _object({"error": {"type": "string"}}, "What went wrong, in words."),
    "Cluster": _object(
        {
            "redis": _object(
                {
                    "url": {"type": "string", "description": "its password shown as ***"},
                    "ok": {"type": "boolean", "description": "the last call answered"},
                    "error": _nullable(
                        "string",
                        description="KIND: what was said; KIND is unreachable, timeout or "
                        "loading (Redis away) or error reply, refused (an answer)",
                    ),
                }
            ),
            "cluster_id": _nullable("string"),
            "node": _nullable("string", description="this node: LOCATION/NODE"),
            "config_hash": {"type": "string", "description": "of [[targets]] and [alerts]"},
            "members": {
                "type": "array",
                "items": _object(
                    {
                        "member": {"type": "string"},
                        "location": {"type": "string"},
                        "node": {"type": "string"},
                        "lease_left_s": _nullable("number"),
                        "targets": {"type": "integer", "minimum": 0},
                        "config_hash": _nullable("string"),
                        "config_matches": {
                            "type": "boolean",
                            "description": "false: its targets or alerting settings differ",
                        },
                    }
                ),
            },
            "locations": {
                "type": "object",
                "additionalProperties": {"type": "integer"},
                "description": "live members per location",
            },
            "owned": {"type": ["array", "null"], "items": {"type": "string"}},
            "lag": _nullable("object", description="queue, fold_s, sent, late, delivered"),
        },
        "Cluster mode, as this node sees it.",
    ),
    "Health": _object(
        {
            "status": {"enum": ["ok", "unhealthy"]},
            "reason": {"type": "string"},
            "last_round_age_s": _nullable("number"),
            "max_age_s": {"type": "number"},
            "start_lag_p50_s": _nullable("number", minimum=0),
            "start_lag_max_s": _nullable("number", minimum=0),
        }
    ),
    "Probe": _object(
        {
            "schema": {"const": 1},
            "type": {"const": "probe"},
            "ts": _TIME,
            "target": {"type": "string"},
            "url": {"type": "string"},
            "ok": {"type": "boolean"},
            "status": _nullable("integer"),
            "latency_ms": _nullable("number"),
            "error": {"enum": [*map(str, ErrorKind), None]},
            "attempts": {"type": "integer", "minimum": 1},
            "round": {"type": "integer"},
            "error_detail": _nullable("string"),
            "ttfb_ms": _nullable("number"),
            "bytes": {"type": "integer", "minimum": 0},
            "truncated": {"type": "boolean"},
            "content_hash": _nullable("string"),
            "content_changed": {"type": "boolean"},
            "slow": {"type": "boolean"},
            "final_url": _nullable("string"),
            "remote_addr": _nullable("string"),
            "kind": {
                "type": "string",
                "description": 'the probe kind ("http", "ws", ...); `status` is null for kinds '
                "other than http and ws (ws: the handshake's HTTP status, 101 when it succeeded)",
            },
            "confirm": {
                "type": "boolean",
                "description": "a confirmation probe (confirm_interval, recover_interval)",
            },
            "phases_ms": {
                "type": ["object", "null"],
                "description": "where the last attempt's time went, ms; null for a phase "
                "that did not happen; null without any connection",
                "properties": {phase: _nullable("number") for phase in PHASES},
            },
            "tls": {
                "anyOf": [_ref("Tls"), {"type": "null"}],
                "description": "an HTTPS or tls:// probe's certificate and connection; null "
                "otherwise",
            },
            "addresses": {
                "type": ["array", "null"],
                "description": 'addresses = "all": each address behind the name',
                "items": {
                    "type": "object",
                    "properties": {
                        "addr": {"type": "string"},
                        "ok": {"type": "boolean"},
                        "error": {"enum": [*map(str, ErrorKind), None]},
                        "latency_ms": _nullable("number"),
                    },
                },
            },
            **_PROBE_KIND_FIELDS,
            "conditions": {
                "type": ["array", "null"],
                "description": "the target's conditions, each with its outcome; null "
                "without any (docs/conditions.md)",
                "items": {
                    "type": "object",
                    "properties": {
                        "condition": {"type": "string"},
                        "ok": {"type": "boolean"},
                        "actual": _nullable("string"),
                    },
                },
            },
            "labels": {
                "anyOf": [_LABELS, {"type": "null"}],
                "description": "the target's labels; null without any",
            },
        },
        "One probe, as in the monitor's JSON lines.",
    ),
    "Tls": _object(
        {
            "subject": {"type": "string"},
            "issuer": {"type": "string"},
            "sans": {"type": "array", "items": {"type": "string"}},
            "not_before": _TIME,
            "not_after": _TIME,
            "days_left": {"type": "number", "description": "negative once expired"},
            "version": _nullable("string"),
            "cipher": _nullable("string"),
            "earliest_not_after": _TIME,
            "earliest_subject": {"type": "string"},
        },
        "The leaf certificate, the presented chain's earliest expiry, version and cipher.",
    ),
    "Dns": _object(
        {
            "record_type": {"type": "string", "description": 'the type asked: "A", "MX", ...'},
            "rcode": {"type": "string", "description": '"NOERROR", "NXDOMAIN", ...'},
            "answers": {
                "type": "array",
                "items": {"type": "string"},
                "description": "each answer-section record's data as text, in answer order",
            },
            "server": {"type": "string", "description": "the nameserver asked, ip:port"},
            "tcp": {"type": "boolean", "description": "answered over TCP after truncation"},
            "authority_rrs": {"type": "integer", "minimum": 0},
            "additional_rrs": {"type": "integer", "minimum": 0},
        },
        "What a dns:// probe's nameserver answered.",
    ),
    "Silence": _object(
        {
            "id": {"type": "string"},
            "start": _TIME,
            "until": {**_TIME, "description": "RFC 3339, UTC; the moment it was expired, if early"},
            "active": {"type": "boolean", "description": "it holds alerts now"},
            "match": {
                "type": ["object", "null"],
                "additionalProperties": {"type": "string"},
                "description": "labels a target must all have; null: by name only",
            },
            "targets": {"type": "array", "items": {"type": "string"}},
            "comment": {"type": "string"},
            "author": {"type": "string"},
        },
        "A runtime silence: it holds the alerts of the targets it matches.",
    ),
    "SilenceList": _object({"silences": {"type": "array", "items": _ref("Silence")}}),
    "NewSilence": {
        "type": "object",
        "additionalProperties": False,
        "description": "set match or targets (or both: either matches), and until or duration",
        "properties": {
            "match": {"type": "object", "additionalProperties": {"type": "string"}},
            "targets": {"type": "array", "items": {"type": "string"}},
            "until": {"type": "string", "format": "date-time"},
            "duration": {"type": "string", "description": 'like "2h" or "1h30m"'},
            "comment": {"type": "string", "maxLength": 1000},
            "author": {"type": "string", "maxLength": 1000},
        },
    },
    "Maintenance": _object(
        {
            "windows": {
                "type": "array",
                "items": _object(
                    {
                        "name": {"type": "string"},
                        "start": _TIME,
                        "end": _TIME,
                        "active": {"type": "boolean"},
                        "targets": {"type": "array", "items": {"type": "string"}},
                    }
                ),
                "description": "[[maintenance]] windows holding now or starting within 7 days",
            },
            "silences": {"type": "array", "items": _ref("Silence")},
        }
    ),
    "Target": _object(_TARGET_PROPERTIES),
    "TargetList": {"type": "array", "items": _ref("Target")},
    "TargetDetail": _object(
        {
            **_TARGET_PROPERTIES,
            "recent": {
                "anyOf": [{"type": "array", "items": _ref("Sample")}, {"type": "null"}],
                "description": f"the last {RECENT} probes, oldest first; null when history "
                "is disabled or unavailable",
            },
        }
    ),
    "Sample": _object(
        {
            "ts": _TIME,
            "ok": {"type": "boolean"},
            "status": _nullable("integer"),
            "latency_ms": _nullable("number"),
            "error": _nullable("string"),
        },
        "One probe, as history keeps it.",
    ),
    "History": _object(
        {
            "target": {"type": "string"},
            "since": _TIME,
            "until": _TIME,
            "samples": {"type": "array", "items": _ref("Sample")},
            "truncated": {
                "type": "boolean",
                "description": "older samples in the range were left out (only the newest "
                "`limit` are here): ask again with until = the first sample's ts",
            },
        }
    ),
    "Incident": _object(
        {
            "target": {"type": "string"},
            "start": _TIME,
            "end": {**_NULLABLE_TIME, "description": "null while the outage goes on"},
            "duration_s": {"type": "number", "minimum": 0},
            "error": {"type": "string", "description": "the error kind that took it down"},
            "end_reason": {
                "enum": ["up", "removed", None],
                "description": "why it ended: the target recovered (up) or is no longer"
                " monitored (removed); null while open",
            },
            "last_seen": {
                **_NULLABLE_TIME,
                "description": "open ones: the target's last stored probe",
            },
            "suppressed_by": {
                "anyOf": [{"type": "array", "items": {"type": "string"}}, {"type": "null"}],
                "description": "the parents (depends_on) that were DOWN when it began: its"
                " `down` was not paged then; null: none",
            },
            "paged": {
                **_NULLABLE_TIME,
                "description": "when its page went out (null: held or suppressed so far)",
            },
            "unobserved": {
                "type": "boolean",
                "description": "open, but its target is not probed any more: no data since"
                " last_seen, and duration_s stops there",
            },
        }
    ),
    "IncidentList": _object(
        {
            "since": _TIME,
            "until": _TIME,
            "incidents": {"type": "array", "items": _ref("Incident")},
            "truncated": {
                "type": "boolean",
                "description": "incidents that started earlier were left out",
            },
            "groups": {
                "type": "array",
                "items": _ref("OutageGroup"),
                "description": "the targets DOWN now, grouped by shared cause as storm"
                " grouping groups their downs ([alerts] group_by, group_min); empty when"
                " grouping is off. Their open incidents are in `incidents` too",
            },
        }
    ),
    "OutageGroup": _object(
        {
            "cause": {"type": "string", "description": '"network 10.1.2.0/24"'},
            "detail": {
                "type": "string",
                "description": '"14 targets on 10.1.2.0/24 failing with connect:'
                ' connection refused"',
            },
            "count": {"type": "integer", "minimum": 2},
            "members": {"type": "array", "items": {"type": "string"}},
        }
    ),
}


def _json_content(schema: Schema) -> Schema:
    return {"application/json": {"schema": schema}}


def _error_response(description: str) -> Schema:
    return {"description": description, "content": _json_content(_ref("Error"))}


_UNAUTHORIZED = {
    **_error_response("with [server] token set: no or a wrong bearer token"),
    "headers": {"WWW-Authenticate": {"schema": {"type": "string"}}},
}
_MISDIRECTED = _error_response(
    "without [server] token: the Host header names no address or name this server answers for"
)
_DEFAULT = _error_response("any other error (405 method not allowed, 500 internal error)")
_NAME = {
    "name": "name",
    "in": "path",
    "required": True,
    "schema": {"type": "string"},
    "description": "the target's name, percent-encoded (a '/' in it as %2F)",
}
_RANGE = [
    {
        "name": key,
        "in": "query",
        "required": False,
        "schema": {"type": "string"},
        "description": f"a duration back from now (24h, 7d) or an RFC 3339 time; default {default}",
    }
    for key, default in (("since", DEFAULT_SINCE), ("until", "now"))
]
_LIMIT = {
    "name": "limit",
    "in": "query",
    "required": False,
    "schema": {"type": "integer", "minimum": 1, "maximum": MAX_ROWS},
    "description": f"rows at most (default and maximum {MAX_ROWS}): the newest, `truncated` "
    "when there were more",
}
_LABEL = {
    "name": "label",
    "in": "query",
    "required": False,
    "schema": {"type": "array", "items": {"type": "string", "pattern": "^[A-Za-z_][A-Za-z0-9_]*="}},
    "style": "form",
    "explode": True,
    "description": "NAME=VALUE (team=payments): only targets with that label value; "
    "repeatable, all must match",
}
_BAD_INPUT = _error_response("malformed since, until or limit, or since not before until")
_NO_HISTORY = _error_response("unknown target, or history is disabled")
_UNAVAILABLE = _error_response("the history file cannot be read now")


_TO_LOGIN = {
    "description": "a browser (Accept: text/html) without a session: to the login form",
    "headers": {"Location": {"schema": {"type": "string"}}},
}
_HTML = {"text/html": {"schema": {"type": "string"}}}
_SESSION = {
    "Set-Cookie": {
        "schema": {"type": "string"},
        "description": "the session cookie: HttpOnly, SameSite=Strict, Path=/",
    },
    "Location": {"schema": {"type": "string"}},
}
_FOREIGN = _error_response("the Origin is another site's")


def _login_paths() -> Schema:
    """The browser login (server/login.py): there only with a token."""
    return {
        "/login": {
            "get": {
                "summary": "Login form",
                "security": [],
                "responses": {
                    "200": {"description": "the form (HTML)", "content": _HTML},
                    "default": _DEFAULT,
                },
            },
            "post": {
                "summary": "Log in: the token for a session cookie",
                "security": [],
                "requestBody": {
                    "required": True,
                    "content": {
                        "application/x-www-form-urlencoded": {
                            "schema": {
                                "type": "object",
                                "properties": {"token": {"type": "string"}},
                                "required": ["token"],
                            }
                        }
                    },
                },
                "responses": {
                    "303": {"description": "logged in: to the status page", "headers": _SESSION},
                    "401": {"description": "a wrong token: the form again", "content": _HTML},
                    "403": _FOREIGN,
                    "413": _error_response("the form is too large"),
                    "default": _DEFAULT,
                },
            },
        },
        "/logout": {
            "post": {
                "summary": "Log out: clear the session cookie",
                "security": [],
                "responses": {
                    "303": {"description": "logged out: to the login form", "headers": _SESSION},
                    "403": _FOREIGN,
                    "default": _DEFAULT,
                },
            }
        },
    }


_PUSHED = {
    "200": {"description": "noted", "content": {"text/plain": {"schema": {"const": "OK\n"}}}},
    "404": _error_response("no push target has this token (nothing says which exist)"),
    "413": _error_response("a body over 1 MiB (a body is read and ignored): not noted"),
    "default": _DEFAULT,
}
_TOKEN = {
    "name": "token",
    "in": "path",
    "required": True,
    "schema": {"type": "string"},
    "description": "the push target's own token (`trio-monitor push-urls`)",
}


def _push_paths() -> Schema:
    """A push target's pings: GET or POST (the body is ignored); its token, never the
    bearer token, and any Host."""
    ping = {"security": [], "parameters": [_TOKEN], "responses": _PUSHED}
    event = {
        "name": "event",
        "in": "path",
        "required": True,
        "schema": {
            "anyOf": [{"enum": ["start", "fail"]}, {"type": "string", "pattern": "^[0-9]{1,3}$"}]
        },
        "description": "start: a run began (its end, a ping, records the run time); fail:"
        " it failed; 0-255: its exit code (0 success, else failure)",
    }
    return {
        f"{API}/push/{{token}}": {
            method: {"summary": "Ping: a push target's job ran", **ping}
            for method in ("get", "post")
        },
        f"{API}/push/{{token}}/{{event}}": {
            method: {
                "summary": "A push target's job started, failed, or exited with a code",
                **ping,
                "parameters": [_TOKEN, event],
            }
            for method in ("get", "post")
        },
    }


_SILENCE_WRITE = _error_response("no [server] token is set: silences cannot be managed")


def _silence_paths(secured: Schema, token: bool) -> Schema:
    """Runtime silences and the maintenance view (server/silences.py); writing needs a
    token: without one, POST and DELETE answer 403."""
    refused = {} if token else {"403": _SILENCE_WRITE}
    ok = {"description": "the silence", "content": _json_content(_ref("Silence"))}
    return {
        f"{API}/silences": {
            **_get(
                "Silences not over yet, oldest first",
                {
                    "200": {"description": "ok", "content": _json_content(_ref("SilenceList"))},
                    **secured,
                },
            ),
            "post": {
                "summary": "Add a silence",
                "requestBody": {"required": True, "content": _json_content(_ref("NewSilence"))},
                "responses": {
                    "201": {**ok, "description": "added"},
                    "400": _error_response("a bad body: one line says what"),
                    **refused,
                    "413": _error_response("a body over 64 KiB"),
                    "503": _error_response("the history file cannot be written now"),
                    **secured,
                    "default": _DEFAULT,
                },
            },
        },
        f"{API}/silences/{{id}}": {
            "delete": {
                "summary": "Expire a silence now",
                "parameters": [
                    {"name": "id", "in": "path", "required": True, "schema": {"type": "string"}}
                ],
                "responses": {
                    "200": {**ok, "description": "the silence as it ended"},
                    **refused,
                    "404": _error_response("no such silence, or it is over"),
                    "503": _error_response("the history file cannot be written now"),
                    **secured,
                    "default": _DEFAULT,
                },
            }
        },
        f"{API}/maintenance": _get(
            "Maintenance windows holding now or starting within 7 days, and silences",
            {
                "200": {"description": "ok", "content": _json_content(_ref("Maintenance"))},
                **secured,
            },
        ),
    }


def _get(summary: str, responses: Schema, **extra: Any) -> Schema:
    return {"get": {"summary": summary, **extra, "responses": {**responses, "default": _DEFAULT}}}


def openapi_document(server: ServerSection, *, silences: bool = True) -> Schema:
    """The OpenAPI 3.1 description of the server as configured (auth included);
    `silences`: served (a monitor behind the server: always but in tests)."""
    secured = {"401": _UNAUTHORIZED} if server.token is not None else {"421": _MISDIRECTED}
    public = secured if server.token is None or not server.public_status_page else {}
    svg = {
        "description": "an SVG badge",
        "content": {"image/svg+xml": {"schema": {"type": "string"}}},
    }
    paths = {
        "/": _get(
            "Status page",
            {
                "200": {
                    "description": "a self-contained HTML page that calls /api/v1/targets",
                    "content": {"text/html": {"schema": {"type": "string"}}},
                },
                **public,
                **({"303": _TO_LOGIN} if "401" in public else {}),
            },
        ),
        "/healthz": _get(
            "Health check (never needs a token)",
            {
                "200": {"description": "healthy", "content": _json_content(_ref("Health"))},
                "503": {"description": "unhealthy", "content": _json_content(_ref("Health"))},
            },
            security=[],
        ),
        "/metrics": _get(
            "Prometheus metrics",
            {
                "200": {
                    "description": "the Prometheus text format",
                    "content": {"text/plain": {"schema": {"type": "string"}}},
                },
                **secured,
            },
        ),
        f"{API}/targets": _get(
            "Every target's state (or those with the labels asked for)",
            {
                "200": {"description": "ok", "content": _json_content(_ref("TargetList"))},
                "400": _error_response("a label filter that is not NAME=VALUE"),
                **secured,
            },
            parameters=[_LABEL],
        ),
        f"{API}/targets/{{name}}": _get(
            "One target, with its recent probes",
            {
                "200": {"description": "ok", "content": _json_content(_ref("TargetDetail"))},
                "404": _error_response("unknown target"),
                **secured,
            },
            parameters=[_NAME],
        ),
        f"{API}/targets/{{name}}/history": _get(
            "A target's probes in [since, until), oldest first (the newest `limit`)",
            {
                "200": {"description": "ok", "content": _json_content(_ref("History"))},
                "400": _BAD_INPUT,
                "404": _NO_HISTORY,
                "503": _UNAVAILABLE,
                **secured,
            },
            parameters=[_NAME, *_RANGE, _LIMIT],
        ),
        f"{API}/targets/{{name}}/artifacts/{{file}}": _get(
            "A failed browser probe's screenshot (PNG) or console log (text)",
            {
                "200": {
                    "description": "the file",
                    "content": {
                        "image/png": {
                            "schema": {"type": "string", "contentMediaType": "image/png"}
                        },
                        "text/plain": {"schema": {"type": "string"}},
                    },
                },
                "404": _error_response("unknown target, or no such artifact of it"),
                **secured,
            },
            parameters=[
                _NAME,
                {
                    "name": "file",
                    "in": "path",
                    "required": True,
                    "schema": {
                        "type": "string",
                        "pattern": f"^{FILE_NAME.pattern}$",
                    },
                    "description": "the file name of `browser.screenshot` or `browser.console_log`",
                },
            ],
        ),
        f"{API}/incidents": _get(
            "Outages overlapping [since, until), by start",
            {
                "200": {"description": "ok", "content": _json_content(_ref("IncidentList"))},
                "400": _BAD_INPUT,
                "404": _error_response("history is disabled"),
                "503": _UNAVAILABLE,
                **secured,
            },
            parameters=[
                *_RANGE,
                _LIMIT,
                {
                    "name": "target",
                    "in": "query",
                    "required": False,
                    "schema": {"type": "string"},
                    "description": "only this target's incidents",
                },
            ],
        ),
        f"{API}/badges/{{name}}/status.svg": _get(
            'Badge: "up", "down" or "unknown"',
            {"200": svg, "404": _error_response("unknown target"), **public},
            parameters=[_NAME],
        ),
        f"{API}/badges/{{name}}/uptime.svg": _get(
            "Badge: availability over the last 24 hours",
            {"200": svg, "404": _error_response("unknown target"), **public},
            parameters=[_NAME],
        ),
        f"{API}/cluster": _get(
            "Cluster mode: the members, locations, this node's targets, leases, lag, Redis",
            {
                "200": {
                    "description": "ok; null when this process is not a cluster node",
                    "content": _json_content({"oneOf": [_ref("Cluster"), {"type": "null"}]}),
                },
                **secured,
            },
        ),
        f"{API}/openapi.json": _get(
            "This document",
            {
                "200": {
                    "description": "OpenAPI 3.1",
                    "content": _json_content({"type": "object"}),
                },
                **secured,
            },
        ),
    }
    paths |= _push_paths()
    if silences:
        paths |= _silence_paths(secured, server.token is not None)
    if server.token is not None:
        paths |= _login_paths()
    if server.public_status_page:
        for path in ("/", f"{API}/badges/{{name}}/status.svg", f"{API}/badges/{{name}}/uptime.svg"):
            paths[path]["get"]["security"] = []
    document: Schema = {
        "openapi": "3.1.0",
        "info": {
            "title": "trio-monitor",
            "version": "1",
            "description": "The HTTP API of a running trio-monitor. Errors are "
            '{"error": "..."}; fields are only ever added within /api/v1.',
        },
        "paths": paths,
        "components": {"schemas": _SCHEMAS},
    }
    if server.token is not None:
        document["components"]["securitySchemes"] = {
            "bearerAuth": {"type": "http", "scheme": "bearer"},
            "sessionCookie": {"type": "apiKey", "in": "cookie", "name": COOKIE},
        }
        document["security"] = [{"bearerAuth": []}, {"sessionCookie": []}]
    return document
