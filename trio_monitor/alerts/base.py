"""Alert notifiers: webhooks and commands, each a task fed by its own bounded channel.

A notifier that is slow, down or broken delays only its own queue: probing and
the other notifiers go on. Its failures are logged, never raised.
"""

from __future__ import annotations

import logging
import os
import random

import httpx
import trio

from .._config import AlertsSection, ExecConfig, WebhookConfig
from .._records import AlertEvent, to_line

log = logging.getLogger("trio_monitor")

QUEUE = 1000  # alerts waiting per notifier before new ones are dropped (and logged)
WEBHOOK_BACKOFF = 1.0  # seconds before the first webhook retry; doubles each time

Notifier = WebhookConfig | ExecConfig


def _describe(notifier: Notifier) -> str:
    if isinstance(notifier, WebhookConfig):
        return f"webhook {httpx.URL(notifier.url).copy_with(query=None)}"
    return f"exec {notifier.command[0]}"


async def send_webhook(
    client: httpx.AsyncClient, hook: WebhookConfig, event: AlertEvent, rng: random.Random
) -> bool:
    """POST the alert JSON; retry on network errors, 429 and 5xx. -> delivered?"""
    body = to_line(event).encode()
    headers = {"content-type": "application/json", **hook.headers}
    for attempt in range(hook.retries + 1):
        if attempt:
            await trio.sleep(WEBHOOK_BACKOFF * 2 ** (attempt - 1) * rng.uniform(0.5, 1.0))
        problem = f"no answer within {hook.timeout:g}s"
        with trio.move_on_after(hook.timeout):
            try:
                response = await client.post(hook.url, content=body, headers=headers)
            except httpx.HTTPError as exc:
                problem = f"{type(exc).__name__}: {exc}"
            else:
                if response.is_success:
                    return True
                problem = f"HTTP {response.status_code}"
                if response.status_code != 429 and response.status_code < 500:
                    break  # the receiver refuses this request; repeating it will not help
        log.warning("%s: attempt %d failed: %s", _describe(hook), attempt + 1, problem)
    log.error("%s: giving up on %s alert for %s", _describe(hook), event.event, event.target)
    return False


async def run_exec(notifier: ExecConfig, event: AlertEvent) -> bool:
    """Run the command with the alert JSON on stdin. -> exited 0 in time?"""
    env = dict(os.environ)
    env.update(TRIO_MONITOR_EVENT=event.event, TRIO_MONITOR_TARGET=event.target)
    with trio.move_on_after(notifier.timeout):
        try:
            done = await trio.run_process(
                list(notifier.command),
                stdin=(to_line(event) + "\n").encode(),
                capture_stdout=True,  # our stdout is JSON lines: the command must not write there
                capture_stderr=True,
                check=False,
                env=env,
            )
        except OSError as exc:
            log.error("%s: cannot run: %s", _describe(notifier), exc)
            return False
        if done.returncode == 0:
            return True
        err = done.stderr.decode(errors="replace").strip().splitlines()
        log.error(
            "%s: exited %d%s",
            _describe(notifier),
            done.returncode,
            f": {err[-1][:200]}" if err else "",
        )
        return False
    log.error("%s: killed after %gs", _describe(notifier), notifier.timeout)
    return False


class Notifiers:
    """One task and one channel per configured notifier; reconfigurable on reload."""

    def __init__(self, nursery: trio.Nursery, client: httpx.AsyncClient) -> None:
        self._nursery = nursery
        self._client = client
        self._rng = random.Random()
        # a list, not a dict: configs hold header tables, so they compare but do not hash
        self._queues: list[tuple[Notifier, trio.MemorySendChannel[AlertEvent]]] = []

    def configure(self, alerts: AlertsSection) -> None:
        """Start tasks for new notifiers; let removed ones finish their queue and end."""
        wanted = [*alerts.webhook, *alerts.exec]
        kept = []
        for notifier, queue in self._queues:
            if notifier in wanted:
                kept.append((notifier, queue))
            else:
                queue.close()
        known = [n for n, _ in kept]
        for notifier in wanted:
            if notifier not in known:
                send, receive = trio.open_memory_channel[AlertEvent](QUEUE)
                kept.append((notifier, send))
                self._nursery.start_soon(self._serve, notifier, receive)
        self._queues = kept

    def publish(self, event: AlertEvent) -> None:
        for notifier, queue in self._queues:
            if event.event in notifier.events:
                try:
                    queue.send_nowait(event)
                except trio.WouldBlock:
                    log.error("%s: queue full, dropped %s alert", _describe(notifier), event.event)

    def close(self) -> None:
        for _, queue in self._queues:
            queue.close()
        self._queues = []

    async def _serve(self, notifier: Notifier, receive: trio.MemoryReceiveChannel[AlertEvent]):
        async with receive:
            async for event in receive:
                if isinstance(notifier, WebhookConfig):
                    await send_webhook(self._client, notifier, event, self._rng)
                else:
                    await run_exec(notifier, event)
