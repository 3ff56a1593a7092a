"""`trio-monitor import gatus FILE [-o OUT]`: a Gatus config.yaml as our TOML.

Gatus's endpoints become `[[targets]]` (the kind from the URL scheme, as Gatus chooses
its endpoint type), its external endpoints push targets. What has no counterpart here
(alerting providers, the UI, maintenance windows, SSH endpoints, OAuth2 clients...)
becomes a `# gatus:` comment, beside its target or at the top for global sections, so
nothing is dropped silently. Conditions are copied as they are (our conditions use
Gatus's syntax), except those naming a placeholder the target's kind does not have.

The TOML is written by tomli-w (always valid TOML); the comments are added between
the tables it wrote. The result is then checked by our own loader, as `validate` does.
"""

from __future__ import annotations

import argparse
import datetime
import ipaddress
import json
import math
import os
import re
import sys
from collections.abc import Iterable, Mapping
from typing import Any
from urllib.parse import urlsplit

import attrs
import tomli_w

from .._config import _ENV as _ENV_REF  # our ${NAME}, as the config expands it
from .._config import format_duration, parse_config
from .._errors import ConfigError, UsageError
from ..conditions import UNSUPPORTED
from ..probes import base as probe_kinds

GATUS_DEFAULT_INTERVAL = "1m"  # endpoints[].interval's default (README "Endpoints")
GATUS_DEFAULT_LISTEN = "0.0.0.0:8080"  # web.address, web.port defaults (README "Web")
OUR_LISTEN = "127.0.0.1:9180"
STDOUT = "<stdout>"

DNS_RECORD_TYPES = frozenset({"A", "AAAA", "CNAME", "MX", "TXT", "NS", "SOA", "SRV", "CAA"})

# Gatus endpoint types (config/endpoint/endpoint.go Type(): by URL prefix) -> our kind
_SCHEMES = {
    "http": "http",
    "https": "http",
    "tcp": "tcp",
    "tls": "tls",
    "starttls": "tls",
    "icmp": "icmp",
    "ws": "ws",
    "wss": "ws",
}
_UNSUPPORTED_SCHEMES = {
    "udp": "UDP endpoints have no trio-monitor kind",
    "sctp": "SCTP endpoints have no trio-monitor kind",
    "ssh": "SSH endpoints (a command run over SSH) have no trio-monitor kind",
    "grpc": "gRPC health checks have no trio-monitor kind",
    "grpcs": "gRPC health checks have no trio-monitor kind",
}
# Gatus's STARTTLS speaks SMTP whatever the port (client.CanPerformStartTLS);
# port 143 can only have meant IMAP
_STARTTLS_BY_PORT = {143: "imap"}

# top-level Gatus keys we do not map, and why
_GLOBAL_SKIPS = {
    "alerting": 'alert providers: use [[alerts.webhook]] or [[alerts.exec]] (README "[alerts]")',
    "security": 'basic/OIDC auth of the dashboard: use [server] token (README "[server]")',
    "storage": 'trio-monitor keeps its own SQLite history (README "[storage]")',
    "ui": "the dashboard's look: trio-monitor's status page has no such settings",
    "announcements": "announcements have no counterpart",
    "maintenance": "maintenance windows have no counterpart",
    "tunneling": "SSH tunnels have no counterpart",
    "connectivity": "the connectivity checker has no counterpart",
    "remote": "remote instances have no counterpart",
    "suites": "suites (chained endpoints) have no counterpart",
    "concurrency": "[monitor] concurrency (default 200) limits probes in flight instead",
    "disable-monitoring-lock": "probes never wait for each other here",
    "skip-invalid-config-update": "a bad reload is always refused here (SIGHUP)",
    "metrics": "[server] always serves /metrics",
    "debug": "no counterpart",
}
_GATUS_KEYS = frozenset({"endpoints", "external-endpoints", "web", *_GLOBAL_SKIPS})

# endpoint keys with nothing to map to, and why
_ENDPOINT_SKIPS = {
    "alerts": "per-endpoint alerts: trio-monitor alerts on every target through [alerts]",
    "maintenance-windows": "maintenance windows have no counterpart",
    "ui": "dashboard display settings have no counterpart",
    "extra-labels": "metrics labels are the target's name here",
    "ssh": "SSH endpoints have no counterpart",
    "store": "suites have no counterpart",
    "always-run": "suites have no counterpart",
}
_CLIENT_SKIPS = {
    "oauth2": "OAuth2 client credentials are not fetched: set bearer_token or headers",
    "identity-aware-proxy": "Google IAP tokens are not fetched: set bearer_token",
    "tunnel": "SSH tunnels have no counterpart",
    "store-cookies": "cookies are never stored between probes",
}
# where trio-monitor expands ${ENV}: header values (and credentials, proxy, file paths)
_EXPANDED_KEYS = frozenset({"headers", "proxy", "client_cert", "client_key"})

_GO_DURATION = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|μs|ms|s|m|h)")
_GO_UNITS = {
    "ns": 1e-9,
    "us": 1e-6,
    "µs": 1e-6,
    "μs": 1e-6,
    "ms": 1e-3,
    "s": 1.0,
    "m": 60.0,
    "h": 3600.0,
}
_ENV = re.compile(r"\$(?:\$|\{([A-Za-z_][A-Za-z0-9_]*)\}|([A-Za-z_][A-Za-z0-9_]*))")
_PLACEHOLDER = re.compile(r"\[([A-Z_]+)\]")
# what a TOML comment may not hold (TOML 1.0: control characters but tab)
_CONTROL = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")


class _Skip(Exception):
    """An endpoint that cannot be converted: the reason is its comment."""


@attrs.define
class _Out:
    """One converted (external) endpoint: a target, or none, and its comments."""

    target: dict[str, Any] | None
    kind: str | None = None
    notes: list[str] = attrs.Factory(list)
    disabled: bool = False


@attrs.frozen
class Conversion:
    text: str  # the TOML, with comments
    document: dict[str, Any]  # what the TOML holds, for validation
    env: tuple[str, ...]  # ${ENV} names the result refers to where we expand them


def _gatus_env(text: str) -> str:
    """Gatus's `$NAME`, `${NAME}` and `$$` (a `$`) as ours: `${NAME}`, and `$`."""

    def one(match: re.Match[str]) -> str:
        name = match.group(1) or match.group(2)
        return "$" if name is None else "${" + name + "}"

    return _ENV.sub(one, text)


def _env_strings(value: object) -> Iterable[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, Mapping):
        for item in value.values():
            yield from _env_strings(item)
    elif isinstance(value, list):
        for item in value:
            yield from _env_strings(item)


def _go_duration(value: object, key: str) -> str:
    """A Go duration ("1m30s", "500ms", "1.5h") in our notation."""
    text = str(value).strip()
    parts = _GO_DURATION.findall(text)
    if not parts or "".join(n + u for n, u in parts) != text:
        raise _Skip(f"{key}: {value!r} is not a Go duration")
    seconds = sum(float(n) * _GO_UNITS[u] for n, u in parts)
    if not math.isfinite(seconds):  # more digits than a float holds
        raise _Skip(f"{key}: {value!r} is too long")
    if seconds < 0.001:
        raise _Skip(f"{key}: {value!r} is shorter than a millisecond")
    return format_duration(round(seconds, 3))


def _text(value: object) -> str:
    """A YAML value as text: a string as it is; a date as written (YAML reads an unquoted
    `2024-01-01` as one); anything else as JSON, what JSON has no form for (`!!binary`,
    `!!set`) as Python shows it."""
    if isinstance(value, str):
        return value
    if isinstance(value, datetime.date):
        return value.isoformat()
    return json.dumps(value, default=str)


def _mapping(value: object, key: str) -> Mapping[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise _Skip(f"{key}: expected a mapping, got {_text(value)}")
    return value


# --- endpoints -------------------------------------------------------------------


def _kind_and_url(ep: Mapping[str, Any], target: dict[str, Any], notes: list[str]) -> str:
    """Our kind for a Gatus endpoint, and `target`'s url (and the keys its scheme means)."""
    url = _gatus_env(_text(ep.get("url", "")).strip())
    if "dns" in ep:  # Gatus: a `dns` mapping makes it a DNS endpoint, `url` its server
        dns = _mapping(ep["dns"], "dns")
        name = _text(dns.get("query-name", "")).strip()
        record = _text(dns.get("query-type", "")).strip().upper()
        if not name:
            raise _Skip("dns.query-name is missing")
        if record not in DNS_RECORD_TYPES:
            known = ", ".join(sorted(DNS_RECORD_TYPES))
            raise _Skip(f"dns.query-type {record or '(none)'}: the dns kind queries {known}")
        target["url"] = f"dns://{name}"
        target["record_type"] = record
        if url:
            target["resolver"] = _resolver(url, "url (the DNS server)")
        return "dns"
    scheme = url.partition("://")[0].lower() if "://" in url else ""
    if scheme in _UNSUPPORTED_SCHEMES:
        raise _Skip(_UNSUPPORTED_SCHEMES[scheme])
    if scheme not in _SCHEMES:
        raise _Skip(f"url {url!r}: not a URL Gatus monitors" if url else "no url")
    kind = _SCHEMES[scheme]
    if scheme == "starttls":
        rest = url.partition("://")[2]
        port = urlsplit(f"//{rest}").port
        protocol = _STARTTLS_BY_PORT.get(port or 0, "smtp")
        url = f"tls://{rest}"
        target["starttls"] = protocol
        notes.append(
            f"starttls:// became tls:// with starttls = {protocol!r}"
            + (
                " (port 143)"
                if protocol == "imap"
                else " (Gatus speaks SMTP on every starttls:// endpoint)"
            )
        )
    target["url"] = url
    return kind


def _resolver(value: str, key: str) -> str:
    """Gatus's `{proto}://{host}:{port}` (or a DNS endpoint's server) as "IP[:PORT]"."""
    text = value.partition("://")[2] if "://" in value else value
    host = text.rsplit(":", 1)[0] if text.count(":") == 1 else text
    try:
        ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        raise _Skip(f"{key} {value!r}: trio-monitor's resolver must be an IP address") from None
    return text


def _body(ep: Mapping[str, Any], kind: str, target: dict, notes: list[str]) -> None:
    """`body` (and `graphql`) as ours: `body` or `json` for HTTP, `send` for the rest."""
    body = ep.get("body")
    if body is None or body == "":
        return
    body = _text(body)
    for placeholder, value in (
        ("[ENDPOINT_NAME]", target["name"]),
        ("[ENDPOINT_GROUP]", target.get("group", "")),
        ("[ENDPOINT_URL]", target.get("url", "")),
    ):
        body = body.replace(placeholder, value)
    if re.search(r"\[(LOCAL_ADDRESS|RANDOM_STRING_\d+)\]", body):
        notes.append("body: [LOCAL_ADDRESS] and [RANDOM_STRING_N] are sent as they are")
    if kind != "http":
        target["send"] = body
        return
    if ep.get("graphql") is True:
        target["json"] = {"query": body}
        return
    content_type = next(
        (str(v) for k, v in target.get("headers", {}).items() if k.lower() == "content-type"), ""
    )
    parsed = _json_table(body) if "json" in content_type.lower() else None
    if parsed is None:
        target["body"] = body
    else:
        target["json"] = parsed


def _json_table(text: str) -> dict | None:
    """A JSON object that TOML can hold (no null anywhere), else None (sent as `body`)."""
    try:
        value = json.loads(text)
    except ValueError:
        return None
    return value if isinstance(value, dict) and _tomlable(value) else None


def _tomlable(value: object) -> bool:
    if value is None:
        return False
    if isinstance(value, dict):
        return all(_tomlable(v) for v in value.values())
    if isinstance(value, list):
        return all(_tomlable(v) for v in value)
    return True


def _client(ep: Mapping[str, Any], kind: str, target: dict, notes: list[str]) -> None:
    client = _mapping(ep.get("client"), "client")
    for key, value in client.items():
        if key == "timeout":
            target["timeout"] = _go_duration(value, "client.timeout")
        elif key == "insecure":
            if value is True and kind in ("http", "tls", "ws"):
                target["verify_tls"] = False
        elif key == "ignore-redirect":
            if value is True and kind == "http":
                target["follow_redirects"] = False
        elif key == "dns-resolver":
            if kind != "dns" and value:
                target["resolver"] = _resolver(_text(value), "client.dns-resolver")
                if _text(value).lower().startswith("tcp://"):
                    notes.append(
                        "client.dns-resolver: asked over UDP first (TCP when truncated), not TCP only"
                    )
        elif key == "proxy-url" and kind == "http":
            if value:
                target["proxy"] = _gatus_env(_text(value))
        elif key == "network" and kind == "icmp":
            family = {"ip4": "ipv4", "ip6": "ipv6"}.get(_text(value))
            if family:
                target["ip_family"] = family
        elif key == "tls" and kind == "http":
            _client_tls(_mapping(value, "client.tls"), target, notes)
        elif key in _CLIENT_SKIPS:
            if value:
                notes.append(f"client.{key} not imported: {_CLIENT_SKIPS[key]}")
        else:
            notes.append(f"client.{key} not imported: no counterpart for kind {kind}")


def _client_tls(tls: Mapping[str, Any], target: dict, notes: list[str]) -> None:
    for key, value in tls.items():
        ours = {"certificate-file": "client_cert", "private-key-file": "client_key"}.get(key)
        if ours and value:
            target[ours] = _gatus_env(_text(value))
        elif key == "renegotiation":
            if value and value != "never":
                notes.append("client.tls.renegotiation not imported: TLS renegotiation is off")
        elif value:
            notes.append(f"client.tls.{key} not imported: no counterpart")


def _conditions(ep: Mapping[str, Any], kind: str, target: dict, notes: list[str]) -> None:
    raw = ep.get("conditions") or []
    if not isinstance(raw, list):
        raise _Skip(f"conditions: expected a list, got {_text(raw)}")
    offered = probe_kinds.get(kind).placeholders
    kept = []
    for item in raw:
        condition = _text(item)
        missing = [
            p
            for p in _PLACEHOLDER.findall(condition)
            if p not in offered and p not in ("LOCAL_ADDRESS",)
        ]
        if not missing:
            kept.append(condition)
            continue
        why = UNSUPPORTED.get(missing[0], f"kind {kind} has no [{missing[0]}]")
        notes.append(f"condition {condition!r} not imported: {why}")
    if kept:
        target["conditions"] = kept


def _headers(ep: Mapping[str, Any], kind: str, target: dict, notes: list[str]) -> None:
    headers = _mapping(ep.get("headers"), "headers")
    if not headers:
        return
    if kind in ("http", "ws"):
        target["headers"] = {str(k): _gatus_env(_text(v)) for k, v in headers.items()}
    else:
        notes.append(f"headers not imported: a {kind} probe sends none (as in Gatus)")


def _name(ep: Mapping[str, Any], index: int) -> str:
    name = ep.get("name")
    return f"endpoint-{index + 1}" if name is None or name == "" else _text(name)


def _endpoint(ep: Mapping[str, Any], index: int) -> _Out:
    notes: list[str] = []
    target: dict[str, Any] = {"name": _name(ep, index)}
    if ep.get("group"):
        target["group"] = _text(ep["group"])
    out = _Out(target=target, notes=notes, disabled=ep.get("enabled") is False)
    try:
        kind = out.kind = _kind_and_url(ep, target, notes)
        if "interval" in ep:
            target["interval"] = _go_duration(ep["interval"], "interval")
        method = _text(ep.get("method") or "GET").upper()
        if method != "GET":
            if kind == "http":
                target["method"] = method
            else:
                notes.append(f"method not imported: a {kind} probe has none (as in Gatus)")
        _headers(ep, kind, target, notes)
        _body(ep, kind, target, notes)
        _client(ep, kind, target, notes)
        _conditions(ep, kind, target, notes)
    except _Skip as exc:
        out.target = None
        url = f" ({_text(ep['url'])})" if ep.get("url") else ""
        notes.append(f"endpoint {target['name']!r}{url} not imported: {exc}")
        return out
    for key, why in _ENDPOINT_SKIPS.items():
        if ep.get(key):
            notes.append(f"{key} not imported: {why}")
    known = {"name", "group", "url", "enabled", "interval", "method", "headers", "body"}
    known |= {"graphql", "client", "conditions", "dns", *_ENDPOINT_SKIPS}
    notes.extend(f"{key} not imported: not a Gatus endpoint key" for key in ep if key not in known)
    return out


def _external(ep: Mapping[str, Any], index: int) -> _Out:
    """An external endpoint (pushed to Gatus) as a push target."""
    target: dict[str, Any] = {"name": _name(ep, index), "kind": "push"}
    if ep.get("group"):
        target["group"] = _text(ep["group"])
    notes = [
        "Gatus's token is not kept: trio-monitor gives each push target its own secret URL"
        " (trio-monitor push-urls -c FILE); ping it where you POSTed"
        " /api/v1/endpoints/KEY/external?success=true, and its /fail for success=false"
    ]
    out = _Out(target=target, kind="push", notes=notes, disabled=ep.get("enabled") is False)
    try:
        heartbeat = _mapping(ep.get("heartbeat"), "heartbeat")
        interval = heartbeat.get("interval")
        if interval and interval not in ("0", 0):
            target["expect_every"] = _go_duration(interval, "heartbeat.interval")
        else:
            target["expect_every"] = "1h"
            notes.append(
                "no heartbeat.interval in Gatus (a missing push was never a failure):"
                ' expect_every = "1h" here, set your own'
            )
    except _Skip as exc:
        out.target = None
        notes.append(f"external endpoint {target['name']!r} not imported: {exc}")
        return out
    for key in ("alerts", "maintenance-windows"):
        if ep.get(key):
            notes.append(f"{key} not imported: {_ENDPOINT_SKIPS[key]}")
    return out


def _unsupported_env(target: dict[str, Any], notes: list[str]) -> None:
    """${ENV} where we do not expand it (Gatus expands the whole file): say so."""
    for key, value in target.items():
        if key in _EXPANDED_KEYS:
            continue
        names = sorted({n for s in _env_strings(value) for n in _ENV_REF.findall(s)})
        if names:
            notes.append(
                f"{key} refers to ${{{names[0]}}}: trio-monitor expands ${{ENV}} only in header"
                " values, credentials, proxy and file paths; write the value here"
            )


# --- the document ----------------------------------------------------------------


def _server(web: object, notes: list[str]) -> dict[str, Any]:
    if not isinstance(web, Mapping):
        notes.append(
            f"Gatus served its dashboard on {GATUS_DEFAULT_LISTEN}; [server] listens on"
            f" {OUR_LISTEN} (loopback) here: change listen to publish it"
        )
        return {"listen": OUR_LISTEN}
    address = _text(web.get("address") or "0.0.0.0")
    port = _text(web.get("port") or 8080)
    if ":" in address:
        address = f"[{address}]"
    for key in web:
        if key not in ("address", "port"):
            notes.append(f"web.{key} not imported: no counterpart in [server]")
    return {"listen": f"{address}:{port}"}


def _unique_names(outs: list[_Out]) -> None:
    """Gatus names are unique per group; ours across the file: "group/name" (Gatus's
    display name) for a name used twice."""
    counts: dict[str, int] = {}
    for out in outs:
        if out.target is not None:
            counts[out.target["name"]] = counts.get(out.target["name"], 0) + 1
    for out in outs:
        t = out.target
        if t is not None and counts[t["name"]] > 1 and t.get("group"):
            t["name"] = f"{t['group']}/{t['name']}"


_ORDER = (
    "name",
    "group",
    "kind",
    "url",
    "record_type",
    "starttls",
    "interval",
    "timeout",
    "method",
    "send",
    "body",
    "expect_every",
    "verify_tls",
    "follow_redirects",
    "resolver",
    "ip_family",
    "proxy",
    "client_cert",
    "client_key",
    "conditions",
    "headers",
    "json",
)


def _table(name: str, table: Mapping[str, Any]) -> str:
    """`[[name]]` with `table`'s keys in _ORDER: scalars and arrays first, then its
    sub-tables as `[name.key]` (tomli-w alone would write a short table inline)."""
    ordered = {k: table[k] for k in sorted(table, key=_ORDER.index)}
    flat = {k: v for k, v in ordered.items() if not isinstance(v, Mapping)}
    text = f"[[{name}]]\n" + tomli_w.dumps(flat)
    for key, value in ordered.items():
        if isinstance(value, Mapping):
            text += tomli_w.dumps({name: {key: value}})
    return text


def _comment(lines: Iterable[str]) -> str:
    """Each note one TOML comment line: what a note quotes from the YAML (a key, a value)
    may hold a line break, which would end the comment and write the rest as TOML, or
    another control character, which no TOML comment may hold: both escaped."""
    return "".join(f"# gatus: {_CONTROL.sub(_escaped, line)}\n" for line in lines)


def _escaped(match: re.Match[str]) -> str:
    return repr(match[0])[1:-1]


def _commented_out(text: str) -> str:
    return "".join(f"# {line}\n" if line else "#\n" for line in text.splitlines())


def _list(doc: Mapping[str, Any], key: str, source: str) -> list[Mapping[str, Any]]:
    value = doc.get(key) or []
    if not isinstance(value, list):
        raise ConfigError([f"{source}: {key}: expected a list, got {_text(value)[:60]}"])
    for i, item in enumerate(value):
        if not isinstance(item, Mapping):
            raise ConfigError([f"{source}: {key}[{i}]: expected a mapping, got {_text(item)[:60]}"])
    return value


def load_gatus(text: str, source: str) -> Mapping[str, Any]:
    """The YAML document, if it is a Gatus config; else ConfigError, one line."""
    import yaml  # only this command reads YAML: not loaded at every start-up

    try:
        doc = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}: " if mark is not None else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise ConfigError([f"{source}: {where}not valid YAML: {problem}"]) from None
    except ValueError as exc:  # PyYAML builds timestamps with datetime: 2001-02-30
        raise ConfigError([f"{source}: not valid YAML: {exc}"]) from None
    except RecursionError:  # PyYAML's composer recurses once per level
        raise ConfigError([f"{source}: not valid YAML: nested too deeply"]) from None
    if _recursive(doc, []):
        raise ConfigError([f"{source}: a YAML alias refers to a node it is inside of"])
    if not isinstance(doc, Mapping) or not (doc.get("endpoints") or doc.get("external-endpoints")):
        raise ConfigError(
            [f"{source}: not a Gatus config (no `endpoints` or `external-endpoints` list)"]
        )
    return doc


def _recursive(value: object, inside: list[int]) -> bool:
    """`value` holds itself: an alias to an enclosing node (`a: &x [*x]`), which every
    walk of the document (notes, ${ENV} references, JSON) would follow forever."""
    if not isinstance(value, (dict, list)):
        return False
    if id(value) in inside:
        return True
    inside.append(id(value))
    items = value.values() if isinstance(value, dict) else value
    found = any(_recursive(item, inside) for item in items)
    inside.pop()
    return found


def convert(text: str, source: str) -> Conversion:
    doc = load_gatus(text, source)
    outs = [_endpoint(ep, i) for i, ep in enumerate(_list(doc, "endpoints", source))]
    outs += [_external(ep, i) for i, ep in enumerate(_list(doc, "external-endpoints", source))]
    _unique_names(outs)
    top: list[str] = []
    for key in doc:
        if key in _GLOBAL_SKIPS:
            top.append(f"{key} not imported: {_GLOBAL_SKIPS[key]}")
        elif key not in _GATUS_KEYS:
            top.append(f"{key} not imported: not a Gatus key (YAML anchors in it were followed)")
    server = _server(doc.get("web"), top)
    monitor: dict[str, Any] = {"interval": GATUS_DEFAULT_INTERVAL}
    if any(o.kind == "http" for o in outs if o.target is not None):
        # Gatus judges a response by its conditions alone, whatever its status
        monitor["expect_status"] = ["100-599"]
    targets = [o.target for o in outs if o.target is not None and not o.disabled]
    chunks = [
        f"# trio-monitor configuration imported from Gatus's"
        f" {_CONTROL.sub(_escaped, os.path.basename(source))}.\n"
        "# Check it with: trio-monitor validate -c FILE\n",
        _comment(top),
        "\n",
        tomli_w.dumps({"monitor": monitor}),
        "\n",
        tomli_w.dumps({"server": server}),
    ]
    env: set[str] = set()
    for out in outs:
        chunks.append("\n")
        if out.target is None:
            chunks.append(_comment(out.notes))
            continue
        _unsupported_env(out.target, out.notes)
        table = _table("targets", out.target)
        if out.disabled:
            out.notes.insert(0, "disabled in Gatus (enabled: false): commented out")
            chunks.append(_comment(out.notes) + _commented_out(table))
            continue
        chunks.append(_comment(out.notes) + table)
        for key in _EXPANDED_KEYS & out.target.keys():
            env.update(n for s in _env_strings(out.target[key]) for n in _ENV_REF.findall(s))
    document = {"monitor": monitor, "server": server, "targets": targets}
    return Conversion("".join(chunks), document, tuple(sorted(env)))


# --- the command -----------------------------------------------------------------


def add_arguments(cmd: argparse.ArgumentParser) -> None:
    sources = cmd.add_subparsers(
        dest="source", metavar="SOURCE", required=True, parser_class=type(cmd)
    )
    gatus = sources.add_parser("gatus", help="a Gatus config.yaml")
    gatus.add_argument("file", help="the Gatus config file ('-': stdin)")
    gatus.add_argument("-o", "--output", default="-", help="where to write (default '-': stdout)")
    gatus.add_argument("-f", "--force", action="store_true", help="overwrite an existing file")


def _read(path: str) -> str:
    if path == "-":
        return sys.stdin.read()
    try:
        with open(path, encoding="utf-8") as file:
            return file.read()
    except FileNotFoundError:
        raise ConfigError([f"{path}: file not found"]) from None
    except UnicodeDecodeError as exc:
        raise ConfigError([f"{path}: not UTF-8 text ({exc.reason} at byte {exc.start})"]) from None
    except OSError as exc:
        raise ConfigError([f"{path}: cannot read: {exc.strerror or exc}"]) from None


def _write(path: str, text: str, force: bool) -> None:
    try:
        with open(path, "w" if force else "x", encoding="utf-8") as file:
            file.write(text)
    except FileExistsError:
        raise UsageError(f"{path} exists; use --force to overwrite it") from None
    except OSError as exc:
        raise UsageError(f"cannot write {path}: {exc.strerror or exc}") from None


def validate(conversion: Conversion, path: str) -> int:
    """Our loader's verdict on the result. ${ENV} names unset here get a stand-in value
    (they are for the machine that runs it) and are listed on stderr."""
    unset = [name for name in conversion.env if name not in os.environ]
    env = {**os.environ, **dict.fromkeys(unset, "set-me")}
    config = parse_config(conversion.document, env=env, path=path)
    if unset:
        print(f"{path}: set {', '.join(unset)} in the environment that runs it", file=sys.stderr)
    return len(config.targets)


def command(args: argparse.Namespace) -> int:
    source = "<stdin>" if args.file == "-" else args.file
    conversion = convert(_read(args.file), source)
    path = STDOUT if args.output == "-" else args.output
    if args.output == "-":
        sys.stdout.write(conversion.text)
        sys.stdout.flush()
    else:
        _write(args.output, conversion.text, args.force)
    count = validate(conversion, path)  # ConfigError: one line per problem, exit 2
    if args.output != "-":
        print(f"wrote {path} ({count} targets); next: trio-monitor validate -c {path}")
    return 0
