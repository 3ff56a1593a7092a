"""The bearer-token check (`[server] token`), as ASGI middleware in front of routing,
so that without the token even a 404 gives nothing away.

/healthz never needs the token (container health checks have none); with
`public_status_page`, "/" and the badges are public too, while the API the page calls
still needs it.
"""

from __future__ import annotations

import hmac
from typing import TYPE_CHECKING

from .contract import API, error_response

if TYPE_CHECKING:
    from starlette.types import ASGIApp, Receive, Scope, Send

    from .._config import ServerSection


class BearerAuth:
    """Lets a request through to `app` only with `Authorization: Bearer <token>`, or
    when its path is public; otherwise answers a JSON 401 with a challenge."""

    def __init__(self, app: ASGIApp, server: ServerSection) -> None:
        self.app = app
        self.token = None if server.token is None else server.token.encode()
        self.public_page = server.public_status_page

    def _public(self, path: str) -> bool:
        if path == "/healthz":
            return True
        return self.public_page and (path == "/" or path.startswith(f"{API}/badges/"))

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if self.token is None or scope["type"] != "http" or self._public(scope["path"]):
            await self.app(scope, receive, send)
            return
        given = None
        for key, value in scope["headers"]:
            if key == b"authorization":
                scheme, _, credentials = value.partition(b" ")
                if scheme.lower() == b"bearer":
                    given = credentials.strip()
                break
        if given and hmac.compare_digest(given, self.token):  # an empty token opens nothing
            await self.app(scope, receive, send)
            return
        if given is None:
            message = "authentication required: send 'Authorization: Bearer <token>'"
            challenge = 'Bearer realm="trio-monitor"'
        else:
            message = "invalid bearer token"
            challenge = 'Bearer realm="trio-monitor", error="invalid_token"'
        response = error_response(401, message, {"www-authenticate": challenge})
        await response(scope, receive, send)
