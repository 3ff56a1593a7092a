"""[[alerts.apprise]]: send each alert through Apprise to any of its services (email,
Telegram, PagerDuty, Opsgenie, Pushover, Matrix, ...), one URL each.

Apprise is an optional dependency (`pip install 'trio-monitor[apprise]'`): a config
with this table and no Apprise fails at load, in one line naming the extra. Its URLs
are checked at load too (one Apprise does not know is a config error).

Apprise is synchronous. Each attempt runs in a worker thread
(`trio.to_thread.run_sync`), at most THREADS at once per notifier, so the event loop
never waits for a mail server. Apprise's own connect and read timeouts are set to the
table's `timeout`; a call cannot be cancelled, so one still running after
`2 x timeout + 1 s` is abandoned (its thread ends on its own, its result is ignored),
logged and counted in `abandoned`. URLs hold secrets (tokens in the host or path):
logs show them as Apprise's privacy form, with userinfo redacted; metrics and the
round line name the notifier by its place (`apprise[0]`).
"""

from __future__ import annotations

import importlib
import json
import random
from collections.abc import Mapping
from types import ModuleType
from typing import Any

import attrs
import httpx
import trio
from attrs import frozen

from .._config import ChannelSection, Duration, Retries, expand_env
from .._records import AlertEvent
from .._secrets import redact_url
from . import templates
from .base import (
    DELIVERED,
    Attempt,
    NotifierKind,
    deliver_with_retries,
    give_up,
    log,
    register,
)

EXTRA = "pip install 'trio-monitor[apprise]'"
THREADS = 2  # worker threads per notifier: one delivering, one abandoned at most
TITLE = "{{ title }}"
BODY = "{{ summary }}"

# Apprise's notification types (its colours and icons), per event
_TYPES = {"down": "failure", "up": "success", "slow": "warning", "flapping": "warning"}
_TYPES |= {"cert_expiring": "warning"}


@frozen
class AppriseConfig(ChannelSection):
    """[[alerts.apprise]]: each alert to every URL in `urls` (Apprise's URL forms)."""

    urls: tuple[str, ...]
    title: str | None = None  # a template; default: "DOWN api"
    body: str | None = None  # a template; default: "DOWN api: connect: connection refused"
    timeout: Duration = Duration(10.0)
    retries: Retries = Retries(2)


def _apprise() -> ModuleType | None:
    """Apprise, imported once it is needed; None when it is not installed."""
    try:
        return importlib.import_module("apprise")
    except ImportError:
        return None


def _shown(plugin: Any) -> str:
    """A URL for the log: Apprise's privacy form (tokens shortened), userinfo redacted,
    without its query (Apprise's settings, maybe a password)."""
    return redact_url(str(plugin.url(privacy=True)).partition("?")[0])


class Apprise:
    def __init__(self, config: AppriseConfig, client: httpx.AsyncClient | None = None) -> None:
        self.config = config
        module = _apprise()
        assert module is not None  # checked at config load
        self._plugins = [module.Apprise.instantiate(url) for url in config.urls]
        for plugin in self._plugins:  # Apprise's own timeouts, per socket operation
            plugin.socket_connect_timeout = plugin.socket_read_timeout = config.timeout
        self._title = templates.compile_template(config.title or TITLE)
        self._body = templates.compile_template(config.body or BODY)
        self._limiter = trio.CapacityLimiter(THREADS)
        self._rng = random.Random()
        self.abandoned = 0  # calls still running when their time was up

    def describe(self) -> str:
        return "apprise " + ", ".join(map(_shown, self._plugins))

    async def deliver(self, alert: AlertEvent) -> bool:
        """Notify every URL; retry those that failed. -> all of them delivered?"""
        try:
            title = templates.render(self._title, alert)
            body = templates.render(self._body, alert)
        except templates.TemplateError as exc:
            return give_up(self.describe(), alert, f"template: {exc}")
        kind = _TYPES.get(alert.event, "info")
        pending = list(range(len(self._plugins)))

        async def attempt() -> Attempt:
            nonlocal pending
            pending = await self._notify(pending, title, body, kind)
            if not pending:
                return DELIVERED
            failed = ", ".join(_shown(self._plugins[i]) for i in pending)
            return Attempt(f"not delivered to {failed} (Apprise's log says why)")

        return await deliver_with_retries(
            self.describe(),
            alert,
            attempt,
            retries=self.config.retries,
            limit=2 * self.config.timeout + 1.0,
            rng=self._rng,
        )

    async def _notify(self, indexes: list[int], title: str, body: str, kind: str) -> list[int]:
        """Notify the URLs at `indexes` in a worker thread. -> those that failed"""
        running: list[bool] = []  # the thread started: a cancel from then on abandons it

        def notify() -> list[int]:
            running.append(True)
            plugins = [(i, self._plugins[i]) for i in indexes]
            return [i for i, p in plugins if not p.notify(body=body, title=title, notify_type=kind)]

        try:
            return await trio.to_thread.run_sync(
                notify, abandon_on_cancel=True, limiter=self._limiter
            )
        except trio.Cancelled:
            if running:
                self.abandoned += 1
                log.warning(
                    "%s: abandoned a call still running (%d so far); its thread ends on its own",
                    self.describe(),
                    self.abandoned,
                )
            raise


def _resolve(
    config: AppriseConfig, where: str, env: Mapping[str, str], problems: list[str]
) -> AppriseConfig:
    templates.check(config.title, f"{where}.title", problems)
    templates.check(config.body, f"{where}.body", problems)
    module = _apprise()
    if module is None:
        problems.append(f"{where}: needs Apprise, an optional dependency: {EXTRA}")
        return config
    if not config.urls:
        problems.append(f"{where}.urls: list at least one URL")
    urls = []
    for i, url in enumerate(config.urls):
        try:
            url = expand_env(url, env)
        except ValueError as exc:
            problems.append(f"{where}.urls[{i}]: {exc}")
            continue
        if module.Apprise.instantiate(url) is None:
            scheme = url.partition("://")[0] if "://" in url else ""
            problems.append(f"{where}.urls[{i}]: not a URL Apprise can send to (scheme {scheme!r})")
        urls.append(url)
    return attrs.evolve(config, urls=tuple(urls))


def _destination(config: AppriseConfig) -> str:
    return json.dumps(list(config.urls))


register(
    NotifierKind(
        key="apprise",
        section=AppriseConfig,
        create=Apprise,
        resolve=_resolve,
        destination=_destination,
    )
)
