"""Alert text for people: the summary line, the template sandbox and the presets.

Templates (a webhook's `template`, Apprise's `title` and `body`) are Jinja2 templates
run in its immutable sandbox: no attribute starting with "_", no method that changes
a value, no access to anything but the alert's own fields, autoescape off (the output
is a request body, not HTML) and an unknown name an error, not an empty string. They
are compiled once, at config load (`check`): a syntax error, an unknown field or an
access the sandbox refuses is one config error line. A template that fails at run time
(say, arithmetic on a field that is null for that event) fails that alert, once.

The presets are templates too (PRESETS): the JSON each service documents for its
incoming webhooks, ntfy's plain body with its Title, Priority and Tags headers. A user
who wants more can start from one of them.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import attrs
from attrs import frozen

from .._config import human_duration
from .._records import AlertEvent, rfc3339, to_line

if TYPE_CHECKING:
    import jinja2
    from jinja2.sandbox import ImmutableSandboxedEnvironment


@functools.cache
def _env() -> ImmutableSandboxedEnvironment:
    """The one sandbox; Jinja2 imported on first use (30 ms a start saved without templates)."""
    import jinja2
    from jinja2.sandbox import ImmutableSandboxedEnvironment

    env = ImmutableSandboxedEnvironment(autoescape=False, undefined=jinja2.StrictUndefined)
    # tojson keeps the fields' order and writes non-ASCII text as it is
    env.policies["json.dumps_kwargs"] = {"sort_keys": False, "ensure_ascii": False}
    return env


# what a template may read besides the alert's own fields (attrs.fields of AlertEvent)
EXTRA = ("key", "time", "since_time", "downtime", "title", "summary", "json")

# a sample, for the check at load: the sandbox refuses what it refuses whatever the alert
_SAMPLE = AlertEvent(
    ts=0.0, target="api", url="http://127.0.0.1/", event="down", reason="connect", detail="refused"
)


class TemplateError(ValueError):
    """A template that cannot be used: its message is one user-facing line."""


def title(alert: AlertEvent) -> str:
    """ "DOWN api": the event in capitals and the target."""
    return f"{alert.event.upper()} {alert.target}"


def _details(alert: AlertEvent) -> list[str]:
    """What follows the title in the summary, per event."""
    match alert.event:
        case "up" if alert.downtime_s is not None:
            return [f"down for {human_duration(alert.downtime_s)}"]
        case "slow" if alert.latency_ms is not None:
            return [f"{alert.latency_ms:.0f} ms (slow above {alert.slow_ms or 0:.0f} ms)"]
        case "flapping" | "flap_end" if alert.changes is not None:
            return [f"{alert.changes} changes", *([alert.state] if alert.state else [])]
        case "cert_expiring" if alert.days_left is not None:
            return [f"certificate expires in {alert.days_left:.1f} days"]
        case "reminder" if alert.since is not None:
            still = f"still down after {human_duration(alert.ts - alert.since)}"
            return [still, *(part for part in (alert.reason, alert.detail) if part)]
        case "group_down" | "group_up" if alert.cause:
            return [alert.cause]
    return [part for part in (alert.reason, alert.detail) if part]


def summary(alert: AlertEvent) -> str:
    """One line for people: "DOWN api: connect: connection refused"."""
    return ": ".join([title(alert), *_details(alert)])


def context(alert: AlertEvent) -> dict[str, Any]:
    """What a template sees: the alert's fields as they are (times as unix seconds),
    its key, its times for people, the summary and the JSON line."""
    return {
        **attrs.asdict(alert),
        "key": alert.key,
        "time": rfc3339(alert.ts),
        "since_time": None if alert.since is None else rfc3339(alert.since),
        "downtime": None if alert.downtime_s is None else human_duration(alert.downtime_s),
        "title": title(alert),
        "summary": summary(alert),
        "json": to_line(alert),
    }


def _names() -> frozenset[str]:
    return frozenset(f.name for f in attrs.fields(AlertEvent)) | set(EXTRA)


@functools.lru_cache(maxsize=256)
def compile_template(text: str) -> jinja2.Template:
    """The template, compiled once per text (equal configs share it); TemplateError
    with one line for a syntax error, an unknown field or an access the sandbox refuses."""
    import jinja2
    from jinja2 import meta
    from jinja2.sandbox import SecurityError

    env = _env()
    try:
        unknown = sorted(meta.find_undeclared_variables(env.parse(text)) - _names())
        template = env.from_string(text)
    except jinja2.TemplateSyntaxError as exc:
        raise TemplateError(f"{exc.message} (line {exc.lineno})") from None
    if unknown:
        known = ", ".join(sorted(_names()))
        raise TemplateError(f"unknown field {unknown[0]!r} (an alert has {known})")
    try:
        template.render(context(_SAMPLE))
    except SecurityError as exc:
        raise TemplateError(f"refused by the sandbox: {exc}") from None
    except Exception:
        pass  # fields this sample leaves null; such an alert fails at run time, alone
    return template


def render(template: jinja2.Template, alert: AlertEvent) -> str:
    """The template for this alert; TemplateError with one line if it fails."""
    try:
        return template.render(context(alert))
    except Exception as exc:  # the template's own error: its alert fails, nothing else
        raise TemplateError(f"{type(exc).__name__}: {exc}") from None


def check(text: str | None, key: str, problems: list[str]) -> None:
    """At config load: a template that cannot be used is one problem naming `key`."""
    if text is not None:
        try:
            compile_template(text)
        except TemplateError as exc:
            problems.append(f"{key}: {exc}")


@frozen
class Preset:
    """A service's request: its body template, content type and header templates."""

    body: str
    content_type: str = "application/json"
    headers: Mapping[str, str] = attrs.field(factory=dict)


_ADAPTIVE_CARD = """{"type": "message", "attachments": [{\
"contentType": "application/vnd.microsoft.card.adaptive", "contentUrl": null, "content": {\
"$schema": "http://adaptivecards.io/schemas/adaptive-card.json", "type": "AdaptiveCard", \
"version": "1.2", "body": [\
{"type": "TextBlock", "text": {{ title | tojson }}, "weight": "Bolder", "size": "Medium", \
"wrap": true}, \
{"type": "TextBlock", "text": {{ summary | tojson }}, "wrap": true}]}}]}"""

# ntfy: 5 "urgent" for an outage, 4 "high" for what needs a look soon, 3 the rest
_NTFY_PRIORITY = (
    "{{ 'urgent' if event == 'down' else 'high' if event in "
    "('cert_expiring', 'flapping', 'slow') else 'default' }}"
)
_NTFY_TAGS = (
    "{{ 'rotating_light' if event == 'down' else 'white_check_mark' if event == 'up' "
    "else 'warning' }},{{ event }}"
)

PRESETS: dict[str, Preset] = {
    # Slack incoming webhooks: "text" (mrkdwn), the notification's text too
    "slack": Preset('{"text": {{ summary | tojson }}}'),
    # Discord's execute webhook: "content" (at most 2,000 characters); no mentions
    # parsed, so a target's error text cannot ping @everyone
    "discord": Preset(
        '{"content": {{ summary[:2000] | tojson }}, "allowed_mentions": {"parse": []}}'
    ),
    # Teams workflows (and the connectors before them): a message with an Adaptive Card
    "teams": Preset(_ADAPTIVE_CARD),
    # Mattermost's incoming webhooks: "text" (Markdown)
    "mattermost": Preset('{"text": {{ summary | tojson }}}'),
    # Google Chat's incoming webhooks: "text"
    "google_chat": Preset(
        '{"text": {{ summary | tojson }}}', content_type="application/json; charset=UTF-8"
    ),
    # ntfy: the message is the plain body, the rest headers
    "ntfy": Preset(
        "{{ summary }}",
        content_type="text/plain; charset=utf-8",
        headers={"title": "{{ title }}", "priority": _NTFY_PRIORITY, "tags": _NTFY_TAGS},
    ),
}
