"""The live status page (`GET /`): one self-contained HTML document, built once from
the package's static files (static/status.html, status.css, status.js) and the
palette (trio_monitor/_palette.py). Also the login page (`GET /login`, static/login.html
and login.css: a form and no script), with its own CSP the same way.

The CSS and JavaScript are inlined, so the page fetches nothing but the same-origin
JSON API it renders (`api/v1/targets`, `api/v1/targets/{name}/history`,
`api/v1/incidents`, resolved against the page's own URL, so it also works behind a
reverse proxy under a path prefix). Its Content-Security-Policy (a `<meta>` tag, and
`status_page_csp()` for a header) allows exactly that script and that style, by their
SHA-256 hashes, and only lets the page connect to its own origin.

One availability scale: the uptime colours go into the style as `--palette-*` custom
properties and the thresholds onto `<body data-ok-from data-warn-from>`, where the
script reads them; neither file keeps a copy.

Tokens: when the API needs one and the page is public, open the page as
`https://host:port/#token=SECRET`. The fragment never leaves the browser; the script
sends it as `Authorization: Bearer SECRET` on its API calls only. Without it, a 401/403
shows "this status page needs a token".

Bounded requests: every refresh (30 s) fetches the target list, the incidents and the
cluster (`api/v1/cluster`: null but in cluster mode), three requests whatever the
number of targets. Histories are fetched lazily, only for the
target cards on (or within 300 px of) the screen, at most 24 cards, 3 requests at a
time; a card's 24 h history is re-fetched at most once a minute and its 7 d history at
most every 10 minutes. Scrolling fetches the cards that come into view. Nothing is
fetched while the tab is hidden.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import html
from importlib.resources import files
from string import Template

from .. import _palette

__all__ = ["login_page_csp", "login_page_html", "status_page_csp", "status_page_html"]


@functools.cache
def _static(name: str) -> str:
    """A file of static/, read once (from the installed package, wheel or not)."""
    return (files("trio_monitor.server") / "static" / name).read_text(encoding="utf-8")


@functools.cache
def _style() -> str:
    palette = ";".join(f"--palette-{name}:{color}" for name, color in _palette.COLORS.items())
    style = f":root{{{palette}}}\n{_static('status.css')}"
    assert "</style" not in style.lower()
    return style


@functools.cache
def _script() -> str:
    script = _static("status.js")
    assert "</script" not in script.lower()
    return script


def _sha256(text: str) -> str:
    return "'sha256-" + base64.b64encode(hashlib.sha256(text.encode()).digest()).decode() + "'"


def _csp(*, header: bool) -> str:
    policy = (
        "default-src 'none'; "
        f"script-src {_sha256(_script())}; "
        f"style-src {_sha256(_style())}; "
        "connect-src 'self'; "
        "img-src data:; "
        "base-uri 'none'; "
        "form-action 'none'"
    )
    # frame-ancestors only works in a header, never in a <meta> tag
    return policy + "; frame-ancestors 'none'" if header else policy


def status_page_csp() -> str:
    """The page's Content-Security-Policy, for the server to send as a header too.

    (A header that does not allow the page's script hash would stop the page.)
    """
    return _csp(header=True)


@functools.lru_cache(maxsize=16)
def status_page_html(*, title: str = "trio-monitor status", refresh_s: int = 30) -> str:
    """The live status page: one self-contained HTML document (see the module doc)."""
    if not 5 <= refresh_s <= 3600:
        raise ValueError("refresh_s must be between 5 and 3600 seconds")
    return Template(_static("status.html")).substitute(
        csp=_csp(header=False),
        title=html.escape(title, quote=True),
        refresh=int(refresh_s),
        ok_from=f"{_palette.OK_FROM:g}",
        warn_from=f"{_palette.WARN_FROM:g}",
        style=_style(),
        script=_script(),
    )


@functools.cache
def _login_style() -> str:
    style = _static("login.css")
    assert "</style" not in style.lower()
    return style


def _login_csp(*, header: bool) -> str:
    # no script at all; the form may post to this origin only
    policy = (
        "default-src 'none'; "
        f"style-src {_sha256(_login_style())}; "
        "img-src data:; "
        "base-uri 'none'; "
        "form-action 'self'"
    )
    return policy + "; frame-ancestors 'none'" if header else policy


def login_page_csp() -> str:
    """The login page's Content-Security-Policy, for the server to send as a header."""
    return _login_csp(header=True)


def login_page_html(*, problem: str = "", hours: int, title: str = "trio-monitor status") -> str:
    """The login form; `problem` (plain text) is shown above its button."""
    return Template(_static("login.html")).substitute(
        csp=_login_csp(header=False),
        title=html.escape(title, quote=True),
        style=_login_style(),
        problem=html.escape(problem),
        problem_hidden="" if problem else " hidden",
        hours=int(hours),
    )
