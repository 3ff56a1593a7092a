"""[[alerts.webhook]]: POST each alert's JSON to a URL."""

from __future__ import annotations

import logging
import random
from collections.abc import Mapping

import attrs
import httpx
import trio
from attrs import field, frozen

from .._config import HEADER_ENCODING, ChannelSection, Duration, Retries, Url, expand_headers
from .._records import AlertEvent, to_line
from .._secrets import redact_url
from .base import NotifierKind, register

log = logging.getLogger("trio_monitor")

BACKOFF = 1.0  # seconds before the first retry; doubles each time


@frozen
class WebhookConfig(ChannelSection):
    """[[alerts.webhook]]: POST each alert's JSON to `url`."""

    url: Url
    headers: dict[str, str] = field(factory=dict)
    timeout: Duration = Duration(5.0)
    retries: Retries = Retries(3)


class Webhook:
    def __init__(self, config: WebhookConfig, client: httpx.AsyncClient) -> None:
        self.config = config
        self._client = client
        self._rng = random.Random()

    def describe(self) -> str:
        return f"webhook {redact_url(str(httpx.URL(self.config.url).copy_with(query=None)))}"

    async def deliver(self, alert: AlertEvent) -> bool:
        """POST the alert JSON; retry on network errors, 429 and 5xx. -> delivered?"""
        hook = self.config
        body = to_line(alert).encode()
        # receivers drop repeats by the key: delivery is at least once
        headers = httpx.Headers(
            {"content-type": "application/json", "idempotency-key": alert.key, **hook.headers},
            encoding=HEADER_ENCODING,
        )
        for attempt in range(hook.retries + 1):
            if attempt:
                await trio.sleep(BACKOFF * 2 ** (attempt - 1) * self._rng.uniform(0.5, 1.0))
            problem = f"no answer within {hook.timeout:g}s"
            with trio.move_on_after(hook.timeout):
                try:
                    response = await self._client.post(hook.url, content=body, headers=headers)
                except httpx.HTTPError as exc:
                    problem = f"{type(exc).__name__}: {exc}"
                else:
                    if response.is_success:
                        return True
                    problem = f"HTTP {response.status_code}"
                    if response.status_code != 429 and response.status_code < 500:
                        break  # the receiver refuses this request; repeating it will not help
            log.warning("%s: attempt %d failed: %s", self.describe(), attempt + 1, problem)
        log.error(
            "%s: giving up on %s alert for %s: %s",
            self.describe(),
            alert.event,
            alert.target,
            problem,
        )
        return False


def _resolve(
    hook: WebhookConfig, where: str, env: Mapping[str, str], problems: list[str]
) -> WebhookConfig:
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
