"""The client side of /healthz: `check_health`, behind `trio-monitor health` (a
container HEALTHCHECK). Synchronous: the command runs outside the monitor, one request
and done.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

import httpx

from ..net.addr import local_url

if TYPE_CHECKING:
    from .._config import ServerSection

HEALTH_TIMEOUT = 5.0  # seconds `trio-monitor health` waits for an answer


def check_health(server: ServerSection, *, timeout: float = HEALTH_TIMEOUT) -> tuple[bool, str]:
    """GET /healthz of the server a config describes. -> (healthy, one line saying why)."""
    url = f"{local_url(server.listen)}/healthz"
    headers = {} if server.token is None else {"authorization": f"Bearer {server.token}"}
    try:
        with httpx.Client(timeout=timeout, trust_env=False) as client:
            response = client.get(url, headers=headers)
    except httpx.TimeoutException:
        return False, f"{url}: no answer within {timeout:g} s"
    except httpx.ConnectError as exc:
        why = next(
            (c.strerror for c in _causes(exc) if isinstance(c, OSError) and c.strerror),
            str(exc) or type(exc).__name__,
        )
        return False, f"{url}: cannot connect: {why}"
    except httpx.HTTPError as exc:
        return False, f"{url}: {str(exc) or type(exc).__name__}"
    reason: object = None
    try:
        body = response.json()
    except ValueError:
        pass  # not JSON: not our server, the status line below says so
    else:
        reason = body.get("reason") if isinstance(body, dict) else None
    if response.status_code == 200:
        return True, f"healthy: {reason or 'ok'}"
    if response.status_code == 503 and reason:
        return False, f"unhealthy: {reason}"
    return False, f"{url}: unexpected HTTP status {response.status_code}"


def _causes(exc: BaseException) -> Iterator[BaseException]:
    """exc and everything it was caused by, grouped with or raised while handling."""
    seen: set[int] = set()
    todo: list[BaseException | None] = [exc]
    while todo:
        e = todo.pop()
        if e is None or id(e) in seen:
            continue
        seen.add(id(e))
        yield e
        todo.extend((e.__cause__, e.__context__))
        if isinstance(e, BaseExceptionGroup):
            todo.extend(e.exceptions)
