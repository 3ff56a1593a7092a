"""The hand-written OpenAPI document (trio_monitor/server/openapi.py) against the app
it describes: every route and method the app serves is in the document, and every
path and method the document lists is served (not a 404 "no such path", not a 405).
"""

from __future__ import annotations

import re

import pytest
from fakes import silence_desk
from starlette.applications import Starlette
from starlette.routing import Match, Route
from test_server import TOKEN, FakeView, serving, target_status

from trio_monitor._config import ServerSection
from trio_monitor.server import build_app, openapi_document
from trio_monitor.server.metrics import Metrics

# Filled into the document's path templates; a name with a "/" in it, percent-encoded
# as the document says, still lands on the same route.
PARAMS = {
    "name": "api%2Fv2",
    "token": "no-such-token-0123",
    "event": "start",
    "id": "0123456789ab",
    "file": "20261130T160102.123Z.png",
}


def _routes(app: object) -> list[Route]:
    """The Starlette routes inside the middleware (each keeps the next in `.app`)."""
    while not isinstance(app, Starlette):
        app = app.app  # type: ignore[attr-defined]
    routes = app.routes
    assert all(isinstance(r, Route) for r in routes), routes
    return routes  # type: ignore[return-value]


def _fill(template: str) -> str:
    return re.sub(r"\{(\w+)\}", lambda m: PARAMS[m.group(1)], template)


def _route_for(routes: list[Route], path: str, method: str) -> Route | None:
    """The route Starlette's router would pick for a request, as it picks it."""
    scope = {"type": "http", "path": path, "method": method}
    return next((r for r in routes if r.matches(scope)[0] == Match.FULL), None)


def _documented(section: ServerSection) -> set[tuple[str, str]]:
    return {
        (template, method.upper())
        for template, item in openapi_document(section)["paths"].items()
        for method in item
    }


@pytest.mark.parametrize(
    "section",
    [ServerSection(), ServerSection(token=TOKEN, public_status_page=True)],
    ids=["open", "token"],
)
def test_every_route_and_method_is_documented_and_every_documented_one_is_routed(section):
    routes = _routes(build_app(FakeView(), section, Metrics(), silences=silence_desk()))
    documented = _documented(section)
    reached: set[tuple[str, str]] = set()
    for template, method in documented:
        route = _route_for(routes, _fill(template), method)
        assert route is not None, f"{method} {template} is documented but not routed"
        assert route.methods is not None
        assert method in route.methods, f"{method} {template}: the route takes {route.methods}"
        reached.add((route.path, method))
    served = {
        (route.path, method)
        for route in routes
        for method in route.methods or ()
        if method != "HEAD"  # Starlette adds HEAD to every GET; OpenAPI implies it
    }
    assert served - reached == set(), "routes and methods missing from the document"
    assert reached == served


async def test_every_documented_operation_is_served():
    """The same, over HTTP: no documented path is a 404 "no such path" or a 405."""
    view = FakeView(target_status("api/v2"))
    async with serving(view) as served, served.client() as client:
        for template, method in sorted(_documented(served.section)):
            response = await client.request(method, _fill(template))
            assert response.status_code != 405, (template, response.text)
            # a 404 for a reason the document gives (history disabled) is fine
            assert not response.text.startswith('{"error":"no such path'), template
        # and the check itself can fail: an undocumented path is "no such path"
        response = await client.get("/api/v1/nothing")
        assert response.status_code == 404
        assert response.json() == {"error": "no such path: /api/v1/nothing"}
