"""[[alerts.webhook]]: POST each alert to a URL: its JSON line, or a templated body.

Without `template` or `preset` the body is the alert's JSON line, as it always was.
With one, the body is that template rendered in the sandbox (alerts/templates.py), and a
preset also brings its service's content type and header templates (ntfy's Title,
Priority and Tags); `headers` set in the table win over a preset's.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Mapping
from email.header import Header
from typing import Literal

import attrs
import httpx
from attrs import field, frozen

from .._config import (
    HEADER_ENCODING,
    ChannelSection,
    Duration,
    Retries,
    Url,
    check_header_value,
    expand_headers,
)
from .._records import AlertEvent, to_line
from .._secrets import redact_url
from . import templates
from .base import DELIVERED, Attempt, NotifierKind, deliver_with_retries, give_up, register

log = logging.getLogger("trio_monitor")

PresetName = Literal["slack", "discord", "teams", "mattermost", "google_chat", "ntfy"]
JSON = "application/json"


@frozen
class WebhookConfig(ChannelSection):
    """[[alerts.webhook]]: POST each alert to `url`: its JSON, or `template` rendered,
    or a service's `preset`."""

    url: Url
    headers: dict[str, str] = field(factory=dict)
    timeout: Duration = Duration(5.0)
    retries: Retries = Retries(3)
    template: str | None = None
    preset: PresetName | None = None
    content_type: str | None = None  # default: the preset's, else application/json


def _preset(hook: WebhookConfig) -> templates.Preset | None:
    if hook.preset is not None:
        return templates.PRESETS[hook.preset]
    if hook.template is not None:
        return templates.Preset(hook.template, hook.content_type or JSON)
    return None  # the alert's JSON line


def _header(value: str) -> str:
    """A rendered header value as HTTP can carry it: text beyond Latin-1 (a target's
    name in another script) as an RFC 2047 encoded word, which ntfy reads."""
    try:
        return check_header_value(value)
    except ValueError:
        return Header(value, "utf-8").encode()


class Webhook:
    def __init__(self, config: WebhookConfig, client: httpx.AsyncClient) -> None:
        self.config = config
        self._client = client
        self._rng = random.Random()
        preset = _preset(config)
        self._content_type = JSON if preset is None else config.content_type or preset.content_type
        # compiled at config load already: these are the cached templates
        self._body = None if preset is None else templates.compile_template(preset.body)
        self._headers = {
            name: templates.compile_template(text)
            for name, text in ({} if preset is None else preset.headers).items()
            if name not in config.headers
        }

    def describe(self) -> str:
        return f"webhook {redact_url(str(httpx.URL(self.config.url).copy_with(query=None)))}"

    def _request(self, alert: AlertEvent) -> tuple[bytes, httpx.Headers]:
        """The body and headers for this alert; TemplateError if a template fails."""
        body = to_line(alert) if self._body is None else templates.render(self._body, alert)
        rendered = {
            name: _header(templates.render(t, alert).strip()) for name, t in self._headers.items()
        }
        # receivers drop repeats by the key: delivery is at least once
        headers = httpx.Headers(
            {
                "content-type": self._content_type,
                "idempotency-key": alert.key,
                **rendered,
                **self.config.headers,
            },
            encoding=HEADER_ENCODING,
        )
        return body.encode(), headers

    async def deliver(self, alert: AlertEvent) -> bool:
        """POST the alert; retry on network errors, 429 and 5xx. -> delivered?"""
        hook = self.config
        try:
            body, headers = self._request(alert)
        except templates.TemplateError as exc:
            return give_up(self.describe(), alert, f"template: {exc}")

        async def attempt() -> Attempt:
            try:
                response = await self._client.post(hook.url, content=body, headers=headers)
            except httpx.HTTPError as exc:
                return Attempt(f"{type(exc).__name__}: {exc}")
            if response.is_success:
                return DELIVERED
            # a refusal other than 429 will not change by repeating the request
            refused = response.status_code != 429 and response.status_code < 500
            return Attempt(f"HTTP {response.status_code}", final=refused)

        return await deliver_with_retries(
            self.describe(),
            alert,
            attempt,
            retries=hook.retries,
            limit=hook.timeout,
            rng=self._rng,
        )


def _resolve(
    hook: WebhookConfig, where: str, env: Mapping[str, str], problems: list[str]
) -> WebhookConfig:
    if hook.template is not None and hook.preset is not None:
        problems.append(f"{where}.template: set either template or preset, not both")
    templates.check(hook.template, f"{where}.template", problems)
    if hook.content_type is not None:
        try:
            check_header_value(hook.content_type)
        except ValueError as exc:
            problems.append(f"{where}.content_type: {exc}")
    return attrs.evolve(
        hook, headers=expand_headers(hook.headers, f"{where}.headers", env, problems)
    )


def _destination(hook: WebhookConfig) -> str:
    return str(hook.url)  # not the headers: a rotated secret is still the same notifier


register(
    NotifierKind(
        key="webhook",
        section=WebhookConfig,
        create=Webhook,
        resolve=_resolve,
        destination=_destination,
    )
)
