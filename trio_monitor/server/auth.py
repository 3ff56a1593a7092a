"""Who may ask: the bearer-token check (`[server] token`) and, without a token, the Host
check, as ASGI middleware in front of routing, so that even a 404 gives nothing away.

/healthz and the push URLs (/api/v1/push/{token}...: a cron job's ping, whose own
secret is in its path) never need the token; /healthz (container health checks have none); with
`public_status_page`, "/" and the badges are public too, while the API the page calls
still needs it. A browser logged in at /login (login.py) sends a session cookie
instead of the token; a browser that is not, asking for "/", is sent to /login.

Without a token, the server answers only requests whose Host names it: an IP address,
"localhost", the listen host, or one of `allowed_hosts`. A page that rebinds its own
DNS name to this machine's address (DNS rebinding) sends its own name as Host, and gets
a 421 instead of the API. /healthz answers any Host (health checkers use service names;
it tells nothing worth stealing), and so do the push URLs (a cron job on another machine
pings the server by its name; a page cannot know a push token). With a token, any Host is fine: a browser page cannot
know the token.
"""

from __future__ import annotations

import hmac
import ipaddress
from typing import TYPE_CHECKING

from starlette.responses import RedirectResponse

from .contract import API, error_response
from .login import Sessions, session_cookie

if TYPE_CHECKING:
    from starlette.types import ASGIApp, Receive, Scope, Send

    from .._config import ServerSection


_ALWAYS_PUBLIC = frozenset({"/healthz", "/login", "/logout"})
PUSH = f"{API}/push/"  # a push target's ping: its token is in the path (app.py)


def _any_host(path: str) -> bool:
    """Answered whatever the Host header: health checks and pings from elsewhere."""
    return path == "/healthz" or path.startswith(PUSH)


def _wants_html(scope: Scope) -> bool:
    """A browser navigating (it asks for HTML), not a script or an API client."""
    accept = next((v for k, v in scope["headers"] if k == b"accept"), b"")
    return scope["method"] in ("GET", "HEAD") and b"text/html" in accept


class BearerAuth:
    """Lets a request through to `app` only with `Authorization: Bearer <token>`, a
    valid session cookie, or when its path is public; otherwise sends a browser asking
    for "/" to the login form, and answers anything else a JSON 401 with a challenge."""

    def __init__(self, app: ASGIApp, token: str, public_page: bool) -> None:
        self.app = app
        self.token = token.encode()
        self.public_page = public_page
        self.sessions = Sessions(token)

    def _public(self, path: str) -> bool:
        if path in _ALWAYS_PUBLIC or path.startswith(PUSH):
            return True
        return self.public_page and (path == "/" or path.startswith(f"{API}/badges/"))

    def _logged_in(self, scope: Scope) -> bool:
        cookie = session_cookie(scope["headers"])
        return cookie is not None and self.sessions.valid(cookie)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or self._public(scope["path"]):
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
        if given is None and self._logged_in(scope):
            await self.app(scope, receive, send)
            return
        if given is None and scope["path"] == "/" and _wants_html(scope):
            await RedirectResponse("login", 303)(scope, receive, send)
            return
        if given is None:
            message = "authentication required: send 'Authorization: Bearer <token>'"
            challenge = 'Bearer realm="trio-monitor"'
        else:
            message = "invalid bearer token"
            challenge = 'Bearer realm="trio-monitor", error="invalid_token"'
        response = error_response(401, message, {"www-authenticate": challenge})
        await response(scope, receive, send)


def host_of(header: str) -> str:
    """The host of a Host header, lower-cased: "Example.com:9180" -> "example.com",
    "[::1]:9180" -> "::1"."""
    host = header.strip().lower()
    if host.startswith("["):
        return host[1:].partition("]")[0]
    name, _, port = host.rpartition(":")
    return name if name and port.isdigit() else host


def _is_ip_address(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


class HostCheck:
    """Without a token: answers a request whose Host the server does not go by with a
    JSON 421 (see the module doc); lets every other request through to `app`."""

    def __init__(self, app: ASGIApp, server: ServerSection) -> None:
        self.app = app
        self.names = frozenset({"localhost", server.listen[0].lower(), *server.allowed_hosts})

    def _served(self, host: str) -> bool:
        return host in self.names or _is_ip_address(host)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or _any_host(scope["path"]):
            await self.app(scope, receive, send)
            return
        header = next((v for k, v in scope["headers"] if k == b"host"), None)
        host = host_of(header.decode("latin-1")) if header is not None else None
        if host is None or self._served(host):  # no Host: no browser sent it
            await self.app(scope, receive, send)
            return
        message = (
            f"this server does not answer for host {host!r}: add it to [server] "
            "allowed_hosts, or set a token"
        )
        await error_response(421, message)(scope, receive, send)


def guard(app: ASGIApp, server: ServerSection) -> ASGIApp:
    """`app` behind the token check, or without a token behind the Host check."""
    if server.token is None:
        return HostCheck(app, server)
    return BearerAuth(app, server.token, server.public_status_page)
