"""Logging a browser in with the token (`[server] token`): the login form, the session
cookie it earns, and logging out.

`GET /login` is a form (page.py); `POST /login` with the token (form-encoded, compared
in constant time) answers with a session cookie and a redirect to the status page;
`POST /logout` clears the cookie. The cookie is `<expiry>.<HMAC-SHA256 of the expiry>`,
keyed by a key derived from the token: it expires after `SESSION_HOURS`, and changing
the token ends every session. Nothing is kept on the server.

The cookie is HttpOnly (no script reads it), SameSite=Strict (no other site's page
makes the browser send it), Path=/, and Secure when the browser reached us over https
(its Origin says so, as behind a TLS-terminating proxy; the server itself speaks plain
http). A POST whose Origin is another site's is refused (403): the API is read-only,
so logging in and out are the only state-changing requests to guard.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import time
from collections.abc import Callable, Iterable
from contextlib import aclosing
from urllib.parse import parse_qs, urlsplit

from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.routing import Route

from .contract import error_response
from .page import login_page_csp, login_page_html

COOKIE = "trio_monitor_session"
SESSION_HOURS = 12
MAX_FORM = 4096  # bytes of a login form at most: one token field

Clock = Callable[[], float]


class Sessions:
    """Issues and checks session cookie values for one token."""

    def __init__(self, token: str, clock: Clock = time.time) -> None:
        self._key = hmac.new(
            token.encode(), b"trio-monitor session cookie", hashlib.sha256
        ).digest()
        self._clock = clock

    def _mac(self, expires: int) -> str:
        digest = hmac.new(self._key, str(expires).encode(), hashlib.sha256).digest()
        return base64.urlsafe_b64encode(digest).decode().rstrip("=")

    def issue(self) -> str:
        expires = int(self._clock()) + SESSION_HOURS * 3600
        return f"{expires}.{self._mac(expires)}"

    def valid(self, value: str) -> bool:
        expires, _, mac = value.partition(".")
        if not expires.isdigit() or int(expires) <= self._clock():
            return False
        return hmac.compare_digest(mac.encode(), self._mac(int(expires)).encode())


def session_cookie(headers: Iterable[tuple[bytes, bytes]]) -> str | None:
    """The session cookie's value among raw ASGI request headers, if any."""
    for key, value in headers:
        if key != b"cookie":
            continue
        for pair in value.decode("latin-1").split(";"):
            name, _, cookie = pair.strip().partition("=")
            if name == COOKIE:
                return cookie
    return None


def _foreign_origin(request: Request) -> bool:
    """Did another site's page send this request? (No Origin: not a browser's POST.)"""
    origin = request.headers.get("origin")
    if origin is None:
        return False
    return urlsplit(origin).netloc.lower() != request.headers.get("host", "").lower()


def _form_page(problem: str = "", status: int = 200) -> Response:
    headers = {
        "cache-control": "no-store",
        "content-security-policy": login_page_csp(),
        "x-content-type-options": "nosniff",
    }
    return HTMLResponse(login_page_html(problem=problem, hours=SESSION_HOURS), status, headers)


def login_routes(token: str) -> list[Route]:
    """GET/POST /login and POST /logout, for a server with this token."""
    expected = token.encode()
    sessions = Sessions(token)

    async def form(request: Request) -> Response:
        return _form_page()

    async def login(request: Request) -> Response:
        if _foreign_origin(request):
            return error_response(403, "login from another site's page refused")
        body = b""
        async with aclosing(request.stream()) as chunks:
            async for chunk in chunks:
                body += chunk
                if len(body) > MAX_FORM:
                    return error_response(413, f"a login form has at most {MAX_FORM} bytes")
        given = parse_qs(body.decode("utf-8", "replace")).get("token", [""])[0].strip()
        if not (given and hmac.compare_digest(given.encode(), expected)):
            return _form_page("That token is not right.", 401)
        response = RedirectResponse("./", 303, {"cache-control": "no-store"})
        secure = request.headers.get("origin", "").startswith("https://")
        response.set_cookie(
            COOKIE,
            sessions.issue(),
            max_age=SESSION_HOURS * 3600,
            path="/",
            secure=secure or request.url.scheme == "https",
            httponly=True,
            samesite="strict",
        )
        return response

    async def logout(request: Request) -> Response:
        if _foreign_origin(request):
            return error_response(403, "logout from another site's page refused")
        response = RedirectResponse("login", 303, {"cache-control": "no-store"})
        response.delete_cookie(COOKIE, path="/", httponly=True, samesite="strict")
        return response

    return [
        Route("/login", form, methods=["GET"]),
        Route("/login", login, methods=["POST"]),
        Route("/logout", logout, methods=["POST"]),
    ]
